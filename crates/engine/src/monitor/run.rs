//! Starting the created container (networks, the runtime's start, the
//! record), then serving it until its exit, and the clean-up after; with
//! a restart policy, again after each exit the policy restarts.

use super::clients::Clients;
use super::serve::{self, Stdio};
use super::{record_failure, report};
use crate::container::{Container, Status};
use crate::error::{Error, Result};
use crate::network::Attached;
use crate::protocol::poll_in;
use crate::protocol::{self, FromMonitor, Report, ToMonitor};
use crate::restart::{Backoff, Policy};
use crate::runtime::Runtime;
use crate::Engine;
use nix::unistd::Pid;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// One life of the container: its init, its stdio, its networks, and the
/// clients attached to it.
struct Life {
    pid: i32,
    stdio: Stdio,
    attached: Attached,
    clients: Clients,
}

/// Create, start and serve `c`; the report goes to `w` once it is known
/// whether the container exists (and runs, unless the client starts it).
/// Then, while its restart policy says so, make and start it again.
pub(super) fn run(
    engine: &Engine,
    c: &Container,
    attach_first: bool,
    w: &mut Option<OwnedFd>,
    client: Option<OwnedFd>,
) -> Result<()> {
    let sock = engine.socket(c);
    let listener = protocol::listen(&sock).map_err(|e| Error::sys("listen", sock.display(), e))?;
    let runtime = Runtime::of(engine, c);
    let policy = c.options.restart_policy();
    let mut backoff = Backoff::default();
    let mut life = first_life(engine, c, &runtime, &listener, attach_first, w, client)?;
    loop {
        let began = Instant::now();
        if !live(engine, c, &runtime, &listener, life, policy) {
            return Ok(());
        }
        if !wait_to_restart(engine, c, &listener, backoff.next(began.elapsed())) {
            // Stopped by hand (or removed) while it waited.
            let _ = engine.update(&c.id, |r| {
                r.state.status = Status::Exited;
                r.state.monitor_pid = 0;
            });
            return Ok(());
        }
        life = match next_life(engine, c, &runtime) {
            Ok(l) => l,
            Err(e) => {
                record_failure(engine, c, &e);
                return Ok(());
            }
        };
    }
}

/// The first life: made, and started now or when the client that asked
/// to attach first says so; the report tells the command which.
fn first_life(
    engine: &Engine,
    c: &Container,
    runtime: &Runtime,
    listener: &OwnedFd,
    attach_first: bool,
    w: &mut Option<OwnedFd>,
    client: Option<OwnedFd>,
) -> Result<Life> {
    let t0 = Instant::now();
    let (pid, mut trace, mut stdio) = super::create::create(engine, c)?;
    trace.push(format!(
        "monitor: created in {:.2} ms",
        t0.elapsed().as_secs_f64() * 1e3
    ));
    // The record keeps the whole start: the engine's steps, then these.
    let start_trace: Vec<String> = c.trace.iter().chain(trace.iter()).cloned().collect();
    let mut attached = Attached::default();
    // The command that started us is the first client, connected already.
    let mut clients: Vec<OwnedFd> = client.into_iter().collect();
    let fail = |e: Error, attached: &Attached, clients: &[OwnedFd]| -> Error {
        runtime.delete(&c.id);
        crate::network::disconnect(engine, c, &attached.ports);
        record_failure(engine, c, &e);
        let failed = FromMonitor::Failed(e.failure());
        for cl in clients {
            let _ = protocol::send(cl, &failed);
        }
        e
    };
    let ok = Report::Created {
        monitor: std::process::id() as i32,
        pid,
        trace,
    };
    if attach_first {
        report(w, &ok);
        // Wait (a while) for the client that asked to attach first.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut started = false;
        let init = capsa_sys::process::pidfd_open(Pid::from_raw(pid)).ok();
        while !started && Instant::now() < deadline {
            let mut fds = vec![listener.as_fd()];
            fds.extend(clients.iter().map(|c| c.as_fd()));
            poll_in(&fds, 200);
            while let Ok(cl) = rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC)
            {
                clients.push(cl);
            }
            let mut buf = vec![0u8; protocol::MAX];
            let mut i = 0;
            while i < clients.len() && stdio.pending.len() < serve::INPUT_LIMIT {
                let _ = rustix::io::ioctl_fionbio(&clients[i], true);
                match protocol::recv::<ToMonitor>(&clients[i], &mut buf) {
                    Ok(Some(ToMonitor::Start)) => {
                        started = true;
                        i += 1;
                    }
                    // The window size comes before the start, so the
                    // program sees it from its first instruction.
                    Ok(Some(m)) => {
                        serve::handle(m, init.as_ref(), &mut stdio);
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
                Error::Protocol("no client attached to start the container within 60 s".into()),
                &attached,
                &clients,
            ));
        }
        start(engine, c, runtime, pid, &start_trace, false, &mut attached)
            .map_err(|e| fail(e, &attached, &clients))?;
    } else {
        start(engine, c, runtime, pid, &start_trace, false, &mut attached)
            .map_err(|e| fail(e, &attached, &clients))?;
        report(w, &ok);
    }
    // Those connected now started it: primary clients (see `clients`).
    let mut clients = Clients::new(clients);
    if attach_first {
        clients.broadcast(&FromMonitor::Started { pid });
    }
    Ok(Life {
        pid,
        stdio,
        attached,
        clients,
    })
}

/// A life after an exit the policy restarts: made and started with no
/// client (`attach` finds it running).
fn next_life(engine: &Engine, c: &Container, runtime: &Runtime) -> Result<Life> {
    let t0 = Instant::now();
    let (pid, mut trace, stdio) = super::create::create(engine, c)?;
    trace.push(format!(
        "monitor: created again by the restart policy in {:.2} ms",
        t0.elapsed().as_secs_f64() * 1e3
    ));
    let start_trace: Vec<String> = c.trace.iter().chain(trace.iter()).cloned().collect();
    let mut attached = Attached::default();
    if let Err(e) = start(engine, c, runtime, pid, &start_trace, true, &mut attached) {
        runtime.delete(&c.id);
        crate::network::disconnect(engine, c, &attached.ports);
        return Err(e);
    }
    Ok(Life {
        pid,
        stdio,
        attached,
        clients: Clients::new(Vec::new()),
    })
}

/// Connect the networks, start the created init and record it running.
/// `by_policy`: a restart, which keeps the count and the last exit code;
/// a start by hand clears both and the hand's stop.
fn start(
    engine: &Engine,
    c: &Container,
    runtime: &Runtime,
    pid: i32,
    start_trace: &[String],
    by_policy: bool,
    attached: &mut Attached,
) -> Result<()> {
    let t = Instant::now();
    *attached = crate::network::connect(engine, c, pid)?;
    let list = |v: Vec<String>| v.join(", ");
    let net_trace = (!attached.endpoints.is_empty()).then(|| {
        format!(
            "monitor: networks connected ({}), ports published ({}) in {:.2} ms",
            list(
                attached
                    .endpoints
                    .iter()
                    .map(|e| format!("{} {} on {}", e.ifname, e.ip, e.network))
                    .collect()
            ),
            list(attached.ports.iter().map(|p| p.to_string()).collect()),
            t.elapsed().as_secs_f64() * 1e3
        )
    });
    super::create::in_child(|| runtime.start(&c.id))?;
    let (_, pid_start) = capsa_runtime::state::proc_stat(pid).unwrap_or(('?', 0));
    let mut stopped = false;
    engine.update(&c.id, |r| {
        r.state.status = Status::Running;
        r.state.pid = pid;
        r.state.pid_start = pid_start;
        r.state.monitor_pid = std::process::id() as i32;
        r.state.boot_id = crate::container::boot_id().map(str::to_string);
        r.state.started_at = Some(capsa_sys::time::now_rfc3339());
        r.state.error = None;
        // Each start begins as docker's: `starting` until a probe says.
        r.state.health = c
            .healthcheck
            .as_ref()
            .and_then(|h| crate::health::command(h).ok().flatten())
            .map(|_| crate::health::Health::starting());
        if by_policy {
            stopped = r.state.stopped_by_hand;
        } else {
            r.state.exit_code = None;
            r.state.restart_count = 0;
            r.state.stopped_by_hand = false;
        }
        r.trace = start_trace
            .iter()
            .cloned()
            .chain(net_trace.clone())
            .collect();
        r.ports = attached.ports.clone();
    })?;
    // A `stop` that came while this restart was under way saw no running
    // init to signal: this life ends at once.
    if stopped {
        if let Ok(fd) = capsa_sys::process::pidfd_open(Pid::from_raw(pid)) {
            use std::os::fd::AsRawFd;
            let _ = capsa_sys::process::pidfd_send_signal(fd.as_raw_fd(), libc::SIGKILL);
        }
    }
    crate::network::running_changed(engine, c, &attached.endpoints);
    crate::events::emit(engine, &crate::events::Event::container(c, "start", &[]));
    Ok(())
}

/// Serve a life until its exit, then release it and record the exit.
/// Whether the policy starts it again.
fn live(
    engine: &Engine,
    c: &Container,
    runtime: &Runtime,
    listener: &OwnedFd,
    mut life: Life,
    policy: Policy,
) -> bool {
    // The container's last exit tears down its mount namespace (every
    // mount, then an RCU grace period) before the kernel reports it; held
    // here, that work waits until the exit has been reported.
    let held_mnt = std::fs::File::open(format!("/proc/{}/ns/mnt", life.pid)).ok();
    // From here on the monitor only relays and waits: the pages of the
    // start code it ran once go (they stay cached for the next start).
    capsa_sys::process::trim_heap();
    capsa_sys::process::release_program_pages();
    let code = serve::serve(
        life.pid,
        listener,
        &mut life.clients,
        &mut life.stdio,
        &c.dir(engine).join("ctr.log"),
        super::health::Checker::new(engine, c),
    );
    // Exited: record it, release the runtime's state and cgroup, and the
    // network (ports, veth pairs, a bridge left empty).
    runtime.delete(&c.id);
    // Ports first (a new run may want them at once), links after the
    // exit is reported.
    let endpoints = crate::network::endpoints(&c.dir(engine));
    crate::network::release_ports(engine, &life.attached.ports, &endpoints);
    drop(life.attached);
    let now = crate::manage::now_secs();
    let mut again = false;
    // A --rm container's record goes right after: no need to write it.
    if !c.options.rm {
        // Decided under the record's lock, which `stop` takes to mark
        // its stop: either it sees this exit recorded, or this sees its
        // mark.
        let _ = engine.update(&c.id, |r| {
            again = policy.restarts(code, r.state.restart_count, r.state.stopped_by_hand);
            r.state.status = if again {
                Status::Restarting
            } else {
                Status::Exited
            };
            r.state.exit_code = Some(code);
            r.state.finished_at = Some(capsa_sys::time::now_rfc3339());
            r.state.finished_secs = Some(now);
            r.state.monitor_pid = if again { std::process::id() as i32 } else { 0 };
            r.state.pid = 0;
            if again {
                r.state.restart_count += 1;
            }
        });
        crate::network::running_changed(engine, c, &endpoints);
    }
    crate::events::emit(
        engine,
        &crate::events::Event::container(c, "die", &[("exitCode", &code.to_string())]),
    );
    if c.options.rm {
        let _ = crate::manage::remove_files(engine, c);
    }
    // The exit goes out now to every client with room for it (the usual
    // case); the teardown does not wait for one that does not read.
    life.clients.broadcast(&FromMonitor::Exit(code));
    drop(held_mnt);
    crate::network::teardown(engine, &endpoints);
    if c.options.rm {
        crate::manage::empty_trash(engine);
    }
    // A client that attached later gets a few seconds to take the rest.
    life.clients.finish(Duration::from_secs(5));
    again
}

/// Wait `delay` before a restart. A connection to the monitor's socket
/// (`stop`, `kill` and `rm -f` make one) has the record read again:
/// false when it was stopped by hand or removed meanwhile.
fn wait_to_restart(engine: &Engine, c: &Container, listener: &OwnedFd, delay: Duration) -> bool {
    let go_on = || matches!(engine.load(&c.id), Ok(r) if !r.state.stopped_by_hand);
    let deadline = Instant::now() + delay;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return go_on();
        }
        let woken = poll_in(&[listener.as_fd()], left.as_millis().max(1) as i32);
        if woken.first() == Some(&true) {
            // Nothing to serve while it is down: an attach is refused.
            while rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC).is_ok() {}
            if !go_on() {
                return false;
            }
        }
    }
}
