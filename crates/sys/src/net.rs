//! A raw Ethernet frame out of one interface (AF_PACKET): what the probe
//! uses to play a hostile container that forges packets, as CAP_NET_RAW
//! allows.

use crate::Result;
use nix::errno::Errno;
use std::os::fd::{FromRawFd, OwnedFd};

/// Send `frame` (Ethernet header included) out of the interface `ifname`.
pub fn send_frame(ifname: &str, frame: &[u8]) -> Result<()> {
    let name = std::ffi::CString::new(ifname).map_err(|_| Errno::EINVAL)?;
    // SAFETY: a valid C string; if_nametoindex only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(Errno::ENODEV);
    }
    // SAFETY: plain socket(2); the fd is owned right after.
    let fd = Errno::result(unsafe {
        libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: the kernel just returned this fd to us alone.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; all zero is a valid start.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = index as i32;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(frame.get(..6).ok_or(Errno::EINVAL)?);
    // SAFETY: the buffer and the address are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    Errno::result(n).map(drop)
}
