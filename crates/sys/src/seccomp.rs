//! Loading a seccomp filter (`seccomp(SECCOMP_SET_MODE_FILTER)`).

use crate::Result;
use nix::errno::Errno;

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const Instruction,
}

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;

/// Install `filter` on the calling thread (all threads with
/// `SECCOMP_FILTER_FLAG_TSYNC` in `flags`). Needs no_new_privs or
/// CAP_SYS_ADMIN.
pub fn set_filter(flags: u32, filter: &[Instruction]) -> Result<()> {
    let len = u16::try_from(filter.len()).map_err(|_| Errno::E2BIG)?;
    let prog = SockFprog {
        len,
        filter: filter.as_ptr(),
    };
    // SAFETY: `prog` points at `filter`, which outlives the call; the kernel
    // copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const SockFprog,
        )
    };
    Errno::result(r).map(drop)
}
