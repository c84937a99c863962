//! What a create refuses before it makes anything: a mount namespace
//! that is the host's, a cgroup that is not the container's.

#[allow(unused_imports)]
use super::*;

/// Whether the container has a mount namespace of its own (new, or joined
/// by path).
pub(crate) fn has_mount_namespace(plan: &Plan) -> bool {
    plan.namespaces.has(libc::CLONE_NEWNS)
}

/// Security: a mount namespace "joined" by path that is the runtime's own
/// (the host's, `/proc/1/ns/mnt`) would have the init change the host's
/// propagation and pivot_root in it. Refused: a spec that means the
/// host's names no mount namespace.
/// Security: sysctls are written into the container's namespaces. One it
/// joins by path may be the runtime's own, the host's (another
/// container's that runs on the host's network, say): a sysctl there
/// would change the host. Refused, as runc refuses `net.*` in the host's
/// network namespace.
pub(super) fn refuse_sysctls_in_our_namespaces(plan: &Plan) -> Result<()> {
    for key in plan.sysctl.keys() {
        let (flag, kind) = if key.starts_with("net.") {
            (libc::CLONE_NEWNET, "net")
        } else if key == "kernel.hostname" || key == "kernel.domainname" {
            (libc::CLONE_NEWUTS, "uts")
        } else {
            (libc::CLONE_NEWIPC, "ipc")
        };
        let Some((_, path)) = plan.namespaces.join.iter().find(|(f, _)| *f == flag) else {
            continue;
        };
        let ours = nix::sys::stat::stat(format!("/proc/self/ns/{kind}").as_str())
            .map_err(|e| Error::sys("stat", format!("/proc/self/ns/{kind}"), e))?;
        let theirs = nix::sys::stat::stat(path.as_path())
            .map_err(|e| Error::sys("stat", path.display(), e))?;
        if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino) {
            return Err(Error::Invalid(format!(
                "linux.sysctl.{key}: the {kind} namespace at {} is the host's: the sysctl would change the host",
                path.display()
            )));
        }
    }
    Ok(())
}

pub(super) fn refuse_joining_our_mount_namespace(plan: &Plan) -> Result<()> {
    for (flag, path) in &plan.namespaces.join {
        if *flag != libc::CLONE_NEWNS {
            continue;
        }
        let ours = nix::sys::stat::stat("/proc/self/ns/mnt")
            .map_err(|e| Error::sys("stat", "/proc/self/ns/mnt", e))?;
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
pub(super) fn check_without_mount_namespace(plan: &Plan, mode: capsa_spec::Mode) -> Result<()> {
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

/// Security (a hostile `linux.cgroupsPath` naming a unit that is not
/// this container's: a login session, another container): the scope's
/// cgroup must be new, as a cgroupfs cgroup must be empty
/// ([`refuse_busy_cgroup`]), else the init would be born in it. A unit of
/// that name elsewhere makes `StartTransientUnit` fail, race-free; asking
/// systemd here would start zbus's threads before the fork.
pub(super) fn refuse_existing_scope(
    s: &capsa_cgroups::systemd::Scope,
    cgroup: &Cgroup,
) -> Result<()> {
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
