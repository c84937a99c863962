//! Starting the created container (networks, the runtime's start, the
//! record), then serving it until its exit, and the clean-up after.

use super::clients::Clients;
use super::serve;
use super::{record_failure, report};
use crate::container::{Container, Status};
use crate::error::{Error, Result};
use crate::protocol::poll_in;
use crate::protocol::{self, FromMonitor, Report, ToMonitor};
use crate::Engine;
use nix::unistd::Pid;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// Create, start and serve `c`; the report goes to `w` once it is known
/// whether the container exists (and runs, unless the client starts it).
pub(super) fn run(
    engine: &Engine,
    c: &Container,
    attach_first: bool,
    w: &mut Option<OwnedFd>,
    client: Option<OwnedFd>,
) -> Result<()> {
    let t0 = Instant::now();
    let sock = engine.socket(c);
    let listener = protocol::listen(&sock).map_err(|e| Error::sys("listen", sock.display(), e))?;
    let runtime = crate::runtime::Runtime::of(engine, c);
    let (pid, mut trace, mut stdio) = super::create::create(engine, c)?;
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
        super::create::in_child(|| runtime.start(&c.id))?;
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
            while let Ok(cl) =
                rustix::net::accept_with(&listener, rustix::net::SocketFlags::CLOEXEC)
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
                &clients,
            ));
        }
        start(engine).map_err(|e| fail(e, &clients))?;
    } else {
        start(engine).map_err(|e| fail(e, &clients))?;
        report(w, &ok);
    }
    // Those connected now started it: primary clients (see `clients`).
    let mut clients = Clients::new(clients);
    if attach_first {
        clients.broadcast(&FromMonitor::Started { pid });
    }
    // The container's last exit tears down its mount namespace (every
    // mount, then an RCU grace period) before the kernel reports it; held
    // here, that work waits until the exit has been reported.
    let held_mnt = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok();
    // From here on the monitor only relays and waits: the pages of the
    // start code it ran once go (they stay cached for the next start).
    capsa_sys::process::trim_heap();
    capsa_sys::process::release_program_pages();
    let code = serve::serve(
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
    // The exit goes out now to every client with room for it (the usual
    // case); the teardown does not wait for one that does not read.
    clients.broadcast(&FromMonitor::Exit(code));
    drop(held_mnt);
    crate::network::teardown(engine, &endpoints);
    if c.options.rm {
        crate::manage::empty_trash(engine);
    }
    // A client that attached later gets a few seconds to take the rest.
    clients.finish(Duration::from_secs(5));
    Ok(())
}
