//! Writes `data/default-seccomp.json`, capsa's default seccomp profile, the
//! shape docker and podman apply: refuse (EPERM) by default; allow every
//! x86_64 system call except those that reach beyond a container (module
//! loading, mounts, namespaces, keyrings, clocks, kexec, ...); `personality`
//! only with the harmless personas; `clone` only without namespace flags;
//! `clone3` answers ENOSYS so that libc falls back to `clone`.
//!
//! Run: cargo run -p capsa-spec --example gen-default-seccomp > crates/spec/data/default-seccomp.json

use serde_json::json;
use std::str::FromStr;

/// Calls a container with the default capabilities must not make.
const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "afs_syscall",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "clone",
    "clone3",
    "create_module",
    "delete_module",
    "epoll_ctl_old",
    "epoll_wait_old",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "getpmsg",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "migrate_pages",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "personality",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "putpmsg",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "security",
    "set_mempolicy",
    "set_mempolicy_home_node",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "sysfs",
    "_sysctl",
    "tuxcall",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
    "vserver",
];

/// Namespace flags of clone(2): refused without CAP_SYS_ADMIN.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

fn main() {
    let mut allowed: Vec<String> = syscalls::x86_64::Sysno::iter()
        .map(|s| s.to_string())
        .filter(|n| !DENIED.contains(&n.as_str()))
        .collect();
    // i386-only names, so that the profile covers SCMP_ARCH_X86 too.
    for n in syscalls::x86::Sysno::iter().map(|s| s.to_string()) {
        if !DENIED.contains(&n.as_str())
            && syscalls::x86_64::Sysno::from_str(&n).is_err()
            && !matches!(n.as_str(), "vm86" | "vm86old" | "stime")
        {
            allowed.push(n);
        }
    }
    allowed.sort();
    allowed.dedup();
    let personas = [0u64, 8, 0x20000, 0x20008, 0xffff_ffff];
    let mut syscalls = vec![json!({ "names": allowed, "action": "SCMP_ACT_ALLOW" })];
    for p in personas {
        syscalls.push(json!({ "names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{ "index": 0, "value": p, "op": "SCMP_CMP_EQ" }] }));
    }
    syscalls.push(json!({ "names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{ "index": 0, "value": CLONE_NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ" }] }));
    syscalls
        .push(json!({ "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS }));
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls
    });
    println!("{}", serde_json::to_string_pretty(&profile).unwrap());
}
