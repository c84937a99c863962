//! `checkpoint`: the running container dumped by CRIU into its images.

#[allow(unused_imports)]
use super::*;

/// `checkpoint`: dump the container with CRIU into the image path; unless
/// `leave_running` (or a pre-dump), the container is then gone, as runc's.
/// Returns the warnings of its deletion (failed poststop hooks).
pub fn checkpoint(store: &Store, opts: &CheckpointOptions) -> Result<Vec<String>> {
    require_criu(&opts.flags.criu)?;
    let lock = store.lock(&opts.id)?;
    let st = store.load(&opts.id)?;
    match status_of(&st) {
        Status::Running | Status::Paused => {}
        _ => return Err(Error::State("container not running".into())),
    }
    // Its mounts are the host's: CRIU would dump (and restore) those.
    if st.in_host_mount_namespace() {
        return Err(Error::Unsupported(
            "checkpoint of a container without a mount namespace of its own".into(),
        ));
    }
    if let Some(p) = &opts.parent_path {
        check_parent(&opts.flags.image_path, p)?;
    }
    if opts.pre_dump && !crate::criu::can_track_memory(&opts.flags.criu)? {
        return Err(Error::Unsupported(
            "--pre-dump: CRIU cannot track memory changes on this kernel (no soft-dirty bits, CONFIG_MEM_SOFT_DIRTY)".into(),
        ));
    }
    let plan = plan_of(&st)?;
    let (images, work, log) = opts.flags.dirs("dump.log", true)?;
    let mut o = opts.flags.opts(&images, work.as_ref(), "dump.log")?;
    o.pid = Some(st.pid);
    o.root = Some(st.rootfs.clone());
    o.config_file = criu_config(&plan)?;
    for (kind, key, path) in joined_namespaces(&plan) {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(&path)
            .map_err(|e| Error::io("stat", path.display(), e))?
            .ino();
        o.external.push(format!("{kind}[{ino}]:{key}"));
    }
    o.leave_running = opts.leave_running;
    o.parent_img = opts.parent_path.as_ref().map(|p| p.display().to_string());
    o.track_mem = opts.parent_path.is_some() || opts.pre_dump;
    // CRIU freezes the tree with the container's freezer rather than
    // ptrace where it can.
    o.freeze_cgroup = st
        .cgroup
        .v1_dir("freezer")
        .map(Path::to_path_buf)
        .or_else(|| st.cgroup.v2.clone());
    if !opts.pre_dump {
        let hier = Hierarchy::detect().map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
        // Named by their mount points; a masked file is a /dev/null.
        let root = container_root(&st)?;
        o.ext_mnt = externals(&plan, &st.cgroup, &hier, &root)
            .into_iter()
            .map(|(dest, _)| (dest.clone(), dest))
            .collect();
        o.ext_mnt.extend(
            masked_files(&st, &plan)
                .into_iter()
                .map(|p| (p, "/dev/null".into())),
        );
        // One procfs of our own for both reads of the container's process.
        let proc = capsa_sys::procfs::ProcFs::new().map_err(|e| Error::sys("open", "procfs", e))?;
        refuse_stacked(&proc, st.pid, &o.ext_mnt)?;
        let fds = stdio_of(&proc, st.pid)?;
        let json = serde_json::to_vec(&fds).map_err(|e| Error::State(e.to_string()))?;
        state::write_atomic(&opts.flags.image_path.join(DESCRIPTORS), &json, 0o600)?;
    }
    let keep = CriuFlags::keep(&images, work.as_ref());
    let mut swrk = Swrk::spawn(&opts.flags.criu, &keep, false, log)?;
    let typ = if opts.pre_dump {
        ReqType::PreDump
    } else {
        ReqType::Dump
    };
    // The caller handed us the fd by number: ours from here on (closed
    // once written, or on the way out).
    let mut status_fd = match opts.flags.status_fd {
        Some(fd) => {
            let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)
                .map_err(|e| Error::Invalid(format!("invalid --status-fd argument {fd}: {e}")))?;
            if flags & libc::O_ACCMODE == libc::O_RDONLY {
                return Err(Error::Invalid(format!(
                    "invalid --status-fd argument {fd}: not writable"
                )));
            }
            // SAFETY: the fd was inherited as this number (the caller's
            // contract, see `CriuFlags::status_fd`); nothing here owns it.
            #[allow(unsafe_code)]
            let owned = unsafe { capsa_sys::fd::inherited(fd) };
            Some(
                owned.map_err(|e| {
                    Error::Invalid(format!("invalid --status-fd argument {fd}: {e}"))
                })?,
            )
        }
        None => None,
    };
    let res = swrk.call(typ, Some(&o), |script, _, _| {
        // The lazy page server is up: `--status-fd` gets a \0, once.
        if script == "status-ready" {
            if let Some(fd) = status_fd.take() {
                let _ = nix::unistd::write(&fd, &[0]);
            }
        }
        Ok(())
    });
    let finished = swrk.finish(!opts.pre_dump);
    res?;
    finished?;
    drop(lock);
    if !opts.pre_dump && !opts.leave_running {
        // CRIU killed the tree: what is left is the state and the cgroup.
        return crate::lifecycle::delete(store, &opts.id, true);
    }
    Ok(Vec::new())
}
