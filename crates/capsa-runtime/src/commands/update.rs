use crate::cli::UpdateArgs;
use anyhow::{anyhow, bail, Context};
use capsa_runtime::Store;
use capsa_spec::oci::LinuxResources;
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

/// The resources the flags (over `--resources`, as runc does) ask for,
/// read typed from the file and set field by field.
fn resources(a: &UpdateArgs) -> anyhow::Result<LinuxResources> {
    let mut r: LinuxResources = match &a.resources {
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
        None => LinuxResources::default(),
    };
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        bail!("Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported");
    }
    if let Some(v) = a.blkio_weight {
        r.block_io_mut()
            .get_or_insert_with(Default::default)
            .set_weight(Some(v));
    }
    {
        let cpu = r.cpu_mut().get_or_insert_with(Default::default);
        if let Some(v) = a.cpu_period {
            cpu.set_period(Some(v));
        }
        if let Some(v) = a.cpu_share {
            cpu.set_shares(Some(v));
        }
        if let Some(v) = a.cpu_rt_period {
            cpu.set_realtime_period(Some(v));
        }
        if let Some(v) = a.cpu_burst {
            cpu.set_burst(Some(v));
        }
        if let Some(v) = a.cpu_quota {
            cpu.set_quota(Some(v));
        }
        if let Some(v) = a.cpu_rt_runtime {
            cpu.set_realtime_runtime(Some(v));
        }
        if let Some(v) = a.cpu_idle {
            cpu.set_idle(Some(v));
        }
        if let Some(v) = &a.cpuset_cpus {
            cpu.set_cpus(Some(v.clone()));
        }
        if let Some(v) = &a.cpuset_mems {
            cpu.set_mems(Some(v.clone()));
        }
    }
    // An empty cpu object changes nothing; it is left out as the file had it.
    if r.cpu().as_ref().is_some_and(|c| *c == Default::default()) {
        r.set_cpu(None);
    }
    {
        let mem = r.memory_mut().get_or_insert_with(Default::default);
        if let Some(v) = &a.memory {
            mem.set_limit(Some(parse_size("memory", v)?));
        }
        if let Some(v) = &a.memory_reservation {
            mem.set_reservation(Some(parse_size("memory-reservation", v)?));
        }
        if let Some(v) = &a.memory_swap {
            mem.set_swap(Some(parse_size("memory-swap", v)?));
        }
    }
    if r.memory()
        .as_ref()
        .is_some_and(|m| *m == Default::default())
    {
        r.set_memory(None);
    }
    if let Some(v) = a.pids_limit {
        r.set_pids(Some(
            capsa_spec::oci::LinuxPidsBuilder::default()
                .limit(v)
                .build()?,
        ));
    }
    Ok(r)
}

pub fn run(store: &Store, a: &UpdateArgs) -> anyhow::Result<i32> {
    let r = resources(a)?;
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
