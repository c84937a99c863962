//! `exec`: a new process in a running container, joining every namespace
//! of its init (atomically, through a pidfd) and its cgroup.

use crate::channel::{self, Msg};
use crate::console::ConsoleSocket;
use crate::error::{ChildError, Error, Result};
use crate::lifecycle::{open_verified, status_of};
use crate::state::{self, Status, Store};
use crate::{namespaces, process};
use capsa_spec::seccomp::SeccompPlan;
use capsa_spec::ProcessPlan;
use capsa_sys::process::Forked;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// Options of `exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub id: String,
    pub process: ProcessPlan,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
    /// Exec into a paused container too: born frozen in its cgroup, it
    /// runs once the container is resumed.
    pub ignore_paused: bool,
    /// Sub-cgroups to run in (`exec --cgroup`, see
    /// [`capsa_cgroups::Cgroup::sub`]).
    pub cgroups: Vec<String>,
}

/// What an exec changes of the container's own process (its config's),
/// as `capsa-runtime exec` and `capsa exec` take it: applied here, in one
/// place, for both.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub args: Vec<String>,
    pub terminal: bool,
    /// `KEY=VALUE` each; a key given replaces the container's.
    pub env: Vec<String>,
    /// Absolute.
    pub cwd: Option<PathBuf>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub additional_gids: Option<Vec<u32>>,
    /// Capability numbers granted besides the container's (bounding,
    /// effective and permitted: never inheritable or ambient).
    pub caps: Vec<u32>,
    pub no_new_privileges: bool,
}

/// Container `id`'s own process with `o` applied.
pub fn process_with(store: &Store, id: &str, o: &Overrides) -> Result<ProcessPlan> {
    let st = store.load(id)?;
    let base =
        st.config.process().clone().ok_or_else(|| {
            Error::Invalid(format!("container {id} has no process in its config"))
        })?;
    let mut p = ProcessPlan::from_oci(&base, "process")?;
    if o.args.is_empty() {
        return Err(Error::Invalid("exec: a command is required".into()));
    }
    p.args = o.args.clone();
    p.terminal = o.terminal;
    p.console_size = None;
    for e in &o.env {
        let Some((key, _)) = e.split_once('=') else {
            return Err(Error::Invalid(format!("env {e:?}: not KEY=VALUE")));
        };
        p.env.retain(|x| x.split('=').next() != Some(key));
        p.env.push(e.clone());
    }
    if let Some(cwd) = &o.cwd {
        if !cwd.is_absolute() {
            return Err(Error::Invalid(format!(
                "cwd {}: not an absolute path",
                cwd.display()
            )));
        }
        p.cwd = cwd.clone();
    }
    if let Some(uid) = o.uid {
        p.uid = uid;
    }
    if let Some(gid) = o.gid {
        p.gid = gid;
    }
    if let Some(g) = &o.additional_gids {
        p.additional_gids = g.clone();
    }
    for &cap in &o.caps {
        p.grant_cap(cap);
    }
    if o.no_new_privileges {
        p.no_new_privileges = true;
    }
    Ok(p)
}

/// A started exec process.
#[derive(Debug)]
pub struct Execed {
    pub pid: i32,
    /// The pty master when a terminal was asked without a console socket.
    pub console: Option<OwnedFd>,
}

/// Run `opts.process` in container `opts.id`. The caller becomes the
/// process's parent if it made itself a child subreaper beforehand.
#[allow(unsafe_code)] // fork: see the SAFETY notes
pub fn exec(store: &Store, opts: &ExecOptions) -> Result<Execed> {
    // Checked here, where it is used: the process may have been changed
    // after it was read (exec's overrides, a caller of the library).
    opts.process.check("process")?;
    let st = store.load(&opts.id)?;
    crate::door::require_sealed()?;
    match status_of(&st) {
        Status::Created | Status::Running => {}
        Status::Paused if opts.ignore_paused => {}
        s => return Err(Error::State(format!("cannot exec in a {s} container"))),
    }
    let console_sock = ConsoleSocket::connect(opts.console_socket.as_deref())?;
    crate::lsm::check(&opts.process, "process")?;
    // The container's seccomp profile applies to exec'd processes too.
    let seccomp = match st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
    {
        Some(s) => Some(capsa_spec::seccomp::compile(s)?),
        None => None,
    };
    let cgroup = if opts.cgroups.is_empty() {
        st.cgroup.clone()
    } else {
        st.cgroup.sub(&opts.cgroups)?
    };
    let pidfd = open_verified(&st)?;
    let flags = namespaces::differing(st.pid)?;
    // A container without a mount namespace of its own (runc's reading of
    // a spec that names none) has a chroot for its root: the process is
    // put in the init's, or it would run at the host's `/`. Decided by the
    // container's config, not by comparing namespaces: a runtime running
    // in another mount namespace than the create's joins the host's by
    // setns, whose root is the host's.
    let chroot = if st.in_host_mount_namespace() || flags & libc::CLONE_NEWNS == 0 {
        Some(crate::lifecycle::open_init_root(&st)?)
    } else {
        None
    };
    let (parent, child) = channel::pair()?;
    // Born in the v2 cgroup; the v1 ones the joiner enters itself (a pid
    // written to cgroup.procs would cost a RCU grace period).
    let v2 = cgroup.v2_fd();
    let (forked, v2_pending) = match v2
        .as_ref()
        // SAFETY: the runtime's flows are single-threaded (DESIGN.md).
        .map(|fd| unsafe { capsa_sys::process::clone_fork(0, Some(fd.as_raw_fd())) })
    {
        Some(Ok(f)) => (f, false),
        _ => (
            // SAFETY: as above, one thread.
            unsafe { capsa_sys::process::fork() }.map_err(|e| Error::sys("fork", "exec", e))?,
            v2.is_some(),
        ),
    };
    let mid = match forked {
        Forked::Child => {
            // Security: CVE-2024-21626. The cgroup directory is the
            // parent's business: closed before anything else.
            drop(parent);
            drop(v2);
            let entry = Entry {
                pidfd: pidfd.as_raw_fd(),
                flags,
                chroot: chroot.as_ref(),
            };
            joiner(
                &child,
                &cgroup,
                &entry,
                &opts.process,
                opts.preserve_fds,
                seccomp.as_ref(),
            )
        }
        Forked::Parent(p) => p,
    };
    drop(child);
    let agent = seccomp.as_ref().and_then(|s| s.listener.as_ref());
    let res = serve(&st, &cgroup, &parent, mid, v2_pending, &console_sock, agent);
    let _ = waitpid(mid, None);
    let execed = res?;
    state::write_pid_file(opts.pid_file.as_deref(), execed.pid)?;
    Ok(execed)
}

fn serve(
    st: &state::ContainerState,
    cgroup: &capsa_cgroups::Cgroup,
    parent: &channel::Channel,
    mid: Pid,
    v2_pending: bool,
    console_sock: &ConsoleSocket,
    agent: Option<&(std::path::PathBuf, String)>,
) -> Result<Execed> {
    if v2_pending {
        if let Err(e) = cgroup.add_v2(mid.as_raw()) {
            // The joiner waits for word from us: it gets none.
            let _ = nix::sys::signal::kill(mid, nix::sys::signal::Signal::SIGKILL);
            return Err(e.into());
        }
    }
    if let Err(e) = parent.send(&Msg::MapsDone) {
        // The joiner failed already (a v1 cgroup it could not join): its
        // own report says why, not our failure to reach it.
        if let Ok(Some((Msg::Failed(c), _))) = parent.recv() {
            return Err(Error::Child(c));
        }
        return Err(Error::sys("send", "exec channel", e));
    }
    let mut pid = None;
    let mut console = None;
    let mut listener = None;
    loop {
        match parent
            .recv()
            .map_err(|e| Error::sys("recv", "exec channel", e))?
        {
            Some((Msg::Pid(p), _)) => pid = Some(p),
            Some((Msg::Console, fd)) => {
                if let Some(kept) = console_sock.forward(fd)? {
                    console = Some(kept);
                }
            }
            // Passed on once the process's pid is known (it may come after).
            Some((Msg::SeccompListener, fd)) => listener = fd,
            Some((Msg::Failed(e), _)) => return Err(Error::Child(e)),
            Some((other, _)) => {
                return Err(Error::State(format!(
                    "unexpected message from exec: {other:?}"
                )))
            }
            // Both ends closed: the process exec'd (the channel is
            // close-on-exec) or died, which the caller's wait will tell.
            None => break,
        }
    }
    let pid = pid.ok_or_else(|| Error::State("exec process exited before it started".into()))?;
    if listener.is_some() {
        // Its notifications wait for the agent, which gets the fd now.
        crate::console::to_seccomp_agent(
            agent,
            listener,
            pid,
            st.oci_state(crate::state::Status::Running),
        )?;
    }
    Ok(Execed { pid, console })
}

/// What the joiner enters: the init's namespaces that differ from ours
/// (through its pidfd), and its root when the mount namespace is ours.
struct Entry<'a> {
    pidfd: i32,
    flags: i32,
    chroot: Option<&'a OwnedFd>,
}

/// The first child: join the container's namespaces and fork the process
/// (a pid namespace applies to children only).
#[allow(unsafe_code)] // fork: see the SAFETY notes
fn joiner(
    chan: &channel::Channel,
    cgroup: &capsa_cgroups::Cgroup,
    entry: &Entry<'_>,
    p: &ProcessPlan,
    preserve_fds: i32,
    seccomp: Option<&SeccompPlan>,
) -> ! {
    let fail = |e: ChildError| -> ! {
        let _ = chan.send(&Msg::Failed(e));
        capsa_sys::process::exit_now(1)
    };
    // Security: CVE-2016-9962. Not dumpable until execve: a process in the
    // container must not ptrace us while we hold host fds. The exec'd
    // process inherits this from us and execve resets it.
    if let Err(e) = capsa_sys::process::set_dumpable(false) {
        fail(ChildError::sys("exec", "prctl", "PR_SET_DUMPABLE", e));
    }
    // execCPUAffinity.initial: the CPUs to run on until the process is in
    // the container's cgroups (and so under its cpuset).
    if let Some(cpus) = &p.exec_cpu_affinity.0 {
        if let Err(e) = capsa_sys::process::set_cpu_affinity(cpus) {
            fail(ChildError::sys(
                "exec",
                "sched_setaffinity",
                "execCPUAffinity.initial",
                e,
            ));
        }
    }
    if let Err(e) = cgroup.join_self_v1() {
        fail(ChildError::msg(
            "exec",
            "join cgroup",
            cgroup.path.display(),
            e.to_string(),
        ));
    }
    if !matches!(chan.recv(), Ok(Some((Msg::MapsDone, _)))) {
        fail(ChildError::msg(
            "exec",
            "wait for cgroup",
            "",
            "the runtime went away",
        ));
    }
    let flags = entry.flags;
    if flags != 0 {
        if let Err(e) = capsa_sys::process::setns_pidfd(entry.pidfd, flags) {
            fail(ChildError::sys("exec", "setns", format!("{flags:#x}"), e));
        }
    }
    if let Some(root) = entry.chroot {
        let entered = nix::unistd::fchdir(root.as_raw_fd())
            .and_then(|()| nix::unistd::chroot("."))
            .and_then(|()| nix::unistd::chdir("/"));
        if let Err(e) = entered {
            fail(ChildError::sys("exec", "chroot", "the container's root", e));
        }
    }
    // SAFETY: the joiner is a fork of a single-threaded runtime.
    match unsafe { capsa_sys::process::fork() } {
        Ok(Forked::Parent(pid)) => {
            let _ = chan.send(&Msg::Pid(pid.as_raw()));
            capsa_sys::process::exit_now(0)
        }
        Ok(Forked::Child) => {
            let e = match run_process(chan, p, preserve_fds, seccomp) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            fail(e)
        }
        Err(e) => fail(ChildError::sys("exec", "fork", "", e)),
    }
}

fn run_process(
    chan: &channel::Channel,
    p: &ProcessPlan,
    preserve_fds: i32,
    seccomp: Option<&SeccompPlan>,
) -> std::result::Result<std::convert::Infallible, ChildError> {
    nix::unistd::setsid().map_err(|e| ChildError::sys("exec", "setsid", "", e))?;
    if p.terminal {
        let root = capsa_sys::root::Root::open(std::path::Path::new("/"))
            .map_err(|e| ChildError::sys("exec", "open", "/", e))?;
        crate::console::attach(chan, &root, p.console_size, p.uid)?;
    }
    process::set_rlimits(p)?;
    let proc = crate::procfs::open()?;
    process::set_oom_score_adj(&proc, p)?;
    let labels = crate::lsm::prepare(&proc, p)?;
    drop(proc);
    process::set_io_priority(p)?;
    process::set_scheduling(p)?;
    // The door: nothing of the host but the channel (a socket) and the
    // label files is open from here on, before the program is looked up.
    let mut keep = vec![chan.fd.as_raw_fd()];
    keep.extend(labels.fds());
    crate::door::close_host_fds(3 + preserve_fds, &keep)?;
    let exe = process::lookup(p)?;
    let env = process::env_with_home(p);
    let mut seccomp = seccomp;
    if let Some(s) = seccomp.filter(|s| s.listener.is_some()) {
        process::load_seccomp_for_agent(p, s, chan)?;
        seccomp = None;
    }
    Err(process::finalize(
        p,
        &exe,
        &env,
        preserve_fds,
        seccomp,
        labels,
        None,
    ))
}
