//! The floor: the least a runtime must do to start a container, with raw
//! syscalls and nothing else. clone3 with the namespaces of the default
//! spec, make the mounts private, bind the rootfs, pivot_root, detach the
//! old root, execve, wait. No config parsing, no cgroups, no /proc or /dev.
//!
//! Usage: capsa-floor ROOTFS PROGRAM [ARGS...]

use capsa_sys::process::{clone_fork, Forked};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::ffi::CString;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: capsa-floor ROOTFS PROGRAM [ARGS...]");
        std::process::exit(2);
    }
    let flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP;
    // SAFETY: this program is single-threaded.
    #[allow(unsafe_code)]
    let forked = unsafe { clone_fork(flags as u64, None) };
    match forked {
        Ok(Forked::Child) => {
            let rootfs = &args[1];
            let none = None::<&str>;
            let ok = mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).is_ok()
                && mount(
                    Some(rootfs.as_str()),
                    rootfs.as_str(),
                    none,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    none,
                )
                .is_ok()
                && nix::unistd::chdir(rootfs.as_str()).is_ok()
                && nix::unistd::pivot_root(".", ".").is_ok()
                && umount2(".", MntFlags::MNT_DETACH).is_ok();
            if !ok {
                capsa_sys::process::exit_now(125);
            }
            let argv: Vec<CString> = args[2..]
                .iter()
                .map(|a| CString::new(a.as_str()).unwrap_or_default())
                .collect();
            let e = capsa_sys::process::execve(&argv[0], &argv, &[]);
            eprintln!("capsa-floor: execve {}: {e}", args[2]);
            capsa_sys::process::exit_now(127);
        }
        Ok(Forked::Parent(pid)) => match capsa_sys::process::wait4(pid) {
            Ok((status, _)) => std::process::exit(libc::WEXITSTATUS(status)),
            Err(_) => std::process::exit(1),
        },
        Err(e) => {
            eprintln!("capsa-floor: clone3: {e}");
            std::process::exit(1);
        }
    }
}
