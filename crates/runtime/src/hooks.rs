//! OCI hooks: each runs with the container's state JSON on stdin, its own
//! args and env, and an optional timeout in seconds.

use capsa_spec::oci::Hook;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a hook failed.
#[derive(Debug)]
pub struct HookFailure {
    pub index: usize,
    pub path: String,
    pub why: String,
}

/// Run `hooks` in order with `state` on stdin; stop at the first failure.
pub fn run(hooks: &[Hook], state: &str) -> Result<(), HookFailure> {
    for (index, h) in hooks.iter().enumerate() {
        run_one(h, state, None).map_err(|why| HookFailure {
            index,
            path: h.path().display().to_string(),
            why,
        })?;
    }
    Ok(())
}

/// Run host programs that run inside the container's namespaces
/// (createContainer) each from a sealed image of its binary.
///
/// Security: CVE-2019-5736 class. A process of the container that shares
/// their pid namespace could otherwise reach the host's binary through
/// `/proc/PID/exe` while the hook runs.
pub fn run_sealed(hooks: &[Hook], state: &str) -> Result<(), HookFailure> {
    for (index, h) in hooks.iter().enumerate() {
        let fail = |why: String| HookFailure {
            index,
            path: h.path().display().to_string(),
            why,
        };
        let (image, _) =
            capsa_sys::exe::sealed(h.path()).map_err(|e| fail(format!("seal: {}", e.desc())))?;
        // Open across the execve, for a script's interpreter to read it
        // through /proc/self/fd (we are single-threaded: only the hook
        // inherits it).
        use std::os::fd::AsRawFd;
        capsa_sys::fd::set_cloexec(image.as_raw_fd(), false)
            .map_err(|e| fail(format!("seal: {}", e.desc())))?;
        let prog = capsa_sys::resolve::fd_path(image.as_raw_fd());
        run_one(h, state, Some(std::path::Path::new(&prog))).map_err(fail)?;
    }
    Ok(())
}

/// Run every hook, collecting failures instead of stopping (poststart and
/// poststop: the spec asks for a warning and to go on).
pub fn run_all(hooks: &[Hook], state: &str) -> Vec<HookFailure> {
    hooks
        .iter()
        .enumerate()
        .filter_map(|(index, h)| {
            run_one(h, state, None).err().map(|why| HookFailure {
                index,
                path: h.path().display().to_string(),
                why,
            })
        })
        .collect()
}

/// Run one hook: its `path`, or `program` (the same binary, sealed).
fn run_one(h: &Hook, state: &str, program: Option<&std::path::Path>) -> Result<(), String> {
    let mut cmd = Command::new(program.unwrap_or(h.path()));
    // argv[0] is the hook's own, whichever file runs.
    cmd.arg0(h.path());
    if let Some(args) = h.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("start: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is not an error.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut pause = Duration::from_micros(100);
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            break s;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {} s", h.timeout().unwrap_or(0)));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    };
    if status.success() {
        return Ok(());
    }
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut out);
    }
    Err(format!(
        "{status}{}{}",
        if out.is_empty() { "" } else { ", output: " },
        out.trim()
    ))
}
