//! Making the container, in a child of the monitor: through the runtime
//! library, or another runtime binary with runc's command line. The child
//! exits once the init exists, so the init is reparented to the monitor
//! (its subreaper) and the monitor never holds the create path's memory.

use super::serve::Stdio;
use super::{devnull, pipe, seqpacket_pair};
use crate::container::Container;
use crate::error::{Error, Result};
use crate::protocol::{self, Created, Frame, Report};
use crate::Engine;
use capsa_sys::process::Forked;
use nix::sys::wait::waitpid;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

/// Create `c`: the init's pid, the create steps, and the container's
/// stdio as the monitor holds it.
#[allow(unsafe_code)] // fork: see the SAFETY notes
pub(super) fn create(engine: &Engine, c: &Container) -> Result<(i32, Vec<String>, Stdio)> {
    let tty = c.options.tty;
    // The namespaces of other containers, resolved again for this start
    // (their inits may not be the ones the bundle last named).
    let joins = crate::joins::refresh(engine, c)?;
    let null = devnull()?;
    let mut stdio = Stdio::new(tty);
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
            let created = crate::runtime::Runtime::of(engine, c).create(engine, c);
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
            if let Err(e) = crate::joins::verify(pid, &joins) {
                crate::runtime::Runtime::of(engine, c).delete(&c.id);
                return Err(e);
            }
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
            // Input is written as the container reads it, never waited on.
            if let Some(input) = &stdio.input {
                let _ = rustix::io::ioctl_fionbio(input, true);
            }
            // The container holds its ends; ours go, so EOF means it is done.
            drop((init_stdin, out_w, err_w));
            Ok((pid, trace, stdio))
        }
    }
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
