//! Spawning the init: id-mapped bind sources cloned on the host, the
//! rootfs handed down as the working directory, clone3 into the cgroup,
//! and the intermediate process a joined pid namespace needs.

#[allow(unused_imports)]
use super::*;

/// Id-mapped mounts, cloned and mapped here (only the runtime has the
/// privilege to map them), as detached trees the init only attaches: by
/// mount index.
pub(super) fn host_trees(plan: &Plan) -> Result<Vec<(usize, OwnedFd)>> {
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
pub(super) fn rootfs_is_cwd(plan: &Plan) -> bool {
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
pub(super) fn spawn_in_rootfs(
    plan: &Plan,
    ctx: &InitContext<'_>,
    parent: &Channel,
) -> Result<(Pid, bool)> {
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
pub(super) fn spawn_init(
    plan: &Plan,
    ctx: &InitContext<'_>,
    parent: &Channel,
) -> Result<(Pid, bool)> {
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

pub(super) fn serve_intermediate(plan: &Plan, parent: &Channel, mid: Pid) -> Result<Pid> {
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
pub(super) fn intermediate(plan: &Plan, ctx: &InitContext<'_>, new: i32) -> ! {
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
