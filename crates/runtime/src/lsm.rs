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

/// Set the labels for the coming execve.
pub fn apply(p: &ProcessPlan) -> std::result::Result<(), ChildError> {
    let write = |path: &str, value: String, what: &str| {
        std::fs::write(path, value).map_err(|e| {
            ChildError::sys(
                "process",
                what,
                path,
                nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            )
        })
    };
    if let Some(profile) = &p.apparmor_profile {
        // The AppArmor-specific attribute, else the shared one (older kernels).
        let path = if Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        write(path, format!("exec {profile}"), "set AppArmor profile")?;
    }
    if let Some(label) = &p.selinux_label {
        write("/proc/self/attr/exec", label.clone(), "set SELinux label")?;
    }
    Ok(())
}
