//! The validated plan a container is created from.

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

/// The process to run, with every set resolved to numbers.
#[derive(Debug, Clone, Default)]
pub struct ProcessPlan {
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    /// (resource, soft, hard)
    pub rlimits: Vec<(u32, u64, u64)>,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    pub apparmor_profile: Option<String>,
    pub selinux_label: Option<String>,
    /// (class, level) for ioprio_set.
    pub io_priority: Option<(u32, u32)>,
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
}

const SUPPORTED_VERSIONS: [&str; 3] = ["1.0.", "1.1.", "1.2."];

impl Plan {
    /// Validate `spec` (read from `bundle`) as a whole and resolve defaults.
    pub fn new(bundle: &Path, spec: oci::Spec) -> Result<Plan, SpecError> {
        let bundle = std::path::absolute(bundle).unwrap_or_else(|_| bundle.to_path_buf());
        let version = spec.version();
        if !SUPPORTED_VERSIONS.iter().any(|v| version.starts_with(v)) {
            return Err(SpecError::invalid(
                "ociVersion",
                format!("{version:?} is not supported (1.0.x to 1.2.x)"),
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

        Ok(Plan {
            seccomp,
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

impl ProcessPlan {
    /// Add capability number `cap` for an exec'd process (`exec --cap`):
    /// to the bounding, effective and permitted sets only.
    ///
    /// Security: CVE-2022-29162. In the inheritable (and so the ambient)
    /// set a capability would survive every execve of the process, and a
    /// program in the image with file capabilities would gain it.
    pub fn grant_cap(&mut self, cap: u32) {
        let bit = 1u64 << cap;
        self.bounding |= bit;
        self.effective |= bit;
        self.permitted |= bit;
    }

    /// Resolve an OCI process; `field` prefixes error paths (`process`).
    pub fn from_oci(p: &oci::Process, field: &str) -> Result<ProcessPlan, SpecError> {
        let args = p.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(SpecError::invalid(
                format!("{field}.args"),
                "empty: there is nothing to run",
            ));
        }
        if !p.cwd().is_absolute() {
            return Err(SpecError::invalid(
                format!("{field}.cwd"),
                format!(
                    "{:?} is not an absolute path",
                    p.cwd().display().to_string()
                ),
            ));
        }
        let user = p.user();
        let (mut bounding, mut effective, mut permitted, mut inheritable, mut ambient) =
            (0, 0, 0, 0, 0);
        if let Some(c) = p.capabilities() {
            let m = |s: &Option<oci::Capabilities>| {
                s.as_ref().map(|s| caps::mask(s.iter())).unwrap_or(0)
            };
            bounding = m(c.bounding());
            effective = m(c.effective());
            permitted = m(c.permitted());
            inheritable = m(c.inheritable());
            ambient = m(c.ambient());
        }
        let mut rl = Vec::new();
        let mut seen = Vec::new();
        for (i, r) in p.rlimits().iter().flatten().enumerate() {
            let name = rlimits::name_of(&r.typ());
            let num = rlimits::number(&name).ok_or_else(|| {
                SpecError::invalid(
                    format!("{field}.rlimits[{i}].type"),
                    format!("unknown rlimit {name:?}"),
                )
            })?;
            if seen.contains(&num) {
                return Err(SpecError::invalid(
                    format!("{field}.rlimits[{i}].type"),
                    format!("{name} given twice"),
                ));
            }
            seen.push(num);
            if r.soft() > r.hard() {
                return Err(SpecError::invalid(
                    format!("{field}.rlimits[{i}]"),
                    format!("soft limit {} is above hard limit {}", r.soft(), r.hard()),
                ));
            }
            rl.push((num, r.soft(), r.hard()));
        }
        if let Some(adj) = p.oom_score_adj() {
            if !(-1000..=1000).contains(&adj) {
                return Err(SpecError::invalid(
                    format!("{field}.oomScoreAdj"),
                    format!("{adj} is outside -1000..1000"),
                ));
            }
        }
        let io_priority = match p.io_priority() {
            None => None,
            Some(io) => {
                let class = match serde_json::to_value(io.class())
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .as_deref()
                {
                    Some("IOPRIO_CLASS_RT") => 1,
                    Some("IOPRIO_CLASS_BE") => 2,
                    Some("IOPRIO_CLASS_IDLE") => 3,
                    other => {
                        return Err(SpecError::invalid(
                            format!("{field}.ioPriority.class"),
                            format!("unknown class {other:?}"),
                        ))
                    }
                };
                if !(0..=7).contains(&io.priority()) {
                    return Err(SpecError::invalid(
                        format!("{field}.ioPriority.priority"),
                        "must be 0 to 7",
                    ));
                }
                Some((class, io.priority() as u32))
            }
        };
        for (i, e) in p.env().iter().flatten().enumerate() {
            if !e.contains('=') {
                return Err(SpecError::invalid(
                    format!("{field}.env[{i}]"),
                    format!("{e:?} is not KEY=VALUE"),
                ));
            }
        }
        Ok(ProcessPlan {
            terminal: p.terminal().unwrap_or(false),
            console_size: p
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16)),
            args,
            env: p.env().clone().unwrap_or_default(),
            cwd: p.cwd().clone(),
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask(),
            bounding,
            effective,
            permitted,
            inheritable,
            ambient,
            rlimits: rl,
            no_new_privileges: p.no_new_privileges().unwrap_or(false),
            oom_score_adj: p.oom_score_adj(),
            apparmor_profile: p.apparmor_profile().clone().filter(|s| !s.is_empty()),
            selinux_label: p.selinux_label().clone().filter(|s| !s.is_empty()),
            io_priority,
        })
    }

    /// The value of `PATH` in the process environment, or the default.
    pub fn path_var(&self) -> &str {
        self.env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    }
}
