//! One module per group of verbs; `dispatch` routes the parsed command.

mod archive;
mod images;
mod transfer;

use crate::cli::{Cli, Command, ImageCommand, SystemCommand};
use anyhow::{Context, Result};
use capsa_image::Store;

pub fn dispatch(cli: Cli) -> Result<()> {
    let store = || {
        Store::open(&cli.root)
            .with_context(|| format!("opening the store at {}", cli.root.display()))
    };
    match cli.command {
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => transfer::pull(&store()?, a),
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => transfer::push(&store()?, a),
        Command::Login(a) => transfer::login(a),
        Command::Logout(a) => transfer::logout(a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::list(&store()?, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => images::remove(&store()?, a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => images::tag(&store()?, a),
        Command::Image(ImageCommand::Inspect(a)) => images::inspect(&store()?, a),
        Command::Image(ImageCommand::Prune(a)) => images::prune(&store()?, a),
        Command::Image(ImageCommand::Mount(a)) => images::mount(&store()?, a),
        Command::Image(ImageCommand::Unmount(a)) => images::unmount(a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => archive::load(&store()?, a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => archive::save(&store()?, a),
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => {
            archive::import(&store()?, a)
        }
        Command::System(SystemCommand::Df(a)) => images::df(&store()?, a),
    }
}
