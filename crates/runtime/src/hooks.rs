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
/// One hook; its failure in runc's words ("error running hook: ..."),
/// which engines and users look for.
fn run_one(h: &Hook, state: &str, program: Option<&std::path::Path>) -> Result<(), String> {
    run_hook(h, state, program).map_err(|why| format!("error running hook: {why}"))
}

fn run_hook(h: &Hook, state: &str, program: Option<&std::path::Path>) -> Result<(), String> {
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
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    // Security (fault): the state goes in and the output comes out while
    // the hook runs, all three pipes non-blocking under one poll. Read
    // only after the exit, a hook writing more than a pipe holds (or not
    // reading a large state) would wait on us forever.
    let mut pipes = match Pipes::new(&mut child, state.as_bytes()) {
        Ok(p) => p,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let mut pause = Duration::from_micros(100);
    let status = loop {
        pipes.pump();
        if let Some(s) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            pipes.pump();
            break s;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {} s", h.timeout().unwrap_or(0)));
        }
        let left = deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(100));
        if pipes.open() {
            pipes.wait(left.min(Duration::from_millis(100)));
        } else {
            // Every pipe closed: only the exit is left to see.
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    };
    let out = String::from_utf8_lossy(&pipes.kept).into_owned();
    if status.success() {
        return Ok(());
    }
    // A signal by its description too ("bad system call" for a seccomp
    // kill), as runc says it.
    let how = match std::os::unix::process::ExitStatusExt::signal(&status) {
        Some(sig) => format!(
            "signal: {sig} ({})",
            capsa_sys::process::signal_description(sig).to_lowercase()
        ),
        None => status.to_string(),
    };
    Err(format!(
        "{how}{}{}",
        if out.is_empty() { "" } else { ", output: " },
        out.trim()
    ))
}

/// How much of a hook's output is kept for its error message.
const KEEP: usize = 4 << 10;

/// A hook's stdin, stdout and stderr, pumped without blocking.
struct Pipes {
    stdin: Option<std::process::ChildStdin>,
    input: Vec<u8>,
    outputs: Vec<Option<Box<dyn ReadFd>>>,
    kept: Vec<u8>,
}

trait ReadFd: Read + std::os::fd::AsFd {}
impl<T: Read + std::os::fd::AsFd> ReadFd for T {}

fn nonblocking(fd: std::os::fd::BorrowedFd<'_>) -> Result<(), String> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::fd::AsRawFd;
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).map_err(|e| format!("pipe: {e}"))?;
    fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map(drop)
    .map_err(|e| format!("pipe: {e}"))
}

impl Pipes {
    fn new(child: &mut std::process::Child, input: &[u8]) -> Result<Pipes, String> {
        use std::os::fd::AsFd;
        let stdin = child.stdin.take();
        if let Some(s) = &stdin {
            nonblocking(s.as_fd())?;
        }
        let mut outputs: Vec<Option<Box<dyn ReadFd>>> = Vec::new();
        if let Some(s) = child.stdout.take() {
            nonblocking(s.as_fd())?;
            outputs.push(Some(Box::new(s)));
        }
        if let Some(s) = child.stderr.take() {
            nonblocking(s.as_fd())?;
            outputs.push(Some(Box::new(s)));
        }
        Ok(Pipes {
            stdin,
            input: input.to_vec(),
            outputs,
            kept: Vec::new(),
        })
    }

    /// Write what the hook takes, read what it wrote (keeping the first
    /// [`KEEP`] bytes), without blocking.
    fn pump(&mut self) {
        if let Some(s) = &mut self.stdin {
            while !self.input.is_empty() {
                match s.write(&self.input) {
                    Ok(n) => {
                        self.input.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // A hook that does not read its stdin is not an error.
                    Err(_) => {
                        self.input.clear();
                    }
                }
            }
            if self.input.is_empty() {
                self.stdin = None;
            }
        }
        let mut buf = [0u8; 16 << 10];
        for slot in &mut self.outputs {
            // A bounded read per call: writers that never pause must not
            // keep us from the timeout.
            let mut budget = 1usize << 20;
            while let (Some(r), true) = (slot.as_mut(), budget > 0) {
                match r.read(&mut buf) {
                    Ok(0) => *slot = None,
                    Ok(n) => {
                        budget = budget.saturating_sub(n);
                        let room = KEEP.saturating_sub(self.kept.len());
                        self.kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => *slot = None,
                }
            }
        }
    }

    /// Whether a pipe is still open.
    fn open(&self) -> bool {
        self.stdin.is_some() || self.outputs.iter().any(Option::is_some)
    }

    /// Sleep until a pipe is ready or `max` has passed.
    fn wait(&self, max: Duration) {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds: Vec<PollFd<'_>> = Vec::new();
        if let Some(s) = &self.stdin {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLOUT));
        }
        for r in self.outputs.iter().flatten() {
            fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
        }
        let ms = u16::try_from(max.as_millis()).unwrap_or(u16::MAX);
        let _ = nix::poll::poll(&mut fds, PollTimeout::from(ms));
    }
}
