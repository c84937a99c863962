//! Managing running containers: stop, kill, remove, pause, wait, and the
//! repair of records whose monitor was killed.

use crate::container::{Container, Status};
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::Engine;
use nix::unistd::Pid;
use std::time::{Duration, Instant};

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether `pid` runs: a zombie does not (a monitor killed whose parent
/// never reaps it still answers kill(0)).
fn alive(pid: i32) -> bool {
    pid > 0 && capsa_runtime::state::proc_stat(pid).is_some_and(|(s, _)| s != 'Z' && s != 'X')
}

/// The record as it really is: a running container whose init and
/// monitor are both gone (killed) is marked exited, with a note.
pub fn refresh(engine: &Engine, c: Container) -> Result<Container> {
    if !matches!(
        c.state.status,
        Status::Running | Status::Paused | Status::Restarting
    ) {
        return Ok(c);
    }
    if c.state.status != Status::Restarting && c.init_alive() {
        // Paused or running is what pause/unpause recorded.
        return Ok(c);
    }
    if c.same_boot() && alive(c.state.monitor_pid) {
        return Ok(c); // the monitor is recording the exit right now
    }
    Runtime::of(engine, &c).delete(&c.id);
    // What the monitor would have undone: published ports, veths, a bridge
    // left empty.
    crate::network::disconnect(engine, &c, &c.ports);
    let c = engine.update(&c.id, |r| {
        r.state.status = Status::Exited;
        r.state.exit_code = r.state.exit_code.or(Some(-1));
        r.state.finished_secs = Some(now_secs());
        r.state.error =
            Some("the monitor was gone when the container stopped: exit code unknown".into());
        r.state.pid = 0;
        r.state.monitor_pid = 0;
    })?;
    crate::network::running_changed(engine, &c, &crate::network::endpoints(&c.dir(engine)));
    Ok(c)
}

/// Send a signal (name or number) to the container's init.
pub fn kill(engine: &Engine, c: &Container, signal: &str) -> Result<()> {
    if c.state.status == Status::Restarting && alive(c.state.monitor_pid) {
        let sig = capsa_runtime::signals::parse(signal)
            .ok_or_else(|| crate::error::flag("--signal", format!("unknown signal {signal:?}")))?;
        if !crate::restart::fatal(sig, c.options.stop_signal.as_deref()) {
            return Err(Error::Conflict(format!(
                "container {} is restarting: no process to signal; wait until it runs",
                c.name
            )));
        }
        // Between two lives: no process to signal; the restarts end.
        stop_by_hand(engine, c)?;
        return Ok(());
    }
    if !c.init_alive() {
        return Err(Error::Conflict(format!(
            "container {} is not running",
            c.name
        )));
    }
    let sig = capsa_runtime::signals::parse(signal)
        .ok_or_else(|| crate::error::flag("--signal", format!("unknown signal {signal:?}")))?;
    if crate::restart::fatal(sig, c.options.stop_signal.as_deref()) {
        stop_by_hand(engine, c)?;
    }
    Runtime::of(engine, c).kill(&c.id, sig, false)?;
    crate::events::emit(
        engine,
        &crate::events::Event::container(c, "kill", &[("signal", &sig.to_string())]),
    );
    Ok(())
}

/// Mark `c` stopped by hand: its restart policy is set aside until the
/// next `start`. A monitor waiting to restart it is woken (any connection
/// to its socket has it read the record again) and ends; one restarting
/// it now reads the mark when it records the start, and ends that life.
/// The record as marked.
fn stop_by_hand(engine: &Engine, c: &Container) -> Result<Container> {
    let c = engine.update(&c.id, |r| r.state.stopped_by_hand = true)?;
    if c.state.status == Status::Restarting {
        let _ = crate::protocol::connect(&engine.socket(&c));
    }
    Ok(c)
}

/// Wait until the monitor has recorded the exit (or `limit` passes).
/// Block until `pid` exits or `timeout` passes, on a pidfd (no polling
/// of /proc). True when it is gone.
fn await_exit(pid: i32, timeout: Duration) -> bool {
    if pid <= 0 {
        return true;
    }
    let Ok(fd) = capsa_sys::process::pidfd_open(Pid::from_raw(pid)) else {
        return true; // already gone
    };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        let mut p = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut p, Some(&ts)) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(n) if n > 0 => return true,
            _ => return false,
        }
    }
}

/// Wait until the monitor has recorded the exit (it exits right after),
/// or `limit` passes.
fn wait_recorded(engine: &Engine, id: &str, limit: Duration) -> Result<Container> {
    let c = engine.load(id)?;
    await_exit(c.state.monitor_pid, limit);
    refresh(engine, engine.load(id)?)
}

/// Stop: the stop signal, then SIGKILL after `timeout`; returns when the
/// exit is recorded.
pub fn stop(engine: &Engine, c: &Container, timeout: Duration) -> Result<Container> {
    let c = &stop_by_hand(engine, c)?;
    if c.state.status == Status::Restarting {
        return wait_recorded(engine, &c.id, Duration::from_secs(10));
    }
    if !c.init_alive() {
        return refresh(engine, c.clone());
    }
    let rt = Runtime::of(engine, c);
    if c.state.status == Status::Paused {
        let _ = rt.resume(&c.id);
    }
    let sig = c.options.stop_signal.as_deref().unwrap_or("SIGTERM");
    let sig = capsa_runtime::signals::parse(sig).unwrap_or(libc::SIGTERM);
    let _ = rt.kill(&c.id, sig, false);
    let ev = |action: &str, sig: i32| {
        crate::events::emit(
            engine,
            &crate::events::Event::container(c, action, &[("signal", &sig.to_string())]),
        )
    };
    ev("kill", sig);
    if !await_exit(c.state.pid, timeout) && c.init_alive() {
        let _ = rt.kill(&c.id, libc::SIGKILL, true);
        ev("kill", libc::SIGKILL);
    }
    let done = wait_recorded(engine, &c.id, Duration::from_secs(10))?;
    crate::events::emit(engine, &crate::events::Event::container(c, "stop", &[]));
    Ok(done)
}

/// Unmount the snapshot and remove the container's files and record.
pub fn remove_files(engine: &Engine, c: &Container) -> Result<()> {
    let dir = c.dir(engine);
    Runtime::of(engine, c).delete(&c.id);
    match rustix::mount::unmount(
        dir.join("rootfs").as_path(),
        rustix::mount::UnmountFlags::DETACH,
    ) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => {
            return Err(Error::Io {
                op: "unmount",
                path: dir.join("rootfs"),
                source: e.into(),
            })
        }
    }
    let _ = std::fs::remove_file(engine.socket(c));
    if c.options.rm {
        // Anonymous volumes go with a --rm container, as docker's do.
        if let Ok(rd) = std::fs::read_dir(engine.volumes()) {
            for e in rd.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{}-", c.short_id()))
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(engine.run.join("files").join(&c.id));
    let networks: Vec<String> = crate::network::endpoints(&dir)
        .into_iter()
        .map(|e| e.network)
        .collect();
    // Gone at once (one rename, its address leases with it), deleted after.
    let trash = engine.trash().join(&c.id);
    std::fs::rename(&dir, &trash).map_err(|e| Error::Io {
        op: "remove",
        path: dir,
        source: e,
    })?;
    crate::network::refresh_peers(engine, c, &networks, None);
    crate::events::emit(engine, &crate::events::Event::container(c, "destroy", &[]));
    Ok(())
}

/// Delete what removals left in the trash.
pub fn empty_trash(engine: &Engine) {
    if let Ok(rd) = std::fs::read_dir(engine.trash()) {
        for e in rd.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// `rm`: refused while running unless `force` (which kills first).
pub fn remove(engine: &Engine, c: &Container, force: bool) -> Result<()> {
    let _l = engine.lock(&format!("rm-{}", c.id))?;
    let c = refresh(engine, c.clone())?;
    if matches!(
        c.state.status,
        Status::Running | Status::Paused | Status::Restarting
    ) {
        if !force {
            return Err(Error::Conflict(format!(
                "container {} is {}: stop it first or use --force",
                c.name,
                format!("{:?}", c.state.status).to_lowercase()
            )));
        }
        let c = stop_by_hand(engine, &c)?;
        let _ = Runtime::of(engine, &c).kill(&c.id, libc::SIGKILL, true);
        wait_recorded(engine, &c.id, Duration::from_secs(10))?;
    }
    let r = match engine.load(&c.id) {
        Ok(c) => remove_files(engine, &c),
        Err(Error::NotFound(_)) => Ok(()), // a --rm monitor got there first
        Err(e) => Err(e),
    };
    empty_trash(engine);
    r
}

pub fn pause(engine: &Engine, c: &Container) -> Result<()> {
    if c.state.status != Status::Running || !c.init_alive() {
        return Err(Error::Conflict(format!(
            "container {} is not running",
            c.name
        )));
    }
    Runtime::of(engine, c).pause(&c.id)?;
    engine.update(&c.id, |r| r.state.status = Status::Paused)?;
    crate::events::emit(engine, &crate::events::Event::container(c, "pause", &[]));
    Ok(())
}

pub fn unpause(engine: &Engine, c: &Container) -> Result<()> {
    if c.state.status != Status::Paused {
        return Err(Error::Conflict(format!(
            "container {} is not paused",
            c.name
        )));
    }
    Runtime::of(engine, c).resume(&c.id)?;
    engine.update(&c.id, |r| r.state.status = Status::Running)?;
    crate::events::emit(engine, &crate::events::Event::container(c, "unpause", &[]));
    Ok(())
}

/// Block until the container exits; its exit code. Under a restart
/// policy, the next exit counts (docker's `not-running` condition): one
/// between two lives, or a restart seen since the wait began.
pub fn wait(engine: &Engine, c: &Container) -> Result<i32> {
    let mut seen: Option<(i32, u32)> = None;
    loop {
        let c = match engine.load(&c.id) {
            Ok(c) => refresh(engine, c)?,
            Err(Error::NotFound(_)) => {
                return Err(Error::NotFound(format!("no such container: {}", c.name)))
            }
            Err(e) => return Err(e),
        };
        match c.state.status {
            Status::Exited | Status::Restarting => return Ok(c.state.exit_code.unwrap_or(-1)),
            Status::Created => {
                return Err(Error::Conflict(format!(
                    "container {} was never started",
                    c.name
                )))
            }
            _ => {}
        }
        let life = (c.state.pid, c.state.restart_count);
        if seen.is_some_and(|s| s != life) {
            return Ok(c.state.exit_code.unwrap_or(-1));
        }
        seen = Some(life);
        // The init's exit, then the monitor records it (and exits, unless
        // it restarts it): the next round reads which.
        if await_exit(c.state.pid, Duration::from_secs(1)) {
            await_exit(c.state.monitor_pid, Duration::from_millis(50));
        }
    }
}

/// Remove every exited container; their names.
pub fn prune(engine: &Engine) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in engine.list()? {
        let c = refresh(engine, c)?;
        if matches!(c.state.status, Status::Exited | Status::Created) && c.state.monitor_pid == 0 {
            remove_files(engine, &c)?;
            out.push(c.name);
        }
    }
    empty_trash(engine);
    Ok(out)
}
