//! Which OCI runtime drives a container: capsa's own library, in process,
//! or a runtime binary with runc's command line (`--runtime runc`, crun,
//! capsa-runtime), called as containerd's shim calls it.

use crate::container::Container;
use crate::error::{Error, Result};
use crate::Engine;
use std::path::PathBuf;
use std::process::Command;

/// A container's runtime.
pub enum Runtime {
    /// The runtime library, its state under `<run>/runtime`.
    Builtin(capsa_runtime::Store),
    /// A runtime binary and the `--root` capsa gives it.
    External { bin: PathBuf, root: PathBuf },
}

impl Runtime {
    /// The runtime `c` was created with.
    pub fn of(engine: &Engine, c: &Container) -> Runtime {
        match &c.options.runtime {
            Some(bin) => Runtime::External {
                bin: resolve_bin(bin),
                root: engine.run.join("ext-runtime"),
            },
            None => Runtime::Builtin(engine.runtime_store()),
        }
    }

    /// Run `bin --root root ARGS`; its stderr becomes the error.
    fn external(bin: &PathBuf, root: &PathBuf, args: &[&str]) -> Result<()> {
        let o = Command::new(bin)
            .arg("--root")
            .arg(root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::Other(format!("{}: {e}", bin.display())))?;
        if o.status.success() {
            Ok(())
        } else {
            Err(Error::Other(format!(
                "{} {}: {}",
                bin.display(),
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&o.stderr).trim()
            )))
        }
    }

    pub fn start(&self, id: &str) -> Result<()> {
        match self {
            Runtime::Builtin(s) => capsa_runtime::start(s, id).map(drop).map_err(Into::into),
            Runtime::External { bin, root } => Runtime::external(bin, root, &["start", id]),
        }
    }

    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<()> {
        match self {
            Runtime::Builtin(s) => capsa_runtime::kill(s, id, sig, all).map_err(Into::into),
            Runtime::External { bin, root } => {
                let sig = sig.to_string();
                let mut args = vec!["kill"];
                if all {
                    args.push("--all");
                }
                args.extend([id, sig.as_str()]);
                Runtime::external(bin, root, &args)
            }
        }
    }

    /// Forget the container (killing what is left).
    pub fn delete(&self, id: &str) {
        match self {
            Runtime::Builtin(s) => {
                let _ = capsa_runtime::delete(s, id, true);
            }
            Runtime::External { bin, root } => {
                let _ = Runtime::external(bin, root, &["delete", "--force", id]);
            }
        }
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        match self {
            Runtime::Builtin(s) => capsa_runtime::pause(s, id).map_err(Into::into),
            Runtime::External { bin, root } => Runtime::external(bin, root, &["pause", id]),
        }
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        match self {
            Runtime::Builtin(s) => capsa_runtime::resume(s, id).map_err(Into::into),
            Runtime::External { bin, root } => Runtime::external(bin, root, &["resume", id]),
        }
    }
}

/// `runc` -> the first `runc` on PATH; a path stays as given.
pub fn resolve_bin(name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        })
        .unwrap_or(None)
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Whether cgroups here are systemd's to manage: systemd is PID 1 and the
/// hierarchy is pure v2.
pub fn systemd_host() -> bool {
    std::path::Path::new("/run/systemd/system").exists()
        && nix::sys::statfs::statfs("/sys/fs/cgroup")
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// The container's cgroup, whatever runtime made it: for stats, processes
/// and the freezer state.
pub fn cgroup(c: &Container) -> Result<capsa_cgroups::Cgroup> {
    let h = capsa_cgroups::Hierarchy::detect()
        .map_err(|e| Error::Other(format!("reading the cgroup hierarchy: {e}")))?;
    Ok(capsa_cgroups::Cgroup::new(
        &h,
        std::path::Path::new(&c.cgroup_path),
    ))
}
