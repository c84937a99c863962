//! The monitor: one small process per running container, in place of a
//! daemon. It is the container's parent and subreaper, holds its stdio (or
//! pty), writes the json-file log, serves `attach`, records the exit code
//! and time, and removes a `--rm` container. It outlives the `capsa`
//! command that started it (double fork, new session). It is started
//! before the container is prepared, and told which one over its first
//! connection (see [`Ready`]).
//!
//! ```text
//! capsa run ──fork──> child ──setsid, fork──> monitor ──clone3──> container init
//!    │  <── report pipe: {"ok":true,"pid":..} ───┘   │
//!    └── socketpair (SOCK_SEQPACKET): CONTAINER, START, output, EXIT ──┘
//! ```

use crate::attach::{self, kind};
use crate::container::{Container, Status};
use crate::error::{Error, Result};
use crate::logs;
use crate::Engine;
use capsa_sys::process::Forked;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::{BufRead, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

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
pub fn prespawn(engine: &Engine, exe: Option<&std::path::Path>) -> Result<Ready> {
    let (r, w) = pipe()?;
    let (sock, theirs) = seqpacket_pair()?;
    match capsa_sys::process::fork().map_err(|e| Error::Other(format!("fork: {e}")))? {
        Forked::Child => {
            drop((r, sock));
            let _ = rustix::process::setsid();
            match capsa_sys::process::fork() {
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
                        serde_json::json!({"ok": false, "error": format!("exec {}: {err}", exe.display())}),
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
        let which = serde_json::json!({
            "id": c.id,
            "attach": attach_first,
            "interactive": c.options.interactive,
        });
        let sent = attach::send(&self.sock, kind::CONTAINER, which.to_string().as_bytes());
        if sent.is_ok() && attach_first {
            // The window size before the start, so the program sees it
            // from its first instruction.
            if c.options.tty {
                crate::client::send_size(&self.sock);
            }
            let _ = attach::send(&self.sock, kind::START, &[]);
        }
        // One line, not EOF: a created init still holds a copy of the
        // pipe until it execs. A failed send still has a report to read.
        let mut text = String::new();
        std::io::BufReader::new(std::fs::File::from(self.report))
            .read_line(&mut text)
            .map_err(|e| Error::Other(format!("reading the monitor's report: {e}")))?;
        let v: serde_json::Value = serde_json::from_str(text.trim())
            .map_err(|_| Error::Other(format!("the monitor died before reporting ({text:?})")))?;
        if v["ok"] != true {
            return Err(Error::from_report(&v, "the container did not start"));
        }
        let spawned = Spawned {
            monitor_pid: v["monitor"].as_i64().unwrap_or(0) as i32,
            pid: v["pid"].as_i64().unwrap_or(0) as i32,
            trace: v["trace"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        };
        Ok((spawned, self.sock))
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
    let which: serde_json::Value = match attach::recv(&sock, &mut buf) {
        Ok(Some((kind::CONTAINER, n))) => {
            serde_json::from_slice(&buf[1..1 + n]).unwrap_or_default()
        }
        _ => capsa_sys::process::exit_now(0),
    };
    let mut c = match engine.load(which["id"].as_str().unwrap_or("")) {
        Ok(c) => c,
        Err(e) => {
            report(
                &mut Some(w),
                serde_json::json!({"ok": false, "error": e.to_string()}),
            );
            capsa_sys::process::exit_now(1)
        }
    };
    // `start -i` asks for stdin on a container created without it.
    c.options.interactive = which["interactive"].as_bool().unwrap_or(false);
    let attach_first = which["attach"].as_bool().unwrap_or(false);
    monitor(engine, &c, attach_first, w, attach_first.then_some(sock))
}

fn report(w: &mut Option<OwnedFd>, v: serde_json::Value) {
    if let Some(fd) = w.take() {
        let _ = std::fs::File::from(fd).write_all(format!("{v}\n").as_bytes());
    }
}

/// The hidden first argument that makes a binary act as a monitor.
pub const MONITOR_ARG: &str = "__capsa_monitor";

/// Entry point of a re-executed monitor: `ARG root run id attach|detach fd`.
/// Never returns.
pub fn main_from_args(args: &[String]) -> ! {
    let fd = |i: usize| match args.get(i).and_then(|s| s.parse::<i32>().ok()) {
        Some(raw) if capsa_sys::fd::set_cloexec(raw, true).is_ok() => capsa_sys::fd::own_raw(raw),
        _ => capsa_sys::process::exit_now(2),
    };
    let (sock, w) = (fd(3), fd(4));
    let engine = match Engine::open(
        args.get(1).cloned().unwrap_or_default(),
        args.get(2).cloned().unwrap_or_default(),
    ) {
        Ok(e) => e,
        Err(e) => {
            report(
                &mut Some(w),
                serde_json::json!({"ok": false, "error": e.to_string()}),
            );
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
    let code = match run(engine, c, attach_first, &mut w, client) {
        Ok(()) => 0,
        Err(e) => {
            record_failure(engine, c, &e);
            report(&mut w, e.report());
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

struct Stdio {
    /// What the monitor reads: stdout (or the pty master) and stderr.
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    /// Where client input goes: the stdin pipe, or the pty master.
    input: Option<OwnedFd>,
    tty: bool,
}

fn devnull() -> Result<OwnedFd> {
    rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::Other(format!("/dev/null: {e}")))
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
    .map_err(|e| Error::Other(format!("socketpair: {e}")))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::Other(format!("pipe: {e}")))
}

fn run(
    engine: &Engine,
    c: &Container,
    attach_first: bool,
    w: &mut Option<OwnedFd>,
    client: Option<OwnedFd>,
) -> Result<()> {
    let t0 = Instant::now();
    let listener = attach::listen(&engine.socket(c))
        .map_err(|e| Error::Other(format!("attach socket: {e}")))?;
    let rt = engine.runtime_store();
    let runtime = crate::runtime::Runtime::of(engine, c);
    let tty = c.options.tty;
    let null = devnull()?;
    let mut stdio = Stdio {
        out: None,
        err: None,
        input: None,
        tty,
    };
    let opts = capsa_runtime::CreateOptions {
        id: c.id.clone(),
        bundle: c.dir(engine),
        own_console: tty,
        systemd_cgroup: c.systemd_scope.is_some(),
        // The engine's own containers take capsa's hardened behaviour.
        mode: capsa_spec::Mode::Hardened,
        ..Default::default()
    };
    let created: serde_json::Value;
    // The create runs in a child that exits once the init exists: the
    // init is then reparented to us (we are its subreaper), and the
    // monitor never holds the create path's memory (spec, seccomp).
    let (to_init_stdin, init_stdin) = if !tty && c.options.interactive {
        let (r, w) = pipe()?;
        (Some(w), r)
    } else {
        (
            None,
            null.try_clone().map_err(|e| Error::Other(e.to_string()))?,
        )
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (sp, sc) = seqpacket_pair()?;
    match capsa_sys::process::fork().map_err(|e| Error::Other(format!("fork: {e}")))? {
        Forked::Child => {
            drop(sp);
            let fds: [&OwnedFd; 3] = if tty {
                [&null, &null, &null]
            } else {
                [&init_stdin, &out_w, &err_w]
            };
            for (fd, target) in fds.iter().zip(0..3) {
                let _ = capsa_sys::fd::dup_to(fd.as_raw_fd(), target);
            }
            let created = match &c.options.runtime {
                Some(bin) => create_external(engine, c, bin, tty),
                None => capsa_runtime::create(&rt, &opts)
                    .map(|mut created| {
                        (
                            serde_json::json!({"pid": created.state.pid, "trace": created.trace.lines()}),
                            created.console.take(),
                        )
                    })
                    .map_err(Error::from),
            };
            let (msg, console, code) = match created {
                Ok((msg, console)) => (msg, console, 0),
                Err(e) => (e.report(), None, 1),
            };

            let _ = capsa_sys::fd::send_with_fd(
                sc.as_fd(),
                msg.to_string().as_bytes(),
                console.as_ref().map(|f| f.as_raw_fd()),
            );
            capsa_sys::process::exit_now(code)
        }
        Forked::Parent(child) => {
            drop(sc);
            let mut buf = vec![0u8; 256 * 1024];
            let got = capsa_sys::fd::recv_with_fd(sp.as_fd(), &mut buf);
            let _ = waitpid(child, None);
            let (n, console) =
                got.map_err(|e| Error::Other(format!("the create process died: {e}")))?;
            let v: serde_json::Value = serde_json::from_slice(&buf[..n])
                .map_err(|_| Error::Other("the create process died without a report".into()))?;
            if v["error"].is_string() {
                return Err(Error::from_report(&v, ""));
            }
            if tty {
                let master =
                    console.ok_or_else(|| Error::Other("no pty from the runtime".into()))?;
                stdio.input = Some(
                    master
                        .try_clone()
                        .map_err(|e| Error::Other(e.to_string()))?,
                );
                stdio.out = Some(master);
            } else {
                stdio.input = to_init_stdin;
                stdio.out = Some(out_r);
                stdio.err = Some(err_r);
            }
            // The container holds its ends; ours go, so EOF means it is done.
            drop((init_stdin, out_w, err_w));
            created = v;
        }
    }
    let pid = created["pid"].as_i64().unwrap_or(0) as i32;
    let mut trace: Vec<String> = created["trace"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    trace.push(format!(
        "monitor: created in {:.2} ms",
        t0.elapsed().as_secs_f64() * 1e3
    ));
    // The record keeps the whole start: the engine's steps, then these.
    let start_trace: Vec<String> = c
        .trace
        .iter()
        .cloned()
        .chain(trace.iter().cloned())
        .collect();
    let attached = std::cell::RefCell::new(crate::network::Attached::default());
    let start = |engine: &Engine| -> Result<()> {
        let t = Instant::now();
        let held = crate::network::connect(engine, c, pid)?;
        let list = |v: Vec<String>| v.join(", ");
        let net_trace = (!held.endpoints.is_empty()).then(|| {
            format!(
                "monitor: networks connected ({}), ports published ({}) in {:.2} ms",
                list(
                    held.endpoints
                        .iter()
                        .map(|e| format!("{} {} on {}", e.ifname, e.ip, e.network))
                        .collect()
                ),
                list(held.ports.iter().map(|p| p.to_string()).collect()),
                t.elapsed().as_secs_f64() * 1e3
            )
        });
        let ports = held.ports.clone();
        *attached.borrow_mut() = held;
        in_child(|| runtime.start(&c.id))?;
        let (_, pid_start) = capsa_runtime::state::proc_stat(pid).unwrap_or(('?', 0));
        engine.update(&c.id, |r| {
            r.state.status = Status::Running;
            r.state.pid = pid;
            r.state.pid_start = pid_start;
            r.state.monitor_pid = std::process::id() as i32;
            r.state.started_at = Some(capsa_sys::time::now_rfc3339());
            r.state.exit_code = None;
            r.state.error = None;
            r.trace = start_trace
                .iter()
                .cloned()
                .chain(net_trace.clone())
                .collect();
            r.ports = ports.clone();
        })?;
        crate::network::running_changed(engine, c, &attached.borrow().endpoints);
        Ok(())
    };
    // The command that started us is the first client, connected already.
    let mut clients: Vec<OwnedFd> = client.into_iter().collect();
    let fail = |e: Error, clients: &[OwnedFd]| -> Error {
        runtime.delete(&c.id);
        crate::network::disconnect(engine, c, &attached.borrow().ports);
        record_failure(engine, c, &e);
        for cl in clients {
            let _ = attach::send(cl, kind::FAILED, e.to_string().as_bytes());
        }
        e
    };
    let ok =
        serde_json::json!({"ok": true, "pid": pid, "monitor": std::process::id(), "trace": trace});
    if attach_first {
        report(w, ok);
        // Wait (a while) for the client that asked to attach first.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut started = false;
        let init = capsa_sys::process::pidfd_open(Pid::from_raw(pid)).ok();
        while !started && Instant::now() < deadline {
            let mut fds = vec![listener.as_fd()];
            fds.extend(clients.iter().map(|c| c.as_fd()));
            poll_in(&fds, 200);
            while let Ok(cl) =
                rustix::net::accept_with(&listener, rustix::net::SocketFlags::CLOEXEC)
            {
                clients.push(cl);
            }
            let mut buf = [0u8; 16];
            let mut i = 0;
            while i < clients.len() {
                let _ = rustix::io::ioctl_fionbio(&clients[i], true);
                match attach::recv(&clients[i], &mut buf) {
                    Ok(Some((kind::START, _))) => {
                        started = true;
                        i += 1;
                    }
                    // The window size comes before the start, so the
                    // program sees it from its first instruction.
                    Ok(Some((k, n))) => {
                        handle(k, &buf[1..1 + n], init.as_ref(), &mut stdio);
                        i += 1;
                    }
                    Ok(None) => {
                        clients.remove(i);
                    }
                    _ => i += 1,
                }
            }
        }
        if !started {
            return Err(fail(
                Error::Other("no client attached to start the container within 60 s".into()),
                &clients,
            ));
        }
        start(engine).map_err(|e| fail(e, &clients))?;
        for cl in &clients {
            let _ = rustix::io::ioctl_fionbio(cl, false);
            let _ = attach::send(cl, kind::STARTED, &pid.to_le_bytes());
        }
    } else {
        start(engine).map_err(|e| fail(e, &clients))?;
        report(w, ok);
    }
    // The container's last exit tears down its mount namespace (every
    // mount, then an RCU grace period) before the kernel reports it; held
    // here, that work waits until the exit has been reported.
    let held_mnt = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok();
    // From here on the monitor only relays and waits: the pages of the
    // start code it ran once go (they stay cached for the next start).
    capsa_sys::process::trim_heap();
    capsa_sys::process::release_program_pages();
    let code = serve(
        pid,
        &listener,
        &mut clients,
        &mut stdio,
        &c.dir(engine).join("ctr.log"),
    );
    // Exited: record it, release the runtime's state and cgroup, and the
    // network (ports, veth pairs, a bridge left empty).
    runtime.delete(&c.id);
    let held = attached.take();
    // Ports first (a new run may want them at once), links after the
    // exit is reported.
    let endpoints = crate::network::endpoints(&c.dir(engine));
    crate::network::release_ports(engine, &held.ports, &endpoints);
    drop(held);
    let now = crate::manage::now_secs();
    // A --rm container's record goes right after: no need to write it.
    let _ = (!c.options.rm).then(|| {
        let _ = engine.update(&c.id, |r| {
            r.state.status = Status::Exited;
            r.state.exit_code = Some(code);
            r.state.finished_at = Some(capsa_sys::time::now_rfc3339());
            r.state.finished_secs = Some(now);
            r.state.monitor_pid = 0;
            r.state.pid = 0;
        });
        crate::network::running_changed(engine, c, &endpoints);
    });
    if c.options.rm {
        let _ = crate::manage::remove_files(engine, c);
    }
    for cl in &clients {
        let _ = attach::send(cl, kind::EXIT, &code.to_le_bytes());
    }
    drop(held_mnt);
    crate::network::teardown(engine, &endpoints);
    if c.options.rm {
        crate::manage::empty_trash(engine);
    }
    Ok(())
}

fn poll_in(fds: &[std::os::fd::BorrowedFd<'_>], ms: i32) -> Vec<bool> {
    let mut p: Vec<rustix::event::PollFd<'_>> = fds
        .iter()
        .map(|f| rustix::event::PollFd::new(f, rustix::event::PollFlags::IN))
        .collect();
    let ts = rustix::event::Timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) as i64) * 1_000_000,
    };
    let _ = rustix::event::poll(&mut p, if ms < 0 { None } else { Some(&ts) });
    p.iter().map(|x| !x.revents().is_empty()).collect()
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
fn serve(
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
    let mut buf = vec![0u8; attach::MAX];
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
            match rustix::io::read(fd, &mut buf[..attach::MAX - 1]) {
                Ok(0) | Err(rustix::io::Errno::IO) => {
                    if stream == 0 {
                        stdio.out = None;
                    } else {
                        stdio.err = None;
                    }
                }
                Ok(n) => {
                    log.write(stream, &buf[..n]);
                    let k = if stream == 0 {
                        kind::STDOUT
                    } else {
                        kind::STDERR
                    };
                    clients.retain(|cl| attach::send(cl, k, &buf[..n]).is_ok());
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
            match attach::recv(&clients[i], &mut buf) {
                Ok(Some((k, n))) => {
                    // Signals go to the init's pidfd, and never once it
                    // was reaped (its pid may name another process by now).
                    let target = pidfd.as_ref().filter(|_| code.is_none());
                    handle(k, &buf[1..1 + n], target, stdio);
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
fn handle(k: u8, data: &[u8], init: Option<&OwnedFd>, stdio: &mut Stdio) {
    match k {
        kind::STDIN => {
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
        kind::STDIN_EOF if !stdio.tty => stdio.input = None,
        kind::RESIZE if data.len() >= 4 => {
            if let Some(m) = &stdio.out {
                let rows = u16::from_le_bytes([data[0], data[1]]);
                let cols = u16::from_le_bytes([data[2], data[3]]);
                let _ = capsa_sys::fd::set_window_size(m.as_raw_fd(), rows, cols);
            }
        }
        kind::SIGNAL if data.len() >= 4 => {
            let sig = i32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            if let (Ok(_), Some(fd)) = (nix::sys::signal::Signal::try_from(sig), init) {
                let _ = capsa_sys::process::pidfd_send_signal(fd.as_raw_fd(), sig);
            }
        }
        _ => {}
    }
}

/// Create through a runtime binary with runc's command line: its stdio is
/// the container's (runc passes it through), a console socket receives the
/// pty master, and the pid comes from `--pid-file`. Runs in the create
/// child; the runtime's init is reparented to the monitor when it exits.
fn create_external(
    engine: &Engine,
    c: &Container,
    bin: &str,
    tty: bool,
) -> Result<(serde_json::Value, Option<OwnedFd>)> {
    let t0 = Instant::now();
    let bin = crate::runtime::resolve_bin(bin);
    let files = engine.files_dir(&c.id)?;
    let pid_file = files.join("pid");
    let log = files.join("runtime.log");
    let mut cmd = std::process::Command::new(&bin);
    // capsa-runtime takes runc's behaviour unless told: the engine's
    // containers are hardened whichever way they are made.
    if bin.file_name().is_some_and(|n| n == "capsa-runtime") {
        cmd.arg("--hardened");
    }
    cmd.arg("--root")
        .arg(engine.run.join("ext-runtime"))
        .arg("--log")
        .arg(&log)
        .arg("create")
        .arg("--bundle")
        .arg(c.dir(engine))
        .arg("--pid-file")
        .arg(&pid_file);
    let console = if tty {
        let path = files.join("console.sock");
        let l = console_listener(&path)?;
        cmd.arg("--console-socket").arg(&path);
        Some(l)
    } else {
        None
    };
    cmd.arg(&c.id);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Other(format!("{}: {e}", bin.display())))?;
    let master = match &console {
        Some(l) => {
            // The runtime connects once the pty exists (or exits on error).
            let ready = poll_in(&[l.as_fd()], 30_000);
            if ready.first().copied().unwrap_or(false) {
                let conn = rustix::net::accept_with(l, rustix::net::SocketFlags::CLOEXEC)
                    .map_err(|e| Error::Other(format!("console socket: {e}")))?;
                let mut buf = [0u8; 4096];
                capsa_sys::fd::recv_with_fd(conn.as_fd(), &mut buf)
                    .map_err(|e| Error::Other(format!("console socket: {e}")))?
                    .1
            } else {
                None
            }
        }
        None => None,
    };
    let status = child
        .wait()
        .map_err(|e| Error::Other(format!("{}: {e}", bin.display())))?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let last = text.lines().last().unwrap_or("").to_string();
        return Err(Error::Other(format!(
            "{} create: {}",
            bin.display(),
            if last.is_empty() {
                status.to_string()
            } else {
                last
            }
        )));
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::Other(format!("{} create wrote no pid file", bin.display())))?;
    let trace = vec![format!(
        "{:>8} us {:>+7} us  runtime {} create (an external runtime: its own steps are not traced)",
        t0.elapsed().as_micros(),
        t0.elapsed().as_micros(),
        bin.display()
    )];
    Ok((serde_json::json!({"pid": pid, "trace": trace}), master))
}

fn console_listener(path: &std::path::Path) -> Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    let fd = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::Other(format!("console socket: {e}")))?;
    let addr = rustix::net::SocketAddrUnix::new(path)
        .map_err(|e| Error::Other(format!("console socket: {e}")))?;
    attach::bind_private(&fd, &addr)
        .map_err(|e| Error::Other(format!("console socket {}: {e}", path.display())))?;
    rustix::net::listen(&fd, 1).map_err(|e| Error::Other(format!("console socket: {e}")))?;
    Ok(fd)
}

/// Run `f` in a child process and return its result: the monitor stays
/// small (the start path reads the whole OCI state; its code and heap stay
/// in the child).
fn in_child(f: impl FnOnce() -> Result<()>) -> Result<()> {
    let (r, w) = pipe()?;
    match capsa_sys::process::fork().map_err(|e| Error::Other(format!("fork: {e}")))? {
        Forked::Child => {
            drop(r);
            let msg = match f() {
                Ok(()) => String::new(),
                Err(e) => e.to_string(),
            };
            let _ = std::fs::File::from(w).write_all(msg.as_bytes());
            capsa_sys::process::exit_now(0)
        }
        Forked::Parent(child) => {
            drop(w);
            let mut msg = String::new();
            let _ = std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut msg);
            let _ = waitpid(child, None);
            if msg.is_empty() {
                Ok(())
            } else {
                Err(Error::Other(msg))
            }
        }
    }
}
