//! The validated plan a container is created from.

mod linux;
mod process;

use linux::*;
pub use process::ProcessPlan;
use process::*;

use crate::mounts::{self, MountPlan};
use crate::{caps, oci, rlimits, SpecError};
use oci::LinuxNamespaceType as NsType;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One line of a uid or gid map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// Which namespaces to create and which to join.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// `CLONE_NEW*` flags of the namespaces to create.
    pub new: i32,
    /// Namespaces to join, as (`CLONE_NEW*` flag, path), user namespace first.
    pub join: Vec<(i32, PathBuf)>,
}

impl Namespaces {
    /// Whether the container has a namespace of this kind (new or joined).
    pub fn has(&self, flag: i32) -> bool {
        self.new & flag != 0 || self.join.iter().any(|(f, _)| *f == flag)
    }
}

/// Lifecycle hooks by stage.
#[derive(Debug, Clone, Default)]
pub struct HookSet {
    pub prestart: Vec<oci::Hook>,
    pub create_runtime: Vec<oci::Hook>,
    pub create_container: Vec<oci::Hook>,
    pub start_container: Vec<oci::Hook>,
    pub poststart: Vec<oci::Hook>,
    pub poststop: Vec<oci::Hook>,
}

/// A validated container configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    pub bundle: PathBuf,
    pub spec: oci::Spec,
    pub rootfs: PathBuf,
    pub root_readonly: bool,
    pub process: ProcessPlan,
    pub namespaces: Namespaces,
    pub uid_maps: Vec<IdMap>,
    pub gid_maps: Vec<IdMap>,
    pub mounts: Vec<MountPlan>,
    pub rootfs_propagation: u64,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: BTreeMap<String, String>,
    pub devices: Vec<oci::LinuxDevice>,
    pub hooks: HookSet,
    pub cgroups_path: Option<PathBuf>,
    /// (clock name, seconds, nanoseconds) for the time namespace.
    pub time_offsets: Vec<(String, i64, u32)>,
    pub annotations: BTreeMap<String, String>,
    /// The compiled `linux.seccomp`, loaded last before execve.
    pub seccomp: Option<crate::seccomp::SeccompPlan>,
    /// `linux.personality`, for personality(2).
    pub personality: Option<u64>,
    /// `linux.memoryPolicy`: the mode with its flags, and the node mask.
    pub memory_policy: Option<(i32, Vec<u64>)>,
    /// What was read leniently, for the caller to warn about (see
    /// [`crate::Mode::Runc`]).
    pub warnings: Vec<String>,
}

const SUPPORTED_VERSIONS: [&str; 4] = ["1.0.", "1.1.", "1.2.", "1.3."];

impl Plan {
    /// Validate `spec` (read from `bundle`) as a whole and resolve defaults.
    pub fn new(bundle: &Path, spec: oci::Spec) -> Result<Plan, SpecError> {
        let bundle = std::path::absolute(bundle).unwrap_or_else(|_| bundle.to_path_buf());
        let version = spec.version();
        if !SUPPORTED_VERSIONS.iter().any(|v| version.starts_with(v)) {
            return Err(SpecError::invalid(
                "ociVersion",
                format!("{version:?} is not supported (1.0.x to 1.3.x)"),
            ));
        }
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| SpecError::invalid("root", "missing"))?;
        if root.path().as_os_str().is_empty() {
            return Err(SpecError::invalid("root.path", "empty"));
        }
        let rootfs = bundle.join(root.path());
        if !rootfs.is_dir() {
            return Err(SpecError::invalid(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ));
        }
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| SpecError::invalid("process", "missing"))?;
        let process = ProcessPlan::from_oci(process, "process")?;
        let default_linux = oci::Linux::default();
        let linux = spec.linux().as_ref().unwrap_or(&default_linux);

        let namespaces = namespaces(linux)?;
        let uid_maps = id_maps(linux.uid_mappings(), "linux.uidMappings");
        let gid_maps = id_maps(linux.gid_mappings(), "linux.gidMappings");
        let userns = namespaces.new & libc::CLONE_NEWUSER != 0;
        if userns && (uid_maps.is_empty() || gid_maps.is_empty()) {
            return Err(SpecError::invalid(
                "linux.uidMappings",
                "a new user namespace needs uidMappings and gidMappings",
            ));
        }
        if !userns && (!uid_maps.is_empty() || !gid_maps.is_empty()) {
            return Err(SpecError::invalid(
                "linux.uidMappings",
                "mappings given without a new user namespace",
            ));
        }

        let mut mounts_plan = Vec::new();
        for (i, m) in spec.mounts().iter().flatten().enumerate() {
            mounts_plan.push(mounts::plan(i, m, &bundle)?);
        }

        let rootfs_propagation = match linux.rootfs_propagation() {
            None => libc::MS_SLAVE | libc::MS_REC,
            Some(p) if p.is_empty() => libc::MS_SLAVE | libc::MS_REC,
            Some(p) => mounts::propagation(p).ok_or_else(|| {
                SpecError::invalid(
                    "linux.rootfsPropagation",
                    format!("unknown propagation {p:?}"),
                )
            })?,
        };

        let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
        let domainname = spec.domainname().clone().filter(|h| !h.is_empty());
        if hostname.is_some() && !namespaces.has(libc::CLONE_NEWUTS) {
            return Err(SpecError::invalid(
                "hostname",
                "cannot set a hostname without a private UTS namespace",
            ));
        }
        if domainname.is_some() && !namespaces.has(libc::CLONE_NEWUTS) {
            return Err(SpecError::invalid(
                "domainname",
                "cannot set a domainname without a private UTS namespace",
            ));
        }

        let sysctl: BTreeMap<String, String> = linux
            .sysctl()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        for key in sysctl.keys() {
            check_sysctl(key, &namespaces)?;
        }

        let devices = linux.devices().clone().unwrap_or_default();
        for (i, d) in devices.iter().enumerate() {
            if !d.path().is_absolute() || !d.path().starts_with("/dev") {
                return Err(SpecError::invalid(
                    format!("linux.devices[{i}].path"),
                    format!("{} is not under /dev", d.path().display()),
                ));
            }
            if matches!(d.typ(), oci::LinuxDeviceType::A) {
                return Err(SpecError::invalid(
                    format!("linux.devices[{i}].type"),
                    "must be c, b, u or p",
                ));
            }
        }

        let hooks = hooks(spec.hooks())?;

        let mut time_offsets = Vec::new();
        if let Some(offsets) = linux.time_offsets() {
            if !namespaces.has(libc::CLONE_NEWTIME) {
                return Err(SpecError::invalid(
                    "linux.timeOffsets",
                    "time offsets need a time namespace",
                ));
            }
            for (clock, off) in offsets {
                if clock != "monotonic" && clock != "boottime" {
                    return Err(SpecError::invalid(
                        format!("linux.timeOffsets.{clock}"),
                        "only monotonic and boottime can be offset",
                    ));
                }
                time_offsets.push((
                    clock.clone(),
                    off.secs().unwrap_or(0),
                    off.nanosecs().unwrap_or(0),
                ));
            }
        }

        let seccomp = match linux.seccomp() {
            Some(s) => Some(crate::seccomp::compile(s)?),
            None => None,
        };
        refuse_unsupported(linux)?;

        Ok(Plan {
            warnings: Vec::new(),
            seccomp,
            personality: personality(linux)?,
            memory_policy: memory_policy(linux)?,
            root_readonly: root.readonly().unwrap_or(false),
            rootfs,
            process,
            namespaces,
            uid_maps,
            gid_maps,
            mounts: mounts_plan,
            rootfs_propagation,
            masked_paths: linux
                .masked_paths()
                .iter()
                .flatten()
                .map(PathBuf::from)
                .collect(),
            readonly_paths: linux
                .readonly_paths()
                .iter()
                .flatten()
                .map(PathBuf::from)
                .collect(),
            hostname,
            domainname,
            sysctl,
            devices,
            hooks,
            cgroups_path: linux.cgroups_path().clone(),
            time_offsets,
            annotations: spec
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            bundle,
            spec,
        })
    }

    /// Whether the container gets a new user namespace.
    /// capsa's hardened reading ([`crate::Mode::Hardened`]): `ro` on a
    /// recursive bind is read-only all the way down, as if `rro` were
    /// named, unless `rrw` was.
    ///
    /// Security: a read-only bind of a tree with mounts under it (the
    /// host's `/sys`, with its cgroupfs) would otherwise leave them
    /// writable (CVE-2023-25809's class).
    pub(crate) fn harden(&mut self) {
        for m in &mut self.mounts {
            if m.bind && m.recursive && m.readonly() && m.recursive_clear & libc::MS_RDONLY == 0 {
                m.recursive_set |= libc::MS_RDONLY;
            }
        }
    }

    /// `linux.resources`, or none.
    pub fn resources(&self) -> oci::LinuxResources {
        self.spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default()
    }

    pub fn new_userns(&self) -> bool {
        self.namespaces.new & libc::CLONE_NEWUSER != 0
    }

    /// The host uid that container root maps to (0 without a user namespace).
    pub fn host_root_uid(&self) -> u32 {
        self.uid_maps
            .iter()
            .find(|m| m.container == 0)
            .map(|m| m.host)
            .unwrap_or(0)
    }

    /// The host gid that container root maps to (0 without a user namespace).
    pub fn host_root_gid(&self) -> u32 {
        self.gid_maps
            .iter()
            .find(|m| m.container == 0)
            .map(|m| m.host)
            .unwrap_or(0)
    }
}

fn namespaces(linux: &oci::Linux) -> Result<Namespaces, SpecError> {
    let mut ns = Namespaces::default();
    let mut seen = 0i32;
    for (i, n) in linux.namespaces().iter().flatten().enumerate() {
        let flag = n.typ() as i32;
        if seen & flag != 0 {
            return Err(SpecError::invalid(
                format!("linux.namespaces[{i}].type"),
                format!("namespace {:?} given twice", n.typ().to_string()),
            ));
        }
        seen |= flag;
        match n.path() {
            Some(p) if !p.as_os_str().is_empty() => {
                if !p.is_absolute() {
                    return Err(SpecError::invalid(
                        format!("linux.namespaces[{i}].path"),
                        format!("{} is not absolute", p.display()),
                    ));
                }
                ns.join.push((flag, p.clone()));
            }
            _ => ns.new |= flag,
        }
    }
    // The user namespace is joined first: it decides what the others allow.
    ns.join
        .sort_by_key(|(f, _)| if *f == NsType::User as i32 { 0 } else { 1 });
    Ok(ns)
}

fn id_maps(maps: &Option<Vec<oci::LinuxIdMapping>>, _field: &str) -> Vec<IdMap> {
    maps.iter()
        .flatten()
        .map(|m| IdMap {
            container: m.container_id(),
            host: m.host_id(),
            size: m.size(),
        })
        .collect()
}

fn check_sysctl(key: &str, ns: &Namespaces) -> Result<(), SpecError> {
    let field = format!("linux.sysctl.{key}");
    if key.contains("..") || key.contains('/') && key.contains('.') {
        return Err(SpecError::invalid(field, "malformed key"));
    }
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        if !ns.has(libc::CLONE_NEWIPC) {
            return Err(SpecError::invalid(field, "needs a private IPC namespace"));
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if !ns.has(libc::CLONE_NEWNET) {
            return Err(SpecError::invalid(
                field,
                "needs a private network namespace",
            ));
        }
        return Ok(());
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        if !ns.has(libc::CLONE_NEWUTS) {
            return Err(SpecError::invalid(field, "needs a private UTS namespace"));
        }
        return Ok(());
    }
    Err(SpecError::invalid(
        field,
        "not namespaced: it would change the host",
    ))
}

fn hooks(h: &Option<oci::Hooks>) -> Result<HookSet, SpecError> {
    let Some(h) = h else {
        return Ok(HookSet::default());
    };
    let check = |name: &str, list: &Option<Vec<oci::Hook>>| -> Result<Vec<oci::Hook>, SpecError> {
        let list = list.clone().unwrap_or_default();
        for (i, hook) in list.iter().enumerate() {
            if !hook.path().is_absolute() {
                return Err(SpecError::invalid(
                    format!("hooks.{name}[{i}].path"),
                    format!("{} is not absolute", hook.path().display()),
                ));
            }
            if let Some(t) = hook.timeout() {
                if t <= 0 {
                    return Err(SpecError::invalid(
                        format!("hooks.{name}[{i}].timeout"),
                        "must be greater than zero",
                    ));
                }
            }
        }
        Ok(list)
    };
    #[allow(deprecated)]
    let prestart = check("prestart", h.prestart())?;
    Ok(HookSet {
        prestart,
        create_runtime: check("createRuntime", h.create_runtime())?,
        create_container: check("createContainer", h.create_container())?,
        start_container: check("startContainer", h.start_container())?,
        poststart: check("poststart", h.poststart())?,
        poststop: check("poststop", h.poststop())?,
    })
}

#[cfg(test)]
mod tests;
