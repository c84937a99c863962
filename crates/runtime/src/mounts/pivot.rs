//! Entering the root: pivot_root, or with `--no-pivot` a move and a
//! chroot, or (no mount namespace) a chroot alone.

#[allow(unused_imports)]
use super::*;

/// Make `rootfs` the root: pivot_root and detach the old root, or with
/// `no_pivot` move the rootfs over `/` and chroot (for ramfs roots, where
/// pivot_root is not possible).
pub fn pivot(plan: &Plan, root: &Root, no_pivot: bool) -> R<()> {
    let rootfs = &plan.rootfs;
    nix::unistd::fchdir(root.fd().as_raw_fd()).map_err(|e| err("chdir", rootfs.display(), e))?;
    if !crate::create::has_mount_namespace(plan) {
        // The host's mount namespace: nothing of it is moved or hidden.
        nix::unistd::chroot(".").map_err(|e| err("chroot", rootfs.display(), e))?;
    } else if no_pivot {
        hide_host_pseudo_fs(root)?;
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(|e| err("move mount", rootfs.display(), e))?;
        nix::unistd::chroot(".").map_err(|e| err("chroot", rootfs.display(), e))?;
    } else {
        // pivot_root(".", ".") stacks the old root under the new one; it is
        // then detached without needing a directory for it.
        nix::unistd::pivot_root(".", ".").map_err(|e| err("pivot_root", rootfs.display(), e))?;
        // The old root must not propagate our unmount to the host.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| err("mount propagation", "old root", e))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(|e| err("umount", "old root", e))?;
    }
    nix::unistd::chdir("/").map_err(|e| err("chdir", "/", e))
}

/// Before `--no-pivot`'s chroot: unmount (or cover) every whole proc and
/// sysfs of the host left in our mount namespace.
///
/// Security: without pivot_root the host's tree stays in the namespace,
/// out of reach of the chroot but not of the kernel's check for mounting a
/// new proc or sysfs (mount_too_revealing), which passes when a whole,
/// uncovered instance exists anywhere in the namespace: a process that
/// makes a user namespace could then mount a bare /proc, without the
/// masked paths (runc's --no-pivot fix, same class as CVE-2019-16884).
pub(super) fn hide_host_pseudo_fs(root: &Root) -> R<()> {
    let proc = crate::procfs::open()?;
    let link = capsa_sys::procfs::ProcFs::own(&format!("fd/{}", root.fd().as_raw_fd()));
    let rootfs = proc
        .readlink(&link)
        .map_err(|e| err("readlink", link.display(), e))?;
    let text = proc
        .read(&capsa_sys::procfs::ProcFs::own("mountinfo"), 16 << 20)
        .map_err(|e| err("read", "/proc/self/mountinfo", e))?;
    let mut hide = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let fstype = post.split(' ').next().unwrap_or("");
        if pre.len() < 5 || pre[3] != "/" || !matches!(fstype, "proc" | "sysfs") {
            continue;
        }
        let at = capsa_sys::mount::unescape(pre[4]);
        if Path::new(&at).starts_with(&rootfs) {
            continue;
        }
        hide.push(at);
    }
    // Deepest first: a parent unmounted first would take the child with it.
    hide.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for at in hide {
        // Not back to the host: our namespace's copies only.
        match mount(
            None::<&str>,
            at.as_str(),
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => {}
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(err("mount propagation", &at, e)),
        }
        match umount2(at.as_str(), MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::ENOENT) => {}
            // Locked (a user namespace's): cover it instead.
            Err(Errno::EINVAL | Errno::EPERM) => mount(
                Some("tmpfs"),
                at.as_str(),
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .map_err(|e| err("cover", &at, e))?,
            Err(e) => return Err(err("umount", &at, e)),
        }
    }
    Ok(())
}

/// After pivot_root: the root's own propagation when shared was asked.
pub fn finish_propagation(plan: &Plan) -> R<()> {
    if plan.rootfs_propagation & libc::MS_SHARED != 0 && crate::create::has_mount_namespace(plan) {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            flags(plan.rootfs_propagation),
            None::<&str>,
        )
        .map_err(|e| err("mount propagation", "/", e))?;
    }
    Ok(())
}
