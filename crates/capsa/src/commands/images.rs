//! images, rmi, tag, image inspect/prune/mount/unmount, system df.

use crate::cli::{
    Format, ImagesArgs, InspectArgs, MountArgs, PruneArgs, RmiArgs, TagArgs, UnmountArgs,
};
use crate::progress::human;
use anyhow::{Context, Result};
use capsa_image::snapshot::{self, OverlayApi};
use capsa_image::{layers, local, Reference, Store};
use serde_json::json;

struct Row {
    repository: String,
    tag: String,
    id: String,
    created: Option<String>,
    size: u64,
    digest: String,
    names: Vec<String>,
    labels: std::collections::BTreeMap<String, String>,
}

fn rows(store: &Store) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for rec in store.images()? {
        let image = local::open(store, &rec)?;
        let size = image.manifest.config().size()
            + image
                .manifest
                .layers()
                .iter()
                .map(|l| l.size())
                .sum::<u64>();
        let labels = image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let names = if rec.names.is_empty() {
            vec![String::new()]
        } else {
            rec.names.clone()
        };
        for n in names {
            let (repository, tag) = match Reference::parse(&n) {
                Ok(r) if !n.is_empty() => (r.name(), r.tag.unwrap_or_default()),
                _ => ("<none>".to_string(), "<none>".to_string()),
            };
            out.push(Row {
                repository,
                tag,
                id: rec.id.to_string(),
                created: rec.created.clone(),
                size,
                digest: rec.manifest.to_string(),
                names: rec.names.clone(),
                labels: std::collections::BTreeMap::clone(&labels),
            });
        }
    }
    Ok(out)
}

/// "3 days ago" from an RFC 3339 time.
fn ago(created: Option<&str>) -> String {
    let Some(t) = created.and_then(capsa_sys::time::parse_rfc3339) else {
        return "N/A".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let s = now.saturating_sub(t);
    let (n, unit) = match s {
        0..=59 => (s, "second"),
        60..=3599 => (s / 60, "minute"),
        3600..=86_399 => (s / 3600, "hour"),
        86_400..=1_209_599 => (s / 86_400, "day"),
        1_209_600..=5_183_999 => (s / 604_800, "week"),
        5_184_000..=31_535_999 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// One `images --filter`, as docker's.
enum Filter {
    Dangling(bool),
    Label(String, Option<String>),
    /// A glob over `REPOSITORY[:TAG]`.
    Reference(String),
    Before(String),
    Since(String),
}

impl Filter {
    fn parse(s: &str) -> Result<Filter> {
        let bad = |why: &str| anyhow::anyhow!("--filter {s:?}: {why}");
        let (k, v) = s.split_once('=').ok_or_else(|| bad("expected KEY=VALUE"))?;
        Ok(match k {
            "dangling" => match v {
                "true" | "1" => Filter::Dangling(true),
                "false" | "0" => Filter::Dangling(false),
                _ => return Err(bad("dangling is true or false")),
            },
            "label" => match v.split_once('=') {
                Some((k, v)) => Filter::Label(k.into(), Some(v.into())),
                None => Filter::Label(v.into(), None),
            },
            "reference" => Filter::Reference(v.into()),
            "before" => Filter::Before(v.into()),
            "since" => Filter::Since(v.into()),
            _ => {
                return Err(bad(
                    "filters are dangling, label, reference, before and since",
                ))
            }
        })
    }

    fn key(&self) -> u8 {
        match self {
            Filter::Dangling(_) => 0,
            Filter::Label(..) => 1,
            Filter::Reference(_) => 2,
            Filter::Before(_) => 3,
            Filter::Since(_) => 4,
        }
    }
}

/// `*` any run of characters, `?` one (docker matches references so).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // match[i][j]: p[..i] matches t[..j].
    let mut m = vec![vec![false; t.len() + 1]; p.len() + 1];
    m[0][0] = true;
    for i in 1..=p.len() {
        m[i][0] = m[i - 1][0] && p[i - 1] == '*';
        for j in 1..=t.len() {
            m[i][j] = match p[i - 1] {
                '*' => m[i - 1][j] || m[i][j - 1],
                '?' => m[i - 1][j - 1],
                c => m[i - 1][j - 1] && c == t[j - 1],
            };
        }
    }
    m[p.len()][t.len()]
}

/// The rows that pass: every kind of filter given, one of its values.
fn select(store: &Store, rows: Vec<Row>, filters: &[Filter]) -> Result<Vec<Row>> {
    let created = |what: &str| -> Result<u64> {
        let rec = store.resolve(what)?;
        Ok(rec
            .created
            .as_deref()
            .and_then(capsa_sys::time::parse_rfc3339)
            .unwrap_or(0))
    };
    let mut times = Vec::new();
    for f in filters {
        times.push(match f {
            Filter::Before(w) | Filter::Since(w) => created(w)?,
            _ => 0,
        });
    }
    let passes = |r: &Row, f: &Filter, t: u64| {
        let at = r
            .created
            .as_deref()
            .and_then(capsa_sys::time::parse_rfc3339)
            .unwrap_or(0);
        match f {
            Filter::Dangling(d) => (r.repository == "<none>") == *d,
            Filter::Label(k, v) => match (r.labels.get(k), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            },
            Filter::Reference(p) => {
                let short = r
                    .repository
                    .strip_prefix("docker.io/library/")
                    .unwrap_or(&r.repository);
                [&r.repository, short]
                    .iter()
                    .any(|name| glob(p, name) || glob(p, &format!("{name}:{}", r.tag)))
            }
            Filter::Before(_) => at < t,
            Filter::Since(_) => at > t,
        }
    };
    Ok(rows
        .into_iter()
        .filter(|r| {
            (0..5u8).all(|k| {
                let of_kind: Vec<usize> = (0..filters.len())
                    .filter(|&i| filters[i].key() == k)
                    .collect();
                of_kind.is_empty() || of_kind.iter().any(|&i| passes(r, &filters[i], times[i]))
            })
        })
        .collect())
}

/// Docker's column titles of `images`'s template fields.
const HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
];

pub fn list(store: &Store, a: ImagesArgs) -> Result<()> {
    let filters = a
        .filter
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<Result<Vec<_>>>()?;
    let rows = select(store, rows(store)?, &filters)?;
    let template: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "ID": if a.no_trunc { r.id.clone() } else { r.id[7..19].to_string() },
                "Repository": r.repository.strip_prefix("docker.io/library/").unwrap_or(&r.repository),
                "Tag": r.tag,
                "Digest": r.digest,
                "CreatedSince": ago(r.created.as_deref()),
                "CreatedAt": r.created.as_deref().map(crate::format::go_time).unwrap_or_default(),
                "Size": human(r.size),
                "Containers": "N/A",
            })
        })
        .collect();
    if !a.quiet && crate::format::template(&a.format, &template, HEADERS)? {
        return Ok(());
    }
    if a.format == Format::Json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| json!({"Id": r.id, "Repository": r.repository, "Tag": r.tag, "Names": r.names, "Digest": r.digest, "Created": r.created, "Size": r.size, "Labels": r.labels}))
            .collect();
        println!("{}", crate::format::pretty(&v)?);
        return Ok(());
    }
    let id = |r: &Row| {
        if a.no_trunc {
            r.id.clone()
        } else {
            r.id[7..19].to_string()
        }
    };
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            if seen.insert(r.id.clone()) {
                println!("{}", id(r));
            }
        }
        return Ok(());
    }
    print!(
        "{}",
        crate::format::render(
            "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
            true,
            &template,
            HEADERS
        )?
    );
    Ok(())
}

/// Image ids and layer chains that containers use.
pub fn in_use(
    engine: &capsa_engine::Engine,
) -> Result<(Vec<capsa_image::Digest>, Vec<capsa_image::Digest>)> {
    let mut ids = Vec::new();
    let mut chains = Vec::new();
    for c in engine.list()? {
        if let Ok(d) = capsa_image::Digest::parse(&c.image_id) {
            if let Ok(rec) = engine.images.resolve(d.as_str()) {
                if let Ok(img) = local::open(&engine.images, &rec) {
                    chains.extend(
                        img.layers("image")
                            .unwrap_or_default()
                            .into_iter()
                            .map(|l| l.chain_id),
                    );
                }
            }
            ids.push(d);
        }
    }
    Ok((ids, chains))
}

pub fn remove(engine: &capsa_engine::Engine, a: RmiArgs) -> Result<()> {
    let store = &engine.images;
    let (ids, chains) = in_use(engine)?;
    let mut failed = None;
    for what in &a.images {
        match local::remove(store, what, a.force, &ids) {
            Ok(r) => {
                for n in r.untagged {
                    println!("Untagged: {n}");
                }
                if let Some(d) = r.deleted {
                    println!("Deleted: {d}");
                }
            }
            Err(e) => {
                eprintln!("capsa: rmi {what}: {e}");
                failed = Some(e);
            }
        }
    }
    // Blobs and layers no image uses any more go with the image.
    local::gc(store, &chains)?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

pub fn tag(store: &Store, a: TagArgs) -> Result<()> {
    local::tag(store, &a.source, &a.target)?;
    Ok(())
}

pub fn inspect(store: &Store, a: InspectArgs) -> Result<()> {
    let out = a
        .images
        .iter()
        .map(|w| inspect_one(store, w))
        .collect::<Result<Vec<_>>>()?;
    if !crate::format::template(&a.format, &out, &[])? {
        println!("{}", crate::format::pretty(&out)?);
    }
    Ok(())
}

/// One image as `image inspect` shows it.
pub fn inspect_one(store: &Store, what: &str) -> Result<serde_json::Value> {
    let rec = store.resolve(what)?;
    let image = local::open(store, &rec)?;
    let config: serde_json::Value = serde_json::from_slice(&image.config_bytes)?;
    let layer_list = image.layers(what)?;
    let size: u64 = layer_list.iter().map(|l| l.size).sum();
    let digests: Vec<String> = rec
        .names
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .map(|r| format!("{}@{}", r.name(), rec.manifest))
        .collect();
    Ok(json!({
        "Id": rec.id,
        "RepoTags": rec.names,
        "RepoDigests": digests,
        "Created": config.get("created"),
        "Author": config.get("author"),
        "Architecture": config.get("architecture"),
        "Os": config.get("os"),
        "Variant": config.get("variant"),
        "Config": config.get("config"),
        "RootFS": config.get("rootfs"),
        "History": config.get("history"),
        "Size": size,
        "Manifest": {"Digest": rec.manifest, "MediaType": rec.media_type, "Origins": rec.origins},
        "Layers": layer_list.iter().map(|l| json!({
            "Blob": l.blob,
            "MediaType": l.media_type,
            "Size": l.size,
            "DiffID": l.diff_id,
            "ChainID": l.chain_id,
            "Directory": layers::exists(store, &l.chain_id).then(|| layers::diff_dir(store, &l.chain_id)),
        })).collect::<Vec<_>>(),
    }))
}

/// Remove images no container uses (unnamed ones; every one with `all`),
/// the build cache entries no image left uses, then blobs and layers
/// nothing references: the ids removed and what went.
pub fn prune_images(
    engine: &capsa_engine::Engine,
    all: bool,
) -> Result<(Vec<String>, capsa_image::local::Collected)> {
    let store = &engine.images;
    let (ids, chains) = in_use(engine)?;
    let mut removed = Vec::new();
    for rec in store.images()? {
        if (all || rec.names.is_empty()) && !ids.contains(&rec.id) {
            local::remove(store, rec.id.as_str(), true, &ids)?;
            removed.push(rec.id.to_string());
        }
    }
    // Build cache entries no image left uses go too (docker keeps them
    // for `builder prune`; one prune is what a user expects here).
    capsa_image::cache::prune(store, false)?;
    Ok((removed, local::gc(store, &chains)?))
}

pub fn prune(engine: &capsa_engine::Engine, a: PruneArgs) -> Result<()> {
    let (removed, c) = prune_images(engine, a.all)?;
    if a.format == Format::Json {
        println!(
            "{}",
            crate::format::pretty(
                &json!({"ImagesDeleted": removed, "BlobsDeleted": c.blobs, "LayersDeleted": c.layers, "SpaceReclaimed": c.bytes})
            )?
        );
    } else {
        for r in &removed {
            println!("Deleted: {r}");
        }
        println!("Total reclaimed space: {}", human(c.bytes));
    }
    Ok(())
}

pub fn mount(store: &Store, a: MountArgs) -> Result<()> {
    let rec = store.resolve(&a.image)?;
    let lowers = local::unpack(store, &rec, &|_| {})?;
    snapshot::mount_overlay(&lowers, None, &a.directory, OverlayApi::Auto)
        .with_context(|| format!("mounting {} at {}", a.image, a.directory.display()))?;
    println!("{}", a.directory.display());
    Ok(())
}

pub fn unmount(a: UnmountArgs) -> Result<()> {
    snapshot::unmount(&a.directory)
        .with_context(|| format!("unmounting {}", a.directory.display()))?;
    Ok(())
}
