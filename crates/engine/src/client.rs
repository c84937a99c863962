//! The client side of attach: what `capsa run` (without -d) and `capsa
//! attach` do. Output from the monitor goes to our stdout/stderr; our stdin
//! (with -i), window size and signals go to the monitor. Ctrl-P Ctrl-Q
//! detaches (with a tty), leaving the container running.

use crate::error::{Error, Result};
use crate::protocol::{self, FromMonitor, ToMonitor};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsFd, OwnedFd};

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The container exited with this code.
    Exited(i32),
    /// The user detached (Ctrl-P Ctrl-Q).
    Detached,
}

fn forwarded() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        s.add(sig);
    }
    s
}

/// Connect to the container's monitor.
pub fn connect(engine: &crate::Engine, c: &crate::Container) -> Result<OwnedFd> {
    protocol::connect(&engine.socket(c))
        .map_err(|e| Error::Conflict(format!("cannot attach to {}: {e} (is it running?)", c.name)))
}

/// Ask a monitor waiting for us to start the container; returns its pid.
pub fn start(sock: &OwnedFd) -> Result<i32> {
    protocol::send(sock, &ToMonitor::Start).map_err(|e| Error::sys("send", "the monitor", e))?;
    started(sock)
}

/// Wait until the start asked for on `sock` is done; returns the pid.
pub fn started(sock: &OwnedFd) -> Result<i32> {
    let mut buf = vec![0u8; protocol::MAX];
    loop {
        match protocol::recv::<FromMonitor>(sock, &mut buf)
            .map_err(|e| Error::Protocol(format!("the monitor: {e}")))?
        {
            Some(FromMonitor::Started { pid }) => return Ok(pid),
            Some(FromMonitor::Failed(f)) => return Err(f.into()),
            Some(_) => continue,
            None => {
                return Err(Error::Protocol(
                    "the monitor closed the connection before the start".into(),
                ))
            }
        }
    }
}

/// Tell the monitor our window size (for a tty).
pub fn send_size(sock: &OwnedFd) {
    if let Ok((rows, cols)) = capsa_sys::fd::window_size(0) {
        let _ = protocol::send(sock, &ToMonitor::Resize { rows, cols });
    }
}

fn write_all(fd: std::os::fd::BorrowedFd<'_>, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        match rustix::io::write(fd, &data[off..]) {
            Ok(n) => off += n,
            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => continue,
            Err(_) => return,
        }
    }
}

/// Proxy a session until the container exits or we detach (with a tty,
/// by `keys`).
pub fn session(sock: &OwnedFd, interactive: bool, tty: bool, keys: &DetachKeys) -> Result<Ended> {
    session_with(
        sock,
        interactive,
        tty,
        keys,
        std::io::stdout().as_fd(),
        std::io::stderr().as_fd(),
    )
}

/// The keys that detach a client from a container with a tty: docker's
/// `--detach-keys` (`ctrl-p,ctrl-q` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys(Vec<u8>);

impl Default for DetachKeys {
    fn default() -> Self {
        DetachKeys(vec![0x10, 0x11])
    }
}

impl DetachKeys {
    /// docker's spelling: comma-separated `a`..`z` (and other single
    /// characters) and `ctrl-a`..`ctrl-z`, `ctrl-@`, `ctrl-[`, `ctrl-\`,
    /// `ctrl-]`, `ctrl-^`, `ctrl-_`.
    pub fn parse(text: &str) -> Result<DetachKeys> {
        let bad = |k: &str| {
            crate::error::flag(
                "--detach-keys",
                format!("{k:?}: a character or ctrl-<letter>, comma-separated"),
            )
        };
        let mut out = Vec::new();
        for k in text.split(',') {
            let b = match k.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => {
                    let c = c.as_bytes()[0].to_ascii_lowercase();
                    match c {
                        b'a'..=b'z' => c - b'a' + 1,
                        b'@' => 0,
                        b'[' => 27,
                        b'\\' => 28,
                        b']' => 29,
                        b'^' => 30,
                        b'_' => 31,
                        _ => return Err(bad(k)),
                    }
                }
                None if k.len() == 1 && k.as_bytes()[0].is_ascii_graphic() => k.as_bytes()[0],
                _ => return Err(bad(k)),
            };
            out.push(b);
        }
        Ok(DetachKeys(out))
    }
}

/// As [`session`], the container's output going to `out` and `err`
/// (`capsa build` sends a step's output to its stderr: its stdout is for
/// the image id alone).
pub fn session_with(
    sock: &OwnedFd,
    interactive: bool,
    tty: bool,
    keys: &DetachKeys,
    out: std::os::fd::BorrowedFd<'_>,
    err: std::os::fd::BorrowedFd<'_>,
) -> Result<Ended> {
    let mut old = SigSet::empty();
    let _ =
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded()), Some(&mut old));
    // The caller's mask again when the session ends: a command that goes
    // on after it (`capsa build`) answers Ctrl-C itself between steps.
    let _restore = RestoreMask(old);
    let sfd = SignalFd::with_flags(&forwarded(), SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| Error::sys("signalfd", "the forwarded signals", e))?;
    let stdin_handle = std::io::stdin();
    let stdin = stdin_handle.as_fd();
    let is_term = rustix::termios::isatty(stdin);
    let _raw = if tty && interactive && is_term {
        RawMode::enter()
    } else {
        None
    };
    if tty {
        send_size(sock);
    }
    let mut stdin_open = interactive;
    let mut buf = vec![0u8; protocol::MAX];
    // How much of the detach sequence the last bytes typed.
    let mut matched = 0usize;
    // Frames for the monitor that its socket could not take yet. While
    // any wait, stdin is not read but output still is: a monitor that
    // waits for the container to read its input, while the container
    // waits for us to read its output, must not find us stuck in a send.
    let mut outgoing: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let queue = |out: &mut std::collections::VecDeque<Vec<u8>>, m: &ToMonitor| {
        out.push_back(protocol::Frame::encode(m));
    };
    loop {
        while let Some(f) = outgoing.front() {
            match rustix::net::send(
                sock,
                f,
                rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
            ) {
                Ok(_) => {
                    outgoing.pop_front();
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => return Err(Error::sys("send", "the monitor", e)),
            }
        }
        let sock_events = if outgoing.is_empty() {
            rustix::event::PollFlags::IN
        } else {
            rustix::event::PollFlags::IN | rustix::event::PollFlags::OUT
        };
        let mut fds = vec![
            rustix::event::PollFd::new(sock, sock_events),
            rustix::event::PollFd::from_borrowed_fd(sfd.as_fd(), rustix::event::PollFlags::IN),
        ];
        if stdin_open && outgoing.is_empty() {
            fds.push(rustix::event::PollFd::from_borrowed_fd(
                stdin,
                rustix::event::PollFlags::IN,
            ));
        }
        match rustix::event::poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::sys("poll", "the session", e)),
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        let readable = fds[0].revents().intersects(
            rustix::event::PollFlags::IN
                | rustix::event::PollFlags::HUP
                | rustix::event::PollFlags::ERR,
        );
        drop(fds);
        if readable {
            match protocol::recv::<FromMonitor>(sock, &mut buf)
                .map_err(|e| Error::Protocol(format!("the monitor: {e}")))?
            {
                Some(FromMonitor::Stdout(b)) => write_all(out, &b),
                Some(FromMonitor::Stderr(b)) => write_all(err, &b),
                Some(FromMonitor::Exit(code)) => return Ok(Ended::Exited(code)),
                Some(FromMonitor::Failed(f)) => return Err(f.into()),
                Some(FromMonitor::Started { .. }) => {}
                None => {
                    return Err(Error::Protocol(
                        "the monitor went away without an exit code".into(),
                    ))
                }
            }
        }
        if ready[1] {
            while let Ok(Some(info)) = sfd.read_signal() {
                let signo = info.ssi_signo as i32;
                if signo == libc::SIGWINCH {
                    if let Ok((rows, cols)) = capsa_sys::fd::window_size(0) {
                        queue(&mut outgoing, &ToMonitor::Resize { rows, cols });
                    }
                } else {
                    queue(&mut outgoing, &ToMonitor::Signal(signo));
                }
            }
        }
        if stdin_open && outgoing.is_empty() && ready.get(2).copied().unwrap_or(false) {
            // Room for the frame's two header bytes.
            match rustix::io::read(stdin, &mut buf[..protocol::MAX - 2]) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    queue(&mut outgoing, &ToMonitor::StdinEof);
                }
                Ok(n) => {
                    let data = buf[..n].to_vec();
                    if tty && !keys.0.is_empty() {
                        // The detach keys (Ctrl-P Ctrl-Q unless told), as
                        // in docker.
                        for b in &data {
                            matched = if *b == keys.0[matched] {
                                matched + 1
                            } else {
                                usize::from(*b == keys.0[0])
                            };
                            if matched == keys.0.len() {
                                return Ok(Ended::Detached);
                            }
                        }
                    }
                    queue(&mut outgoing, &ToMonitor::Stdin(data));
                }
            }
        }
    }
}

/// A signal mask to set again on drop.
struct RestoreMask(SigSet);

impl Drop for RestoreMask {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.0), None);
    }
}

/// Our terminal in raw mode for a tty session; restored on drop.
struct RawMode(rustix::termios::Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        let fd = std::io::stdin();
        let orig = rustix::termios::tcgetattr(&fd).ok()?;
        let mut raw = orig.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawMode(orig))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::DetachKeys;

    #[test]
    fn detach_keys_read_as_docker_writes_them() {
        assert_eq!(
            DetachKeys::parse("ctrl-p,ctrl-q").unwrap(),
            DetachKeys::default()
        );
        assert_eq!(DetachKeys::parse("ctrl-a,x").unwrap().0, vec![1, b'x']);
        assert_eq!(DetachKeys::parse("ctrl-\\").unwrap().0, vec![28]);
        for bad in ["ctrl-", "ctrl-pp", "", "ab"] {
            let e = DetachKeys::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("--detach-keys"), "{bad}: {e}");
        }
    }
}
