//! The mounts of a container without a mount namespace of its own (runc's
//! reading of a spec that names none): its init made them in the host's
//! mount namespace, under its rootfs, and they outlive it. `delete` (and a
//! failed `create`) unmounts them; runc leaves them behind.

use crate::error::{Error, Result};
use crate::state::ContainerState;
use capsa_spec::oci::LinuxNamespaceType;
use capsa_sys::procfs::ProcFs;
use capsa_sys::resolve::{fd_path, Symlinks};
use capsa_sys::root::Root;
use nix::errno::Errno;
use nix::mount::{umount2, MntFlags};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Whether the container was made without a mount namespace of its own.
pub fn in_host_namespace(st: &ContainerState) -> bool {
    !st.config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Mount))
}

/// Unmount every mount under `rootfs` in our mount namespace, deepest
/// first, stacked ones top first.
///
/// Security: the mount points were made by the container, whose
/// processes may have replaced a directory on the way with a symlink to a
/// host path since. Each one is opened inside the rootfs with no symlink
/// followed, and unmounted only when what was opened is the root of that
/// very mount (its mount id is the one mountinfo lists), so a host mount
/// is never taken for one of the container's.
pub fn unmount_under(rootfs: &Path) -> Result<()> {
    let proc = ProcFs::new().map_err(|e| Error::sys("open", "procfs", e))?;
    let root = match Root::open(rootfs) {
        Ok(r) => r,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys("open", rootfs.display(), e)),
    };
    // The rootfs as mountinfo spells it (links in the bundle path
    // resolved).
    let here = proc
        .readlink(&ProcFs::own(&format!("fd/{}", root.fd().as_raw_fd())))
        .map_err(|e| Error::sys("readlink", rootfs.display(), e))?;
    // A pass unmounts the top of each stack; stacked mounts need more.
    for _ in 0..64 {
        let text = proc
            .read(&ProcFs::own("mountinfo"), 16 << 20)
            .map_err(|e| Error::sys("read", "/proc/self/mountinfo", e))?;
        let mut under = mounts_under(&text, &here);
        if under.is_empty() {
            return Ok(());
        }
        under.sort_by_key(|(id, rel)| std::cmp::Reverse((rel.components().count(), *id)));
        let mut progress = false;
        for (id, rel) in under {
            let Ok(fd) = root.open_at(&rel, libc::O_PATH, Symlinks::Refuse) else {
                continue;
            };
            if mount_id(&proc, fd.as_raw_fd()) != Some(id) {
                continue;
            }
            match umount2(fd_path(fd.as_raw_fd()).as_str(), MntFlags::MNT_DETACH) {
                Ok(()) => progress = true,
                Err(Errno::EINVAL | Errno::ENOENT) => {}
                Err(e) => return Err(Error::sys("umount", here.join(&rel).display(), e)),
            }
        }
        if !progress {
            return Ok(());
        }
    }
    Ok(())
}

/// Mounts strictly under `root` in mountinfo `text`: (mount id, path
/// relative to `root`).
fn mounts_under(text: &str, root: &Path) -> Vec<(u64, PathBuf)> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let id = f.next()?.parse().ok()?;
            let at = capsa_sys::mount::unescape(f.nth(3)?);
            let rel = Path::new(&at).strip_prefix(root).ok()?;
            (!rel.as_os_str().is_empty()).then(|| (id, rel.to_path_buf()))
        })
        .collect()
}

/// The id of the mount `fd` is on (`mnt_id` in its fdinfo).
fn mount_id(proc: &ProcFs, fd: i32) -> Option<u64> {
    proc.read(&ProcFs::own(&format!("fdinfo/{fd}")), 4096)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_only_mounts_strictly_under_the_root() {
        let text = "\
21 1 8:1 / / rw - ext4 /dev/sda1 rw
40 21 0:5 / /b/rootfs/proc rw - proc proc rw
41 21 0:6 / /b/rootfs/dev rw - tmpfs tmpfs rw
42 41 0:7 / /b/rootfs/dev/my\\040pts rw - devpts devpts rw
43 21 0:8 / /b/rootfs2/proc rw - proc proc rw
44 21 0:9 / /b/rootfs rw - tmpfs tmpfs rw
";
        let got = mounts_under(text, Path::new("/b/rootfs"));
        assert_eq!(
            got,
            vec![
                (40, PathBuf::from("proc")),
                (41, PathBuf::from("dev")),
                (42, PathBuf::from("dev/my pts")),
            ]
        );
    }
}
