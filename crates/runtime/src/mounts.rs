//! The container's root filesystem, set up by its init before pivot_root:
//! propagation, the spec's mounts resolved inside the rootfs, `/dev`, the
//! console, then pivot_root, masked and read-only paths.

use crate::error::ChildError;
use capsa_cgroups::{Cgroup, Hierarchy};
use capsa_spec::mounts::MountPlan;
use capsa_spec::Plan;
use capsa_sys::resolve::{fd_path, Symlinks};
use capsa_sys::root::Root;
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

type R<T> = std::result::Result<T, ChildError>;

fn err(op: &str, target: impl std::fmt::Display, e: Errno) -> ChildError {
    ChildError::sys("rootfs", op, target, e)
}

fn flags(bits: u64) -> MsFlags {
    MsFlags::from_bits_truncate(bits as libc::c_ulong)
}

/// Make our mount namespace's propagation what the spec asks (so nothing we
/// mount reaches the host), and bind the rootfs onto itself so that it is a
/// mount point pivot_root accepts. Returns the bound rootfs as a root.
///
/// When `rootfs_is_cwd`, the runtime handed the rootfs down as our working
/// directory: it is cloned from `.` and the host path to it is never
/// walked (a user namespace's root may not traverse it).
pub fn prepare_root(plan: &Plan, rootfs_is_cwd: bool) -> R<Root> {
    // Without a mount namespace of our own, the host's propagation and
    // tree are left as they are (runc makes the host's `/` a slave): the
    // rootfs is our working directory, entered later by chroot.
    if !crate::create::has_mount_namespace(plan) {
        let here = if rootfs_is_cwd {
            Path::new(".")
        } else {
            plan.rootfs.as_path()
        };
        return Root::open(here).map_err(|e| err("open", plan.rootfs.display(), e));
    }
    let mut prop = plan.rootfs_propagation;
    // A shared root would propagate our mounts to the host: start as a
    // slave, and make the new root shared after pivot_root.
    if prop & libc::MS_SHARED != 0 {
        prop = libc::MS_SLAVE | libc::MS_REC;
    }
    mount(None::<&str>, "/", None::<&str>, flags(prop), None::<&str>)
        .map_err(|e| err("mount propagation", "/", e))?;
    let rootfs = &plan.rootfs;
    let from = if rootfs_is_cwd {
        Path::new(".")
    } else {
        rootfs
    };
    let tree = capsa_sys::mount::clone_tree(from, true)
        .map_err(|e| err("bind mount", rootfs.display(), e))?;
    let under = capsa_sys::fd::open(
        from,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| err("open", rootfs.display(), e))?;
    capsa_sys::mount::attach(tree.as_raw_fd(), under.as_raw_fd())
        .map_err(|e| err("bind mount", rootfs.display(), e))?;
    // Attached, the tree's fd is the new mount's root.
    Ok(Root::from_fd(tree))
}

/// Clone the source of every bind mount the runtime did not (`skip`), as
/// detached trees by mount index. Called before the init takes the user
/// namespace's ids (see `init::run_inner`).
pub fn clone_sources(
    plan: &Plan,
    skip: &[(usize, std::os::fd::RawFd)],
) -> R<Vec<(usize, OwnedFd)>> {
    let mut out = Vec::new();
    for (i, m) in plan.mounts.iter().enumerate() {
        if !m.bind || skip.iter().any(|(j, _)| *j == i) {
            continue;
        }
        let src = m.source.as_deref().unwrap_or(Path::new(""));
        let tree = capsa_sys::mount::clone_tree(src, m.recursive).map_err(|e| {
            err(
                "bind mount",
                format!("{} on {}", src.display(), m.destination.display()),
                e,
            )
        })?;
        out.push((i, tree));
    }
    Ok(out)
}

/// Make `path` inside the root (directories, and the last component as a
/// file when `file`), never following a symlink out of it; an `O_PATH` fd.
fn make(root: &Root, path: &Path, file: bool) -> R<OwnedFd> {
    let made = if file {
        root.create_file(path)
    } else {
        root.mkdir_all(path)
    };
    made.map_err(|e| err("make", path.display(), e))
}

/// Mount every entry of the spec, in order.
/// `trees` holds, by mount index, the detached trees the runtime cloned on
/// the host (see `create::host_trees`).
/// Returns the read-only tmpfs mounts, mounted writable so that what goes
/// under them (`/dev`'s devices and submounts) can be made: hand them to
/// [`readonly_late`] once it is.
pub fn mount_all(
    plan: &Plan,
    root: &Root,
    cgroup: &Cgroup,
    hier: &Hierarchy,
    trees: &[(usize, std::os::fd::RawFd)],
) -> R<Vec<OwnedFd>> {
    let mut late = Vec::new();
    for (i, m) in plan.mounts.iter().enumerate() {
        if m.fstype == "cgroup" || m.fstype == "cgroup2" {
            mount_cgroup(plan, root, m, cgroup, hier)?;
        } else if m.fstype == "tmpfs" && !m.bind && m.readonly() {
            let mut rw = m.clone();
            rw.flags &= !libc::MS_RDONLY;
            mount_one(plan, root, &rw, None)?;
            // Resolved as the mount's own target was (inside the root).
            let fd = root
                .open_at(&m.destination, libc::O_PATH, Symlinks::InRoot)
                .map_err(|e| err("open", m.destination.display(), e))?;
            late.push(fd);
        } else {
            let tree = trees.iter().find(|(j, _)| *j == i).map(|(_, fd)| *fd);
            mount_one(plan, root, m, tree)?;
        }
    }
    Ok(late)
}

/// Make read-only, each on its own (its submounts keep their flags), the
/// tmpfs mounts [`mount_all`] left writable, as runc does for a read-only
/// `/dev`.
pub fn readonly_late(mounts: Vec<OwnedFd>) -> R<()> {
    for fd in mounts {
        capsa_sys::mount::set_attrs(fd.as_raw_fd(), capsa_sys::mount::ATTR_RDONLY, 0, false)
            .map_err(|e| err("make read-only", fd_path(fd.as_raw_fd()), e))?;
    }
    Ok(())
}

/// The files lxcfs (and the like) may cover under `/proc`, with bind
/// mounts of regular files: runc's list.
const PROC_ALLOWED: [&str; 10] = [
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// Refuse a spec mount whose target, as resolved inside the root, is on a
/// procfs: only proc itself at `/proc`, and the short list above as bind
/// mounts of files, may land there.
///
/// Security: CVE-2019-16884, CVE-2023-28642 (a mount over `/proc/self/attr`
/// or the like turns the runtime's LSM writes into no-ops) and
/// CVE-2025-52881 (writes to `/proc/sys` redirected). Checked on the
/// resolved fd, so a symlink in the image cannot lead a mount named
/// `/foo` onto `/proc/...` either.
fn refuse_on_proc(m: &MountPlan, target: &OwnedFd, file: bool) -> R<()> {
    let on_proc = nix::sys::statfs::fstatfs(target)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC);
    if !on_proc {
        return Ok(());
    }
    let allowed = m.bind && file && PROC_ALLOWED.iter().any(|p| m.destination == Path::new(p));
    if allowed {
        return Ok(());
    }
    Err(ChildError::msg(
        "rootfs",
        "mount",
        m.destination.display(),
        "lands on /proc: only proc itself may be mounted there (and lxcfs's files under it)",
    ))
}

fn mount_one(
    plan: &Plan,
    root: &Root,
    m: &MountPlan,
    host_tree: Option<std::os::fd::RawFd>,
) -> R<()> {
    if m.bind {
        return mount_made(plan, root, m, host_tree);
    }
    // A new filesystem has no submounts yet: its recursive options are its
    // plain flags (what runc's mount_setattr right after the mount does).
    let mut fresh = m.clone();
    fresh.flags = (m.flags | m.recursive_set) & !m.recursive_clear;
    mount_made(plan, root, &fresh, host_tree)
}

/// A tmpfs for `m`, detached: its options set on a filesystem context,
/// its flags as mount attributes, its root given the mode of the directory
/// it will cover when `mode=` is not given (runc's behaviour), and for
/// `tmpcopyup` a copy of that directory's content, read through the
/// target's own fd. `None` when a flag has no mount attribute (`sync`,
/// `dirsync`, ...): the caller mounts it as before.
fn detached_tmpfs(m: &MountPlan, target: &OwnedFd, dest: &str) -> R<Option<OwnedFd>> {
    let attr_flags = libc::MS_RDONLY
        | libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC
        | libc::MS_NOATIME
        | libc::MS_NODIRATIME
        | libc::MS_RELATIME
        | libc::MS_STRICTATIME
        | libc::MS_NOSYMFOLLOW;
    if m.flags & !attr_flags != 0 {
        return Ok(None);
    }
    let c =
        |s: &str| std::ffi::CString::new(s).map_err(|_| err("tmpfs option", dest, Errno::EINVAL));
    let fs =
        capsa_sys::mount::FsContext::open(c"tmpfs").map_err(|e| err("fsopen tmpfs", dest, e))?;
    // The name /proc/mounts shows (`tmpfs`, `shm`), as mount(2) gave it.
    let source = m
        .source
        .as_ref()
        .map(|s| s.display().to_string())
        .unwrap_or_else(|| m.fstype.clone());
    fs.set(c"source", &c(&source)?)
        .map_err(|e| err("tmpfs source", dest, e))?;
    for opt in m.data.split(',').filter(|o| !o.is_empty()) {
        let set = match opt.split_once('=') {
            Some((k, v)) => fs.set(&c(k)?, &c(v)?),
            None => fs.set_flag(&c(opt)?),
        };
        set.map_err(|e| err("tmpfs option", format!("{opt} on {dest}"), e))?;
    }
    let tree = fs
        .mount(mount_attrs(m.flags).0)
        .map_err(|e| err("fsmount tmpfs", dest, e))?;
    // The covered directory, through the target's fd (not its path).
    let covered = capsa_sys::fd::openat(
        target.as_fd(),
        ".",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| err("open", dest, e))?;
    let top = capsa_sys::fd::openat(
        tree.as_fd(),
        ".",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| err("open tmpfs root", dest, e))?;
    let writable = m.flags & libc::MS_RDONLY == 0;
    if m.copy_up && writable {
        crate::copyup::copy(&covered, &top)?;
    } else if writable && !m.data.split(',').any(|o| o.starts_with("mode=")) {
        let st = nix::sys::stat::fstat(covered.as_raw_fd()).map_err(|e| err("stat", dest, e))?;
        nix::sys::stat::fchmod(
            top.as_raw_fd(),
            nix::sys::stat::Mode::from_bits_truncate(st.st_mode & 0o7777),
        )
        .map_err(|e| err("chmod", dest, e))?;
    }
    Ok(Some(tree))
}

/// The recursive options (`rro`, `rnosuid`, ...) as `mount_setattr`
/// attributes to set and to clear. Clearing an atime mode goes back to
/// relatime (0), the default.
fn recursive_attrs(m: &MountPlan) -> (u64, u64) {
    let (set, atime_chosen) = mount_attrs(m.recursive_set);
    let (off, atime_left) = mount_attrs(m.recursive_clear);
    let atime = capsa_sys::mount::ATTR_ATIME_MASK;
    (set, atime_chosen | atime_left | (off & !atime))
}

fn mount_made(
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
        // Where the source is, as mountinfo spells it: read from the fd
        // the clone is made from, so that the tree and the path looked up
        // for cgroup filesystems under it are one.
        let src_at;
        let tree = match host_tree {
            // The runtime cloned (and perhaps id-mapped) the source.
            Some(tree) => {
                src_at = std::fs::canonicalize(src).ok();
                tree
            }
            None => {
                let at = capsa_sys::fd::open(
                    src,
                    nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| err("bind mount", format!("{} on {dest}", src.display()), e))?;
                src_at = std::fs::read_link(fd_path(at.as_raw_fd())).ok();
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
        if m.recursive && m.readonly() && src_at.as_deref().is_none_or(holds_cgroupfs) {
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
fn mount_attrs(ms: u64) -> (u64, u64) {
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
fn holds_cgroupfs(real: &Path) -> bool {
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
fn readonly_recursive(root: &Root, m: &MountPlan) -> R<()> {
    let t = root
        .open_at(&m.destination, libc::O_PATH, Symlinks::InRoot)
        .map_err(|e| err("open", m.destination.display(), e))?;
    capsa_sys::mount::set_readonly_recursive(&t)
        .map_err(|e| err("make read-only recursively", m.destination.display(), e))
}

fn propagate(root: &Root, m: &MountPlan) -> R<()> {
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
fn remount_bind(target: &str, extra: u64, what: &str) -> R<()> {
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

fn locked_flags(target: &str) -> MsFlags {
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

/// The `cgroup` mount: with a cgroup namespace a fresh cgroup filesystem per
/// hierarchy (which shows the namespace's root, our own cgroup); without one
/// a bind of our cgroup directories, so the rest of the host stays unseen.
/// On v1 or hybrid, what goes under the cgroup mount's tmpfs, as on the
/// host: per hierarchy its name there (`cpu,cpuacct`, `unified`), its
/// controllers (none for v2) and the container's cgroup directory in it.
pub(crate) fn cgroup_submounts(
    cgroup: &Cgroup,
    hier: &Hierarchy,
) -> Vec<(String, Option<String>, PathBuf)> {
    let mut subs = Vec::new();
    for (controllers, dir) in &cgroup.v1 {
        let name = hier
            .v1
            .iter()
            .find(|h| &h.controllers == controllers)
            .and_then(|h| h.mountpoint.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| controllers.join(","));
        subs.push((name, Some(controllers.join(",")), dir.clone()));
    }
    if let (Some(v2), Some(mp)) = (&cgroup.v2, &hier.v2) {
        let name = mp
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unified".into());
        subs.push((name, None, v2.clone()));
    }
    subs
}

fn mount_cgroup(
    plan: &Plan,
    root: &Root,
    m: &MountPlan,
    cgroup: &Cgroup,
    hier: &Hierarchy,
) -> R<()> {
    let cgns = plan.namespaces.has(libc::CLONE_NEWCGROUP);
    let dest = m.destination.clone();
    let f = flags(m.flags & !libc::MS_RDONLY);
    let ro = m.readonly();
    if hier.v1.is_empty() {
        let target = make(root, &dest, false)?;
        let tp = fd_path(target.as_raw_fd());
        if cgns {
            mount(
                Some("cgroup2"),
                tp.as_str(),
                Some("cgroup2"),
                flags(m.flags),
                None::<&str>,
            )
            .map_err(|e| err("mount cgroup2", dest.display(), e))?;
        } else if let Some(d) = &cgroup.v2 {
            mount(
                Some(d),
                tp.as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| err("bind mount", d.display(), e))?;
            if ro || f.bits() != 0 {
                let t = root
                    .open_at(&dest, libc::O_PATH, Symlinks::InRoot)
                    .map_err(|e| err("open", dest.display(), e))?;
                remount_bind(
                    &fd_path(t.as_raw_fd()),
                    m.flags,
                    &dest.display().to_string(),
                )?;
            }
        }
        return Ok(());
    }
    // v1 or hybrid: a tmpfs holding one mount per hierarchy, as on the host.
    let target = make(root, &dest, false)?;
    mount(
        Some("tmpfs"),
        fd_path(target.as_raw_fd()).as_str(),
        Some("tmpfs"),
        f,
        Some("mode=755"),
    )
    .map_err(|e| err("mount tmpfs", dest.display(), e))?;
    let subs = cgroup_submounts(cgroup, hier);
    for (name, opts, hostdir) in subs {
        let sub = dest.join(&name);
        let t = make(root, &sub, false)?;
        let tp = fd_path(t.as_raw_fd());
        let mut done = false;
        if cgns {
            let (fstype, data) = match &opts {
                Some(o) => ("cgroup", Some(o.as_str())),
                None => ("cgroup2", None),
            };
            done = mount(
                Some("cgroup"),
                tp.as_str(),
                Some(fstype),
                flags(m.flags),
                data,
            )
            .is_ok();
        }
        if !done {
            mount(
                Some(&hostdir),
                tp.as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| err("bind mount", hostdir.display(), e))?;
            let t = root
                .open_at(&sub, libc::O_PATH, Symlinks::InRoot)
                .map_err(|e| err("open", sub.display(), e))?;
            remount_bind(
                &fd_path(t.as_raw_fd()),
                m.flags | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                &sub.display().to_string(),
            )?;
        }
        // cpu,cpuacct mounted together get a link per controller, as on
        // the host.
        if name.contains(',') {
            for c in name.split(',') {
                let link = dest.join(c);
                let parent = root
                    .open_at(&dest, libc::O_PATH | libc::O_DIRECTORY, Symlinks::InRoot)
                    .map_err(|e| err("open", dest.display(), e))?;
                match nix::unistd::symlinkat(name.as_str(), Some(parent.as_raw_fd()), Path::new(c))
                {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(err("symlink", link.display(), e)),
                }
            }
        }
    }
    if ro {
        let t = root
            .open_at(&dest, libc::O_PATH, Symlinks::InRoot)
            .map_err(|e| err("open", dest.display(), e))?;
        mount(
            None::<&str>,
            fd_path(t.as_raw_fd()).as_str(),
            None::<&str>,
            MsFlags::MS_REMOUNT | f | MsFlags::MS_RDONLY,
            Some("mode=755"),
        )
        .map_err(|e| err("remount ro", dest.display(), e))?;
    }
    Ok(())
}

/// The devices every container gets, as (name, type, major, minor).
const DEFAULT_DEVICES: [(&str, char, u64, u64); 6] = [
    ("null", 'c', 1, 3),
    ("zero", 'c', 1, 5),
    ("full", 'c', 1, 7),
    ("random", 'c', 1, 8),
    ("urandom", 'c', 1, 9),
    ("tty", 'c', 5, 0),
];

/// Populate `/dev` (when the spec mounts it) with the default devices,
/// `linux.devices`, and the standard links, every one made inside the
/// root (an image whose `/dev` is a link to a host directory gets them in
/// its own tree, never on the host). In a user namespace mknod is not
/// allowed, so device nodes are bind mounts of the host's, each checked to
/// be the device the spec names.
pub fn setup_dev(plan: &Plan, root: &Root) -> R<()> {
    if !plan
        .mounts
        .iter()
        .any(|m| m.destination == Path::new("/dev"))
    {
        return Ok(());
    }
    let mut nodes: Vec<(PathBuf, char, u64, u64, u32, u32, u32)> = DEFAULT_DEVICES
        .iter()
        .map(|(n, t, ma, mi)| (PathBuf::from("/dev").join(n), *t, *ma, *mi, 0o666, 0, 0))
        .collect();
    for d in &plan.devices {
        let t = match d.typ() {
            capsa_spec::oci::LinuxDeviceType::B => 'b',
            capsa_spec::oci::LinuxDeviceType::P => 'p',
            _ => 'c',
        };
        nodes.retain(|n| n.0 != *d.path());
        nodes.push((
            d.path().clone(),
            t,
            d.major() as u64,
            d.minor() as u64,
            d.file_mode().unwrap_or(0o666),
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
        ));
    }
    for (path, t, major, minor, mode, uid, gid) in nodes {
        let kind = match t {
            'b' => nix::sys::stat::SFlag::S_IFBLK,
            'p' => nix::sys::stat::SFlag::S_IFIFO,
            _ => nix::sys::stat::SFlag::S_IFCHR,
        };
        let rdev = nix::sys::stat::makedev(major, minor);
        let made = !plan.new_userns() && root.mknod(&path, kind, mode, rdev, uid, gid).is_ok();
        if !made {
            // The host's node of the same name, checked to be that device
            // (a host path of capsa's choosing, not one from the image).
            let rel = path.strip_prefix("/").unwrap_or(&path);
            let host_dev = Path::new("/").join(rel);
            let src = open_device(&host_dev, kind, rdev)?;
            let t = make(root, &path, true)?;
            capsa_sys::root::bind_fd(&src, &t, false)
                .map_err(|e| err("bind mount", host_dev.display(), e))?;
        }
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let p = Path::new("/dev").join(link);
        root.symlink(to, &p, link == "ptmx")
            .map_err(|e| err("symlink", p.display(), e))?;
    }
    Ok(())
}

/// An `O_PATH` fd of the device node at `path`, checked to be of `kind`
/// and number `rdev`, and not reached through a symlink.
pub fn open_device(path: &Path, kind: nix::sys::stat::SFlag, rdev: u64) -> R<OwnedFd> {
    let fd = capsa_sys::fd::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err("open", path.display(), e))?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| err("stat", path.display(), e))?;
    if st.st_mode & libc::S_IFMT != kind.bits()
        || (kind != nix::sys::stat::SFlag::S_IFIFO && st.st_rdev != rdev)
    {
        return Err(ChildError::msg(
            "rootfs",
            "check device",
            path.display(),
            format!(
                "not the device asked for ({}:{})",
                nix::sys::stat::major(rdev),
                nix::sys::stat::minor(rdev)
            ),
        ));
    }
    Ok(fd)
}

/// Bind the console's pty slave (an fd, never a path) onto `/dev/console`.
pub fn bind_console(root: &Root, slave: &OwnedFd) -> R<()> {
    let t = make(root, Path::new("/dev/console"), true)?;
    capsa_sys::root::bind_fd(slave, &t, false).map_err(|e| err("bind mount", "/dev/console", e))
}

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
fn hide_host_pseudo_fs(root: &Root) -> R<()> {
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
