//! `create`: from a bundle to a container whose init waits on the exec FIFO.
//!
//! Parent side of the flow in `docs/create-flow.md`: plan, cgroup, clone,
//! maps, hooks, state. Whatever fails, everything made so far is undone.

mod checks;
mod spawn;

use checks::*;
pub(crate) use checks::{has_mount_namespace, refuse_busy_cgroup};
use spawn::*;

use crate::channel::{self, Channel, Msg};
use crate::console::ConsoleSocket;
use crate::error::{Error, Result};
use crate::init::{self, InitContext};
use crate::namespaces;
use crate::state::{self, ContainerState, Status, Store};
use crate::trace::Trace;
use capsa_cgroups::{Cgroup, Hierarchy};
use capsa_spec::Plan;
use capsa_sys::process::Forked;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Options of `create` (and of the create half of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    /// The caller proxies the terminal itself (`run` in the foreground)
    /// when no console socket is given.
    pub own_console: bool,
    /// The systemd cgroup driver (`--systemd-cgroup`): the cgroup is a
    /// transient scope systemd makes, named by `slice:prefix:name`.
    pub systemd_cgroup: bool,
    /// runc's behaviour where capsa's hardened one differs, or capsa's
    /// (docs/runc-parity.md).
    pub mode: capsa_spec::Mode,
}

/// A created container.
#[derive(Debug)]
pub struct Created {
    pub state: ContainerState,
    /// The pty master, when the process has a terminal and no console
    /// socket was given (the caller proxies it).
    pub console: Option<OwnedFd>,
    channel: Channel,
    /// What each step cost, runtime and init merged.
    pub trace: Trace,
    /// What runc's behaviour let through and warns about (unknown
    /// capabilities, a cgroup that already had processes).
    pub warnings: Vec<String>,
}

impl Created {
    /// After the init has exited: the error it reported between `start` and
    /// execve, if any (for `run`, which is still there to print it).
    pub fn late_error(&self) -> Option<crate::error::ChildError> {
        match self.channel.recv() {
            Ok(Some((Msg::Failed(e), _))) => Some(e),
            _ => None,
        }
    }
}

/// Undo what a failed create made: the process, the cgroup, the state dir.
struct Undo<'a> {
    store: &'a Store,
    id: String,
    pid: Option<Pid>,
    cgroup: Option<Cgroup>,
    /// The rootfs and the id of its private bind onto itself, when the
    /// init mounts in the host's mount namespace.
    host_root: Option<(PathBuf, u64)>,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some((rootfs, id)) = &self.host_root {
            let _ = crate::hostmounts::detach_root(rootfs, *id);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.remove_created();
        }
        let _ = self.store.remove(&self.id);
    }
}

/// Create container `opts.id` from its bundle.
pub fn create(store: &Store, opts: &CreateOptions) -> Result<Created> {
    state::check_id(&opts.id)?;
    crate::door::require_sealed()?;
    let mut trace = Trace::default();
    trace.mark("runtime", "create begins");
    let plan = capsa_spec::load(&opts.bundle, opts.mode)?;
    let mut warnings = plan.warnings.clone();
    crate::lsm::check(&plan.process, "process")?;
    trace.mark("runtime", "config.json parsed and validated");
    if !has_mount_namespace(&plan) {
        check_without_mount_namespace(&plan, opts.mode)?;
    }
    refuse_joining_our_mount_namespace(&plan)?;
    checks::refuse_sysctls_in_our_namespaces(&plan)?;
    if plan.process.terminal && opts.console_socket.is_none() && !opts.own_console {
        return Err(Error::Invalid(
            "cannot allocate tty if capsa-runtime will detach without setting console socket"
                .into(),
        ));
    }
    let console_sock = ConsoleSocket::connect(opts.console_socket.as_deref())?;

    let dir = store.create_dir(&opts.id)?;
    let mut undo = Undo {
        store,
        id: opts.id.clone(),
        pid: None,
        cgroup: None,
        host_root: None,
        armed: true,
    };

    let hierarchy =
        Hierarchy::detect().map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
    let scope = if opts.systemd_cgroup {
        Some(capsa_cgroups::systemd::Scope::of(
            plan.cgroups_path.as_deref(),
            &opts.id,
        )?)
    } else {
        None
    };
    let cg_path = match &scope {
        Some(s) => s.path.clone(),
        None => capsa_cgroups::container_path(plan.cgroups_path.as_deref(), &opts.id)?,
    };
    let mut cgroup = Cgroup::new(&hierarchy, &cg_path);
    // A scope is marked as systemd's from the first note on, so that no
    // cleanup touches a unit of that name before it is ours.
    cgroup.systemd_unit = scope.as_ref().map(|s| s.unit.clone());
    // Noted before the cgroup exists: a create killed from here on (no
    // Undo runs on SIGKILL) leaves a directory that `delete -f` cleans,
    // cgroup included.
    let note = if scope.is_some() {
        serde_json::to_vec(&cgroup).map_err(|e| Error::State(e.to_string()))?
    } else {
        cg_path.as_os_str().as_encoded_bytes().to_vec()
    };
    state::write_atomic(&dir.join(state::CREATING), &note, 0o600)?;
    let resources = plan.resources();
    // systemd makes a scope's cgroup, once the init exists to be put in
    // it. Not ours until it has started (no invocation id yet): nothing is
    // done to a unit of that name on the way out before then.
    if let Some(s) = &scope {
        refuse_existing_scope(s, &cgroup)?;
    }
    let cg_result = if scope.is_some() {
        Ok(())
    } else {
        cgroup.create()
    };
    undo.cgroup = Some(cgroup.clone());
    // Now with the parents it made, so that they go too (a scope's note
    // already says all there is until it starts).
    if scope.is_none() {
        if let Ok(json) = serde_json::to_vec(&cgroup) {
            state::write_atomic(&dir.join(state::CREATING), &json, 0o600)?;
        }
    }
    match cg_result {
        Ok(()) if scope.is_some() => {}
        Ok(()) => {
            let busy = refuse_busy_cgroup(&cgroup, opts.mode)?;
            if !busy.is_empty() {
                // Noted at once: a create killed from here on must not
                // have `delete -f` kill or remove what was there before.
                cgroup.shared = true;
                if let Ok(json) = serde_json::to_vec(&cgroup) {
                    state::write_atomic(&dir.join(state::CREATING), &json, 0o600)?;
                }
            }
            warnings.extend(busy);
            cgroup.apply(&resources)?;
        }
        // Rootless: without a delegated cgroup the container shares the
        // caller's, which is fine as long as no limit was asked for.
        Err(capsa_cgroups::CgroupError::Sys {
            errno: nix::errno::Errno::EACCES | nix::errno::Errno::EPERM | nix::errno::Errno::EROFS,
            path,
            ..
        }) if crate::rootless::active() => {
            if crate::rootless::asks_for_limits(&resources) {
                return Err(Error::Unsupported(format!(
                    "linux.resources: running rootless, and {} is not delegated to uid {}: limits cannot be applied (delegate a cgroup, or drop the limits)",
                    path.display(),
                    nix::unistd::geteuid()
                )));
            }
            cgroup = Cgroup::default();
            undo.cgroup = None;
        }
        Err(e) => return Err(e.into()),
    }
    {
        let writes: Vec<String> = cgroup
            .plan(&resources)
            .unwrap_or_default()
            .iter()
            .map(|w| {
                let file = w
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("{file}={}", w.value.trim())
            })
            .collect();
        let step = if cgroup.v1.is_empty() && cgroup.v2.is_none() {
            format!(
                "no cgroup: rootless, and {} is not delegated (no limits asked)",
                cg_path.display()
            )
        } else if writes.is_empty() {
            format!("cgroup {} created (no limits)", cg_path.display())
        } else {
            format!(
                "cgroup {} created; wrote {}",
                cg_path.display(),
                writes.join(" ")
            )
        };
        trace.mark("runtime", &step);
    }

    let fifo_path = dir.join("exec.fifo");
    nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .map_err(|e| Error::sys("mkfifo", fifo_path.display(), e))?;
    // mkfifo applied our umask: set the mode, and hand the FIFO to the
    // container's root, who opens it for writing from its namespace.
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o622);
    nix::sys::stat::fchmodat(
        None,
        &fifo_path,
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| Error::sys("chmod", fifo_path.display(), e))?;
    nix::unistd::chown(
        &fifo_path,
        Some(plan.host_root_uid().into()),
        Some(plan.host_root_gid().into()),
    )
    .map_err(|e| Error::sys("chown", fifo_path.display(), e))?;
    let fifo = capsa_sys::fd::open(
        &fifo_path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open", fifo_path.display(), e))?;

    let hooks = !plan.hooks.prestart.is_empty()
        || !plan.hooks.create_runtime.is_empty()
        || !plan.hooks.create_container.is_empty()
        || !plan.hooks.start_container.is_empty();
    let trees = host_trees(&plan)?;
    let trees_raw: Vec<(usize, std::os::fd::RawFd)> =
        trees.iter().map(|(i, t)| (*i, t.as_raw_fd())).collect();
    let (parent, child) = channel::pair()?;
    let ctx = InitContext {
        id: &opts.id,
        plan: &plan,
        chan: &child,
        fifo: fifo.as_raw_fd(),
        cgroup: &cgroup,
        hierarchy: &hierarchy,
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        preserve_fds: opts.preserve_fds,
        hooks,
        join_v1_cgroups: plan.namespaces.join.is_empty() && plan.time_offsets.is_empty(),
        trees: &trees_raw,
        rootfs_is_cwd: rootfs_is_cwd(&plan),
        privileged_parent: nix::unistd::geteuid().is_root(),
    };

    trace.mark("runtime", "exec fifo and channel ready");
    let host_root = if has_mount_namespace(&plan) {
        None
    } else {
        let id = crate::hostmounts::bind_root(&plan.rootfs)?;
        undo.host_root = Some((plan.rootfs.clone(), id));
        Some(id)
    };
    let (pid, v2_pending) = spawn_in_rootfs(&plan, &ctx, &parent)?;
    {
        let names: Vec<&str> = [
            (libc::CLONE_NEWNS, "NEWNS"),
            (libc::CLONE_NEWPID, "NEWPID"),
            (libc::CLONE_NEWNET, "NEWNET"),
            (libc::CLONE_NEWIPC, "NEWIPC"),
            (libc::CLONE_NEWUTS, "NEWUTS"),
            (libc::CLONE_NEWUSER, "NEWUSER"),
            (libc::CLONE_NEWCGROUP, "NEWCGROUP (by the init)"),
        ]
        .iter()
        .filter(|(f, _)| plan.namespaces.new & f != 0)
        .map(|(_, n)| *n)
        .collect();
        let joined = plan.namespaces.join.len();
        trace.mark(
            "runtime",
            &format!(
                // runc's debug words lead: tools grep for them.
                "nsexec container setup: clone3 returned pid {pid}: new namespaces {}{}",
                names.join("|"),
                if joined > 0 {
                    format!(", {joined} joined by path")
                } else {
                    String::new()
                }
            ),
        );
    }
    undo.pid = Some(pid);
    drop(child);

    // Hand the init its maps and cgroup, then serve it until it is ready.
    if plan.new_userns() && plan.namespaces.join.is_empty() && plan.time_offsets.is_empty() {
        crate::rootless::write_maps(pid.as_raw(), &plan.uid_maps, &plan.gid_maps)?;
    }
    if let Some(s) = &scope {
        let invocation = capsa_cgroups::systemd::start_scope(
            &s.unit,
            &s.slice,
            pid.as_raw() as u32,
            capsa_cgroups::systemd::properties(&resources, true),
        )?;
        cgroup.systemd_invocation = Some(invocation);
        undo.cgroup = Some(cgroup.clone());
        if let Ok(json) = serde_json::to_vec(&cgroup) {
            state::write_atomic(&dir.join(state::CREATING), &json, 0o600)?;
        }
        // What systemd has no property for goes into the delegated cgroup.
        cgroup.apply(&resources)?;
        trace.mark(
            "runtime",
            &format!(
                "systemd scope {} started in {} (Delegate=yes), limits applied",
                s.unit, s.slice
            ),
        );
    } else if v2_pending {
        cgroup.add_v2(pid.as_raw())?;
    }
    send(&parent, &Msg::MapsDone)?;
    trace.mark("runtime", "id maps written");

    let created = state::now_rfc3339();
    let mut st = ContainerState {
        id: opts.id.clone(),
        pid: pid.as_raw(),
        start_time: 0,
        bundle: plan.bundle.clone(),
        rootfs: plan.rootfs.clone(),
        created,
        owner: String::new(),
        cgroup: cgroup.clone(),
        config: plan.spec.clone(),
        host_root_mount: host_root,
    };
    let mut console = None;
    loop {
        match parent
            .recv()
            .map_err(|e| Error::sys("recv", "init channel", e))?
        {
            Some((Msg::Console, fd)) => {
                if let Some(kept) = console_sock.forward(fd)? {
                    console = Some(kept);
                }
            }
            Some((Msg::HooksPlease, _)) => {
                let json = st.oci_state(Status::Creating).to_string();
                run_hooks("prestart", &plan.hooks.prestart, &json)?;
                run_hooks("createRuntime", &plan.hooks.create_runtime, &json)?;
                send(
                    &parent,
                    &Msg::HooksDone(st.oci_state(Status::Created).to_string()),
                )?;
            }
            Some((Msg::Ready(t), _)) => {
                trace.merge(t);
                trace.mark("runtime", "init ready");
                break;
            }
            Some((Msg::SeccompListener, fd)) => crate::console::to_seccomp_agent(
                plan.seccomp.as_ref().and_then(|s| s.listener.as_ref()),
                fd,
                pid.as_raw(),
                st.oci_state(Status::Creating),
            )?,
            Some((Msg::Failed(e), _)) => return Err(Error::Child(e)),
            Some((other, _)) => {
                return Err(Error::State(format!(
                    "unexpected message from init: {other:?}"
                )))
            }
            None => {
                return Err(Error::State(
                    "container init exited before it was ready".into(),
                ))
            }
        }
    }

    st.start_time = state::proc_stat(pid.as_raw()).map(|(_, t)| t).unwrap_or(0);
    store.save(&st)?;
    trace.mark("runtime", "state.json written");
    state::write_pid_file(opts.pid_file.as_deref(), pid.as_raw())?;
    undo.armed = false;
    Ok(Created {
        state: st,
        console,
        channel: parent,
        trace,
        warnings,
    })
}

fn send(chan: &Channel, m: &Msg) -> Result<()> {
    chan.send(m)
        .map_err(|e| Error::sys("send", "init channel", e))
}

pub(crate) fn run_hooks(
    stage: &'static str,
    hooks: &[capsa_spec::oci::Hook],
    state: &str,
) -> Result<()> {
    crate::hooks::run(hooks, state).map_err(|f| Error::Hook {
        stage,
        index: f.index,
        path: f.path,
        why: f.why,
    })
}
