//! cgroups for capsa: v1, v2 and hybrid hierarchies behind one interface.
//!
//! The hierarchy is read from `/proc/self/mountinfo`: every v1 hierarchy
//! (one or more controllers, or a named one such as `name=systemd`) and the
//! v2 mount. A container's cgroup is one directory per hierarchy, all with
//! the same path, as runc lays them out.

// Library code returns errors; tests may unwrap.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod devices;
mod freezer;
mod hierarchy;
mod members;
mod resources;
mod setup;
pub mod stats;
pub mod systemd;
mod tree;

pub use hierarchy::{Hierarchy, Mode};
pub use resources::{
    blkio_to_io_weight, shares_to_weight, FileWrite, Place, DEFAULT_ALLOWED_DEVICES,
};

use nix::errno::Errno;
use std::path::{Path, PathBuf};
use tree::*;

/// Why a cgroup operation failed: what was done, to which file, and errno.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{op} {path}: {errno}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error("{field}: {message}")]
    Unsupported { field: String, message: String },
    #[error("{field}: write {value:?} to {path}: {errno}")]
    Write {
        field: String,
        path: PathBuf,
        value: String,
        errno: Errno,
    },
    #[error("{op} on {path}: {errno}{}{detail}", if detail.is_empty() { "" } else { ": " })]
    Device {
        op: &'static str,
        path: PathBuf,
        errno: Errno,
        detail: String,
    },
    #[error("systemd: {op} {unit}: {message}")]
    Systemd {
        op: String,
        unit: String,
        message: String,
    },
    #[error("cannot enable the {controller} controller in {path}: {why}")]
    Enable {
        controller: String,
        path: PathBuf,
        why: String,
    },
    #[error("cgroup path {0:?}: must not contain \"..\"")]
    BadPath(String),
    #[error("no cgroup hierarchy is mounted")]
    NoHierarchy,
    /// Moving a process into the cgroup failed (runc's words).
    #[error("adding pid {pid} to cgroups: write {path}: {}", errno.desc().to_lowercase())]
    Join {
        pid: i32,
        path: PathBuf,
        errno: Errno,
    },
}

impl CgroupError {
    pub(crate) fn sys(op: &'static str, path: &Path, e: std::io::Error) -> Self {
        CgroupError::Sys {
            op,
            path: path.to_path_buf(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}

type Result<T> = std::result::Result<T, CgroupError>;

/// A container's cgroup: one directory per mounted hierarchy.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cgroup {
    /// The cgroup path, relative to each hierarchy's root (`/capsa/ID`).
    pub path: PathBuf,
    /// Directories in v1 hierarchies, with the hierarchy's controllers.
    pub v1: Vec<(Vec<String>, PathBuf)>,
    /// The directory in the v2 hierarchy, if one is mounted.
    pub v2: Option<PathBuf>,
    /// Directories this cgroup's creation made (parents included), deepest
    /// last, so that removal can take away exactly what we added.
    pub created: Vec<PathBuf>,
    /// With the systemd driver: the transient scope unit that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// The scope's invocation id once it has started: what makes a unit of
    /// that name ours. Until then nothing is done to a unit of that name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_invocation: Option<String>,
    /// It held processes that are not the container's when the container
    /// was made (runc's mode lets that through with a warning): removal
    /// leaves its directories, and what is under them, as found.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// The default parent for containers whose spec gives no absolute path.
pub const DEFAULT_PARENT: &str = "capsa";

/// Resolve the `linux.cgroupsPath` of container `id`: absolute paths are
/// taken from each hierarchy's root; relative ones and the default go under
/// [`DEFAULT_PARENT`].
pub fn container_path(spec_path: Option<&Path>, id: &str) -> Result<PathBuf> {
    if let Some(p) = spec_path.and_then(systemd_form) {
        return Ok(p);
    }
    let p = match spec_path {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) if !p.as_os_str().is_empty() => Path::new("/").join(DEFAULT_PARENT).join(p),
        _ => Path::new("/").join(DEFAULT_PARENT).join(id),
    };
    if p.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
        || p == Path::new("/")
    {
        return Err(CgroupError::BadPath(p.display().to_string()));
    }
    Ok(p)
}

/// The systemd form `slice:prefix:name` as a cgroupfs path, the mapping
/// crun uses without systemd: the slice expanded as systemd nests it
/// (`a-b.slice` is `a.slice/a-b.slice`), then `prefix-name.scope`.
pub fn systemd_form(p: &Path) -> Option<PathBuf> {
    let s = p.to_str()?;
    if s.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = s.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return None;
    };
    if name.is_empty()
        || [slice, prefix, name]
            .iter()
            .any(|x| x.contains('/') || *x == "..")
    {
        return None;
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut out = PathBuf::from("/");
    let stem = slice.strip_suffix(".slice")?;
    let mut acc = String::new();
    // "-.slice" is the root slice: no directory of its own.
    let parts: Vec<&str> = if stem == "-" {
        Vec::new()
    } else {
        stem.split('-').collect()
    };
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            acc.push('-');
        }
        acc.push_str(part);
        if acc != "-" {
            out.push(format!("{acc}.slice"));
        }
    }
    let unit = if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    out.push(unit);
    Some(out)
}

impl Cgroup {
    /// The cgroup at `path` in every hierarchy of `h` (nothing is created).
    pub fn new(h: &Hierarchy, path: &Path) -> Cgroup {
        let rel = path.strip_prefix("/").unwrap_or(path);
        Cgroup {
            path: path.to_path_buf(),
            v1: h
                .v1
                .iter()
                .map(|m| (m.controllers.clone(), m.mountpoint.join(rel)))
                .collect(),
            v2: h.v2.as_ref().map(|m| m.join(rel)),
            created: Vec::new(),
            systemd_unit: None,
            systemd_invocation: None,
            shared: false,
        }
    }

    /// Every directory of this cgroup.
    pub fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.v1.iter().map(|(_, d)| d).chain(self.v2.iter())
    }

    /// The directory of the v1 hierarchy holding `controller`.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|x| x == controller))
            .map(|(_, d)| d.as_path())
    }

    /// Apply a change of resources to a running container: like
    /// [`Cgroup::apply`], but device rules only when the update has some.
    pub fn update(&self, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
        // systemd is told first, so that a reload keeps the new values.
        if let Some(unit) = &self.systemd_unit {
            let id = self.systemd_invocation.as_deref().unwrap_or_default();
            systemd::set_properties(unit, id, systemd::properties(r, r.devices().is_some()))?;
        }
        // On v2 a controller reaches the cgroup only when its parents offer
        // it (systemd offers only what some unit asks for).
        let missing = self.missing_v2(r)?;
        if !missing.is_empty() {
            self.enable_v2(&missing)?;
        }
        for w in self.plan(r)? {
            std::fs::write(&w.path, &w.value).map_err(|e| CgroupError::Write {
                field: w.field.clone(),
                path: w.path.clone(),
                value: w.value.clone(),
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        }
        if r.devices().is_some() {
            self.apply_devices(r.devices().as_deref().unwrap_or(&[]))?;
        }
        Ok(())
    }

    /// Security (a hostile `linux.cgroupsPath` naming another unit): with
    /// the systemd driver, the cgroup is this container's only while the
    /// unit of that name is the one it started (same invocation id). Not
    /// yet started, or gone and its name taken again, nothing is killed or
    /// removed there. Always true with the cgroupfs driver.
    pub fn systemd_owned(&self) -> Result<bool> {
        match (&self.systemd_unit, &self.systemd_invocation) {
            (None, _) => Ok(true),
            (Some(_), None) => Ok(false),
            (Some(unit), Some(id)) => systemd::is_ours(unit, id),
        }
    }

    /// Undo a create that failed: stop the scope if it became ours, else
    /// remove only the directories this create made, deepest first. A
    /// cgroup the spec named that existed before (empty, or frozen, and
    /// refused) is left as it was found.
    pub fn remove_created(&self) -> Result<()> {
        if self.systemd_unit.is_some() {
            return self.remove();
        }
        let made: Vec<&PathBuf> = self.dirs().filter(|d| self.created.contains(d)).collect();
        self.rmdir(made.into_iter())
    }

    /// Remove every directory, deepest first, retrying while the kernel still
    /// counts exiting tasks in it; then the parents our creation made, when
    /// they are empty.
    pub fn remove(&self) -> Result<()> {
        // systemd removes a scope's cgroup when the unit stops (killing
        // what is left in it). Not ours (not started yet, or gone and its
        // name taken again): neither the unit nor its directory is
        // touched; `stop` checks the invocation id itself.
        if let Some(unit) = &self.systemd_unit {
            let Some(id) = &self.systemd_invocation else {
                return Ok(());
            };
            if !systemd::stop(unit, id)? {
                return Ok(());
            }
        }
        if self.shared {
            return Ok(());
        }
        self.rmdir(self.dirs())
    }

    /// Remove `leaves` (retrying while exiting tasks still count), then the
    /// parents this cgroup's creation made, when they are empty.
    fn rmdir<'a>(&'a self, leaves: impl Iterator<Item = &'a PathBuf>) -> Result<()> {
        let mut first_err = None;
        for d in leaves {
            if let Err(e) = rmdir_tree(d) {
                first_err.get_or_insert(e);
            }
        }
        for d in self.created.iter().rev() {
            if self.dirs().any(|x| x == d) {
                continue;
            }
            // A parent shared with another container is busy: leave it.
            let _ = std::fs::remove_dir(d);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Controllers a v2 directory offers (`cgroup.controllers`).
pub fn v2_controllers(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// How many processes the cgroup directory `d` holds, its children's
/// included; none when it is empty.
pub fn populated(d: &Path) -> Option<usize> {
    let here = std::fs::read_to_string(d.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    let below: usize = std::fs::read_dir(d)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| populated(&e.path()))
        .sum();
    (here + below > 0).then_some(here + below)
}

pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| CgroupError::sys("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_form_maps_to_the_nested_slices() {
        assert_eq!(
            container_path(Some(Path::new("machine.slice:capsa:abc")), "x").unwrap(),
            PathBuf::from("/machine.slice/capsa-abc.scope")
        );
        assert_eq!(
            container_path(Some(Path::new("a-b.slice:p:c")), "x").unwrap(),
            PathBuf::from("/a.slice/a-b.slice/p-c.scope")
        );
        assert_eq!(
            container_path(Some(Path::new(":p:c")), "x").unwrap(),
            PathBuf::from("/system.slice/p-c.scope")
        );
    }

    #[test]
    fn relative_and_default_paths_go_under_the_capsa_parent() {
        assert_eq!(
            container_path(None, "abc").unwrap(),
            PathBuf::from("/capsa/abc")
        );
        assert_eq!(
            container_path(Some(Path::new("pod/c1")), "x").unwrap(),
            PathBuf::from("/capsa/pod/c1")
        );
        assert_eq!(
            container_path(Some(Path::new("/mine/c1")), "x").unwrap(),
            PathBuf::from("/mine/c1")
        );
        assert!(container_path(Some(Path::new("/a/../../etc")), "x").is_err());
    }

    #[test]
    fn create_and_remove_in_a_fake_tree_leaves_nothing() {
        let root = std::env::temp_dir().join(format!("capsa-cg-unit-{}", std::process::id()));
        let h = Hierarchy {
            v1: vec![hierarchy::V1Mount {
                controllers: vec!["pids".into()],
                mountpoint: root.join("pids"),
            }],
            v2: Some(root.join("unified")),
        };
        std::fs::create_dir_all(root.join("pids")).unwrap();
        std::fs::create_dir_all(root.join("unified")).unwrap();
        let mut c = Cgroup::new(&h, Path::new("/parent/ctr"));
        c.create().unwrap();
        assert!(root.join("pids/parent/ctr").is_dir());
        assert_eq!(c.created.len(), 4);
        c.remove().unwrap();
        assert!(!root.join("pids/parent").exists());
        assert!(!root.join("unified/parent").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
