//! exec, attach, stop, kill, rm, pause, unpause, wait, rename, export,
//! cp and container prune.

use crate::cli::*;
use anyhow::{bail, Context, Result};
use capsa_engine::client::{self, Ended};
use capsa_engine::{manage, Container, Engine, Status};
use std::time::Duration;

pub fn exec(engine: &Engine, a: ExecArgs) -> Result<i32> {
    let c = manage::refresh(engine, engine.find(&a.container)?)?;
    let o = capsa_engine::exec::ExecOptions {
        args: a.command,
        env: a.env,
        user: a.user,
        workdir: a.workdir,
        tty: a.tty,
        interactive: a.interactive,
        detach: a.detach,
        privileged: a.privileged,
    };
    Ok(capsa_engine::exec::exec(engine, &c, &o)?)
}

/// `healthcheck run`: one probe now, recorded as the monitor records
/// them; podman's exit codes (0 healthy, 1 not).
pub fn healthcheck(engine: &Engine, a: HealthcheckArgs) -> Result<i32> {
    let c = manage::refresh(engine, engine.find(&a.container)?)?;
    if c.state.status != Status::Running {
        bail!("container {} is not running", c.name);
    }
    let check = c
        .healthcheck
        .clone()
        .filter(|h| matches!(capsa_engine::health::command(h), Ok(Some(_))))
        .with_context(|| format!("container {} has no health check", c.name))?;
    let entry = capsa_engine::health::start(engine, &c, &check)?.finish();
    let failed = entry.exit_code != 0;
    let health = capsa_engine::health::record(engine, &c.id, entry, &check)?;
    if failed {
        println!(
            "{}",
            serde_json::to_value(health.status)?.as_str().unwrap_or("")
        );
        return Ok(1);
    }
    Ok(0)
}

pub fn attach(engine: &Engine, a: AttachArgs) -> Result<i32> {
    let c = manage::refresh(engine, engine.find(&a.container)?)?;
    if c.state.status != Status::Running {
        bail!("container {} is not running", c.name);
    }
    let sock = client::connect(engine, &c)?;
    let keys = super::run::detach_keys(
        a.detach_keys
            .as_deref()
            .or(c.options.detach_keys.as_deref()),
    )?;
    match client::session(
        &sock,
        c.options.interactive && !a.no_stdin,
        c.options.tty,
        &keys,
    )? {
        Ended::Exited(code) => Ok(code),
        Ended::Detached => Ok(0),
    }
}

fn each(
    engine: &Engine,
    ids: &[String],
    mut f: impl FnMut(&Container) -> Result<()>,
) -> Result<i32> {
    let mut code = 0;
    for what in ids {
        match engine
            .find(what)
            .map_err(anyhow::Error::from)
            .and_then(|c| f(&c))
        {
            Ok(()) => println!("{what}"),
            Err(e) => {
                eprintln!("capsa: {what}: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn stop(engine: &Engine, a: StopArgs) -> Result<i32> {
    each(engine, &a.containers, |c| {
        let t = a.time.or(c.options.stop_timeout).unwrap_or(10);
        manage::stop(engine, c, Duration::from_secs(t))?;
        Ok(())
    })
}

pub fn kill(engine: &Engine, a: KillArgs) -> Result<i32> {
    each(engine, &a.containers, |c| {
        Ok(manage::kill(engine, c, &a.signal)?)
    })
}

pub fn rm(engine: &Engine, a: RmArgs) -> Result<i32> {
    each(engine, &a.containers, |c| {
        Ok(manage::remove(engine, c, a.force)?)
    })
}

pub fn pause(engine: &Engine, a: IdsArgs, on: bool) -> Result<i32> {
    each(engine, &a.containers, |c| {
        let c = manage::refresh(engine, c.clone())?;
        if on {
            manage::pause(engine, &c)?
        } else {
            manage::unpause(engine, &c)?
        }
        Ok(())
    })
}

pub fn wait(engine: &Engine, a: IdsArgs) -> Result<i32> {
    let mut code = 0;
    for what in &a.containers {
        match engine
            .find(what)
            .map_err(anyhow::Error::from)
            .and_then(|c| Ok(manage::wait(engine, &c)?))
        {
            Ok(c) => println!("{c}"),
            Err(e) => {
                eprintln!("capsa: {what}: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn rename(engine: &Engine, a: RenameArgs) -> Result<i32> {
    engine.rename(&a.container, &a.name)?;
    Ok(0)
}

pub fn export(engine: &Engine, a: ExportArgs) -> Result<i32> {
    let c = engine.find(&a.container)?;
    let rootfs = c.dir(engine).join("rootfs");
    match &a.output {
        Some(p) => {
            let tmp = p.with_extension("capsa-tmp");
            let f = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let r = capsa_image::archive::export_dir(&rootfs, std::io::BufWriter::new(f));
            if r.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            r?;
            std::fs::rename(&tmp, p)?;
        }
        None => capsa_image::archive::export_dir(&rootfs, std::io::stdout().lock())?,
    }
    Ok(0)
}

pub fn prune(engine: &Engine) -> Result<i32> {
    for n in manage::prune(engine)? {
        println!("Deleted: {n}");
    }
    Ok(0)
}

pub fn cp(engine: &Engine, a: CpArgs) -> Result<i32> {
    // CONTAINER:PATH (a host path with a ':' needs a '/' before it).
    let split = |s: &str| -> Option<(String, String)> {
        let (c, p) = s.split_once(':')?;
        (!c.is_empty() && !c.contains('/')).then(|| (c.to_string(), p.to_string()))
    };
    match (split(&a.source), split(&a.destination)) {
        (Some((c, p)), None) => {
            let c = engine.find(&c)?;
            capsa_engine::copy::from_container(
                engine,
                &c,
                &p,
                std::path::Path::new(&a.destination),
                a.archive,
            )?
        }
        (None, Some((c, p))) => {
            let c = engine.find(&c)?;
            capsa_engine::copy::to_container(
                engine,
                &c,
                std::path::Path::new(&a.source),
                &p,
                a.archive,
            )?
        }
        _ => bail!("cp: one side must be CONTAINER:PATH and the other a host path"),
    }
    Ok(0)
}
