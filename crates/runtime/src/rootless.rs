//! Running as an unprivileged user: id maps through the kernel's rules for
//! unprivileged writers (one range, our own ids, setgroups denied) or the
//! setuid helpers newuidmap/newgidmap (for ranges from /etc/subuid), and
//! cgroups only when delegated.

use crate::error::{Error, Result};
use capsa_spec::IdMap;

/// Whether we run without the host's root: as an ordinary user, or as
/// root of a user namespace (rootless capsa runs there), where cgroup v1
/// files and undelegated cgroups stay out of reach.
pub fn active() -> bool {
    !nix::unistd::geteuid().is_root() || capsa_sys::process::in_user_namespace()
}

/// Whether `r` asks for any limit (device rules alone do not count: they
/// cannot be applied without a cgroup and the user namespace already keeps
/// the container from creating device nodes).
pub fn asks_for_limits(r: &capsa_spec::oci::LinuxResources) -> bool {
    r.memory().is_some()
        || r.cpu().is_some()
        || r.pids().is_some()
        || r.block_io().is_some()
        || r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty())
        || r.network().is_some()
        || r.rdma().as_ref().is_some_and(|v| !v.is_empty())
        || r.unified().as_ref().is_some_and(|v| !v.is_empty())
}

/// Write the maps of `pid`'s new user namespace: directly as root, else
/// directly when they map only our own ids, else with newuidmap/newgidmap.
pub fn write_maps(pid: i32, uid: &[IdMap], gid: &[IdMap]) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return crate::namespaces::write_maps(pid, uid, gid);
    }
    let me_u = nix::unistd::geteuid().as_raw();
    let me_g = nix::unistd::getegid().as_raw();
    let own = |maps: &[IdMap], me: u32| maps.len() == 1 && maps[0].host == me && maps[0].size == 1;
    if own(uid, me_u) && own(gid, me_g) {
        // An unprivileged gid_map write needs setgroups denied first.
        let proc = capsa_sys::procfs::ProcFs::new().map_err(|e| Error::sys("open", "procfs", e))?;
        let sg = format!("{pid}/setgroups");
        proc.write(std::path::Path::new(&sg), b"deny")
            .map_err(|e| Error::sys("write", format!("/proc/{sg}"), e))?;
        return crate::namespaces::write_maps(pid, uid, gid);
    }
    for (tool, maps) in [("newuidmap", uid), ("newgidmap", gid)] {
        let mut cmd = std::process::Command::new(tool);
        cmd.arg(pid.to_string());
        for m in maps {
            cmd.arg(m.container.to_string())
                .arg(m.host.to_string())
                .arg(m.size.to_string());
        }
        let out = cmd.output().map_err(|e| {
            Error::Unsupported(format!(
                "{tool}: {e} (install the uidmap package for id ranges from /etc/subuid)"
            ))
        })?;
        if !out.status.success() {
            return Err(Error::Unsupported(format!(
                "{tool} {pid}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}
