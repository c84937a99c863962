//! `linux.resources` written as cgroup files.
//!
//! This first version covers what a container needs to be contained: memory,
//! cpu, cpuset, pids and the v1 device allowlist. Fields it cannot honour yet
//! are refused with their JSON path rather than silently dropped.

use crate::{write, Cgroup, CgroupError, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};
use std::path::Path;

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

pub(crate) fn inherit_cpuset(dir: &Path) -> Result<()> {
    let parent = dir.parent().unwrap_or(dir);
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let v = std::fs::read_to_string(parent.join(f))
            .map_err(|e| CgroupError::sys("read", &parent.join(f), e))?;
        write(&dir.join(f), v.trim())?;
    }
    Ok(())
}

fn unsupported(field: &str) -> CgroupError {
    CgroupError::Unsupported {
        field: format!("linux.resources.{field}"),
        message: "not supported by this build yet".into(),
    }
}

fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let t = match d.typ() {
        Some(LinuxDeviceType::C) => "c",
        Some(LinuxDeviceType::B) => "b",
        _ => "a",
    };
    let n = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_else(|| "*".into());
    let access = d.access().clone().unwrap_or_else(|| "rwm".into());
    if t == "a" {
        format!("a *:* {access}")
    } else {
        format!("{t} {}:{} {access}", n(d.major()), n(d.minor()))
    }
}

impl Cgroup {
    /// Apply `r`, plus the device rules of `devices` (the spec's
    /// `linux.devices`, which the container must be able to use).
    pub fn apply(&self, r: &LinuxResources, devices: &[(char, i64, i64)]) -> Result<()> {
        if r.block_io().is_some() {
            return Err(unsupported("blockIO"));
        }
        if r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(unsupported("hugepageLimits"));
        }
        if r.network().is_some() {
            return Err(unsupported("network"));
        }
        if r.rdma().as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(unsupported("rdma"));
        }
        if let Some(u) = r.unified() {
            if !u.is_empty() {
                return Err(unsupported("unified"));
            }
        }
        if let Some(m) = r.memory() {
            if let Some(limit) = m.limit() {
                self.set_v1_or_v2("memory", "memory.limit_in_bytes", "memory.max", limit)?;
            }
            if let Some(res) = m.reservation() {
                self.set_v1_or_v2("memory", "memory.soft_limit_in_bytes", "memory.low", res)?;
            }
            if let Some(swap) = m.swap() {
                match self.v1_dir("memory") {
                    Some(d) => write(&d.join("memory.memsw.limit_in_bytes"), &swap.to_string())?,
                    None => {
                        // v2 counts swap alone; the spec's value is memory+swap.
                        let v2 = m
                            .limit()
                            .filter(|&l| swap > 0 && l > 0)
                            .map(|l| swap - l)
                            .unwrap_or(swap);
                        self.set_v2("memory.swap.max", &max_or(v2))?;
                    }
                }
            }
            if m.kernel().is_some()
                || m.kernel_tcp().is_some()
                || m.swappiness().is_some()
                || m.disable_oom_killer().is_some()
            {
                return Err(unsupported(
                    "memory (kernel, kernelTCP, swappiness, disableOOMKiller)",
                ));
            }
        }
        if let Some(c) = r.cpu() {
            if let Some(shares) = c.shares() {
                match self.v1_dir("cpu") {
                    Some(d) => write(&d.join("cpu.shares"), &shares.to_string())?,
                    None => self.set_v2("cpu.weight", &shares_to_weight(shares).to_string())?,
                }
            }
            if c.quota().is_some() || c.period().is_some() {
                match self.v1_dir("cpu") {
                    Some(d) => {
                        if let Some(p) = c.period() {
                            write(&d.join("cpu.cfs_period_us"), &p.to_string())?;
                        }
                        if let Some(q) = c.quota() {
                            write(&d.join("cpu.cfs_quota_us"), &q.to_string())?;
                        }
                    }
                    None => {
                        let q = c
                            .quota()
                            .filter(|&q| q > 0)
                            .map(|q| q.to_string())
                            .unwrap_or_else(|| "max".into());
                        self.set_v2("cpu.max", &format!("{q} {}", c.period().unwrap_or(100_000)))?;
                    }
                }
            }
            if let Some(cpus) = c.cpus().as_ref().filter(|s| !s.is_empty()) {
                self.set_cpuset("cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems().as_ref().filter(|s| !s.is_empty()) {
                self.set_cpuset("cpuset.mems", mems)?;
            }
            if c.realtime_runtime().is_some()
                || c.realtime_period().is_some()
                || c.idle().is_some()
                || c.burst().is_some()
            {
                return Err(unsupported(
                    "cpu (realtimeRuntime, realtimePeriod, idle, burst)",
                ));
            }
        }
        if let Some(p) = r.pids() {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            match self.v1_dir("pids") {
                Some(d) => write(&d.join("pids.max"), &v)?,
                None => self.set_v2("pids.max", &v)?,
            }
        }
        self.apply_devices(r.devices().as_deref().unwrap_or(&[]), devices)
    }

    fn apply_devices(
        &self,
        rules: &[LinuxDeviceCgroup],
        devices: &[(char, i64, i64)],
    ) -> Result<()> {
        // v2 filters devices with an eBPF program; that comes with the full
        // cgroup support. On v1 the allowlist is files.
        let Some(d) = self.v1_dir("devices") else {
            return Ok(());
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
        for rule in rules {
            put(rule.allow(), &device_rule(rule))?;
        }
        for rule in DEFAULT_ALLOWED_DEVICES {
            put(true, rule)?;
        }
        for (t, major, minor) in devices {
            put(true, &format!("{t} {major}:{minor} rwm"))?;
        }
        Ok(())
    }

    fn set_v1_or_v2(&self, ctl: &str, v1: &str, v2: &str, value: i64) -> Result<()> {
        match self.v1_dir(ctl) {
            Some(d) => write(&d.join(v1), &value.to_string()),
            None => self.set_v2(v2, &max_or(value)),
        }
    }

    fn set_v2(&self, file: &str, value: &str) -> Result<()> {
        let d = self.v2.as_ref().ok_or(CgroupError::NoHierarchy)?;
        write(&d.join(file), value)
    }

    fn set_cpuset(&self, file: &str, value: &str) -> Result<()> {
        match self.v1_dir("cpuset") {
            Some(d) => write(&d.join(file), value),
            None => self.set_v2(file, value),
        }
    }
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), the conversion runc and
/// crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_convert_to_weight_at_the_ends_and_default() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
    }

    #[test]
    fn device_rules_render_as_the_kernel_reads_them() {
        let r: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}"#)
                .unwrap();
        assert_eq!(device_rule(&r), "c 1:3 rw");
        let all: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":false,"access":"rwm"}"#).unwrap();
        assert_eq!(device_rule(&all), "a *:* rwm");
    }
}
