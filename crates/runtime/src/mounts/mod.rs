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

mod cgroup;
mod dev;
mod entry;
mod masks;
mod pivot;

pub(crate) use cgroup::cgroup_submounts;
// The rooms' own helpers, for each other.
use cgroup::*;
pub use dev::*;
use entry::*;
pub use masks::*;
pub use pivot::*;

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
