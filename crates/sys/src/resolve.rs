//! Paths resolved inside a root with `openat2(RESOLVE_IN_ROOT)`: a symlink in
//! a container's rootfs can never lead out of it, whatever it points to.

use crate::Result;
use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// How symlinks met during resolution are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// Followed, but scoped to the root (an absolute link or `..` stops at it).
    InRoot,
    /// Refused with `ELOOP` (for mount points that must not be links).
    Refuse,
    /// Followed while they stay beneath the root; one that leads out (an
    /// absolute target, or `..` past the top) fails with `EXDEV` instead
    /// of being scoped (a build's context: a link out is an error).
    Beneath,
}

/// `openat2(root, path, flags, mode)` with every component resolved inside
/// `root`, and magic links (`/proc/self/fd/N`) refused.
///
/// Security: CVE-2021-30465 and the symlink-exchange class of mount races.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
    links: Symlinks,
) -> Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = CString::new(rel.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let resolve = RESOLVE_NO_MAGICLINKS
        | match links {
            Symlinks::InRoot => RESOLVE_IN_ROOT,
            Symlinks::Refuse => RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS,
            Symlinks::Beneath => RESOLVE_BENEATH,
        };
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: `c` is a valid NUL-terminated string and `how` a valid
        // open_how of the size passed; the returned fd is ours.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel returned a new fd that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        match Errno::last() {
            // openat2 returns EAGAIN when a concurrent rename raced the lookup.
            Errno::EAGAIN | Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// The `/proc/self/fd/N` path of an fd, to hand an fd-resolved target to a
/// path-based syscall such as mount(2).
pub fn fd_path(fd: RawFd) -> String {
    format!("/proc/self/fd/{fd}")
}
