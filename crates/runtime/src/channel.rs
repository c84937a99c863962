//! The one channel between the runtime and the process it creates: a
//! `SOCK_SEQPACKET` socketpair carrying [`Msg`] as JSON, with fds attached by
//! `SCM_RIGHTS`. Message boundaries are kept by the socket type.

use crate::error::{ChildError, Error, Result};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, OwnedFd};

/// Every message either side can send.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Msg {
    /// child -> parent: write my uid/gid maps (my user namespace exists).
    MapsPlease,
    /// parent -> child: maps written (and cgroup joined).
    MapsDone,
    /// intermediate -> parent: the container process, as a host pid.
    Pid(i32),
    /// child -> parent, with the pty master attached.
    Console,
    /// child -> parent: namespaces and mounts exist, run the runtime-side
    /// hooks (prestart, createRuntime).
    HooksPlease,
    /// parent -> child: hooks done; the OCI state for the child's own hooks.
    HooksDone(String),
    /// child -> parent: set up, waiting to be started; what each step cost.
    Ready(crate::trace::Trace),
    /// parent -> child: go on.
    Go,
    /// child -> parent, with the seccomp listener fd attached (for the
    /// agent at linux.seccomp.listenerPath).
    SeccompListener,
    /// child -> parent: set-up failed.
    Failed(ChildError),
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    pub fd: OwnedFd,
}

/// A connected pair: (parent end, child end).
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::sys("socketpair", "channel", e))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    /// Send `msg` with an optional fd.
    pub fn send_fd(
        &self,
        msg: &Msg,
        fd: Option<std::os::fd::RawFd>,
    ) -> std::result::Result<(), nix::errno::Errno> {
        let bytes = serde_json::to_vec(msg).unwrap_or_default();
        capsa_sys::fd::send_with_fd(self.fd.as_fd(), &bytes, fd)
    }

    /// Send `msg`.
    pub fn send(&self, msg: &Msg) -> std::result::Result<(), nix::errno::Errno> {
        self.send_fd(msg, None)
    }

    /// Receive the next message and the fd it carried; `None` when the other
    /// side closed its end (exited, or exec'd: the fd is close-on-exec).
    pub fn recv(&self) -> std::result::Result<Option<(Msg, Option<OwnedFd>)>, nix::errno::Errno> {
        // Messages are small (the largest is the init's trace or a state
        // JSON); 64 KiB stays under malloc's mmap threshold, so a receive on
        // the start path costs no mmap/munmap.
        let mut buf = vec![0u8; 64 * 1024];
        // A peer that closed with our last message unread leaves ECONNRESET
        // pending, reported once, ahead of what it sent before it went (a
        // joiner's Failed report, say): read on to that.
        let (n, fd) = match capsa_sys::fd::recv_with_fd(self.fd.as_fd(), &mut buf) {
            Err(nix::errno::Errno::ECONNRESET) => {
                capsa_sys::fd::recv_with_fd(self.fd.as_fd(), &mut buf)?
            }
            r => r?,
        };
        if n == 0 {
            return Ok(None);
        }
        match serde_json::from_slice(&buf[..n]) {
            Ok(m) => Ok(Some((m, fd))),
            Err(_) => Err(nix::errno::Errno::EBADMSG),
        }
    }
}
