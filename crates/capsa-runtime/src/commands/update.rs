use crate::cli::UpdateArgs;
use anyhow::{anyhow, bail, Context};
use capsa_runtime::Store;
use serde_json::{json, Map, Value};
use std::io::Read;

/// A size as runc takes it: bytes, or with a k/m/g/t suffix (powers of
/// 1024), or -1 for unlimited.
pub fn parse_size(flag: &str, s: &str) -> anyhow::Result<i64> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    capsa_spec::units::parse_size(s)
        .map(|n| n as i64)
        .map_err(|e| anyhow!("--{flag}: {e}"))
}

/// The resources the flags (over `--resources`, as runc does) ask for.
fn resources(a: &UpdateArgs) -> anyhow::Result<Value> {
    let mut r: Value = match &a.resources {
        Some(p) => {
            let mut text = String::new();
            if p.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
            }
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a linux.resources JSON object", p.display()))?
        }
        None => json!({}),
    };
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        bail!("Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported");
    }
    let obj = r
        .as_object_mut()
        .ok_or_else(|| anyhow!("--resources: not a JSON object"))?;
    let mut set = |group: &str, key: &str, v: Value| {
        let g = obj
            .entry(group.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = g.as_object_mut() {
            m.insert(key.to_string(), v);
        }
    };
    if let Some(v) = a.blkio_weight {
        set("blockIO", "weight", json!(v));
    }
    for (v, k) in [
        (a.cpu_period, "period"),
        (a.cpu_share, "shares"),
        (a.cpu_rt_period, "realtimePeriod"),
        (a.cpu_burst, "burst"),
    ] {
        if let Some(v) = v {
            set("cpu", k, json!(v));
        }
    }
    for (v, k) in [
        (a.cpu_quota, "quota"),
        (a.cpu_rt_runtime, "realtimeRuntime"),
        (a.cpu_idle, "idle"),
    ] {
        if let Some(v) = v {
            set("cpu", k, json!(v));
        }
    }
    if let Some(v) = &a.cpuset_cpus {
        set("cpu", "cpus", json!(v));
    }
    if let Some(v) = &a.cpuset_mems {
        set("cpu", "mems", json!(v));
    }
    for (v, k, flag) in [
        (&a.memory, "limit", "memory"),
        (&a.memory_reservation, "reservation", "memory-reservation"),
        (&a.memory_swap, "swap", "memory-swap"),
    ] {
        if let Some(v) = v {
            set("memory", k, json!(parse_size(flag, v)?));
        }
    }
    if let Some(v) = a.pids_limit {
        set("pids", "limit", json!(v));
    }
    Ok(r)
}

pub fn run(store: &Store, a: &UpdateArgs) -> anyhow::Result<i32> {
    let v = resources(a)?;
    let r: capsa_spec::oci::LinuxResources =
        serde_json::from_value(v).context("linux.resources")?;
    capsa_runtime::update(store, &a.id, &r)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_runc_reads_them() {
        assert_eq!(parse_size("memory", "512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("memory", "1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("memory", "1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("memory", "-1").unwrap(), -1);
        assert!(parse_size("memory", "lots").is_err());
    }
}
