//! Process creation and process-wide settings: clone3, fork, prctl, pidfd.

use crate::Result;
use nix::errno::Errno;
use nix::unistd::Pid;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

mod sched;
pub use sched::{
    possible_cpus, set_cpu_affinity, set_io_priority, set_mempolicy, set_personality,
    set_sched_attr, SchedAttr,
};

/// Whether this process runs in a user namespace other than the host's:
/// its uid map is not the identity over every id. (Rootless capsa runs as
/// root of such a namespace, where overlay wants `userxattr`, mknod of
/// devices is refused and the host's cgroup files are out of reach.)
/// Read once.
pub fn in_user_namespace() -> bool {
    static NESTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NESTED.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
    })
}

/// What `clone3`/`fork` returned in the calling process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// We are the parent; the child has this pid (in our pid namespace).
    Parent(Pid),
    /// We are the child.
    Child,
}

// Not taken from libc, whose constant is typed too narrowly for clone3.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Fork-like `clone3`: the child gets a copy of the address space and
/// continues at the call site, in new namespaces given by `flags`
/// (`CLONE_NEW*`), and, with `cgroup_fd`, born directly into that cgroup v2
/// directory (`CLONE_INTO_CGROUP`). Falls back to `clone(2)` when the kernel
/// lacks clone3 (the cgroup is then joined by the caller).
///
/// # Safety
///
/// The caller must be single-threaded: like `fork`, only the calling
/// thread survives in the child, so a lock another thread held (the
/// allocator's, stdio's) would never be released there, and the child
/// could deadlock or see torn state.
pub unsafe fn clone_fork(flags: u64, cgroup_fd: Option<RawFd>) -> Result<Forked> {
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 with a zero stack behaves like fork: the child resumes on
    // a copy of this stack. `args` lives for the duration of the call and its
    // size is passed exactly. The caller guarantees a single thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let ret = if ret < 0 && Errno::last() == Errno::ENOSYS && cgroup_fd.is_none() {
        // SAFETY: clone(2) with a NULL stack is fork with extra flags; the
        // remaining pointer arguments are unused without CLONE_*TID flags.
        unsafe {
            libc::syscall(
                libc::SYS_clone,
                (flags as libc::c_long) | libc::SIGCHLD as libc::c_long,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        }
    } else {
        ret
    };
    match ret {
        r if r < 0 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// `fork(2)`.
///
/// # Safety
///
/// The caller must be single-threaded (see [`clone_fork`]).
pub unsafe fn fork() -> Result<Forked> {
    // SAFETY: the caller's guarantee is ours.
    unsafe { clone_fork(0, None) }
}

/// The number of threads this process has (`Threads:` in
/// /proc/self/status).
pub fn thread_count() -> Option<usize> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// `fork` when this process has one thread; `None` (nothing forked) when
/// it has more: a fork of a multi-threaded process may inherit a lock
/// another thread held (malloc's), and its child may then hang.
pub fn fork_single_threaded() -> Result<Option<Forked>> {
    if thread_count() != Some(1) {
        return Ok(None);
    }
    // SAFETY: the process has one thread (just checked; only this thread
    // could start another, and it is here), so the child inherits no lock
    // held by a thread it does not have.
    unsafe { fork() }.map(Some)
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> Result<libc::c_int> {
    // SAFETY: the prctl options used through this helper take integer
    // arguments only; unused arguments are zero as the man page asks.
    let r = unsafe {
        libc::prctl(
            option,
            arg2,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    Errno::result(r)
}

/// System call `nr` with no arguments (zeros), for probing how a seccomp
/// filter answers a number no kernel call has: only numbers from 1000 up
/// to (not including) the x32 bit are taken, so that no real call (a
/// close of an fd we own, a vfork) can be made through this safe function.
pub fn syscall_unassigned(nr: i64) -> Result<i64> {
    if !(1000..0x4000_0000).contains(&nr) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: no system call has a number in this range (x86_64's and
    // i386's end below 1000, x32's need the x32 bit): the kernel or the
    // filter answers without acting, and no pointer is passed.
    let r = unsafe { libc::syscall(nr as libc::c_long, 0, 0, 0, 0, 0, 0) };
    Errno::result(r)
}

/// `PR_SET_NO_NEW_PRIVS`: execve can no longer grant privileges (setuid
/// bits, file capabilities).
pub fn set_no_new_privs() -> Result<()> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map(drop)
}

/// `PR_SET_DUMPABLE`. A non-dumpable process cannot be ptraced and its
/// `/proc/PID` entries are owned by root of the initial user namespace.
pub fn set_dumpable(on: bool) -> Result<()> {
    prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong).map(drop)
}

/// `PR_SET_KEEPCAPS`: keep permitted capabilities across setuid to non-zero.
pub fn set_keep_caps(on: bool) -> Result<()> {
    prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong).map(drop)
}

/// `PR_SET_CHILD_SUBREAPER`: orphaned descendants are reparented to us.
pub fn set_child_subreaper() -> Result<()> {
    prctl(libc::PR_SET_CHILD_SUBREAPER, 1).map(drop)
}

/// `PR_CAPBSET_DROP` one capability from the bounding set.
pub fn drop_bounding_cap(cap: u32) -> Result<()> {
    prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong).map(drop)
}

/// Whether `cap` is in the bounding set (`PR_CAPBSET_READ`); false when the
/// kernel does not know the capability.
pub fn bounding_has(cap: u32) -> bool {
    matches!(prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong), Ok(1))
}

/// Clear the ambient set, then raise each capability in `caps` into it.
pub fn set_ambient(caps: &[u32]) -> Result<()> {
    // SAFETY: PR_CAP_AMBIENT takes integer arguments only.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    Errno::result(r)?;
    for &cap in caps {
        // SAFETY: as above.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        Errno::result(r)?;
    }
    Ok(())
}

/// `pidfd_open(2)`: a stable handle on a process that cannot be confused with
/// a later process reusing the pid.
pub fn pidfd_open(pid: Pid) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd we own.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    let fd = Errno::result(r)? as RawFd;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: RawFd, sig: libc::c_int) -> Result<()> {
    // SAFETY: a NULL siginfo is allowed and means "as kill(2) would".
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// `setns(2)` with a pidfd and several `CLONE_NEW*` flags: joins all those
/// namespaces of the target process atomically (Linux 5.8).
pub fn setns_pidfd(pidfd: RawFd, flags: libc::c_int) -> Result<()> {
    // SAFETY: setns takes an fd and flags.
    Errno::result(unsafe { libc::setns(pidfd, flags) }).map(drop)
}

/// The C library's description of signal `sig` ("Bad system call").
pub fn signal_description(sig: i32) -> String {
    // SAFETY: strsignal returns a pointer to a string that stays valid
    // until the next call on this thread; it is copied at once.
    let p = unsafe { libc::strsignal(sig) };
    if p.is_null() {
        return format!("signal {sig}");
    }
    // SAFETY: a non-null strsignal result is a NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

/// `setgroups(2)`.
pub fn set_groups(gids: &[u32]) -> Result<()> {
    // SAFETY: the pointer and length describe a live slice of gid_t (u32).
    let r = unsafe { libc::setgroups(gids.len(), gids.as_ptr()) };
    Errno::result(r).map(drop)
}

/// The process's umask, set to `mask`; returns the previous one.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// `execve(2)` with explicit path, argv and envp. Returns only on failure.
pub fn execve(
    path: &std::ffi::CStr,
    args: &[std::ffi::CString],
    env: &[std::ffi::CString],
) -> Errno {
    match nix::unistd::execve(path, args, env) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// `_exit(2)`: leave without running destructors or atexit handlers, as a
/// forked child must.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// `setrlimit(2)` for a resource given by number.
pub fn set_rlimit(resource: u32, lim: &libc::rlimit) -> Result<()> {
    // SAFETY: the pointer refers to a live rlimit; the resource number is
    // checked by the kernel.
    let r = unsafe { libc::setrlimit(resource as _, lim) };
    Errno::result(r).map(drop)
}

/// `setdomainname(2)`.
pub fn set_domainname(name: &str) -> Result<()> {
    // SAFETY: the pointer and length describe a live byte slice.
    let r = unsafe { libc::setdomainname(name.as_ptr() as *const libc::c_char, name.len()) };
    Errno::result(r).map(drop)
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)`: a new session keyring, so
/// that containers do not share the host's keys.
pub fn join_session_keyring(name: &str) -> Result<()> {
    let c = std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING (1) takes a C string pointer.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, 1, c.as_ptr()) };
    Errno::result(r).map(drop)
}

/// `unshare(2)` with raw `CLONE_*` flags (nix's flag type lacks
/// `CLONE_NEWTIME`).
pub fn unshare(flags: libc::c_int) -> Result<()> {
    // SAFETY: unshare takes an integer; it only changes this process's
    // namespaces.
    Errno::result(unsafe { libc::unshare(flags) }).map(drop)
}

/// `setns(2)` on a namespace fd, with the expected `CLONE_NEW*` type.
pub fn setns(fd: RawFd, nstype: libc::c_int) -> Result<()> {
    // SAFETY: setns takes an fd and an integer.
    Errno::result(unsafe { libc::setns(fd, nstype) }).map(drop)
}

/// `wait4(2)` for one child: its exit status (as waitpid reports it) and
/// its peak resident set size in KiB (`ru_maxrss`, which covers the
/// descendants it waited for).
pub fn wait4(pid: Pid) -> Result<(i32, i64)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; zeroed is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers refer to live locals for the call.
        let r = unsafe { libc::wait4(pid.as_raw(), &mut status, 0, &mut ru) };
        if r >= 0 {
            return Ok((status, ru.ru_maxrss));
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
}

/// Restore SIGPIPE's default action (Rust ignores it), so a command whose
/// output goes to a closed pipe (`capsa ps | head`) ends quietly instead
/// of failing to print.
pub fn default_sigpipe() {
    // SAFETY: setting a standard disposition for one signal; no handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Give freed heap back to the kernel (`malloc_trim(0)`): a long-lived
/// process (the container monitor) that did its big allocations at start.
pub fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Every signal back to its default action. An ignored signal stays
/// ignored across execve (handlers do not): a container must not inherit
/// the SIG_IGN of SIGPIPE that Rust programs set, or `yes | head` never
/// ends.
pub fn default_signal_actions() {
    // SIGRTMIN is 34 for programs (glibc keeps 32 and 33); up to SIGRTMAX 64.
    for sig in (1..32).chain(34..=64) {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: setting the default disposition installs no handler.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// Unmap the resident pages of this program's own read-only, never-written
/// mappings (its code and constants), as `MADV_DONTNEED` does: a long-lived
/// process that ran most of its code once at start (the container monitor)
/// then holds only the pages its loop faults back in. The pages stay in the
/// page cache; only this process's claim on them goes. Mappings with any
/// anonymous (copied-on-write, e.g. relocated) page are left alone, since
/// dropping those would lose their contents. Returns the kB released.
pub fn release_program_pages() -> usize {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return 0;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let exe = exe.to_string_lossy();
    let mut released = 0;
    // One mapping: its range, whether it may be dropped, its resident kB.
    let mut current: Option<(usize, usize, bool, usize)> = None;
    let mut ranges = Vec::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                ranges.extend(current.take().filter(|m| m.2));
                let perms = words.next().unwrap_or("");
                let path = words.nth(3).unwrap_or("");
                current = Some((a, b, !perms.contains('w') && path == exe, 0));
                continue;
            }
        }
        if let Some(m) = current.as_mut() {
            let kb = words
                .next()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            match first {
                "Rss:" => m.3 = kb,
                "Anonymous:" if kb > 0 => m.2 = false,
                _ => {}
            }
        }
    }
    ranges.extend(current.take().filter(|m| m.2));
    for (a, b, _, rss) in ranges {
        // SAFETY: the range is one of our own read-only file mappings with
        // no anonymous page: every page can be faulted back from the file
        // unchanged, so no live data is lost and no code moves.
        if unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) } == 0 {
            released += rss;
        }
    }
    released
}

/// How many threads the calling process has (`/proc/self/task`), or 0 if
/// that cannot be read.
pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}
