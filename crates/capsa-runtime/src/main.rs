//! `capsa-runtime`: an OCI runtime with runc's command line, so that
//! containerd, CRI-O, podman and docker can call it in place of runc.
//!
//! Thin by design: parse arguments, call the runtime library, print, and
//! choose the exit code. One module per command under `commands/`.

mod cli;
mod commands;
mod log;

use clap::Parser;
use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let logger = match log::Logger::open(cli.log.as_deref(), cli.log_format, cli.debug) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "capsa-runtime: --log {}: {e}",
                cli.log
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
            std::process::exit(1);
        }
    };
    if cli.systemd_cgroup && !std::path::Path::new("/run/systemd/system").exists() {
        logger.fatal(&anyhow::anyhow!("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); use cgroupfs paths instead"));
    }
    // Commands that put a process into a container pass the door: this
    // process runs from a sealed image of its binary (CVE-2019-5736).
    if matches!(
        cli.command,
        Command::Create(_) | Command::Run(_) | Command::Exec(_)
    ) {
        if let Err(e) = capsa_runtime::door::seal() {
            logger.fatal(&anyhow::anyhow!("{e}"));
        }
    }
    let store = capsa_runtime::Store::new(state_root(&cli));
    let code = match commands::dispatch(&cli, &store, &logger) {
        Ok(code) => code,
        Err(e) => logger.fatal(&e),
    };
    std::process::exit(code);
}

/// `--root`, else runc's defaults: /run for root, the user's runtime
/// directory otherwise.
fn state_root(cli: &Cli) -> std::path::PathBuf {
    if let Some(r) = &cli.root {
        return r.clone();
    }
    if nix::unistd::geteuid().is_root() {
        return "/run/capsa-runtime".into();
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => std::path::PathBuf::from(d).join("capsa-runtime"),
        None => std::env::temp_dir().join(format!("capsa-runtime-{}", nix::unistd::geteuid())),
    }
}
