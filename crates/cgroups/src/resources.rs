//! `linux.resources` written as cgroup files, v1 or v2 per controller.
//!
//! Every write is planned first, so that a field the host cannot honour is
//! refused (naming the field) before any file changes; then the plan is
//! written in order. Conversions between v1 and v2 values are the ones runc
//! and crun use.

use crate::{write, Cgroup, CgroupError, Result};
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

    fn cpu(&mut self, r: &LinuxResources) -> Result<()> {
        let Some(c) = r.cpu() else { return Ok(()) };
        let any_cpu = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
            || c.idle().is_some();
        if any_cpu {
            match self.place("cpu", "cpu")? {
                Place::V1(d) => {
                    if let Some(s) = c.shares() {
                        self.put(d, "cpu.shares", s.to_string(), "cpu.shares");
                    }
                    // The kernel checks quota/period against the parent's
                    // at each write: a shorter period goes after the quota
                    // (the old quota over the new period could exceed
                    // it), a longer one before.
                    let current = read_num(&d.join("cpu.cfs_period_us")).unwrap_or(100_000);
                    let quota_first =
                        c.quota().is_some() && c.period().is_some_and(|p| (p as i64) < current);
                    if quota_first {
                        if let Some(q) = c.quota() {
                            self.put(d, "cpu.cfs_quota_us", q.to_string(), "cpu.quota");
                        }
                    }
                    if let Some(p) = c.period() {
                        self.put(d, "cpu.cfs_period_us", p.to_string(), "cpu.period");
                    }
                    if !quota_first {
                        if let Some(q) = c.quota() {
                            self.put(d, "cpu.cfs_quota_us", q.to_string(), "cpu.quota");
                        }
                    }
                    if let Some(b) = c.burst() {
                        self.put_existing(d, "cpu.cfs_burst_us", b.to_string(), "cpu.burst")?;
                    }
                    // The period first: the kernel checks the runtime against it.
                    if let Some(p) = c.realtime_period() {
                        self.put_existing(
                            d,
                            "cpu.rt_period_us",
                            p.to_string(),
                            "cpu.realtimePeriod",
                        )?;
                    }
                    if let Some(rt) = c.realtime_runtime() {
                        self.put_existing(
                            d,
                            "cpu.rt_runtime_us",
                            rt.to_string(),
                            "cpu.realtimeRuntime",
                        )?;
                    }
                    if let Some(i) = c.idle() {
                        self.put_existing(d, "cpu.idle", i.to_string(), "cpu.idle")?;
                    }
                }
                Place::V2(d) => {
                    if let Some(s) = c.shares() {
                        self.put(
                            d,
                            "cpu.weight",
                            shares_to_weight(s).to_string(),
                            "cpu.shares",
                        );
                    }
                    if c.quota().is_some() || c.period().is_some() {
                        let q = c
                            .quota()
                            .filter(|&q| q > 0)
                            .map(|q| q.to_string())
                            .unwrap_or_else(|| "max".into());
                        self.put(
                            d,
                            "cpu.max",
                            format!("{q} {}", c.period().unwrap_or(100_000)),
                            "cpu.quota",
                        );
                    }
                    if let Some(b) = c.burst() {
                        self.put_existing(d, "cpu.max.burst", b.to_string(), "cpu.burst")?;
                    }
                    if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
                        return Err(refuse(
                            "cpu.realtimeRuntime",
                            "cgroup v2 has no real-time cpu budget",
                        ));
                    }
                    if let Some(i) = c.idle() {
                        self.put_existing(d, "cpu.idle", i.to_string(), "cpu.idle")?;
                    }
                }
            }
        }
        for (value, file, field) in [
            (c.cpus(), "cpuset.cpus", "cpu.cpus"),
            (c.mems(), "cpuset.mems", "cpu.mems"),
        ] {
            if let Some(v) = value.as_ref().filter(|s| !s.is_empty()) {
                let (Place::V1(d) | Place::V2(d)) = self.place("cpuset", field)?;
                self.put(d, file, v.clone(), field);
            }
        }
        Ok(())
    }

    fn memory(&mut self, r: &LinuxResources) -> Result<()> {
        let Some(m) = r.memory() else { return Ok(()) };
        match self.place("memory", "memory")? {
            Place::V1(d) => {
                if m.check_before_update() == Some(true) {
                    if let Some(limit) = m.limit().filter(|&l| l > 0) {
                        let usage: i64 = read_num(&d.join("memory.usage_in_bytes")).unwrap_or(0);
                        if limit < usage {
                            return Err(refuse("memory.limit", format!("{limit} is below the current usage {usage} (checkBeforeUpdate)")));
                        }
                    }
                }
                // memsw must stay >= limit at every step: raise memsw
                // first when the limit grows, else the limit first.
                let current: i64 = read_num(&d.join("memory.limit_in_bytes")).unwrap_or(i64::MAX);
                let grows = m.limit().is_some_and(|l| l < 0 || l > current);
                // An unlimited memory with no word on swap lifts the swap
                // limit too, as runc does: memsw may not stay below it.
                let swap = match m.swap() {
                    None if m.limit() == Some(-1)
                        && d.join("memory.memsw.limit_in_bytes").exists() =>
                    {
                        Some(-1)
                    }
                    s => s,
                };
                if grows {
                    if let Some(s) = swap {
                        self.put(
                            d,
                            "memory.memsw.limit_in_bytes",
                            s.to_string(),
                            "memory.swap",
                        );
                    }
                }
                if let Some(l) = m.limit() {
                    self.put(d, "memory.limit_in_bytes", l.to_string(), "memory.limit");
                }
                if !grows {
                    if let Some(s) = swap {
                        self.put_existing(
                            d,
                            "memory.memsw.limit_in_bytes",
                            s.to_string(),
                            "memory.swap",
                        )?;
                    }
                }
                if let Some(v) = m.reservation() {
                    self.put(
                        d,
                        "memory.soft_limit_in_bytes",
                        v.to_string(),
                        "memory.reservation",
                    );
                }
                if let Some(v) = m.kernel() {
                    self.put_existing(
                        d,
                        "memory.kmem.limit_in_bytes",
                        v.to_string(),
                        "memory.kernel",
                    )?;
                }
                if let Some(v) = m.kernel_tcp() {
                    self.put_existing(
                        d,
                        "memory.kmem.tcp.limit_in_bytes",
                        v.to_string(),
                        "memory.kernelTCP",
                    )?;
                }
                if let Some(v) = m.swappiness() {
                    if v > 100 {
                        return Err(refuse("memory.swappiness", format!("{v} is above 100")));
                    }
                    self.put(d, "memory.swappiness", v.to_string(), "memory.swappiness");
                }
                if m.disable_oom_killer() == Some(true) {
                    self.put(d, "memory.oom_control", "1", "memory.disableOOMKiller");
                }
                if let Some(h) = m.use_hierarchy() {
                    self.put_existing(
                        d,
                        "memory.use_hierarchy",
                        if h { "1" } else { "0" },
                        "memory.useHierarchy",
                    )?;
                }
            }
            Place::V2(d) => {
                if m.check_before_update() == Some(true) {
                    if let Some(limit) = m.limit().filter(|&l| l > 0) {
                        let usage: i64 = read_num(&d.join("memory.current")).unwrap_or(0);
                        if limit < usage {
                            return Err(refuse("memory.limit", format!("{limit} is below the current usage {usage} (checkBeforeUpdate)")));
                        }
                    }
                }
                if let Some(l) = m.limit() {
                    self.put(d, "memory.max", max_or(l), "memory.limit");
                }
                if let Some(s) = m.swap() {
                    // v2 counts swap alone; the spec's value is memory+swap.
                    let v = match m.limit() {
                        _ if s < 0 => "max".to_string(),
                        Some(l) if l > 0 => {
                            if s < l {
                                return Err(refuse(
                                    "memory.swap",
                                    format!("memory+swap {s} is below the memory limit {l}"),
                                ));
                            }
                            (s - l).to_string()
                        }
                        _ => {
                            return Err(refuse(
                                "memory.swap",
                                "on cgroup v2 a swap limit needs a memory limit",
                            ))
                        }
                    };
                    self.put_existing(d, "memory.swap.max", v, "memory.swap")?;
                }
                if let Some(v) = m.reservation() {
                    self.put(d, "memory.low", max_or(v), "memory.reservation");
                }
                if m.kernel().is_some() || m.kernel_tcp().is_some() {
                    return Err(refuse(
                        "memory.kernel",
                        "cgroup v2 has no separate kernel memory limit",
                    ));
                }
                if m.swappiness().is_some() {
                    return Err(refuse(
                        "memory.swappiness",
                        "cgroup v2 has no per-cgroup swappiness",
                    ));
                }
                if m.disable_oom_killer() == Some(true) {
                    return Err(refuse(
                        "memory.disableOOMKiller",
                        "cgroup v2 cannot disable the OOM killer",
                    ));
                }
                if m.use_hierarchy() == Some(false) {
                    return Err(refuse(
                        "memory.useHierarchy",
                        "cgroup v2 is always hierarchical",
                    ));
                }
            }
        }
        Ok(())
    }

    fn pids(&mut self, r: &LinuxResources) -> Result<()> {
        let Some(p) = r.pids() else { return Ok(()) };
        let (Place::V1(d) | Place::V2(d)) = self.place("pids", "pids")?;
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        self.put(d, "pids.max", v, "pids.limit");
        Ok(())
    }

    fn block_io(&mut self, r: &LinuxResources) -> Result<()> {
        let Some(b) = r.block_io() else { return Ok(()) };
        let throttles: [(&Option<Vec<LinuxThrottleDevice>>, &str, &str, &str); 4] = [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
                "rbps",
                "blockIO.throttleReadBpsDevice",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
                "wbps",
                "blockIO.throttleWriteBpsDevice",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
                "riops",
                "blockIO.throttleReadIOPSDevice",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
                "wiops",
                "blockIO.throttleWriteIOPSDevice",
            ),
        ];
        match self.place(
            if self.cg.v1_dir("blkio").is_some() {
                "blkio"
            } else {
                "io"
            },
            "blockIO",
        )? {
            Place::V1(d) => {
                if let Some(w) = b.weight() {
                    let file = if d.join("blkio.weight").exists() {
                        "blkio.weight"
                    } else {
                        "blkio.bfq.weight"
                    };
                    self.put_existing(d, file, w.to_string(), "blockIO.weight")?;
                }
                if let Some(w) = b.leaf_weight() {
                    self.put_existing(d, "blkio.leaf_weight", w.to_string(), "blockIO.leafWeight")?;
                }
                for (i, wd) in b.weight_device().iter().flatten().enumerate() {
                    let field = format!("blockIO.weightDevice[{i}]");
                    if let Some(w) = wd.weight() {
                        let file = if d.join("blkio.weight_device").exists() {
                            "blkio.weight_device"
                        } else {
                            "blkio.bfq.weight_device"
                        };
                        self.put_existing(
                            d,
                            file,
                            format!("{}:{} {w}", wd.major(), wd.minor()),
                            &field,
                        )?;
                    }
                    if let Some(w) = wd.leaf_weight() {
                        self.put_existing(
                            d,
                            "blkio.leaf_weight_device",
                            format!("{}:{} {w}", wd.major(), wd.minor()),
                            &field,
                        )?;
                    }
                }
                for (list, file, _, field) in throttles {
                    for (i, t) in list.iter().flatten().enumerate() {
                        self.put_existing(
                            d,
                            file,
                            format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                            &format!("{field}[{i}]"),
                        )?;
                    }
                }
            }
            Place::V2(d) => {
                if let Some(w) = b.weight() {
                    if d.join("io.bfq.weight").exists() {
                        self.put(d, "io.bfq.weight", w.to_string(), "blockIO.weight");
                    } else {
                        self.put_existing(
                            d,
                            "io.weight",
                            format!("default {}", blkio_to_io_weight(w)),
                            "blockIO.weight",
                        )?;
                    }
                }
                if b.leaf_weight().is_some() {
                    return Err(refuse("blockIO.leafWeight", "cgroup v2 has no leaf weight"));
                }
                // A device's weight needs BFQ (its own 1..1000 scale, as
                // runc writes it) or io.cost enabled on that device.
                let bfq = d.join("io.bfq.weight").exists();
                for (i, wd) in b.weight_device().iter().flatten().enumerate() {
                    if let Some(w) = wd.weight() {
                        let (file, w) = if bfq {
                            ("io.bfq.weight", u64::from(w))
                        } else {
                            ("io.weight", blkio_to_io_weight(w))
                        };
                        self.put_existing(
                            d,
                            file,
                            format!("{}:{} {w}", wd.major(), wd.minor()),
                            &format!("blockIO.weightDevice[{i}]"),
                        )?;
                    }
                    if wd.leaf_weight().is_some() {
                        return Err(refuse(
                            &format!("blockIO.weightDevice[{i}].leafWeight"),
                            "cgroup v2 has no leaf weight",
                        ));
                    }
                }
                for (list, _, key, field) in throttles {
                    for (i, t) in list.iter().flatten().enumerate() {
                        self.put(
                            d,
                            "io.max",
                            format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
                            &format!("{field}[{i}]"),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn hugetlb(&mut self, r: &LinuxResources) -> Result<()> {
        for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
            let field = format!("hugepageLimits[{i}]");
            let size = h.page_size();
            if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(refuse(&field, format!("bad page size {size:?}")));
            }
            match self.place("hugetlb", &field)? {
                Place::V1(d) => self.put_existing(
                    d,
                    &format!("hugetlb.{size}.limit_in_bytes"),
                    h.limit().to_string(),
                    &field,
                )?,
                Place::V2(d) => {
                    self.put_existing(d, &format!("hugetlb.{size}.max"), max_or(h.limit()), &field)?
                }
            }
        }
        Ok(())
    }

    fn network(&mut self, r: &LinuxResources) -> Result<()> {
        let Some(n) = r.network() else { return Ok(()) };
        if let Some(id) = n.class_id() {
            match self.cg.v1_dir("net_cls") {
                Some(d) => self.put(d, "net_cls.classid", id.to_string(), "network.classID"),
                None => {
                    return Err(refuse(
                        "network.classID",
                        "the net_cls controller (cgroup v1 only) is not mounted",
                    ))
                }
            }
        }
        for (i, p) in n.priorities().iter().flatten().enumerate() {
            let field = format!("network.priorities[{i}]");
            match self.cg.v1_dir("net_prio") {
                Some(d) => self.put(
                    d,
                    "net_prio.ifpriomap",
                    format!("{} {}", p.name(), p.priority()),
                    &field,
                ),
                None => {
                    return Err(refuse(
                        &field,
                        "the net_prio controller (cgroup v1 only) is not mounted",
                    ))
                }
            }
        }
        Ok(())
    }

    fn rdma(&mut self, r: &LinuxResources) -> Result<()> {
        let Some(map) = r.rdma() else { return Ok(()) };
        let mut names: Vec<&String> = map.keys().collect();
        names.sort();
        for name in names {
            let v = &map[name];
            let field = format!("rdma.{name}");
            let (Place::V1(d) | Place::V2(d)) = self.place("rdma", &field)?;
            let mut parts = vec![name.clone()];
            if let Some(h) = v.hca_handles() {
                parts.push(format!("hca_handle={h}"));
            }
            if let Some(o) = v.hca_objects() {
                parts.push(format!("hca_object={o}"));
            }
            self.put(d, "rdma.max", parts.join(" "), &field);
        }
        Ok(())
    }

    fn unified(&mut self, r: &LinuxResources) -> Result<()> {
        let Some(u) = r.unified() else { return Ok(()) };
        let mut keys: Vec<&String> = u.keys().collect();
        keys.sort();
        for key in keys {
            let field = format!("unified.{key}");
            let Some(d) = self.cg.v2.as_deref() else {
                return Err(refuse(
                    &field,
                    "there is no cgroup v2 hierarchy on this host",
                ));
            };
            if key.contains('/') || key.starts_with('.') || !key.contains('.') {
                return Err(refuse(&field, "not a cgroup file name"));
            }
            // Security (a spec that moves host processes): the core's
            // files are not limits. `cgroup.procs` or `cgroup.threads`
            // written by the host's root would pull any host pid into the
            // container's cgroup, under its limits and its kill; only the
            // two that are limits pass.
            if key.starts_with("cgroup.")
                && key != "cgroup.max.depth"
                && key != "cgroup.max.descendants"
            {
                return Err(refuse(
                    &field,
                    "only cgroup.max.depth and cgroup.max.descendants of the cgroup core's files are limits",
                ));
            }
            // A controller file of a controller we have on v1 would be
            // applied twice and disagree: refuse.
            let ctl = key.split('.').next().unwrap_or_default();
            if self.cg.v1_dir(ctl).is_some() {
                return Err(refuse(
                    &field,
                    // runc's words lead, for the tools that match them.
                    format!(
                        "invalid configuration: the {ctl} controller is on cgroup v1 on this host"
                    ),
                ));
            }
            if let Some(m) = self.missing.as_mut() {
                // `cgroup.*` files are the core's, not a controller's.
                if ctl != "cgroup"
                    && !m.iter().any(|c| c == ctl)
                    && !crate::v2_controllers(d).iter().any(|c| c == ctl)
                {
                    m.push(ctl.to_string());
                }
                continue;
            }
            self.put_existing(d, key, u[key].clone(), &field)?;
        }
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
                Some(v2) => crate::devices::attach_filter(v2, rules),
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
mod tests {
    use super::*;
    use crate::hierarchy::{Hierarchy, V1Mount};

    #[test]
    fn an_empty_cpuset_parent_is_filled_before_its_child() {
        // As a concurrent create leaves it: the parent made, not yet filled.
        let root = std::env::temp_dir().join(format!("capsa-cpuset-{}", std::process::id()));
        let (parent, child) = (root.join("p"), root.join("p/c"));
        std::fs::create_dir_all(&child).unwrap();
        for (d, cpus, mems) in [(&root, "0-1", "0"), (&parent, "", ""), (&child, "", "")] {
            std::fs::write(d.join("cpuset.cpus"), cpus).unwrap();
            std::fs::write(d.join("cpuset.mems"), mems).unwrap();
        }
        inherit_cpuset(&child).unwrap();
        for d in [&parent, &child] {
            assert_eq!(
                std::fs::read_to_string(d.join("cpuset.cpus")).unwrap(),
                "0-1"
            );
            assert_eq!(std::fs::read_to_string(d.join("cpuset.mems")).unwrap(), "0");
        }
        // One already set is left alone.
        std::fs::write(child.join("cpuset.cpus"), "1").unwrap();
        inherit_cpuset(&child).unwrap();
        assert_eq!(
            std::fs::read_to_string(child.join("cpuset.cpus")).unwrap(),
            "1"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn shares_convert_to_weight_at_the_ends_and_default() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
    }

    #[test]
    fn device_rules_render_as_the_kernel_reads_them() {
        let r: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}"#)
                .unwrap();
        assert_eq!(device_rule(&r).as_deref(), Some("c 1:3 rw"));
        let all: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":false,"access":"rwm"}"#).unwrap();
        assert_eq!(device_rule(&all).as_deref(), Some("a *:* rwm"));
    }

    /// A fake pure-v2 cgroup with the given controllers and files.
    fn fake_v2(name: &str, controllers: &str, files: &[&str]) -> (PathBuf, Cgroup) {
        let root = std::env::temp_dir().join(format!("capsa-cg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("c");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
        for f in files {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let h = Hierarchy {
            v1: vec![],
            v2: Some(root.clone()),
        };
        (root, Cgroup::new(&h, Path::new("/c")))
    }

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn values(plan: &[FileWrite]) -> Vec<(String, String)> {
        plan.iter()
            .map(|w| {
                (
                    w.path.file_name().unwrap().to_string_lossy().into_owned(),
                    w.value.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn v2_values_follow_runc_conversions() {
        let (root, cg) = fake_v2(
            "v2",
            "cpu cpuset memory pids io hugetlb",
            &[
                "memory.swap.max",
                "io.weight",
                "hugetlb.2MB.max",
                "cpu.max.burst",
            ],
        );
        let r = res(r#"{
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "cpus": "0"},
            "memory": {"limit": 1048576, "swap": 3145728, "reservation": 524288},
            "pids": {"limit": 0},
            "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]
        }"#);
        let v = values(&cg.plan(&r).unwrap());
        let want: Vec<(String, String)> = [
            ("cpu.weight", "39"),
            ("cpu.max", "50000 100000"),
            ("cpu.max.burst", "1000"),
            ("cpuset.cpus", "0"),
            ("memory.max", "1048576"),
            ("memory.swap.max", "2097152"),
            ("memory.low", "524288"),
            ("pids.max", "max"),
            ("io.weight", "default 4950"),
            ("io.max", "8:0 rbps=1000"),
            ("hugetlb.2MB.max", "4194304"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(v, want);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn device_weights_go_to_bfq_on_its_scale_where_bfq_is() {
        let json = r#"{"blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}]}}"#;
        let (root, cg) = fake_v2("bfq", "io", &["io.weight", "io.bfq.weight"]);
        assert_eq!(
            values(&cg.plan(&res(json)).unwrap()),
            [
                ("io.bfq.weight".to_string(), "300".to_string()),
                ("io.bfq.weight".to_string(), "8:0 200".to_string())
            ]
        );
        std::fs::remove_dir_all(root).unwrap();
        let (root, cg) = fake_v2("iocost", "io", &["io.weight"]);
        assert_eq!(
            values(&cg.plan(&res(json)).unwrap()),
            [
                ("io.weight".to_string(), "default 2930".to_string()),
                ("io.weight".to_string(), "8:0 1920".to_string())
            ]
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn zero_means_unset_as_docker_sends_it() {
        let (root, cg) = fake_v2("zeros", "cpu memory io", &[]);
        let plan = cg.plan(&res(r#"{"cpu": {"shares": 0, "quota": 0, "period": 0}, "memory": {"limit": 0, "swap": 0}, "blockIO": {"weight": 0}}"#)).unwrap();
        assert_eq!(plan, vec![]);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn v2_refuses_what_it_cannot_honour_naming_the_field() {
        let (root, cg) = fake_v2("v2refuse", "cpu memory", &[]);
        for (json, field) in [
            (
                r#"{"memory": {"kernel": 1000}}"#,
                "linux.resources.memory.kernel",
            ),
            (
                r#"{"memory": {"swappiness": 10}}"#,
                "linux.resources.memory.swappiness",
            ),
            (
                r#"{"cpu": {"realtimeRuntime": 10}}"#,
                "linux.resources.cpu.realtimeRuntime",
            ),
            (r#"{"pids": {"limit": 10}}"#, "linux.resources.pids"),
            (
                r#"{"network": {"classID": 1}}"#,
                "linux.resources.network.classID",
            ),
            (
                r#"{"unified": {"memory.high": "1"}}"#,
                "linux.resources.unified.memory.high",
            ),
            (
                r#"{"unified": {"cgroup.procs": "1"}}"#,
                "linux.resources.unified.cgroup.procs",
            ),
            (
                r#"{"unified": {"cgroup.threads": "1"}}"#,
                "linux.resources.unified.cgroup.threads",
            ),
        ] {
            let e = cg.plan(&res(json)).unwrap_err().to_string();
            assert!(e.starts_with(field), "{json}: {e}");
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn v1_memory_orders_limit_and_swap_so_memsw_never_drops_below() {
        let root = std::env::temp_dir().join(format!("capsa-cg-v1mem-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("memory/c");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.limit_in_bytes"), "1000\n").unwrap();
        std::fs::write(dir.join("memory.memsw.limit_in_bytes"), "2000\n").unwrap();
        let h = Hierarchy {
            v1: vec![V1Mount {
                controllers: vec!["memory".into()],
                mountpoint: root.join("memory"),
            }],
            v2: None,
        };
        let cg = Cgroup::new(&h, Path::new("/c"));
        let grow = values(
            &cg.plan(&res(r#"{"memory": {"limit": 5000, "swap": 8000}}"#))
                .unwrap(),
        );
        assert_eq!(grow[0].0, "memory.memsw.limit_in_bytes");
        let shrink = values(
            &cg.plan(&res(r#"{"memory": {"limit": 500, "swap": 800}}"#))
                .unwrap(),
        );
        assert_eq!(shrink[0].0, "memory.limit_in_bytes");
        // Unlimited memory lifts swap too, swap first.
        let unlimited = values(&cg.plan(&res(r#"{"memory": {"limit": -1}}"#)).unwrap());
        assert_eq!(
            unlimited[..2],
            [
                ("memory.memsw.limit_in_bytes".to_string(), "-1".to_string()),
                ("memory.limit_in_bytes".to_string(), "-1".to_string())
            ]
        );
        std::fs::write(dir.join("memory.usage_in_bytes"), "900\n").unwrap();
        let e = cg
            .plan(&res(
                r#"{"memory": {"limit": 800, "checkBeforeUpdate": true}}"#,
            ))
            .unwrap_err()
            .to_string();
        assert!(e.contains("below the current usage"), "{e}");
        std::fs::remove_dir_all(root).unwrap();
    }
}
