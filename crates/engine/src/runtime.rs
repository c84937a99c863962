//! Which OCI runtime drives a container: capsa's own library, in process,
//! or a runtime binary with runc's command line (`--runtime runc`, crun,
//! capsa-runtime), called as containerd's shim calls it.

use crate::container::Container;
use crate::error::{Error, Kind, Result};
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
            .map_err(|e| Error::sys("spawn", bin.display(), e))?;
        if o.status.success() {
            Ok(())
        } else {
            let message = String::from_utf8_lossy(&o.stderr).trim().to_string();
            Err(Error::ExternalRuntime {
                bin: bin.display().to_string(),
                verb: args.first().unwrap_or(&"").to_string(),
                kind: kind_of_words(&message),
                message,
            })
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
        .map_err(|e| Error::sys("read", "/proc/self/mountinfo", e))?;
    Ok(capsa_cgroups::Cgroup::new(
        &h,
        std::path::Path::new(&c.cgroup_path),
    ))
}

/// The kind of another runtime's failure, read from its words once, here:
/// runc says a container's missing or unrunnable program only in words
/// (`exec: "x": executable file not found in $PATH`), which docker reads
/// the same way.
pub(crate) fn kind_of_words(message: &str) -> Kind {
    let s = message.to_lowercase();
    let exec = s.contains("exec:") || s.contains("exec failed");
    if exec && (s.contains("not found") || s.contains("no such file")) {
        Kind::ProgramNotFound
    } else if exec && s.contains("permission denied") {
        Kind::ProgramCannotRun
    } else {
        Kind::Runtime
    }
}

#[cfg(test)]
mod words {
    use super::*;

    #[test]
    fn another_runtimes_words_become_kinds_once() {
        let nf = r#"runc run failed: unable to start container process: exec: "nope": executable file not found in $PATH"#;
        assert_eq!(kind_of_words(nf), Kind::ProgramNotFound);
        let perm = "exec failed: unable to start container process: exec: /etc: permission denied";
        assert_eq!(kind_of_words(perm), Kind::ProgramCannotRun);
        assert_eq!(
            kind_of_words("cgroup: no such file or directory"),
            Kind::Runtime
        );
    }
}
