//! completion and the man pages: both from the command line's own
//! definition (clap_complete, clap_mangen), so they never drift from it.

use crate::cli::{Cli, CompletionArgs, ManArgs};
use anyhow::{Context, Result};
use clap::CommandFactory;

pub fn completion(a: CompletionArgs) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "capsa", &mut std::io::stdout());
    Ok(())
}

/// `capsa.1`, and `capsa-VERB[-VERB].1` for every command but the hidden.
pub fn man(a: ManArgs) -> Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    write(&a.dir, &cmd, "capsa")
}

fn write(dir: &std::path::Path, cmd: &clap::Command, name: &str) -> Result<()> {
    // After `build`, each subcommand's display name is its page's
    // (`capsa-volume-ls`), and what the page calls it.
    let name = cmd.get_display_name().unwrap_or(name).to_string();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .with_context(|| format!("rendering the man page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write(dir, sub, &format!("{name}-{}", sub.get_name()))?;
    }
    Ok(())
}
