//! One module per group of verbs; `dispatch` routes the parsed command
//! and returns the exit code.

mod archive;
mod build;
mod completion;
mod containers;
mod events;
mod images;
mod inspect;
mod network;
mod ps;
mod run;
mod system;
mod transfer;
mod volume;

use crate::cli::{
    BuilderCommand, Cli, Command, ContainerCommand, HealthcheckCommand, ImageCommand, SystemCommand,
};
use anyhow::{Context, Result};
use capsa_engine::Engine;
use capsa_image::Store;

pub fn dispatch(cli: Cli) -> Result<i32> {
    let (root, run_root) = capsa_engine::rootless::paths(cli.root.clone(), cli.run_root.clone())?;
    let max = capsa_engine::flags::parse_bytes("--max-layer-size", &cli.max_layer_size)?;
    capsa_image::unpack::set_limits(capsa_image::unpack::Limits {
        max_bytes: u64::try_from(max).unwrap_or(0),
        max_ratio: cli.max_inflate_ratio,
        ..capsa_image::unpack::Limits::DEFAULT
    });
    let store =
        || Store::open(&root).with_context(|| format!("opening the store at {}", root.display()));
    let engine = || {
        Engine::open(&root, &run_root)
            .with_context(|| format!("opening {} and {}", root.display(), run_root.display()))
    };
    let done = |r: Result<()>| r.map(|()| 0);
    match cli.command {
        Command::Run(a) => run::run(&engine()?, a, true),
        Command::Create(a) => run::run(&engine()?, a, false),
        Command::Start(a) => run::start(&engine()?, a),
        Command::Ps(a) | Command::Container(ContainerCommand::Ls(a)) => ps::ps(&engine()?, a),
        Command::Logs(a) => ps::logs(&engine()?, a),
        Command::Exec(a) => containers::exec(&engine()?, a),
        Command::Events(a) => events::events(&engine()?, a),
        Command::Completion(a) => done(completion::completion(a)),
        Command::Man(a) => done(completion::man(a)),
        Command::Healthcheck(HealthcheckCommand::Run(a)) => containers::healthcheck(&engine()?, a),
        Command::Attach(a) => containers::attach(&engine()?, a),
        Command::Stop(a) => containers::stop(&engine()?, a),
        Command::Kill(a) => containers::kill(&engine()?, a),
        Command::Rm(a) | Command::Container(ContainerCommand::Rm(a)) => {
            containers::rm(&engine()?, a)
        }
        Command::Pause(a) => containers::pause(&engine()?, a, true),
        Command::Unpause(a) => containers::pause(&engine()?, a, false),
        Command::Wait(a) => containers::wait(&engine()?, a),
        Command::Rename(a) => containers::rename(&engine()?, a),
        Command::Inspect(a) | Command::Container(ContainerCommand::Inspect(a)) => {
            inspect::inspect(&engine()?, a)
        }
        Command::Stats(a) => inspect::stats(&engine()?, a),
        Command::Top(a) => inspect::top(&engine()?, a),
        Command::Export(a) => containers::export(&engine()?, a),
        Command::Cp(a) => containers::cp(&engine()?, a),
        Command::Info(a) => inspect::info(&engine()?, a),
        Command::Container(ContainerCommand::Prune) => containers::prune(&engine()?),
        Command::Network(cmd) => network::dispatch(&engine()?, cmd),
        Command::Port(a) => network::port(&engine()?, a),
        Command::Volume(cmd) => volume::dispatch(&engine()?, cmd),
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => {
            let name = a.image.clone();
            done(transfer::pull(&store()?, a)).inspect(|_| image_event(engine(), "pull", &[name]))
        }
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => {
            done(transfer::push(&store()?, a))
        }
        Command::Login(a) => done(transfer::login(a)),
        Command::Logout(a) => done(transfer::logout(a)),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => {
            done(images::list(&store()?, a))
        }
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => {
            let names = a.images.clone();
            done(images::remove(&engine()?, a)).inspect(|_| image_event(engine(), "untag", &names))
        }
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => {
            let name = a.target.clone();
            done(images::tag(&store()?, a)).inspect(|_| image_event(engine(), "tag", &[name]))
        }
        Command::Image(ImageCommand::Inspect(a)) => done(images::inspect(&store()?, a)),
        Command::Image(ImageCommand::Prune(a)) => done(images::prune(&engine()?, a)),
        Command::Image(ImageCommand::Mount(a)) => done(images::mount(&store()?, a)),
        Command::Image(ImageCommand::Unmount(a)) => done(images::unmount(a)),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => {
            done(archive::load(&store()?, a))
        }
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => {
            done(archive::save(&store()?, a))
        }
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => {
            let name = a.reference.clone().unwrap_or_default();
            done(archive::import(&store()?, a))
                .inspect(|_| image_event(engine(), "import", &[name]))
        }
        Command::System(SystemCommand::Df(a)) => done(system::df(&engine()?, a)),
        Command::System(SystemCommand::Prune(a)) => done(system::prune(&engine()?, a)),
        Command::Build(a) | Command::Image(ImageCommand::Build(a)) => build::build(&engine()?, a),
        Command::Builder(BuilderCommand::Prune(a)) => done(build::prune(&engine()?, a)),
    }
}

/// Image events, for `capsa events` (the image store has no engine of its
/// own to log them): one per name, after the command succeeded.
fn image_event(engine: Result<Engine>, action: &str, names: &[String]) {
    let Ok(e) = engine else {
        return;
    };
    for n in names {
        capsa_engine::events::emit(
            &e,
            &capsa_engine::events::Event::new(
                capsa_engine::events::Kind::Image,
                action,
                n,
                &[("name", n.as_str())],
            ),
        );
    }
}
