//! cpu and cpuset, and the pids limit.

#[allow(unused_imports)]
use super::*;

impl Planner<'_> {
    pub(super) fn cpu(&mut self, r: &LinuxResources) -> Result<()> {
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

    pub(super) fn pids(&mut self, r: &LinuxResources) -> Result<()> {
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
}
