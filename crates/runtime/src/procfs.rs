//! The runtime's writes to `/proc`, all through a verified procfs handle
//! ([`capsa_sys::procfs`]); see there for the attacks this answers.

use crate::error::ChildError;
use capsa_sys::procfs::ProcFs;
use std::path::{Component, PathBuf};

/// Our own procfs, for the calling process's pid namespace.
pub fn open() -> Result<ProcFs, ChildError> {
    ProcFs::new().map_err(|e| ChildError::sys("procfs", "open", "proc", e))
}

/// Write sysctl `key` (`net.ipv4.ip_forward`) under `sys/` of `proc`. The
/// key must name a file under `sys/` and nothing else: no empty, `.` or
/// `..` component can lead the write to another procfs file.
pub fn write_sysctl(proc: &ProcFs, key: &str, value: &str) -> Result<(), ChildError> {
    let rel = PathBuf::from(key.replace('.', "/"));
    let plain = !key.is_empty()
        && !key.contains("//")
        && !key.contains("..")
        && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(ChildError::msg(
            "init",
            "write sysctl",
            key,
            "not a sysctl name",
        ));
    }
    proc.write(&PathBuf::from("sys").join(&rel), value.as_bytes())
        .map_err(|e| ChildError::sys("init", "write sysctl", key, e))
}
