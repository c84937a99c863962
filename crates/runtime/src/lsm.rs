//! Linux security modules: the AppArmor profile and SELinux label the
//! process execs into. Both are set with an "on next exec" attribute, so
//! they take effect exactly at the user's program.
//!
//! When the spec asks for a module the host does not run, create (and
//! exec) fail with the field's name instead of running unconfined.
//! `linux.mountLabel` is ignored without SELinux, as runc does.

use crate::error::{ChildError, Error, Result};
use capsa_spec::ProcessPlan;
use std::path::Path;

/// Whether AppArmor is enabled on this host.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// Whether SELinux is enabled on this host.
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Refuse labels the host cannot apply (before anything is created).
pub fn check(p: &ProcessPlan, field: &str) -> Result<()> {
    if let Some(profile) = &p.apparmor_profile {
        if !apparmor_enabled() {
            return Err(Error::Unsupported(format!("{field}.apparmorProfile: {profile:?} asked, but AppArmor is not enabled on this host")));
        }
    }
    if let Some(label) = &p.selinux_label {
        if !selinux_enabled() {
            return Err(Error::Unsupported(format!(
                "{field}.selinuxLabel: {label:?} asked, but SELinux is not enabled on this host"
            )));
        }
    }
    Ok(())
}

/// The "on next exec" attribute files of the labels the process asked
/// for, opened from the verified procfs before the door closes it, and
/// written just before execve.
pub struct Labels(Vec<(std::os::fd::OwnedFd, String, &'static str)>);

impl Labels {
    /// The fds the door must keep open (files, never directories).
    pub fn fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.0.iter().map(|(fd, _, _)| fd.as_raw_fd()).collect()
    }

    /// Set the labels for the coming execve.
    pub fn apply(self) -> std::result::Result<(), ChildError> {
        for (fd, value, what) in self.0 {
            nix::unistd::write(&fd, value.as_bytes())
                .map_err(|e| ChildError::sys("process", what, "attr", e))?;
        }
        Ok(())
    }
}

/// Open the attribute files for `p`'s labels (through `proc`, our own
/// procfs: a mount over `/proc` cannot redirect them, CVE-2019-16884 and
/// CVE-2023-28642).
pub fn prepare(
    proc: &capsa_sys::procfs::ProcFs,
    p: &ProcessPlan,
) -> std::result::Result<Labels, ChildError> {
    use capsa_sys::procfs::ProcFs;
    let open = |rel: &str, what: &'static str| {
        proc.open(&ProcFs::own(rel), libc::O_WRONLY)
            .map_err(|e| ChildError::sys("process", what, format!("/proc/self/{rel}"), e))
    };
    let mut out = Vec::new();
    if let Some(profile) = &p.apparmor_profile {
        // The AppArmor-specific attribute, else the shared one (older kernels).
        let what = "set AppArmor profile";
        let fd = open("attr/apparmor/exec", what).or_else(|_| open("attr/exec", what))?;
        out.push((fd, format!("exec {profile}"), what));
    }
    if let Some(label) = &p.selinux_label {
        let what = "set SELinux label";
        out.push((open("attr/exec", what)?, label.clone(), what));
    }
    Ok(Labels(out))
}
