//! The process to run: every set resolved to numbers, checked when read
//! and again where it is used.

#[allow(unused_imports)]
use super::*;

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

/// A list such as `0-3,7` (CPUs or NUMA nodes); `None` when absent or empty.
pub(super) fn cpu_list(s: &Option<String>, field: &str) -> Result<Option<Vec<usize>>, SpecError> {
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

pub(super) fn scheduler(
    s: &oci::Scheduler,
    field: &str,
) -> Result<capsa_sys::process::SchedAttr, SpecError> {
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
