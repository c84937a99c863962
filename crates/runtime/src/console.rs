//! Terminals, as runc hands them out: the process allocates its pty from the
//! container's own devpts, sends the master to the runtime over the
//! channel, and the runtime passes it on to `--console-socket` (or keeps it
//! to proxy itself, for `run` in the foreground).

use crate::channel::{Channel, Msg};
use crate::error::{ChildError, Error, Result};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// The runtime's side: a connection to `--console-socket`, if given.
pub(crate) struct ConsoleSocket {
    conn: Option<(UnixStream, PathBuf)>,
}

impl ConsoleSocket {
    /// Connect now, so that a wrong path fails before anything is made.
    pub fn connect(path: Option<&Path>) -> Result<ConsoleSocket> {
        let conn = match path {
            Some(p) => Some((
                UnixStream::connect(p)
                    .map_err(|e| Error::io("connect console socket", p.display(), e))?,
                p.to_path_buf(),
            )),
            None => None,
        };
        Ok(ConsoleSocket { conn })
    }

    /// Pass the pty master on; without a socket, hand it back to keep.
    pub fn forward(&self, master: Option<OwnedFd>) -> Result<Option<OwnedFd>> {
        let master = master.ok_or_else(|| Error::State("console message without a pty".into()))?;
        match &self.conn {
            Some((sock, path)) => {
                // runc sends the terminal's name as the payload.
                capsa_sys::fd::send_with_fd(sock.as_fd(), b"/dev/ptmx", Some(master.as_raw_fd()))
                    .map_err(|e| Error::sys("send pty master to console socket", path.display(), e))?;
                Ok(None)
            }
            None => Ok(Some(master)),
        }
    }
}

/// The process's side: open a pty from the container's devpts (`/dev/pts`
/// resolved inside `root`, which is the rootfs before pivot_root and `/`
/// once inside), send the master over `chan`, and make the slave our
/// stdio and controlling terminal. Returns the slave's fd.
pub(crate) fn attach(
    chan: &Channel,
    root: &capsa_sys::root::Root,
    size: Option<(u16, u16)>,
    owner: u32,
) -> std::result::Result<OwnedFd, ChildError> {
    let devpts = root
        .open_at(
            Path::new("/dev/pts"),
            libc::O_PATH | libc::O_DIRECTORY,
            capsa_sys::resolve::Symlinks::Refuse,
        )
        .map_err(|e| ChildError::sys("console", "open", "/dev/pts", e))?;
    let (master, slave, n) = capsa_sys::fd::open_pty_in(devpts.as_fd())
        .map_err(|e| ChildError::sys("console", "open pty in", "/dev/pts (devpts, ptmx 5:2)", e))?;
    if let Some((rows, cols)) = size {
        let _ = capsa_sys::fd::set_window_size(master.as_raw_fd(), rows, cols);
    }
    // The terminal is the process's own, as runc makes it: its user owns
    // the slave (the group stays devpts' gid= option, the tty group).
    nix::unistd::fchown(
        slave.as_raw_fd(),
        Some(nix::unistd::Uid::from_raw(owner)),
        None,
    )
    .map_err(|e| ChildError::sys("console", "fchown", format!("/dev/pts/{n}"), e))?;
    chan.send_fd(&Msg::Console, Some(master.as_raw_fd()))
        .map_err(|e| ChildError::sys("console", "send", "pty master", e))?;
    drop(master);
    for target in 0..3 {
        capsa_sys::fd::dup_to(slave.as_raw_fd(), target)
            .map_err(|e| ChildError::sys("console", "dup", target, e))?;
    }
    capsa_sys::fd::set_controlling_tty(0)
        .map_err(|e| ChildError::sys("console", "TIOCSCTTY", format!("/dev/pts/{n}"), e))?;
    Ok(slave)
}

/// Pass a seccomp listener fd to the agent at `listenerPath`, with the
/// container process state the OCI spec defines for it.
pub(crate) fn to_seccomp_agent(
    agent: Option<&(PathBuf, String)>,
    fd: Option<OwnedFd>,
    pid: i32,
    state: crate::state::OciState,
) -> Result<()> {
    let (path, metadata) =
        agent.ok_or_else(|| Error::State("a seccomp listener without a listenerPath".into()))?;
    let fd = fd.ok_or_else(|| Error::State("seccomp listener message without an fd".into()))?;
    let sock = UnixStream::connect(path)
        .map_err(|e| Error::io("failed to connect with seccomp agent at", path.display(), e))?;
    let msg = serde_json::json!({
        "ociVersion": capsa_spec::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata,
        "state": state,
    });
    capsa_sys::fd::send_with_fd(
        sock.as_fd(),
        msg.to_string().as_bytes(),
        Some(fd.as_raw_fd()),
    )
    .map_err(|e| Error::sys("send seccomp listener", path.display(), e))
}
