//! Making a container's cgroup: its directories, parents included, and
//! v2's delegation of controllers down to it.
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use nix::errno::Errno;
#[allow(unused_imports)]
use std::os::fd::{AsRawFd, OwnedFd};
#[allow(unused_imports)]
use std::path::{Path, PathBuf};

impl Cgroup {
    /// Create every directory (and missing parents), recording what we made.
    /// On failure, what this call created is removed again.
    pub fn create(&mut self) -> Result<()> {
        let dirs: Vec<(Option<Vec<String>>, PathBuf)> = self
            .v1
            .iter()
            .map(|(c, d)| (Some(c.clone()), d.clone()))
            .chain(self.v2.iter().map(|d| (None, d.clone())))
            .collect();
        for (controllers, dir) in dirs {
            if let Err(e) = self.mkdir_all(&dir, controllers.as_deref()) {
                let _ = self.remove();
                return Err(e);
            }
        }
        self.delegate_v2();
        Ok(())
    }

    /// On v2 a controller reaches a cgroup only when its parent lists it in
    /// `cgroup.subtree_control`. Enable, in the parents we created (never in
    /// others'), every controller they have, so the container's cgroup gets
    /// what its ancestors offer. A controller that cannot be enabled is
    /// simply not offered; asking for its limits is then a clear error.
    pub(crate) fn delegate_v2(&self) {
        let Some(leaf) = &self.v2 else { return };
        for d in self
            .created
            .iter()
            .filter(|d| *d != leaf && leaf.starts_with(d))
        {
            for c in v2_controllers(d) {
                let _ = write(&d.join("cgroup.subtree_control"), &format!("+{c}"));
            }
        }
    }

    /// Enable the v2 controllers `needed` for this cgroup: in the
    /// `cgroup.subtree_control` of its parent, and up the tree as far as a
    /// controller is not yet offered (as runc does). An ancestor offers a
    /// controller to its children only through its own subtree_control,
    /// and systemd enables there only what some unit asks for.
    ///
    /// Errors name the file and the rule at fault: a cgroup with processes
    /// of its own cannot give domain controllers to children (v2's
    /// no-internal-processes rule), and a threaded subtree takes only
    /// threaded controllers.
    pub(crate) fn enable_v2(&self, needed: &[String]) -> Result<()> {
        let Some(leaf) = &self.v2 else { return Ok(()) };
        // The hierarchy's root: the leaf less this cgroup's own path.
        let rel = self.path.strip_prefix("/").unwrap_or(&self.path);
        let Some(root) = leaf.ancestors().nth(rel.components().count()) else {
            return Ok(());
        };
        for ctl in needed {
            // The ancestors, nearest first, up to the first that has the
            // controller itself (the root has them all).
            let mut chain = Vec::new();
            let mut cur = leaf.parent();
            while let Some(d) = cur.filter(|d| d.starts_with(root)) {
                chain.push(d.to_path_buf());
                if d == root || v2_controllers(d).iter().any(|c| c == ctl) {
                    break;
                }
                cur = d.parent();
            }
            // Top down: each step offers it to the next.
            for d in chain.iter().rev() {
                let control = d.join("cgroup.subtree_control");
                let on = std::fs::read_to_string(&control).unwrap_or_default();
                if on.split_whitespace().any(|c| c == ctl) {
                    continue;
                }
                if !v2_controllers(d).iter().any(|c| c == ctl) {
                    // The host does not have it at all: planning says so.
                    break;
                }
                std::fs::write(&control, format!("+{ctl}")).map_err(|e| {
                    let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
                    let why = match errno {
                        Errno::EBUSY => format!(
                            "{} has processes of its own, and cgroup v2 gives controllers only to cgroups without (the no-internal-processes rule)",
                            d.display()
                        ),
                        Errno::EOPNOTSUPP => format!(
                            "{} is in a threaded subtree, which takes only threaded controllers",
                            d.display()
                        ),
                        _ => errno.desc().to_string(),
                    };
                    CgroupError::Enable {
                        controller: ctl.clone(),
                        path: control.clone(),
                        why,
                    }
                })?;
            }
        }
        Ok(())
    }

    pub(crate) fn mkdir_all(&mut self, dir: &Path, controllers: Option<&[String]>) -> Result<()> {
        let mut missing = Vec::new();
        let mut cur = dir;
        while !cur.exists() {
            missing.push(cur.to_path_buf());
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        for d in missing.into_iter().rev() {
            match std::fs::create_dir(&d) {
                Ok(()) => self.created.push(d.clone()),
                // Made by a concurrent create an instant ago, maybe not
                // filled yet: the cpuset check below covers it.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CgroupError::sys("mkdir", &d, e)),
            }
            // A new v1 cpuset is empty and refuses tasks (ENOSPC) until it
            // has cpus and mems: inherit the parent's, top down, also for a
            // parent another create made and has not filled yet.
            if controllers.is_some_and(|c| c.iter().any(|x| x == "cpuset")) {
                resources::inherit_cpuset(&d)?;
            }
        }
        Ok(())
    }
}
