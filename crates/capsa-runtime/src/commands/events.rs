use crate::cli::EventsArgs;
use anyhow::{anyhow, bail};
use capsa_runtime::{Status, Store};
use serde::Serialize;
use std::time::{Duration, Instant};

/// A Go-style duration: 5s, 500ms, 1m, 1.5s.
pub fn parse_interval(s: &str) -> anyhow::Result<Duration> {
    match capsa_sys::time::parse_duration(s) {
        Some(d) if !d.is_zero() => Ok(d),
        Some(_) => bail!("--interval {s:?}: must be positive"),
        None => Err(anyhow!(
            "--interval {s:?}: not a duration (a number with a unit: 500ms, 5s, 1m)"
        )),
    }
}

/// One event as runc prints it: `type`, `id`, then `data`, in that order
/// (its users match the text).
#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
}

fn print_event<T: Serialize>(kind: &'static str, id: &str, data: Option<T>) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(&Event { kind, id, data })?);
    Ok(())
}

fn print_stats(store: &Store, id: &str) -> anyhow::Result<()> {
    print_event("stats", id, Some(capsa_runtime::stats(store, id)?))
}

/// As runc: `--stats` prints one stats event; otherwise a stream of stats
/// every interval and an `oom` event whenever the OOM killer acted, until
/// the container stops.
pub fn run(store: &Store, a: &EventsArgs) -> anyhow::Result<i32> {
    let interval = parse_interval(&a.interval)?;
    if a.stats {
        print_stats(store, &a.id)?;
        return Ok(0);
    }
    let mut ooms = capsa_runtime::oom_kills(store, &a.id)?;
    let mut next = Instant::now();
    loop {
        let (_, status) = capsa_runtime::state(store, &a.id)?;
        if status == Status::Stopped {
            return Ok(0);
        }
        let now_ooms = capsa_runtime::oom_kills(store, &a.id).unwrap_or(ooms);
        if now_ooms > ooms {
            print_event::<()>("oom", &a.id, None)?;
            ooms = now_ooms;
        }
        if Instant::now() >= next {
            print_stats(store, &a.id)?;
            next += interval;
        }
        // OOM kills are noticed within this poll.
        std::thread::sleep(Duration::from_millis(100).min(interval));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_like_go_durations() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_interval("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_interval("5").is_err());
        assert!(parse_interval("0s").is_err());
    }
}
