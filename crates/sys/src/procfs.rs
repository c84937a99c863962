//! A verified procfs: every write capsa makes to `/proc` (sysctls,
//! `oom_score_adj`, LSM attributes, id maps, `setgroups`, time offsets, the
//! exec FIFO's reopen) goes through a handle of its own.
//!
//! Security: CVE-2019-16884 and CVE-2023-28642 (an LSM label write
//! redirected by a mount over `/proc`), CVE-2025-52881 (writes redirected
//! to another procfs file by mounts or links set up by the image or the
//! container). The handle is a procfs nobody else can mount over: a fresh
//! instance (`fsopen("proc")`), else a non-recursive detached clone of
//! `/proc` (which leaves every mount on top of it behind). It is checked
//! with `fstatfs` to be procfs, and paths inside it are resolved with no
//! symlink, no magic link and no mount crossing; each file opened is
//! checked to be on procfs again.

use crate::Result;
use nix::errno::Errno;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const RESOLVE_NO_XDEV: u64 = 0x01;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// A private, verified handle on a procfs of the caller's pid namespace.
#[derive(Debug)]
pub struct ProcFs {
    fd: OwnedFd,
}

fn is_proc(fd: BorrowedFd<'_>) -> bool {
    nix::sys::statfs::fstatfs(fd).is_ok_and(|s| s.filesystem_type().0 == PROC_SUPER_MAGIC)
}

impl ProcFs {
    /// A fresh procfs instance of the caller's pid namespace, else a
    /// detached clone of the `/proc` mount alone (without anything mounted
    /// over or under it).
    pub fn new() -> Result<ProcFs> {
        let fresh = crate::mount::FsContext::open(c"proc").and_then(|ctx| {
            // hidepid and subset stay the kernel's defaults: all of /proc.
            ctx.mount(
                crate::mount::ATTR_NOSUID | crate::mount::ATTR_NODEV | crate::mount::ATTR_NOEXEC,
            )
        });
        // Unprivileged, neither is allowed: /proc itself, where the
        // resolution below refuses to cross into anything mounted on it.
        let fd = match fresh.or_else(|_| crate::mount::clone_tree(Path::new("/proc"), false)) {
            Ok(fd) => fd,
            Err(_) => crate::fd::own_raw(nix::fcntl::open(
                "/proc",
                nix::fcntl::OFlag::O_PATH
                    | nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )?),
        };
        ProcFs::verified(fd)
    }

    fn verified(fd: OwnedFd) -> Result<ProcFs> {
        if !is_proc(fd.as_fd()) {
            return Err(Errno::EXDEV);
        }
        // It must number processes as the caller's pid namespace does
        // (`<pid>/...` is then us): its `self` names our own pid.
        let me = nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "self")?;
        if me.to_str() != Some(nix::unistd::getpid().as_raw().to_string().as_str()) {
            return Err(Errno::EXDEV);
        }
        Ok(ProcFs { fd })
    }

    /// Open `path` (relative to the procfs root: `sys/net/ipv4/ip_forward`,
    /// `1/oom_score_adj`) with no symlink, magic link or mount crossing on
    /// the way, and check that the file is on procfs.
    pub fn open(&self, path: &Path, flags: libc::c_int) -> Result<OwnedFd> {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let c = std::ffi::CString::new(rel.as_os_str().as_encoded_bytes())
            .map_err(|_| Errno::EINVAL)?;
        // openat2 refuses O_PATH with any flag it ignores (O_NOCTTY).
        let extra = if flags & libc::O_PATH != 0 {
            libc::O_CLOEXEC
        } else {
            libc::O_CLOEXEC | libc::O_NOCTTY
        };
        let how = OpenHow {
            flags: (flags | extra) as u64,
            mode: 0,
            resolve: RESOLVE_NO_XDEV
                | RESOLVE_NO_MAGICLINKS
                | RESOLVE_NO_SYMLINKS
                | RESOLVE_BENEATH,
        };
        let fd = loop {
            // SAFETY: `c` is a valid C string and `how` a valid open_how of
            // the size passed; the returned fd is ours.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    self.fd.as_raw_fd(),
                    c.as_ptr(),
                    &how as *const OpenHow,
                    std::mem::size_of::<OpenHow>(),
                )
            };
            if r >= 0 {
                // SAFETY: the kernel returned a new fd that nothing else owns.
                break unsafe { OwnedFd::from_raw_fd(r as RawFd) };
            }
            match Errno::last() {
                Errno::EAGAIN | Errno::EINTR => continue,
                e => return Err(e),
            }
        };
        if !is_proc(fd.as_fd()) {
            return Err(Errno::EXDEV);
        }
        Ok(fd)
    }

    /// Read `path` as text, at most `limit` bytes (a process's mountinfo
    /// is the container's to grow).
    pub fn read(&self, path: &Path, limit: u64) -> Result<String> {
        use std::io::Read;
        let fd = self.open(path, libc::O_RDONLY)?;
        let mut text = String::new();
        std::fs::File::from(fd)
            .take(limit)
            .read_to_string(&mut text)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        Ok(text)
    }

    /// Write `data` to `path` in one write (procfs files take a value per
    /// write).
    pub fn write(&self, path: &Path, data: &[u8]) -> Result<()> {
        let fd = self.open(path, libc::O_WRONLY)?;
        let n = nix::unistd::write(&fd, data)?;
        if n != data.len() {
            return Err(Errno::EIO);
        }
        Ok(())
    }

    /// `<pid>/...` of the calling process, as this procfs numbers it (the
    /// pid namespace the handle was made in is the caller's own).
    pub fn own(rest: &str) -> std::path::PathBuf {
        Path::new(&nix::unistd::getpid().as_raw().to_string()).join(rest)
    }

    /// The target of the link `path` (`<pid>/fd/N`): the link itself is
    /// opened without following it, so no magic link is crossed.
    pub fn readlink(&self, path: &Path) -> Result<std::path::PathBuf> {
        let link = self.open(path, libc::O_PATH | libc::O_NOFOLLOW)?;
        let target = nix::fcntl::readlinkat(Some(link.as_raw_fd()), "")?;
        Ok(std::path::PathBuf::from(target))
    }

    /// Reopen fd `fd` of this process with `flags` through its
    /// `<pid>/fd/N` link (the one magic link followed, from a directory
    /// that was itself resolved without any).
    pub fn reopen(&self, fd: RawFd, flags: libc::c_int) -> Result<OwnedFd> {
        let dir = self.open(&ProcFs::own("fd"), libc::O_PATH | libc::O_DIRECTORY)?;
        let raw = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            fd.to_string().as_str(),
            nix::fcntl::OFlag::from_bits_truncate(flags | libc::O_CLOEXEC),
            nix::sys::stat::Mode::empty(),
        )?;
        Ok(crate::fd::own_raw(raw))
    }
}
