//! memory: limits, swap, reservation, swappiness, the OOM killer.

#[allow(unused_imports)]
use super::*;

impl Planner<'_> {
    pub(super) fn memory(&mut self, r: &LinuxResources) -> Result<()> {
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
}
