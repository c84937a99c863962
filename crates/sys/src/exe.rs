//! Running from a sealed in-memory copy of our own binary.
//!
//! Security: CVE-2019-5736. A process in the container can reach the binary
//! of a runtime process that joined it through `/proc/PID/exe` (or by making
//! the container's entrypoint `#!/proc/self/exe`) and overwrite it on the host.
//! Re-executing through a detached, read-only bind mount of the binary makes
//! `/proc/PID/exe` a path on which every write fails with EROFS, and costs
//! one execve. Where the new mount API is not allowed (rootless), a sealed
//! memfd copy does the same at the price of copying the binary.

use crate::Result;
use nix::errno::Errno;
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether the running binary cannot be written through `/proc/self/exe`:
/// a write-sealed memfd, or a file reached through a read-only mount.
pub fn running_protected() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: F_GET_SEALS takes no argument and only reads fd state.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && (seals & libc::F_SEAL_WRITE) != 0 {
        return true;
    }
    nix::sys::statvfs::fstatvfs(&f)
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// A detached, read-only bind mount of the running binary (see
/// [`crate::mount`]). It is attached nowhere, so nothing is left behind: it
/// lives as long as a process runs the binary through it.
pub fn readonly_clone() -> Result<OwnedFd> {
    let tree = crate::mount::clone_tree(std::path::Path::new("/proc/self/exe"), false)?;
    crate::mount::set_readonly(&tree)?;
    Ok(tree)
}

/// Copy `/proc/self/exe` into a new memfd and seal it against every change.
pub fn sealed_copy() -> Result<OwnedFd> {
    let src = std::fs::File::open("/proc/self/exe")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let name = c"capsa-runtime";
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
