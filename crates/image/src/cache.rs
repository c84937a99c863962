//! The build cache: what a build step produced (the image config after it
//! and the layers under it), by a key that chains the parent's key, the
//! step's text after expansion and its sources' content. Garbage
//! collection keeps what cache entries use; `prune` drops the entries no
//! image uses (or all of them).
//!
//! ```text
//! <root>/build-cache/<key-hex>.json   one entry, written atomically
//! ```

use crate::commit::LayerBlob;
use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::error::{invalid, IoContext, Result};
use crate::store::Store;
use std::path::PathBuf;

/// One step's result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub config: ImageConfig,
    pub layers: Vec<LayerBlob>,
}

fn dir(store: &Store) -> PathBuf {
    store.root().join("build-cache")
}

fn path(store: &Store, key: &Digest) -> PathBuf {
    dir(store).join(format!("{}.json", key.hex()))
}

/// The entry for `key`, when it and every blob it names are there.
pub fn get(store: &Store, key: &Digest) -> Option<Entry> {
    let bytes = std::fs::read(path(store, key)).ok()?;
    let e: Entry = serde_json::from_slice(&bytes).ok()?;
    e.layers
        .iter()
        .all(|l| store.has_blob(&l.blob))
        .then_some(e)
}

/// Record `entry` under `key`.
pub fn put(store: &Store, key: &Digest, entry: &Entry) -> Result<()> {
    let d = dir(store);
    std::fs::create_dir_all(&d).at("create", &d)?;
    let bytes = serde_json::to_vec(entry).map_err(|e| invalid("cache entry", e))?;
    let p = path(store, key);
    let tmp = d.join(format!(".tmp-{}", key.hex()));
    std::fs::write(&tmp, bytes).at("write", &tmp)?;
    std::fs::rename(&tmp, &p).at("rename into", &p)
}

/// Every entry, with its key's hex.
pub fn entries(store: &Store) -> Result<Vec<(String, Entry)>> {
    let d = dir(store);
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&d) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(hex) = name.strip_suffix(".json") else {
            continue;
        };
        if let Some(entry) = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
        {
            out.push((hex.to_string(), entry));
        }
    }
    Ok(out)
}

/// Remove the entries whose layers no image has (as its layers or a
/// first part of them), or all with `all`; returns how many went.
/// Blobs they alone used go at the next garbage collection.
pub fn prune(store: &Store, all: bool) -> Result<usize> {
    let mut chains: Vec<Vec<Digest>> = Vec::new();
    if !all {
        for rec in store.images()? {
            let image = crate::local::open(store, &rec)?;
            chains.push(
                image
                    .layers("image")?
                    .into_iter()
                    .map(|l| l.diff_id)
                    .collect(),
            );
        }
    }
    let mut n = 0;
    for (hex, e) in entries(store)? {
        let ids: Vec<&Digest> = e.layers.iter().map(|l| &l.diff_id).collect();
        let used = chains
            .iter()
            .any(|c| c.len() >= ids.len() && c.iter().zip(&ids).all(|(a, b)| a == *b));
        if all || !used {
            let p = dir(store).join(format!("{hex}.json"));
            std::fs::remove_file(&p).at("remove", &p)?;
            n += 1;
        }
    }
    Ok(n)
}
