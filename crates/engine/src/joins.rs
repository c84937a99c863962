//! The namespaces a container joins from others (`--network`, `--pid`,
//! `--ipc`, `--uts` as `container:NAME`), resolved again at every start.
//!
//! Security: a namespace is joined by its path, `/proc/PID/ns/KIND`, and a
//! pid outlives nothing: once the other container's init is gone (it
//! restarted, or the host rebooted) that pid may be any process's, a host
//! daemon's too, and joining it would put the container in the host's
//! namespaces. So the path is never kept from one start to the next: each
//! start resolves the other container again (its record, its init by a
//! pidfd checked against the recorded start time), takes the namespace's
//! identity (device and inode) while the pidfd shows that init alive, and
//! once the new init exists checks that it joined exactly that namespace.

use crate::container::{Container, Status};
use crate::error::{Error, Result};
use crate::options::NetworkMode;
use crate::Engine;
use capsa_spec::oci::LinuxNamespaceType as T;
use nix::unistd::Pid;
use std::os::fd::AsFd;

/// A namespace joined: its kind (`/proc/PID/ns/` name), its type, the
/// path the runtime opens, and its identity.
#[derive(Debug, Clone)]
pub struct Join {
    pub kind: &'static str,
    pub typ: T,
    pub path: String,
    id: (u64, u64),
}

fn ns_id(path: &str) -> Option<(u64, u64)> {
    rustix::fs::stat(path).ok().map(|s| (s.st_dev, s.st_ino))
}

/// Container `what`'s namespace of `kind`, as `flag` asked for it.
pub fn resolve(
    engine: &Engine,
    flag: &str,
    what: &str,
    kind: &'static str,
    typ: T,
) -> Result<(Join, Container)> {
    let gone = || {
        Error::Conflict(format!(
            "{flag} container:{what}: that container is not running"
        ))
    };
    let t = crate::manage::refresh(engine, engine.find(what)?)?;
    if t.state.status != Status::Running || !t.init_alive() {
        return Err(gone());
    }
    // The pidfd pins the process: if it exits, the pidfd says so, and a
    // recycled pid never passes for it.
    let pidfd = capsa_sys::process::pidfd_open(Pid::from_raw(t.state.pid)).map_err(|_| gone())?;
    if !t.init_alive() {
        return Err(gone());
    }
    let path = format!("/proc/{}/ns/{kind}", t.state.pid);
    let id = ns_id(&path).ok_or_else(gone)?;
    let exited = crate::protocol::poll_in(&[pidfd.as_fd()], 0);
    if exited.first() == Some(&true) {
        return Err(gone());
    }
    Ok((
        Join {
            kind,
            typ,
            path,
            id,
        },
        t,
    ))
}

/// Every namespace `c`'s flags join, resolved now.
pub fn all(engine: &Engine, o: &crate::RunOptions) -> Result<Vec<Join>> {
    use crate::flags::NsMode;
    let mut out = Vec::new();
    if let NetworkMode::Container(t) = crate::options::mode(o.network.as_deref()) {
        out.push(resolve(engine, "--network", &t, "net", T::Network)?.0);
    }
    for (flag, mode, kind, typ) in o.namespace_modes() {
        if let NsMode::Container(t) = mode {
            out.push(resolve(engine, flag, &t, kind, typ)?.0);
        }
    }
    Ok(out)
}

/// Before a start: resolve `c`'s joins again and write their paths into
/// its bundle (the runtime opens them). What to check after.
pub fn refresh(engine: &Engine, c: &Container) -> Result<Vec<Join>> {
    let joins = all(engine, &c.options)?;
    if joins.is_empty() {
        return Ok(joins);
    }
    let path = c.dir(engine).join("config.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::Io {
        op: "read",
        path: path.clone(),
        source: e,
    })?;
    let mut spec: capsa_spec::oci::Spec =
        serde_json::from_slice(&bytes).map_err(|e| Error::data(path.display(), e))?;
    if let Some(list) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut())
    {
        for n in list.iter_mut() {
            if let Some(j) = joins.iter().find(|j| j.typ == n.typ()) {
                n.set_path(Some(std::path::PathBuf::from(&j.path)));
            }
        }
    }
    let out = serde_json::to_vec_pretty(&spec).map_err(|e| Error::data(path.display(), e))?;
    capsa_sys::file::write_atomic(&path, &out, 0o600, capsa_sys::file::Durability::Volatile)
        .map_err(|e| Error::Io {
            op: "write",
            path: path.clone(),
            source: e,
        })?;
    Ok(joins)
}

/// After the create: the new init `pid` is in exactly the namespaces
/// resolved (not whatever a recycled pid held by the time the runtime
/// opened the path).
pub fn verify(pid: i32, joins: &[Join]) -> Result<()> {
    for j in joins {
        if ns_id(&format!("/proc/{pid}/ns/{}", j.kind)) != Some(j.id) {
            return Err(Error::Refused {
                what: format!("the {} namespace joined", j.kind),
                reason: "it is not the one resolved: the other container's init went away during the start".into(),
            });
        }
    }
    Ok(())
}
