//! The container's root filesystem, set up by its init before pivot_root:
//! propagation, the spec's mounts resolved inside the rootfs, `/dev`, the
//! console, then pivot_root, masked and read-only paths.

use crate::error::ChildError;
use capsa_cgroups::{Cgroup, Hierarchy};
use capsa_spec::mounts::MountPlan;
use capsa_spec::Plan;
use capsa_sys::resolve::{fd_path, open_in_root, Symlinks};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
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
/// mount point pivot_root accepts. Returns an `O_PATH` fd of the rootfs.
pub fn prepare_root(plan: &Plan) -> R<OwnedFd> {
    let mut prop = plan.rootfs_propagation;
    // A shared root would propagate our mounts to the host: start as a
    // slave, and make the new root shared after pivot_root.
    if prop & libc::MS_SHARED != 0 {
        prop = libc::MS_SLAVE | libc::MS_REC;
    }
    mount(None::<&str>, "/", None::<&str>, flags(prop), None::<&str>)
        .map_err(|e| err("mount propagation", "/", e))?;
    let rootfs = &plan.rootfs;
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| err("bind mount", rootfs.display(), e))?;
    open_root(rootfs)
}

fn open_root(rootfs: &Path) -> R<OwnedFd> {
    let fd = nix::fcntl::open(
        rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err("open", rootfs.display(), e))?;
    Ok(capsa_sys::fd::own_raw(fd))
}

/// Create `path` inside the root (directories, and the last component as a
/// file when `file`), never following a symlink out of it: each component
/// is looked at without following, and a symlink is replaced by its target
/// read as if the rootfs were `/` (so `/evil -> /etc` means the rootfs's
/// `/etc`, and a dangling link is created inside). Returns an `O_PATH` fd.
pub fn mkdir_in_root(root: &OwnedFd, path: &Path, file: bool) -> R<OwnedFd> {
    use nix::fcntl::AtFlags;
    use std::collections::VecDeque;
    use std::ffi::OsString;
    let comps = |p: &Path| -> Vec<OsString> {
        p.components()
            .filter_map(|c| match c {
                std::path::Component::Normal(n) => Some(n.to_os_string()),
                std::path::Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect()
    };
    let mut pending: VecDeque<OsString> = comps(path).into();
    let mut cur = PathBuf::from("/");
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let parent = open_in_root(
            root.as_fd(),
            &cur,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            Symlinks::InRoot,
        )
        .map_err(|e| err("open", cur.display(), e))?;
        let next = cur.join(&c);
        match nix::sys::stat::fstatat(
            Some(parent.as_raw_fd()),
            c.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                hops += 1;
                if hops > 40 {
                    return Err(err("resolve", path.display(), Errno::ELOOP));
                }
                let target = nix::fcntl::readlinkat(Some(parent.as_raw_fd()), c.as_os_str())
                    .map_err(|e| err("readlink", next.display(), e))?;
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                for t in comps(&target).into_iter().rev() {
                    pending.push_front(t);
                }
            }
            Ok(_) => cur = next,
            Err(Errno::ENOENT) => {
                if pending.is_empty() && file {
                    let fd = nix::fcntl::openat(
                        Some(parent.as_raw_fd()),
                        c.as_os_str(),
                        nix::fcntl::OFlag::O_CREAT
                            | nix::fcntl::OFlag::O_WRONLY
                            | nix::fcntl::OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map_err(|e| err("create", next.display(), e))?;
                    drop(capsa_sys::fd::own_raw(fd));
                } else {
                    match nix::sys::stat::mkdirat(
                        Some(parent.as_raw_fd()),
                        c.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(err("mkdir", next.display(), e)),
                    }
                }
                cur = next;
            }
            Err(e) => return Err(err("stat", next.display(), e)),
        }
    }
    open_in_root(root.as_fd(), &cur, libc::O_PATH, 0, Symlinks::InRoot)
        .map_err(|e| err("open", cur.display(), e))
}

/// Mount every entry of the spec, in order.
/// `idmapped` holds, by mount index, detached id-mapped trees the runtime
/// prepared (only it has the privilege to map them).
pub fn mount_all(
    plan: &Plan,
    root: &OwnedFd,
    cgroup: &Cgroup,
    hier: &Hierarchy,
    idmapped: &[(usize, std::os::fd::RawFd)],
) -> R<()> {
    for (i, m) in plan.mounts.iter().enumerate() {
        if m.fstype == "cgroup" || m.fstype == "cgroup2" {
            mount_cgroup(plan, root, m, cgroup, hier)?;
        } else {
            let tree = idmapped.iter().find(|(j, _)| *j == i).map(|(_, fd)| *fd);
            mount_one(plan, root, m, tree)?;
        }
    }
    Ok(())
}

fn mount_one(
    plan: &Plan,
    root: &OwnedFd,
    m: &MountPlan,
    idmapped: Option<std::os::fd::RawFd>,
) -> R<()> {
    let dest = m.destination.display().to_string();
    if m.bind {
        let src = m.source.as_deref().unwrap_or(Path::new(""));
        let meta = std::fs::metadata(src).map_err(|e| {
            err(
                "stat",
                src.display(),
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            )
        })?;
        let target = mkdir_in_root(root, &m.destination, !meta.is_dir())?;
        let mut f = MsFlags::MS_BIND;
        if m.recursive {
            f |= MsFlags::MS_REC;
        }
        match idmapped {
            // The runtime cloned and id-mapped the source: attach it.
            Some(tree) => capsa_sys::mount::attach(tree, target.as_raw_fd()).map_err(|e| {
                err(
                    "attach id-mapped mount",
                    format!("{} on {dest}", src.display()),
                    e,
                )
            })?,
            None => mount(
                Some(src),
                fd_path(target.as_raw_fd()).as_str(),
                None::<&str>,
                f,
                None::<&str>,
            )
            .map_err(|e| err("bind mount", format!("{} on {dest}", src.display()), e))?,
        }
        let extra = m.flags & !(libc::MS_REC | libc::MS_BIND | libc::MS_REMOUNT);
        if extra != 0 {
            // The fd above is the directory under the mount: reopen to reach
            // the mount itself.
            let target = open_in_root(
                root.as_fd(),
                &m.destination,
                libc::O_PATH,
                0,
                Symlinks::InRoot,
            )
            .map_err(|e| err("open", &dest, e))?;
            remount_bind(&fd_path(target.as_raw_fd()), extra, &dest)?;
        }
        return propagate(root, m);
    }
    // Security: proc and sysfs must not land on a symlink that points
    // somewhere we did not mean (CVE-2019-19921 class).
    let links = if m.fstype == "proc" || m.fstype == "sysfs" {
        Symlinks::Refuse
    } else {
        Symlinks::InRoot
    };
    let target = match open_in_root(root.as_fd(), &m.destination, libc::O_PATH, 0, links) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => mkdir_in_root(root, &m.destination, false)?,
        Err(e) => return Err(err("open", &dest, e)),
    };
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
                let t = open_in_root(
                    root.as_fd(),
                    &m.destination,
                    libc::O_PATH,
                    0,
                    Symlinks::Refuse,
                )
                .map_err(|e| err("open", &dest, e))?;
                remount_bind(&fd_path(t.as_raw_fd()), m.flags, &dest)?;
            }
        }
        Err(e) => return Err(err(&format!("mount {}", m.fstype), &dest, e)),
    }
    propagate(root, m)
}

fn propagate(root: &OwnedFd, m: &MountPlan) -> R<()> {
    if m.propagation.is_empty() {
        return Ok(());
    }
    let t = open_in_root(
        root.as_fd(),
        &m.destination,
        libc::O_PATH,
        0,
        Symlinks::InRoot,
    )
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
fn mount_cgroup(
    plan: &Plan,
    root: &OwnedFd,
    m: &MountPlan,
    cgroup: &Cgroup,
    hier: &Hierarchy,
) -> R<()> {
    let cgns = plan.namespaces.has(libc::CLONE_NEWCGROUP);
    let dest = m.destination.clone();
    let f = flags(m.flags & !libc::MS_RDONLY);
    let ro = m.readonly();
    if hier.v1.is_empty() {
        let target = mkdir_in_root(root, &dest, false)?;
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
                let t = open_in_root(root.as_fd(), &dest, libc::O_PATH, 0, Symlinks::InRoot)
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
    let target = mkdir_in_root(root, &dest, false)?;
    mount(
        Some("tmpfs"),
        fd_path(target.as_raw_fd()).as_str(),
        Some("tmpfs"),
        f,
        Some("mode=755"),
    )
    .map_err(|e| err("mount tmpfs", dest.display(), e))?;
    let mut subs: Vec<(String, Option<String>, PathBuf)> = Vec::new();
    for (controllers, dir) in &cgroup.v1 {
        let name = hier
            .v1
            .iter()
            .find(|h| &h.controllers == controllers)
            .and_then(|h| h.mountpoint.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| controllers.join(","));
        let opts = controllers.join(",");
        subs.push((name, Some(opts), dir.clone()));
    }
    if let (Some(v2), Some(mp)) = (&cgroup.v2, &hier.v2) {
        let name = mp
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unified".into());
        subs.push((name, None, v2.clone()));
    }
    for (name, opts, hostdir) in subs {
        let sub = dest.join(&name);
        let t = mkdir_in_root(root, &sub, false)?;
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
            let t = open_in_root(root.as_fd(), &sub, libc::O_PATH, 0, Symlinks::InRoot)
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
                let parent = open_in_root(
                    root.as_fd(),
                    &dest,
                    libc::O_PATH | libc::O_DIRECTORY,
                    0,
                    Symlinks::InRoot,
                )
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
        let t = open_in_root(root.as_fd(), &dest, libc::O_PATH, 0, Symlinks::InRoot)
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
/// `linux.devices`, and the standard links. In a user namespace mknod is
/// not allowed, so device nodes are bind mounts of the host's.
pub fn setup_dev(plan: &Plan, root: &OwnedFd) -> R<()> {
    if !plan
        .mounts
        .iter()
        .any(|m| m.destination == Path::new("/dev"))
    {
        return Ok(());
    }
    let dev = plan.rootfs.join("dev");
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
        let rel = path.strip_prefix("/").unwrap_or(&path);
        let host_path = plan.rootfs.join(rel);
        if let Some(parent) = path.parent() {
            mkdir_in_root(root, parent, false)?;
        }
        let kind = match t {
            'b' => nix::sys::stat::SFlag::S_IFBLK,
            'p' => nix::sys::stat::SFlag::S_IFIFO,
            _ => nix::sys::stat::SFlag::S_IFCHR,
        };
        let made = !plan.new_userns()
            && nix::sys::stat::mknod(
                &host_path,
                kind,
                Mode::from_bits_truncate(mode & 0o7777),
                nix::sys::stat::makedev(major, minor),
            )
            .is_ok();
        if made {
            // mknod is subject to umask; set the mode the spec asked for.
            let _ = nix::sys::stat::fchmodat(
                None,
                &host_path,
                Mode::from_bits_truncate(mode & 0o7777),
                nix::sys::stat::FchmodatFlags::NoFollowSymlink,
            );
            let _ = nix::unistd::chown(&host_path, Some(uid.into()), Some(gid.into()));
        } else {
            let host_dev = Path::new("/").join(rel);
            let t = mkdir_in_root(root, &path, true)?;
            mount(
                Some(&host_dev),
                fd_path(t.as_raw_fd()).as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
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
        let p = dev.join(link);
        if link == "ptmx" {
            let _ = std::fs::remove_file(&p);
        }
        match nix::unistd::symlinkat(to, None, &p) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(err("symlink", p.display(), e)),
        }
    }
    Ok(())
}

/// Bind the console's pty slave onto `/dev/console`.
pub fn bind_console(root: &OwnedFd, slave: &str) -> R<()> {
    let t = mkdir_in_root(root, Path::new("/dev/console"), true)?;
    mount(
        Some(slave),
        fd_path(t.as_raw_fd()).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| err("bind mount", "/dev/console", e))
}

/// Make `rootfs` the root: pivot_root and detach the old root, or with
/// `no_pivot` move the rootfs over `/` and chroot (for ramfs roots, where
/// pivot_root is not possible).
pub fn pivot(rootfs: &Path, no_pivot: bool) -> R<()> {
    nix::unistd::chdir(rootfs).map_err(|e| err("chdir", rootfs.display(), e))?;
    if no_pivot {
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

/// After pivot_root: the root's own propagation when shared was asked.
pub fn finish_propagation(plan: &Plan) -> R<()> {
    if plan.rootfs_propagation & libc::MS_SHARED != 0 {
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

/// Hide `maskedPaths`: /dev/null over files, an empty read-only tmpfs over
/// directories. Paths that do not exist are skipped.
pub fn mask(paths: &[PathBuf]) -> R<()> {
    for p in paths {
        let meta = match std::fs::symlink_metadata(p) {
            Ok(m) => m,
            Err(_) => continue,
        };
        let res = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                p,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )
        } else {
            mount(
                Some("/dev/null"),
                p,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        res.map_err(|e| err("mask", p.display(), e))?;
    }
    Ok(())
}

/// Make `readonlyPaths` read-only bind mounts of themselves.
pub fn readonly(paths: &[PathBuf]) -> R<()> {
    for p in paths {
        if std::fs::symlink_metadata(p).is_err() {
            continue;
        }
        mount(
            Some(p),
            p,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| err("bind mount", p.display(), e))?;
        remount_bind(
            &p.display().to_string(),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            &p.display().to_string(),
        )?;
    }
    Ok(())
}

/// `root.readonly`: remount `/` read-only.
pub fn readonly_root() -> R<()> {
    remount_bind("/", libc::MS_RDONLY, "/")
}
