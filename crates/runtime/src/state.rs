//! The state store: one directory per container under the root
//! (`/run/capsa-runtime/ID`), holding `state.json` and the exec FIFO.

use crate::error::{Error, Result};
use capsa_cgroups::Cgroup;
use capsa_spec::oci;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The container status of the OCI state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime remembers of a container between commands.
/// The state as runc prints it (`state`, `list --format json`) and as
/// hooks read it on stdin: the OCI state, with runc's fields in runc's
/// order (engines and runc's own tests read it as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OciState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub owner: String,
}

impl std::fmt::Display for OciState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    pub pid: i32,
    /// Start time of the init process in clock ticks since boot
    /// (`/proc/PID/stat` field 22): a recycled pid has another one.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    pub cgroup: Cgroup,
    /// The configuration the container was created from (for hooks and
    /// `exec` defaults).
    pub config: oci::Spec,
    /// Without a mount namespace of its own (and only then): the id of the
    /// private bind of the rootfs onto itself that holds every mount the
    /// container made in the host's namespace (see `hostmounts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_root_mount: Option<u64>,
}

impl ContainerState {
    /// Whether the container was made without a mount namespace of its
    /// own (its mounts are in the host's).
    pub fn in_host_mount_namespace(&self) -> bool {
        self.host_root_mount.is_some()
    }

    /// The OCI runtime-spec state, as `state` prints and hooks read.
    pub fn oci_state(&self, status: Status) -> OciState {
        let annotations: BTreeMap<String, String> = self
            .config
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        OciState {
            oci_version: self.config.version().clone(),
            id: self.id.clone(),
            pid,
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            annotations,
            owner: self.owner.clone(),
        }
    }
}

/// The directory holding every container's state.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

/// Container ids are directory names: refuse anything that could escape.
pub fn check_id(id: &str) -> Result<()> {
    let bad = |why| {
        Err(Error::InvalidId {
            id: id.to_string(),
            why,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id == "." || id == ".." {
        return bad("not a name");
    }
    if id.len() > 1024 {
        return bad("too long");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
    {
        return bad("only letters, digits, '_', '+', '-' and '.' are allowed");
    }
    Ok(())
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// The directory of container `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Make the directory for a new container; an existing one is a conflict.
    ///
    /// Security: the root (when we make it) and each container's
    /// directory are 0700: the state holds the whole config, environment
    /// secrets included.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        check_id(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| Error::io("mkdir", self.root.display(), e))?;
        let d = self.dir(id);
        match std::fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists(id.to_string()))
            }
            Err(e) => Err(Error::io("mkdir", d.display(), e)),
        }
    }

    /// Read the state of `id`.
    pub fn load(&self, id: &str) -> Result<ContainerState> {
        check_id(id)?;
        let f = self.dir(id).join("state.json");
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&f)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(Error::io("read", f.display(), e)),
        };
        // Security: a state file someone else wrote (or could write) is
        // not ours to trust: its hooks would run as us on delete.
        let meta = file
            .metadata()
            .map_err(|e| Error::io("stat", f.display(), e))?;
        let me = nix::unistd::geteuid().as_raw();
        if !meta.is_file() || meta.uid() != me || meta.mode() & 0o022 != 0 {
            return Err(Error::State(format!(
                "{}: not written by us (owner {}, mode {:o}): refused",
                f.display(),
                meta.uid(),
                meta.mode() & 0o7777
            )));
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut bytes)
            .map_err(|e| Error::io("read", f.display(), e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::State(format!("{}: {e}", f.display())))
    }

    /// Write the state atomically (temp file, fsync-free rename: the state
    /// lives on tmpfs and a crash loses the containers anyway).
    pub fn save(&self, st: &ContainerState) -> Result<()> {
        let dir = self.dir(&st.id);
        let bytes = serde_json::to_vec(st).map_err(|e| Error::State(e.to_string()))?;
        write_atomic(&dir.join("state.json"), &bytes, 0o600)
    }

    /// Remove the container's directory.
    pub fn remove(&self, id: &str) -> Result<()> {
        let d = self.dir(id);
        match std::fs::remove_dir_all(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", d.display(), e)),
        }
    }

    /// Ids of every container with a state file.
    pub fn ids(&self) -> Result<Vec<String>> {
        let rd = match std::fs::read_dir(&self.root) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read", self.root.display(), e)),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("state.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Take the container's lock (released when the fd is dropped), so that
    /// two commands on one container do not interleave.
    pub fn lock(&self, id: &str) -> Result<OwnedFd> {
        check_id(id)?;
        let d = self.dir(id);
        let f = match std::fs::File::open(&d) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(Error::io("open", d.display(), e)),
        };
        capsa_sys::file::lock(&f, true).map_err(|e| Error::io("flock", d.display(), e))?;
        Ok(f.into())
    }
}

/// In a container's directory until its state is saved: the cgroup path
/// a create made, for `delete -f` after a create that was killed.
pub const CREATING: &str = "creating.cgroup";

/// Write `bytes` to `path` through a temp file and a rename, so that readers
/// see the old or the new content, never half of one. Not synced: the
/// runtime's state describes processes a reboot ends (and lives on tmpfs).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    capsa_sys::file::write_atomic(path, bytes, mode, capsa_sys::file::Durability::Volatile)
        .map_err(|e| Error::io("write", path.display(), e))
}

/// `--pid-file`: the pid, written atomically (the caller may be polling).
pub fn write_pid_file(path: Option<&Path>, pid: i32) -> Result<()> {
    match path {
        // Read by the engine that asked for it, as root or as its user.
        Some(p) => write_atomic(p, pid.to_string().as_bytes(), 0o644),
        None => Ok(()),
    }
}

/// `(state letter, start time)` of a process from `/proc/PID/stat`.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: skip past the
    // last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// RFC 3339 UTC time of now, with nanoseconds, as runc writes `created`.
pub fn now_rfc3339() -> String {
    capsa_sys::time::now_rfc3339()
}

/// The owner of a container's state directory, by name (its uid when the
/// host has no name for it), which `list` shows as runc does.
pub fn owner_of(dir: &Path) -> String {
    let Ok(meta) = std::fs::metadata(dir) else {
        return String::new();
    };
    let uid = nix::unistd::Uid::from_raw(meta.uid());
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_the_root_are_refused() {
        assert!(check_id("abc-1.2_x").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a b"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_stat_is_readable_and_running() {
        let (state, start) = proc_stat(std::process::id() as i32).unwrap();
        assert!(state == 'R' || state == 'S');
        assert!(start > 0);
    }
}
