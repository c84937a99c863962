//! Waiting for a container process in the foreground (`run`, `exec`
//! without `--detach`): signals we receive are forwarded to it, its pty (if
//! we hold the master) is proxied to our stdio, and its exit status becomes
//! ours.

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Signals we forward (everything catchable) plus SIGCHLD.
fn forwarded() -> SigSet {
    let mut s = SigSet::all();
    s.remove(Signal::SIGKILL);
    s.remove(Signal::SIGSTOP);
    s
}

/// Block the forwarded signals so they queue for the signalfd. Call before
/// the container process exists so that none is lost; the process unblocks
/// them itself before execve.
pub fn block_signals() {
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded()), None);
}

fn exit_code(s: WaitStatus) -> Option<i32> {
    match s {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// As runc's own foreground terminal: no "\n" to "\r\n" on the pty's
/// output, so that what the process writes reaches our stdout byte for
/// byte (runc does this only where it relays the terminal itself; a
/// console socket's owner decides for its own).
pub fn clear_onlcr(master: &OwnedFd) {
    use nix::sys::termios::{tcgetattr, tcsetattr, OutputFlags, SetArg};
    if let Ok(mut t) = tcgetattr(master) {
        t.output_flags.remove(OutputFlags::ONLCR);
        let _ = tcsetattr(master, SetArg::TCSANOW, &t);
    }
}

/// Wait for `pid` (our child, or reparented to us as subreaper), forwarding
/// signals and proxying `console`. Returns the exit code as a shell reports
/// it (128 + signal when killed).
pub fn wait(pid: i32, console: Option<OwnedFd>) -> i32 {
    let sfd =
        match SignalFd::with_flags(&forwarded(), SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
            Ok(s) => s,
            Err(_) => return plain_wait(pid),
        };
    let target = Pid::from_raw(pid);
    let _raw = console.as_ref().and_then(|_| RawMode::enter());
    if let Some(m) = &console {
        if let Ok((r, c)) = capsa_sys::fd::window_size(0) {
            let _ = capsa_sys::fd::set_window_size(m.as_raw_fd(), r, c);
        }
    }
    let stdin_handle = std::io::stdin();
    let stdin = stdin_handle.as_fd();
    let mut stdin_open = console.is_some();
    let mut code = None;
    let mut master_open = console.is_some();
    // Reap anything that exited before we started listening.
    reap(target, &mut code);
    while code.is_none() || master_open {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = &console {
            if master_open {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            }
            if stdin_open && code.is_none() {
                fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            }
        }
        // Once the process exited, drain the pty briefly, then stop.
        let timeout = if code.is_some() {
            PollTimeout::from(100u8)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Err(Errno::EINTR) => continue,
            Err(_) => break,
            Ok(0) => break,
            Ok(_) => {}
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, master_ready, stdin_ready) = (
            ready(0),
            master_open && ready(1),
            stdin_open && code.is_none() && ready(if master_open { 2 } else { 1 }),
        );
        drop(fds);
        if sig_ready {
            while let Ok(Some(info)) = sfd.read_signal() {
                let signo = info.ssi_signo as i32;
                if signo == libc::SIGCHLD {
                    reap(target, &mut code);
                } else if signo == libc::SIGWINCH {
                    if let (Some(m), Ok((r, c))) = (&console, capsa_sys::fd::window_size(0)) {
                        let _ = capsa_sys::fd::set_window_size(m.as_raw_fd(), r, c);
                    }
                } else if code.is_none() {
                    let _ = nix::sys::signal::kill(target, Signal::try_from(signo).ok());
                }
            }
        }
        if let Some(m) = &console {
            if master_ready && !copy(m.as_fd(), std::io::stdout().as_fd()) {
                master_open = false;
            }
            if stdin_ready && !copy(stdin, m.as_fd()) {
                stdin_open = false;
            }
        }
    }
    code.unwrap_or_else(|| plain_wait(pid))
}

fn reap(target: Pid, code: &mut Option<i32>) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(s) => {
                if s.pid() == Some(target) {
                    if let Some(c) = exit_code(s) {
                        *code = Some(c);
                    }
                }
            }
        }
    }
}

fn plain_wait(pid: i32) -> i32 {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Err(Errno::EINTR) => continue,
            Ok(s) => {
                if let Some(c) = exit_code(s) {
                    return c;
                }
            }
            Err(_) => return 255,
        }
    }
}

/// Copy what is available from `from` to `to`; false at end of stream.
fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8192];
    match nix::unistd::read(from.as_raw_fd(), &mut buf) {
        Ok(0) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match nix::unistd::write(to, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(Errno::EINTR | Errno::EAGAIN) => continue,
                    Err(_) => return false,
                }
            }
            true
        }
        Err(Errno::EINTR | Errno::EAGAIN) => true,
        // EIO: every slave fd is closed.
        Err(_) => false,
    }
}

/// Our terminal in raw mode while we proxy a container's pty; restored on
/// drop.
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let orig = nix::sys::termios::tcgetattr(&stdin).ok()?;
        let mut raw = orig.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(orig))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}
