//! Masked and read-only paths, and the read-only root.

#[allow(unused_imports)]
use super::*;

/// The host's `/dev/null`, opened by the init before pivot_root and
/// checked to be the 1:3 character device: the source of every mask.
///
/// Security: CVE-2025-31133. The container's own `/dev/null` is never
/// used: one the image (or a process sharing the mount namespace)
/// replaced with a link or a file would turn a mask into a bind of what it
/// points to.
pub fn host_null() -> R<OwnedFd> {
    open_device(
        Path::new("/dev/null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::makedev(1, 3),
    )
}

/// Hide `maskedPaths` (after pivot_root, so `root` is the container's
/// `/`): `null` (see [`host_null`]) bound over files, an empty read-only
/// tmpfs over directories. Paths that do not exist are skipped; a symlink
/// is never followed.
pub fn mask(root: &Root, paths: &[PathBuf], null: &OwnedFd) -> R<()> {
    // Every masked directory shows one empty read-only tmpfs (its
    // superblock read-only, so each bind of it is too): one filesystem,
    // as runc 1.2 does, not one per path.
    let mut shared: Option<OwnedFd> = None;
    for p in paths {
        let target = match root.open_at(p, libc::O_PATH | libc::O_NOFOLLOW, Symlinks::Refuse) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(err("open", p.display(), e)),
        };
        let st =
            nix::sys::stat::fstat(target.as_raw_fd()).map_err(|e| err("stat", p.display(), e))?;
        let res = match (st.st_mode & libc::S_IFMT == libc::S_IFDIR, &shared) {
            (true, Some(tmpfs)) => capsa_sys::root::bind_fd(tmpfs, &target, false),
            (true, None) => capsa_sys::root::mount_on(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )
            .and_then(|()| {
                // The tmpfs's root, now on top at the path: checked to be
                // the empty read-only tmpfs just made before it is shared.
                let fd = root.open_at(p, libc::O_PATH, Symlinks::Refuse)?;
                let fs = nix::sys::statfs::fstatfs(&fd)?;
                let vfs = nix::sys::statvfs::fstatvfs(&fd)?;
                if fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC
                    || !vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY)
                {
                    return Err(Errno::EXDEV);
                }
                shared = Some(fd);
                Ok(())
            }),
            (false, _) => capsa_sys::root::bind_fd(null, &target, false),
        };
        res.map_err(|e| err("mask", p.display(), e))?;
    }
    Ok(())
}

/// Make `readonlyPaths` read-only bind mounts of themselves (after
/// pivot_root), resolved without following symlinks.
pub fn readonly(root: &Root, paths: &[PathBuf]) -> R<()> {
    for p in paths {
        let target = match root.path_fd(p, Symlinks::Refuse) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(err("open", p.display(), e)),
        };
        // As spec binds are made: a detached clone, made read-only on the
        // tree, attached onto the resolved fd (no lookup by path after).
        let tree = capsa_sys::mount::clone_tree(Path::new(&fd_path(target.as_raw_fd())), true)
            .map_err(|e| err("bind mount", p.display(), e))?;
        use capsa_sys::mount::{ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID, ATTR_RDONLY};
        capsa_sys::mount::set_attrs(
            tree.as_raw_fd(),
            ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC,
            0,
            false,
        )
        .map_err(|e| err("make read-only", p.display(), e))?;
        capsa_sys::mount::attach(tree.as_raw_fd(), target.as_raw_fd())
            .map_err(|e| err("attach read-only bind", p.display(), e))?;
    }
    Ok(())
}

/// `root.readonly`: remount `/` read-only.
pub fn readonly_root() -> R<()> {
    remount_bind("/", libc::MS_RDONLY, "/")
}
