//! run, create, start, ps, logs, exec, attach, stop, kill, rm, pause,
//! unpause, wait, rename, inspect, stats, top, export, info, container prune.

use crate::cli::*;
use crate::progress::{human, Display};
use anyhow::{bail, Context, Result};
use capsa_engine::client::{self, Ended};
use capsa_engine::{inspect, manage, monitor, Container, Engine, RunOptions, Status};
use capsa_image::{local, Reference, Store};
use serde_json::json;
use std::time::Duration;

/// The built-in image: the probe, which explains what a container sees.
pub const DEMO: &str = "localhost/capsa-demo:latest";

fn options(a: &RunArgs) -> RunOptions {
    RunOptions {
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
        volumes: a.volume.clone(),
        tmpfs: a.tmpfs.clone(),
        read_only: a.read_only,
        cpus: a.cpus.clone(),
        cpu_shares: a.cpu_shares,
        cpuset_cpus: a.cpuset_cpus.clone(),
        memory: a.memory.clone(),
        memory_swap: a.memory_swap.clone(),
        pids_limit: a.pids_limit,
        blkio_weight: a.blkio_weight,
        devices: a.device.clone(),
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        privileged: a.privileged,
        security_opt: a.security_opt.clone(),
        ulimits: a.ulimit.clone(),
        sysctls: a.sysctl.clone(),
        init: a.init,
        network: a.network.clone(),
        network_aliases: a.network_alias.clone(),
        publish: a.publish.clone(),
        publish_all: a.publish_all,
        userns: a.userns.clone(),
        runtime: a.runtime.clone(),
        cgroup_parent: a.cgroup_parent.clone(),
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        trace: a.trace,
        args: a.command.clone(),
    }
}

/// The demo image, built on first use from the probe next to this binary.
fn demo_image(store: &Store) -> Result<capsa_image::ImageRecord> {
    let exe = std::env::current_exe().context("locating the capsa binary")?;
    let probe = exe.with_file_name("capsa-probe");
    let bin = std::fs::read(&probe).with_context(|| {
        format!(
            "the demo image is built from {}, which is missing (cargo build -p capsa-probe)",
            probe.display()
        )
    })?;
    // Rebuilt whenever the probe changes: its digest is in the image's
    // labels.
    let digest = capsa_image::Digest::of(&bin).to_string();
    if let Ok(r) = store.resolve(DEMO) {
        let label = local::open(store, &r).ok().and_then(|i| {
            i.config
                .config()
                .as_ref()?
                .labels()
                .as_ref()?
                .get("capsa.probe")
                .cloned()
        });
        if label.as_deref() == Some(digest.as_str()) {
            return Ok(r);
        }
    }
    let mut b = tar::Builder::new(Vec::new());
    for d in ["proc/", "sys/", "dev/", "etc/", "tmp/"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(if d == "tmp/" { 0o1777 } else { 0o755 });
        h.set_size(0);
        b.append_data(&mut h, d, std::io::empty())?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(bin.len() as u64);
    b.append_data(&mut h, "probe", bin.as_slice())?;
    let passwd = b"root:x:0:0:root:/:/probe\n";
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(passwd.len() as u64);
    b.append_data(&mut h, "etc/passwd", &passwd[..])?;
    let tar = b.into_inner()?;
    let name = Reference::parse(DEMO)?;
    let rec = local::import_rootfs(store, &tar[..], Some(&name), &|_| {})?;
    // The import gives a generic config: point it at the probe.
    local::set_command(
        store,
        &rec,
        &["/probe", "explain"],
        &[("capsa.probe", &digest)],
        Some(&name),
    )
    .context("building the demo image")
}

fn resolve_image(engine: &Engine, a: &RunArgs) -> Result<(capsa_image::ImageRecord, String)> {
    if a.image == "capsa-demo" || a.image == DEMO {
        return Ok((demo_image(&engine.images)?, DEMO.to_string()));
    }
    let r = Reference::parse(&a.image)?;
    let found = engine.images.resolve(&a.image);
    match (a.pull.as_str(), found) {
        ("never", Ok(rec)) | ("missing", Ok(rec)) => Ok((rec, r.to_string())),
        ("never", Err(e)) => Err(e.into()),
        ("missing", Err(capsa_image::Error::NotFound(_))) | ("always", _) => {
            let client =
                capsa_image::registry::Client::new(&r, &super::transfer::options(&a.registry)?)?;
            let display = Display::new(false);
            let rec = capsa_image::registry::pull(
                &engine.images,
                &client,
                &r,
                &Default::default(),
                &|p| display.event(p),
            );
            display.finish();
            Ok((
                rec.with_context(|| {
                    format!("{}: not in the store, and pulling it failed", a.image)
                })?,
                r.to_string(),
            ))
        }
        ("missing", Err(e)) => Err(e.into()),
        (other, _) => bail!("--pull {other:?}: missing, always or never"),
    }
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

pub fn run(engine: &Engine, a: RunArgs, start: bool) -> Result<i32> {
    // The monitor starts up while the container is being prepared.
    let ready = start.then(|| prespawn(engine)).transpose()?;
    let (rec, image_name) = resolve_image(engine, &a)?;
    let opts = options(&a);
    let c = capsa_engine::create::create(engine, &rec, &image_name, &opts)?;
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
    match client::session(&sock, c.options.interactive, c.options.tty)? {
        Ended::Exited(code) => Ok(code),
        Ended::Detached => {
            eprintln!("detached from {}", c.name);
            Ok(0)
        }
    }
}

pub fn start(engine: &Engine, a: StartArgs) -> Result<i32> {
    let mut code = 0;
    for what in &a.containers {
        let c = manage::refresh(engine, engine.find(what)?)?;
        if matches!(c.state.status, Status::Running | Status::Paused) {
            continue;
        }
        if c.state.status == Status::Exited {
            // A stopped container starts again on its own snapshot.
            capsa_engine::runtime::Runtime::of(engine, &c).delete(&c.id);
        }
        let mut c = c;
        c.options.interactive |= a.interactive;
        code = start_container(engine, prespawn(engine)?, &c, a.attach, false)?;
    }
    Ok(code)
}

fn status_text(c: &Container) -> String {
    let now = manage::now_secs();
    let since = |t: u64| ago(now.saturating_sub(t));
    match c.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}",
            c.state
                .started_at
                .as_deref()
                .and_then(parse_ts)
                .map(|t| ago(now.saturating_sub(t)))
                .unwrap_or_default()
        ),
        Status::Paused => "Up (Paused)".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            c.state.exit_code.unwrap_or(-1),
            c.state.finished_secs.map(since).unwrap_or_default()
        ),
    }
}

fn parse_ts(s: &str) -> Option<u64> {
    capsa_sys::time::parse_rfc3339(s)
}

fn ago(s: u64) -> String {
    match s {
        0..=1 => "Less than a second".into(),
        2..=59 => format!("{s} seconds"),
        60..=3599 => format!("{} minutes", s / 60),
        3600..=86_399 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

pub fn ps(engine: &Engine, a: PsArgs) -> Result<i32> {
    let mut list = Vec::new();
    for c in engine.list()? {
        let c = manage::refresh(engine, c)?;
        if a.all || matches!(c.state.status, Status::Running | Status::Paused) {
            list.push(c);
        }
    }
    if a.format == Format::Json {
        let v: Vec<_> = list
            .iter()
            .map(|c| json!({"Id": c.id, "Names": [c.name], "Image": c.image, "ImageID": c.image_id, "Command": c.args, "Created": c.created, "State": format!("{:?}", c.state.status).to_lowercase(), "Status": status_text(c), "Pid": c.state.pid, "ExitCode": c.state.exit_code}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let id = |c: &Container| {
        if a.no_trunc {
            c.id.clone()
        } else {
            c.short_id().to_string()
        }
    };
    if a.quiet {
        for c in &list {
            println!("{}", id(c));
        }
        return Ok(0);
    }
    println!(
        "{:12}  {:28}  {:22}  {:26}  NAMES",
        "CONTAINER ID", "IMAGE", "COMMAND", "STATUS"
    );
    for c in &list {
        let mut cmd = format!("\"{}\"", c.args.join(" "));
        if cmd.len() > 22 && !a.no_trunc {
            cmd.truncate(20);
            cmd.push_str("…\"");
        }
        let image = c
            .image
            .strip_prefix("docker.io/library/")
            .unwrap_or(&c.image);
        println!(
            "{:12}  {:28}  {:22}  {:26}  {}",
            id(c),
            image,
            cmd,
            status_text(c),
            c.name
        );
    }
    Ok(0)
}

fn since_secs(s: &str) -> Result<u64> {
    let now = manage::now_secs();
    let num = |t: &str| t.parse::<u64>().ok();
    let secs = if let Some(v) = s.strip_suffix('s').and_then(num) {
        now.saturating_sub(v)
    } else if let Some(v) = s.strip_suffix('m').and_then(num) {
        now.saturating_sub(v * 60)
    } else if let Some(v) = s.strip_suffix('h').and_then(num) {
        now.saturating_sub(v * 3600)
    } else if let Some(t) = parse_ts(s) {
        t
    } else if let Some(v) = num(s) {
        v
    } else {
        bail!("--since {s:?}: a time (RFC 3339), seconds since the epoch, or a duration (10s, 5m, 2h)")
    };
    Ok(secs)
}

pub fn logs(engine: &Engine, a: LogsArgs) -> Result<i32> {
    let c = engine.find(&a.container)?;
    let path = c.dir(engine).join("ctr.log");
    let since = a.since.as_deref().map(since_secs).transpose()?;
    let tail: Option<usize> = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .with_context(|| format!("--tail {n:?}: a number or all"))?,
        ),
    };
    let print = |entries: &[capsa_engine::logs::Entry]| {
        use std::io::Write;
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        for e in entries {
            let w: &mut dyn Write = if e.stream == "stderr" {
                &mut err
            } else {
                &mut out
            };
            if a.timestamps {
                let _ = write!(w, "{} ", e.time);
            }
            let _ = w.write_all(e.log.as_bytes());
        }
    };
    let (mut entries, mut offset) = capsa_engine::logs::read(&path, 0, true);
    if let Some(s) = since {
        entries.retain(|e| parse_ts(&e.time).is_some_and(|t| t >= s));
    }
    if let Some(n) = tail {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    print(&entries);
    if a.follow {
        loop {
            let c = manage::refresh(
                engine,
                match engine.load(&c.id) {
                    Ok(c) => c,
                    Err(_) => break,
                },
            )?;
            let (more, next) = capsa_engine::logs::read(&path, offset, false);
            offset = next;
            print(&more);
            if !matches!(
                c.state.status,
                Status::Running | Status::Paused | Status::Created
            ) && more.is_empty()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(0)
}

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

pub fn attach(engine: &Engine, a: AttachArgs) -> Result<i32> {
    let c = manage::refresh(engine, engine.find(&a.container)?)?;
    if c.state.status != Status::Running {
        bail!("container {} is not running", c.name);
    }
    let sock = client::connect(engine, &c)?;
    match client::session(&sock, c.options.interactive && !a.no_stdin, c.options.tty)? {
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

pub fn inspect(engine: &Engine, a: InspectAnyArgs) -> Result<i32> {
    let mut out = Vec::new();
    for t in &a.targets {
        let as_container = a.kind.as_deref() != Some("image");
        let as_image = a.kind.as_deref() != Some("container");
        match engine.find(t) {
            Ok(c) if as_container => {
                let c = manage::refresh(engine, c)?;
                out.push(inspect::inspect(engine, &c));
                continue;
            }
            _ => {}
        }
        if as_image {
            if let Ok(v) = super::images::inspect_one(&engine.images, t) {
                out.push(v);
                continue;
            }
        }
        bail!("no such container or image: {t}");
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

pub fn stats(engine: &Engine, a: StatsArgs) -> Result<i32> {
    let pick = || -> Result<Vec<Container>> {
        if a.containers.is_empty() {
            Ok(engine
                .list()?
                .into_iter()
                .filter(|c| c.state.status == Status::Running && manage::init_alive(c))
                .collect())
        } else {
            a.containers.iter().map(|w| Ok(engine.find(w)?)).collect()
        }
    };
    let interval = Duration::from_millis(if a.no_stream { 500 } else { 1000 });
    let mut prev: std::collections::HashMap<String, (u64, std::time::Instant)> = Default::default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let mut first = true;
    loop {
        let list = pick()?;
        let mut rows = Vec::new();
        for c in &list {
            let Ok(s) = inspect::sample(c) else {
                continue;
            };
            let now = std::time::Instant::now();
            let cpu = prev.get(&c.id).map(|(ns, t)| {
                let dt = now.duration_since(*t).as_nanos() as f64;
                if dt > 0.0 {
                    (s.cpu_ns.saturating_sub(*ns)) as f64 / dt * 100.0
                } else {
                    0.0
                }
            });
            prev.insert(c.id.clone(), (s.cpu_ns, now));
            rows.push((c.clone(), s, cpu));
        }
        if first {
            // CPU % needs two samples.
            first = false;
            std::thread::sleep(interval);
            continue;
        }
        if a.format == Format::Json {
            let v: Vec<_> = rows
                .iter()
                .map(|(c, s, cpu)| json!({"ID": c.short_id(), "Name": c.name, "CPUPerc": cpu.unwrap_or(0.0), "MemUsage": s.mem_usage, "MemLimit": s.mem_limit, "MemPerc": s.mem_usage as f64 / s.mem_limit.max(1) as f64 * 100.0, "NetInput": s.net_rx, "NetOutput": s.net_tx, "BlockInput": s.blk_read, "BlockOutput": s.blk_write, "PIDs": s.pids, "CPUs": cores}))
                .collect();
            println!("{}", serde_json::to_string(&v)?);
        } else {
            if !a.no_stream {
                print!("\x1b[2J\x1b[H");
            }
            println!(
                "{:12}  {:20}  {:>7}  {:>21}  {:>6}  {:>17}  {:>17}  PIDS",
                "CONTAINER ID",
                "NAME",
                "CPU %",
                "MEM USAGE / LIMIT",
                "MEM %",
                "NET I/O",
                "BLOCK I/O"
            );
            for (c, s, cpu) in &rows {
                println!(
                    "{:12}  {:20}  {:>6.2}%  {:>21}  {:>5.2}%  {:>17}  {:>17}  {}",
                    c.short_id(),
                    c.name,
                    cpu.unwrap_or(0.0),
                    format!("{} / {}", human(s.mem_usage), human(s.mem_limit)),
                    s.mem_usage as f64 / s.mem_limit.max(1) as f64 * 100.0,
                    format!("{} / {}", human(s.net_rx), human(s.net_tx)),
                    format!("{} / {}", human(s.blk_read), human(s.blk_write)),
                    s.pids
                );
            }
        }
        if a.no_stream {
            return Ok(0);
        }
        std::thread::sleep(interval);
    }
}

pub fn top(engine: &Engine, a: TopArgs) -> Result<i32> {
    let c = manage::refresh(engine, engine.find(&a.container)?)?;
    let pids = inspect::top(&c)?;
    if pids.is_empty() {
        bail!("container {} has no processes", c.name);
    }
    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    let o = std::process::Command::new("ps")
        .args([
            "-o",
            "user,pid,ppid,c,stime,tty,time,cmd",
            "-p",
            &list.join(","),
        ])
        .output()
        .context("running ps")?;
    print!("{}", String::from_utf8_lossy(&o.stdout));
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

pub fn info(engine: &Engine, a: FormatArgs) -> Result<i32> {
    let v = inspect::info(engine);
    if a.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if let Some(m) = v.as_object() {
        for (k, val) in m {
            let text = match val {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            println!("{k:22} {text}");
        }
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
