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
    /// `scheduler`, for sched_setattr.
    pub scheduler: Option<capsa_sys::process::SchedAttr>,
    /// `execCPUAffinity`: the CPUs before and after joining the cgroup
    /// (exec only; the init process's affinity is reset instead).
    pub exec_cpu_affinity: (Option<Vec<usize>>, Option<Vec<usize>>),
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

    /// Check again, where the process is about to be used, what
    /// [`ProcessPlan::from_oci`] checked: its fields are public, and a
    /// caller (an exec's overrides) may have changed them since.
    pub fn check(&self, field: &str) -> Result<(), SpecError> {
        let bad = |f: &str, m: String| Err(SpecError::invalid(format!("{field}.{f}"), m));
        if self.args.is_empty() {
            return bad("args", "empty: there is nothing to run".into());
        }
        if let Some(a) = self.args.iter().find(|a| a.contains('\0')) {
            return bad("args", format!("{a:?} holds a NUL byte"));
        }
        if !self.cwd.is_absolute() {
            return bad("cwd", format!("{:?} is not an absolute path", self.cwd));
        }
        if let Some(e) = self
            .env
            .iter()
            .find(|e| !e.contains('=') || e.contains('\0'))
        {
            return bad("env", format!("{e:?} is not KEY=VALUE"));
        }
        if let Some((r, soft, hard)) = self.rlimits.iter().find(|(_, s, h)| s > h) {
            return bad(
                "rlimits",
                format!("resource {r}: soft limit {soft} is above hard limit {hard}"),
            );
        }
        if let Some(adj) = self.oom_score_adj.filter(|a| !(-1000..=1000).contains(a)) {
            return bad("oomScoreAdj", format!("{adj} is outside -1000..1000"));
        }
        if let Some((class, prio)) = self.io_priority {
            if !(1..=3).contains(&class) || prio > 7 {
                return bad("ioPriority", format!("class {class}, priority {prio}"));
            }
        }
        Ok(())
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
            scheduler: match p.scheduler() {
                Some(s) => Some(scheduler(s, &format!("{field}.scheduler"))?),
                None => None,
            },
            exec_cpu_affinity: match p.exec_cpu_affinity() {
                Some(a) => (
                    cpu_list(a.initial(), &format!("{field}.execCPUAffinity.initial"))?,
                    cpu_list(
                        a.cpu_affinity_final(),
                        &format!("{field}.execCPUAffinity.final"),
                    )?,
                ),
                None => (None, None),
            },
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

/// Parts of the spec capsa cannot apply: refused, never silently dropped.
fn refuse_unsupported(linux: &oci::Linux) -> Result<(), SpecError> {
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(SpecError::invalid(
            "linux.netDevices",
            "moving network devices into the container is not supported",
        ));
    }
    if linux.intel_rdt().is_some() {
        return Err(SpecError::invalid(
            "linux.intelRdt",
            "Intel RDT (resctrl) is not supported",
        ));
    }
    Ok(())
}

fn personality(linux: &oci::Linux) -> Result<Option<u64>, SpecError> {
    let Some(p) = linux.personality() else {
        return Ok(None);
    };
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(SpecError::invalid(
            "linux.personality.flags",
            "no personality flags are supported",
        ));
    }
    Ok(Some(match p.domain() {
        oci::LinuxPersonalityDomain::PerLinux => 0x0000,
        oci::LinuxPersonalityDomain::PerLinux32 => 0x0008,
    }))
}

fn memory_policy(linux: &oci::Linux) -> Result<Option<(i32, Vec<u64>)>, SpecError> {
    use oci::{MemoryPolicyFlagType as F, MemoryPolicyModeType as M};
    let Some(m) = linux.memory_policy() else {
        return Ok(None);
    };
    let mode = match m.mode() {
        M::MpolDefault => 0,
        M::MpolPreferred => 1,
        M::MpolBind => 2,
        M::MpolInterleave => 3,
        M::MpolLocal => 4,
        M::MpolPreferredMany => 5,
        M::MpolWeightedInterleave => 6,
    };
    let flags = m.flags().iter().flatten().fold(0, |acc, f| {
        acc | match f {
            F::MpolFNumaBalancing => 1 << 13,
            F::MpolFRelativeNodes => 1 << 14,
            F::MpolFStaticNodes => 1 << 15,
        }
    });
    let nodes = cpu_list(m.nodes(), "linux.memoryPolicy.nodes")?.unwrap_or_default();
    let needs_nodes = !matches!(m.mode(), M::MpolDefault | M::MpolLocal);
    if needs_nodes == nodes.is_empty() {
        return Err(SpecError::invalid(
            "linux.memoryPolicy.nodes",
            if needs_nodes {
                "this mode needs nodes"
            } else {
                "MPOL_DEFAULT and MPOL_LOCAL take no nodes"
            },
        ));
    }
    let mut mask = vec![0u64; nodes.iter().max().map_or(0, |n| n / 64 + 1)];
    for n in nodes {
        mask[n / 64] |= 1 << (n % 64);
    }
    Ok(Some((mode | flags, mask)))
}

/// A list such as `0-3,7` (CPUs or NUMA nodes); `None` when absent or empty.
fn cpu_list(s: &Option<String>, field: &str) -> Result<Option<Vec<usize>>, SpecError> {
    let Some(s) = s.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    // The kernel's own limit on CPU numbers (and so on any mask we build).
    const MAX: usize = 8192;
    let bad = |why: &str| SpecError::invalid(field, format!("{s:?}: {why}"));
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: usize = a.trim().parse().map_err(|_| bad("not a list of numbers"))?;
        let b: usize = b.trim().parse().map_err(|_| bad("not a list of numbers"))?;
        if a > b {
            return Err(bad("a range goes down"));
        }
        if b >= MAX {
            return Err(bad("a number is too large"));
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(Some(out))
}

fn scheduler(s: &oci::Scheduler, field: &str) -> Result<capsa_sys::process::SchedAttr, SpecError> {
    use oci::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(SpecError::invalid(
            format!("{field}.nice"),
            format!("{nice} is outside -20..19"),
        ));
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(s.policy(), P::SchedFifo | P::SchedRr);
    if realtime && !(1..=99).contains(&priority) || !realtime && priority != 0 {
        return Err(SpecError::invalid(
            format!("{field}.priority"),
            "must be 1 to 99 for SCHED_FIFO and SCHED_RR, and 0 (or absent) for other policies",
        ));
    }
    let deadline = matches!(s.policy(), P::SchedDeadline);
    if !deadline && (s.runtime().is_some() || s.deadline().is_some() || s.period().is_some()) {
        return Err(SpecError::invalid(
            format!("{field}.runtime"),
            "runtime, deadline and period are for SCHED_DEADLINE only",
        ));
    }
    let flags = s.flags().iter().flatten().fold(0, |acc, f| {
        acc | match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        }
    });
    Ok(capsa_sys::process::SchedAttr {
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(extra: serde_json::Value) -> Result<ProcessPlan, SpecError> {
        let mut p = serde_json::json!({"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}});
        if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        let p: oci::Process = serde_json::from_value(p).unwrap();
        ProcessPlan::from_oci(&p, "process")
    }

    fn field_of(e: SpecError) -> String {
        match e {
            SpecError::Invalid { field, .. } => field,
            other => panic!("not an invalid-value error: {other}"),
        }
    }

    #[test]
    fn cpu_lists_expand_ranges_and_refuse_what_the_kernel_would() {
        let l = |s: &str| cpu_list(&Some(s.to_string()), "f");
        assert_eq!(l("0-3,7").unwrap(), Some(vec![0, 1, 2, 3, 7]));
        assert_eq!(l("5,1,1").unwrap(), Some(vec![1, 5]));
        assert_eq!(l(" ").unwrap(), None);
        assert!(l("3-1").is_err());
        assert!(l("a").is_err());
        assert!(l("0-99999").is_err());
    }

    #[test]
    fn scheduler_maps_to_sched_attr_and_checks_what_goes_with_each_policy() {
        let p = process(serde_json::json!({"scheduler": {
            "policy": "SCHED_FIFO", "priority": 10, "flags": ["SCHED_FLAG_RECLAIM"]}}))
        .unwrap();
        let s = p.scheduler.unwrap();
        assert_eq!((s.policy, s.priority, s.flags), (1, 10, 0x02));
        let p = process(serde_json::json!({"scheduler": {"policy": "SCHED_BATCH", "nice": -5}}))
            .unwrap();
        assert_eq!(
            (p.scheduler.unwrap().policy, p.scheduler.unwrap().nice),
            (3, -5)
        );
        for (bad, field) in [
            (
                serde_json::json!({"policy": "SCHED_OTHER", "priority": 5}),
                "priority",
            ),
            (serde_json::json!({"policy": "SCHED_RR"}), "priority"),
            (
                serde_json::json!({"policy": "SCHED_OTHER", "nice": 20}),
                "nice",
            ),
            (
                serde_json::json!({"policy": "SCHED_BATCH", "runtime": 5}),
                "runtime",
            ),
        ] {
            let e = process(serde_json::json!({ "scheduler": bad })).unwrap_err();
            assert_eq!(field_of(e), format!("process.scheduler.{field}"));
        }
    }

    #[test]
    fn exec_cpu_affinity_is_resolved_to_cpu_numbers() {
        let p = process(serde_json::json!({"execCPUAffinity": {"initial": "0", "final": "1-2"}}))
            .unwrap();
        assert_eq!(p.exec_cpu_affinity, (Some(vec![0]), Some(vec![1, 2])));
    }

    #[test]
    fn memory_policy_builds_the_node_mask_and_mode_flags() {
        let linux: oci::Linux = serde_json::from_value(serde_json::json!({"memoryPolicy": {
            "mode": "MPOL_BIND", "nodes": "0,65", "flags": ["MPOL_F_STATIC_NODES"]}}))
        .unwrap();
        assert_eq!(
            memory_policy(&linux).unwrap(),
            Some((2 | 1 << 15, vec![1, 2]))
        );
        let linux: oci::Linux =
            serde_json::from_value(serde_json::json!({"memoryPolicy": {"mode": "MPOL_BIND"}}))
                .unwrap();
        assert_eq!(
            field_of(memory_policy(&linux).unwrap_err()),
            "linux.memoryPolicy.nodes"
        );
        let linux: oci::Linux = serde_json::from_value(
            serde_json::json!({"memoryPolicy": {"mode": "MPOL_LOCAL", "nodes": "0"}}),
        )
        .unwrap();
        assert!(memory_policy(&linux).is_err());
    }

    #[test]
    fn personality_domains_are_the_kernel_numbers_and_flags_are_refused() {
        let l = |v: serde_json::Value| -> oci::Linux { serde_json::from_value(v).unwrap() };
        let p = personality(&l(
            serde_json::json!({"personality": {"domain": "LINUX32"}}),
        ));
        assert_eq!(p.unwrap(), Some(8));
        let p = personality(&l(
            serde_json::json!({"personality": {"domain": "LINUX", "flags": ["X"]}}),
        ));
        assert_eq!(field_of(p.unwrap_err()), "linux.personality.flags");
    }

    #[test]
    fn hardening_makes_ro_on_an_rbind_recursive_unless_rrw_is_named() {
        let mount = |opts: &[&str]| {
            let m: oci::Mount = serde_json::from_value(serde_json::json!({
                "destination": "/m", "type": "bind", "source": "/src", "options": opts
            }))
            .unwrap();
            crate::mounts::plan(0, &m, Path::new("/b")).unwrap()
        };
        let spec: oci::Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0", "root": {"path": "tmp"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}}
        }))
        .unwrap();
        let mut p = Plan::new(Path::new("/"), spec).unwrap();
        p.mounts = vec![
            mount(&["rbind", "ro"]),
            mount(&["bind", "ro"]),
            mount(&["rbind", "rw"]),
            mount(&["rbind", "ro", "rrw"]),
        ];
        p.harden();
        let rec: Vec<bool> = p
            .mounts
            .iter()
            .map(|m| m.recursive_set & libc::MS_RDONLY != 0)
            .collect();
        assert_eq!(rec, [true, false, false, false]);
    }

    #[test]
    fn a_process_changed_after_it_was_read_is_checked_again() {
        let ok = process(serde_json::json!({})).unwrap();
        assert!(ok.check("process").is_ok());
        let mut p = ok.clone();
        p.cwd = "relative".into();
        assert_eq!(field_of(p.check("process").unwrap_err()), "process.cwd");
        let mut p = ok.clone();
        p.env.push("NOEQUALS".into());
        assert_eq!(field_of(p.check("process").unwrap_err()), "process.env");
        let mut p = ok.clone();
        p.args.clear();
        assert_eq!(field_of(p.check("process").unwrap_err()), "process.args");
        let mut p = ok;
        p.rlimits.push((7, 10, 5));
        assert_eq!(field_of(p.check("process").unwrap_err()), "process.rlimits");
    }
}
