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
    // runc's `-v`: three lines, parsed by engines and scripts.
    if let [_, flag] = &std::env::args().collect::<Vec<_>>()[..] {
        if flag == "-v" || flag == "--version" {
            print!("{}", cli::version_text());
            std::process::exit(0);
        }
    }
    // runc's answer to help on a command it does not have.
    if let Some(topic) = help_topic() {
        eprintln!("No help topic for '{topic}'");
        std::process::exit(3);
    }
    let mut cli = Cli::parse();
    // An fd handed over by number is checked open before this process
    // opens anything of its own: then the number is surely the caller's
    // (the checkpoint takes it over).
    if let Command::Checkpoint(a) = &cli.command {
        if let Some(fd) = a.criu.status_fd {
            if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
                eprintln!("invalid --status-fd argument {fd}: not an open file descriptor");
                std::process::exit(1);
            }
        }
    }
    // The global flags, where the commands take them.
    let (systemd, hardened) = (cli.systemd_cgroup, cli.hardened);
    match &mut cli.command {
        Command::Create(a) => (a.systemd_cgroup, a.hardened) = (systemd, hardened),
        Command::Run(a) => (a.create.systemd_cgroup, a.create.hardened) = (systemd, hardened),
        Command::Restore(a) => (a.systemd_cgroup, a.hardened) = (systemd, hardened),
        Command::Spec(a) => a.hardened = hardened,
        _ => {}
    }
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
    let root = state_root(&cli);
    if cli.root.is_none() && std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        if let Err(e) = private_fallback(&root) {
            logger.fatal(&anyhow::anyhow!("{e}"));
        }
    }
    let store = capsa_runtime::Store::new(root);
    let code = match commands::dispatch(&cli, &store, &logger) {
        Ok(code) => code,
        Err(e) => logger.fatal(&e),
    };
    std::process::exit(code);
}

/// The fallback state directory of a user without `XDG_RUNTIME_DIR` (in
/// the shared temporary directory): made 0700, or, when it exists, refused
/// unless it is a directory of ours that no one else can write.
///
/// Security: another user could make it first and plant a state.json whose
/// poststop hook runs as us on `delete`.
fn private_fallback(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => anyhow::bail!("state directory {}: {e}", dir.display()),
    }
    let m = std::fs::symlink_metadata(dir)?;
    let me = nix::unistd::geteuid().as_raw();
    if !m.is_dir() || m.uid() != me || m.mode() & 0o022 != 0 {
        anyhow::bail!(
            "state directory {}: not a directory of uid {me} that only it can write (owner {}, mode {:o}); refusing it (set XDG_RUNTIME_DIR or --root)",
            dir.display(),
            m.uid(),
            m.mode() & 0o7777
        );
    }
    Ok(())
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

/// With `-h`/`--help` given, the command asked about when it is not one of
/// ours (global flags and their values skipped).
fn help_topic() -> Option<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "-h" || a == "--help") {
        return None;
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if matches!(
            a.as_str(),
            "--root" | "--log" | "--log-format" | "--criu" | "--rootless"
        ) {
            it.next();
            continue;
        }
        if a.starts_with('-') {
            continue;
        }
        let known = <Cli as clap::CommandFactory>::command()
            .get_subcommands()
            .any(|c| c.get_name() == a);
        return (!known).then(|| a.clone());
    }
    None
}
