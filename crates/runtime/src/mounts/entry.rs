//! One spec mount made: a bind (a detached tree, its flags and
//! recursive options, attached onto the target's fd) or a new filesystem.

#[allow(unused_imports)]
use super::*;

/// The recursive options (`rro`, `rnosuid`, ...) as `mount_setattr`
/// attributes to set and to clear. Clearing an atime mode goes back to
/// relatime (0), the default.
pub(super) fn recursive_attrs(m: &MountPlan) -> (u64, u64) {
    let (set, atime_chosen) = mount_attrs(m.recursive_set);
    let (off, atime_left) = mount_attrs(m.recursive_clear);
    let atime = capsa_sys::mount::ATTR_ATIME_MASK;
    (set, atime_chosen | atime_left | (off & !atime))
}

pub(super) fn mount_made(
    plan: &Plan,
    root: &Root,
    m: &MountPlan,
    host_tree: Option<std::os::fd::RawFd>,
) -> R<()> {
    let dest = m.destination.display().to_string();
    let under_proc = m.destination.starts_with("/proc");
    if m.bind {
        let src = m.source.as_deref().unwrap_or(Path::new(""));
        let cloned;
        // The source opened once: the clone is made from this fd, and the
        // cgroup check below reads where the source is from it too, so
        // the tree and the path looked up are one.
        let mut src_fd = None;
        let tree = match host_tree {
            // The runtime cloned (and perhaps id-mapped) the source.
            Some(tree) => tree,
            None => {
                let at = src_fd.insert(
                    capsa_sys::fd::open(
                        src,
                        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| err("bind mount", format!("{} on {dest}", src.display()), e))?,
                );
                cloned =
                    capsa_sys::mount::clone_tree(Path::new(&fd_path(at.as_raw_fd())), m.recursive)
                        .map_err(|e| {
                            err("bind mount", format!("{} on {dest}", src.display()), e)
                        })?;
                cloned.as_raw_fd()
            }
        };
        // The tree's own type, not the path's: nothing is looked up again.
        let is_dir = nix::sys::stat::fstat(tree)
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .map_err(|e| err("stat", src.display(), e))?;
        let target = make(root, &m.destination, !is_dir)?;
        refuse_on_proc(m, &target, !is_dir)?;
        // Security: CVE-2021-30465 class. The bind is made as a detached
        // tree, its flags set on the tree, then attached onto the target's
        // fd; its propagation is changed through the tree's own fd. Nothing
        // is looked up by path once the target was resolved, so a process
        // sharing the volume cannot swap the path between the mount and a
        // remount and have the remount land elsewhere.
        let (set, mut clear) = mount_attrs(m.flags);
        // What the options clear by name (`rw`, `suid`, ...) is cleared on
        // the clone, which otherwise keeps its source's flags (runc's
        // remount gives exactly the options' flags). The atime mode stays
        // the source's unless one is named.
        let atime = libc::MS_NOATIME | libc::MS_STRICTATIME | libc::MS_RELATIME;
        let named = mount_attrs(m.clear & !atime).0;
        clear |= named;
        if set != 0 || clear != 0 {
            match capsa_sys::mount::set_attrs(tree, set, clear, false) {
                // A flag the kernel locked (a user namespace's clone of a
                // read-only or nosuid mount) stays: as runc, the source's
                // flags are kept then rather than the mount refused.
                Err(Errno::EPERM) if named != 0 => {
                    capsa_sys::mount::set_attrs(tree, set, clear & !named, false)
                }
                r => r,
            }
            .map_err(|e| err("set mount flags", &dest, e))?;
        }
        // Security: mount propagation to the host. Without a mount
        // namespace of our own the clone is made from the host's tree and
        // joins its source's peer group: a slave, what the container
        // mounts under it stays off the host's source.
        if !crate::create::has_mount_namespace(plan) {
            capsa_sys::mount::set_propagation(tree, libc::MS_SLAVE, true)
                .map_err(|e| err("make slave", &dest, e))?;
        }
        // Security: CVE-2023-25809. In runc's mode `ro` on an rbind covers
        // its top only; a tree holding a cgroup filesystem (the host's
        // `/sys`, as `spec --rootless` binds it) is read-only all the way
        // down all the same, or a container without a cgroup namespace
        // could write the cgroups its user owns on the host.
        // Hardened (`rro` already asked) needs no look.
        let top_only = m.recursive && m.readonly() && m.recursive_set & libc::MS_RDONLY == 0;
        let source_holds_cgroupfs = || {
            let at = match &src_fd {
                Some(fd) => std::fs::read_link(fd_path(fd.as_raw_fd())).ok(),
                None => std::fs::canonicalize(src).ok(),
            };
            at.as_deref().is_none_or(holds_cgroupfs)
        };
        if top_only && source_holds_cgroupfs() {
            capsa_sys::mount::set_attrs(tree, capsa_sys::mount::ATTR_RDONLY, 0, true)
                .map_err(|e| err("make read-only recursively", &dest, e))?;
        }
        // The recursive options (`rro`, and `ro` on an rbind in capsa's
        // hardened mode: `Plan::harden`), on the detached tree too (never
        // on a path looked up again after the attach).
        let (set, clear) = recursive_attrs(m);
        if set != 0 || clear != 0 {
            capsa_sys::mount::set_attrs(tree, set, clear, true)
                .map_err(|e| err("mount_setattr (recursive options)", &dest, e))?;
        }
        capsa_sys::mount::attach(tree, target.as_raw_fd()).map_err(|e| {
            err(
                "attach bind mount",
                format!("{} on {dest}", src.display()),
                e,
            )
        })?;
        for p in &m.propagation {
            mount(
                None::<&str>,
                fd_path(tree).as_str(),
                None::<&str>,
                flags(*p),
                None::<&str>,
            )
            .map_err(|e| err("mount propagation", &dest, e))?;
        }
        return Ok(());
    }
    // Security: proc and sysfs must not land on a symlink that points
    // somewhere we did not mean (CVE-2019-19921 class).
    let links = if m.fstype == "proc" || m.fstype == "sysfs" || under_proc {
        Symlinks::Refuse
    } else {
        Symlinks::InRoot
    };
    let target = match root.open_at(&m.destination, libc::O_PATH, links) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => make(root, &m.destination, false)?,
        // runc's words, which engines and users know.
        Err(Errno::ELOOP) if links == Symlinks::Refuse => {
            return Err(ChildError::msg(
                "rootfs",
                "mount",
                &dest,
                format!("{dest} must be mounted on ordinary directory (it is a symlink)"),
            ))
        }
        Err(e) => return Err(err("open", &dest, e)),
    };
    if m.destination == Path::new("/proc") && m.fstype != "proc" {
        return Err(ChildError::msg(
            "rootfs",
            "mount",
            "/proc",
            format!("only proc may be mounted at /proc, not {:?}", m.fstype),
        ));
    }
    refuse_on_proc(m, &target, false)?;
    let target_path = fd_path(target.as_raw_fd());
    let source = m
        .source
        .as_ref()
        .map(|s| s.display().to_string())
        .unwrap_or_else(|| m.fstype.clone());
    let data = if m.data.is_empty() {
        None
    } else {
        Some(m.data.as_str())
    };
    let f = flags(m.flags);
    // A tmpfs is made detached (new mount API), given its mode and, for
    // tmpcopyup, its content through its own fd, then attached onto the
    // target's fd.
    //
    // Security: CVE-2021-30465 class. Nothing is looked up again by path
    // once the target was resolved: a process sharing a volume with the
    // container could swap the path for a link between the mount and a
    // chmod or copy, and have them land elsewhere in the root.
    if m.fstype == "tmpfs" {
        if let Some(tree) = detached_tmpfs(m, &target, &dest)? {
            capsa_sys::mount::attach(tree.as_raw_fd(), target.as_raw_fd())
                .map_err(|e| err("attach tmpfs", &dest, e))?;
            for p in &m.propagation {
                mount(
                    None::<&str>,
                    fd_path(tree.as_raw_fd()).as_str(),
                    None::<&str>,
                    flags(*p),
                    None::<&str>,
                )
                .map_err(|e| err("mount propagation", &dest, e))?;
            }
            return Ok(());
        }
    }
    let res = mount(
        Some(source.as_str()),
        target_path.as_str(),
        Some(m.fstype.as_str()),
        f,
        data,
    );
    match res {
        Ok(()) => {}
        // In a user namespace devpts refuses a gid that is not mapped: try
        // without it, as runc does.
        Err(Errno::EINVAL) if m.fstype == "devpts" && m.data.contains("gid=") => {
            let d: Vec<&str> = m
                .data
                .split(',')
                .filter(|o| !o.starts_with("gid="))
                .collect();
            mount(
                Some(source.as_str()),
                target_path.as_str(),
                Some("devpts"),
                f,
                Some(d.join(",").as_str()),
            )
            .map_err(|e| err("mount devpts", &dest, e))?;
        }
        // sysfs cannot be mounted from a user namespace that does not own
        // the network namespace: bind the host's instead.
        Err(Errno::EPERM) if m.fstype == "sysfs" && plan.new_userns() => {
            mount(
                Some("/sys"),
                target_path.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| err("bind mount", "/sys", e))?;
            if m.readonly() {
                let t = root
                    .open_at(&m.destination, libc::O_PATH, Symlinks::Refuse)
                    .map_err(|e| err("open", &dest, e))?;
                remount_bind(&fd_path(t.as_raw_fd()), m.flags, &dest)?;
                readonly_recursive(root, m)?;
            }
        }
        Err(e) => return Err(err(&format!("mount {}", m.fstype), &dest, e)),
    }
    propagate(root, m)
}

/// `MS_*` flags as `mount_setattr` attributes to set and to clear (the
/// atime mode is one field: changing it clears the others).
pub(super) fn mount_attrs(ms: u64) -> (u64, u64) {
    use capsa_sys::mount as a;
    let mut set = 0;
    let mut clear = 0;
    for (flag, attr) in [
        (libc::MS_RDONLY, a::ATTR_RDONLY),
        (libc::MS_NOSUID, a::ATTR_NOSUID),
        (libc::MS_NODEV, a::ATTR_NODEV),
        (libc::MS_NOEXEC, a::ATTR_NOEXEC),
        (libc::MS_NODIRATIME, a::ATTR_NODIRATIME),
        (libc::MS_NOSYMFOLLOW, a::ATTR_NOSYMFOLLOW),
    ] {
        if ms & flag != 0 {
            set |= attr;
        }
    }
    for (flag, attr) in [
        (libc::MS_NOATIME, a::ATTR_NOATIME),
        (libc::MS_STRICTATIME, a::ATTR_STRICTATIME),
        (libc::MS_RELATIME, a::ATTR_RELATIME),
    ] {
        if ms & flag != 0 {
            set |= attr;
            clear |= a::ATTR_ATIME_MASK;
        }
    }
    (set, clear)
}

/// Whether a cgroup filesystem is mounted at or under `real` (a bind's
/// source, links resolved) in our mount namespace. When that cannot be
/// told, yes.
pub(super) fn holds_cgroupfs(real: &Path) -> bool {
    let Ok(text) = crate::procfs::open().and_then(|p| {
        p.read(&capsa_sys::procfs::ProcFs::own("mountinfo"), 16 << 20)
            .map_err(|e| err("read", "/proc/self/mountinfo", e))
    }) else {
        return true;
    };
    text.lines().any(|line| {
        let Some((pre, post)) = line.split_once(" - ") else {
            return false;
        };
        let fstype = post.split(' ').next().unwrap_or("");
        let at = pre.split(' ').nth(4).map(capsa_sys::mount::unescape);
        matches!(fstype, "cgroup" | "cgroup2")
            && at.is_some_and(|a| Path::new(&a).starts_with(real))
    })
}

/// A read-only recursive bind is read-only all the way down: the mounts
/// under it (the host's `/sys/fs/cgroup` under a bound `/sys`) too.
///
/// Security: CVE-2023-25809. A rootless container without a cgroup
/// namespace would otherwise write to the user's own cgroups through the
/// `/sys` bind, whose read-only remount covers only its top.
pub(super) fn readonly_recursive(root: &Root, m: &MountPlan) -> R<()> {
    let t = root
        .open_at(&m.destination, libc::O_PATH, Symlinks::InRoot)
        .map_err(|e| err("open", m.destination.display(), e))?;
    capsa_sys::mount::set_readonly_recursive(&t)
        .map_err(|e| err("make read-only recursively", m.destination.display(), e))
}

pub(super) fn propagate(root: &Root, m: &MountPlan) -> R<()> {
    if m.propagation.is_empty() {
        return Ok(());
    }
    let t = root
        .open_at(&m.destination, libc::O_PATH, Symlinks::InRoot)
        .map_err(|e| err("open", m.destination.display(), e))?;
    for p in &m.propagation {
        mount(
            None::<&str>,
            fd_path(t.as_raw_fd()).as_str(),
            None::<&str>,
            flags(*p),
            None::<&str>,
        )
        .map_err(|e| err("mount propagation", m.destination.display(), e))?;
    }
    Ok(())
}

/// Remount a bind mount with `extra` flags. Flags the kernel locked on the
/// source (nosuid, nodev, noexec from a less privileged namespace) must be
/// repeated, or the remount fails with EPERM.
pub(super) fn remount_bind(target: &str, extra: u64, what: &str) -> R<()> {
    let base = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    match mount(
        None::<&str>,
        target,
        None::<&str>,
        base | flags(extra),
        None::<&str>,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => {
            let locked = locked_flags(target);
            mount(
                None::<&str>,
                target,
                None::<&str>,
                base | flags(extra) | locked,
                None::<&str>,
            )
            .map_err(|e| err("remount", what, e))
        }
        Err(e) => Err(err("remount", what, e)),
    }
}

pub(super) fn locked_flags(target: &str) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::statvfs(target) else {
        return MsFlags::empty();
    };
    use nix::sys::statvfs::FsFlags;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}
