//! The mounts of a container without a mount namespace of its own (runc's
//! reading of a spec that names none). Its init mounts in the host's
//! mount namespace, so before it starts the runtime binds the rootfs onto
//! itself, private: every mount the container makes lands on that bind
//! and propagates nowhere, and `delete` (or a failed `create`) detaches
//! the bind, which takes all of them with it. runc binds the rootfs too,
//! but never takes it, or what is under it, away.

use crate::error::{Error, Result};
use capsa_sys::resolve::fd_path;
use nix::errno::Errno;
use nix::mount::{umount2, MntFlags};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Bind `rootfs` onto itself (with what is mounted under it), private all
/// the way down; returns the new mount's id.
///
/// Security: the host's root is refused as a rootfs here (the container's
/// `/proc` and `/dev` would cover the host's own). The bind being private,
/// nothing mounted under it reaches a peer of the host's, and what the
/// container leaves there is taken away with the bind alone, however it
/// renamed or renamed over the mount points under it.
pub fn bind_root(rootfs: &Path) -> Result<u64> {
    let here = open_dir(rootfs)?;
    let host_root = open_dir(Path::new("/"))?;
    let same = |a: &OwnedFd, b: &OwnedFd| -> Result<bool> {
        let (x, y) = (
            nix::sys::stat::fstat(a.as_raw_fd())
                .map_err(|e| Error::sys("stat", rootfs.display(), e))?,
            nix::sys::stat::fstat(b.as_raw_fd()).map_err(|e| Error::sys("stat", "/", e))?,
        );
        Ok((x.st_dev, x.st_ino) == (y.st_dev, y.st_ino))
    };
    if same(&here, &host_root)? {
        return Err(Error::Invalid(
            "root.path: the host's / cannot be a container's root without a mount namespace of its own".into(),
        ));
    }
    let tree = capsa_sys::mount::clone_tree(Path::new(&fd_path(here.as_raw_fd())), true)
        .map_err(|e| Error::sys("bind mount", rootfs.display(), e))?;
    capsa_sys::mount::set_propagation(tree.as_raw_fd(), libc::MS_PRIVATE, true)
        .map_err(|e| Error::sys("make private", rootfs.display(), e))?;
    capsa_sys::mount::attach(tree.as_raw_fd(), here.as_raw_fd())
        .map_err(|e| Error::sys("bind mount", rootfs.display(), e))?;
    // Attached, the tree's fd is the new mount's root.
    capsa_sys::exe::mount_id(tree.as_raw_fd())
        .ok_or_else(|| Error::State(format!("{}: no mount id", rootfs.display())))
}

/// Detach the bind [`bind_root`] made at `rootfs` (mount `id`), and with
/// it every mount under it. Nothing is done when what is mounted there now
/// is not that bind (already gone, or another mount since).
pub fn detach_root(rootfs: &Path, id: u64) -> Result<()> {
    let here = match open_dir(rootfs) {
        Ok(fd) => fd,
        Err(Error::Sys {
            errno: Errno::ENOENT,
            ..
        }) => return Ok(()),
        Err(e) => return Err(e),
    };
    if capsa_sys::exe::mount_id(here.as_raw_fd()) != Some(id) {
        return Ok(());
    }
    match umount2(fd_path(here.as_raw_fd()).as_str(), MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) => Ok(()),
        Err(e) => Err(Error::sys("umount", rootfs.display(), e)),
    }
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    use nix::fcntl::OFlag;
    capsa_sys::fd::open(
        p,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open", p.display(), e))
}
