//! `ps --filter KEY=VALUE`, as docker's: values given for one key are
//! alternatives, and every key given must hold. `status` looks at
//! stopped containers too, as docker's does without `-a`.

use crate::container::{Container, Status};
use crate::error::{flag, Result};
use crate::Engine;

/// One `--filter` of `ps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `id=PREFIX`.
    Id(String),
    /// `name=TEXT`: the name holds it.
    Name(String),
    /// `label=KEY` or `label=KEY=VALUE`.
    Label(String, Option<String>),
    /// `exited=CODE`.
    Exited(i32),
    /// `status=created|restarting|running|paused|exited`.
    Status(Status),
    /// `ancestor=IMAGE`: run from that image (name or id).
    Ancestor(String),
    /// `before=CONTAINER` and `since=CONTAINER`: made before or after it.
    Before(String),
    Since(String),
    /// `volume=NAME|PATH`: a volume it mounts, or where one is mounted.
    Volume(String),
    /// `network=NAME`.
    Network(String),
    /// `health=starting|healthy|unhealthy|none`.
    Health(String),
}

impl Filter {
    pub fn parse(s: &str) -> Result<Filter> {
        let bad = |why: &str| flag("--filter", format!("{s:?}: {why}"));
        let (k, v) = s.split_once('=').ok_or_else(|| bad("expected KEY=VALUE"))?;
        let v = v.to_string();
        Ok(match k {
            "id" => Filter::Id(v),
            "name" => Filter::Name(v),
            "label" => match v.split_once('=') {
                Some((k, val)) => Filter::Label(k.into(), Some(val.into())),
                None => Filter::Label(v, None),
            },
            "exited" => Filter::Exited(v.parse().map_err(|_| bad("exited takes an exit code"))?),
            "status" => Filter::Status(match v.as_str() {
                "created" => Status::Created,
                "restarting" => Status::Restarting,
                "running" => Status::Running,
                "paused" => Status::Paused,
                "exited" => Status::Exited,
                _ => return Err(bad("status is created, restarting, running, paused or exited")),
            }),
            "ancestor" => Filter::Ancestor(v),
            "before" => Filter::Before(v),
            "since" => Filter::Since(v),
            "volume" => Filter::Volume(v),
            "network" => Filter::Network(v),
            "health" => match v.as_str() {
                "starting" | "healthy" | "unhealthy" | "none" => Filter::Health(v),
                _ => return Err(bad("health is starting, healthy, unhealthy or none")),
            },
            _ => {
                return Err(bad(
                    "filters are id, name, label, exited, status, ancestor, before, since, volume, network and health",
                ))
            }
        })
    }

    fn key(&self) -> &'static str {
        match self {
            Filter::Id(_) => "id",
            Filter::Name(_) => "name",
            Filter::Label(..) => "label",
            Filter::Exited(_) => "exited",
            Filter::Status(_) => "status",
            Filter::Ancestor(_) => "ancestor",
            Filter::Before(_) => "before",
            Filter::Since(_) => "since",
            Filter::Volume(_) => "volume",
            Filter::Network(_) => "network",
            Filter::Health(_) => "health",
        }
    }

    /// Whether the filters ask for stopped containers: `status` does
    /// (`ps` shows them then without `-a`, as dockerd does); `exited`
    /// does not (dockerd's `ps -f exited=0` without `-a` lists nothing).
    pub fn wants_stopped(filters: &[Filter]) -> bool {
        filters.iter().any(|f| matches!(f, Filter::Status(_)))
    }
}

/// What the filters need resolved once: the creation order of `before`
/// and `since`, and the image ids `ancestor` names.
struct Known {
    before: Vec<(u64, u64)>,
    since: Vec<(u64, u64)>,
    ancestors: Vec<(String, Option<String>)>,
}

/// The containers of `list` that pass: every key given, one of its values.
pub fn select(engine: &Engine, list: Vec<Container>, filters: &[Filter]) -> Result<Vec<Container>> {
    let created = |what: &str| -> Result<(u64, u64)> {
        let c = engine.find(what)?;
        Ok((c.created_secs, c.created_ns))
    };
    let images = engine.images.images().unwrap_or_default();
    let known = Known {
        before: filters
            .iter()
            .filter_map(|f| match f {
                Filter::Before(c) => Some(created(c)),
                _ => None,
            })
            .collect::<Result<_>>()?,
        since: filters
            .iter()
            .filter_map(|f| match f {
                Filter::Since(c) => Some(created(c)),
                _ => None,
            })
            .collect::<Result<_>>()?,
        ancestors: filters
            .iter()
            .filter_map(|f| match f {
                Filter::Ancestor(a) => Some((
                    a.clone(),
                    capsa_image::store::find(&images, a)
                        .ok()
                        .map(|r| r.id.to_string()),
                )),
                _ => None,
            })
            .collect(),
    };
    let mut keys: Vec<&str> = filters.iter().map(Filter::key).collect();
    keys.sort_unstable();
    keys.dedup();
    Ok(list
        .into_iter()
        .filter(|c| {
            keys.iter().all(|k| {
                filters
                    .iter()
                    .filter(|f| f.key() == *k)
                    .any(|f| matches(f, c, &known))
            })
        })
        .collect())
}

fn matches(f: &Filter, c: &Container, known: &Known) -> bool {
    match f {
        Filter::Id(p) => c.id.starts_with(p.as_str()),
        Filter::Name(n) => c.name.contains(n.as_str()),
        Filter::Label(k, v) => match (c.labels.get(k), v) {
            (Some(_), None) => true,
            (Some(have), Some(want)) => have == want,
            (None, _) => false,
        },
        Filter::Exited(code) => {
            c.state.status == Status::Exited && c.state.exit_code == Some(*code)
        }
        Filter::Status(s) => c.state.status == *s,
        Filter::Ancestor(a) => {
            known
                .ancestors
                .iter()
                .filter(|(name, _)| name == a)
                .any(|(name, id)| {
                    *name == c.image
                        || id.as_deref() == Some(c.image_id.as_str())
                        || (name.len() >= 4
                            && c.image_id
                                .trim_start_matches("sha256:")
                                .starts_with(name.as_str()))
                })
        }
        // Each `before`/`since` value once: all of them must hold.
        Filter::Before(_) => known
            .before
            .iter()
            .all(|t| (c.created_secs, c.created_ns) < *t),
        Filter::Since(_) => known
            .since
            .iter()
            .all(|t| (c.created_secs, c.created_ns) > *t),
        Filter::Volume(v) => {
            c.options
                .volumes
                .iter()
                .any(|m| m.get().source == *v || m.get().target == *v)
                || c.options.mounts.iter().any(|m| match m.get() {
                    crate::flags::Mount::Volume { name, target, .. } => {
                        name.as_deref() == Some(v.as_str()) || target == v
                    }
                    m => m.target() == v,
                })
        }
        Filter::Network(n) => {
            c.options
                .network
                .as_deref()
                .unwrap_or(crate::network::DEFAULT)
                == n
        }
        Filter::Health(h) => {
            use crate::health::HealthStatus as H;
            let have = match c.state.health.as_ref().map(|s| s.status) {
                None => "none",
                Some(H::Starting) => "starting",
                Some(H::Healthy) => "healthy",
                Some(H::Unhealthy) => "unhealthy",
            };
            have == h
        }
    }
}
