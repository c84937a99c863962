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
mod resources;
pub mod stats;
pub mod systemd;

pub use hierarchy::{Hierarchy, Mode};
pub use resources::{
    blkio_to_io_weight, shares_to_weight, FileWrite, Place, DEFAULT_ALLOWED_DEVICES,
};

use nix::errno::Errno;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

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

    /// Create every directory (and missing parents), recording what we made.
    /// On failure, what this call created is removed again.
    pub fn create(&mut self) -> Result<()> {
        let dirs: Vec<(Option<Vec<String>>, PathBuf)> = self
            .v1
            .iter()
            .map(|(c, d)| (Some(c.clone()), d.clone()))
            .chain(self.v2.iter().map(|d| (None, d.clone())))
            .collect();
        for (controllers, dir) in dirs {
            if let Err(e) = self.mkdir_all(&dir, controllers.as_deref()) {
                let _ = self.remove();
                return Err(e);
            }
        }
        self.delegate_v2();
        Ok(())
    }

    /// On v2 a controller reaches a cgroup only when its parent lists it in
    /// `cgroup.subtree_control`. Enable, in the parents we created (never in
    /// others'), every controller they have, so the container's cgroup gets
    /// what its ancestors offer. A controller that cannot be enabled is
    /// simply not offered; asking for its limits is then a clear error.
    fn delegate_v2(&self) {
        let Some(leaf) = &self.v2 else { return };
        for d in self
            .created
            .iter()
            .filter(|d| *d != leaf && leaf.starts_with(d))
        {
            for c in v2_controllers(d) {
                let _ = write(&d.join("cgroup.subtree_control"), &format!("+{c}"));
            }
        }
    }

    /// Enable the v2 controllers `needed` for this cgroup: in the
    /// `cgroup.subtree_control` of its parent, and up the tree as far as a
    /// controller is not yet offered (as runc does). An ancestor offers a
    /// controller to its children only through its own subtree_control,
    /// and systemd enables there only what some unit asks for.
    ///
    /// Errors name the file and the rule at fault: a cgroup with processes
    /// of its own cannot give domain controllers to children (v2's
    /// no-internal-processes rule), and a threaded subtree takes only
    /// threaded controllers.
    pub(crate) fn enable_v2(&self, needed: &[String]) -> Result<()> {
        let Some(leaf) = &self.v2 else { return Ok(()) };
        // The hierarchy's root: the leaf less this cgroup's own path.
        let rel = self.path.strip_prefix("/").unwrap_or(&self.path);
        let Some(root) = leaf.ancestors().nth(rel.components().count()) else {
            return Ok(());
        };
        for ctl in needed {
            // The ancestors, nearest first, up to the first that has the
            // controller itself (the root has them all).
            let mut chain = Vec::new();
            let mut cur = leaf.parent();
            while let Some(d) = cur.filter(|d| d.starts_with(root)) {
                chain.push(d.to_path_buf());
                if d == root || v2_controllers(d).iter().any(|c| c == ctl) {
                    break;
                }
                cur = d.parent();
            }
            // Top down: each step offers it to the next.
            for d in chain.iter().rev() {
                let control = d.join("cgroup.subtree_control");
                let on = std::fs::read_to_string(&control).unwrap_or_default();
                if on.split_whitespace().any(|c| c == ctl) {
                    continue;
                }
                if !v2_controllers(d).iter().any(|c| c == ctl) {
                    // The host does not have it at all: planning says so.
                    break;
                }
                std::fs::write(&control, format!("+{ctl}")).map_err(|e| {
                    let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
                    let why = match errno {
                        Errno::EBUSY => format!(
                            "{} has processes of its own, and cgroup v2 gives controllers only to cgroups without (the no-internal-processes rule)",
                            d.display()
                        ),
                        Errno::EOPNOTSUPP => format!(
                            "{} is in a threaded subtree, which takes only threaded controllers",
                            d.display()
                        ),
                        _ => errno.desc().to_string(),
                    };
                    CgroupError::Enable {
                        controller: ctl.clone(),
                        path: control.clone(),
                        why,
                    }
                })?;
            }
        }
        Ok(())
    }

    fn mkdir_all(&mut self, dir: &Path, controllers: Option<&[String]>) -> Result<()> {
        let mut missing = Vec::new();
        let mut cur = dir;
        while !cur.exists() {
            missing.push(cur.to_path_buf());
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        for d in missing.into_iter().rev() {
            match std::fs::create_dir(&d) {
                Ok(()) => self.created.push(d.clone()),
                // Made by a concurrent create an instant ago, maybe not
                // filled yet: the cpuset check below covers it.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CgroupError::sys("mkdir", &d, e)),
            }
            // A new v1 cpuset is empty and refuses tasks (ENOSPC) until it
            // has cpus and mems: inherit the parent's, top down, also for a
            // parent another create made and has not filled yet.
            if controllers.is_some_and(|c| c.iter().any(|x| x == "cpuset")) {
                resources::inherit_cpuset(&d)?;
            }
        }
        Ok(())
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

    /// Move `pid` into every directory of this cgroup.
    pub fn add(&self, pid: i32) -> Result<()> {
        for (_, d) in &self.v1 {
            let path = d.join("cgroup.procs");
            std::fs::write(&path, pid.to_string()).map_err(|e| CgroupError::Join {
                pid,
                path,
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        }
        self.add_v2(pid)
    }

    /// Move `pid` into the v2 directory only (when it could not be born
    /// there).
    pub fn add_v2(&self, pid: i32) -> Result<()> {
        match &self.v2 {
            Some(d) => write(&d.join("cgroup.procs"), &pid.to_string()),
            None => Ok(()),
        }
    }

    /// Move the calling process into every v1 directory by writing `0` to
    /// `tasks`. A process moving its own (only) thread this way skips the
    /// kernel's global threadgroup lock, whose RCU grace period makes a
    /// write of a pid to `cgroup.procs` cost 10-20 ms on v1. The caller
    /// must be single-threaded. (The v2 directory is joined at birth with
    /// `CLONE_INTO_CGROUP`, see [`Cgroup::v2_fd`].)
    pub fn join_self_v1(&self) -> Result<()> {
        for (_, d) in &self.v1 {
            let path = d.join("cgroup.procs");
            std::fs::write(&path, "0").map_err(|e| CgroupError::Join {
                pid: std::process::id() as i32,
                path,
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        }
        Ok(())
    }

    /// This cgroup with sub-cgroups for an exec (`exec --cgroup`, runc's
    /// form): each of `specs` is `[CONTROLLER[,CONTROLLER...]:]PATH`, PATH
    /// relative to the container's cgroup; without controllers it applies
    /// to every hierarchy. Nothing is created: a missing one fails the
    /// join. Security: a PATH with `..` could lead out of the container's
    /// cgroup, and is refused.
    pub fn sub(&self, specs: &[String]) -> Result<Cgroup> {
        let mut out = self.clone();
        for spec in specs {
            let (controllers, path) = match spec.split_once(':') {
                Some((c, p)) => (Some(c.split(',').collect::<Vec<_>>()), p),
                None => (None, spec.as_str()),
            };
            let rel = Path::new(path.trim_start_matches('/'));
            if rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(CgroupError::Unsupported {
                    field: "--cgroup".into(),
                    message: format!("{path} is not a sub cgroup path"),
                });
            }
            match controllers {
                None => {
                    for ((_, d), (_, base)) in out.v1.iter_mut().zip(&self.v1) {
                        *d = base.join(rel);
                    }
                    if let (Some(d), Some(base)) = (out.v2.as_mut(), self.v2.as_ref()) {
                        *d = base.join(rel);
                    }
                }
                Some(names) => {
                    for name in names {
                        let i = self
                            .v1
                            .iter()
                            .position(|(c, _)| c.iter().any(|x| x == name))
                            .ok_or_else(|| CgroupError::Unsupported {
                                field: "--cgroup".into(),
                                message: format!("unknown controller {name:?}"),
                            })?;
                        out.v1[i].1 = self.v1[i].1.join(rel);
                    }
                }
            }
        }
        Ok(out)
    }

    /// An `O_PATH` fd of the v2 directory for `clone3(CLONE_INTO_CGROUP)`.
    ///
    /// `O_PATH`: `clone3` takes it, and nothing can be read or written
    /// through it (the child closes it first thing anyway).
    pub fn v2_fd(&self) -> Option<std::os::fd::OwnedFd> {
        use std::os::unix::fs::OpenOptionsExt;
        let d = self.v2.as_ref()?;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(d)
            .ok()
            .map(Into::into)
    }

    /// Pids in the cgroup (from the first hierarchy that answers).
    pub fn procs(&self) -> Result<Vec<i32>> {
        let dir = self
            .v1_dir("pids")
            .or_else(|| self.v1_dir("freezer"))
            .or(self.v2.as_deref())
            .or_else(|| self.v1.first().map(|(_, d)| d.as_path()))
            .ok_or(CgroupError::NoHierarchy)?;
        let mut pids = Vec::new();
        procs_under(dir, &mut pids)?;
        Ok(pids)
    }

    /// Send `sig` to every process of the cgroup. With SIGKILL on a v2
    /// hierarchy that has `cgroup.kill`, the kernel does it atomically.
    pub fn signal_all(&self, sig: i32) -> Result<()> {
        if !self.systemd_owned()? {
            return Ok(());
        }
        if sig == libc::SIGKILL {
            if let Some(v2) = &self.v2 {
                let kill = v2.join("cgroup.kill");
                if kill.exists() && write(&kill, "1").is_ok() && self.v1.is_empty() {
                    return Ok(());
                }
            }
        }
        // Security: a process that forks faster than cgroup.procs is read
        // would escape the walk; frozen, nothing forks or exits (so no pid
        // is reused) until every member has its signal. Then thawed, so
        // that the signals are delivered, unless it was paused already.
        // Thawed afterwards whenever we tried, even if the freeze did not
        // report done in time: never left frozen by us.
        let froze = !self.is_frozen();
        if froze {
            let _ = self.freeze(true);
        }
        let procs = self.procs();
        if let Ok(pids) = &procs {
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::try_from(sig).ok(),
                );
            }
        }
        if froze {
            self.freeze(false)?;
        }
        procs.map(drop)
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

/// A container with its cgroup mounted writable may make sub-cgroups (as
/// runc allows). They are walked by directory fd, never by a path built
/// from their names: neither depth nor long names can push one past
/// PATH_MAX and out of sight. Deeper than this, a walk goes no further
/// (what is there keeps `rmdir` of its parents failing, visibly).
const MAX_DEPTH: usize = 256;

/// The sub-directories of `dir` (sub-cgroups), by name.
fn subdirs(dir: &OwnedFd) -> Vec<std::ffi::CString> {
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
fn walk_below(
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

fn open_dir(d: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(d)
        .map(Into::into)
}

fn read_procs(dir: &OwnedFd, pids: &mut Vec<i32>) -> std::io::Result<()> {
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
fn procs_under(d: &Path, pids: &mut Vec<i32>) -> Result<()> {
    let f = d.join("cgroup.procs");
    let top = open_dir(d).map_err(|e| CgroupError::sys("open", d, e))?;
    read_procs(&top, pids).map_err(|e| CgroupError::sys("read", &f, e))?;
    walk_below(&top, 0, &mut |_, _, child| {
        let _ = read_procs(child, pids);
    });
    Ok(())
}

/// Remove `d` and the sub-cgroups below it, deepest first.
fn rmdir_tree(d: &Path) -> Result<()> {
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

fn rmdir_retry(d: &Path) -> Result<()> {
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
