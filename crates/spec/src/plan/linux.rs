//! `linux` fields read into what the kernel takes: personality, memory
//! policy, and what capsa refuses by name.

#[allow(unused_imports)]
use super::*;

/// Parts of the spec capsa cannot apply: refused, never silently dropped.
pub(super) fn refuse_unsupported(linux: &oci::Linux) -> Result<(), SpecError> {
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(SpecError::invalid(
            "linux.netDevices",
            "moving network devices into the container is not supported",
        ));
    }
    if linux.intel_rdt().is_some() {
        return Err(SpecError::invalid(
            "linux.intelRdt",
            "Intel RDT (resctrl) is not supported",
        ));
    }
    Ok(())
}

pub(super) fn personality(linux: &oci::Linux) -> Result<Option<u64>, SpecError> {
    let Some(p) = linux.personality() else {
        return Ok(None);
    };
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(SpecError::invalid(
            "linux.personality.flags",
            "no personality flags are supported",
        ));
    }
    Ok(Some(match p.domain() {
        oci::LinuxPersonalityDomain::PerLinux => 0x0000,
        oci::LinuxPersonalityDomain::PerLinux32 => 0x0008,
    }))
}

pub(super) fn memory_policy(linux: &oci::Linux) -> Result<Option<(i32, Vec<u64>)>, SpecError> {
    use oci::{MemoryPolicyFlagType as F, MemoryPolicyModeType as M};
    let Some(m) = linux.memory_policy() else {
        return Ok(None);
    };
    let mode = match m.mode() {
        M::MpolDefault => 0,
        M::MpolPreferred => 1,
        M::MpolBind => 2,
        M::MpolInterleave => 3,
        M::MpolLocal => 4,
        M::MpolPreferredMany => 5,
        M::MpolWeightedInterleave => 6,
    };
    let flags = m.flags().iter().flatten().fold(0, |acc, f| {
        acc | match f {
            F::MpolFNumaBalancing => 1 << 13,
            F::MpolFRelativeNodes => 1 << 14,
            F::MpolFStaticNodes => 1 << 15,
        }
    });
    let nodes = cpu_list(m.nodes(), "linux.memoryPolicy.nodes")?.unwrap_or_default();
    let needs_nodes = !matches!(m.mode(), M::MpolDefault | M::MpolLocal);
    if needs_nodes == nodes.is_empty() {
        return Err(SpecError::invalid(
            "linux.memoryPolicy.nodes",
            if needs_nodes {
                "this mode needs nodes"
            } else {
                "MPOL_DEFAULT and MPOL_LOCAL take no nodes"
            },
        ));
    }
    let mut mask = vec![0u64; nodes.iter().max().map_or(0, |n| n / 64 + 1)];
    for n in nodes {
        mask[n / 64] |= 1 << (n % 64);
    }
    Ok(Some((mode | flags, mask)))
}
