//! Namespaces: the maps a parent writes for a new user namespace, joining
//! namespaces by path, and which namespaces of a container differ from ours.

use crate::error::{ChildError, Error, Result};
use capsa_spec::IdMap;
use std::os::unix::fs::MetadataExt;

/// Every namespace kind with its `/proc/PID/ns` name, user namespace first
/// (joining it first is what lets us join the others it owns).
pub const KINDS: [(i32, &str); 8] = [
    (libc::CLONE_NEWUSER, "user"),
    (libc::CLONE_NEWNS, "mnt"),
    (libc::CLONE_NEWPID, "pid"),
    (libc::CLONE_NEWNET, "net"),
    (libc::CLONE_NEWIPC, "ipc"),
    (libc::CLONE_NEWUTS, "uts"),
    (libc::CLONE_NEWCGROUP, "cgroup"),
    (libc::CLONE_NEWTIME, "time"),
];

fn render(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container, m.host, m.size))
        .collect()
}

/// Write `/proc/PID/uid_map` and `gid_map` for a child waiting in its new
/// user namespace. As root of the parent namespace no `setgroups` deny is
/// needed, so the container may still call setgroups(2).
pub fn write_maps(pid: i32, uid: &[IdMap], gid: &[IdMap]) -> Result<()> {
    let proc = capsa_sys::procfs::ProcFs::new().map_err(|e| Error::sys("open", "procfs", e))?;
    for (file, maps) in [("uid_map", uid), ("gid_map", gid)] {
        let path = format!("{pid}/{file}");
        proc.write(std::path::Path::new(&path), render(maps).as_bytes())
            .map_err(|e| Error::sys("write", format!("/proc/{path}"), e))?;
    }
    Ok(())
}

/// Join each namespace in `join` (user namespace first), in the child.
pub fn join(join: &[(i32, std::path::PathBuf)]) -> std::result::Result<(), ChildError> {
    for (flag, path) in join {
        let f = std::fs::File::open(path).map_err(|e| {
            ChildError::sys(
                "namespaces",
                "open",
                path.display(),
                nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            )
        })?;
        capsa_sys::process::setns(std::os::fd::AsRawFd::as_raw_fd(&f), *flag)
            .map_err(|e| ChildError::sys("namespaces", "setns", path.display(), e))?;
    }
    Ok(())
}

/// The `CLONE_NEW*` flags of the namespaces `pid` is in and we are not.
pub fn differing(pid: i32) -> Result<i32> {
    let mut flags = 0;
    for (flag, name) in KINDS {
        let theirs = match std::fs::metadata(format!("/proc/{pid}/ns/{name}")) {
            Ok(m) => m.ino(),
            // A kernel without this namespace kind.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", format!("/proc/{pid}/ns/{name}"), e)),
        };
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}"))
            .map(|m| m.ino())
            .unwrap_or(0);
        if theirs != ours {
            flags |= flag;
        }
    }
    Ok(flags)
}

/// Write the time namespace offsets (`/proc/self/timens_offsets`), which the
/// kernel accepts only before any process has entered the namespace.
pub fn write_time_offsets(offsets: &[(String, i64, u32)]) -> std::result::Result<(), ChildError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let proc = crate::procfs::open()?;
    let path = capsa_sys::procfs::ProcFs::own("timens_offsets");
    for (clock, secs, nanos) in offsets {
        let line = format!("{clock} {secs} {nanos}");
        proc.write(&path, line.as_bytes())
            .map_err(|e| ChildError::sys("namespaces", "write timens_offsets", &line, e))?;
    }
    Ok(())
}

/// A user namespace with these maps, for an id-mapped mount: a short-lived
/// child makes it, we write its maps and keep a handle (the namespace lives
/// as long as the handle).
#[allow(unsafe_code)] // fork: see the SAFETY notes
pub fn userns_fd(uid: &[IdMap], gid: &[IdMap]) -> Result<std::os::fd::OwnedFd> {
    use capsa_sys::process::Forked;
    use std::os::fd::AsRawFd;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys("pipe", "userns helper", e))?;
    // SAFETY: the runtime's flows are single-threaded (DESIGN.md).
    match unsafe { capsa_sys::process::clone_fork(libc::CLONE_NEWUSER as u64, None) }
        .map_err(|e| Error::sys("clone3", "userns helper", e))?
    {
        Forked::Child => {
            drop(w);
            // Wait until the parent is done with us (it closes its end).
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(r.as_raw_fd(), &mut b);
            capsa_sys::process::exit_now(0)
        }
        Forked::Parent(pid) => {
            drop(r);
            let res = write_maps(pid.as_raw(), uid, gid).and_then(|()| {
                let p = format!("/proc/{pid}/ns/user");
                std::fs::File::open(&p)
                    .map(Into::into)
                    .map_err(|e| Error::io("open", p, e))
            });
            drop(w);
            let _ = nix::sys::wait::waitpid(pid, None);
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_render_one_line_per_range() {
        let m = [
            IdMap {
                container: 0,
                host: 100000,
                size: 65536,
            },
            IdMap {
                container: 65536,
                host: 1000,
                size: 1,
            },
        ];
        assert_eq!(render(&m), "0 100000 65536\n65536 1000 1\n");
    }

    #[test]
    fn our_own_namespaces_do_not_differ_from_ours() {
        assert_eq!(differing(std::process::id() as i32).unwrap(), 0);
    }
}
