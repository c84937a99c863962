//! `tmpcopyup`: a new tmpfs gets a copy of what the directory it covers
//! held. Both sides are directory fds taken inside the root (the covered
//! directory stays reachable through its fd after the mount): every name
//! is resolved relative to one of them, no link is followed, and what
//! comes from the image is not trusted for its type or size.

use crate::error::ChildError;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use std::ffi::CStr;
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, OwnedFd};

type R<T> = std::result::Result<T, ChildError>;

/// Nested deeper than this, a copy fails rather than exhaust the stack.
const MAX_DEPTH: usize = 128;

fn err(op: &str, name: &CStr, e: Errno) -> ChildError {
    ChildError::sys(
        "rootfs",
        op,
        format!("tmpcopyup {}", name.to_string_lossy()),
        e,
    )
}

fn open_at(dir: &OwnedFd, name: &CStr, flags: OFlag) -> Result<OwnedFd, Errno> {
    let fd = capsa_sys::fd::openat(
        dir.as_fd(),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(fd)
}

/// The entries of `dir`, by name, without `.` and `..`.
fn entries(dir: &OwnedFd) -> Result<Vec<std::ffi::CString>, Errno> {
    let mut d = nix::dir::Dir::from_fd(nix::unistd::dup(dir.as_raw_fd())?)?;
    Ok(d.iter()
        .flatten()
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect())
}

/// Copy the content of `from` into `to` (the tmpfs's root): directories,
/// regular files and symbolic links, with their modes and owners. Device
/// nodes, FIFOs and sockets are not copied: what they are is the image's
/// say, and reading a FIFO would block.
pub fn copy(from: &OwnedFd, to: &OwnedFd) -> R<()> {
    let st = nix::sys::stat::fstat(from.as_raw_fd()).map_err(|e| err("stat", c".", e))?;
    owned_with_mode(to, &st)?;
    copy_dir(from, to, st.st_dev, 0)
}

/// Owner first, then mode: the kernel clears set-id bits on a chown, even
/// root's. Security: an owner the user namespace does not map leaves the
/// copy owned by the container's root, so its set-id bits go (a binary
/// set-id to an unmapped, powerless owner must not become set-id root).
fn owned_with_mode(fd: &OwnedFd, st: &FileStat) -> R<()> {
    let mut mode = st.st_mode & 0o7777;
    if !owner(fd, None, st)? {
        mode &= !(libc::S_ISUID | libc::S_ISGID);
    }
    nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode))
        .map_err(|e| err("chmod", c".", e))
}

/// Whether the owner could be given (false: not mapped here).
fn owner(dir: &OwnedFd, name: Option<&CStr>, st: &FileStat) -> R<bool> {
    let res = match name {
        Some(n) => nix::unistd::fchownat(
            Some(dir.as_raw_fd()),
            n,
            Some(st.st_uid.into()),
            Some(st.st_gid.into()),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ),
        None => nix::unistd::fchown(
            dir.as_raw_fd(),
            Some(st.st_uid.into()),
            Some(st.st_gid.into()),
        ),
    };
    match res {
        Ok(()) => Ok(true),
        Err(Errno::EINVAL) => Ok(false),
        Err(e) => Err(err("chown", name.unwrap_or(c"."), e)),
    }
}

/// `dev`: the covered directory's filesystem. Anything on another (a mount
/// under it) is not copied.
fn copy_dir(from: &OwnedFd, to: &OwnedFd, dev: u64, depth: usize) -> R<()> {
    if depth >= MAX_DEPTH {
        return Err(err("copy", c".", Errno::ELOOP));
    }
    for name in entries(from).map_err(|e| err("read directory", c".", e))? {
        let st = nix::sys::stat::fstatat(
            Some(from.as_raw_fd()),
            name.as_c_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| err("stat", &name, e))?;
        if st.st_dev != dev {
            continue;
        }
        match SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) {
            SFlag::S_IFDIR => {
                nix::sys::stat::mkdirat(Some(to.as_raw_fd()), name.as_c_str(), Mode::S_IRWXU)
                    .map_err(|e| err("mkdir", &name, e))?;
                let sub_from = open_at(from, &name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                    .map_err(|e| err("open", &name, e))?;
                let sub_to = open_at(to, &name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                    .map_err(|e| err("open", &name, e))?;
                copy_dir(&sub_from, &sub_to, dev, depth + 1)?;
                owned_with_mode(&sub_to, &st)?;
            }
            SFlag::S_IFREG => {
                let src = open_at(from, &name, OFlag::O_RDONLY | OFlag::O_NONBLOCK)
                    .map_err(|e| err("open", &name, e))?;
                // The type again, on what was opened (not a swapped name).
                let now =
                    nix::sys::stat::fstat(src.as_raw_fd()).map_err(|e| err("stat", &name, e))?;
                if now.st_mode & libc::S_IFMT != libc::S_IFREG || now.st_dev != dev {
                    continue;
                }
                let dst = open_at(to, &name, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL)
                    .map_err(|e| err("create", &name, e))?;
                // At most the size it had when opened: a file that keeps
                // growing (a shared volume's) is not copied without end.
                let limit = u64::try_from(now.st_size).unwrap_or(0);
                let mut r = std::io::Read::take(std::fs::File::from(src), limit);
                let mut w = std::fs::File::from(dst);
                std::io::copy(&mut r, &mut w).map_err(|e| {
                    err(
                        "copy",
                        &name,
                        Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                    )
                })?;
                owned_with_mode(&OwnedFd::from(w), &now)?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(from.as_raw_fd()), name.as_c_str())
                    .map_err(|e| err("readlink", &name, e))?;
                nix::unistd::symlinkat(target.as_os_str(), Some(to.as_raw_fd()), name.as_c_str())
                    .map_err(|e| err("symlink", &name, e))?;
                owner(to, Some(&name), &st)?;
            }
            _ => {}
        }
    }
    Ok(())
}
