//! Making the container, in a child of the monitor: through the runtime
//! library, or another runtime binary with runc's command line. The child
//! exits once the init exists, so the init is reparented to the monitor
//! (its subreaper) and the monitor never holds the create path's memory.

use super::serve::{poll_in, Stdio};
use super::{devnull, pipe, seqpacket_pair};
use crate::container::Container;
use crate::error::{Error, Result};
use crate::protocol::{self, Created, Frame, Report};
use crate::Engine;
use capsa_sys::process::Forked;
use nix::sys::wait::waitpid;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

/// Create `c`: the init's pid, the create steps, and the container's
/// stdio as the monitor holds it.
#[allow(unsafe_code)] // fork: see the SAFETY notes
pub(super) fn create(engine: &Engine, c: &Container) -> Result<(i32, Vec<String>, Stdio)> {
    let rt = engine.runtime_store();
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
    // The create runs in a child that exits once the init exists: the
    // init is then reparented to us (we are its subreaper), and the
    // monitor never holds the create path's memory (spec, seccomp).
    let (to_init_stdin, init_stdin) = if !tty && c.options.interactive {
        let (r, w) = pipe()?;
        (Some(w), r)
    } else {
        (
            None,
            null.try_clone()
                .map_err(|e| Error::sys("dup", "/dev/null", e))?,
        )
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (sp, sc) = seqpacket_pair()?;
    // SAFETY: the monitor is single-threaded.
    match unsafe { capsa_sys::process::fork() }.map_err(|e| Error::sys("fork", "create", e))? {
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
                Some(bin) => external(engine, c, bin, tty),
                None => capsa_runtime::create(&rt, &opts)
                    .map(|mut created| {
                        (
                            Created::Created {
                                pid: created.state.pid,
                                trace: created.trace.lines(),
                            },
                            created.console.take(),
                        )
                    })
                    .map_err(Error::from),
            };
            let (msg, console, code) = match created {
                Ok((msg, console)) => (msg, console, 0),
                Err(e) => (Created::Failed(e.failure()), None, 1),
            };
            let _ = protocol::send_with_fd(&sc, &msg, console.as_ref().map(|f| f.as_raw_fd()));
            capsa_sys::process::exit_now(code)
        }
        Forked::Parent(child) => {
            drop(sc);
            let mut buf = vec![0u8; 256 * 1024];
            let got = protocol::recv_with_fd::<Created>(&sp, &mut buf);
            let _ = waitpid(child, None);
            let (msg, console) = got
                .map_err(|e| Error::Protocol(format!("the create process: {e}")))?
                .ok_or_else(|| {
                    Error::Protocol("the create process died without a report".into())
                })?;
            let (pid, trace) = match msg {
                Created::Created { pid, trace } => (pid, trace),
                Created::Failed(f) => return Err(f.into()),
            };
            if tty {
                let master =
                    console.ok_or_else(|| Error::Protocol("no pty from the runtime".into()))?;
                stdio.input = Some(
                    master
                        .try_clone()
                        .map_err(|e| Error::sys("dup", "the pty", e))?,
                );
                stdio.out = Some(master);
            } else {
                stdio.input = to_init_stdin;
                stdio.out = Some(out_r);
                stdio.err = Some(err_r);
            }
            // The container holds its ends; ours go, so EOF means it is done.
            drop((init_stdin, out_w, err_w));
            Ok((pid, trace, stdio))
        }
    }
}

/// Create through a runtime binary with runc's command line: its stdio is
/// the container's (runc passes it through), a console socket receives the
/// pty master, and the pid comes from `--pid-file`. Runs in the create
/// child; the runtime's init is reparented to the monitor when it exits.
fn external(
    engine: &Engine,
    c: &Container,
    bin: &str,
    tty: bool,
) -> Result<(Created, Option<OwnedFd>)> {
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
        .map_err(|e| Error::sys("spawn", bin.display(), e))?;
    let master = match &console {
        Some(l) => {
            // The runtime connects once the pty exists (or exits on error).
            let ready = poll_in(&[l.as_fd()], 30_000);
            if ready.first().copied().unwrap_or(false) {
                let conn = rustix::net::accept_with(l, rustix::net::SocketFlags::CLOEXEC)
                    .map_err(|e| Error::sys("accept", "console socket", e))?;
                let mut buf = [0u8; 4096];
                capsa_sys::fd::recv_with_fd(conn.as_fd(), &mut buf)
                    .map_err(|e| Error::sys("recvmsg", "console socket", e))?
                    .1
            } else {
                None
            }
        }
        None => None,
    };
    let status = child
        .wait()
        .map_err(|e| Error::sys("wait", bin.display(), e))?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let last = text.lines().last().unwrap_or("").to_string();
        let message = if last.is_empty() {
            status.to_string()
        } else {
            last
        };
        return Err(Error::ExternalRuntime {
            bin: bin.display().to_string(),
            verb: "create".into(),
            kind: crate::runtime::kind_of_words(&message),
            message,
        });
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::ExternalRuntime {
            bin: bin.display().to_string(),
            verb: "create".into(),
            kind: crate::error::Kind::Runtime,
            message: "it wrote no pid file".into(),
        })?;
    let trace = vec![format!(
        "{:>8} us {:>+7} us  runtime {} create (an external runtime: its own steps are not traced)",
        t0.elapsed().as_micros(),
        t0.elapsed().as_micros(),
        bin.display()
    )];
    Ok((Created::Created { pid, trace }, master))
}

fn console_listener(path: &std::path::Path) -> Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    let fd = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys("socket", path.display(), e))?;
    let addr = rustix::net::SocketAddrUnix::new(path)
        .map_err(|e| Error::sys("socket", path.display(), e))?;
    protocol::bind_private(&fd, &addr).map_err(|e| Error::sys("bind", path.display(), e))?;
    rustix::net::listen(&fd, 1).map_err(|e| Error::sys("listen", path.display(), e))?;
    Ok(fd)
}

/// Run `f` in a child process and return its result: the monitor stays
/// small (the start path reads the whole OCI state; its code and heap stay
/// in the child). A failure comes back as a [`Failure`] frame, its kind
/// kept.
#[allow(unsafe_code)] // fork: see the SAFETY notes
pub(super) fn in_child(f: impl FnOnce() -> Result<()>) -> Result<()> {
    let (r, w) = pipe()?;
    // SAFETY: the monitor is single-threaded.
    match unsafe { capsa_sys::process::fork() }.map_err(|e| Error::sys("fork", "start", e))? {
        Forked::Child => {
            drop(r);
            if let Err(e) = f() {
                let _ = std::fs::File::from(w).write_all(&Report::Failed(e.failure()).encode());
            }
            capsa_sys::process::exit_now(0)
        }
        Forked::Parent(child) => {
            drop(w);
            let mut frame = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut frame);
            let _ = waitpid(child, None);
            if frame.is_empty() {
                return Ok(());
            }
            match Report::decode(&frame) {
                Ok(Report::Failed(f)) => Err(f.into()),
                Ok(_) => Err(Error::Protocol(
                    "the start process reported nonsense".into(),
                )),
                Err(e) => Err(Error::Protocol(format!("the start process: {e}"))),
            }
        }
    }
}
