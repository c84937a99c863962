//! Rootless capsa: the whole engine as an ordinary user.
//!
//! As podman does, every command of one user runs inside one long-lived
//! user namespace, held by a small pause process: root inside is the
//! user outside, and ids 1..N inside are the user's subordinate ids from
//! `/etc/subuid` and `/etc/subgid` (mapped by the setuid helpers
//! `newuidmap`/`newgidmap`). The namespace comes with a mount namespace
//! of its own, where the containers' overlays are mounted. A command
//! joins both (setns) before it does anything else, and from there on
//! the engine runs as root of that namespace: image layers unpack with
//! their owners kept (within the mapped range), overlays mount with
//! `userxattr`, and each monitor lives there too. What stays out of
//! reach is what the kernel keeps for the host's root: cgroup v1 files,
//! the host's network devices, device nodes.
//!
//! ```text
//! host (uid 1000)            the user's namespace (uid 0 = host 1000)
//!   capsa run ──setns──────────> capsa run ──> monitor ──> container
//!   capsa-pause (holds it) ─────┘ (overlays live in its mount namespace)
//! ```

use crate::error::{Error, IoContext, Result};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The name the pause process goes by (`/proc/PID/comm`).
const PAUSE_NAME: &str = "capsa-pause";
const PAUSE_PID: &str = "pause.pid";

/// Who the user is and which ids the namespace maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub uid: u32,
    pub gid: u32,
    /// The user's subordinate ids: (first, count).
    pub subuid: (u32, u32),
    pub subgid: (u32, u32),
}

impl Mapping {
    /// The mapping for the calling user, from /etc/subuid and
    /// /etc/subgid (lines `NAME:FIRST:COUNT` or `UID:FIRST:COUNT`).
    pub fn of_caller() -> Result<Mapping> {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        let range = |file: &str| -> Result<(u32, u32)> {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            subid_range(&text, &name, uid).ok_or_else(|| Error::Refused {
                what: file.to_string(),
                reason: format!(
                    "no line for {name} (uid {uid}): rootless capsa maps the ids of a container's files to the user's subordinate ids; as root, add a range with `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}`"
                ),
            })
        };
        Ok(Mapping {
            uid,
            gid,
            subuid: range("/etc/subuid")?,
            subgid: range("/etc/subgid")?,
        })
    }
}

/// `name`'s (or `uid`'s) first range in a subid file; a range of fewer
/// than 1 id is no range.
fn subid_range(text: &str, name: &str, uid: u32) -> Option<(u32, u32)> {
    let uid = uid.to_string();
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let who = f.next()?;
        (who == name || who == uid).then_some(())?;
        let first: u32 = f.next()?.trim().parse().ok()?;
        let count: u32 = f.next()?.trim().parse().ok()?;
        (count > 0).then_some((first, count))
    })
}

/// Where a user's store and run directory are: `$XDG_DATA_HOME/capsa`
/// (default `~/.local/share/capsa`) and `$XDG_RUNTIME_DIR/capsa`, or,
/// without a runtime directory, `/tmp/capsa-run-UID`, checked to be the
/// user's own and private.
pub fn default_paths() -> Result<(PathBuf, PathBuf)> {
    let uid = nix::unistd::getuid().as_raw();
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = var("HOME").or_else(|| {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.dir)
    });
    let data = match (var("XDG_DATA_HOME"), home) {
        (Some(d), _) => d,
        (None, Some(h)) => h.join(".local/share"),
        (None, None) => {
            return Err(Error::Refused {
                what: "rootless store".into(),
                reason: "neither XDG_DATA_HOME nor HOME is set; set one, or pass --root".into(),
            })
        }
    };
    let run = match var("XDG_RUNTIME_DIR") {
        Some(r) if owned_private(&r, uid).is_ok() => r.join("capsa"),
        _ => {
            let fallback = PathBuf::from(format!("/tmp/capsa-run-{uid}"));
            match std::fs::DirBuilder::new().mode(0o700).create(&fallback) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).at("create", &fallback),
            }
            // Security: /tmp is shared; a directory another user made
            // there first (or a symlink) must not take our sockets.
            owned_private(&fallback, uid)?;
            fallback
        }
    };
    Ok((data.join("capsa"), run))
}

/// `dir` is a directory (not a symlink) that `uid` owns and no one else
/// may enter.
fn owned_private(dir: &Path, uid: u32) -> Result<()> {
    let m = std::fs::symlink_metadata(dir).at("stat", dir)?;
    if !m.is_dir() || m.uid() != uid || m.permissions().mode() & 0o077 != 0 {
        return Err(Error::Refused {
            what: dir.display().to_string(),
            reason: format!(
                "not a private directory of uid {uid} (owner {}, mode {:o}); remove it or set XDG_RUNTIME_DIR",
                m.uid(),
                m.permissions().mode() & 0o7777
            ),
        });
    }
    Ok(())
}

/// The store and run directories: as given, else root's defaults, else
/// (an ordinary user) the user's own, after joining the user's namespace.
/// Must be called while the process is single-threaded (see [`enter`]).
pub fn paths(root: Option<PathBuf>, run: Option<PathBuf>) -> Result<(PathBuf, PathBuf)> {
    if nix::unistd::geteuid().is_root() {
        return Ok((
            root.unwrap_or_else(|| "/var/lib/capsa".into()),
            run.unwrap_or_else(|| "/run/capsa".into()),
        ));
    }
    let (default_root, default_run) = default_paths()?;
    let (root, run) = (root.unwrap_or(default_root), run.unwrap_or(default_run));
    enter(&run)?;
    Ok((root, run))
}

/// Whether this process runs in a user namespace other than the host's
/// (its uid map is not the identity over every id).
pub fn in_user_namespace() -> bool {
    capsa_sys::process::in_user_namespace()
}

/// Join the user's namespace, starting its pause process first if none
/// runs. The caller must be single-threaded (setns of a user namespace
/// requires it, and starting the pause process forks).
pub fn enter(run: &Path) -> Result<Mapping> {
    let map = Mapping::of_caller()?;
    std::fs::create_dir_all(run).at("create", run)?;
    let lock = capsa_sys::file::lock_path(&run.join("pause.lock"), true).at("lock", run)?;
    let ns = match running_pause(run, map.uid) {
        Some(ns) => ns,
        None => {
            start_pause(run, &map)?;
            running_pause(run, map.uid).ok_or_else(|| Error::Refused {
                what: "capsa-pause".into(),
                reason: "the user namespace's pause process ended as it started".into(),
            })?
        }
    };
    drop(lock);
    join(&ns.0, &ns.1)?;
    Ok(map)
}

/// The namespaces (user, mount) of the pause process recorded in `run`,
/// if it still runs as ours.
fn running_pause(run: &Path, uid: u32) -> Option<(std::fs::File, std::fs::File)> {
    let pid: i32 = std::fs::read_to_string(run.join(PAUSE_PID))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if pid <= 0 {
        return None;
    }
    // The pidfd pins the process the checks below are about: if it ends
    // and its pid is reused meanwhile, the last check fails.
    let pidfd = capsa_sys::process::pidfd_open(nix::unistd::Pid::from_raw(pid)).ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let owner = std::fs::metadata(format!("/proc/{pid}")).ok()?.uid();
    if comm.trim() != PAUSE_NAME || owner != uid {
        return None;
    }
    // A pause that was killed but not reaped (a zombie) has no
    // namespaces left to open.
    let user = std::fs::File::open(format!("/proc/{pid}/ns/user")).ok()?;
    let mnt = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok()?;
    capsa_sys::process::pidfd_send_signal(pidfd.as_raw_fd(), 0).ok()?;
    Some((user, mnt))
}

/// Fork the pause process: it makes the user and mount namespaces, waits
/// for its maps, then holds them until killed. Returns its pid.
#[allow(unsafe_code)] // fork: see the SAFETY note
fn start_pause(run: &Path, map: &Mapping) -> Result<()> {
    let (unshared_r, unshared_w) = nix::unistd::pipe().map_err(|e| Error::sys("pipe", "", e))?;
    let (mapped_r, mapped_w) = nix::unistd::pipe().map_err(|e| Error::sys("pipe", "", e))?;
    // SAFETY: called from `enter`, whose caller is single-threaded.
    match unsafe { capsa_sys::process::fork() }.map_err(|e| Error::sys("fork", "pause", e))? {
        capsa_sys::process::Forked::Child => {
            drop((unshared_r, mapped_w));
            // Named first: the parent checks the name once the maps are
            // written.
            let _ = nix::sys::prctl::set_name(c"capsa-pause");
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
            pause_forever();
        }
        capsa_sys::process::Forked::Parent(pid) => {
            drop((unshared_w, mapped_r));
            let pid = pid.as_raw();
            let mut got = [0u8; 1];
            let _ = std::fs::File::from(unshared_r).read_exact(&mut got);
            let mapped = if got[0] == b'u' {
                write_maps(pid, map)
            } else {
                Err(Error::Refused {
                    what: "user namespace".into(),
                    reason: "unshare(CLONE_NEWUSER) was refused: unprivileged user namespaces are off on this host (sysctl kernel.unprivileged_userns_clone or user.max_user_namespaces)".into(),
                })
            };
            let mut w = std::fs::File::from(mapped_w);
            let _ = w.write_all(if mapped.is_ok() { b"m" } else { b"!" });
            drop(w);
            if let Err(e) = mapped {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                return Err(e);
            }
            capsa_sys::file::write_atomic(
                &run.join(PAUSE_PID),
                pid.to_string().as_bytes(),
                0o600,
                capsa_sys::file::Durability::Volatile,
            )
            .at("write", run.join(PAUSE_PID))?;
            Ok(())
        }
    }
}

/// The pause process's life: out of the command's session, stdio on
/// /dev/null, no other fd, then nothing until a signal ends it.
fn pause_forever() -> ! {
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

/// `newuidmap`/`newgidmap` for the pause process: 0 is the user, 1..N
/// the subordinate ids.
fn write_maps(pid: i32, map: &Mapping) -> Result<()> {
    for (tool, own, (first, count)) in [
        ("newuidmap", map.uid, map.subuid),
        ("newgidmap", map.gid, map.subgid),
    ] {
        let out = std::process::Command::new(tool)
            .args([pid.to_string(), "0".into(), own.to_string(), "1".into()])
            .args(["1".to_string(), first.to_string(), count.to_string()])
            .output()
            .map_err(|e| Error::Refused {
                what: tool.into(),
                reason: format!("{e}: rootless capsa needs it (Debian's uidmap package)"),
            })?;
        if !out.status.success() {
            return Err(Error::Refused {
                what: format!("{tool} {pid}"),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    Ok(())
}

/// Join the pause's user and mount namespaces, keeping the working
/// directory.
fn join(user: &std::fs::File, mnt: &std::fs::File) -> Result<()> {
    let cwd = std::env::current_dir().ok();
    capsa_sys::process::setns(user.as_raw_fd(), libc::CLONE_NEWUSER)
        .map_err(|e| Error::sys("setns", "the user namespace of capsa-pause", e))?;
    capsa_sys::process::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS)
        .map_err(|e| Error::sys("setns", "the mount namespace of capsa-pause", e))?;
    // A mount namespace's root and cwd replace ours on setns.
    if let Some(d) = cwd {
        let _ = std::env::set_current_dir(d);
    }
    Ok(())
}

/// What `capsa info` says of rootless mode: off, or the namespace's maps,
/// how the root filesystem and the network are made, what limits can be
/// applied, and what is missing.
pub fn describe() -> serde_json::Value {
    if !in_user_namespace() {
        return serde_json::Value::Bool(false);
    }
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    let mut missing = Vec::new();
    if !tun_usable() {
        missing.push("/dev/net/tun is not open to this user (pasta needs it; udev makes it 0666): only --network none or host work");
    }
    if !on_path("pasta") {
        missing.push("pasta (Debian's passt): only --network none or host work");
    }
    serde_json::json!({
        "Mode": "rootless: a user namespace of the user's own, held by capsa-pause",
        "UidMap": read("/proc/self/uid_map"),
        "GidMap": read("/proc/self/gid_map"),
        "RootFilesystem": "native overlayfs in the user namespace (userxattr)",
        "Network": "pasta (default), none, host, container:NAME",
        "Cgroups": "none delegated here: --memory, --cpus and the other limits are refused",
        "Missing": missing,
    })
}

/// Whether this user may open /dev/net/tun, as pasta must.
pub fn tun_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .is_ok()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_lines_are_found_by_name_or_uid() {
        let text = "root:1:2\nalice:100000:65536\n1001:200000:1000\nzero:5:0\n";
        assert_eq!(subid_range(text, "alice", 1000), Some((100000, 65536)));
        assert_eq!(subid_range(text, "bob", 1001), Some((200000, 1000)));
        assert_eq!(subid_range(text, "carol", 1002), None);
        assert_eq!(subid_range(text, "zero", 1003), None);
    }
}
