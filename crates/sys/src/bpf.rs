//! The two bpf(2) commands the v2 device filter needs: load a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program and attach it to a cgroup.

use crate::Result;
use nix::errno::Errno;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst register in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

fn put_u32(buf: &mut [u8; 128], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(buf: &mut [u8; 128], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

fn bpf(cmd: libc::c_int, attr: &mut [u8; 128]) -> Result<libc::c_long> {
    // SAFETY: `attr` is a zero-padded union bpf_attr of the size passed;
    // pointers inside it refer to buffers the caller keeps alive.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    Errno::result(r)
}

/// Load a cgroup device program; on failure the verifier's log comes back
/// in the error string.
pub fn load_device_program(insns: &[Insn]) -> std::result::Result<OwnedFd, (Errno, String)> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 16 * 1024];
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE);
    put_u32(&mut attr, 4, insns.len() as u32);
    put_u64(&mut attr, 8, insns.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    put_u32(&mut attr, 24, 1);
    put_u32(&mut attr, 28, log.len() as u32);
    put_u64(&mut attr, 32, log.as_mut_ptr() as u64);
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: the kernel returned a new fd that nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err((e, String::from_utf8_lossy(&log[..end]).into_owned()))
        }
    }
}

/// Attach a device program to the cgroup directory `cgroup` (alongside
/// others: `BPF_F_ALLOW_MULTI`, as runc does).
pub fn attach_device_program(cgroup: RawFd, prog: RawFd) -> Result<()> {
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, cgroup as u32);
    put_u32(&mut attr, 4, prog as u32);
    put_u32(&mut attr, 8, BPF_CGROUP_DEVICE);
    put_u32(&mut attr, 12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// Detach a device program from a cgroup.
pub fn detach_device_program(cgroup: RawFd, prog: RawFd) -> Result<()> {
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, cgroup as u32);
    put_u32(&mut attr, 4, prog as u32);
    put_u32(&mut attr, 8, BPF_CGROUP_DEVICE);
    bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;

/// Ids of the device programs attached to a cgroup (`BPF_PROG_QUERY`).
pub fn query_device_programs(cgroup: RawFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = [0u8; 128];
    // struct { u32 target_fd; u32 attach_type; u32 query_flags;
    //          u32 attach_flags; u64 prog_ids; u32 prog_cnt; }
    put_u32(&mut attr, 0, cgroup as u32);
    put_u32(&mut attr, 4, BPF_CGROUP_DEVICE);
    put_u64(&mut attr, 16, ids.as_mut_ptr() as u64);
    put_u32(&mut attr, 24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut attr)?;
    let count = u32::from_ne_bytes([attr[24], attr[25], attr[26], attr[27]]) as usize;
    ids.truncate(count.min(64));
    Ok(ids)
}

/// An fd for the program with this id (`BPF_PROG_GET_FD_BY_ID`).
pub fn program_by_id(id: u32) -> Result<OwnedFd> {
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, id);
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
