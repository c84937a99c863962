//! The door: the one way a process enters a container.
//!
//! Every process that will run inside a container passes here, whoever
//! forked it (`capsa-runtime create/run/exec`, the engine's monitor for a
//! container's init, `capsa exec`): [`crate::create`] and [`crate::exec`]
//! refuse to fork unless [`require_sealed`] holds, and the child calls
//! [`close_host_fds`] before it looks its program up. A new command that
//! enters a container goes through `create` or `exec`, so it cannot skip
//! the door; it only has to call [`seal`] first thing in `main`.
//!
//! What the door answers:
//! - Security: CVE-2019-5736 (the host binary overwritten through
//!   `/proc/PID/exe` or a `#!/proc/self/exe` program): the process runs
//!   from a sealed image of its binary ([`capsa_sys::exe`]).
//! - Security: CVE-2024-21626 (a host directory fd used as
//!   `/proc/self/fd/N/..` in `args[0]` or `cwd`): every fd but stdio, the
//!   spec's `--preserve-fds` and the runtime's own non-directory channel
//!   fds is closed (not only marked close-on-exec) before the lookup, and
//!   the cgroup directory the child was born in is closed first thing.
//! - Security: CVE-2022-29162 (`exec --cap` raising inheritable and ambient
//!   capabilities): see [`capsa_spec::ProcessPlan::grant_cap`]; the process
//!   gets exactly the plan's five sets in [`crate::process`].

use crate::error::{ChildError, Error, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// Set in the environment of the re-executed image, so that a sealed
/// image that still does not check as sealed fails instead of looping.
const REEXEC_MARK: &str = "_CAPSA_SEALED_REEXEC";

/// Set once this process checked that it runs sealed: the image cannot
/// change under a running process, so `create` and `exec` (and the
/// children forked after the check) need not read /proc/self/exe and the
/// mount table again on every start.
static SEALED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn sealed_now() -> bool {
    if SEALED.load(std::sync::atomic::Ordering::Relaxed) {
        return true;
    }
    let sealed = capsa_sys::exe::running_sealed();
    if sealed {
        SEALED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    sealed
}

/// Make sure this process runs from a sealed image of its binary: if it
/// does not, re-execute through one with the same arguments and
/// environment (this function then does not return). Call it first thing
/// in `main` of every binary that enters containers, while the process is
/// single-threaded.
pub fn seal() -> Result<()> {
    let marked = std::env::var_os(REEXEC_MARK).is_some();
    if sealed_now() {
        if marked {
            // Still single-threaded, before anything reads the environment.
            std::env::remove_var(REEXEC_MARK);
        }
        return Ok(());
    }
    if marked {
        return Err(Error::Unsupported(
            "re-executed from a sealed image of the binary, which still does not check as sealed"
                .into(),
        ));
    }
    let (exe, _) = capsa_sys::exe::sealed(std::path::Path::new("/proc/self/exe"))
        .map_err(|e| Error::sys("seal", "/proc/self/exe", e))?;
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let mut env = environ();
    env.push(CString::new(format!("{REEXEC_MARK}=1")).unwrap_or_default());
    Err(Error::sys(
        "execveat",
        "sealed image of /proc/self/exe",
        capsa_sys::exe::exec_fd(exe.as_raw_fd(), &args, &env),
    ))
}

fn environ() -> Vec<CString> {
    std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut b = k.as_bytes().to_vec();
            b.push(b'=');
            b.extend_from_slice(v.as_bytes());
            CString::new(b).ok()
        })
        .collect()
}

/// Replace this process with the binary at `path`, run from a sealed image
/// of it (for a process that will enter a container right away, such as
/// the engine's monitor). Returns only on failure.
pub fn exec_sealed(path: &std::path::Path, args: &[CString]) -> Error {
    match capsa_sys::exe::sealed(path) {
        Ok((exe, _)) => Error::sys(
            "execveat",
            format!("sealed image of {}", path.display()),
            capsa_sys::exe::exec_fd(exe.as_raw_fd(), args, &environ()),
        ),
        Err(e) => Error::sys("seal", path.display(), e),
    }
}

/// Refuse to fork a process into a container from a binary that is not
/// sealed: the check at the choke point, in `create` and `exec`.
pub(crate) fn require_sealed() -> Result<()> {
    if sealed_now() {
        return Ok(());
    }
    Err(Error::Unsupported(
        "refusing to enter a container from an unsealed binary (CVE-2019-5736): the caller must \
         call capsa_runtime::door::seal() first"
            .into(),
    ))
}

/// In the child, before anything of the container's program is looked up:
/// close every fd from `first` up, except `keep` (the runtime's channel and
/// exec FIFO), which must not be directories.
pub(crate) fn close_host_fds(first: RawFd, keep: &[RawFd]) -> std::result::Result<(), ChildError> {
    // Security: CVE-2024-21626. An fd in the preserved range (3 up to
    // `first`) that is close-on-exec was opened by us, not handed down by
    // the caller (whose fds came through an exec, so none of theirs is):
    // one of ours that fell into a gap of the range is closed, never
    // passed on as the caller's.
    for fd in 3..first {
        if keep.contains(&fd) {
            continue;
        }
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD);
        if flags.is_ok_and(|f| f & libc::FD_CLOEXEC != 0) {
            capsa_sys::fd::close_range(fd, fd)
                .map_err(|e| ChildError::sys("door", "close", fd, e))?;
        }
    }
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&f| f >= first).collect();
    keep.sort_unstable();
    keep.dedup();
    for &fd in &keep {
        let st = nix::sys::stat::fstat(fd).map_err(|e| ChildError::sys("door", "fstat", fd, e))?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(ChildError::msg(
                "door",
                "keep fd",
                fd,
                "a directory must never reach a container (CVE-2024-21626)",
            ));
        }
    }
    let mut lo = first;
    for &fd in &keep {
        if fd > lo {
            capsa_sys::fd::close_range(lo, fd - 1)
                .map_err(|e| ChildError::sys("door", "close_range", format!("{lo}..{fd}"), e))?;
        }
        lo = fd + 1;
    }
    capsa_sys::fd::close_range(lo, RawFd::MAX)
        .map_err(|e| ChildError::sys("door", "close_range", format!("{lo}.."), e))
}
