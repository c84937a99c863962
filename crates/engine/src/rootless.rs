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

/// The user's store: `$XDG_DATA_HOME/capsa`, default
/// `~/.local/share/capsa`.
fn data_dir() -> Result<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let uid = nix::unistd::getuid();
    let home = var("HOME").or_else(|| {
        nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.dir)
    });
    match (var("XDG_DATA_HOME"), home) {
        (Some(d), _) => Ok(d.join("capsa")),
        (None, Some(h)) => Ok(h.join(".local/share/capsa")),
        (None, None) => Err(Error::Refused {
            what: "rootless store".into(),
            reason: "neither XDG_DATA_HOME nor HOME is set; set one, or pass --root".into(),
        }),
    }
}

/// The user's run directory: `$XDG_RUNTIME_DIR/capsa`, or without a
/// runtime directory `/tmp/capsa-run-UID` (checked in [`enter`] to be
/// the user's own and private).
fn run_dir() -> Result<PathBuf> {
    let uid = nix::unistd::getuid().as_raw();
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(r) if owned_private(Path::new(&r), uid).is_ok() => Ok(PathBuf::from(r).join("capsa")),
        _ => Ok(PathBuf::from(format!("/tmp/capsa-run-{uid}"))),
    }
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
    let root = match root {
        Some(r) => r,
        None => data_dir()?,
    };
    let run = match run {
        Some(r) => r,
        None => run_dir()?,
    };
    enter(&run)?;
    Ok((root, run))
}

/// The environment variable that tells the processes a rootless command
/// starts (its monitors) that they are rootless capsa.
const ROOTLESS_ENV: &str = "CAPSA_ROOTLESS";

/// Whether this process is rootless capsa: a command that joined the
/// user's namespace ([`enter`]), or a monitor it started. Not merely "in
/// a user namespace": root capsa inside a container or a user-namespaced
/// CI keeps root's behaviour (bridges, cgroups) there.
pub fn active() -> bool {
    std::env::var_os(ROOTLESS_ENV).is_some_and(|v| v == "1")
        && capsa_sys::process::in_user_namespace()
}

/// Join the user's namespace, starting its pause process first if none
/// runs. The caller must be single-threaded (setns of a user namespace
/// requires it, and starting the pause process forks).
pub fn enter(run: &Path) -> Result<Mapping> {
    let map = Mapping::of_caller()?;
    if let Some(parent) = run.parent() {
        std::fs::create_dir_all(parent).at("create", parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(run) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).at("create", run),
    }
    // Security: the run directory holds the pause's pid and the attach
    // sockets. One another user made first (in /tmp, say) or can write
    // is refused, and so a symlink planted in it cannot exist.
    owned_private(run, map.uid)?;
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
    // Single-threaded still: the monitors this command starts inherit it.
    std::env::set_var(ROOTLESS_ENV, "1");
    Ok(map)
}

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
fn running_pause(run: &Path, uid: u32) -> Option<(std::fs::File, std::fs::File)> {
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
fn start_pause(run: &Path, map: &Mapping) -> Result<()> {
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

/// What `capsa info` says of rootless mode: off, or the namespace's maps,
/// how the root filesystem and the network are made, what limits can be
/// applied, and what is missing.
pub fn describe() -> serde_json::Value {
    if !active() {
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
        "Cgroups": match delegated_cgroup() {
            Some(d) => format!("delegated cgroup v2 subtree {}: containers go under {}/capsa, with limits", d.display(), d.display()),
            None => "none delegated here: --memory, --cpus and the other limits are refused".into(),
        },
        "Missing": missing,
    })
}

/// On a pure cgroup v2 host, the subtree delegated to this user that its
/// containers' cgroups can go under: the topmost ancestor of our own
/// cgroup that we own (systemd's `user@UID.service`, whose `Delegate=`
/// hands it to the user), as a path from the hierarchy's root. None on
/// cgroup v1 or hybrid hosts, or when our cgroup is not ours (a login
/// session's scope belongs to root).
pub fn delegated_cgroup() -> Option<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if !root.join("cgroup.controllers").exists() {
        return None;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let me = nix::unistd::geteuid().as_raw();
    let ours = |rel: &Path| {
        let d = root.join(rel.strip_prefix("/").unwrap_or(rel));
        std::fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir() && m.uid() == me)
            && std::fs::metadata(d.join("cgroup.procs")).is_ok_and(|m| m.uid() == me)
    };
    let mut top: Option<&Path> = None;
    for a in Path::new(rel).ancestors() {
        if a == Path::new("/") || !ours(a) {
            break;
        }
        top = Some(a);
    }
    top.map(Path::to_path_buf)
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
