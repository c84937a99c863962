//! Who is in the cgroup: adding processes, sub-cgroups, listing and
//! signalling every member.
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use nix::errno::Errno;
#[allow(unused_imports)]
use std::os::fd::{AsRawFd, OwnedFd};
#[allow(unused_imports)]
use std::path::{Path, PathBuf};

impl Cgroup {
    /// Move `pid` into every directory of this cgroup.
    pub fn add(&self, pid: i32) -> Result<()> {
        for (_, d) in &self.v1 {
            let path = d.join("cgroup.procs");
            std::fs::write(&path, pid.to_string()).map_err(|e| CgroupError::Join {
                pid,
                path,
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        }
        self.add_v2(pid)
    }

    /// Move `pid` into the v2 directory only (when it could not be born
    /// there).
    pub fn add_v2(&self, pid: i32) -> Result<()> {
        match &self.v2 {
            Some(d) => write(&d.join("cgroup.procs"), &pid.to_string()),
            None => Ok(()),
        }
    }

    /// Move the calling process into every v1 directory by writing `0` to
    /// `tasks`. A process moving its own (only) thread this way skips the
    /// kernel's global threadgroup lock, whose RCU grace period makes a
    /// write of a pid to `cgroup.procs` cost 10-20 ms on v1. The caller
    /// must be single-threaded. (The v2 directory is joined at birth with
    /// `CLONE_INTO_CGROUP`, see [`Cgroup::v2_fd`].)
    pub fn join_self_v1(&self) -> Result<()> {
        for (_, d) in &self.v1 {
            let path = d.join("cgroup.procs");
            std::fs::write(&path, "0").map_err(|e| CgroupError::Join {
                pid: std::process::id() as i32,
                path,
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        }
        Ok(())
    }

    /// This cgroup with sub-cgroups for an exec (`exec --cgroup`, runc's
    /// form): each of `specs` is `[CONTROLLER[,CONTROLLER...]:]PATH`, PATH
    /// relative to the container's cgroup; without controllers it applies
    /// to every hierarchy. Nothing is created: a missing one fails the
    /// join. Security: a PATH with `..` could lead out of the container's
    /// cgroup, and is refused.
    pub fn sub(&self, specs: &[String]) -> Result<Cgroup> {
        let mut out = self.clone();
        for spec in specs {
            let (controllers, path) = match spec.split_once(':') {
                Some((c, p)) => (Some(c.split(',').collect::<Vec<_>>()), p),
                None => (None, spec.as_str()),
            };
            let rel = Path::new(path.trim_start_matches('/'));
            if rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(CgroupError::Unsupported {
                    field: "--cgroup".into(),
                    message: format!("{path} is not a sub cgroup path"),
                });
            }
            match controllers {
                None => {
                    for ((_, d), (_, base)) in out.v1.iter_mut().zip(&self.v1) {
                        *d = base.join(rel);
                    }
                    if let (Some(d), Some(base)) = (out.v2.as_mut(), self.v2.as_ref()) {
                        *d = base.join(rel);
                    }
                }
                Some(names) => {
                    for name in names {
                        let i = self
                            .v1
                            .iter()
                            .position(|(c, _)| c.iter().any(|x| x == name))
                            .ok_or_else(|| CgroupError::Unsupported {
                                field: "--cgroup".into(),
                                message: format!("unknown controller {name:?}"),
                            })?;
                        out.v1[i].1 = self.v1[i].1.join(rel);
                    }
                }
            }
        }
        Ok(out)
    }

    /// An `O_PATH` fd of the v2 directory for `clone3(CLONE_INTO_CGROUP)`.
    ///
    /// `O_PATH`: `clone3` takes it, and nothing can be read or written
    /// through it (the child closes it first thing anyway).
    pub fn v2_fd(&self) -> Option<std::os::fd::OwnedFd> {
        use std::os::unix::fs::OpenOptionsExt;
        let d = self.v2.as_ref()?;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(d)
            .ok()
            .map(Into::into)
    }

    /// Pids in the cgroup (from the first hierarchy that answers).
    pub fn procs(&self) -> Result<Vec<i32>> {
        let dir = self
            .v1_dir("pids")
            .or_else(|| self.v1_dir("freezer"))
            .or(self.v2.as_deref())
            .or_else(|| self.v1.first().map(|(_, d)| d.as_path()))
            .ok_or(CgroupError::NoHierarchy)?;
        let mut pids = Vec::new();
        procs_under(dir, &mut pids)?;
        Ok(pids)
    }

    /// Send `sig` to every process of the cgroup. With SIGKILL on a v2
    /// hierarchy that has `cgroup.kill`, the kernel does it atomically.
    pub fn signal_all(&self, sig: i32) -> Result<()> {
        if !self.systemd_owned()? {
            return Ok(());
        }
        if sig == libc::SIGKILL {
            if let Some(v2) = &self.v2 {
                let kill = v2.join("cgroup.kill");
                if kill.exists() && write(&kill, "1").is_ok() && self.v1.is_empty() {
                    return Ok(());
                }
            }
        }
        // Security: a process that forks faster than cgroup.procs is read
        // would escape the walk; frozen, nothing forks or exits (so no pid
        // is reused) until every member has its signal. Then thawed, so
        // that the signals are delivered, unless it was paused already.
        // Thawed afterwards whenever we tried, even if the freeze did not
        // report done in time: never left frozen by us.
        let froze = !self.is_frozen();
        if froze {
            let _ = self.freeze(true);
        }
        let procs = self.procs();
        if let Ok(pids) = &procs {
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::try_from(sig).ok(),
                );
            }
        }
        if froze {
            self.freeze(false)?;
        }
        procs.map(drop)
    }
}
