//! Operations on the images the store holds: read, unpack, tag, remove,
//! import a rootfs tarball, account for space, collect garbage.

use crate::digest::{Digest, Hasher};
use crate::error::{invalid, Error, IoContext, Result};
use crate::layers;
use crate::manifest::{self, Image, Layer};
use crate::reference::Reference;
use crate::store::{find, now_secs, ImageRecord, Store};
use crate::{Progress, ProgressFn};
use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;

/// Read an image's manifest and config from the store.
pub fn open(store: &Store, rec: &ImageRecord) -> Result<Image> {
    let what = format!("image {}", rec.id.short());
    let bytes = store.read_blob(&rec.manifest)?;
    let manifest::Document::Image(m) = manifest::parse(&bytes, Some(&rec.media_type), &what)?
    else {
        return Err(invalid(what, "the recorded manifest is an index"));
    };
    let config_digest = manifest::digest_of(m.config())?;
    let config = store.read_blob(&config_digest)?;
    Image::new(*m, config, &what)
}

/// Unpack every layer of an image that is not yet unpacked (in parallel,
/// one thread per core) and return the overlay lower dirs, top first.
pub fn unpack(store: &Store, rec: &ImageRecord, progress: ProgressFn<'_>) -> Result<Vec<PathBuf>> {
    let image = open(store, rec)?;
    let layers = image.layers(&format!("image {}", rec.id.short()))?;
    unpack_layers(store, &layers, progress)?;
    Ok(lowers(store, &layers))
}

/// The overlay lower dirs of `layers` (bottom first), top first.
pub fn lowers(store: &Store, layers: &[Layer]) -> Vec<PathBuf> {
    layers
        .iter()
        .rev()
        .map(|l| layers::short_link(store, &l.chain_id))
        .collect()
}

/// Unpack layers concurrently, as many at once as there are cores.
pub fn unpack_layers(store: &Store, all: &[Layer], progress: ProgressFn<'_>) -> Result<()> {
    let todo: Vec<&Layer> = all
        .iter()
        .filter(|l| !layers::exists(store, &l.chain_id))
        .collect();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    crate::parallel::for_each(&todo, cores, |l| {
        progress(Progress::Unpacking {
            digest: l.blob.clone(),
        });
        layers::ensure(store, &l.chain_id, &l.diff_id, &l.blob)?;
        progress(Progress::Unpacked {
            digest: l.blob.clone(),
        });
        Ok(())
    })
}

/// Record a manifest and config already in the store as an image.
pub fn record(
    store: &Store,
    manifest_digest: &Digest,
    name: Option<&Reference>,
    origin: Option<String>,
) -> Result<ImageRecord> {
    let bytes = store.read_blob(manifest_digest)?;
    let what = format!("manifest {manifest_digest}");
    let manifest::Document::Image(m) = manifest::parse(&bytes, None, &what)? else {
        return Err(invalid(what, "expected an image manifest, found an index"));
    };
    let config_digest = manifest::digest_of(m.config())?;
    let config = store.read_blob(&config_digest)?;
    let image = Image::new((*m).clone(), config, &what)?;
    // Every layer must be present before the image is visible.
    for l in image.layers(&what)? {
        if !store.has_blob(&l.blob) {
            return Err(invalid(
                what,
                format!("layer {} is missing from the store", l.blob),
            ));
        }
    }
    store.record(
        ImageRecord {
            id: config_digest,
            manifest: manifest_digest.clone(),
            media_type: manifest::manifest_media_type(&m),
            names: vec![],
            origins: origin.into_iter().collect(),
            created: image.config.created().clone(),
            added: 0,
        },
        name,
    )
}

/// Give an image another name.
pub fn tag(store: &Store, what: &str, new: &str) -> Result<ImageRecord> {
    let rec = store.resolve(what)?;
    let r = Reference::parse(new)?;
    if r.digest.is_some() {
        return Err(Error::Reference {
            reference: new.into(),
            reason: "a tag cannot name a digest".into(),
        });
    }
    store.record(rec, Some(&r))
}

/// What `rmi` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Removed {
    pub untagged: Vec<String>,
    pub deleted: Option<Digest>,
}

/// Remove a name, or the image when it was given by id or its last name
/// goes; with `force`, an image with several names goes at once. `in_use`
/// lists image ids that containers use (they are refused).
pub fn remove(store: &Store, what: &str, force: bool, in_use: &[Digest]) -> Result<Removed> {
    store.update_images(|images| {
        let rec = find(images, what)?.clone();
        let by_name = Reference::parse(what)
            .ok()
            .map(|r| r.to_string())
            .filter(|n| rec.names.contains(n));
        let mut out = Removed {
            untagged: vec![],
            deleted: None,
        };
        let i = images
            .iter()
            .position(|x| x.id == rec.id)
            .expect("found above");
        match by_name {
            Some(n) if rec.names.len() > 1 && !force => {
                images[i].names.retain(|x| x != &n);
                out.untagged.push(n);
                return Ok(out);
            }
            None if rec.names.len() > 1 && !force => {
                return Err(Error::Conflict(format!(
                    "image {} has {} names ({}); remove them by name or use --force",
                    rec.id.short(),
                    rec.names.len(),
                    rec.names.join(", ")
                )))
            }
            _ => {}
        }
        if in_use.contains(&rec.id) {
            return Err(Error::Conflict(format!(
                "image {} is used by a container; remove the container first",
                rec.id.short()
            )));
        }
        out.untagged = rec.names.clone();
        out.deleted = Some(rec.id.clone());
        images.remove(i);
        Ok(out)
    })
}

/// Import a rootfs tarball (plain, gzip or zstd) as a one-layer image.
pub fn import_rootfs(
    store: &Store,
    reader: impl Read + Send,
    name: Option<&Reference>,
    progress: ProgressFn<'_>,
) -> Result<ImageRecord> {
    let _w = store.writer_lock()?;
    // Stored gzip'd, as registries expect layers; the diff id is the
    // hash of the tar itself.
    let mut r = crate::unpack::decompress(reader).at("read", "import tarball")?;
    let mut gz = flate2::write::GzEncoder::new(store.blob_writer()?, flate2::Compression::fast());
    let mut diff = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).at("read", "import tarball")?;
        if n == 0 {
            break;
        }
        diff.update(&buf[..n]);
        gz.write_all(&buf[..n]).at("write", store.tmp_dir())?;
        progress(Progress::Bytes {
            digest: Digest::of(b""),
            done: diff.len(),
            total: 0,
        });
    }
    let (blob, size) = gz
        .finish()
        .at("write", store.tmp_dir())?
        .finish(None, "imported layer")?;
    let diff_id = diff.finish();
    check_is_tar(store, &blob)?;
    let arch = manifest::Platform::host().arch;
    let created = rfc3339_now();
    let config = serde_json::json!({
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created": created, "created_by": "capsa import"}],
    });
    let config = serde_json::to_vec(&config).map_err(|e| invalid("config", e))?;
    let config_digest = store.put_bytes(&config, None, "config")?;
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": {"mediaType": manifest::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": manifest::OCI_LAYER_GZIP, "digest": blob.to_string(), "size": size}],
    });
    let m = serde_json::to_vec(&m).map_err(|e| invalid("manifest", e))?;
    let md = store.put_bytes(&m, None, "manifest")?;
    record(store, &md, name, None)
}

/// A copy of an image whose config runs `cmd`, recorded under `name`.
pub fn set_command(
    store: &Store,
    rec: &ImageRecord,
    cmd: &[&str],
    labels: &[(&str, &str)],
    name: Option<&Reference>,
) -> Result<ImageRecord> {
    let image = open(store, rec)?;
    let mut config: serde_json::Value =
        serde_json::from_slice(&image.config_bytes).map_err(|e| invalid("config", e))?;
    config["config"]["Cmd"] = serde_json::json!(cmd);
    for (k, v) in labels {
        config["config"]["Labels"][*k] = serde_json::json!(v);
    }
    let config = serde_json::to_vec(&config).map_err(|e| invalid("config", e))?;
    let config_digest = store.put_bytes(&config, None, "config")?;
    let mut m: serde_json::Value = serde_json::from_slice(&store.read_blob(&rec.manifest)?)
        .map_err(|e| invalid("manifest", e))?;
    m["config"]["digest"] = serde_json::json!(config_digest.to_string());
    m["config"]["size"] = serde_json::json!(config.len());
    let m = serde_json::to_vec(&m).map_err(|e| invalid("manifest", e))?;
    let md = store.put_bytes(&m, None, "manifest")?;
    let new = record(store, &md, name, None)?;
    if new.id != rec.id && rec.names.is_empty() {
        let _ = remove(store, rec.id.as_str(), true, &[]);
    }
    Ok(new)
}

fn check_is_tar(store: &Store, d: &Digest) -> Result<()> {
    let f = crate::unpack::decompress(store.open_blob(d)?).at("read", store.blob_path(d))?;
    let mut a = tar::Archive::new(f);
    let mut entries = a.entries().map_err(|e| invalid("import tarball", e))?;
    match entries.next() {
        Some(Ok(_)) | None => Ok(()),
        Some(Err(e)) => Err(invalid("import tarball", format!("not a tar archive: {e}"))),
    }
}

/// UTC now as RFC 3339, to the second.
pub fn rfc3339_now() -> String {
    rfc3339(now_secs())
}

/// Seconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(secs: u64) -> String {
    capsa_sys::time::rfc3339(secs as i64, None)
}

/// Space the store uses.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Usage {
    pub images: usize,
    pub blobs: usize,
    pub blob_bytes: u64,
    pub layers: usize,
    pub layer_bytes: u64,
    /// Bytes no image references (what `image prune` would free).
    pub reclaimable_bytes: u64,
}

/// Bytes allocated under `path` (its files' blocks, as `du` counts them),
/// 0 where it cannot be read.
///
/// Security: `system df` measures trees containers write (their upper
/// layers, volumes) while they run; a directory swapped for a link to `/`
/// must not have the host walked. The walk is by fd: each directory opened
/// `O_NOFOLLOW` beneath its parent's fd, entries looked at without
/// following links, the depth bounded.
pub fn tree_size(path: &std::path::Path) -> u64 {
    match rustix::fs::open(path, SUBDIR, rustix::fs::Mode::empty()) {
        Ok(fd) => tree_size_at(fd, 0),
        Err(_) => 0,
    }
}

/// A directory, never through a link.
const SUBDIR: rustix::fs::OFlags = rustix::fs::OFlags::RDONLY
    .union(rustix::fs::OFlags::DIRECTORY)
    .union(rustix::fs::OFlags::NOFOLLOW)
    .union(rustix::fs::OFlags::CLOEXEC);

/// Deeper than this is not measured.
const TREE_DEPTH: usize = 128;

fn tree_size_at(dir: std::os::fd::OwnedFd, depth: usize) -> u64 {
    use std::os::fd::AsFd;
    let Ok(list) = rustix::fs::Dir::read_from(&dir) else {
        return 0;
    };
    let names: Vec<std::ffi::CString> = list
        .filter_map(std::result::Result::ok)
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    let mut total = 0;
    for n in names {
        let Ok(st) = rustix::fs::statat(
            dir.as_fd(),
            n.as_c_str(),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        ) else {
            continue;
        };
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
            total += st.st_blocks as u64 * 512;
        } else if depth < TREE_DEPTH {
            if let Ok(sub) =
                rustix::fs::openat(dir.as_fd(), n.as_c_str(), SUBDIR, rustix::fs::Mode::empty())
            {
                total += tree_size_at(sub, depth + 1);
            }
        }
    }
    total
}

/// What images reference: manifests, configs, layer blobs, chain ids.
fn referenced(store: &Store) -> Result<(HashSet<String>, HashSet<String>)> {
    let mut blobs = HashSet::new();
    let mut chains = HashSet::new();
    for rec in store.images()? {
        blobs.insert(rec.manifest.hex().to_string());
        let image = open(store, &rec)?;
        blobs.insert(
            manifest::digest_of(image.manifest.config())?
                .hex()
                .to_string(),
        );
        for l in image.layers("image")? {
            blobs.insert(l.blob.hex().to_string());
            chains.insert(l.chain_id.hex().to_string());
        }
    }
    // The build cache's layers stay until its entries are pruned.
    for (_, e) in crate::cache::entries(store)? {
        let ids: Vec<Digest> = e.layers.iter().map(|l| l.diff_id.clone()).collect();
        for (l, chain) in e.layers.iter().zip(layers::chain_ids(&ids)) {
            blobs.insert(l.blob.hex().to_string());
            chains.insert(chain.hex().to_string());
        }
    }
    Ok((blobs, chains))
}

/// Account for the store's space.
pub fn usage(store: &Store) -> Result<Usage> {
    let (blobs_used, chains_used) = referenced(store)?;
    let mut u = Usage {
        images: store.images()?.len(),
        ..Default::default()
    };
    let bdir = store.root().join("blobs/sha256");
    for e in fs::read_dir(&bdir).at("read", &bdir)?.flatten() {
        let size = e.metadata().map(|m| m.len()).unwrap_or(0);
        u.blobs += 1;
        u.blob_bytes += size;
        if !blobs_used.contains(&e.file_name().to_string_lossy().into_owned()) {
            u.reclaimable_bytes += size;
        }
    }
    let ldir = store.root().join("layers");
    for e in fs::read_dir(&ldir).at("read", &ldir)?.flatten() {
        let size = tree_size(&e.path());
        u.layers += 1;
        u.layer_bytes += size;
        if !chains_used.contains(&e.file_name().to_string_lossy().into_owned()) {
            u.reclaimable_bytes += size;
        }
    }
    Ok(u)
}

/// What garbage collection removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Collected {
    pub blobs: usize,
    pub layers: usize,
    pub bytes: u64,
}

/// Remove blobs and layers no image references, dead temp files, and
/// dangling short links. Waits for running pulls and imports (they hold
/// the writer lock) so nothing they are about to record goes.
/// `keep_layers` are chain ids containers still use.
pub fn gc(store: &Store, keep_layers: &[Digest]) -> Result<Collected> {
    let _gc = store.gc_lock()?;
    let (blobs_used, mut chains_used) = referenced(store)?;
    chains_used.extend(keep_layers.iter().map(|d| d.hex().to_string()));
    let mut c = Collected::default();
    let bdir = store.root().join("blobs/sha256");
    for e in fs::read_dir(&bdir).at("read", &bdir)?.flatten() {
        if !blobs_used.contains(&e.file_name().to_string_lossy().into_owned()) {
            c.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(e.path()).at("remove", e.path())?;
            c.blobs += 1;
        }
    }
    let ldir = store.root().join("layers");
    for e in fs::read_dir(&ldir).at("read", &ldir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !chains_used.contains(&name) {
            c.bytes += tree_size(&e.path());
            layers::remove_tree(&e.path());
            if !name.starts_with(".tmp-") {
                c.layers += 1;
            }
        }
    }
    for e in fs::read_dir(store.tmp_dir())
        .at("read", store.tmp_dir())?
        .flatten()
    {
        let _ = fs::remove_file(e.path());
    }
    let l = store.root().join("l");
    for e in fs::read_dir(&l).at("read", &l)?.flatten() {
        if fs::metadata(e.path()).is_err() {
            let _ = fs::remove_file(e.path());
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tree_size_tests {
    #[test]
    fn a_link_to_elsewhere_is_not_walked() {
        let d = std::env::temp_dir().join(format!("capsa-usage-{}", std::process::id()));
        std::fs::create_dir_all(d.join("a")).unwrap();
        std::fs::write(d.join("a/f"), vec![1u8; 64 * 1024]).unwrap();
        std::os::unix::fs::symlink("/usr", d.join("host")).unwrap();
        let n = super::tree_size(&d);
        assert!((64 * 1024..1 << 20).contains(&n), "{n}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
