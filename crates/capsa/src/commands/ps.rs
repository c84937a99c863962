//! ps and logs.

use crate::cli::*;
use anyhow::{bail, Context, Result};
use capsa_engine::health::HealthStatus;
use capsa_engine::{manage, Container, Engine, Status};
use serde_json::json;
use std::time::Duration;

fn status_text(c: &Container) -> String {
    let now = manage::now_secs();
    let since = |t: u64| ago(now.saturating_sub(t));
    match c.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}{}",
            c.state
                .started_at
                .as_deref()
                .and_then(parse_ts)
                .map(|t| ago(now.saturating_sub(t)))
                .unwrap_or_default(),
            match c.state.health.as_ref().map(|h| h.status) {
                Some(HealthStatus::Starting) => " (health: starting)",
                Some(HealthStatus::Healthy) => " (healthy)",
                Some(HealthStatus::Unhealthy) => " (unhealthy)",
                None => "",
            }
        ),
        Status::Paused => "Up (Paused)".into(),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code.unwrap_or(-1),
            c.state.finished_secs.map(since).unwrap_or_default()
        ),
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
        if a.all
            || matches!(
                c.state.status,
                Status::Running | Status::Paused | Status::Restarting
            )
        {
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
    if let Some(t) = parse_ts(s) {
        return Ok(t);
    }
    if let Some(d) = capsa_sys::time::parse_duration(s) {
        return Ok(manage::now_secs().saturating_sub(d.as_secs()));
    }
    match s.parse::<u64>() {
        Ok(v) => Ok(v),
        Err(_) => bail!(
            "--since {s:?}: a time (RFC 3339, with its offset), seconds since the epoch, or a duration (10s, 5m, 1h30m)"
        ),
    }
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
                Status::Running | Status::Paused | Status::Created | Status::Restarting
            ) && more.is_empty()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(0)
}
