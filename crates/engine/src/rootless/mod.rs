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
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

mod pause;
use pause::{join, running_pause, start_pause};
pub use pause::{pause_main, PAUSE_ARG};

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
            crate::userns::subid_range(&text, &[&name, &uid.to_string()]).ok_or_else(|| Error::Refused {
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
    crate::private_dir(run)?;
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
    if !on_path("fuse-overlayfs") {
        missing.push(
            "fuse-overlayfs: no fallback where the kernel refuses an overlay in a user namespace",
        );
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_err()
    {
        missing.push(
            "/dev/fuse is not open to this user (udev makes it 0666): no fuse-overlayfs fallback",
        );
    }
    if !on_path("pasta") {
        missing.push("pasta (Debian's passt): only --network none or host work");
    }
    serde_json::json!({
        "Mode": "rootless: a user namespace of the user's own, held by capsa-pause",
        "UidMap": read("/proc/self/uid_map"),
        "GidMap": read("/proc/self/gid_map"),
        "RootFilesystem": if std::env::var_os(capsa_image::snapshot::DRIVER_ENV).is_some_and(|v| v == "fuse") {
            "fuse-overlayfs (CAPSA_OVERLAY=fuse)"
        } else {
            "native overlayfs in the user namespace (userxattr); fuse-overlayfs where the kernel refuses"
        },
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
    // In a cgroup namespace, after a move, the path can climb ("/../x"):
    // nothing outside the hierarchy is ours to choose.
    if Path::new(rel)
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return None;
    }
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
    crate::runtime::resolve_bin(program).is_absolute()
}

#[cfg(test)]
mod tests {
    #[test]
    fn subid_lines_are_found_by_name_or_uid() {
        let text = "root:1:2\nalice:100000:65536\n1001:200000:1000\nzero:5:0\n";
        let range =
            |name: &str, uid: u32| crate::userns::subid_range(text, &[name, &uid.to_string()]);
        assert_eq!(range("alice", 1000), Some((100000, 65536)));
        assert_eq!(range("bob", 1001), Some((200000, 1000)));
        assert_eq!(range("carol", 1002), None);
        assert_eq!(range("zero", 1003), None);
    }
}
