//! The pause process that holds a user's namespaces: how it starts (fork,
//! unshare, maps from newuidmap/newgidmap, exec of itself), how it is
//! recorded and recognised again, and how a command joins it.

use super::{Mapping, PAUSE_PID};
use crate::error::{Error, IoContext, Result};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What `pause.pid` records: the pid, its start time (clock ticks since
/// boot) and the inode of the user namespace it made. A pid alone could
/// be reused by any process of the user, a container's among them (whose
/// root is the user): the start time and namespace tell the pause apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PauseRecord {
    pid: i32,
    start: u64,
    userns: u64,
}

impl PauseRecord {
    fn parse(text: &str) -> Option<PauseRecord> {
        let mut f = text.split_whitespace();
        Some(PauseRecord {
            pid: f.next()?.parse().ok().filter(|p| *p > 0)?,
            start: f.next()?.parse().ok()?,
            userns: f.next()?.parse().ok()?,
        })
    }

    fn text(&self) -> String {
        format!("{} {} {}\n", self.pid, self.start, self.userns)
    }
}

/// A process's start time, field 22 of /proc/PID/stat (after the
/// parenthesised name, which may hold spaces).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn ns_inode(f: &std::fs::File) -> Option<u64> {
    f.metadata().ok().map(|m| m.ino())
}

/// The namespaces (user, mount) of the pause process recorded in `run`,
/// if it still runs as ours.
pub(super) fn running_pause(run: &Path, uid: u32) -> Option<(std::fs::File, std::fs::File)> {
    let rec = PauseRecord::parse(&std::fs::read_to_string(run.join(PAUSE_PID)).ok()?)?;
    let pid = rec.pid;
    // The pidfd pins the process the checks below are about: if it ends
    // and its pid is reused meanwhile, the last check fails.
    let pidfd = capsa_sys::process::pidfd_open(nix::unistd::Pid::from_raw(pid)).ok()?;
    let owner = std::fs::metadata(format!("/proc/{pid}")).ok()?.uid();
    // A pause that was killed but not reaped (a zombie) has no
    // namespaces left to open.
    let user = std::fs::File::open(format!("/proc/{pid}/ns/user")).ok()?;
    let mnt = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok()?;
    let pidns = std::fs::File::open(format!("/proc/{pid}/ns/pid")).ok()?;
    let own_pidns = std::fs::File::open("/proc/self/ns/pid").ok()?;
    // Security: only the pause we started may be joined. A container's
    // process (root inside is the user outside) that took its pid after
    // it died has another start time and lives in another pid namespace;
    // joining it would put this command in the container's mounts.
    let ours = owner == uid
        && start_time(pid) == Some(rec.start)
        && ns_inode(&user) == Some(rec.userns)
        && ns_inode(&pidns).is_some()
        && ns_inode(&pidns) == ns_inode(&own_pidns);
    if !ours {
        return None;
    }
    capsa_sys::process::pidfd_send_signal(pidfd.as_raw_fd(), 0).ok()?;
    Some((user, mnt))
}

/// The argument that makes `capsa` the pause process (see [`pause_main`]).
pub const PAUSE_ARG: &str = "__capsa_pause";

/// Fork the pause process: it makes the user and mount namespaces, waits
/// for its maps, then execs this binary again as [`pause_main`] (so that
/// the command line it shows is its own, never the first command's with
/// its flags and secrets), holding the namespaces until killed.
#[allow(unsafe_code)] // fork: see the SAFETY note
pub(super) fn start_pause(run: &Path, map: &Mapping) -> Result<()> {
    let (unshared_r, unshared_w) = nix::unistd::pipe().map_err(|e| Error::sys("pipe", "", e))?;
    let (mapped_r, mapped_w) = nix::unistd::pipe().map_err(|e| Error::sys("pipe", "", e))?;
    // Made before the fork: the child only execs.
    let exe = c"/proc/self/exe";
    let argv = [c"capsa-pause", c"__capsa_pause"];
    // SAFETY: called from `enter`, whose caller is single-threaded.
    match unsafe { capsa_sys::process::fork() }.map_err(|e| Error::sys("fork", "pause", e))? {
        capsa_sys::process::Forked::Child => {
            drop((unshared_r, mapped_w));
            let ok = capsa_sys::process::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS).is_ok();
            let mut w = std::fs::File::from(unshared_w);
            let _ = w.write_all(if ok { b"u" } else { b"!" });
            drop(w);
            let mut go = [0u8; 1];
            let mut r = std::fs::File::from(mapped_r);
            if !ok || r.read_exact(&mut go).is_err() || go[0] != b'm' {
                capsa_sys::process::exit_now(1);
            }
            drop(r);
            let _ = nix::unistd::execv(exe, &argv);
            capsa_sys::process::exit_now(1);
        }
        capsa_sys::process::Forked::Parent(pid) => {
            drop((unshared_w, mapped_r));
            let child = pid;
            let pid = pid.as_raw();
            let abandon = |e: Error| -> Error {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
                e
            };
            let mut got = [0u8; 1];
            let _ = std::fs::File::from(unshared_r).read_exact(&mut got);
            if got[0] != b'u' {
                return Err(abandon(Error::Refused {
                    what: "user namespace".into(),
                    reason: "unshare(CLONE_NEWUSER) was refused: unprivileged user namespaces are off on this host (sysctl kernel.unprivileged_userns_clone or user.max_user_namespaces)".into(),
                }));
            }
            write_maps(pid, map).map_err(abandon)?;
            // Recorded before it is let go: no pause runs unrecorded.
            let userns = std::fs::File::open(format!("/proc/{pid}/ns/user"))
                .ok()
                .and_then(|f| ns_inode(&f));
            let rec = match (start_time(pid), userns) {
                (Some(start), Some(userns)) => PauseRecord { pid, start, userns },
                _ => {
                    return Err(abandon(Error::Refused {
                        what: "capsa-pause".into(),
                        reason: "its /proc entry could not be read".into(),
                    }))
                }
            };
            capsa_sys::file::write_atomic(
                &run.join(PAUSE_PID),
                rec.text().as_bytes(),
                0o600,
                capsa_sys::file::Durability::Volatile,
            )
            .at("write", run.join(PAUSE_PID))
            .map_err(abandon)?;
            let mut w = std::fs::File::from(mapped_w);
            w.write_all(b"m").map_err(|e| {
                abandon(Error::sys(
                    "write",
                    "the pause's pipe",
                    e.raw_os_error().unwrap_or(0),
                ))
            })?;
            Ok(())
        }
    }
}

/// The pause process (`capsa __capsa_pause`, exec'd by [`start_pause`]
/// inside the namespaces): out of the command's session, stdio on
/// /dev/null, no other fd, then nothing until a signal ends it.
pub fn pause_main() -> ! {
    let _ = nix::sys::prctl::set_name(c"capsa-pause");
    let _ = nix::unistd::setsid();
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    let _ = capsa_sys::fd::close_range(3, i32::MAX);
    let _ = std::env::set_current_dir("/");
    loop {
        nix::unistd::pause();
    }
}

/// The pause's maps: 0 is the user, 1..N the subordinate ids (written
/// by newuidmap/newgidmap, as the runtime writes any map of ranges an
/// ordinary user may not write itself).
fn write_maps(pid: i32, map: &Mapping) -> Result<()> {
    let ranges = |own: u32, (first, count): (u32, u32)| {
        [
            capsa_spec::IdMap {
                container: 0,
                host: own,
                size: 1,
            },
            capsa_spec::IdMap {
                container: 1,
                host: first,
                size: count,
            },
        ]
    };
    capsa_runtime::rootless::write_maps(
        pid,
        &ranges(map.uid, map.subuid),
        &ranges(map.gid, map.subgid),
    )?;
    Ok(())
}

/// Join the pause's user and mount namespaces, keeping the working
/// directory.
pub(super) fn join(user: &std::fs::File, mnt: &std::fs::File) -> Result<()> {
    let cwd = std::env::current_dir().ok();
    capsa_sys::process::setns(user.as_raw_fd(), libc::CLONE_NEWUSER)
        .map_err(|e| Error::sys("setns", "the user namespace of capsa-pause", e))?;
    capsa_sys::process::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS)
        .map_err(|e| Error::sys("setns", "the mount namespace of capsa-pause", e))?;
    // A mount namespace's root and cwd replace ours on setns. A working
    // directory the user's namespace cannot see would make every relative
    // path (-v ./data, cp, load -i) name something else: refused.
    if let Some(d) = cwd {
        std::env::set_current_dir(&d).map_err(|e| Error::Refused {
            what: d.display().to_string(),
            reason: format!("the working directory is not reachable in the user's namespace ({e}); run capsa from another directory"),
        })?;
    }
    Ok(())
}
