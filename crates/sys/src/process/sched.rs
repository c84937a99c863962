//! Where and how the calling thread runs: its I/O priority, scheduling
//! policy, CPU affinity, NUMA memory policy and personality.

use crate::Result;
use nix::errno::Errno;
use nix::unistd::Pid;

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)` for the calling thread.
pub fn set_io_priority(class: u32, level: u32) -> Result<()> {
    let prio = ((class & 0x7) << 13) | (level & 0x1fff);
    // SAFETY: ioprio_set takes three integers.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) };
    Errno::result(r).map(drop)
}

/// The arguments of `sched_setattr(2)` (`struct sched_attr`, version 1:
/// up to the deadline fields).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// `sched_setattr(2)` for the calling thread.
pub fn set_sched_attr(a: &SchedAttr) -> Result<()> {
    #[repr(C)]
    struct Raw {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let raw = Raw {
        size: std::mem::size_of::<Raw>() as u32,
        policy: a.policy,
        flags: a.flags,
        nice: a.nice,
        priority: a.priority,
        runtime: a.runtime,
        deadline: a.deadline,
        period: a.period,
    };
    // SAFETY: the pointer is to a live struct whose size field says its
    // length (SCHED_ATTR_SIZE_VER0, 48 bytes).
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw as *const Raw, 0) };
    Errno::result(r).map(drop)
}

/// `sched_setaffinity(2)` for the calling thread; `cpus` lists CPU numbers.
pub fn set_cpu_affinity(cpus: &[usize]) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c)?;
    }
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
}

/// Every CPU number the kernel could ever bring online (`/sys/devices/
/// system/cpu/possible`, read through the CPU count the affinity mask
/// holds): an affinity of all of them lets the cgroup's cpuset decide.
pub fn possible_cpus() -> Vec<usize> {
    (0..nix::sched::CpuSet::count()).collect()
}

/// `personality(2)`.
pub fn set_personality(persona: u64) -> Result<()> {
    // SAFETY: personality takes one integer.
    let r = unsafe { libc::personality(persona as libc::c_ulong) };
    Errno::result(r).map(drop)
}

/// `set_mempolicy(2)`: `mode` ORed with its flags, and the node mask as
/// 64-bit words.
pub fn set_mempolicy(mode: i32, nodes: &[u64]) -> Result<()> {
    // The kernel reads one bit fewer than it is told (mm/mempolicy.c).
    let maxnode = (nodes.len() * 64 + 1) as libc::c_ulong;
    let ptr = if nodes.is_empty() {
        std::ptr::null()
    } else {
        nodes.as_ptr()
    };
    // SAFETY: the pointer and bit count describe a live slice (or null
    // with zero bits).
    let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    Errno::result(r).map(drop)
}
