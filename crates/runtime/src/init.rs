//! The container's init, from the moment it exists (in its new namespaces)
//! until it execs the user's program. Runs in the child of `create`; every
//! failure goes back to the runtime as a [`ChildError`].

use crate::channel::{Channel, Msg};
use crate::error::ChildError;
use crate::trace::Trace;
use crate::{mounts, process};
use capsa_cgroups::{Cgroup, Hierarchy};
use capsa_spec::Plan;
use nix::errno::Errno;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

type R<T> = std::result::Result<T, ChildError>;

/// What the init needs, all prepared by the parent before the clone.
pub struct InitContext<'a> {
    pub id: &'a str,
    pub plan: &'a Plan,
    pub chan: &'a Channel,
    /// `O_PATH` fd of the exec FIFO in the state directory.
    pub fifo: RawFd,
    pub cgroup: &'a Cgroup,
    pub hierarchy: &'a Hierarchy,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    /// Whether the plan has hooks that need the runtime's state JSON.
    pub hooks: bool,
    /// Whether the init joins the v1 cgroups itself (no intermediate did).
    pub join_v1_cgroups: bool,
    /// Detached trees the runtime cloned on the host, by mount index.
    pub trees: &'a [(usize, RawFd)],
    /// Whether the working directory is the rootfs (see
    /// `create::spawn_in_rootfs`).
    pub rootfs_is_cwd: bool,
    /// The runtime is root: the init (and the intermediate) turn
    /// non-dumpable the moment they exist. (An unprivileged runtime must
    /// still open the init's uid_map, which that would forbid: then only
    /// once the maps are written.)
    pub privileged_parent: bool,
}

/// Run the init. Never returns: execs the program, or reports and exits.
pub fn run(ctx: &InitContext<'_>) -> ! {
    let e = match run_inner(ctx) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = ctx.chan.send(&Msg::Failed(e));
    capsa_sys::process::exit_now(1)
}

fn expect(chan: &Channel, want: &str) -> R<Msg> {
    match chan.recv() {
        Ok(Some((m, _))) => Ok(m),
        Ok(None) => Err(ChildError::msg(
            "init",
            "wait for runtime",
            want,
            "the runtime went away",
        )),
        Err(e) => Err(ChildError::sys("init", "recv", want, e)),
    }
}

fn run_inner(ctx: &InitContext<'_>) -> R<std::convert::Infallible> {
    // Security: CVE-2016-9962. Our root and cwd are the host's and we hold
    // host fds: nothing in a namespace we share may ptrace us or open our
    // /proc entries, from the first instruction.
    if ctx.privileged_parent {
        capsa_sys::process::set_dumpable(false)
            .map_err(|e| ChildError::sys("init", "prctl", "PR_SET_DUMPABLE", e))?;
    }
    let mut t = Trace::default();
    t.mark("init", "child process in init(): born in new namespaces");
    let plan = ctx.plan;
    let p = &plan.process;
    // Join the v1 cgroups while we are still the runtime's root (before a
    // user namespace maps us); the intermediate, if any, did it for us.
    if ctx.join_v1_cgroups {
        ctx.cgroup.join_self_v1().map_err(|e| {
            ChildError::msg("cgroups", "join", ctx.cgroup.path.display(), e.to_string())
        })?;
    }
    // The parent writes our id maps first.
    if ctx.join_v1_cgroups && !ctx.cgroup.v1.is_empty() {
        t.mark("init", "joined v1 cgroups");
    }
    if expect(ctx.chan, "maps")? != Msg::MapsDone {
        return Err(ChildError::msg(
            "init",
            "protocol",
            "maps",
            "unexpected message",
        ));
    }
    // Security: CVE-2016-9962. Until execve (which resets it) nothing in
    // the container may ptrace us or open our /proc entries: we hold host
    // fds (the channel, the exec FIFO). Only now: an unprivileged parent
    // must still open our uid_map, which non-dumpable would forbid.
    capsa_sys::process::set_dumpable(false)
        .map_err(|e| ChildError::sys("init", "prctl", "PR_SET_DUMPABLE", e))?;
    // Security: the rootfs and the bind sources are reached now, while our
    // fs uid is still the runtime's. In a user namespace, the setresuid
    // below makes us its root, a host uid of no privilege: walking the
    // host's paths to them as that uid would need the directories above
    // (the engine's store, a volume's parent) open to every user. They are
    // cloned from our own copy of the host's mounts, which the kernel
    // locked when it made it for the user namespace (flags and submounts
    // stay as the host has them), never from the host's tree itself.
    let root = mounts::prepare_root(plan, ctx.rootfs_is_cwd)?;
    let own_trees = if plan.namespaces.has(libc::CLONE_NEWUSER) {
        mounts::clone_sources(plan, ctx.trees)?
    } else {
        Vec::new()
    };
    t.mark("init", "propagation set, rootfs bound, bind sources cloned");
    // In a user namespace (new or joined) become its root: files we create
    // must be owned by an id that the namespace maps.
    if plan.namespaces.has(libc::CLONE_NEWUSER) {
        let root_g = nix::unistd::Gid::from_raw(0);
        let root_u = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresgid(root_g, root_g, root_g)
            .map_err(|e| ChildError::sys("init", "setresgid", 0, e))?;
        nix::unistd::setresuid(root_u, root_u, root_u)
            .map_err(|e| ChildError::sys("init", "setresuid", 0, e))?;
    }
    // The cgroup namespace is made only now, so that its root is the
    // container's cgroup and not the runtime's.
    if plan.namespaces.new & libc::CLONE_NEWCGROUP != 0 {
        capsa_sys::process::unshare(libc::CLONE_NEWCGROUP)
            .map_err(|e| ChildError::sys("namespaces", "unshare", "cgroup", e))?;
    }
    nix::unistd::setsid().map_err(|e| ChildError::sys("init", "setsid", "", e))?;
    if !ctx.no_new_keyring {
        match capsa_sys::process::join_session_keyring(&format!("_ses.{}", ctx.id)) {
            Ok(()) | Err(Errno::ENOSYS) => {}
            // A user namespace may not reach the keyring quota: go on
            // without a private keyring, as runc does for ENOSYS.
            Err(Errno::EDQUOT | Errno::EACCES | Errno::EPERM) => {}
            Err(e) => {
                return Err(ChildError::sys(
                    "init",
                    "keyctl join session keyring",
                    ctx.id,
                    e,
                ))
            }
        }
    }

    t.mark("init", "ids, cgroup namespace, session, keyring");
    let mut trees: Vec<(usize, RawFd)> = ctx.trees.to_vec();
    trees.extend(own_trees.iter().map(|(i, t)| (*i, t.as_raw_fd())));
    let late_readonly = mounts::mount_all(plan, &root, ctx.cgroup, ctx.hierarchy, &trees)?;
    t.mark("init", "spec mounts");
    mounts::setup_dev(plan, &root)?;
    t.mark("init", "/dev devices and links");
    if p.terminal {
        console(ctx, &root)?;
    }
    mounts::readonly_late(late_readonly)?;

    let mut state = String::new();
    if ctx.hooks {
        ctx.chan
            .send(&Msg::HooksPlease)
            .map_err(|e| ChildError::sys("hooks", "send", "channel", e))?;
        match expect(ctx.chan, "hooks")? {
            Msg::HooksDone(s) => state = s,
            _ => {
                return Err(ChildError::msg(
                    "init",
                    "protocol",
                    "hooks",
                    "unexpected message",
                ))
            }
        }
        container_hooks("createContainer", &plan.hooks.create_container, &state)?;
    }

    // Masked and read-only paths, resolved inside the root, before the
    // host's tree (and its /dev/null, the mask source) is gone.
    let null = mounts::host_null()?;
    mounts::mask(&root, &plan.masked_paths, &null)?;
    mounts::readonly(&root, &plan.readonly_paths)?;
    drop(null);
    t.mark("init", "masked and read-only paths, in the root");
    mounts::pivot(plan, &root, ctx.no_pivot)?;
    t.mark("init", "pivot_root");
    drop((root, own_trees));
    mounts::finish_propagation(plan)?;
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h).map_err(|e| ChildError::sys("init", "sethostname", h, e))?;
    }
    if let Some(d) = &plan.domainname {
        capsa_sys::process::set_domainname(d)
            .map_err(|e| ChildError::sys("init", "setdomainname", d, e))?;
    }
    // Every write to /proc from here on goes through our own procfs, so
    // that the read-only /proc/sys above, or anything mounted over /proc,
    // cannot redirect it.
    let proc = crate::procfs::open()?;
    for (k, v) in &plan.sysctl {
        crate::procfs::write_sysctl(&proc, k, v)?;
    }
    if plan.root_readonly {
        mounts::readonly_root()?;
    }
    process::set_rlimits(p)?;
    process::set_oom_score_adj(&proc, p)?;
    process::set_io_priority(p)?;
    process::set_scheduling(p)?;
    process::set_personality_and_memory(plan)?;
    let labels = crate::lsm::prepare(&proc, p)?;
    drop(proc);
    t.mark("init", "hostname, sysctls (through our own procfs), limits");
    // The door: nothing of the host but the channel, the FIFO and the
    // label files (none a directory) is open from here on, before the
    // program is looked up.
    let mut keep = vec![ctx.chan.fd.as_raw_fd(), ctx.fifo];
    keep.extend(labels.fds());
    crate::door::close_host_fds(3 + ctx.preserve_fds, &keep)?;
    let exe = process::lookup(p)?;
    let env = process::env_with_home(p);

    // A seccomp agent gets its listener now, while the runtime is there.
    let mut seccomp_at_exec = plan.seccomp.as_ref();
    if let Some(s) = plan.seccomp.as_ref().filter(|s| s.listener.is_some()) {
        process::load_seccomp_for_agent(p, s, ctx.chan)?;
        seccomp_at_exec = None;
    }
    ctx.chan
        .send(&Msg::Ready({
            t.mark(
                "init",
                "program found, ready (init: closing the pipe to signal completion)",
            );
            t
        }))
        .map_err(|e| ChildError::sys("init", "send", "ready", e))?;

    // Wait for `start`: opening the FIFO for writing blocks until a reader
    // opens it. /proc/self/fd reopens our O_PATH handle from inside the new
    // root.
    let fifo_path = format!("/proc/self/fd/{}", ctx.fifo);
    let proc = crate::procfs::open()?;
    let fifo: OwnedFd = loop {
        match proc.reopen(ctx.fifo, libc::O_WRONLY) {
            Err(Errno::EINTR) => continue,
            other => {
                break other
                    .map_err(|e| ChildError::sys("init", "open exec fifo", &fifo_path, e))?
            }
        }
    };
    nix::unistd::write(&fifo, b"0")
        .map_err(|e| ChildError::sys("init", "write exec fifo", &fifo_path, e))?;
    drop((fifo, proc));

    // startContainer hooks run from finalize, once the process has the
    // spec's user, capabilities, no_new_privs and labels (as runc): a hook
    // path resolves inside the container, so the image may provide it.
    let start_hooks = (!plan.hooks.start_container.is_empty())
        .then_some((plan.hooks.start_container.as_slice(), state.as_str()));
    Err(process::finalize(
        p,
        &exe,
        &env,
        ctx.preserve_fds,
        seccomp_at_exec,
        labels,
        start_hooks,
    ))
}

/// Allocate the container's terminal from its own devpts, hand the master to
/// the runtime, and make the slave our stdio and controlling terminal.
fn console(ctx: &InitContext<'_>, root: &capsa_sys::root::Root) -> R<()> {
    let slave = crate::console::attach(
        ctx.chan,
        root,
        ctx.plan.process.console_size,
        ctx.plan.process.uid,
    )?;
    mounts::bind_console(root, &slave)
}

/// Hooks that run in the container's namespaces (createContainer,
/// startContainer): a failure fails the create or the start.
fn container_hooks(stage: &str, hooks: &[capsa_spec::oci::Hook], state: &str) -> R<()> {
    crate::hooks::run_sealed(hooks, state)
        .map_err(|f| ChildError::msg("hooks", stage, format!("[{}] {}", f.index, f.path), f.why))
}
