use crate::cli::ExecArgs;
use crate::log::Logger;
use anyhow::{anyhow, bail, Context};
use capsa_runtime::foreground;
use capsa_runtime::Store;
use capsa_spec::ProcessPlan;

/// The process to exec: `--process FILE`, or the container's own process
/// with the command line's overrides (as runc builds it).
fn process(store: &Store, a: &ExecArgs) -> anyhow::Result<ProcessPlan> {
    if let Some(f) = &a.process {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let p = capsa_spec::parse_process(f, &bytes)?;
        return Ok(ProcessPlan::from_oci(&p, "process")?);
    }
    if a.command.is_empty() {
        bail!("exec: a command or --process is required");
    }
    let mut o = capsa_runtime::Overrides {
        args: a.command.clone(),
        terminal: a.tty,
        env: a.env.clone(),
        cwd: a.cwd.clone(),
        additional_gids: (!a.additional_gids.is_empty()).then(|| a.additional_gids.clone()),
        no_new_privileges: a.no_new_privs,
        ..Default::default()
    };
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, ""));
        let bad = || anyhow!("--user {u:?}: expected UID[:GID]");
        o.uid = Some(uid.parse().map_err(|_| bad())?);
        if !gid.is_empty() {
            o.gid = Some(gid.parse().map_err(|_| bad())?);
        }
    }
    for c in &a.cap {
        o.caps.push(
            capsa_spec::caps::number(c)
                .ok_or_else(|| anyhow!("--cap {c:?}: unknown capability"))?,
        );
    }
    Ok(capsa_runtime::process_with(store, &a.id, &o)?)
}

/// As runc: an exec that cannot start exits 255, so that the caller can
/// tell it from the exit code of a process that ran.
pub fn run(store: &Store, a: &ExecArgs, log: &Logger) -> anyhow::Result<i32> {
    match start(store, a, log) {
        Ok(code) => Ok(code),
        Err(e) => {
            log.report(&e);
            Ok(255)
        }
    }
}

fn start(store: &Store, a: &ExecArgs, log: &Logger) -> anyhow::Result<i32> {
    let p = process(store, a)?;
    if p.terminal && a.detach && a.console_socket.is_none() {
        bail!("cannot allocate tty if capsa-runtime will detach without setting console socket");
    }
    // Connected first: a socket that is not there fails the exec before
    // anything runs.
    let pidfd_sock = match &a.pidfd_socket {
        Some(path) => Some(
            std::os::unix::net::UnixStream::connect(path)
                .with_context(|| format!("--pidfd-socket {}", path.display()))?,
        ),
        None => None,
    };
    // Our child (we reap it, or leave it unreaped as we exit): its pid
    // cannot go to another process before the pidfd is opened.
    if !a.detach || pidfd_sock.is_some() {
        capsa_sys::process::set_child_subreaper().ok();
    }
    if !a.detach {
        foreground::block_signals();
    }
    let opts = capsa_runtime::ExecOptions {
        id: a.id.clone(),
        process: p,
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        cgroups: a.cgroups.clone(),
    };
    // runc's debug words lead these lines: tools grep for them.
    log.debug(&format!(
        "nsexec container setup: exec in {}, joining its namespaces and cgroup",
        a.id
    ));
    let e = capsa_runtime::exec(store, &opts)?;
    log.debug(&format!(
        "child process in init(): pid {} joined {}; setns_init: about to exec {}",
        e.pid,
        a.id,
        opts.process.args.first().map(String::as_str).unwrap_or("")
    ));
    if let Some(sock) = &pidfd_sock {
        let sent = capsa_sys::process::pidfd_open(nix::unistd::Pid::from_raw(e.pid))
            .with_context(|| format!("pidfd_open {}", e.pid))
            .and_then(|pidfd| {
                capsa_sys::fd::send_with_fd(
                    std::os::fd::AsFd::as_fd(sock),
                    b"pidfd",
                    Some(std::os::fd::AsRawFd::as_raw_fd(&pidfd)),
                )
                .context("--pidfd-socket: send")
            });
        if let Err(err) = sent {
            // Failed exec: its process is not left running, unwatched.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(e.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err(err);
        }
    }
    if a.detach {
        return Ok(0);
    }
    Ok(foreground::wait(e.pid, e.console))
}
