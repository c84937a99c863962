//! Which OCI runtime drives a container: capsa's own library, in process,
//! or a runtime binary with runc's command line (`--runtime runc`, crun,
//! capsa-runtime), called as containerd's shim calls it.

use crate::container::Container;
use crate::error::{Error, Kind, Result};
use crate::options::ExecOptions;
use crate::protocol::Created;
use crate::Engine;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

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

    /// Create container `c` (in the monitor's create child, whose stdio
    /// is the container's): what the monitor is told, and the pty master
    /// for a terminal.
    pub fn create(&self, engine: &Engine, c: &Container) -> Result<(Created, Option<OwnedFd>)> {
        let tty = c.options.tty;
        match self {
            Runtime::Builtin(rt) => {
                let opts = capsa_runtime::CreateOptions {
                    id: c.id.clone(),
                    bundle: c.dir(engine),
                    own_console: tty,
                    systemd_cgroup: c.systemd_scope.is_some(),
                    // The engine's own containers take capsa's hardened behaviour.
                    mode: capsa_spec::Mode::Hardened,
                    ..Default::default()
                };
                let mut created = capsa_runtime::create(rt, &opts)?;
                let console = created.console.take();
                Ok((
                    Created::Created {
                        pid: created.state.pid,
                        trace: created.trace.lines(),
                    },
                    console,
                ))
            }
            Runtime::External { bin, .. } => create_external(engine, c, bin, tty),
        }
    }

    /// Run `o` in container `c`; with `detach`, return at once (exit code
    /// 0), else wait with signals forwarded and the pty proxied, and
    /// return its exit code.
    pub fn exec(&self, engine: &Engine, c: &Container, o: &ExecOptions) -> Result<i32> {
        if let Runtime::External { bin, .. } = self {
            let status = external_exec(engine, c, bin, o, None)?
                .status()
                .map_err(|e| Error::sys("spawn", bin.display(), e))?;
            use std::os::unix::process::ExitStatusExt;
            return Ok(status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
        }
        if !o.detach {
            let _ = capsa_sys::process::set_child_subreaper();
            capsa_runtime::foreground::block_signals();
        }
        let (pid, console) = self.spawn(engine, c, o)?;
        if o.detach {
            return Ok(0);
        }
        Ok(capsa_runtime::foreground::wait(pid, console))
    }

    /// Start `o` in container `c` and return its pid (and pty master)
    /// without waiting: a caller that made itself a child subreaper is its
    /// parent once this returns. Through the door, as every exec.
    pub fn spawn(
        &self,
        engine: &Engine,
        c: &Container,
        o: &ExecOptions,
    ) -> Result<(i32, Option<OwnedFd>)> {
        let rt = match self {
            Runtime::Builtin(rt) => rt,
            Runtime::External { bin, .. } => {
                let pid_file = engine.run.join("ext-runtime").join(format!(
                    "exec-{}-{}.pid",
                    c.short_id(),
                    std::process::id()
                ));
                let detached = ExecOptions {
                    detach: true,
                    ..o.clone()
                };
                // Its stdio is ours (a probe's pipe): the detached process
                // inherits it, and the command does not wait on it.
                let status = external_exec(engine, c, bin, &detached, Some(&pid_file))?
                    .stdout(std::process::Stdio::inherit())
                    .stderr(std::process::Stdio::inherit())
                    .status()
                    .map_err(|e| Error::sys("spawn", bin.display(), e))?;
                let pid = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|p| p.trim().parse().ok());
                let _ = std::fs::remove_file(&pid_file);
                return match pid {
                    Some(pid) if status.success() => Ok((pid, None)),
                    _ => {
                        let message = format!("{status} (its words went to the process's stderr)");
                        Err(Error::ExternalRuntime {
                            bin: bin.display().to_string(),
                            verb: "exec".into(),
                            kind: kind_of_words(&message),
                            message,
                        })
                    }
                };
            }
        };
        if let Some(w) = o.workdir.as_ref().filter(|w| !w.starts_with('/')) {
            return Err(crate::error::flag("-w", format!("{w:?} must be absolute")));
        }
        let mut overrides = capsa_runtime::Overrides {
            args: o.args.clone(),
            terminal: o.tty,
            // `-e KEY` takes the value from our own environment, as docker's.
            env: o.env.iter().map(|e| crate::spec::env_entry(e)).collect(),
            cwd: o.workdir.as_ref().map(Into::into),
            ..Default::default()
        };
        if let Some(u) = &o.user {
            // Names as the image's /etc/passwd and /etc/group give them.
            let (uid, gid, groups) = crate::spec::resolve_user(&c.dir(engine).join("rootfs"), u)?;
            overrides.uid = Some(uid);
            overrides.gid = Some(gid);
            overrides.additional_gids = Some(groups);
        }
        if o.privileged {
            overrides.caps = (0..=capsa_sys::caps::last_cap()).collect();
        }
        let p = capsa_runtime::process_with(rt, &c.id, &overrides)?;
        if !o.interactive && !o.tty {
            // No -i: the process gets no stdin, as with docker.
            if let Ok(null) = std::fs::File::open("/dev/null") {
                use std::os::fd::AsRawFd;
                let _ = capsa_sys::fd::dup_to(null.as_raw_fd(), 0);
            }
        }
        let e = capsa_runtime::exec(
            rt,
            &capsa_runtime::ExecOptions {
                id: c.id.clone(),
                process: p,
                console_socket: None,
                pid_file: None,
                preserve_fds: 0,
                // docker refuses an exec into a paused container.
                ignore_paused: false,
                cgroups: Vec::new(),
            },
        )?;
        Ok((e.pid, e.console))
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

/// Create through a runtime binary with runc's command line: its stdio is
/// the container's (runc passes it through), a console socket receives the
/// pty master, and the pid comes from `--pid-file`. Runs in the create
/// child; the runtime's init is reparented to the monitor when it exits.
fn create_external(
    engine: &Engine,
    c: &Container,
    bin: &std::path::Path,
    tty: bool,
) -> Result<(Created, Option<OwnedFd>)> {
    let t0 = Instant::now();
    let files = engine.files_dir(&c.id)?;
    let pid_file = files.join("pid");
    let log = files.join("runtime.log");
    let mut cmd = std::process::Command::new(bin);
    // capsa-runtime takes runc's behaviour unless told: the engine's
    // containers are hardened whichever way they are made.
    if bin.file_name().is_some_and(|n| n == "capsa-runtime") {
        cmd.arg("--hardened");
    }
    cmd.arg("--root")
        .arg(engine.run.join("ext-runtime"))
        .arg("--log")
        .arg(&log)
        .arg("create")
        .arg("--bundle")
        .arg(c.dir(engine))
        .arg("--pid-file")
        .arg(&pid_file);
    let console = if tty {
        let path = files.join("console.sock");
        let l = console_listener(&path)?;
        cmd.arg("--console-socket").arg(&path);
        Some(l)
    } else {
        None
    };
    cmd.arg(&c.id);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::sys("spawn", bin.display(), e))?;
    let master = match &console {
        Some(l) => {
            // The runtime connects once the pty exists (or exits on error).
            let ready = crate::protocol::poll_in(&[l.as_fd()], 30_000);
            if ready.first().copied().unwrap_or(false) {
                let conn = rustix::net::accept_with(l, rustix::net::SocketFlags::CLOEXEC)
                    .map_err(|e| Error::sys("accept", "console socket", e))?;
                let mut buf = [0u8; 4096];
                capsa_sys::fd::recv_with_fd(conn.as_fd(), &mut buf)
                    .map_err(|e| Error::sys("recvmsg", "console socket", e))?
                    .1
            } else {
                None
            }
        }
        None => None,
    };
    let status = child
        .wait()
        .map_err(|e| Error::sys("wait", bin.display(), e))?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let last = text.lines().last().unwrap_or("").to_string();
        let message = if last.is_empty() {
            status.to_string()
        } else {
            last
        };
        return Err(Error::ExternalRuntime {
            bin: bin.display().to_string(),
            verb: "create".into(),
            kind: crate::runtime::kind_of_words(&message),
            message,
        });
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::ExternalRuntime {
            bin: bin.display().to_string(),
            verb: "create".into(),
            kind: crate::error::Kind::Runtime,
            message: "it wrote no pid file".into(),
        })?;
    let trace = vec![format!(
        "{:>8} us {:>+7} us  runtime {} create (an external runtime: its own steps are not traced)",
        t0.elapsed().as_micros(),
        t0.elapsed().as_micros(),
        bin.display()
    )];
    Ok((Created::Created { pid, trace }, master))
}

fn console_listener(path: &std::path::Path) -> Result<OwnedFd> {
    crate::protocol::listen_unix(
        path,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::empty(),
        1,
    )
    .map_err(|e| Error::sys("listen", path.display(), e))
}

/// `exec` through a runtime binary with runc's command line, in the
/// foreground (it proxies the terminal itself with `-t`).
/// `bin exec` of `o` in `c` (writing its pid to `pid_file`), as a
/// command still to run.
fn external_exec(
    engine: &Engine,
    c: &Container,
    bin: &std::path::Path,
    o: &ExecOptions,
    pid_file: Option<&std::path::Path>,
) -> Result<std::process::Command> {
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--root")
        .arg(engine.run.join("ext-runtime"))
        .arg("exec");
    if o.tty {
        cmd.arg("--tty");
    }
    if o.detach {
        cmd.arg("--detach");
    }
    if let Some(f) = pid_file {
        cmd.arg("--pid-file").arg(f);
    }
    for e in &o.env {
        cmd.arg("--env").arg(e);
    }
    if let Some(w) = &o.workdir {
        cmd.arg("--cwd").arg(w);
    }
    if let Some(u) = &o.user {
        let (uid, gid, groups) = crate::spec::resolve_user(&c.dir(engine).join("rootfs"), u)?;
        cmd.arg("--user").arg(format!("{uid}:{gid}"));
        // The user's own groups, not those of the config's user (runc
        // keeps the config's unless told).
        for g in groups {
            cmd.arg("--additional-gids").arg(g.to_string());
        }
    }
    if o.privileged {
        for cap in (0..=capsa_sys::caps::last_cap())
            .filter_map(|n| capsa_spec::caps::NAMES.get(n as usize))
        {
            cmd.arg("--cap").arg(cap);
        }
    }
    cmd.arg(&c.id).args(&o.args);
    if !o.interactive && !o.tty {
        cmd.stdin(std::process::Stdio::null());
    }
    Ok(cmd)
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
