//! events: the event log, past (`--since`) and as it grows, filtered and
//! formatted as docker's.

use crate::cli::{EventsArgs, Format};
use anyhow::Result;
use capsa_engine::events::{self, Event, Filter, Kind};
use capsa_engine::Engine;
use serde_json::json;
use std::io::Write;
use std::time::Duration;

/// docker's JSON line for an event: its own fields, and for a container
/// the old `status`, `id` and `from`.
fn docker_json(e: &Event) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if e.kind == Kind::Container {
        if let Some(o) = v.as_object_mut() {
            o.insert("status".into(), json!(e.action));
            o.insert("id".into(), json!(e.actor.id));
            if let Some(img) = e.actor.attributes.get("image") {
                o.insert("from".into(), json!(img));
            }
        }
    }
    v
}

/// The fields a template sees, as docker's events.Message names them.
fn fields(e: &Event) -> serde_json::Value {
    let container = e.kind == Kind::Container;
    json!({
        "Type": e.kind,
        "Action": e.action,
        "Actor": {"ID": e.actor.id, "Attributes": e.actor.attributes},
        "Scope": e.scope,
        "Time": e.time,
        "TimeNano": e.time_nano,
        "Status": if container { e.action.as_str() } else { "" },
        "ID": if container { e.actor.id.as_str() } else { "" },
        "From": if container { e.actor.attributes.get("image").map_or("", String::as_str) } else { "" },
    })
}

fn ns(secs: u64) -> u64 {
    secs.saturating_mul(1_000_000_000)
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub fn events(engine: &Engine, a: EventsArgs) -> Result<i32> {
    let filters = a
        .filter
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<capsa_engine::Result<Vec<_>>>()?;
    let since = a.since.as_deref().map(super::ps::since_secs).transpose()?;
    // `--until` is a whole second: events within it count; the wait ends
    // when it begins (what was logged by then is read after).
    let until_secs = a.until.as_deref().map(super::ps::since_secs).transpose()?;
    let until = until_secs.map(|s| ns(s + 1));
    let stop_at = until_secs.map(ns);
    let out = std::io::stdout();
    let show = |e: &Event| -> Result<()> {
        if !Filter::passes(&filters, e) {
            return Ok(());
        }
        let mut o = out.lock();
        match &a.format {
            Format::Json => writeln!(o, "{}", crate::format::no_c1(&docker_json(e).to_string()))?,
            Format::Table => writeln!(o, "{}", e.line())?,
            Format::Template { table, text } => write!(
                o,
                "{}",
                crate::format::render(text, *table, &[fields(e)], &[])?
            )?,
        }
        o.flush()?;
        Ok(())
    };
    let (past, mut cursor) = events::read(engine, since.map_or(u64::MAX, ns));
    for e in past
        .iter()
        .filter(|e| until.is_none_or(|u| e.time_nano < u))
    {
        show(e)?;
    }
    loop {
        if stop_at.is_some_and(|s| now_ns() >= s) {
            // What was written up to the deadline, then done.
            for e in events::more(engine, &mut cursor) {
                if until.is_none_or(|u| e.time_nano < u) {
                    show(&e)?;
                }
            }
            return Ok(0);
        }
        for e in events::more(engine, &mut cursor) {
            show(&e)?;
        }
        // The log is a file: read as it grows, a tenth of a second apart.
        std::thread::sleep(Duration::from_millis(100));
    }
}
