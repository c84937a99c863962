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

fn alive(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
}

/// The record as it really is: a running container whose init and
/// monitor are both gone (killed) is marked exited, with a note.
pub fn refresh(engine: &Engine, c: Container) -> Result<Container> {
    if !matches!(c.state.status, Status::Running | Status::Paused) {
        return Ok(c);
    }
    if c.init_alive() {
        // Paused or running is what pause/unpause recorded.
        return Ok(c);
    }
    if alive(c.state.monitor_pid) {
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
    if !c.init_alive() {
        return Err(Error::Conflict(format!(
            "container {} is not running",
            c.name
        )));
    }
    let sig = capsa_runtime::signals::parse(signal)
        .ok_or_else(|| crate::error::flag("--signal", format!("unknown signal {signal:?}")))?;
    Runtime::of(engine, c).kill(&c.id, sig, false)
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
    if !await_exit(c.state.pid, timeout) && c.init_alive() {
        let _ = rt.kill(&c.id, libc::SIGKILL, true);
    }
    wait_recorded(engine, &c.id, Duration::from_secs(10))
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
    if matches!(c.state.status, Status::Running | Status::Paused) {
        if !force {
            return Err(Error::Conflict(format!(
                "container {} is {}: stop it first or use --force",
                c.name,
                if c.state.status == Status::Paused {
                    "paused"
                } else {
                    "running"
                }
            )));
        }
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
    Ok(())
}

/// Block until the container exits; its exit code.
pub fn wait(engine: &Engine, c: &Container) -> Result<i32> {
    loop {
        let c = match engine.load(&c.id) {
            Ok(c) => refresh(engine, c)?,
            Err(Error::NotFound(_)) => {
                return Err(Error::NotFound(format!("no such container: {}", c.name)))
            }
            Err(e) => return Err(e),
        };
        match c.state.status {
            Status::Exited => return Ok(c.state.exit_code.unwrap_or(-1)),
            Status::Created => {
                return Err(Error::Conflict(format!(
                    "container {} was never started",
                    c.name
                )))
            }
            _ => {}
        }
        // The monitor exits right after it recorded the exit code; without
        // one (killed), the next refresh tells when the init is gone.
        if await_exit(c.state.monitor_pid, Duration::from_secs(1)) {
            std::thread::sleep(Duration::from_millis(20));
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
