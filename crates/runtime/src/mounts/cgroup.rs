//! The cgroup filesystem at `/sys/fs/cgroup`, per hierarchy.

#[allow(unused_imports)]
use super::*;

/// The `cgroup` mount: with a cgroup namespace a fresh cgroup filesystem per
/// hierarchy (which shows the namespace's root, our own cgroup); without one
/// a bind of our cgroup directories, so the rest of the host stays unseen.
/// On v1 or hybrid, what goes under the cgroup mount's tmpfs, as on the
/// host: per hierarchy its name there (`cpu,cpuacct`, `unified`), its
/// controllers (none for v2) and the container's cgroup directory in it.
pub(crate) fn cgroup_submounts(
    cgroup: &Cgroup,
    hier: &Hierarchy,
) -> Vec<(String, Option<String>, PathBuf)> {
    let mut subs = Vec::new();
    for (controllers, dir) in &cgroup.v1 {
        let name = hier
            .v1
            .iter()
            .find(|h| &h.controllers == controllers)
            .and_then(|h| h.mountpoint.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| controllers.join(","));
        subs.push((name, Some(controllers.join(",")), dir.clone()));
    }
    if let (Some(v2), Some(mp)) = (&cgroup.v2, &hier.v2) {
        let name = mp
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unified".into());
        subs.push((name, None, v2.clone()));
    }
    subs
}

pub(super) fn mount_cgroup(
    plan: &Plan,
    root: &Root,
    m: &MountPlan,
    cgroup: &Cgroup,
    hier: &Hierarchy,
) -> R<()> {
    let cgns = plan.namespaces.has(libc::CLONE_NEWCGROUP);
    let dest = m.destination.clone();
    let f = flags(m.flags & !libc::MS_RDONLY);
    let ro = m.readonly();
    if hier.v1.is_empty() {
        let target = make(root, &dest, false)?;
        let tp = fd_path(target.as_raw_fd());
        if cgns {
            mount(
                Some("cgroup2"),
                tp.as_str(),
                Some("cgroup2"),
                flags(m.flags),
                None::<&str>,
            )
            .map_err(|e| err("mount cgroup2", dest.display(), e))?;
        } else if let Some(d) = &cgroup.v2 {
            mount(
                Some(d),
                tp.as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| err("bind mount", d.display(), e))?;
            if ro || f.bits() != 0 {
                let t = root
                    .open_at(&dest, libc::O_PATH, Symlinks::InRoot)
                    .map_err(|e| err("open", dest.display(), e))?;
                remount_bind(
                    &fd_path(t.as_raw_fd()),
                    m.flags,
                    &dest.display().to_string(),
                )?;
            }
        }
        return Ok(());
    }
    // v1 or hybrid: a tmpfs holding one mount per hierarchy, as on the host.
    let target = make(root, &dest, false)?;
    mount(
        Some("tmpfs"),
        fd_path(target.as_raw_fd()).as_str(),
        Some("tmpfs"),
        f,
        Some("mode=755"),
    )
    .map_err(|e| err("mount tmpfs", dest.display(), e))?;
    let subs = cgroup_submounts(cgroup, hier);
    for (name, opts, hostdir) in subs {
        let sub = dest.join(&name);
        let t = make(root, &sub, false)?;
        let tp = fd_path(t.as_raw_fd());
        let mut done = false;
        if cgns {
            let (fstype, data) = match &opts {
                Some(o) => ("cgroup", Some(o.as_str())),
                None => ("cgroup2", None),
            };
            done = mount(
                Some("cgroup"),
                tp.as_str(),
                Some(fstype),
                flags(m.flags),
                data,
            )
            .is_ok();
        }
        if !done {
            mount(
                Some(&hostdir),
                tp.as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| err("bind mount", hostdir.display(), e))?;
            let t = root
                .open_at(&sub, libc::O_PATH, Symlinks::InRoot)
                .map_err(|e| err("open", sub.display(), e))?;
            remount_bind(
                &fd_path(t.as_raw_fd()),
                m.flags | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                &sub.display().to_string(),
            )?;
        }
        // cpu,cpuacct mounted together get a link per controller, as on
        // the host.
        if name.contains(',') {
            for c in name.split(',') {
                let link = dest.join(c);
                let parent = root
                    .open_at(&dest, libc::O_PATH | libc::O_DIRECTORY, Symlinks::InRoot)
                    .map_err(|e| err("open", dest.display(), e))?;
                match nix::unistd::symlinkat(name.as_str(), Some(parent.as_raw_fd()), Path::new(c))
                {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(err("symlink", link.display(), e)),
                }
            }
        }
    }
    if ro {
        let t = root
            .open_at(&dest, libc::O_PATH, Symlinks::InRoot)
            .map_err(|e| err("open", dest.display(), e))?;
        mount(
            None::<&str>,
            fd_path(t.as_raw_fd()).as_str(),
            None::<&str>,
            MsFlags::MS_REMOUNT | f | MsFlags::MS_RDONLY,
            Some("mode=755"),
        )
        .map_err(|e| err("remount ro", dest.display(), e))?;
    }
    Ok(())
}
