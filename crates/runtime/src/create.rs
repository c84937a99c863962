//! `create`: from a bundle to a container whose init waits on the exec FIFO.
//!
//! Parent side of the flow in `docs/create-flow.md`: plan, cgroup, clone,
//! maps, hooks, state. Whatever fails, everything made so far is undone.

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
    let resources = plan
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
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
        }) if !nix::unistd::geteuid().is_root() => {
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
        let step = if writes.is_empty() {
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

/// Whether the container has a mount namespace of its own (new, or joined
/// by path).
pub(crate) fn has_mount_namespace(plan: &Plan) -> bool {
    plan.namespaces.has(libc::CLONE_NEWNS)
}

/// Security: a mount namespace "joined" by path that is the runtime's own
/// (the host's, `/proc/1/ns/mnt`) would have the init change the host's
/// propagation and pivot_root in it. Refused: a spec that means the
/// host's names no mount namespace.
fn refuse_joining_our_mount_namespace(plan: &Plan) -> Result<()> {
    let ours = nix::sys::stat::stat("/proc/self/ns/mnt")
        .map_err(|e| Error::sys("stat", "/proc/self/ns/mnt", e))?;
    for (flag, path) in &plan.namespaces.join {
        if *flag != libc::CLONE_NEWNS {
            continue;
        }
        let theirs = nix::sys::stat::stat(path.as_path())
            .map_err(|e| Error::sys("stat", path.display(), e))?;
        if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino) {
            return Err(Error::Invalid(format!(
                "linux.namespaces: the mount namespace at {} is the runtime's own: leave the mount namespace out of the spec instead",
                path.display()
            )));
        }
    }
    Ok(())
}

/// A spec without a mount namespace: the container's mounts are made in
/// the runtime's (the host's) mount namespace, under its rootfs, and its
/// root is a chroot, as runc does; `delete` unmounts them (runc leaves
/// them behind).
///
/// Security: such a container is not isolated from the host's filesystem
/// (a chroot does not hold a process with CAP_SYS_CHROOT), so capsa's
/// hardened mode refuses it. What would reach the host's own mounts is
/// refused in both modes: masked and read-only paths (runc's words), and a
/// read-only root, whose remount would land on the host's `/` (runc
/// silently skips it).
fn check_without_mount_namespace(plan: &Plan, mode: capsa_spec::Mode) -> Result<()> {
    if mode == capsa_spec::Mode::Hardened {
        return Err(Error::Invalid(
            "linux.namespaces: a mount namespace is required (--hardened): without one the container's mounts are made in the host's mount namespace and its root is a chroot".into(),
        ));
    }
    if !plan.masked_paths.is_empty() || !plan.readonly_paths.is_empty() {
        return Err(Error::Invalid(
            "linux.maskedPaths, linux.readonlyPaths: unable to restrict sys entries without a private MNT namespace".into(),
        ));
    }
    if plan.root_readonly {
        return Err(Error::Invalid(
            "root.readonly: a read-only root needs a private mount namespace (its remount would be the host's /)".into(),
        ));
    }
    Ok(())
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

/// Security (a hostile `linux.cgroupsPath` naming a unit that is not
/// this container's: a login session, another container): the scope's
/// cgroup must be new, as a cgroupfs cgroup must be empty
/// ([`refuse_busy_cgroup`]), else the init would be born in it. A unit of
/// that name elsewhere makes `StartTransientUnit` fail, race-free; asking
/// systemd here would start zbus's threads before the fork.
fn refuse_existing_scope(s: &capsa_cgroups::systemd::Scope, cgroup: &Cgroup) -> Result<()> {
    if cgroup.dirs().any(|d| d.exists()) {
        return Err(Error::State(format!(
            "systemd unit {} (cgroup {}) already exists: it is not this container's (name a new slice:prefix:name in linux.cgroupsPath)",
            s.unit,
            s.path.display()
        )));
    }
    Ok(())
}

/// Refuse a cgroup that is frozen, and one that existed before with
/// processes in it or below it. In runc 1.1's mode (`Mode::Runc`) a
/// populated cgroup is a warning, returned, in runc 1.1's words.
///
/// Security: a spec naming a cgroup of the host's (`/system.slice`) would
/// make the container's limits, `kill --all` and `delete` reach the host's
/// services in it. runc 1.2 and later refuse a populated cgroup too (all
/// its pids, children's included), as capsa's hardened mode does.
pub(crate) fn refuse_busy_cgroup(cgroup: &Cgroup, mode: capsa_spec::Mode) -> Result<Vec<String>> {
    // An init born in a frozen cgroup would never report: refuse, with
    // runc's words, rather than wait forever.
    if cgroup.freeze_in_effect() {
        return Err(Error::State(format!(
            "container's cgroup unexpectedly frozen ({}): thaw it or name another in linux.cgroupsPath",
            cgroup.path.display()
        )));
    }
    for d in cgroup.dirs().filter(|d| !cgroup.created.contains(d)) {
        if let Some(n) = capsa_cgroups::populated(d) {
            if mode == capsa_spec::Mode::Runc {
                return Ok(vec![
                    format!("container's cgroup is not empty: {n} process(es) found"),
                    "running a container in a non-empty cgroup is refused by runc 1.2 and by capsa-runtime --hardened".into(),
                ]);
            }
            return Err(Error::State(format!(
                "cgroup {} already has {n} processes (its own or its children's): it is not this container's (name an empty or new cgroup in linux.cgroupsPath)",
                d.display()
            )));
        }
    }
    Ok(Vec::new())
}

/// Id-mapped mounts, cloned and mapped here (only the runtime has the
/// privilege to map them), as detached trees the init only attaches: by
/// mount index.
fn host_trees(plan: &Plan) -> Result<Vec<(usize, OwnedFd)>> {
    // Security: mount propagation out of a user namespace. A clone of a
    // shared host mount joins its peer group, so what the container then
    // mounted on it would appear on the host (the kernel turns shared into
    // slave when it copies mounts into a less privileged namespace, for
    // this reason; a detached clone gets no such care). Made a slave, or
    // private if the spec's root is private, as the init's own copy of the
    // host's mounts would be.
    let prop = if plan.rootfs_propagation & (libc::MS_PRIVATE | libc::MS_UNBINDABLE) != 0 {
        libc::MS_PRIVATE
    } else {
        libc::MS_SLAVE
    };
    let mut trees = Vec::new();
    for (i, m) in plan.mounts.iter().enumerate() {
        let Some((uid, gid)) = &m.idmap else {
            continue;
        };
        let src = m.source.clone().unwrap_or_default();
        let what = || format!("mounts[{i}] {}", src.display());
        // Security: a clone made here, in the host's mount namespace,
        // carries none of the locks the kernel puts on mounts it copies
        // into a user namespace: the container's root could clear a
        // read-only, nosuid, nodev or noexec flag the host has on the
        // source and, through the mapping, write there as a host owner.
        // Such sources are refused.
        let locked = nix::sys::statvfs::statvfs(&src)
            .map_err(|e| Error::sys("statvfs", what(), e))?
            .flags();
        use nix::sys::statvfs::FsFlags;
        let held = FsFlags::ST_RDONLY | FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_NOEXEC;
        if locked.intersects(held) {
            return Err(Error::Unsupported(format!(
                "{}: an id-mapped bind of a source on a host mount that is {:?} cannot keep those flags locked; bind it without idmap, or from a mount without them",
                what(),
                locked & held
            )));
        }
        let tree = capsa_sys::mount::clone_tree(&src, m.recursive)
            .map_err(|e| Error::sys("open_tree", what(), e))?;
        capsa_sys::mount::set_propagation(tree.as_raw_fd(), prop, true)
            .map_err(|e| Error::sys("set propagation", what(), e))?;
        let ns = namespaces::userns_fd(uid, gid)?;
        capsa_sys::mount::set_idmap(&tree, ns.as_raw_fd(), m.recursive)
            .map_err(|e| Error::sys("id-map mount", what(), e))?;
        trees.push((i, tree));
    }
    Ok(trees)
}

/// Whether the init finds its rootfs as its working directory: yes unless
/// it joins a mount namespace by path (setns moves it to that namespace's
/// root, where the rootfs is looked up by path as the spec names it).
fn rootfs_is_cwd(plan: &Plan) -> bool {
    !plan
        .namespaces
        .join
        .iter()
        .any(|(f, _)| *f == libc::CLONE_NEWNS)
}

/// Spawn the init with the rootfs as its working directory.
///
/// Security: the rootfs is opened here, by the runtime, and handed down as
/// the working directory (which the kernel carries into a new mount
/// namespace), so the init, perhaps a host uid of no privilege in a user
/// namespace, never walks the host path to it: nothing above the rootfs
/// (the engine's store) has to be opened to other users.
///
/// The working directory is the process's: the caller must have one
/// thread, or another could create a container in the meantime.
fn spawn_in_rootfs(plan: &Plan, ctx: &InitContext<'_>, parent: &Channel) -> Result<(Pid, bool)> {
    use nix::fcntl::OFlag;
    let threads = capsa_sys::process::threads();
    if threads != 1 {
        return Err(Error::State(format!(
            "create must be called from a single-threaded process ({threads} threads here): it hands the rootfs to the init as the working directory"
        )));
    }
    let dir = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let open = |p: &Path| {
        capsa_sys::fd::open(p, dir, nix::sys::stat::Mode::empty())
            .map_err(|e| Error::sys("open", p.display(), e))
    };
    let rootfs = open(&plan.rootfs)?;
    let here = open(Path::new("."))?;
    nix::unistd::fchdir(rootfs.as_raw_fd())
        .map_err(|e| Error::sys("chdir", plan.rootfs.display(), e))?;
    let spawned = spawn_init(plan, ctx, parent);
    nix::unistd::fchdir(here.as_raw_fd())
        .map_err(|e| Error::sys("chdir", "the runtime's working directory", e))?;
    spawned
}

/// Start the init: one clone3 with every new namespace when nothing is
/// joined (the common case), else an intermediate process that joins, makes
/// the rest and forks the init.
///
/// The process is born in the v2 cgroup (`CLONE_INTO_CGROUP`) and joins
/// the v1 hierarchies itself (see [`Cgroup::join_self_v1`]), so that no pid
/// is written to a `cgroup.procs` file: that write costs a RCU grace period.
/// Returns the pid and whether the v2 cgroup still has to be joined.
#[allow(unsafe_code)] // fork: see the SAFETY notes
fn spawn_init(plan: &Plan, ctx: &InitContext<'_>, parent: &Channel) -> Result<(Pid, bool)> {
    // The cgroup namespace is unshared by the init itself once it is in
    // its cgroup.
    let new = plan.namespaces.new & !libc::CLONE_NEWCGROUP;
    let direct = plan.namespaces.join.is_empty() && plan.time_offsets.is_empty();
    let flags = if direct { new as u64 } else { 0 };
    let v2 = ctx.cgroup.v2_fd();
    let (forked, v2_pending) = match v2
        .as_ref()
        // SAFETY: spawn_in_rootfs checked this process has one thread.
        .map(|fd| unsafe { capsa_sys::process::clone_fork(flags, Some(fd.as_raw_fd())) })
    {
        Some(Ok(f)) => (f, false),
        // Without clone3 or CLONE_INTO_CGROUP: the parent joins it later.
        _ => (
            // SAFETY: as above, one thread.
            unsafe { capsa_sys::process::clone_fork(flags, None) }
                .map_err(|e| Error::sys("clone3", "container init", e))?,
            v2.is_some(),
        ),
    };
    if matches!(forked, Forked::Child) {
        // Security: CVE-2024-21626. The cgroup directory the child was
        // born in is the parent's business: closed before anything else.
        drop(v2);
        // The runtime's end of the channel too: if the runtime dies (kill
        // -9), the child must see the end of the channel and exit, not wait
        // on it forever. (The child never returns, so nothing closes this
        // number again.)
        let _ = capsa_sys::fd::close_range(parent.fd.as_raw_fd(), parent.fd.as_raw_fd());
    }
    match forked {
        Forked::Child if direct => init::run(ctx),
        Forked::Child => intermediate(plan, ctx, new),
        Forked::Parent(pid) if direct => Ok((pid, v2_pending)),
        Forked::Parent(mid) => {
            let res = serve_intermediate(plan, parent, mid);
            let _ = waitpid(mid, None);
            if res.is_err() {
                let _ = kill(mid, Signal::SIGKILL);
            }
            // The init was forked by the intermediate, after it joined.
            res.map(|pid| (pid, false))
        }
    }
}

fn serve_intermediate(plan: &Plan, parent: &Channel, mid: Pid) -> Result<Pid> {
    loop {
        match parent
            .recv()
            .map_err(|e| Error::sys("recv", "intermediate channel", e))?
        {
            Some((Msg::MapsPlease, _)) => {
                crate::rootless::write_maps(mid.as_raw(), &plan.uid_maps, &plan.gid_maps)?;
                send(parent, &Msg::MapsDone)?;
            }
            Some((Msg::Pid(p), _)) => return Ok(Pid::from_raw(p)),
            Some((Msg::Failed(e), _)) => return Err(Error::Child(e)),
            Some((other, _)) => {
                return Err(Error::State(format!(
                    "unexpected message from intermediate: {other:?}"
                )))
            }
            None => return Err(Error::State("intermediate process exited early".into())),
        }
    }
}

/// The intermediate: join the namespaces given by path, create the user
/// namespace (and have the parent map it), create the rest, set time
/// offsets, fork the init, report its pid, exit.
#[allow(unsafe_code)] // fork: see the SAFETY notes
fn intermediate(plan: &Plan, ctx: &InitContext<'_>, new: i32) -> ! {
    let fail = |e: crate::error::ChildError| -> ! {
        let _ = ctx.chan.send(&Msg::Failed(e));
        capsa_sys::process::exit_now(1)
    };
    // Security: CVE-2016-9962, as in the init: it forks the init into
    // namespaces others may share, holding host fds.
    if ctx.privileged_parent {
        if let Err(e) = capsa_sys::process::set_dumpable(false) {
            fail(crate::error::ChildError::sys(
                "namespaces",
                "prctl",
                "PR_SET_DUMPABLE",
                e,
            ));
        }
    }
    // Join the v1 cgroups first, as the runtime's root: the init inherits.
    if let Err(e) = ctx.cgroup.join_self_v1() {
        fail(crate::error::ChildError::msg(
            "cgroups",
            "join",
            ctx.cgroup.path.display(),
            e.to_string(),
        ));
    }
    if let Err(e) = namespaces::join(&plan.namespaces.join) {
        fail(e);
    }
    if new & libc::CLONE_NEWUSER != 0 {
        if let Err(e) = capsa_sys::process::unshare(libc::CLONE_NEWUSER) {
            fail(crate::error::ChildError::sys(
                "namespaces",
                "unshare",
                "user",
                e,
            ));
        }
        if ctx.chan.send(&Msg::MapsPlease).is_err()
            || !matches!(ctx.chan.recv(), Ok(Some((Msg::MapsDone, _))))
        {
            fail(crate::error::ChildError::msg(
                "namespaces",
                "wait for maps",
                "user",
                "the runtime went away",
            ));
        }
        // Still the runtime's host uid: the init reaches the rootfs and
        // the bind sources with it, then becomes the namespace's root (and
        // fails closed if it cannot).
    }
    let rest = new & !libc::CLONE_NEWUSER;
    if rest != 0 {
        if let Err(e) = capsa_sys::process::unshare(rest) {
            fail(crate::error::ChildError::sys(
                "namespaces",
                "unshare",
                format!("{rest:#x}"),
                e,
            ));
        }
    }
    if let Err(e) = namespaces::write_time_offsets(&plan.time_offsets) {
        fail(e);
    }
    // SAFETY: the init (or the runtime's intermediate child) is
    // single-threaded: it is a fork of a single-threaded runtime.
    match unsafe { capsa_sys::process::fork() } {
        Ok(Forked::Child) => init::run(ctx),
        Ok(Forked::Parent(pid)) => {
            let _ = ctx.chan.send(&Msg::Pid(pid.as_raw()));
            capsa_sys::process::exit_now(0)
        }
        Err(e) => fail(crate::error::ChildError::sys(
            "namespaces",
            "fork",
            "init",
            e,
        )),
    }
}
