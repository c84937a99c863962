//! Running from a sealed image of a binary.
//!
//! Security: CVE-2019-5736. A process in the container can reach the binary
//! of a host process that entered the container through `/proc/PID/exe`, or
//! by making the program it is asked to run a script whose interpreter is
//! `#!/proc/self/exe`, and then write to that binary on the host. A process
//! that runs from a sealed image offers nothing to write: its
//! `/proc/PID/exe` is either
//! - a file of a detached overlayfs made of two lower layers and no upper
//!   one (as root): such an overlay is read-only for good (unlike a
//!   read-only bind mount, it cannot be remounted read-write), costs no
//!   copy, and its pages are the binary's own page cache; or
//! - a memfd copy sealed against writes, growth, shrinking and new seals
//!   (when the overlay is refused, as for an unprivileged user).

use crate::Result;
use nix::errno::Errno;
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// The empty directory that serves as the overlay's second lower layer (an
/// overlay without an upper layer needs two). Its content never shows: the
/// binary's own directory is the top layer.
const EMPTY_LOWER: &str = "/run/capsa-exe-lower";

/// How a sealed image was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// A file of a lower-only overlayfs (zero copy).
    Overlay,
    /// A sealed memfd copy.
    Memfd,
}

/// An `O_PATH` (overlay) or read-only (memfd) fd of `path` through which
/// the file cannot be written, for [`exec_fd`]. `path` may be
/// `/proc/self/exe`.
pub fn sealed(path: &Path) -> Result<(OwnedFd, Seal)> {
    match through_overlay(path) {
        Ok(fd) => Ok((fd, Seal::Overlay)),
        Err(_) => memfd_copy(path).map(|fd| (fd, Seal::Memfd)),
    }
}

fn escape_lower(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    for &b in p {
        if b == b'\\' || b == b':' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

fn through_overlay(path: &Path) -> Result<OwnedFd> {
    let ctx = crate::mount::FsContext::open(c"overlay")?;
    let real = std::fs::canonicalize(path).map_err(|_| Errno::ENOENT)?;
    let (dir, name) = match (real.parent(), real.file_name()) {
        (Some(d), Some(n)) => (d, n),
        _ => return Err(Errno::EINVAL),
    };
    match std::fs::create_dir(EMPTY_LOWER) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(_) => return Err(Errno::EACCES),
    }
    let meta = std::fs::symlink_metadata(EMPTY_LOWER).map_err(|_| Errno::ENOENT)?;
    if !meta.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let mut lower = escape_lower(dir.as_os_str().as_bytes());
    lower.push(b':');
    lower.extend(escape_lower(EMPTY_LOWER.as_bytes()));
    let lower = CString::new(lower).map_err(|_| Errno::EINVAL)?;
    ctx.set(c"lowerdir", &lower)?;
    // Inode number mapping is of no use here and logs when the layers
    // are on different filesystems.
    let _ = ctx.set(c"xino", c"off");
    let mnt = ctx
        .mount(crate::mount::ATTR_RDONLY | crate::mount::ATTR_NODEV | crate::mount::ATTR_NOSUID)?;
    let name = CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)?;
    let fd = nix::fcntl::openat(
        Some(mnt.as_raw_fd()),
        name.as_c_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: openat returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Copy `path` into a new memfd and seal it against every change (what
/// [`sealed`] falls back to; public for the benchmark).
pub fn memfd_copy(path: &Path) -> Result<OwnedFd> {
    let src = std::fs::File::open(path)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let name = c"capsa-sealed";
    // SAFETY: memfd_create takes a valid C string and flags; the fd is ours.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    let fd = Errno::result(fd)?;
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let mem = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = src.metadata().map(|m| m.len()).unwrap_or(0) as usize;
    let mut copied = 0usize;
    while copied < len {
        // SAFETY: sendfile between two fds we own; a NULL offset uses and
        // advances the source file position.
        let n = unsafe {
            libc::sendfile(
                mem.as_raw_fd(),
                src.as_raw_fd(),
                std::ptr::null_mut(),
                len - copied,
            )
        };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        copied += n as usize;
    }
    // SAFETY: F_ADD_SEALS with an integer seal mask on our memfd.
    Errno::result(unsafe { libc::fcntl(mem.as_raw_fd(), libc::F_ADD_SEALS, SEALS) })?;
    Ok(mem)
}

/// Whether the file behind `fd` cannot be written by anyone: a memfd
/// sealed against writes, or a file of a read-only overlayfs that is
/// mounted nowhere (ours: a read-only overlay root with an upper layer,
/// which host root could remount read-write, does not count).
pub fn is_sealed(fd: RawFd) -> bool {
    // SAFETY: F_GET_SEALS takes no argument and only reads fd state.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    if seals >= 0 && (seals & libc::F_SEAL_WRITE) != 0 {
        return true;
    }
    // SAFETY: the caller's fd, open for the length of this call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let overlay =
        nix::sys::statfs::fstatfs(fd).is_ok_and(|s| s.filesystem_type().0 == OVERLAYFS_SUPER_MAGIC);
    overlay
        && nix::sys::statvfs::fstatvfs(fd)
            .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        && mount_id(fd.as_raw_fd()).is_some_and(|id| !mounted_here(id))
}

/// The id of the mount `fd` is on (`statx(STATX_MNT_ID)`).
/// The id of the mount `fd` is on (`statx(STATX_MNT_ID)`).
pub fn mount_id(fd: RawFd) -> Option<u64> {
    // SAFETY: struct statx is plain integers, for which zero is valid.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx writes one struct statx into the buffer; the empty
    // path with AT_EMPTY_PATH names the fd itself.
    let r = unsafe {
        libc::statx(
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_MNT_ID,
            &mut st,
        )
    };
    (r == 0 && st.stx_mask & libc::STATX_MNT_ID != 0).then_some(st.stx_mnt_id)
}

/// Whether mount `id` is in this process's mount namespace.
fn mounted_here(id: u64) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return true;
    };
    info.lines()
        .filter_map(|l| l.split(' ').next()?.parse::<u64>().ok())
        .any(|m| m == id)
}

/// Whether the running binary is a sealed image (see [`is_sealed`]).
pub fn running_sealed() -> bool {
    match std::fs::File::open("/proc/self/exe") {
        Ok(f) => is_sealed(f.as_raw_fd()),
        Err(_) => false,
    }
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: run the program held by an
/// fd. Returns only on failure.
pub fn exec_fd(fd: RawFd, args: &[CString], env: &[CString]) -> Errno {
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let empty: &CStr = c"";
    // SAFETY: argv and envp are NULL-terminated arrays of pointers to C
    // strings that outlive the call; on success execveat does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    Errno::last()
}
