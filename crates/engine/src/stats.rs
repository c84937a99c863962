//! `capsa stats`: each container's usage, and its CPU share between two
//! samples, as docker reports them.

use crate::container::Container;
use crate::inspect::{sample, Sample};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// One container's usage, in docker's field names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stats {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    /// Percent of one CPU since the previous sample (`None` at the first).
    #[serde(rename = "CPUPerc")]
    pub cpu_percent: Option<f64>,
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub mem_perc: f64,
    pub net_input: u64,
    pub net_output: u64,
    pub block_input: u64,
    pub block_output: u64,
    #[serde(rename = "PIDs")]
    pub pids: u64,
    /// The CPUs the host has (100 % a CPU each).
    #[serde(rename = "CPUs")]
    pub cpus: usize,
}

/// Samples containers again and again, keeping each one's last CPU time.
#[derive(Debug, Default)]
pub struct Sampler {
    prev: HashMap<String, (u64, Instant)>,
}

impl Sampler {
    /// The stats of each of `cs` that can be read now (a container that
    /// stopped meanwhile is left out).
    pub fn sample(&mut self, cs: &[Container]) -> Vec<Stats> {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        cs.iter()
            .filter_map(|c| {
                let s = sample(c).ok()?;
                let now = Instant::now();
                let cpu = self
                    .prev
                    .insert(c.id.clone(), (s.cpu_ns, now))
                    .map(|(ns, t)| cpu_percent(ns, s.cpu_ns, now.duration_since(t)));
                Some(stats(c, &s, cpu, cpus))
            })
            .collect()
    }
}

/// CPU time used between two samples, as a percent of one CPU.
pub fn cpu_percent(before_ns: u64, after_ns: u64, elapsed: std::time::Duration) -> f64 {
    let dt = elapsed.as_nanos() as f64;
    if dt > 0.0 {
        after_ns.saturating_sub(before_ns) as f64 / dt * 100.0
    } else {
        0.0
    }
}

fn stats(c: &Container, s: &Sample, cpu: Option<f64>, cpus: usize) -> Stats {
    Stats {
        id: c.short_id().to_string(),
        name: c.name.clone(),
        cpu_percent: cpu,
        mem_usage: s.mem_usage,
        mem_limit: s.mem_limit,
        mem_perc: s.mem_usage as f64 / s.mem_limit.max(1) as f64 * 100.0,
        net_input: s.net_rx,
        net_output: s.net_tx,
        block_input: s.blk_read,
        block_output: s.blk_write,
        pids: s.pids,
        cpus,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cpu_percent_is_of_one_cpu_and_never_negative() {
        let half = cpu_percent(1_000_000, 501_000_000, Duration::from_secs(1));
        assert!((half - 50.0).abs() < 1e-9, "{half}");
        assert_eq!(cpu_percent(5, 3, Duration::from_secs(1)), 0.0);
        assert_eq!(cpu_percent(0, 10, Duration::ZERO), 0.0);
    }
}
