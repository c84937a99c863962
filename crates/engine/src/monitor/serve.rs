//! The monitor's loop once the container runs: its output to the log and
//! to every client, client input to it, until its init exits and its
//! output is drained.

use crate::logs;
use crate::protocol::{self, poll_in, FromMonitor, ToMonitor};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The container's stdio as the monitor holds it.
pub(super) struct Stdio {
    /// What the monitor reads: stdout (or the pty master) and stderr.
    pub out: Option<OwnedFd>,
    pub err: Option<OwnedFd>,
    /// Where client input goes: the stdin pipe, or the pty master.
    pub input: Option<OwnedFd>,
    pub tty: bool,
}

fn exit_code(s: WaitStatus) -> Option<i32> {
    match s {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// The monitor's loop: output to the log and to clients, input from
/// clients, until the init exits and its output is drained. Returns the
/// exit code.
pub(super) fn serve(
    pid: i32,
    listener: &OwnedFd,
    clients: &mut Vec<OwnedFd>,
    stdio: &mut Stdio,
    log: &std::path::Path,
) -> i32 {
    let mut log = logs::Writer::open(log);
    let pidfd = capsa_sys::process::pidfd_open(Pid::from_raw(pid)).ok();
    let mut code: Option<i32> = None;
    let mut drain_until: Option<Instant> = None;
    let mut buf = vec![0u8; protocol::MAX];
    loop {
        // Reap: the init (our child, or reparented to us) and any orphan.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(s) => {
                    if s.pid() == Some(Pid::from_raw(pid)) {
                        code = exit_code(s).or(code);
                    }
                }
            }
        }
        if code.is_some() && drain_until.is_none() {
            drain_until =
                Some(Instant::now() + Duration::from_millis(if stdio.tty { 100 } else { 2000 }));
        }
        let outputs_open = stdio.out.is_some() || stdio.err.is_some();
        if let Some(d) = drain_until {
            if !outputs_open || Instant::now() >= d {
                break;
            }
        }
        let mut fds: Vec<std::os::fd::BorrowedFd<'_>> = vec![listener.as_fd()];
        if let Some(p) = pidfd.as_ref().filter(|_| code.is_none()) {
            fds.push(p.as_fd());
        }
        let out_slot = stdio.out.as_ref().map(|f| {
            fds.push(f.as_fd());
            fds.len() - 1
        });
        let err_slot = stdio.err.as_ref().map(|f| {
            fds.push(f.as_fd());
            fds.len() - 1
        });
        let first_client = fds.len();
        for cl in clients.iter() {
            fds.push(cl.as_fd());
        }
        let timeout = if drain_until.is_some() || pidfd.is_none() {
            50
        } else {
            -1
        };
        let ready = poll_in(&fds, timeout);
        drop(fds);
        if ready[0] {
            while let Ok(cl) = rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC)
            {
                clients.push(cl);
            }
        }
        for (slot, stream) in [(out_slot, 0usize), (err_slot, 1usize)] {
            let Some(i) = slot else { continue };
            if !ready[i] {
                continue;
            }
            let fd = if stream == 0 {
                stdio.out.as_ref()
            } else {
                stdio.err.as_ref()
            };
            let Some(fd) = fd else { continue };
            // Room for the frame's two header bytes.
            match rustix::io::read(fd, &mut buf[..protocol::MAX - 2]) {
                Ok(0) | Err(rustix::io::Errno::IO) => {
                    if stream == 0 {
                        stdio.out = None;
                    } else {
                        stdio.err = None;
                    }
                }
                Ok(n) => {
                    log.write(stream, &buf[..n]);
                    let m = if stream == 0 {
                        FromMonitor::Stdout(buf[..n].to_vec())
                    } else {
                        FromMonitor::Stderr(buf[..n].to_vec())
                    };
                    clients.retain(|cl| protocol::send(cl, &m).is_ok());
                }
                Err(_) => {}
            }
        }
        let mut i = 0;
        let mut idx = first_client;
        while i < clients.len() {
            let is_ready = ready.get(idx).copied().unwrap_or(false);
            idx += 1;
            if !is_ready {
                i += 1;
                continue;
            }
            match protocol::recv::<ToMonitor>(&clients[i], &mut buf) {
                Ok(Some(m)) => {
                    // Signals go to the init's pidfd, and never once it
                    // was reaped (its pid may name another process by now).
                    let target = pidfd.as_ref().filter(|_| code.is_none());
                    handle(m, target, stdio);
                    i += 1;
                }
                _ => {
                    clients.remove(i);
                }
            }
        }
    }
    log.flush();
    code.unwrap_or(255)
}

/// A client's message.
pub(super) fn handle(m: ToMonitor, init: Option<&OwnedFd>, stdio: &mut Stdio) {
    match m {
        ToMonitor::Stdin(data) => {
            if let Some(input) = &stdio.input {
                let mut off = 0;
                while off < data.len() {
                    match rustix::io::write(input, &data[off..]) {
                        Ok(n) => off += n,
                        Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => continue,
                        Err(_) => break,
                    }
                }
            }
        }
        // A pipe closes; a pty gets its EOF character from the client.
        ToMonitor::StdinEof if !stdio.tty => stdio.input = None,
        ToMonitor::Resize { rows, cols } => {
            if let Some(m) = &stdio.out {
                let _ = capsa_sys::fd::set_window_size(m.as_raw_fd(), rows, cols);
            }
        }
        ToMonitor::Signal(sig) => {
            if let (Ok(_), Some(fd)) = (nix::sys::signal::Signal::try_from(sig), init) {
                let _ = capsa_sys::process::pidfd_send_signal(fd.as_raw_fd(), sig);
            }
        }
        _ => {}
    }
}
