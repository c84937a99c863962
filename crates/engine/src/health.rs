//! Health checks: the image's `HEALTHCHECK`, or the `--health-*` flags
//! over it, run as docker's daemon runs them. With no daemon, the
//! container's monitor runs each probe: an exec through the runtime's door
//! (in a child of its own, so that the monitor never waits on it), whose
//! output and exit code it records. `capsa healthcheck run` runs one by
//! hand, the same way.

use crate::container::Container;
use crate::error::{flag, Error, Result};
use crate::options::ExecOptions;
use crate::Engine;
use capsa_image::config::Healthcheck;
use capsa_sys::process::Forked;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// Docker's defaults for what a HEALTHCHECK leaves out.
const INTERVAL: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(30);
const START_INTERVAL: Duration = Duration::from_secs(5);
const RETRIES: u32 = 3;
/// The shortest time between two probes, whatever the image says.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Docker keeps the last five results, each with at most 4 KiB of output.
const LOG_ENTRIES: usize = 5;
const OUTPUT_MAX: usize = 4096;

/// The `--health-*` flags as given (durations in nanoseconds, as docker
/// stores them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthFlags {
    pub cmd: Option<String>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub start_period: Option<i64>,
    pub start_interval: Option<i64>,
    pub retries: Option<u32>,
    /// `--no-healthcheck`.
    pub none: bool,
}

/// A duration as Go writes them (`30s`, `1m30s`, `1.5s`, `500ms`), in
/// nanoseconds; at least a millisecond, as docker requires.
pub fn duration(name: &str, text: &str) -> Result<i64> {
    let bad = || {
        flag(
            name,
            format!("{text:?}: a duration such as 30s, 1m30s or 500ms"),
        )
    };
    let total = capsa_sys::time::parse_duration(text)
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .ok_or_else(bad)?;
    if total < 1_000_000 {
        return Err(flag(
            name,
            format!("{text:?}: at least 1ms, as docker requires"),
        ));
    }
    Ok(total)
}

/// The check a container runs: the flags over the image's HEALTHCHECK,
/// field by field, as docker merges them.
pub fn resolve(image: Option<&Healthcheck>, f: &HealthFlags) -> Result<Option<Healthcheck>> {
    let any = f.cmd.is_some()
        || f.interval.is_some()
        || f.timeout.is_some()
        || f.start_period.is_some()
        || f.start_interval.is_some()
        || f.retries.is_some();
    if f.none {
        if any {
            return Err(flag(
                "--no-healthcheck",
                "conflicts with the --health-* options",
            ));
        }
        return Ok(Some(Healthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        }));
    }
    if !any {
        return Ok(image.cloned());
    }
    let base = image.cloned().unwrap_or_default();
    let h = Healthcheck {
        test: match &f.cmd {
            Some(c) => vec!["CMD-SHELL".into(), c.clone()],
            None => base.test,
        },
        interval: f.interval.or(base.interval),
        timeout: f.timeout.or(base.timeout),
        start_period: f.start_period.or(base.start_period),
        start_interval: f.start_interval.or(base.start_interval),
        retries: f.retries.map(i64::from).or(base.retries),
    };
    command(&h)?;
    Ok(Some(h))
}

/// What a probe runs: `CMD` as given, `CMD-SHELL` through `/bin/sh -c`;
/// none for `NONE` or no test.
pub fn command(h: &Healthcheck) -> Result<Option<Vec<String>>> {
    let bad = |why: &str| flag("--health-cmd (or the image's HEALTHCHECK)", why.to_string());
    match h.test.split_first() {
        None => Ok(None),
        Some((k, _)) if k == "NONE" => Ok(None),
        Some((k, rest)) if k == "CMD" => {
            if rest.is_empty() {
                return Err(bad("CMD with no command"));
            }
            Ok(Some(rest.to_vec()))
        }
        Some((k, rest)) if k == "CMD-SHELL" => {
            if rest.is_empty() {
                return Err(bad("CMD-SHELL with no command"));
            }
            Ok(Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]))
        }
        Some((k, _)) => Err(bad(&format!("{k:?}: the test is NONE, CMD or CMD-SHELL"))),
    }
}

/// A check's timing, with docker's defaults for what it leaves out.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

impl Timing {
    pub fn of(h: &Healthcheck) -> Timing {
        let d = |ns: Option<i64>, default: Duration| match ns {
            Some(n) if n > 0 => Duration::from_nanos(n as u64),
            _ => default,
        };
        // Security: an image's HEALTHCHECK is not bound by the flags' 1 ms
        // floor; a probe a nanosecond apart would have the monitor fork and
        // exec without pause. At most ten a second.
        let floor = |t: Duration| t.max(MIN_INTERVAL);
        Timing {
            interval: floor(d(h.interval, INTERVAL)),
            timeout: d(h.timeout, TIMEOUT),
            start_period: d(h.start_period, Duration::ZERO),
            start_interval: floor(d(h.start_interval, START_INTERVAL)),
            retries: match h.retries {
                Some(n) if n > 0 => n as u32,
                _ => RETRIES,
            },
        }
    }
}

/// `State.Health`, as docker's inspect shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: HealthStatus,
    pub failing_streak: u32,
    pub log: Vec<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn starting() -> Health {
        Health {
            status: HealthStatus::Starting,
            failing_streak: 0,
            log: Vec::new(),
        }
    }

    /// Take a probe's result as docker does: a success is healthy at once;
    /// a failure counts toward `retries` in a row, except while a
    /// starting container is in its start period.
    pub fn apply(&mut self, e: Entry, t: &Timing, in_start_period: bool) {
        if e.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if !(in_start_period && self.status == HealthStatus::Starting) {
            self.failing_streak += 1;
            if self.failing_streak >= t.retries {
                self.status = HealthStatus::Unhealthy;
            }
        }
        self.log.push(e);
        let extra = self.log.len().saturating_sub(LOG_ENTRIES);
        self.log.drain(..extra);
    }
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

impl crate::protocol::Frame for Entry {}

/// A probe under way, in a child process of its own: it execs the check
/// into the container, kills it at its timeout, and reports one [`Entry`]
/// on a pipe.
pub struct Probe {
    child: i32,
    /// The child, by a pidfd: killed (if still there) when dropped, never
    /// a recycled pid.
    child_fd: Option<OwnedFd>,
    report: OwnedFd,
    got: Vec<u8>,
    /// Past this the child itself is overdue: killed, the result a timeout.
    overdue: Instant,
    timeout: Duration,
    start: String,
}

/// Start a probe of `c`'s check. The caller must be single-threaded (it
/// forks; the monitor and the command line are).
#[allow(unsafe_code)] // fork: see the SAFETY note
pub fn start(engine: &Engine, c: &Container, h: &Healthcheck) -> Result<Probe> {
    let args = command(h)?
        .ok_or_else(|| Error::Conflict(format!("container {} has no health check", c.name)))?;
    let t = Timing::of(h);
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::sys("pipe", "health check", e))?;
    let start = capsa_sys::time::now_rfc3339();
    // SAFETY: the caller is single-threaded (this function's contract).
    match unsafe { capsa_sys::process::fork() }
        .map_err(|e| Error::sys("fork", "health check", e))?
    {
        Forked::Child => {
            drop(r);
            // The monitor's fds (its clients, the container's stdio, the
            // log) are not the probe's business: only the report pipe is
            // kept, as fd 3. (The door closes them again before the exec.)
            let _ = capsa_sys::fd::dup_to(w.as_raw_fd(), 3);
            let _ = capsa_sys::fd::close_range(4, i32::MAX);
            std::mem::forget(w);
            // SAFETY: fd 3 is the pipe's write end, dup'd just above and
            // owned by nothing else now.
            let w = match unsafe { capsa_sys::fd::inherited(3) } {
                Ok(fd) => fd,
                Err(_) => capsa_sys::process::exit_now(1),
            };
            let entry = run(engine, c, args, t.timeout, start);
            let _ = std::fs::File::from(w).write_all(&crate::protocol::Frame::encode(&entry));
            capsa_sys::process::exit_now(0)
        }
        Forked::Parent(child) => {
            drop(w);
            let _ = rustix::io::ioctl_fionbio(&r, true);
            Ok(Probe {
                child: child.as_raw(),
                child_fd: capsa_sys::process::pidfd_open(child).ok(),
                report: r,
                got: Vec::new(),
                overdue: Instant::now() + t.timeout + Duration::from_secs(10),
                timeout: t.timeout,
                start,
            })
        }
    }
}

use std::io::Write;

impl Probe {
    /// What to poll for the report.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.report.as_fd()
    }

    /// When it is overdue.
    pub fn overdue(&self) -> Instant {
        self.overdue
    }

    /// The result, once the child has reported (or is overdue: killed).
    /// Never waits.
    pub fn try_finish(&mut self) -> Option<Entry> {
        let mut buf = [0u8; 8192];
        loop {
            match rustix::io::read(&self.report, &mut buf) {
                Ok(0) => {
                    let e = match crate::protocol::Frame::decode(&self.got) {
                        Ok(e) => e,
                        Err(_) => self.failed("the probe process died without a result"),
                    };
                    return Some(e);
                }
                Ok(n) => {
                    // One entry: its output is bounded, so is this.
                    if self.got.len() < 64 * 1024 {
                        self.got.extend_from_slice(&buf[..n]);
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => break,
            }
        }
        if Instant::now() >= self.overdue {
            self.kill();
            return Some(self.failed(&format!(
                "Health check exceeded timeout ({:?})",
                self.timeout
            )));
        }
        None
    }

    /// Wait for the result (the command line's `healthcheck run`).
    pub fn finish(mut self) -> Entry {
        loop {
            if let Some(e) = self.try_finish() {
                let _ = nix::sys::wait::waitpid(Pid::from_raw(self.child), None);
                return e;
            }
            let left = self.overdue.saturating_duration_since(Instant::now());
            crate::protocol::poll_in(&[self.report.as_fd()], left.as_millis().max(1) as i32);
        }
    }

    fn kill(&self) {
        if let Some(fd) = &self.child_fd {
            let _ = capsa_sys::process::pidfd_send_signal(fd.as_raw_fd(), libc::SIGKILL);
        }
    }

    fn failed(&self, why: &str) -> Entry {
        Entry {
            start: self.start.clone(),
            end: capsa_sys::time::now_rfc3339(),
            exit_code: -1,
            output: why.to_string(),
        }
    }
}

impl Drop for Probe {
    /// A probe still under way when its container exits goes with it.
    fn drop(&mut self) {
        self.kill();
    }
}

/// In the probe's child: exec the check, its stdout and stderr into a
/// pipe, and wait for it, killing it at `timeout`.
fn run(
    engine: &Engine,
    c: &Container,
    args: Vec<String>,
    timeout: Duration,
    start: String,
) -> Entry {
    let entry = |exit_code: i32, output: String| Entry {
        start: start.clone(),
        end: capsa_sys::time::now_rfc3339(),
        exit_code,
        output,
    };
    let Ok((out_r, out_w)) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) else {
        return entry(-1, "pipe: no file descriptors".into());
    };
    for fd in [1, 2] {
        let _ = capsa_sys::fd::dup_to(out_w.as_raw_fd(), fd);
    }
    drop(out_w);
    // The probe is ours to wait for, wherever the exec forked it.
    let _ = capsa_sys::process::set_child_subreaper();
    let o = ExecOptions {
        args,
        ..Default::default()
    };
    let spawned = crate::runtime::Runtime::of(engine, c).spawn(engine, c, &o);
    // Only the probe holds the pipe now: its end is ours to see.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        for fd in [1, 2] {
            let _ = capsa_sys::fd::dup_to(null.as_raw_fd(), fd);
        }
    }
    let pid = match spawned {
        Ok((pid, _)) => pid,
        Err(e) => return entry(-1, e.to_string()),
    };
    let Ok(pidfd) = capsa_sys::process::pidfd_open(Pid::from_raw(pid)) else {
        return entry(-1, "the probe was gone before it was watched".into());
    };
    let _ = rustix::io::ioctl_fionbio(&out_r, true);
    let mut output = Vec::new();
    // A bounded number of reads a round: a probe that writes without end
    // must not keep the deadline from being looked at.
    let read = |output: &mut Vec<u8>| {
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            match rustix::io::read(&out_r, &mut buf) {
                Ok(n) if n > 0 => {
                    let room = OUTPUT_MAX.saturating_sub(output.len());
                    output.extend_from_slice(&buf[..n.min(room)]);
                }
                _ => break,
            }
        }
    };
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() && !timed_out {
            let _ = capsa_sys::process::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
            timed_out = true;
        }
        let ms = if timed_out {
            1000
        } else {
            left.as_millis().max(1) as i32
        };
        let ready = crate::protocol::poll_in(&[pidfd.as_fd(), out_r.as_fd()], ms);
        read(&mut output);
        if ready.first() == Some(&true) {
            break;
        }
    }
    let code = match nix::sys::wait::waitpid(Pid::from_raw(pid), None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => c,
        Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => 128 + s as i32,
        _ => -1,
    };
    read(&mut output);
    if timed_out {
        return entry(-1, format!("Health check exceeded timeout ({timeout:?})"));
    }
    entry(code, String::from_utf8_lossy(&output).into_owned())
}

/// Record a probe's result in `id`'s record, under its lock (whether it
/// is still in its start period is read from the record's start time);
/// the health as it now is.
pub fn record(engine: &Engine, id: &str, e: Entry, h: &Healthcheck) -> Result<Health> {
    let t = Timing::of(h);
    let mut out = Health::starting();
    let mut before = None;
    let c = engine.update(id, |r| {
        let since = r
            .state
            .started_at
            .as_deref()
            .and_then(capsa_sys::time::parse_rfc3339)
            .map(|s| crate::manage::now_secs().saturating_sub(s));
        let in_start = since.is_some_and(|s| Duration::from_secs(s) < t.start_period);
        let health = r.state.health.get_or_insert_with(Health::starting);
        before = Some(health.status);
        health.apply(e, &t, in_start);
        out = health.clone();
    })?;
    // docker's `health_status: STATUS`, when it changes.
    if before != Some(out.status) {
        let word = match out.status {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        };
        crate::events::emit(
            engine,
            &crate::events::Event::container(&c, &format!("health_status: {word}"), &[]),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        assert_eq!(
            duration("--health-interval", "30s").unwrap(),
            30_000_000_000
        );
        assert_eq!(
            duration("--health-interval", "1m30s").unwrap(),
            90_000_000_000
        );
        assert_eq!(
            duration("--health-interval", "1.5s").unwrap(),
            1_500_000_000
        );
        assert_eq!(duration("--health-timeout", "500ms").unwrap(), 500_000_000);
        for bad in ["", "30", "s", "1x", "100us", "-1s"] {
            let e = duration("--health-timeout", bad).unwrap_err().to_string();
            assert!(e.starts_with("--health-timeout"), "{bad}: {e}");
        }
    }

    #[test]
    fn flags_merge_over_the_image_field_by_field() {
        let image = Healthcheck {
            test: vec!["CMD".into(), "probe".into()],
            interval: Some(5_000_000_000),
            retries: Some(7),
            ..Default::default()
        };
        let f = HealthFlags {
            interval: Some(1_000_000_000),
            ..Default::default()
        };
        let h = resolve(Some(&image), &f).unwrap().unwrap();
        assert_eq!(h.test, ["CMD", "probe"]);
        assert_eq!((h.interval, h.retries), (Some(1_000_000_000), Some(7)));
        let f = HealthFlags {
            cmd: Some("test -e /ok".into()),
            ..Default::default()
        };
        let h = resolve(Some(&image), &f).unwrap().unwrap();
        assert_eq!(
            command(&h).unwrap().unwrap(),
            ["/bin/sh", "-c", "test -e /ok"]
        );
        let none = HealthFlags {
            none: true,
            ..Default::default()
        };
        let h = resolve(Some(&image), &none).unwrap().unwrap();
        assert_eq!(command(&h).unwrap(), None);
        let both = HealthFlags {
            none: true,
            retries: Some(2),
            ..Default::default()
        };
        assert!(resolve(None, &both)
            .unwrap_err()
            .to_string()
            .contains("--no-healthcheck"));
        assert_eq!(resolve(None, &HealthFlags::default()).unwrap(), None);
    }

    #[test]
    fn an_images_probe_interval_has_a_floor() {
        let t = Timing::of(&Healthcheck {
            interval: Some(1),
            start_interval: Some(1),
            ..Default::default()
        });
        assert_eq!((t.interval, t.start_interval), (MIN_INTERVAL, MIN_INTERVAL));
    }

    #[test]
    fn a_streak_of_failures_makes_it_unhealthy_except_in_the_start_period() {
        let t = Timing::of(&Healthcheck {
            retries: Some(2),
            ..Default::default()
        });
        let e = |code| Entry {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        };
        let mut h = Health::starting();
        h.apply(e(1), &t, true);
        h.apply(e(1), &t, true);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 0));
        h.apply(e(0), &t, true);
        assert_eq!(h.status, HealthStatus::Healthy);
        h.apply(e(1), &t, true);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 1));
        h.apply(e(1), &t, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Unhealthy, 2));
        for _ in 0..10 {
            h.apply(e(1), &t, false);
        }
        assert_eq!(h.log.len(), LOG_ENTRIES);
    }
}
