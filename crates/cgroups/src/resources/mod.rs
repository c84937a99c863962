//! `linux.resources` written as cgroup files, v1 or v2 per controller.
//!
//! Every write is planned first, so that a field the host cannot honour is
//! refused (naming the field) before any file changes; then the plan is
//! written in order. Conversions between v1 and v2 values are the ones runc
//! and crun use.

mod cpu;
mod io;
mod memory;
mod others;

use crate::{write, Cgroup, CgroupError, Result};
use nix::errno::Errno;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources, LinuxThrottleDevice};
use std::path::{Path, PathBuf};

/// Devices every container may use (runc's list): null, zero, full, tty,
/// random, urandom, the pts and ptmx pair, and mknod of anything.
pub const DEFAULT_ALLOWED_DEVICES: [&str; 10] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 5:0 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 136:* rwm",
    "c 5:2 rwm",
];

/// Give an empty v1 cpuset its parent's cpus and mems (a cpuset that is
/// already set is left as it is). A parent that is empty too (another
/// create made it an instant ago and has not filled it yet) is filled
/// first, from its own parent.
pub(crate) fn inherit_cpuset(dir: &Path) -> Result<()> {
    let parent = dir.parent().unwrap_or(dir);
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let own = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        if !own.trim().is_empty() {
            continue;
        }
        let read = || {
            std::fs::read_to_string(parent.join(f))
                .map_err(|e| CgroupError::sys("read", &parent.join(f), e))
        };
        let mut v = read()?;
        if v.trim().is_empty() && parent != dir && parent.join(f).exists() {
            inherit_cpuset(parent)?;
            v = read()?;
        }
        write(&dir.join(f), v.trim())?;
    }
    Ok(())
}

/// Where a controller lives for this cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

/// One planned file write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    pub path: PathBuf,
    pub value: String,
    /// The spec field it comes from, for errors.
    pub field: String,
}

fn refuse(field: &str, message: impl Into<String>) -> CgroupError {
    CgroupError::Unsupported {
        field: format!("linux.resources.{field}"),
        message: message.into(),
    }
}

/// cpu.shares (2..262144) to cpu.weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// blkio weight (10..1000) to io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + ((w.clamp(10, 1000) as u64 - 10) * 9999) / 990
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

fn device_rule(d: &LinuxDeviceCgroup) -> Option<String> {
    let t = match d.typ() {
        Some(LinuxDeviceType::C) => "c",
        Some(LinuxDeviceType::B) => "b",
        _ => "a",
    };
    let n = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_else(|| "*".into());
    // Only r, w and m, each once: the kernel refuses anything else.
    let given = d.access().clone().unwrap_or_else(|| "rwm".into());
    let access: String = ['r', 'w', 'm']
        .into_iter()
        .filter(|c| given.contains(*c))
        .collect();
    if access.is_empty() {
        return None;
    }
    Some(if t == "a" {
        format!("a *:* {access}")
    } else {
        format!("{t} {}:{} {access}", n(d.major()), n(d.minor()))
    })
}

struct Planner<'a> {
    cg: &'a Cgroup,
    out: Vec<FileWrite>,
    /// When collecting: the v2 controllers the resources need that the
    /// cgroup does not have yet (nothing is refused for them).
    missing: Option<Vec<String>>,
}

impl<'a> Planner<'a> {
    fn place(&mut self, ctl: &str, field: &str) -> Result<Place<'a>> {
        if let Some(d) = self.cg.v1_dir(ctl) {
            return Ok(Place::V1(d));
        }
        if let Some(d) = self.cg.v2.as_deref() {
            if crate::v2_controllers(d).iter().any(|c| c == ctl) {
                return Ok(Place::V2(d));
            }
            if let Some(m) = self.missing.as_mut() {
                if !m.iter().any(|c| c == ctl) {
                    m.push(ctl.to_string());
                }
                return Ok(Place::V2(d));
            }
            let parent = d.parent().unwrap_or(d);
            return Err(refuse(
                field,
                format!("the {ctl} controller is not available to {} (not in {}/cgroup.subtree_control)", d.display(), parent.display()),
            ));
        }
        Err(refuse(
            field,
            format!("the {ctl} controller is not mounted on this host"),
        ))
    }

    fn put(&mut self, dir: &Path, file: &str, value: impl Into<String>, field: &str) {
        self.out.push(FileWrite {
            path: dir.join(file),
            value: value.into(),
            field: format!("linux.resources.{field}"),
        });
    }

    /// A file that only some kernels have: refuse if missing.
    fn put_existing(
        &mut self,
        dir: &Path,
        file: &str,
        value: impl Into<String>,
        field: &str,
    ) -> Result<()> {
        // Collecting: the file may appear once its controller is enabled.
        if self.missing.is_some() {
            return Ok(());
        }
        if !dir.join(file).exists() {
            return Err(refuse(
                field,
                format!("{} does not exist on this kernel", dir.join(file).display()),
            ));
        }
        self.put(dir, file, value, field);
        Ok(())
    }
}

/// Zero means "not set" for these limits, as runc reads them (docker sends
/// `blockIO.weight: 0`, `cpu.shares: 0`, ... for its defaults).
fn without_zeros(r: &LinuxResources) -> LinuxResources {
    const UNSET_IF_ZERO: [(&str, &[&str]); 3] = [
        (
            "cpu",
            &[
                "shares",
                "quota",
                "period",
                "realtimeRuntime",
                "realtimePeriod",
            ],
        ),
        (
            "memory",
            &["limit", "reservation", "swap", "kernel", "kernelTCP"],
        ),
        ("blockIO", &["weight", "leafWeight"]),
    ];
    let Ok(mut v) = serde_json::to_value(r) else {
        return r.clone();
    };
    for (group, keys) in UNSET_IF_ZERO {
        if let Some(g) = v.get_mut(group).and_then(|g| g.as_object_mut()) {
            g.retain(|k, val| !(keys.contains(&k.as_str()) && val.as_i64() == Some(0)));
        }
    }
    serde_json::from_value(v).unwrap_or_else(|_| r.clone())
}

fn read_num(p: &Path) -> Option<i64> {
    let s = std::fs::read_to_string(p).ok()?;
    let s = s.trim();
    if s == "max" {
        return Some(i64::MAX);
    }
    s.parse::<i64>()
        .ok()
        .or_else(|| s.parse::<u64>().ok().map(|v| v.min(i64::MAX as u64) as i64))
}

impl Cgroup {
    /// The file writes `r` needs on this cgroup, in order; an error names
    /// the first field the host cannot honour. Nothing is written.
    pub fn plan(&self, r: &LinuxResources) -> Result<Vec<FileWrite>> {
        self.planner(r, false).map(|p| p.out)
    }

    /// The v2 controllers `r` needs that this cgroup does not have (for
    /// [`Cgroup::enable_v2`]); an error names a field the host cannot honour
    /// whatever is enabled.
    pub(crate) fn missing_v2(&self, r: &LinuxResources) -> Result<Vec<String>> {
        self.planner(r, true).map(|p| p.missing.unwrap_or_default())
    }

    fn planner(&self, r: &LinuxResources, collect: bool) -> Result<Planner<'_>> {
        let r = &without_zeros(r);
        let mut p = Planner {
            cg: self,
            out: Vec::new(),
            missing: collect.then(Vec::new),
        };
        p.cpu(r)?;
        p.memory(r)?;
        p.pids(r)?;
        p.block_io(r)?;
        p.hugetlb(r)?;
        p.network(r)?;
        p.rdma(r)?;
        p.unified(r)?;
        Ok(p)
    }

    /// Apply `r`, its device rules (none: only the defaults) included.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        let mut all = r.clone();
        if all.devices().is_none() {
            all.set_devices(Some(Vec::new()));
        }
        self.update(&all)
    }

    pub(crate) fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<()> {
        let Some(d) = self.v1_dir("devices") else {
            // cgroup v2: an eBPF program attached to the cgroup.
            return match &self.v2 {
                Some(v2) => match crate::devices::attach_filter(v2, rules) {
                    // Security (device access: what the devices cgroup
                    // guards): in a user namespace the kernel loads no
                    // cgroup device program (it wants CAP_SYS_ADMIN of the
                    // host). As runc's rootless mode, that refusal is
                    // taken there: the namespace may not create device
                    // nodes, the container sees only the host nodes the
                    // runtime binds, and the engine refuses the access
                    // modes that only the filter could keep.
                    Err(CgroupError::Device {
                        errno: Errno::EPERM | Errno::EACCES,
                        ..
                    }) if capsa_sys::process::in_user_namespace() => Ok(()),
                    r => r,
                },
                None => Ok(()),
            };
        };
        // One open per file: the kernel takes one rule per write(2).
        let open = |name: &str| {
            let path = d.join(name);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map(|f| (f, path.clone()))
                .map_err(|e| CgroupError::sys("open", &path, e))
        };
        let (mut allow, allow_path) = open("devices.allow")?;
        let (mut deny, deny_path) = open("devices.deny")?;
        let mut put = |to_allow: bool, rule: &str| -> Result<()> {
            use std::io::Write;
            let (f, p) = if to_allow {
                (&mut allow, &allow_path)
            } else {
                (&mut deny, &deny_path)
            };
            f.write_all(rule.as_bytes())
                .map_err(|e| CgroupError::sys("write", p, e))
        };
        put(false, "a")?;
        // A rule left with no access the kernel knows is no rule (the
        // kernel would refuse it; runc's emulator drops it).
        for rule in rules
            .iter()
            .filter_map(|r| device_rule(r).map(|s| (r.allow(), s)))
        {
            put(rule.0, &rule.1)?;
        }
        for rule in DEFAULT_ALLOWED_DEVICES {
            put(true, rule)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
