//! Limits (`--memory`, `--cpus`, ...), devices, ulimits and sysctls.

use super::{linux, process};
use crate::error::{flag, Result};
use crate::flags::Swap;
use crate::options::{self, RunOptions};
use capsa_spec::oci;

/// The resource flags into `linux.resources` (and `--device` into
/// `linux.devices` too).
pub(super) fn apply(o: &RunOptions, spec: &mut oci::Spec) -> Result<()> {
    let mut devices = Vec::new();
    let mut allowed = Vec::new();
    for d in &o.devices {
        let (host, ctr, perms) = (&d.get().host, &d.get().container, &d.get().permissions);
        // Security (device access): a mode narrower than rwm is kept by the
        // devices cgroup, which a user namespace cannot load: rootless, it
        // would be dropped in silence, so it is refused.
        if crate::rootless::active() && {
            let mut p: Vec<char> = perms.chars().collect();
            p.sort_unstable();
            p != ['m', 'r', 'w']
        } {
            return Err(flag(
                "--device",
                format!("{host}:{ctr}:{perms}: rootless, access modes other than rwm cannot be enforced (the devices cgroup is the host root's); the device is open to the container as it is to you"),
            ));
        }
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = std::fs::metadata(host).map_err(|e| flag("--device", format!("{host}: {e}")))?;
        let ty = if m.file_type().is_char_device() {
            oci::LinuxDeviceType::C
        } else if m.file_type().is_block_device() {
            oci::LinuxDeviceType::B
        } else {
            return Err(flag("--device", format!("{host} is not a device")));
        };
        // Rootless: a user namespace may not make device nodes; the
        // host's node is bound where the container wants it (the runtime
        // would look for it at the container's path on the host).
        if crate::rootless::active() {
            super::add_mount(
                spec,
                super::mount(ctr.as_str(), "bind", host.as_str(), &["bind", "nosuid"])?,
            );
            continue;
        }
        let (major, minor) = (libc::major(m.rdev()) as i64, libc::minor(m.rdev()) as i64);
        devices.push(
            oci::LinuxDeviceBuilder::default()
                .path(ctr.as_str())
                .typ(ty)
                .major(major)
                .minor(minor)
                .file_mode(m.mode() & 0o777)
                .uid(0u32)
                .gid(0u32)
                .build()?,
        );
        allowed.push(
            oci::LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(ty)
                .major(major)
                .minor(minor)
                .access(perms.as_str())
                .build()?,
        );
    }
    let linux = linux(spec);
    if !devices.is_empty() {
        linux
            .devices_mut()
            .get_or_insert_with(Vec::new)
            .extend(devices);
    }
    let r = linux.resources_mut().get_or_insert_with(Default::default);
    r.devices_mut().get_or_insert_with(Vec::new).extend(allowed);
    if let Some(m) = &o.memory {
        let limit = m.get().0;
        let swap = match o.memory_swap.as_ref().map(|s| *s.get()) {
            None => limit * 2,
            Some(Swap::Unlimited) => -1,
            Some(Swap::Total(total)) => {
                if total < limit {
                    return Err(flag(
                        "--memory-swap",
                        "must be at least --memory (it is memory plus swap)",
                    ));
                }
                total
            }
        };
        let mem = r.memory_mut().get_or_insert_with(Default::default);
        mem.set_limit(Some(limit));
        mem.set_swap(Some(swap));
    } else if o.memory_swap.is_some() {
        return Err(flag("--memory-swap", "needs --memory"));
    }
    if let Some(soft) = o.memory_reservation {
        if o.memory.as_ref().is_some_and(|m| soft > m.get().0) {
            return Err(flag(
                "--memory-reservation",
                "must be at most --memory (it is the soft limit under it)",
            ));
        }
        r.memory_mut()
            .get_or_insert_with(Default::default)
            .set_reservation(Some(soft));
    }
    if o.oom_kill_disable {
        r.memory_mut()
            .get_or_insert_with(Default::default)
            .set_disable_oom_killer(Some(true));
    }
    if let Some(c) = &o.cpus {
        let (quota, period) = options::cpu_quota(c.get().0)?;
        let cpu = r.cpu_mut().get_or_insert_with(Default::default);
        cpu.set_quota(Some(quota));
        cpu.set_period(Some(period));
    }
    if let Some(s) = o.cpu_shares {
        if !(2..=262_144).contains(&s) {
            return Err(flag("--cpu-shares", "must be between 2 and 262144"));
        }
        r.cpu_mut()
            .get_or_insert_with(Default::default)
            .set_shares(Some(s));
    }
    if o.cpu_period.is_some() || o.cpu_quota.is_some() {
        let cpu = r.cpu_mut().get_or_insert_with(Default::default);
        if let Some(p) = o.cpu_period {
            if !(1000..=1_000_000).contains(&p) {
                return Err(flag("--cpu-period", "from 1000 to 1000000 microseconds"));
            }
            cpu.set_period(Some(p));
        }
        if let Some(q) = o.cpu_quota {
            if q != -1 && q < 1000 {
                return Err(flag(
                    "--cpu-quota",
                    "at least 1000 microseconds, or -1 for none",
                ));
            }
            cpu.set_quota(Some(q));
        }
    }
    if let Some(m) = &o.cpuset_mems {
        r.cpu_mut()
            .get_or_insert_with(Default::default)
            .set_mems(Some(m.clone()));
    }
    if let Some(s) = o.memory_swappiness {
        r.memory_mut()
            .get_or_insert_with(Default::default)
            .set_swappiness(Some(s));
    }
    if let Some(c) = &o.cpuset_cpus {
        r.cpu_mut()
            .get_or_insert_with(Default::default)
            .set_cpus(Some(c.clone()));
    }
    if let Some(p) = o.pids_limit {
        r.set_pids(Some(
            oci::LinuxPidsBuilder::default()
                .limit(if p <= 0 { -1 } else { p })
                .build()?,
        ));
    }
    if let Some(w) = o.blkio_weight {
        if !(10..=1000).contains(&w) {
            return Err(flag("--blkio-weight", "must be between 10 and 1000"));
        }
        r.block_io_mut()
            .get_or_insert_with(Default::default)
            .set_weight(Some(w));
    }
    Ok(())
}

/// `--ulimit` (replacing the default of the same type) and `--sysctl`.
pub(super) fn ulimits_and_sysctls(o: &RunOptions, spec: &mut oci::Spec) -> Result<()> {
    for u in &o.ulimits {
        let (typ, soft, hard) = (u.get().typ, u.get().soft, u.get().hard);
        let p = process(spec);
        let mut list = p.rlimits().clone().unwrap_or_default();
        list.retain(|r| r.typ() != typ);
        list.push(
            oci::PosixRlimitBuilder::default()
                .typ(typ)
                .soft(soft)
                .hard(hard)
                .build()?,
        );
        p.set_rlimits(Some(list));
    }
    for s in &o.sysctls {
        let (k, v) = (s.get().key.clone(), s.get().value.clone());
        // Security: a sysctl is written into the namespace it belongs to;
        // one the container shares (the host's, another container's)
        // would change the host or that container. The hostname is -h's.
        use crate::flags::NsMode;
        let own = |m: Option<NsMode>| matches!(m, None | Some(NsMode::Private | NsMode::NoShm));
        let ok = if k == "kernel.hostname" {
            return Err(flag(
                "--sysctl",
                "kernel.hostname: give -h/--hostname instead",
            ));
        } else if k.starts_with("net.") {
            matches!(
                crate::options::mode(o.network.as_deref()),
                crate::options::NetworkMode::None
                    | crate::options::NetworkMode::Bridge(_)
                    | crate::options::NetworkMode::Pasta
            )
        } else if k == "kernel.domainname" {
            own(o.uts.as_ref().map(|f| f.get().0.clone()))
        } else {
            own(o.ipc.as_ref().map(|f| f.get().0.clone()))
        };
        if !ok {
            return Err(flag(
                "--sysctl",
                format!("{k}: its namespace is shared (--network, --ipc or --uts host or container:): it would change the host or the other container"),
            ));
        }
        linux(spec)
            .sysctl_mut()
            .get_or_insert_with(Default::default)
            .insert(k, v);
    }
    Ok(())
}
