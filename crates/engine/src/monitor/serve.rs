//! The monitor's loop once the container runs: its output to the log and
//! to every client, client input to it, until its init exits and its
//! output is drained.

use super::clients::Clients;
use crate::logs;
use crate::protocol::{self, poll, FromMonitor, ToMonitor};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use rustix::event::PollFlags;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// The container's stdio as the monitor holds it.
pub(super) struct Stdio {
    /// What the monitor reads: stdout (or the pty master) and stderr.
    pub out: Option<OwnedFd>,
    pub err: Option<OwnedFd>,
    /// Where client input goes: the stdin pipe, or the pty master.
    pub input: Option<OwnedFd>,
    pub tty: bool,
    /// Client input the container has not read yet.
    pub pending: Vec<u8>,
    /// A client's stdin ended: close the pipe once `pending` is written.
    pub eof: bool,
}

impl Stdio {
    pub fn new(tty: bool) -> Stdio {
        Stdio {
            out: None,
            err: None,
            input: None,
            tty,
            pending: Vec::new(),
            eof: false,
        }
    }

    /// Write what input is pending, as far as the container reads it.
    /// Never waits: a container that does not read its stdin must not
    /// stop the monitor.
    fn write_input(&mut self) {
        let Some(input) = &self.input else {
            self.pending.clear();
            return;
        };
        let mut off = 0;
        let mut gone = false;
        while off < self.pending.len() {
            match rustix::io::write(input, &self.pending[off..]) {
                Ok(n) => off += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => break,
                Err(_) => {
                    // The container closed its stdin: drop what it
                    // will never read.
                    off = self.pending.len();
                    gone = true;
                }
            }
        }
        self.pending.drain(..off);
        if gone {
            self.input = None;
        }
        if self.eof && self.pending.is_empty() {
            self.input = None;
        }
    }
}

/// Client input held back past this: clients are not read until the
/// container takes some.
pub(super) const INPUT_LIMIT: usize = 1 << 20;

/// Add `f` (if any) to the poll set: its index there.
fn slot<'a>(
    fds: &mut Vec<BorrowedFd<'a>>,
    flags: &mut Vec<PollFlags>,
    f: Option<BorrowedFd<'a>>,
    fl: PollFlags,
) -> Option<usize> {
    let f = f?;
    fds.push(f);
    flags.push(fl);
    Some(fds.len() - 1)
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
    clients: &mut Clients,
    stdio: &mut Stdio,
    log: &std::path::Path,
    mut health: Option<super::health::Checker>,
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
        // The drain's clock runs from the exit, or from when a primary
        // client last held the output back: what is still in the pipe
        // goes to it and to the log, however slowly it reads.
        if code.is_some() && (drain_until.is_none() || clients.backlogged()) {
            drain_until =
                Some(Instant::now() + Duration::from_millis(if stdio.tty { 100 } else { 2000 }));
        }
        let outputs_open = stdio.out.is_some() || stdio.err.is_some();
        if let Some(d) = drain_until {
            if !outputs_open || Instant::now() >= d {
                break;
            }
        }
        let mut fds: Vec<BorrowedFd<'_>> = vec![listener.as_fd()];
        let mut flags = vec![PollFlags::IN];
        if let Some(p) = pidfd.as_ref().filter(|_| code.is_none()) {
            fds.push(p.as_fd());
            flags.push(PollFlags::IN);
        }
        // A primary client that cannot keep up holds the output back.
        let reading = !clients.backlogged();
        let out_slot = slot(
            &mut fds,
            &mut flags,
            stdio.out.as_ref().filter(|_| reading).map(AsFd::as_fd),
            PollFlags::IN,
        );
        let err_slot = slot(
            &mut fds,
            &mut flags,
            stdio.err.as_ref().filter(|_| reading).map(AsFd::as_fd),
            PollFlags::IN,
        );
        let input_slot = slot(
            &mut fds,
            &mut flags,
            stdio
                .input
                .as_ref()
                .filter(|_| !stdio.pending.is_empty())
                .map(AsFd::as_fd),
            PollFlags::OUT,
        );
        // Input the container has not taken holds the clients back.
        let listening = stdio.pending.len() < INPUT_LIMIT;
        // Probes run while the container does.
        if code.is_some() {
            health = None;
        }
        let health_slot = slot(
            &mut fds,
            &mut flags,
            health.as_ref().and_then(|h| h.fd()),
            PollFlags::IN,
        );
        let first_client = fds.len();
        let polled: Vec<u64> = clients.list.iter().map(|c| c.id).collect();
        for cl in &clients.list {
            let mut fl = PollFlags::empty();
            if listening {
                fl |= PollFlags::IN;
            }
            if cl.pending() {
                fl |= PollFlags::OUT;
            }
            fds.push(cl.fd.as_fd());
            flags.push(fl);
        }
        let timeout = if drain_until.is_some() || pidfd.is_none() {
            50
        } else {
            health.as_ref().map_or(-1, |h| h.timeout_ms())
        };
        let events = poll(&fds, &flags, timeout);
        drop(fds);
        let ready: Vec<bool> = events.iter().map(|e| !e.is_empty()).collect();
        // The probe's report (when `health_slot` is ready) or its timer.
        let _ = health_slot;
        if let Some(h) = &mut health {
            h.tick();
        }
        if ready[0] {
            while let Ok(cl) = rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC)
            {
                clients.add(cl);
            }
        }
        if input_slot.is_some_and(|i| ready[i]) {
            stdio.write_input();
        }
        clients.flush();
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
                    clients.broadcast(&m);
                }
                Err(_) => {}
            }
        }
        // A client that hung up or failed goes, whether or not it was
        // read this round (else poll reports it at once, forever).
        let gone: Vec<u64> = polled
            .iter()
            .zip(&events[first_client..])
            .filter(|(_, e)| {
                e.intersects(PollFlags::ERR | PollFlags::NVAL)
                    || (!listening && e.contains(PollFlags::HUP))
            })
            .map(|(id, _)| *id)
            .collect();
        clients.list.retain(|c| !gone.contains(&c.id));
        // Clients by id: flushing and broadcasting may have dropped some.
        let readable: Vec<u64> = polled
            .iter()
            .zip(&ready[first_client..])
            .filter(|(_, r)| **r)
            .map(|(id, _)| *id)
            .collect();
        for id in readable.into_iter().filter(|_| listening) {
            let Some(i) = clients.list.iter().position(|c| c.id == id) else {
                continue;
            };
            match protocol::recv::<ToMonitor>(&clients.list[i].fd, &mut buf) {
                Ok(Some(m)) => {
                    // Signals go to the init's pidfd, and never once it
                    // was reaped (its pid may name another process by now).
                    let target = pidfd.as_ref().filter(|_| code.is_none());
                    handle(m, target, stdio);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                _ => {
                    clients.list.remove(i);
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
        ToMonitor::Stdin(data) if stdio.input.is_some() && !stdio.eof => {
            stdio.pending.extend_from_slice(&data);
            stdio.write_input();
        }
        // A pipe closes; a pty gets its EOF character from the client.
        ToMonitor::StdinEof if !stdio.tty => {
            stdio.eof = true;
            stdio.write_input();
        }
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
