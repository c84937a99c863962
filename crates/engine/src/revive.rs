//! A stopped container made ready to start again where a reboot (or a
//! run directory emptied by hand) took what lived outside the store: its
//! overlay mount, and the hostname, hosts and resolv.conf files of
//! `<run>/files/<id>`. The rest (record, bundle, upper layer, address
//! leases) is in the store and survives.

use crate::container::{Container, Status};
use crate::error::{Error, Result};
use crate::Engine;
use std::path::PathBuf;

/// Mount the snapshot and write the files again where they are missing.
/// What it did, for the trace.
pub fn prepare(engine: &Engine, c: &Container) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let dir = c.dir(engine);
    let rootfs = dir.join("rootfs");
    let dev = |p: &std::path::Path| rustix::fs::stat(p).map(|s| s.st_dev);
    let mounted = matches!((dev(&dir), dev(&rootfs)), (Ok(a), Ok(b)) if a != b);
    if !mounted {
        let lowers: Vec<PathBuf> = c.lowers.iter().map(PathBuf::from).collect();
        let keep_id = crate::userns::keep_id(c.options.userns.as_deref())?;
        crate::create::mount_snapshot(&dir, &lowers, c.idmap, keep_id)?;
        done.push(format!("overlay mounted again at {}", rootfs.display()));
    }
    let files = engine.files_dir(&c.id)?;
    let names = ["hostname", "hosts", "resolv.conf"];
    if !names.iter().all(|f| files.join(f).exists()) {
        let mode = crate::network::mode(c.options.network.as_deref());
        let join = match &mode {
            crate::network::Mode::Container(t) => {
                let t = crate::manage::refresh(engine, engine.find(t)?)?;
                if t.state.status != Status::Running {
                    return Err(Error::Conflict(format!(
                        "--network container:{}: that container is not running",
                        t.name
                    )));
                }
                Some(t)
            }
            _ => None,
        };
        let shared = crate::create::shared_namespaces(engine, &c.options)?;
        let hostname = shared
            .hostname
            .unwrap_or_else(|| crate::spec::hostname(&c.options, &mode, &c.id));
        let eps = crate::network::endpoints(&dir);
        let hosts = crate::create::hosts_text(
            engine,
            &mode,
            join.as_ref(),
            (&c.id, &c.name),
            &hostname,
            &eps,
            &c.options,
        );
        crate::spec::write_files(&c.options, &files, &mode, &hostname, &hosts)?;
        done.push(format!(
            "{} written again in {}",
            names.join(", "),
            files.display()
        ));
    }
    Ok(done)
}
