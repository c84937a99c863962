//! A cgroup's tree walked by directory fd (never by a path built from
//! names the container controls): its members, and its removal.
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use nix::errno::Errno;
#[allow(unused_imports)]
use std::os::fd::{AsRawFd, OwnedFd};
#[allow(unused_imports)]
use std::path::{Path, PathBuf};

/// A container with its cgroup mounted writable may make sub-cgroups (as
/// runc allows). They are walked by directory fd, never by a path built
/// from their names: neither depth nor long names can push one past
/// PATH_MAX and out of sight. Deeper than this, a walk goes no further
/// (what is there keeps `rmdir` of its parents failing, visibly).
pub(crate) const MAX_DEPTH: usize = 256;

/// The sub-directories of `dir` (sub-cgroups), by name.
pub(crate) fn subdirs(dir: &OwnedFd) -> Vec<std::ffi::CString> {
    let Ok(dup) = nix::unistd::dup(dir.as_raw_fd()) else {
        return Vec::new();
    };
    let Ok(mut d) = nix::dir::Dir::from_fd(dup) else {
        return Vec::new();
    };
    d.iter()
        .flatten()
        .filter(|e| e.file_type() == Some(nix::dir::Type::Directory))
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect()
}

/// Visit every sub-cgroup below `dir`, deepest first, as (its parent's fd,
/// its name, its own fd). A walk never stops at an error: a sub-cgroup
/// that went away meanwhile is simply not there.
pub(crate) fn walk_below(
    dir: &OwnedFd,
    depth: usize,
    visit: &mut dyn FnMut(&OwnedFd, &std::ffi::CStr, &OwnedFd),
) {
    if depth >= MAX_DEPTH {
        return;
    }
    for name in subdirs(dir) {
        let Ok(raw) = capsa_sys::fd::openat(
            std::os::fd::AsFd::as_fd(dir),
            name.as_c_str(),
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) else {
            continue;
        };
        let child = raw;
        walk_below(&child, depth + 1, visit);
        visit(dir, &name, &child);
    }
}

pub(crate) fn open_dir(d: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(d)
        .map(Into::into)
}

pub(crate) fn read_procs(dir: &OwnedFd, pids: &mut Vec<i32>) -> std::io::Result<()> {
    use std::io::Read;
    let raw = capsa_sys::fd::openat(
        std::os::fd::AsFd::as_fd(dir),
        "cgroup.procs",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let mut s = String::new();
    std::fs::File::from(raw).read_to_string(&mut s)?;
    pids.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    Ok(())
}

/// The pids of `d` and of every sub-cgroup below it (on v1 a parent's
/// `cgroup.procs` does not list its children's).
pub(crate) fn procs_under(d: &Path, pids: &mut Vec<i32>) -> Result<()> {
    let f = d.join("cgroup.procs");
    let top = open_dir(d).map_err(|e| CgroupError::sys("open", d, e))?;
    read_procs(&top, pids).map_err(|e| CgroupError::sys("read", &f, e))?;
    walk_below(&top, 0, &mut |_, _, child| {
        let _ = read_procs(child, pids);
    });
    Ok(())
}

/// Remove `d` and the sub-cgroups below it, deepest first.
pub(crate) fn rmdir_tree(d: &Path) -> Result<()> {
    if let Ok(top) = open_dir(d) {
        walk_below(&top, 0, &mut |parent, name, _| {
            let mut delay = std::time::Duration::from_micros(200);
            for _ in 0..40 {
                match nix::unistd::unlinkat(
                    Some(parent.as_raw_fd()),
                    name,
                    nix::unistd::UnlinkatFlags::RemoveDir,
                ) {
                    Err(Errno::EBUSY) => {
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(std::time::Duration::from_millis(20));
                    }
                    _ => return,
                }
            }
        });
    }
    rmdir_retry(d)
}

pub(crate) fn rmdir_retry(d: &Path) -> Result<()> {
    let mut delay = std::time::Duration::from_micros(200);
    for _ in 0..40 {
        match std::fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(CgroupError::sys("rmdir", d, e)),
        }
    }
    std::fs::remove_dir(d).map_err(|e| CgroupError::sys("rmdir", d, e))
}
