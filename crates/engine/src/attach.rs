//! The attach protocol between a monitor and a `capsa` command: one
//! SOCK_SEQPACKET connection, one message per packet, its first byte the
//! kind. The monitor sends output and, at the end, the exit code; the
//! client sends input, window sizes and signals.

use std::os::fd::{AsFd, OwnedFd};

/// Message kinds (first byte of a packet).
pub mod kind {
    /// client -> monitor: bytes for the container's stdin.
    pub const STDIN: u8 = 0;
    /// monitor -> client: container stdout (or the pty).
    pub const STDOUT: u8 = 1;
    /// monitor -> client: container stderr.
    pub const STDERR: u8 = 2;
    /// monitor -> client: exit code (i32 LE); the last message.
    pub const EXIT: u8 = 3;
    /// client -> monitor: stdin reached its end.
    pub const STDIN_EOF: u8 = 4;
    /// client -> monitor: window size (rows u16 LE, cols u16 LE).
    pub const RESIZE: u8 = 5;
    /// client -> monitor: forward a signal (i32 LE) to the container.
    pub const SIGNAL: u8 = 6;
    /// client -> monitor: start the created container now.
    pub const START: u8 = 8;
    /// monitor -> client: started (pid i32 LE).
    pub const STARTED: u8 = 9;
    /// monitor -> client: the start failed (message).
    pub const FAILED: u8 = 10;
    /// client -> a monitor started ahead of its container, first packet:
    /// which container and how (JSON `{"id", "attach", "interactive"}`).
    pub const CONTAINER: u8 = 11;
}

/// The largest packet either side sends.
pub const MAX: usize = 64 * 1024;

/// Send one packet `[kind] ++ data`.
pub fn send(fd: impl AsFd, kind: u8, data: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(data.len() + 1);
    buf.push(kind);
    buf.extend_from_slice(data);
    loop {
        match rustix::net::send(&fd, &buf, rustix::net::SendFlags::NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receive one packet; `None` at end of connection.
pub fn recv(fd: impl AsFd, buf: &mut [u8]) -> std::io::Result<Option<(u8, usize)>> {
    loop {
        match rustix::net::recv(&fd, &mut *buf, rustix::net::RecvFlags::empty()) {
            Ok((0, _)) => return Ok(None),
            Ok((n, _)) => return Ok(Some((buf[0], n.min(buf.len()) - 1))),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Connect to a monitor's socket.
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
    let _ = std::fs::remove_file(path);
    let fd = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK,
        None,
    )?;
    let addr = rustix::net::SocketAddrUnix::new(path)?;
    bind_private(&fd, &addr)?;
    rustix::net::listen(&fd, 16)?;
    Ok(fd)
}
