//! ps and logs.

use crate::cli::*;
use anyhow::{bail, Context, Result};
use capsa_engine::events::visible;
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

/// Docker's column titles of `ps`'s template fields.
const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

/// A container as docker's `ps` templates see it.
fn row(engine: &Engine, c: &Container, no_trunc: bool) -> serde_json::Value {
    let now = manage::now_secs();
    // Docker's: cut to 20 columns (19 and an ellipsis), then quoted as Go
    // quotes a string.
    // dockerd's words: the path, then each argument, one with a space
    // in single quotes.
    let mut command = c
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if i > 0 && a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    if command.chars().count() > 20 && !no_trunc {
        command = command.chars().take(19).collect::<String>() + "…";
    }
    let command = go_quote(&command);
    let o = &c.options;
    let mounts: Vec<String> = o
        .volumes
        .iter()
        .map(|v| v.get().source.clone())
        .filter(|s| !s.is_empty())
        .chain(o.mounts.iter().filter_map(|m| match m.get() {
            capsa_engine::flags::Mount::Volume { name, .. } => name.clone(),
            capsa_engine::flags::Mount::Bind { source, .. } => Some(source.clone()),
            capsa_engine::flags::Mount::Tmpfs { .. } => None,
        }))
        .collect();
    let networks: Vec<String> = match capsa_engine::network::endpoints(&c.dir(engine)) {
        eps if !eps.is_empty() => eps.into_iter().map(|e| e.network).collect(),
        _ => vec![o
            .network
            .clone()
            .unwrap_or_else(|| capsa_engine::network::DEFAULT.to_string())],
    };
    json!({
        "ID": if no_trunc { c.id.as_str() } else { c.short_id() },
        "Image": c.image.strip_prefix("docker.io/library/").unwrap_or(&c.image),
        "Command": command,
        "CreatedAt": crate::format::go_time(&c.created),
        "RunningFor": format!("{} ago", ago(now.saturating_sub(c.created_secs))),
        "Ports": c.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
        "State": format!("{:?}", c.state.status).to_lowercase(),
        "Status": status_text(c),
        "Size": "0B",
        "Platform": null,
        "Names": c.name,
        // Security: labels are an image's words too; no raw escape
        // sequence reaches the terminal.
        "Labels": c.labels.iter().map(|(k, v)| format!("{}={}", visible(k), visible(v))).collect::<Vec<_>>().join(","),
        "Mounts": mounts.join(","),
        "Networks": networks.join(","),
        "LocalVolumes": mounts.iter().filter(|m| !m.starts_with('/')).count().to_string(),
    })
}

/// `s` as Go's strconv.Quote writes it.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn parse_ts(s: &str) -> Option<u64> {
    capsa_sys::time::parse_rfc3339(s)
}

/// docker's HumanDuration (go-units), in its words.
fn ago(s: u64) -> String {
    let hours = (s + 1800) / 3600;
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        _ => match hours {
            0 | 1 => "About an hour".into(),
            2..=47 => format!("{hours} hours"),
            48..=335 => format!("{} days", hours / 24),
            336..=1439 => format!("{} weeks", hours / 24 / 7),
            1440..=17519 => format!("{} months", hours / 24 / 30),
            _ => format!("{} years", s / 3600 / 24 / 365),
        },
    }
}

pub fn ps(engine: &Engine, a: PsArgs) -> Result<i32> {
    let filters = a
        .filter
        .iter()
        .map(|f| capsa_engine::filter::Filter::parse(f))
        .collect::<capsa_engine::Result<Vec<_>>>()?;
    let all = a.all
        || a.last.is_some()
        || a.latest
        || capsa_engine::filter::Filter::wants_stopped(&filters);
    let mut list = Vec::new();
    for c in engine.list()? {
        let c = manage::refresh(engine, c)?;
        if all
            || matches!(
                c.state.status,
                Status::Running | Status::Paused | Status::Restarting
            )
        {
            list.push(c);
        }
    }
    let mut list = capsa_engine::filter::select(engine, list, &filters)?;
    if let Some(n) = a.last {
        list.truncate(n);
    }
    if a.latest {
        list.truncate(1);
    }
    let rows: Vec<_> = list.iter().map(|c| row(engine, c, a.no_trunc)).collect();
    if !a.quiet && crate::format::template(&a.format, &rows, HEADERS)? {
        return Ok(0);
    }
    if a.format == Format::Json && !a.quiet {
        let v: Vec<_> = list
            .iter()
            .map(|c| json!({"Id": c.id, "Names": [c.name], "Image": c.image, "ImageID": c.image_id, "Command": c.args, "Created": c.created, "State": format!("{:?}", c.state.status).to_lowercase(), "Status": status_text(c), "Pid": c.state.pid, "ExitCode": c.state.exit_code, "Labels": c.labels}))
            .collect();
        println!("{}", crate::format::pretty(&v)?);
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
    // docker's default table, through the same fields and aligner as a
    // template's.
    print!(
        "{}",
        crate::format::render(
            "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
            true,
            &rows,
            HEADERS
        )?
    );
    Ok(0)
}

/// A time as `--since` and `--until` take it: RFC 3339, seconds since the
/// epoch, or a duration before now.
pub(crate) fn since_secs(s: &str) -> Result<u64> {
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
