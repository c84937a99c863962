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
    // Security: CVE-2019-5736. Commands that enter a container re-exec
    // through a read-only clone of this binary (or a sealed memfd copy), so
    // /proc/PID/exe inside the container cannot be written to.
    if matches!(
        cli.command,
        Command::Create(_) | Command::Run(_) | Command::Exec(_)
    ) && !capsa_sys::exe::running_protected()
    {
        if let Err(e) = reexec_sealed() {
            logger.fatal(&anyhow::anyhow!(
                "re-executing from a sealed copy of the runtime: {e}"
            ));
        }
    }
    let store = capsa_runtime::Store::new(state_root(&cli));
    let code = match commands::dispatch(&cli, &store, &logger) {
        Ok(code) => code,
        Err(e) => logger.fatal(&e),
    };
    std::process::exit(code);
}

fn reexec_sealed() -> std::result::Result<(), capsa_sys::Errno> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    // A read-only clone of the binary costs one execve; the memfd copy
    // (for when the new mount API is refused, as without privileges) also
    // copies the binary.
    let exe = match capsa_sys::exe::readonly_clone() {
        Ok(fd) => fd,
        Err(_) => capsa_sys::exe::sealed_copy()?,
    };
    let args: Vec<std::ffi::CString> = std::env::args_os()
        .filter_map(|a| std::ffi::CString::new(a.as_bytes()).ok())
        .collect();
    let env: Vec<std::ffi::CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut b = k.as_bytes().to_vec();
            b.push(b'=');
            b.extend_from_slice(v.as_bytes());
            std::ffi::CString::new(b).ok()
        })
        .collect();
    Err(capsa_sys::exe::exec_fd(exe.as_raw_fd(), &args, &env))
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
