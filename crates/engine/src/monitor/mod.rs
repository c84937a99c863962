//! The monitor: one small process per running container, in place of a
//! daemon. It is the container's parent and subreaper, holds its stdio (or
//! pty), writes the json-file log, serves `attach`, records the exit code
//! and time, and removes a `--rm` container. It outlives the `capsa`
//! command that started it (double fork, new session). It is started
//! before the container is prepared, and told which one over its first
//! connection (see [`Ready`]).
//!
//! ```text
//! capsa run ──fork──> child ──setsid, fork──> monitor ──fork──> create child ──> init
//!    │  <── report pipe: Report::Created ──────┘   │  <── Created (+ pty) ──┘
//!    └── socketpair: ToMonitor (Hello, Start, input) / FromMonitor (output, Exit)
//! ```
//!
//! Every message is of [`crate::protocol`]. The rooms: this module starts
//! the monitor and hands it its container; `create` makes the container
//! in a child; `run` starts it and waits; `serve` relays stdio and
//! clients until the exit.

mod clients;
mod create;
mod health;
mod run;
mod serve;

use crate::container::{Container, Status};
use crate::error::{Error, Result};
use crate::protocol::{self, Frame, Hello, Report, ToMonitor};
use crate::Engine;
use capsa_sys::process::Forked;
use nix::sys::wait::waitpid;
use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// What the monitor reported once the container existed.
#[derive(Debug, Clone)]
pub struct Spawned {
    pub monitor_pid: i32,
    pub pid: i32,
    /// The create steps and their cost (runtime and init).
    pub trace: Vec<String>,
}

/// A monitor started ahead of its container: it execs and opens the store
/// while the command is still preparing the container (image, overlay,
/// spec), then waits for [`Ready::go`]. Dropped without `go`, it exits
/// having made nothing.
pub struct Ready {
    /// Our end of the monitor's first attach connection.
    sock: OwnedFd,
    /// The monitor's one-line report: created (pid, trace) or why not.
    report: OwnedFd,
}

/// Start a monitor for a container still to be named (see [`Ready`]).
/// `exe` is the monitor binary; without it a fork of this process serves.
///
/// The caller must be single-threaded (it forks).
#[allow(unsafe_code)] // fork: see the SAFETY notes
pub fn prespawn(engine: &Engine, exe: Option<&std::path::Path>) -> Result<Ready> {
    let (r, w) = pipe()?;
    let (sock, theirs) = seqpacket_pair()?;
    // SAFETY: `prespawn`'s caller is single-threaded (its contract).
    match unsafe { capsa_sys::process::fork() }.map_err(|e| Error::sys("fork", "monitor", e))? {
        Forked::Child => {
            drop((r, sock));
            let _ = rustix::process::setsid();
            // SAFETY: a fork of a single-threaded process is one too.
            match unsafe { capsa_sys::process::fork() } {
                // A fresh image of the binary: the monitor then holds only
                // the pages it uses, not those of the command that forked
                // it. The image is sealed, since the monitor forks the
                // container's init (the door, CVE-2019-5736); without a
                // monitor binary, this one serves.
                Ok(Forked::Child) => {
                    let exe = exe.unwrap_or(std::path::Path::new("/proc/self/exe"));
                    let _ = capsa_sys::fd::set_cloexec(w.as_raw_fd(), false);
                    let _ = capsa_sys::fd::set_cloexec(theirs.as_raw_fd(), false);
                    let args: Vec<std::ffi::CString> = [
                        std::ffi::OsStr::new("capsa-monitor"),
                        std::ffi::OsStr::new(MONITOR_ARG),
                        engine.root.as_os_str(),
                        engine.run.as_os_str(),
                        std::ffi::OsStr::new(&theirs.as_raw_fd().to_string()),
                        std::ffi::OsStr::new(&w.as_raw_fd().to_string()),
                    ]
                    .iter()
                    .filter_map(|a| std::ffi::CString::new(a.as_encoded_bytes()).ok())
                    .collect();
                    let err = capsa_runtime::door::exec_sealed(exe, &args);
                    report(
                        &mut Some(w),
                        &Report::Failed(
                            Error::Protocol(format!("exec {}: {err}", exe.display())).failure(),
                        ),
                    );
                    capsa_sys::process::exit_now(1)
                }
                _ => capsa_sys::process::exit_now(0),
            }
        }
        Forked::Parent(child) => {
            drop((w, theirs));
            let _ = waitpid(child, None);
            Ok(Ready { sock, report: r })
        }
    }
}

impl Ready {
    /// Hand the monitor container `c` to create. With `attach_first`, the
    /// start is asked for at once on the connection returned (no output
    /// is missed; the caller waits for it with [`crate::client::started`]);
    /// otherwise the container is started before this returns.
    pub fn go(self, c: &Container, attach_first: bool) -> Result<(Spawned, OwnedFd)> {
        let hello = ToMonitor::Hello(Hello {
            id: c.id.clone(),
            attach: attach_first,
            interactive: c.options.interactive,
        });
        let sent = protocol::send(&self.sock, &hello);
        if sent.is_ok() && attach_first {
            // The window size before the start, so the program sees it
            // from its first instruction.
            if c.options.tty {
                crate::client::send_size(&self.sock);
            }
            let _ = protocol::send(&self.sock, &ToMonitor::Start);
        }
        // One line, not EOF: a created init still holds a copy of the
        // pipe until it execs. A failed send still has a report to read.
        let mut frame = Vec::new();
        std::io::BufReader::new(std::fs::File::from(self.report))
            .read_until(b'\n', &mut frame)
            .map_err(|e| Error::Protocol(format!("reading the monitor's report: {e}")))?;
        if frame.pop() != Some(b'\n') {
            return Err(Error::Protocol("the monitor died before reporting".into()));
        }
        match Report::decode(&frame)
            .map_err(|e| Error::Protocol(format!("the monitor's report: {e}")))?
        {
            Report::Created {
                monitor,
                pid,
                trace,
            } => Ok((
                Spawned {
                    monitor_pid: monitor,
                    pid,
                    trace,
                },
                self.sock,
            )),
            Report::Failed(f) => Err(f.into()),
        }
    }
}

/// In the monitor, before its container exists: wait for the command to
/// name it. End of connection (the command failed or died) means there is
/// nothing to monitor.
fn wait_for_container(engine: &Engine, sock: OwnedFd, w: OwnedFd) -> ! {
    // The command's stdio is not ours to keep open: whoever reads its
    // output waits for end of file.
    if let Ok(null) = devnull() {
        for fd in 0..3 {
            let _ = capsa_sys::fd::dup_to(null.as_raw_fd(), fd);
        }
    }
    let mut buf = vec![0u8; 4096];
    let hello = match protocol::recv::<ToMonitor>(&sock, &mut buf) {
        Ok(Some(ToMonitor::Hello(h))) => h,
        _ => capsa_sys::process::exit_now(0),
    };
    let mut c = match engine.load(&hello.id) {
        Ok(c) => c,
        Err(e) => {
            report(&mut Some(w), &Report::Failed(e.failure()));
            capsa_sys::process::exit_now(1)
        }
    };
    // `start -i` asks for stdin on a container created without it.
    c.options.interactive = hello.interactive;
    monitor(engine, &c, hello.attach, w, hello.attach.then_some(sock))
}

/// The report, once: one frame and a newline (a line, since a created
/// init holds a copy of the pipe until it execs: no end of file to wait
/// for). A report is a control frame, JSON, so it holds no newline.
fn report(w: &mut Option<OwnedFd>, r: &Report) {
    if let Some(fd) = w.take() {
        let mut line = r.encode();
        line.push(b'\n');
        let _ = std::fs::File::from(fd).write_all(&line);
    }
}

/// The hidden first argument that makes a binary act as a monitor.
pub const MONITOR_ARG: &str = "__capsa_monitor";

/// Entry point of a re-executed monitor: `ARG root run id attach|detach fd`.
/// Never returns.
pub fn main_from_args(args: &[String]) -> ! {
    let fd = |i: usize| match args.get(i).and_then(|s| s.parse::<i32>().ok()) {
        Some(raw) if capsa_sys::fd::set_cloexec(raw, true).is_ok() => {
            // SAFETY: our parent handed these numbers down to the exec
            // (prespawn); nothing in this fresh process has opened
            // anything yet.
            #[allow(unsafe_code)]
            let owned = unsafe { capsa_sys::fd::inherited(raw) };
            match owned {
                Ok(fd) => fd,
                Err(_) => capsa_sys::process::exit_now(2),
            }
        }
        _ => capsa_sys::process::exit_now(2),
    };
    let (sock, w) = (fd(3), fd(4));
    let engine = match Engine::open(
        args.get(1).cloned().unwrap_or_default(),
        args.get(2).cloned().unwrap_or_default(),
    ) {
        Ok(e) => e,
        Err(e) => {
            report(&mut Some(w), &Report::Failed(e.failure()));
            capsa_sys::process::exit_now(1)
        }
    };
    wait_for_container(&engine, sock, w)
}

/// The monitor process: never returns.
fn monitor(
    engine: &Engine,
    c: &Container,
    attach_first: bool,
    w: OwnedFd,
    client: Option<OwnedFd>,
) -> ! {
    let mut w = Some(w);
    // Signals for a terminal or a pipe are not ours: the container's
    // init unblocks its own mask before execve.
    let mut set = nix::sys::signal::SigSet::empty();
    for s in [
        nix::sys::signal::SIGPIPE,
        nix::sys::signal::SIGHUP,
        nix::sys::signal::SIGINT,
        nix::sys::signal::SIGQUIT,
        nix::sys::signal::SIGTSTP,
        nix::sys::signal::SIGTTIN,
        nix::sys::signal::SIGTTOU,
    ] {
        set.add(s);
    }
    let _ =
        nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&set), None);
    let _ = capsa_sys::process::set_child_subreaper();
    let _ = std::env::set_current_dir("/");
    let code = match run::run(engine, c, attach_first, &mut w, client) {
        Ok(()) => 0,
        Err(e) => {
            record_failure(engine, c, &e);
            report(&mut w, &Report::Failed(e.failure()));
            1
        }
    };
    capsa_sys::process::exit_now(code)
}

/// A start that failed: the record says why, and a `--rm` container goes.
/// Done before any client hears of the failure, so that a `capsa run`
/// that returns an error has left nothing behind. (A second call finds
/// nothing left to do.)
fn record_failure(engine: &Engine, c: &Container, e: &Error) {
    if !c.dir(engine).exists() {
        return;
    }
    let _ = engine.update(&c.id, |r| {
        r.state.status = Status::Exited;
        r.state.error = Some(e.to_string());
        r.state.monitor_pid = 0;
        r.state.finished_secs = Some(crate::manage::now_secs());
    });
    if c.options.rm {
        let _ = crate::manage::remove_files(engine, c);
    }
}

fn devnull() -> Result<OwnedFd> {
    rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::sys("open", "/dev/null", e))
}

/// A connected pair of SOCK_SEQPACKET sockets (one message per packet,
/// fds passed along).
fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd)> {
    rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys("socketpair", "monitor", e))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::sys("pipe", "monitor", e))
}
