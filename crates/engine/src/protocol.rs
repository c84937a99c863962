//! The one protocol between `capsa`, its monitors and a monitor's create
//! child: one enum per direction, every failure a typed [`Failure`].
//!
//! ```text
//! capsa ──ToMonitor──> monitor          (SOCK_SEQPACKET, one frame a packet)
//! capsa <──FromMonitor── monitor
//! capsa <──Report── monitor             (a pipe, one frame: created or why not)
//! monitor <──Created── create child     (SOCK_SEQPACKET, the pty master attached)
//! ```
//!
//! A frame is `[VERSION, tag, payload...]`: tag [`CONTROL`] carries the
//! message as JSON; the stream tags carry container input or output as raw
//! bytes (no encoding on the hot path). A frame of another version is
//! refused, so two binaries of different builds say so rather than
//! misread each other.

pub use crate::error::Failure;
/// `poll(2)` on `fds` for `flags`, up to `ms` (forever when negative):
/// the events of each.
pub fn poll(
    fds: &[std::os::fd::BorrowedFd<'_>],
    flags: &[rustix::event::PollFlags],
    ms: i32,
) -> Vec<rustix::event::PollFlags> {
    let mut p: Vec<rustix::event::PollFd<'_>> = fds
        .iter()
        .zip(flags)
        .map(|(f, fl)| rustix::event::PollFd::new(f, *fl))
        .collect();
    let ts = rustix::event::Timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) as i64) * 1_000_000,
    };
    let _ = rustix::event::poll(&mut p, if ms < 0 { None } else { Some(&ts) });
    p.iter().map(|x| x.revents()).collect()
}

/// Wait up to `ms` (forever when negative) until one of `fds` can be
/// read; which ones can.
pub fn poll_in(fds: &[std::os::fd::BorrowedFd<'_>], ms: i32) -> Vec<bool> {
    let flags = vec![rustix::event::PollFlags::IN; fds.len()];
    poll(fds, &flags, ms)
        .iter()
        .map(|e| !e.is_empty())
        .collect()
}

#[cfg(test)]
use crate::error::Kind;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, OwnedFd};

/// The protocol's version, first byte of every frame.
pub const VERSION: u8 = 1;
/// The largest frame either side sends.
pub const MAX: usize = 64 * 1024;

const CONTROL: u8 = 0;
const STDIN: u8 = 1;
const STDOUT: u8 = 2;
const STDERR: u8 = 3;

/// Which container a monitor started ahead of it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub id: String,
    /// The client starts the container itself ([`ToMonitor::Start`]) once
    /// attached, so that no output is missed.
    pub attach: bool,
    /// Keep the container's stdin open for clients.
    pub interactive: bool,
}

/// client -> monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToMonitor {
    /// The first frame to a monitor started ahead of its container.
    Hello(Hello),
    /// Start the created container now.
    Start,
    /// Bytes for the container's stdin.
    Stdin(Vec<u8>),
    /// The client's stdin reached its end.
    StdinEof,
    /// The client's window size.
    Resize { rows: u16, cols: u16 },
    /// Forward a signal to the container's init.
    Signal(i32),
}

/// monitor -> client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromMonitor {
    /// Container stdout (or the pty).
    Stdout(Vec<u8>),
    /// Container stderr.
    Stderr(Vec<u8>),
    /// The start asked for is done: the init's pid.
    Started { pid: i32 },
    /// The start failed.
    Failed(Failure),
    /// The container exited with this code: the last frame.
    Exit(i32),
}

/// monitor -> the command that started it, once: the container exists
/// (and, unless the client starts it, runs), or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    Created {
        monitor: i32,
        pid: i32,
        /// The create steps and their cost (runtime and init).
        trace: Vec<String>,
    },
    Failed(Failure),
}

/// create child -> monitor, once, with the pty master attached for a
/// terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Created {
    Created { pid: i32, trace: Vec<String> },
    Failed(Failure),
}

/// A message of the protocol: its frame, and back.
pub trait Frame: Sized + Serialize + serde::de::DeserializeOwned {
    /// The stream tag and bytes of a data message; `None` for control.
    fn data(&self) -> Option<(u8, &[u8])> {
        None
    }
    /// The data message of stream `tag`.
    fn from_data(_tag: u8, _bytes: &[u8]) -> Option<Self> {
        None
    }

    /// This message as one frame.
    fn encode(&self) -> Vec<u8> {
        match self.data() {
            Some((tag, bytes)) => {
                let mut f = Vec::with_capacity(bytes.len() + 2);
                f.extend_from_slice(&[VERSION, tag]);
                f.extend_from_slice(bytes);
                f
            }
            None => {
                let mut f = vec![VERSION, CONTROL];
                // Serializing these types cannot fail: no maps with
                // non-string keys, no foreign Serialize impls.
                f.extend(serde_json::to_vec(self).unwrap_or_default());
                f
            }
        }
    }

    /// The message in `frame`.
    fn decode(frame: &[u8]) -> std::io::Result<Self> {
        let bad = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
        match frame {
            [VERSION, CONTROL, json @ ..] => {
                serde_json::from_slice(json).map_err(|e| bad(format!("a malformed frame: {e}")))
            }
            [VERSION, tag, bytes @ ..] => {
                Self::from_data(*tag, bytes).ok_or_else(|| bad(format!("an unknown frame tag {tag}")))
            }
            [VERSION] => Err(bad("a frame without a tag".into())),
            [v, ..] => Err(bad(format!(
                "a frame of protocol version {v}, not {VERSION} (capsa and its monitor are of different builds)"
            ))),
            [] => Err(bad("an empty frame".into())),
        }
    }
}

impl Frame for ToMonitor {
    fn data(&self) -> Option<(u8, &[u8])> {
        match self {
            ToMonitor::Stdin(b) => Some((STDIN, b)),
            _ => None,
        }
    }
    fn from_data(tag: u8, bytes: &[u8]) -> Option<Self> {
        (tag == STDIN).then(|| ToMonitor::Stdin(bytes.to_vec()))
    }
}

impl Frame for FromMonitor {
    fn data(&self) -> Option<(u8, &[u8])> {
        match self {
            FromMonitor::Stdout(b) => Some((STDOUT, b)),
            FromMonitor::Stderr(b) => Some((STDERR, b)),
            _ => None,
        }
    }
    fn from_data(tag: u8, bytes: &[u8]) -> Option<Self> {
        match tag {
            STDOUT => Some(FromMonitor::Stdout(bytes.to_vec())),
            STDERR => Some(FromMonitor::Stderr(bytes.to_vec())),
            _ => None,
        }
    }
}

impl Frame for Report {}
impl Frame for Created {}

/// Send `m` as one packet on a SOCK_SEQPACKET socket.
pub fn send<M: Frame>(fd: impl AsFd, m: &M) -> std::io::Result<()> {
    let frame = m.encode();
    loop {
        match rustix::net::send(&fd, &frame, rustix::net::SendFlags::NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receive one message; `None` at the end of the connection. `buf` holds
/// the frame ([`MAX`] bytes fit any).
pub fn recv<M: Frame>(fd: impl AsFd, buf: &mut [u8]) -> std::io::Result<Option<M>> {
    loop {
        match rustix::net::recv(&fd, &mut *buf, rustix::net::RecvFlags::empty()) {
            Ok((0, _)) => return Ok(None),
            Ok((n, _)) => return M::decode(&buf[..n.min(buf.len())]).map(Some),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Send `m` with `fd` attached (SCM_RIGHTS).
pub fn send_with_fd<M: Frame>(
    sock: impl AsFd,
    m: &M,
    fd: Option<std::os::fd::RawFd>,
) -> std::io::Result<()> {
    capsa_sys::fd::send_with_fd(sock.as_fd(), &m.encode(), fd).map_err(std::io::Error::from)
}

/// Receive one message and the fd it carried; `None` at the end.
pub fn recv_with_fd<M: Frame>(
    sock: impl AsFd,
    buf: &mut [u8],
) -> std::io::Result<Option<(M, Option<OwnedFd>)>> {
    let (n, fd) = capsa_sys::fd::recv_with_fd(sock.as_fd(), buf).map_err(std::io::Error::from)?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some((M::decode(&buf[..n])?, fd)))
}

/// Connect to a monitor's attach socket.
pub fn connect(path: &std::path::Path) -> std::io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = rustix::net::SocketAddrUnix::new(path)?;
    rustix::net::connect(&fd, &addr)?;
    Ok(fd)
}

/// Bind a unix socket to `addr` with mode 0600, whatever the umask.
///
/// Security: a socket made with the caller's umask (often 0022) let other
/// users connect to a container's terminal and output. The umask is set
/// around the bind (the file's mode comes from it at creation), so that
/// there is no window with a wider mode.
pub fn bind_private(fd: &OwnedFd, addr: &rustix::net::SocketAddrUnix) -> std::io::Result<()> {
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let r = rustix::net::bind(fd, addr);
    rustix::process::umask(old);
    Ok(r?)
}

/// Listen on `path` (replacing a stale socket), mode 0600.
pub fn listen(path: &std::path::Path) -> std::io::Result<OwnedFd> {
    listen_unix(
        path,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::NONBLOCK,
        16,
    )
}

/// A unix socket of `kind` listening on `path` (replacing a stale one),
/// mode 0600, close-on-exec plus `flags`.
pub fn listen_unix(
    path: &std::path::Path,
    kind: rustix::net::SocketType,
    flags: rustix::net::SocketFlags,
    backlog: i32,
) -> std::io::Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    let fd = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        kind,
        rustix::net::SocketFlags::CLOEXEC | flags,
        None,
    )?;
    let addr = rustix::net::SocketAddrUnix::new(path)?;
    bind_private(&fd, &addr)?;
    rustix::net::listen(&fd, backlog)?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<M: Frame + PartialEq + std::fmt::Debug>(m: M) {
        assert_eq!(M::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn every_message_survives_its_frame() {
        round_trip(ToMonitor::Hello(Hello {
            id: "abc".into(),
            attach: true,
            interactive: false,
        }));
        round_trip(ToMonitor::Start);
        round_trip(ToMonitor::Stdin(b"input\0\xff".to_vec()));
        round_trip(ToMonitor::Stdin(Vec::new()));
        round_trip(ToMonitor::Resize {
            rows: 40,
            cols: 100,
        });
        round_trip(ToMonitor::Signal(15));
        round_trip(FromMonitor::Stdout(b"out".to_vec()));
        round_trip(FromMonitor::Stderr(b"err".to_vec()));
        round_trip(FromMonitor::Exit(3));
        round_trip(FromMonitor::Failed(Failure {
            kind: Kind::ProgramNotFound,
            errno: Some(2),
            message: "exec: nope".into(),
            path: Some("/nope".into()),
        }));
        round_trip(Report::Created {
            monitor: 7,
            pid: 8,
            trace: vec!["a".into()],
        });
        round_trip(Created::Created {
            pid: 1,
            trace: vec![],
        });
    }

    #[test]
    fn data_travels_raw_and_other_versions_are_refused() {
        let f = FromMonitor::Stdout(b"hi".to_vec()).encode();
        assert_eq!(f, [VERSION, STDOUT, b'h', b'i']);
        let mut old = f.clone();
        old[0] = VERSION + 1;
        let e = FromMonitor::decode(&old).unwrap_err().to_string();
        assert!(e.contains("different builds"), "{e}");
        assert!(FromMonitor::decode(&[VERSION, 9]).is_err());
        assert!(
            ToMonitor::decode(&[VERSION, STDOUT]).is_err(),
            "a client does not send stdout"
        );
        assert!(FromMonitor::decode(&[]).is_err());
    }
}
