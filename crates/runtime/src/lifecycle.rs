//! `start`, `kill`, `delete`, `state` and `list` over the state store.

use crate::error::{Error, Result};
use crate::hooks;
use crate::state::{proc_stat, ContainerState, Status, Store};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// The status of a container, from its init process and exec FIFO. A pid
/// whose start time differs from the recorded one belongs to another
/// process: the container is stopped.
pub fn status_of(st: &ContainerState) -> Status {
    if st.pid <= 0 {
        return Status::Stopped;
    }
    match proc_stat(st.pid) {
        Some((s, start)) if start == st.start_time && s != 'Z' && s != 'X' => {}
        _ => return Status::Stopped,
    }
    if st.cgroup.is_frozen() {
        return Status::Paused;
    }
    Status::Running
}

fn status_with_fifo(store: &Store, st: &ContainerState) -> Status {
    match status_of(st) {
        Status::Running if store.dir(&st.id).join("exec.fifo").exists() => Status::Created,
        s => s,
    }
}

/// A pidfd of the container's init, checked to be the same process the
/// state recorded (not a later one that reused the pid).
pub(crate) fn open_verified(st: &ContainerState) -> Result<OwnedFd> {
    let fd = capsa_sys::process::pidfd_open(nix::unistd::Pid::from_raw(st.pid))
        .map_err(|e| Error::sys("pidfd_open", st.pid, e))?;
    // Checked after opening: from here on the fd cannot change process.
    match proc_stat(st.pid) {
        Some((_, start)) if start == st.start_time => Ok(fd),
        _ => Err(Error::State("container not running".into())),
    }
}

/// The container init's root directory as the init sees it (its
/// `/proc/PID/root`, with the mounts under it), opened through our own
/// verified procfs; the pid is checked, after the open, to still be the
/// init the state recorded.
///
/// Security: the host's `/proc` may be covered or replaced (CVE-2019-16884
/// class), and a pid can be reused: only the magic link itself is
/// followed, on a procfs checked to be one.
pub(crate) fn open_init_root(st: &ContainerState) -> Result<OwnedFd> {
    let proc = capsa_sys::procfs::ProcFs::new().map_err(|e| Error::sys("open", "procfs", e))?;
    let pid_dir = proc
        .open(
            std::path::Path::new(&st.pid.to_string()),
            libc::O_PATH | libc::O_DIRECTORY,
        )
        .map_err(|e| Error::sys("open", format!("/proc/{}", st.pid), e))?;
    let root = capsa_sys::fd::openat(
        pid_dir.as_fd(),
        "root",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open", format!("/proc/{}/root", st.pid), e))?;
    match proc_stat(st.pid) {
        Some((_, start)) if start == st.start_time => Ok(root),
        _ => Err(Error::State("container not running".into())),
    }
}

/// The state of `id`, with its status, as `state` prints it.
pub fn state(store: &Store, id: &str) -> Result<(ContainerState, Status)> {
    let st = store.load(id)?;
    let s = status_with_fifo(store, &st);
    Ok((st, s))
}

/// Every container with its status.
pub fn list(store: &Store) -> Result<Vec<(ContainerState, Status)>> {
    let mut out = Vec::new();
    for id in store.ids()? {
        // A container deleted while we list is simply not listed.
        if let Ok(mut st) = store.load(&id) {
            let s = status_with_fifo(store, &st);
            // Looked up here, not at create: no user lookup on the start
            // path for a column only `list` shows.
            st.owner = crate::state::owner_of(&store.dir(&id));
            out.push((st, s));
        }
    }
    Ok(out)
}

/// `start`: release a created container's init through the exec FIFO, then
/// run the poststart hooks. Returns the hooks' failures, which the spec
/// makes warnings.
pub fn start(store: &Store, id: &str) -> Result<Vec<String>> {
    let _lock = store.lock(id)?;
    let (st, status) = state(store, id)?;
    match status {
        Status::Created => {}
        Status::Stopped => {
            return Err(Error::State(
                "cannot start a container that has stopped".into(),
            ))
        }
        Status::Running | Status::Paused => {
            return Err(Error::State(
                "cannot start an already running container".into(),
            ))
        }
        Status::Creating => {
            return Err(Error::State(
                "cannot start a container that is being created".into(),
            ))
        }
    }
    let pidfd = open_verified(&st)?;
    let fifo_path = store.dir(id).join("exec.fifo");
    // Non-blocking open: a reader may open a FIFO before any writer; the
    // init is already blocked opening it for writing.
    let fifo = capsa_sys::fd::open(
        &fifo_path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open", fifo_path.display(), e))?;
    loop {
        let mut fds = [
            PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll", fifo_path.display(), e)),
            Ok(_) => {}
        }
        let fifo_ready = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        let died = fds[1].revents().is_some_and(|r| !r.is_empty());
        if fifo_ready {
            let mut b = [0u8; 1];
            match nix::unistd::read(fifo.as_raw_fd(), &mut b) {
                Ok(1) => break,
                Ok(_) | Err(Errno::EAGAIN) => {}
                Err(e) => return Err(Error::sys("read", fifo_path.display(), e)),
            }
        }
        if died {
            return Err(Error::State(
                "container init exited before it was started".into(),
            ));
        }
    }
    let _ = std::fs::remove_file(&fifo_path);
    let json = st.oci_state(Status::Running).to_string();
    Ok(hooks::run_all(&st.poststart_hooks(), &json)
        .into_iter()
        .map(|f| format!("poststart hook [{}] {}: {}", f.index, f.path, f.why))
        .collect())
}

/// `kill`: send `sig` to the init, or with `all` to every process of the
/// container's cgroup.
pub fn kill(store: &Store, id: &str, sig: i32, all: bool) -> Result<()> {
    let (st, status) = state(store, id)?;
    // Without a pid namespace of its own, the init's death does not end
    // the rest: SIGKILL goes to every process of the cgroup, as runc 1.2's
    // does, so that no process of the container outlives a kill.
    // A cgroup the container shares with processes that were there before
    // it (runc's mode) is never signalled whole but by `--all`.
    let all = all || sig == libc::SIGKILL && kill_reaches_cgroup(&st);
    // Rootless without a delegated cgroup there is none to signal: the
    // init is what can be reached (with its own pid namespace, the rest
    // ends with it).
    let all = all && (!st.cgroup.v1.is_empty() || st.cgroup.v2.is_some());
    if status == Status::Stopped {
        if !all {
            return Err(Error::State("container not running".into()));
        }
        // Without a pid namespace the init's end does not end the rest:
        // `kill --all` still reaches what is left in its cgroup, as runc
        // 1.2's does; with nothing left it is done, as runc's.
        if !st.cgroup.procs().is_ok_and(|p| !p.is_empty()) {
            return Ok(());
        }
    }
    if all {
        st.cgroup.signal_all(sig)?;
        return Ok(());
    }
    let pidfd = open_verified(&st)?;
    capsa_sys::process::pidfd_send_signal(pidfd.as_raw_fd(), sig)
        .map_err(|e| Error::sys("kill", st.pid, e))
}

/// Whether killing the container means killing every process of its
/// cgroup: without a pid namespace of its own the init's death does not
/// end the rest; with one, they end with it. Never a cgroup the container
/// shares with processes that were there before it (runc's mode): those
/// are not its own.
fn kill_reaches_cgroup(st: &ContainerState) -> bool {
    !own_pid_namespace(st) && !st.cgroup.shared
}

/// Whether the container made its own pid namespace (not the host's, not
/// one joined by path).
fn own_pid_namespace(st: &ContainerState) -> bool {
    st.config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter().any(|n| {
                n.typ() == capsa_spec::oci::LinuxNamespaceType::Pid
                    && n.path().as_ref().is_none_or(|p| p.as_os_str().is_empty())
            })
        })
}

/// Pids of the container's processes (from its cgroup).
pub fn pids(store: &Store, id: &str) -> Result<Vec<i32>> {
    let st = store.load(id)?;
    Ok(st.cgroup.procs()?)
}

/// `delete`: remove a stopped (or created) container; with `force` kill a
/// running one first. Returns poststop hook failures as warnings.
pub fn delete(store: &Store, id: &str, force: bool) -> Result<Vec<String>> {
    let lock = match store.lock(id) {
        Ok(l) => l,
        Err(Error::NotFound(_)) if force => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let st = match store.load(id) {
        Ok(s) => s,
        // A directory without state is what a crashed create leaves: with
        // force, clean it.
        Err(Error::NotFound(_)) if force => {
            remove_half_made(store, id);
            drop(lock);
            store.remove(id)?;
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let status = status_with_fifo(store, &st);
    match status {
        Status::Stopped => {}
        Status::Created => kill_and_wait(&st)?,
        Status::Running | Status::Paused | Status::Creating if force => kill_and_wait(&st)?,
        s => {
            return Err(Error::State(format!(
                "cannot delete container {id} that is not stopped: {s}"
            )))
        }
    }
    // Processes that outlived the init (no pid namespace of its own) go
    // too. With one, they died with the init: whatever else is in the
    // cgroup was there before the container (runc's mode lets a populated
    // cgroup through with a warning) and is not ours to kill.
    if kill_reaches_cgroup(&st) {
        let _ = st.cgroup.signal_all(libc::SIGKILL);
    }
    if let Some(id) = st.host_root_mount {
        crate::hostmounts::detach_root(&st.rootfs, id)?;
    }
    st.cgroup.remove()?;
    store.remove(id)?;
    drop(lock);
    let json = st.oci_state(Status::Stopped).to_string();
    Ok(hooks::run_all(&st.poststop_hooks(), &json)
        .into_iter()
        .map(|f| format!("poststop hook [{}] {}: {}", f.index, f.path, f.why))
        .collect())
}

/// SIGKILL the container and wait until its init has exited, on its pidfd
/// (no polling loop: the kernel wakes us).
fn kill_and_wait(st: &ContainerState) -> Result<()> {
    let Ok(pidfd) = open_verified(st) else {
        return Ok(());
    };
    // A frozen cgroup would hold the killed tasks: thaw it.
    if let Some(d) = st.cgroup.v1_dir("freezer") {
        let _ = std::fs::write(d.join("freezer.state"), "THAWED");
    }
    if kill_reaches_cgroup(st) {
        let _ = st.cgroup.signal_all(libc::SIGKILL);
    }
    match capsa_sys::process::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => return Err(Error::sys("kill", st.pid, e)),
    }
    loop {
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(10_000u16)) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll", "pidfd", e)),
            Ok(0) => {
                return Err(Error::State(format!(
                    "container init {} did not exit after SIGKILL",
                    st.pid
                )))
            }
            Ok(_) => return Ok(()),
        }
    }
}

impl ContainerState {
    fn poststart_hooks(&self) -> Vec<capsa_spec::oci::Hook> {
        self.config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().clone())
            .unwrap_or_default()
    }
    fn poststop_hooks(&self) -> Vec<capsa_spec::oci::Hook> {
        self.config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().clone())
            .unwrap_or_default()
    }
}

/// `pause`: freeze every process of a running container.
pub fn pause(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let (st, status) = state(store, id)?;
    match status {
        Status::Running => Ok(st.cgroup.freeze(true)?),
        Status::Paused => Err(Error::State("container already paused".into())),
        _ => Err(Error::State("container not running".into())),
    }
}

/// `resume`: thaw a paused container.
pub fn resume(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let (st, status) = state(store, id)?;
    match status {
        Status::Paused => Ok(st.cgroup.freeze(false)?),
        _ => Err(Error::State("container not paused".into())),
    }
}

/// `update`: apply new resources to a running (or paused, or created)
/// container and record them in its state, as runc does.
pub fn update(store: &Store, id: &str, r: &capsa_spec::oci::LinuxResources) -> Result<()> {
    let _lock = store.lock(id)?;
    let (mut st, status) = state(store, id)?;
    if status == Status::Stopped {
        return Err(Error::State("container not running".into()));
    }
    st.cgroup.update(r)?;
    let merged = merge_resources(
        st.config
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default(),
        r,
    )?;
    let mut linux = st.config.linux().clone().unwrap_or_default();
    linux.set_resources(Some(merged));
    st.config.set_linux(Some(linux));
    store.save(&st)
}

/// The usage of a container's cgroup.
pub fn stats(store: &Store, id: &str) -> Result<capsa_cgroups::stats::Stats> {
    let (st, status) = state(store, id)?;
    if status == Status::Stopped {
        return Err(Error::State("container not running".into()));
    }
    Ok(st.cgroup.stats())
}

/// OOM kills so far in the container's cgroup.
pub fn oom_kills(store: &Store, id: &str) -> Result<u64> {
    Ok(store.load(id)?.cgroup.oom_kills())
}

/// The recorded resources with every field the update sets replaced.
fn merge_resources(
    old: capsa_spec::oci::LinuxResources,
    new: &capsa_spec::oci::LinuxResources,
) -> Result<capsa_spec::oci::LinuxResources> {
    fn overlay(base: &mut serde_json::Value, top: &serde_json::Value) {
        match (base, top) {
            (serde_json::Value::Object(b), serde_json::Value::Object(t)) => {
                for (k, v) in t {
                    if v.is_null() {
                        continue;
                    }
                    overlay(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, t) => *b = t.clone(),
        }
    }
    let mut base = serde_json::to_value(old).map_err(|e| Error::State(e.to_string()))?;
    let top = serde_json::to_value(new).map_err(|e| Error::State(e.to_string()))?;
    overlay(&mut base, &top);
    serde_json::from_value(base).map_err(|e| Error::State(e.to_string()))
}

/// A create that was killed before it saved the state may have made the
/// cgroup (and an init that is dying with its channel): kill what is in
/// it and remove it, from the path the create noted first.
fn remove_half_made(store: &Store, id: &str) {
    let f = store.dir(id).join(crate::state::CREATING);
    let Ok(meta) = std::fs::symlink_metadata(&f) else {
        return;
    };
    use std::os::unix::fs::MetadataExt;
    // Ours only: written by us, no one else can have written it.
    if !meta.is_file() || meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0
    {
        return;
    }
    let Ok(noted) = std::fs::read_to_string(&f) else {
        return;
    };
    // The cgroup as made (with the parents it made), else its path alone.
    let cg = match serde_json::from_str::<capsa_cgroups::Cgroup>(&noted) {
        Ok(cg) => cg,
        Err(_) => {
            let Ok(hier) = capsa_cgroups::Hierarchy::detect() else {
                return;
            };
            capsa_cgroups::Cgroup::new(&hier, std::path::Path::new(noted.trim()))
        }
    };
    // Security: only a cgroup this create made is emptied: one that was
    // there before may hold processes that were never the container's
    // (the create may have died before it looked).
    if !cg.shared && cg.dirs().all(|d| cg.created.contains(d)) {
        let _ = cg.signal_all(libc::SIGKILL);
    }
    let _ = cg.remove();
}
