//! `capsa exec`: a process joined to a running container's namespaces and
//! cgroup, with the container's own settings (capabilities, seccomp,
//! environment) unless the flags say otherwise.

use crate::container::Container;
use crate::error::{Error, Result};
use crate::Engine;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub detach: bool,
    pub privileged: bool,
}

/// Run it; with `detach`, return at once (exit code 0), else wait with
/// signals forwarded and the pty proxied, and return its exit code.
pub fn exec(engine: &Engine, c: &Container, o: &ExecOptions) -> Result<i32> {
    if !c.init_alive() {
        return Err(Error::Conflict(format!(
            "container {} is not running",
            c.name
        )));
    }
    if o.args.is_empty() {
        return Err(crate::error::flag("COMMAND", "exec needs a command"));
    }
    if let Some(bin) = &c.options.runtime {
        return exec_external(engine, c, bin, o);
    }
    let rt = engine.runtime_store();
    let st = rt.load(&c.id)?;
    let base = st.config.process().clone().ok_or_else(|| Error::Refused {
        what: format!("container {}", c.name),
        reason: "no process in its config".into(),
    })?;
    let mut p = capsa_spec::ProcessPlan::from_oci(&base, "process").map_err(Error::Spec)?;
    p.args = o.args.clone();
    p.terminal = o.tty;
    p.console_size = None;
    for e in &o.env {
        let kv = if e.contains('=') {
            e.clone()
        } else {
            format!("{e}={}", std::env::var(e).unwrap_or_default())
        };
        let key = kv.split('=').next().unwrap_or_default().to_string();
        p.env.retain(|x| x.split('=').next() != Some(key.as_str()));
        p.env.push(kv);
    }
    if let Some(w) = &o.workdir {
        if !w.starts_with('/') {
            return Err(crate::error::flag("-w", format!("{w:?} must be absolute")));
        }
        p.cwd = w.into();
    }
    if let Some(u) = &o.user {
        let (uid, gid, groups) = crate::spec::resolve_user(&c.dir(engine).join("rootfs"), u)?;
        p.uid = uid;
        p.gid = gid;
        p.additional_gids = groups;
    }
    if o.privileged {
        for cap in 0..=capsa_sys::caps::last_cap() {
            p.grant_cap(cap);
        }
    }
    if !o.interactive && !o.tty {
        // No -i: the process gets no stdin, as with docker.
        if let Ok(null) = std::fs::File::open("/dev/null") {
            use std::os::fd::AsRawFd;
            let _ = capsa_sys::fd::dup_to(null.as_raw_fd(), 0);
        }
    }
    if !o.detach {
        let _ = capsa_sys::process::set_child_subreaper();
        capsa_runtime::foreground::block_signals();
    }
    let e = capsa_runtime::exec(
        &rt,
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
    if o.detach {
        return Ok(0);
    }
    Ok(capsa_runtime::foreground::wait(e.pid, e.console))
}

/// `exec` through a runtime binary with runc's command line, in the
/// foreground (it proxies the terminal itself with `-t`).
fn exec_external(engine: &Engine, c: &Container, bin: &str, o: &ExecOptions) -> Result<i32> {
    let mut cmd = std::process::Command::new(crate::runtime::resolve_bin(bin));
    cmd.arg("--root")
        .arg(engine.run.join("ext-runtime"))
        .arg("exec");
    if o.tty {
        cmd.arg("--tty");
    }
    if o.detach {
        cmd.arg("--detach");
    }
    for e in &o.env {
        cmd.arg("--env").arg(e);
    }
    if let Some(w) = &o.workdir {
        cmd.arg("--cwd").arg(w);
    }
    if let Some(u) = &o.user {
        let (uid, gid, _) = crate::spec::resolve_user(&c.dir(engine).join("rootfs"), u)?;
        cmd.arg("--user").arg(format!("{uid}:{gid}"));
    }
    cmd.arg(&c.id).args(&o.args);
    if !o.interactive && !o.tty {
        cmd.stdin(std::process::Stdio::null());
    }
    let status = cmd.status().map_err(|e| Error::sys("spawn", bin, e))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
