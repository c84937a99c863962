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

/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`: seccomp(2) returns a notify fd.
pub const FLAG_NEW_LISTENER: u32 = 8;

/// Install `filter` on the calling thread (all threads with
/// `SECCOMP_FILTER_FLAG_TSYNC` in `flags`). Needs no_new_privs or
/// CAP_SYS_ADMIN. With [`FLAG_NEW_LISTENER`], returns the listener fd a
/// seccomp agent answers notifications on.
pub fn set_filter(flags: u32, filter: &[Instruction]) -> Result<Option<std::os::fd::OwnedFd>> {
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
    let r = Errno::result(r)?;
    if flags & FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER the kernel returned a new fd that we own.
    Ok(Some(unsafe {
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(r as i32)
    }))
}

/// One notification read from a listener: (id, pid, syscall number).
pub fn notify_receive(listener: i32) -> Result<(u64, u32, i32)> {
    // struct seccomp_notif: id, pid, flags, then struct seccomp_data.
    let mut buf = [0u8; 80];
    // SAFETY: SECCOMP_IOCTL_NOTIF_RECV writes one seccomp_notif (80 bytes)
    // into the zeroed buffer.
    let r = unsafe { libc::ioctl(listener, 0xc050_2100u64 as _, buf.as_mut_ptr()) };
    Errno::result(r)?;
    let id = u64::from_ne_bytes(buf[0..8].try_into().unwrap_or_default());
    let pid = u32::from_ne_bytes(buf[8..12].try_into().unwrap_or_default());
    let nr = i32::from_ne_bytes(buf[16..20].try_into().unwrap_or_default());
    Ok((id, pid, nr))
}

/// Answer notification `id`: the call returns -`error` (or `val` when
/// `error` is 0).
pub fn notify_respond(listener: i32, id: u64, val: i64, error: i32) -> Result<()> {
    // struct seccomp_notif_resp: id, val, error, flags.
    let mut buf = [0u8; 24];
    buf[0..8].copy_from_slice(&id.to_ne_bytes());
    buf[8..16].copy_from_slice(&val.to_ne_bytes());
    buf[16..20].copy_from_slice(&(-error).to_ne_bytes());
    // SAFETY: SECCOMP_IOCTL_NOTIF_SEND reads one seccomp_notif_resp.
    let r = unsafe { libc::ioctl(listener, 0xc018_2101u64 as _, buf.as_mut_ptr()) };
    Errno::result(r).map(drop)
}
