//! File descriptor helpers: fd passing over unix sockets, closing every fd a
//! container must not inherit.

use crate::Result;
use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Send `data` and, optionally, one fd with `SCM_RIGHTS`.
pub fn send_with_fd(sock: BorrowedFd<'_>, data: &[u8], fd: Option<RawFd>) -> Result<()> {
    let iov = [IoSlice::new(data)];
    let fds;
    let cmsgs: Vec<ControlMessage<'_>> = match fd {
        Some(f) => {
            fds = [f];
            vec![ControlMessage::ScmRights(&fds)]
        }
        None => Vec::new(),
    };
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Receive one message of at most `buf.len()` bytes and the fd it carries, if
/// any. Returns the number of bytes read (0 on end of stream).
pub fn recv_with_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(usize, Option<OwnedFd>)> {
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    let mut received = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for f in fds {
                // SAFETY: SCM_RIGHTS installed this fd in our table for us;
                // nothing else refers to it.
                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                if received.is_none() {
                    received = Some(owned);
                }
            }
        }
    }
    Ok((msg.bytes, received))
}

/// Mark every fd from `first` upwards close-on-exec (`close_range` with
/// `CLOSE_RANGE_CLOEXEC`), so that nothing but what we chose survives execve.
///
/// Security: CVE-2024-21626 leaked a host directory fd into the container.
pub fn cloexec_from(first: RawFd) -> Result<()> {
    // SAFETY: close_range takes integers; CLOEXEC only changes fd flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Older kernels: walk /proc/self/fd instead.
    let entries = std::fs::read_dir("/proc/self/fd").map_err(|_| Errno::last())?;
    let fds: Vec<RawFd> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= first)
        .collect();
    for fd in fds {
        set_cloexec(fd, true)?;
    }
    Ok(())
}

/// Close every fd from `first` to `last` (inclusive) with `close_range`,
/// or one by one from `/proc/self/fd` on kernels without it.
pub fn close_range(first: RawFd, last: RawFd) -> Result<()> {
    if first > last || first < 0 {
        return Ok(());
    }
    // SAFETY: close_range takes integers; the caller owns the fds it closes
    // (nothing in this process uses them afterwards).
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0 as libc::c_uint,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Kernels without close_range: every fd number up to the limit, one by
    // one (no /proc walk, which a container could have mounted over).
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid pointer.
    Errno::result(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    let top = (lim.rlim_cur.min(1 << 20) as RawFd).min(last);
    for fd in first..=top {
        // SAFETY: as above; EBADF for numbers not open is harmless.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Set or clear `FD_CLOEXEC` on `fd`.
pub fn set_cloexec(fd: RawFd, on: bool) -> Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD)?);
    let new = if on {
        flags | FdFlag::FD_CLOEXEC
    } else {
        flags - FdFlag::FD_CLOEXEC
    };
    fcntl(fd, FcntlArg::F_SETFD(new))?;
    Ok(())
}

/// `dup3(fd, target, 0)`: place `fd` at `target`, without close-on-exec.
pub fn dup_to(fd: RawFd, target: RawFd) -> Result<()> {
    if fd == target {
        return set_cloexec(fd, false);
    }
    // SAFETY: dup3 takes integers; replacing `target` is what we want.
    Errno::result(unsafe { libc::dup3(fd, target, 0) }).map(drop)
}

/// Own an fd the kernel just returned (crate-internal: callers outside
/// get `OwnedFd`s from the wrappers).
pub(crate) fn own_raw(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass fds a syscall just returned, which nothing else
    // in this process owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `open(2)`, the fd owned.
pub fn open(
    path: &(impl nix::NixPath + ?Sized),
    flags: nix::fcntl::OFlag,
    mode: nix::sys::stat::Mode,
) -> Result<OwnedFd> {
    nix::fcntl::open(path, flags, mode).map(own_raw)
}

/// `openat(2)` relative to `dir`, the fd owned.
pub fn openat(
    dir: BorrowedFd<'_>,
    path: &(impl nix::NixPath + ?Sized),
    flags: nix::fcntl::OFlag,
    mode: nix::sys::stat::Mode,
) -> Result<OwnedFd> {
    nix::fcntl::openat(Some(dir.as_raw_fd()), path, flags, mode).map(own_raw)
}

/// Take ownership of fd `fd`, which this process was handed by number
/// (an argument, `--status-fd`), after checking it is open: the number is
/// then ours to close, and nothing else may use it.
///
/// # Safety
///
/// `fd` must have been inherited (or received) as this number, and
/// nothing else in the process may own it: an open number is not proof
/// of that, as the process's own fds are open too.
pub unsafe fn inherited(fd: RawFd) -> Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the fd's flags; it fails with EBADF for a
    // number that is not open.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    Ok(own_raw(fd))
}

/// `ioctl(fd, TIOCSCTTY, 0)`: make the tty the controlling terminal.
pub fn set_controlling_tty(fd: RawFd) -> Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}

/// Window size of a tty, as `(rows, cols)`.
pub fn window_size(fd: RawFd) -> Result<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the valid pointer.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) })?;
    Ok((ws.ws_row, ws.ws_col))
}

/// Set a tty's window size.
pub fn set_window_size(fd: RawFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the valid pointer.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) }).map(drop)
}

const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// A new pty from the devpts instance whose directory is `devpts` (an fd
/// already resolved inside the container): `(master, slave, number)`,
/// unlocked. The directory must be a devpts, `ptmx` in it the 5:2
/// character device, and the slave comes from the master itself
/// (`TIOCGPTPEER`), never from a path.
///
/// Security: CVE-2025-52565. A `/dev/pts` or `ptmx` that the image or a
/// process in the container replaced would otherwise hand the runtime a
/// file of its choosing as the console.
pub fn open_pty_in(devpts: BorrowedFd<'_>) -> Result<(OwnedFd, OwnedFd, u32)> {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::Mode;
    let fs = nix::sys::statfs::fstatfs(devpts)?;
    if fs.filesystem_type().0 != DEVPTS_SUPER_MAGIC {
        return Err(Errno::EXDEV);
    }
    let fd = openat(
        Some(devpts.as_raw_fd()),
        "ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let master = own_raw(fd);
    let st = nix::sys::stat::fstat(master.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != nix::sys::stat::makedev(5, 2) {
        return Err(Errno::ENODEV);
    }
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the valid pointer.
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) })?;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int into the valid pointer.
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) })?;
    // SAFETY: TIOCGPTPEER takes open flags as an integer and returns a new
    // fd that nothing else owns.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    let slave = own_raw(Errno::result(slave)?);
    Ok((master, slave, n))
}
