//! run, create and start: a container made, handed to its monitor, and
//! attached to.

use crate::cli::*;
use anyhow::{Context, Result};
use capsa_engine::client::{self, Ended};
use capsa_engine::{images, manage, monitor, Container, Engine, RunOptions, Status};

/// The flags, read here, once, into the engine's types: a flag that does
/// not read fails the command before anything is made.
fn options(a: &RunArgs) -> capsa_engine::Result<RunOptions> {
    use capsa_engine::error::flag;
    use capsa_engine::flags::Flag;
    if let Some((name, why)) = a.refused.first() {
        return Err(flag(name, format!("not supported: {why}")));
    }
    if a.disable_content_trust == Some(false) {
        return Err(flag(
            "--disable-content-trust",
            "false is not supported: capsa has no content trust (Notary) to enable",
        ));
    }
    if a.sig_proxy == Some(false) {
        return Err(flag(
            "--sig-proxy",
            "false is not supported: the attached command always passes signals on",
        ));
    }
    if let Some(p) = &a.platform {
        // OS[/ARCH[/VARIANT]], each part this host's.
        let host = capsa_image::manifest::Platform::host();
        let mut parts = p.split('/');
        let os = parts.next().unwrap_or("");
        let arch = parts
            .next()
            .map(|a| if a == "x86_64" { "amd64" } else { a });
        let variant = parts.next();
        if os != host.os
            || arch.is_some_and(|a| a != host.arch)
            || variant.is_some_and(|v| Some(v) != host.variant.as_deref())
            || parts.next().is_some()
        {
            return Err(flag(
                "--platform",
                format!(
                    "{p}: this host runs {}/{} only (no emulation)",
                    host.os, host.arch
                ),
            ));
        }
    }
    let cgroupns_host = match a.cgroupns.as_deref() {
        None | Some("private") => false,
        Some("host") => true,
        Some(o) => return Err(flag("--cgroupns", format!("{o:?}: host or private"))),
    };
    if a.memory_swappiness.is_some_and(|s| s > 100) {
        return Err(flag("--memory-swappiness", "from 0 to 100"));
    }
    if a.cpus.is_some() && (a.cpu_period.is_some() || a.cpu_quota.is_some()) {
        return Err(flag(
            "--cpus",
            "conflicts with --cpu-period and --cpu-quota (it sets both)",
        ));
    }
    for e in &a.expose {
        let bad = || flag("--expose", format!("{e:?}: PORT[-PORT][/tcp|udp]"));
        if e.contains(':') || e.is_empty() {
            return Err(bad());
        }
        let port = e.split('/').next().unwrap_or("");
        let proto_ok = e
            .split_once('/')
            .is_none_or(|(_, p)| p == "tcp" || p == "udp");
        let ports_ok = port
            .split('-')
            .all(|n| n.parse::<u16>().is_ok_and(|n| n > 0));
        if !proto_ok || !ports_ok || port.split('-').count() > 2 {
            return Err(bad());
        }
    }
    Ok(RunOptions {
        expose: a.expose.clone(),
        volumes_from: a.volumes_from.clone(),
        cpu_period: a.cpu_period,
        cpu_quota: a.cpu_quota,
        cpuset_mems: a.cpuset_mems.clone(),
        memory_swappiness: a.memory_swappiness,
        domainname: a.domainname.clone(),
        cgroupns_host,
        name: a.name.clone(),
        detach: a.detach,
        interactive: a.interactive,
        tty: a.tty,
        rm: a.rm,
        env: a.env.clone(),
        env_files: a.env_file.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        entrypoint: a.entrypoint.clone(),
        volumes: Flag::all(&a.volume)?,
        tmpfs: Flag::all(&a.tmpfs)?,
        mounts: Flag::all(&a.mount)?,
        read_only: a.read_only,
        cpus: a.cpus.as_deref().map(Flag::parse).transpose()?,
        cpu_shares: a.cpu_shares,
        cpuset_cpus: a.cpuset_cpus.clone(),
        memory: a.memory.as_deref().map(Flag::parse).transpose()?,
        memory_swap: a.memory_swap.as_deref().map(Flag::parse).transpose()?,
        pids_limit: a.pids_limit,
        blkio_weight: a.blkio_weight,
        devices: Flag::all(&a.device)?,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        privileged: a.privileged,
        security_opt: a.security_opt.clone(),
        ulimits: Flag::all(&a.ulimit)?,
        sysctls: Flag::all(&a.sysctl)?,
        init: a.init,
        network: a.network.clone(),
        network_aliases: a.network_alias.clone(),
        add_hosts: Flag::all(&a.add_host)?,
        dns: Flag::all(&a.dns)?,
        dns_search: Flag::all(&a.dns_search)?,
        dns_options: Flag::all(&a.dns_option)?,
        publish: Flag::all(&a.publish)?,
        publish_all: a.publish_all,
        userns: a.userns.clone(),
        runtime: a.runtime.clone(),
        cgroup_parent: a.cgroup_parent.clone(),
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        restart: a.restart.as_deref().map(Flag::parse).transpose()?,
        health: health_flags(a)?,
        labels: labels(a)?,
        pid: a.pid.as_deref().map(Flag::parse).transpose()?,
        ipc: a.ipc.as_deref().map(Flag::parse).transpose()?,
        uts: a.uts.as_deref().map(Flag::parse).transpose()?,
        shm_size: a
            .shm_size
            .as_deref()
            .map(|s| capsa_engine::flags::parse_bytes("--shm-size", s))
            .transpose()?,
        group_add: a.group_add.clone(),
        memory_reservation: a
            .memory_reservation
            .as_deref()
            .map(|s| capsa_engine::flags::parse_bytes("--memory-reservation", s))
            .transpose()?,
        oom_kill_disable: a.oom_kill_disable,
        oom_score_adj: match a.oom_score_adj {
            Some(n) if !(-1000..=1000).contains(&n) => {
                return Err(capsa_engine::error::flag(
                    "--oom-score-adj",
                    format!("{n}: from -1000 to 1000"),
                ))
            }
            n => n,
        },
        detach_keys: match &a.detach_keys {
            Some(k) => {
                capsa_engine::client::DetachKeys::parse(k)?;
                Some(k.clone())
            }
            None => None,
        },
        annotations: checked("--annotation", &a.annotation)?,
        trace: a.trace,
        args: a.command().to_vec(),
    })
}

/// `-l` and `--label-file`'s lines (blank lines and `#` comments left
/// out), files first, as docker reads them.
fn labels(a: &RunArgs) -> capsa_engine::Result<Vec<String>> {
    let mut all = Vec::new();
    for f in &a.label_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| capsa_engine::error::flag("--label-file", format!("{f}: {e}")))?;
        all.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    all.extend(a.label.iter().cloned());
    checked("--label", &all)
}

/// `KEY=VALUE`s, each checked.
fn checked(name: &str, all: &[String]) -> capsa_engine::Result<Vec<String>> {
    for l in all {
        capsa_engine::flags::key_value(name, l)?;
    }
    Ok(all.to_vec())
}

/// `--health-*`, read (durations as Go writes them).
fn health_flags(a: &RunArgs) -> capsa_engine::Result<capsa_engine::health::HealthFlags> {
    let d = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| capsa_engine::health::duration(name, t))
            .transpose()
    };
    Ok(capsa_engine::health::HealthFlags {
        cmd: a.health_cmd.clone(),
        interval: d("--health-interval", &a.health_interval)?,
        timeout: d("--health-timeout", &a.health_timeout)?,
        start_period: d("--health-start-period", &a.health_start_period)?,
        start_interval: d("--health-start-interval", &a.health_start_interval)?,
        retries: a.health_retries,
        none: a.no_healthcheck,
    })
}

/// Docker's exit codes for a container that did not start: 127 when the
/// command is not found, 126 when it cannot run, 125 otherwise.
/// Only the container's own command counts: a missing host tool (nft, a
/// runtime) is a 125, as docker's daemon errors are. From the error's kind
/// alone: another runtime's words were read into a kind where its failure
/// was met (`capsa_engine::runtime::kind_of_words`).
fn start_failure(e: &capsa_engine::Error) -> i32 {
    e.kind().exit_code()
}

/// The image to run, as `--pull` says: the engine applies the policy, the
/// command line fetches (with the registry flags, showing progress).
fn resolve_image(engine: &Engine, a: &RunArgs) -> Result<(capsa_image::ImageRecord, String)> {
    let probe = std::env::current_exe()
        .context("locating the capsa binary")?
        .with_file_name("capsa-probe");
    let policy: images::PullPolicy = a.pull.parse()?;
    let pull = |r: &capsa_image::Reference| {
        super::transfer::pull_missing(&engine.images, r, &a.registry, a.quiet)
    };
    Ok(images::resolve(engine, a.image(), policy, &probe, pull)?)
}

pub fn run(engine: &Engine, a: RunArgs, start: bool) -> Result<i32> {
    // The flags first: one that does not read costs nothing.
    let opts = options(&a)?;
    // The monitor starts up while the container is being prepared.
    let ready = start.then(|| prespawn(engine)).transpose()?;
    // --cidfile: made (and found free) before the container, as docker's;
    // removed again if no container comes of it.
    let cidfile = a.cidfile.as_deref().map(cidfile).transpose()?;
    let made = resolve_image(engine, &a).and_then(|(rec, image_name)| {
        Ok(capsa_engine::create::create(
            engine,
            &rec,
            &image_name,
            &opts,
        )?)
    });
    let c = match (made, cidfile) {
        (Ok(c), Some((mut f, path))) => {
            use std::io::Write;
            f.write_all(c.id.as_bytes())
                .with_context(|| format!("--cidfile {path}"))?;
            c
        }
        (Ok(c), None) => c,
        (Err(e), file) => {
            if let Some((_, path)) = file {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    match ready {
        Some(ready) => start_container(engine, ready, &c, !a.detach, a.trace),
        None => {
            println!("{}", c.id);
            Ok(0)
        }
    }
}

/// A monitor, waiting for its container. It is its own small binary beside
/// this one (as conmon is to podman); without it, a fork of this process
/// serves.
fn prespawn(engine: &Engine) -> Result<monitor::Ready> {
    let exe = std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name("capsa-monitor"))
        .filter(|m| m.exists());
    Ok(monitor::prespawn(engine, exe.as_deref())?)
}

fn start_container(
    engine: &Engine,
    ready: monitor::Ready,
    c: &Container,
    attached: bool,
    trace: bool,
) -> Result<i32> {
    let (spawned, sock) = match ready.go(c, attached) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("capsa: {}: {e}", c.name);
            if c.options.rm {
                let _ = manage::remove_files(engine, c);
            }
            return Ok(start_failure(&e));
        }
    };
    let mut lines = c.trace.clone();
    lines.extend(spawned.trace.iter().cloned());
    if trace {
        eprintln!(
            "trace of {} (time since each clock's start, and since the step before):",
            c.name
        );
        for l in &lines {
            eprintln!("  {l}");
        }
    }
    if !attached {
        println!("{}", c.id);
        return Ok(0);
    }
    if let Err(e) = client::started(&sock) {
        eprintln!("capsa: {}: {e}", c.name);
        return Ok(start_failure(&e));
    }
    let keys = detach_keys(c.options.detach_keys.as_deref())?;
    match client::session(&sock, c.options.interactive, c.options.tty, &keys)? {
        Ended::Exited(code) => Ok(code),
        Ended::Detached => {
            eprintln!("detached from {}", c.name);
            Ok(0)
        }
    }
}

pub fn start(engine: &Engine, a: StartArgs) -> Result<i32> {
    if a.all_restartable {
        return start_restartable(engine);
    }
    let mut code = 0;
    for what in &a.containers {
        let c = manage::refresh(engine, engine.find(what)?)?;
        if matches!(
            c.state.status,
            Status::Running | Status::Paused | Status::Restarting
        ) {
            continue;
        }
        let mut c = start_again(engine, c)?;
        c.options.interactive |= a.interactive;
        code = start_container(engine, prespawn(engine)?, &c, a.attach, false)?;
    }
    Ok(code)
}

/// A stopped container, ready to start on its own snapshot (mounted
/// again after a reboot).
fn start_again(engine: &Engine, c: Container) -> Result<Container> {
    if c.state.status == Status::Exited {
        capsa_engine::runtime::Runtime::of(engine, &c).delete(&c.id);
    }
    let done = capsa_engine::revive::prepare(engine, &c)?;
    let mut c = c;
    c.trace.extend(done);
    Ok(c)
}

/// `start --all-restartable`: what dockerd starts when it comes up.
fn start_restartable(engine: &Engine) -> Result<i32> {
    let mut code = 0;
    // Those that join another container's namespaces after the others,
    // so that what they join runs first.
    let mut all = engine.list()?;
    all.sort_by_key(|c| c.options.joins_another());
    for c in all {
        let c = manage::refresh(engine, c)?;
        let policy = c.options.restart_policy();
        if c.state.status != Status::Exited
            || !policy.at_boot(c.state.exit_code, c.state.stopped_by_hand)
        {
            continue;
        }
        let name = c.name.clone();
        let started = start_again(engine, c)
            .and_then(|c| start_container(engine, prespawn(engine)?, &c, false, false));
        match started {
            Ok(0) => {}
            Ok(n) => code = n,
            Err(e) => {
                eprintln!("capsa: {name}: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// The detach keys given (checked when the container was made), or
/// docker's.
pub(crate) fn detach_keys(text: Option<&str>) -> Result<client::DetachKeys> {
    Ok(text
        .map(client::DetachKeys::parse)
        .transpose()?
        .unwrap_or_default())
}

/// `--cidfile PATH`, made new (never over a file there: another
/// container's, as docker's refusal says).
fn cidfile(path: &str) -> Result<(std::fs::File, String)> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => capsa_engine::error::flag(
                "--cidfile",
                format!(
                    "{path} exists already: another container may be using it; remove it first"
                ),
            ),
            _ => capsa_engine::error::flag("--cidfile", format!("{path}: {e}")),
        })?;
    Ok((f, path.to_string()))
}
