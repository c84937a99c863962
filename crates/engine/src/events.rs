//! The event log: what happened to containers, images, volumes and
//! networks, for `capsa events`. With no daemon to ask, every command and
//! monitor appends its events to one file, `<run>/events.log` (JSON, a line
//! each, as docker's `events --format json` writes them); past 1 MiB it is
//! rotated to `events.log.1` (so at most 2 MiB are kept), under a lock.
//! The run directory is a tmpfs: a reboot starts the log afresh, as a
//! daemon's restart does docker's.

use crate::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Rotated past this size.
const ROTATE_AT: u64 = 1 << 20;

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Container,
    Image,
    Volume,
    Network,
}

/// The object: its id and attributes (`name`, `image`, `exitCode`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// One event, in docker's JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "Type")]
    pub kind: Kind,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    /// Seconds and nanoseconds since the epoch.
    pub time: u64,
    #[serde(rename = "timeNano")]
    pub time_nano: u64,
}

impl Event {
    pub fn new(kind: Kind, action: &str, id: &str, attributes: &[(&str, &str)]) -> Event {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Event {
            kind,
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes: attributes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            scope: "local".into(),
            time: now.as_secs(),
            time_nano: now.as_nanos() as u64,
        }
    }

    /// A container's event, with its name, image and labels as docker's.
    pub fn container(c: &crate::Container, action: &str, extra: &[(&str, &str)]) -> Event {
        let mut e = Event::new(
            Kind::Container,
            action,
            &c.id,
            &[
                ("name", c.name.as_str()),
                // As it was written, not as the store spells it.
                (
                    "image",
                    c.image
                        .strip_prefix("docker.io/library/")
                        .unwrap_or(&c.image),
                ),
            ],
        );
        for (k, v) in &c.labels {
            e.actor.attributes.entry(k.clone()).or_insert(v.clone());
        }
        for (k, v) in extra {
            e.actor.attributes.insert(k.to_string(), v.to_string());
        }
        e
    }

    /// docker's text line: time, type, action, id, (attributes).
    ///
    /// Security: attributes carry an image's labels; a control character
    /// (a terminal's escape sequence) is written escaped, never raw.
    pub fn line(&self) -> String {
        let attrs: Vec<String> = self
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{}={}", visible(k), visible(v)))
            .collect();
        format!(
            "{} {} {} {} ({})",
            capsa_sys::time::rfc3339(
                (self.time_nano / 1_000_000_000) as i64,
                Some((self.time_nano % 1_000_000_000) as u32)
            ),
            serde_json::to_value(self.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            self.action,
            self.actor.id,
            attrs.join(", ")
        )
    }
}

/// `s` with its control characters escaped (`\x1b`), for a terminal.
pub fn visible(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn path(engine: &Engine) -> PathBuf {
    engine.run.join("events.log")
}

/// Append `e` to the log. Never fails the command that made it: an event
/// that cannot be written is lost, as a daemon's would be on a full disk.
pub fn emit(engine: &Engine, e: &Event) {
    let Ok(mut line) = serde_json::to_vec(e) else {
        return;
    };
    line.push(b'\n');
    let Ok(_lock) = engine.lock("events") else {
        return;
    };
    let p = path(engine);
    if std::fs::metadata(&p).is_ok_and(|m| m.len() >= ROTATE_AT) {
        let _ = std::fs::rename(&p, p.with_extension("log.1"));
    }
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p)
    {
        // One write of a whole line.
        let _ = f.write_all(&line);
    }
}

/// Where a reader of the log is: the file and the offset in it.
#[derive(Debug, Default)]
pub struct Cursor {
    /// The log's inode when last read: another means it was rotated.
    inode: u64,
    offset: u64,
}

/// The events in the log from `since` (nanoseconds) on, oldest first, and
/// a cursor past them; lines that do not read are skipped.
pub fn read(engine: &Engine, since: u64) -> (Vec<Event>, Cursor) {
    let p = path(engine);
    let mut out = Vec::new();
    for file in [p.with_extension("log.1"), p.clone()] {
        if let Ok(f) = std::fs::File::open(&file) {
            out.extend(parse(std::io::BufReader::new(f)).filter(|e| e.time_nano >= since));
        }
    }
    let cursor = match std::fs::metadata(&p) {
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            Cursor {
                inode: m.ino(),
                offset: m.len(),
            }
        }
        Err(_) => Cursor::default(),
    };
    (out, cursor)
}

/// The events appended since `cursor` (following a rotation).
pub fn more(engine: &Engine, cursor: &mut Cursor) -> Vec<Event> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let p = path(engine);
    let Ok(m) = std::fs::metadata(&p) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if m.ino() != cursor.inode {
        // Rotated: the rest of the old file, then the new one whole.
        if let Ok(mut f) = std::fs::File::open(p.with_extension("log.1")) {
            if f.seek(SeekFrom::Start(cursor.offset)).is_ok() {
                out.extend(parse(std::io::BufReader::new(f)));
            }
        }
        *cursor = Cursor {
            inode: m.ino(),
            offset: 0,
        };
    }
    if let Ok(mut f) = std::fs::File::open(&p) {
        if f.seek(SeekFrom::Start(cursor.offset)).is_ok() {
            let mut r = std::io::BufReader::new(f);
            let mut line = Vec::new();
            // Whole lines only: one being written is read next time.
            while let Ok(n) = r.read_until(b'\n', &mut line) {
                if n == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                cursor.offset += n as u64;
                if let Ok(e) = serde_json::from_slice(&line) {
                    out.push(e);
                }
                line.clear();
            }
        }
    }
    out
}

fn parse(r: impl BufRead) -> impl Iterator<Item = Event> {
    r.split(b'\n')
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_slice(&l).ok())
}

/// One `events --filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `container=NAME|ID`, `image=`, `volume=`, `network=`: the actor's
    /// id (or a prefix of it) or name.
    Object(Kind, String),
    /// `event=ACTION` (`health_status` matches each of its statuses).
    Event(String),
    /// `type=container|image|volume|network`.
    Type(Kind),
    /// `label=KEY[=VALUE]`.
    Label(String, Option<String>),
}

impl Filter {
    pub fn parse(s: &str) -> crate::Result<Filter> {
        let bad = |why: &str| crate::error::flag("--filter", format!("{s:?}: {why}"));
        let (k, v) = s.split_once('=').ok_or_else(|| bad("expected KEY=VALUE"))?;
        let kind = |v: &str| match v {
            "container" => Ok(Kind::Container),
            "image" => Ok(Kind::Image),
            "volume" => Ok(Kind::Volume),
            "network" => Ok(Kind::Network),
            _ => Err(bad("type is container, image, volume or network")),
        };
        Ok(match k {
            "container" | "image" | "volume" | "network" => Filter::Object(kind(k)?, v.into()),
            "event" => Filter::Event(v.into()),
            "type" => Filter::Type(kind(v)?),
            "label" => match v.split_once('=') {
                Some((k, v)) => Filter::Label(k.into(), Some(v.into())),
                None => Filter::Label(v.into(), None),
            },
            _ => {
                return Err(bad(
                    "filters are container, image, volume, network, event, type and label",
                ))
            }
        })
    }

    fn key(&self) -> u8 {
        match self {
            Filter::Object(Kind::Container, _) => 0,
            Filter::Object(Kind::Image, _) => 1,
            Filter::Object(Kind::Volume, _) => 2,
            Filter::Object(Kind::Network, _) => 3,
            Filter::Event(_) => 4,
            Filter::Type(_) => 5,
            Filter::Label(..) => 6,
        }
    }

    fn matches(&self, e: &Event) -> bool {
        let attr = |k: &str| e.actor.attributes.get(k).map(String::as_str);
        match self {
            Filter::Object(Kind::Image, v) if e.kind == Kind::Container => {
                attr("image") == Some(v.as_str())
            }
            Filter::Object(kind, v) => {
                e.kind == *kind
                    && (e.actor.id == *v
                        || (v.len() >= 3 && e.actor.id.starts_with(v.as_str()))
                        || attr("name") == Some(v.as_str()))
            }
            Filter::Event(a) => {
                e.action == *a || e.action.split_once(':').is_some_and(|(x, _)| x == a)
            }
            Filter::Type(k) => e.kind == *k,
            Filter::Label(k, v) => match (attr(k), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            },
        }
    }

    /// Whether `e` passes `filters`: every key given, one of its values.
    pub fn passes(filters: &[Filter], e: &Event) -> bool {
        (0..7u8).all(|k| {
            let mut of_key = filters.iter().filter(|f| f.key() == k).peekable();
            of_key.peek().is_none() || of_key.any(|f| f.matches(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> (Engine, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "capsa-events-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let e = Engine {
            root: dir.join("root"),
            run: dir.join("run"),
            images: capsa_image::Store::open(dir.join("root")).unwrap(),
        };
        std::fs::create_dir_all(e.run.join("locks")).unwrap();
        (e, dir)
    }

    #[test]
    fn the_log_is_bounded_and_a_follower_reads_across_a_rotation() {
        let (e, dir) = engine();
        let (_, mut cursor) = read(&e, 0);
        let big = "x".repeat(4000);
        let n = (ROTATE_AT / 4000 + 10) as usize;
        for i in 0..n {
            emit(
                &e,
                &Event::new(Kind::Volume, "create", &i.to_string(), &[("pad", &big)]),
            );
        }
        let seen = more(&e, &mut cursor);
        // Rotated once: nothing lost for a reader that kept up.
        assert_eq!(seen.len(), n);
        assert!(std::fs::metadata(path(&e)).unwrap().len() < ROTATE_AT);
        for i in 0..n {
            emit(
                &e,
                &Event::new(Kind::Volume, "create", &i.to_string(), &[("pad", &big)]),
            );
        }
        let total: u64 = ["events.log", "events.log.1"]
            .iter()
            .map(|f| std::fs::metadata(e.run.join(f)).map_or(0, |m| m.len()))
            .sum();
        assert!(total <= 2 * ROTATE_AT + 8192, "{total}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn filters_read_as_dockers() {
        let mut ev = Event::new(
            Kind::Container,
            "health_status: healthy",
            "abcdef",
            &[("name", "web"), ("image", "bb")],
        );
        ev.actor.attributes.insert("team".into(), "a".into());
        let f =
            |s: &[&str]| -> Vec<Filter> { s.iter().map(|x| Filter::parse(x).unwrap()).collect() };
        assert!(Filter::passes(
            &f(&["container=web", "event=health_status"]),
            &ev
        ));
        assert!(Filter::passes(
            &f(&["container=abc", "image=bb", "label=team=a"]),
            &ev
        ));
        assert!(Filter::passes(
            &f(&["event=start", "event=health_status"]),
            &ev
        ));
        assert!(!Filter::passes(&f(&["type=volume"]), &ev));
        assert!(!Filter::passes(&f(&["container=db"]), &ev));
        assert!(Filter::parse("colour=red")
            .unwrap_err()
            .to_string()
            .starts_with("--filter"));
    }
}
