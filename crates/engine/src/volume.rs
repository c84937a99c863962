//! Named and anonymous volumes: a directory of the store's each,
//! `<root>/volumes/<name>/_data`, with its record beside it
//! (`volume.json`: labels, creation time, whether anonymous). A volume
//! made by `run -v NAME:/path` has no record until it is asked about: it
//! is described from its directory.
//!
//! There is no daemon to count a volume's users: the containers' own
//! records say which volumes they mount, and a volume one of them mounts
//! (running or not) is refused to `rm` and skipped by `prune`.

use crate::error::{flag, Error, IoContext, Result};
use crate::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A volume as `volume inspect` shows it (docker's field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub mountpoint: PathBuf,
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    pub scope: String,
    /// Made for one container (`-v /path`, an image's VOLUME), not named.
    #[serde(default)]
    pub anonymous: bool,
}

/// Docker's rule for a volume's name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
///
/// Security: a name is a directory under the store's `volumes/`; `.`,
/// `..` or a `/` would lead elsewhere in the store.
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 255 && crate::container::is_docker_name(name);
    if ok {
        Ok(())
    } else {
        Err(flag(
            "volume name",
            format!("{name:?}: [a-zA-Z0-9][a-zA-Z0-9_.-]* is what a volume name may be"),
        ))
    }
}

fn dir(engine: &Engine, name: &str) -> PathBuf {
    engine.volumes().join(name)
}

/// The names anonymous volumes get: the container's short id, then the
/// path it mounts at (`0123456789ab-data`).
fn anonymous_name(name: &str) -> bool {
    name.len() > 13
        && name.as_bytes()[12] == b'-'
        && name[..12].bytes().all(|b| b.is_ascii_hexdigit())
}

fn describe(engine: &Engine, name: &str) -> Result<Volume> {
    let d = dir(engine, name);
    let meta = std::fs::symlink_metadata(&d).map_err(|_| {
        Error::NotFound(format!(
            "volume {name} does not exist (capsa volume ls lists them)"
        ))
    })?;
    if !meta.is_dir() {
        return Err(Error::NotFound(format!(
            "volume {name} does not exist (capsa volume ls lists them)"
        )));
    }
    if let Ok(bytes) = std::fs::read(d.join("volume.json")) {
        if let Ok(v) = serde_json::from_slice::<Volume>(&bytes) {
            return Ok(Volume {
                name: name.to_string(),
                mountpoint: d.join("_data"),
                ..v
            });
        }
    }
    let secs = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok(Volume {
        name: name.to_string(),
        driver: "local".into(),
        mountpoint: d.join("_data"),
        created_at: capsa_image::local::rfc3339(secs),
        labels: BTreeMap::new(),
        options: BTreeMap::new(),
        scope: "local".into(),
        anonymous: anonymous_name(name),
    })
}

/// Make a volume (`None`: an anonymous one with a random name), with
/// `labels`; one that exists already is an error, as docker's create of a
/// name with other labels is.
pub fn create(
    engine: &Engine,
    name: Option<&str>,
    labels: BTreeMap<String, String>,
) -> Result<Volume> {
    let name = match name {
        Some(n) => {
            check_name(n)?;
            n.to_string()
        }
        None => crate::container::new_id()?,
    };
    let d = dir(engine, &name);
    crate::private_dir(&engine.volumes())?;
    std::fs::create_dir(&d).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            Error::Conflict(format!("volume {name} exists already"))
        }
        _ => Error::Io {
            op: "create",
            path: d.clone(),
            source: e,
        },
    })?;
    let v = Volume {
        name: name.clone(),
        driver: "local".into(),
        mountpoint: d.join("_data"),
        created_at: capsa_image::local::rfc3339_now(),
        labels,
        options: BTreeMap::new(),
        scope: "local".into(),
        anonymous: false,
    };
    let made = (|| {
        std::fs::create_dir(&v.mountpoint).at("create", &v.mountpoint)?;
        let tmp = d.join(".volume.json.tmp");
        let bytes = serde_json::to_vec_pretty(&v).map_err(|e| Error::data("volume.json", e))?;
        std::fs::write(&tmp, bytes).at("write", &tmp)?;
        std::fs::rename(&tmp, d.join("volume.json")).at("rename", d.join("volume.json"))
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&d);
        return Err(e);
    }
    crate::events::emit(
        engine,
        &crate::events::Event::new(
            crate::events::Kind::Volume,
            "create",
            &v.name,
            &[("driver", "local")],
        ),
    );
    Ok(v)
}

/// Every volume, by name.
pub fn list(engine: &Engine) -> Result<Vec<Volume>> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(engine.volumes()) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if check_name(&name).is_ok() {
            if let Ok(v) = describe(engine, &name) {
                out.push(v);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One volume.
pub fn get(engine: &Engine, name: &str) -> Result<Volume> {
    check_name(name)?;
    describe(engine, name)
}

/// The containers (names) that mount `name`, running or not.
pub fn users(engine: &Engine, name: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in engine.list()? {
        let named = c
            .options
            .volumes
            .iter()
            .any(|v| v.get().is_named() && v.get().source == name)
            || c.options.mounts.iter().any(|m| {
                matches!(m.get(), crate::flags::Mount::Volume { name: Some(n), .. } if n == name)
            });
        let own = name.starts_with(&format!("{}-", c.short_id()));
        if named || own {
            out.push(c.name.clone());
        }
    }
    Ok(out)
}

/// Remove volumes; one a container mounts is refused, naming it.
pub fn remove(engine: &Engine, name: &str) -> Result<()> {
    let v = get(engine, name)?;
    let users = users(engine, name)?;
    if !users.is_empty() {
        return Err(Error::Conflict(format!(
            "volume {} is in use by container{} {}: remove {} first",
            v.name,
            if users.len() > 1 { "s" } else { "" },
            users.join(", "),
            if users.len() > 1 { "them" } else { "it" }
        )));
    }
    let d = dir(engine, name);
    // Gone at once (a rename), deleted after.
    let trash = engine.trash().join(format!("volume-{name}"));
    std::fs::create_dir_all(engine.trash()).at("create", engine.trash())?;
    std::fs::rename(&d, &trash).at("remove", &d)?;
    crate::manage::empty_trash(engine);
    crate::events::emit(
        engine,
        &crate::events::Event::new(
            crate::events::Kind::Volume,
            "destroy",
            name,
            &[("driver", "local")],
        ),
    );
    Ok(())
}

/// A filter of `volume ls` and `volume prune`, as docker spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `name=TEXT`: the name contains it.
    Name(String),
    /// `label=KEY` or `label=KEY=VALUE`.
    Label(String, Option<String>),
    /// `dangling=true|false`: no container mounts it (or one does).
    Dangling(bool),
    /// `driver=local`.
    Driver(String),
}

impl Filter {
    /// `KEY=VALUE` as `--filter` takes it.
    pub fn parse(s: &str) -> Result<Filter> {
        let bad = |why: &str| flag("--filter", format!("{s:?}: {why}"));
        let (k, v) = s.split_once('=').ok_or_else(|| bad("expected KEY=VALUE"))?;
        Ok(match k {
            "name" => Filter::Name(v.to_string()),
            "label" => match v.split_once('=') {
                Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
                None => Filter::Label(v.to_string(), None),
            },
            "dangling" => match v {
                "true" | "1" => Filter::Dangling(true),
                "false" | "0" => Filter::Dangling(false),
                _ => return Err(bad("dangling is true or false")),
            },
            "driver" => Filter::Driver(v.to_string()),
            _ => return Err(bad("filters are name, label, dangling and driver")),
        })
    }

    /// Whether `v` (with `users` mounting it) passes.
    pub fn matches(&self, v: &Volume, users: &[String]) -> bool {
        match self {
            Filter::Name(n) => v.name.contains(n.as_str()),
            Filter::Label(k, None) => v.labels.contains_key(k),
            Filter::Label(k, Some(val)) => v.labels.get(k) == Some(val),
            Filter::Dangling(d) => users.is_empty() == *d,
            Filter::Driver(d) => v.driver == *d,
        }
    }
}

/// The volumes that pass every filter, each with the containers that
/// mount it.
pub fn select(engine: &Engine, filters: &[Filter]) -> Result<Vec<(Volume, Vec<String>)>> {
    let mut out = Vec::new();
    for v in list(engine)? {
        let users = users(engine, &v.name)?;
        if filters.iter().all(|f| f.matches(&v, &users)) {
            out.push((v, users));
        }
    }
    Ok(out)
}

/// Remove the volumes no container mounts that pass `filters`: anonymous
/// ones only, unless `all` (docker's `prune -a`). Returns their names.
pub fn prune(engine: &Engine, all: bool, filters: &[Filter]) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    for (v, users) in select(engine, filters)? {
        if users.is_empty() && (all || v.anonymous) {
            remove(engine, &v.name)?;
            gone.push(v.name);
        }
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_filters_read_as_docker_reads_them() {
        for ok in ["data", "a", "my_vol-1.2", "0abc"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "-x", "_x", "x y"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Filter::parse("label=a=b").unwrap(),
            Filter::Label("a".into(), Some("b".into()))
        );
        assert_eq!(
            Filter::parse("label=a").unwrap(),
            Filter::Label("a".into(), None)
        );
        assert_eq!(
            Filter::parse("dangling=true").unwrap(),
            Filter::Dangling(true)
        );
        assert!(Filter::parse("dangling=maybe").is_err());
        assert!(Filter::parse("colour=red").is_err());
        assert!(anonymous_name("0123456789ab-data"));
        assert!(!anonymous_name("data"));
    }
}
