//! `restore`: a new container from CRIU's images, in its new cgroup,
//! under a mount namespace of the restore's own.

#[allow(unused_imports)]
use super::*;

/// A restored container.
#[derive(Debug)]
pub struct Restored {
    pub state: ContainerState,
}

/// Undoes a restore that failed: the cgroup this restore made and the
/// state directory.
struct Undo<'a> {
    store: &'a Store,
    id: String,
    cgroup: Option<Cgroup>,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.signal_all(libc::SIGKILL);
            let _ = cg.remove_created();
        }
        let _ = self.store.remove(&self.id);
    }
}

/// The container's rootfs bound at a directory of its state: CRIU wants
/// its root to be a mount point whose parent is not covered. Private, so
/// that nothing of it reaches another mount namespace; gone on drop.
struct CriuRoot {
    path: PathBuf,
}

impl CriuRoot {
    /// Each bind's mount point made again (in order, each bound while the
    /// next is made, so that a nested one is made in its parent's source),
    /// resolved inside the root; then the binds undone, CRIU makes its own.
    /// Returns the root, for where each destination leads.
    fn make_mount_points(&self, plan: &Plan) -> Result<Root> {
        use nix::mount::{MntFlags, MsFlags};
        let root =
            Root::open(&self.path).map_err(|e| Error::sys("open", self.path.display(), e))?;
        let mut bound = Vec::new();
        let res = (|| {
            for m in plan.mounts.iter().filter(|m| m.bind) {
                let Some(src) = &m.source else { continue };
                let dir = std::fs::metadata(src)
                    .map_err(|e| Error::io("stat", src.display(), e))?
                    .is_dir();
                let made = if dir {
                    root.mkdir_all(&m.destination)
                } else {
                    root.create_file(&m.destination)
                };
                let target = made.map_err(|e| Error::sys("make", m.destination.display(), e))?;
                capsa_sys::root::mount_on(
                    Some(&src.display().to_string()),
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .map_err(|e| Error::sys("bind mount", src.display(), e))?;
                // A read-only source stays so while mount points are made
                // through it (a link in a writable volume could aim there).
                if m.readonly() {
                    capsa_sys::root::mount_on(
                        None,
                        &target,
                        None,
                        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
                        None,
                    )
                    .map_err(|e| Error::sys("make read-only", m.destination.display(), e))?;
                }
                bound.push(target);
            }
            Ok(())
        })();
        for t in bound.iter().rev() {
            let _ = nix::mount::umount2(
                capsa_sys::resolve::fd_path(t.as_raw_fd()).as_str(),
                MntFlags::MNT_DETACH,
            );
        }
        res.map(|()| root)
    }

    fn mount(dir: &Path, rootfs: &Path) -> Result<CriuRoot> {
        use nix::mount::{mount, MsFlags};
        let path = dir.join("criu-root");
        std::fs::create_dir(&path).map_err(|e| Error::io("mkdir", path.display(), e))?;
        let root = CriuRoot { path };
        mount(
            Some(rootfs),
            &root.path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| Error::sys("bind mount", rootfs.display(), e))?;
        mount(
            None::<&str>,
            &root.path,
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| Error::sys("make private", root.path.display(), e))?;
        Ok(root)
    }
}

impl Drop for CriuRoot {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// That `pid` is at `path` (or below it) in each of its cgroup hierarchies,
/// as `/proc/PID/cgroup` says (read as untrusted text: an image's process).
pub(super) fn in_cgroup(pid: i32, path: &Path) -> Result<()> {
    let f = format!("/proc/{pid}/cgroup");
    let text = std::fs::read_to_string(&f).map_err(|e| Error::io("read", &f, e))?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctl), Some(at)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        // Hierarchies with no controller of ours (name=systemd, an empty
        // v1 entry on a hybrid host) are not the container's business.
        if ctl.starts_with("name=") || ctl.is_empty() && !at.starts_with('/') {
            continue;
        }
        if !Path::new(at).starts_with(path) {
            return Err(Error::State(format!(
                "the restored process {pid} is in cgroup {at} ({ctl}), not in the container's {}",
                path.display()
            )));
        }
    }
    Ok(())
}

/// `descriptors.json` of an image: at most the three stdio entries, read
/// with a bound (an image directory may come from anywhere).
pub(super) fn read_descriptors(images: &OwnedFd, path: &Path) -> Result<Vec<String>> {
    use std::io::Read;
    let path = path.join(DESCRIPTORS);
    // Not a link, not a FIFO that would block the open: a regular file.
    let fd = capsa_sys::fd::openat(
        images.as_fd(),
        DESCRIPTORS,
        nix::fcntl::OFlag::O_RDONLY
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_NONBLOCK
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open", path.display(), e))?;
    let f = std::fs::File::from(fd);
    if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(Error::Invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    f.take(64 << 10)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path.display(), e))?;
    let fds: Vec<String> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    Ok(fds.into_iter().take(3).collect())
}

/// `restore`: a new container `id` from the bundle and the images CRIU
/// made. The calling process moves to a mount namespace of its own (the
/// command line's is short-lived). Its process is restored as our child (CRIU's `rst_sibling`), in
/// the container's new cgroup, with the stdio pipes of the dump replaced
/// by our own stdio.
pub fn restore(store: &Store, opts: &RestoreOptions) -> Result<Restored> {
    state::check_id(&opts.id)?;
    let plan = capsa_spec::load(&opts.bundle, opts.mode)?;
    if !crate::create::has_mount_namespace(&plan) {
        return Err(Error::Unsupported(
            "restore of a container without a mount namespace of its own".into(),
        ));
    }
    require_criu(&opts.flags.criu)?;
    if opts.systemd_cgroup {
        return Err(Error::Unsupported(
            "restore with --systemd-cgroup is not supported".into(),
        ));
    }
    // A terminal's slave is restored with a new master (CRIU's orphan pts
    // master), which goes to the console socket as at create.
    if plan.process.terminal && opts.console_socket.is_none() {
        return Err(Error::Invalid(
            "restore of a container with a terminal needs --console-socket".into(),
        ));
    }
    let console = crate::console::ConsoleSocket::connect(opts.console_socket.as_deref())?;
    // Security: the rootfs bind CRIU needs, and the temporary binds that
    // make mount points, are made in a mount namespace of this process's
    // own, a slave of the host's: none of them reaches the host or its
    // peers, and none outlives this process (a delete meanwhile cannot
    // walk into the rootfs through one). First of all: every directory
    // CRIU is handed (by fd) must be of this namespace, or CRIU cannot
    // mount in it.
    capsa_sys::process::unshare(libc::CLONE_NEWNS)
        .map_err(|e| Error::sys("unshare", "mount namespace", e))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_SLAVE | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| Error::sys("make slave", "/", e))?;
    let (images, work, log) = opts.flags.dirs("restore.log", false)?;
    let descriptors = read_descriptors(&images, &opts.flags.image_path)?;
    let dir = store.create_dir(&opts.id)?;
    let mut undo = Undo {
        store,
        id: opts.id.clone(),
        cgroup: None,
        armed: true,
    };
    let hier = Hierarchy::detect().map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
    let cg_path = capsa_cgroups::container_path(plan.cgroups_path.as_deref(), &opts.id)?;
    let mut cgroup = Cgroup::new(&hier, &cg_path);
    cgroup.create()?;
    // Security: a cgroup refused as not ours (a host service's, named in
    // linux.cgroupsPath) is never killed on the way out: only what this
    // restore made is removed, until it is known to be the container's.
    // A restore is never into a populated cgroup, whatever the mode.
    if let Err(e) = crate::create::refuse_busy_cgroup(&cgroup, capsa_spec::Mode::Hardened) {
        let _ = cgroup.remove_created();
        return Err(e);
    }
    undo.cgroup = Some(cgroup.clone());
    let resources = plan.resources();
    cgroup.apply(&resources)?;

    let mut o = opts.flags.opts(&images, work.as_ref(), "restore.log")?;
    o.evasive_devices = true;
    o.rst_sibling = true;
    o.config_file = criu_config(&plan)?;
    let root = CriuRoot::mount(&dir, &plan.rootfs)?;
    o.root = Some(root.path.clone());
    let inside = root.make_mount_points(&plan)?;
    o.ext_mnt = externals(&plan, &cgroup, &hier, &inside);
    drop(inside);
    if !plan.masked_paths.is_empty() {
        o.ext_mnt.push(("/dev/null".into(), "/dev/null".into()));
    }
    // A pipe of the dumped init's stdio becomes ours (CRIU's fds 0-2).
    o.inherit_fd = descriptors
        .iter()
        .enumerate()
        .filter(|(_, d)| d.starts_with("pipe:"))
        .map(|(i, d)| (d.clone(), i as i32))
        .collect();
    // A namespace joined by path is handed to CRIU to join (by fd).
    let mut joined = Vec::new();
    for (_, key, path) in joined_namespaces(&plan) {
        let f = std::fs::File::open(&path).map_err(|e| Error::io("open", path.display(), e))?;
        let fd: OwnedFd = f.into();
        o.inherit_fd.push((key.to_string(), fd.as_raw_fd()));
        joined.push(fd);
    }
    let mut keep = CriuFlags::keep(&images, work.as_ref());
    keep.extend(joined.iter().map(|f| f.as_raw_fd()));
    let mut swrk = Swrk::spawn(&opts.flags.criu, &keep, true, log)?;
    drop(joined);
    // The restored tree is born where CRIU is: in the container's cgroups,
    // at the container's path in each v1 hierarchy.
    cgroup.add(swrk.pid())?;
    o.cg_root = cgroup
        .v1
        .iter()
        .map(|(c, _)| (Some(c.join(",")), cg_path.display().to_string()))
        .collect();
    // And a root with no controller, CRIU's default for every hierarchy
    // not named (v2's among them): what the image recorded is the old
    // container's path, or any path a crafted image names.
    o.cg_root.push((None, cg_path.display().to_string()));
    let mut st = ContainerState {
        id: opts.id.clone(),
        pid: 0,
        start_time: 0,
        bundle: plan.bundle.clone(),
        rootfs: plan.rootfs.clone(),
        created: state::now_rfc3339(),
        owner: String::new(),
        cgroup: cgroup.clone(),
        config: plan.spec.clone(),
        host_root_mount: None,
    };
    let res = swrk.call(ReqType::Restore, Some(&o), |script, pid, fd| {
        match script {
            "orphan-pts-master" => {
                console.forward(fd)?;
            }
            // The namespaces exist, the process does not run yet: the
            // runtime's hooks, as at create.
            "setup-namespaces" => {
                st.pid = pid;
                let json = st.oci_state(Status::Creating).to_string();
                crate::create::run_hooks("prestart", &plan.hooks.prestart, &json)?;
                crate::create::run_hooks("createRuntime", &plan.hooks.create_runtime, &json)?;
            }
            "post-restore" => {
                st.pid = pid;
                st.start_time = state::proc_stat(pid).map(|(_, t)| t).unwrap_or(0);
                store.save(&st)?;
            }
            _ => {}
        }
        Ok(())
    });
    let finished = swrk.finish(true);
    drop(root);
    let resp = res?;
    finished?;
    if st.pid == 0 {
        st.pid = resp.restored_pid.unwrap_or(0);
        st.start_time = state::proc_stat(st.pid).map(|(_, t)| t).unwrap_or(0);
        store.save(&st)?;
    }
    // Security: its limits and device filter hold only if the restored
    // process is in the container's cgroup in every hierarchy, wherever
    // the image said it was: checked, else it is killed (the undo).
    in_cgroup(st.pid, &cg_path)?;
    state::write_pid_file(opts.pid_file.as_deref(), st.pid)?;
    undo.armed = false;
    Ok(Restored { state: st })
}
