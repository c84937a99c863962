//! The content store: blobs named by their sha256, verified as they are
//! written and renamed into place only once complete; the image index
//! (names -> manifests) updated under a file lock, written to a temp file and
//! renamed; and the locks that make concurrent capsa processes safe.
//!
//! ```text
//! <root>/blobs/sha256/<hex>     manifests, configs, compressed layers
//! <root>/layers/<chain-hex>/    unpacked layers (see layers.rs)
//! <root>/l/<short>              short links to layer dirs (overlay options)
//! <root>/images.json            the index
//! <root>/tmp/                   partial writes (never read as content)
//! <root>/locks/                 images.lock (index), gc.lock (shared by
//!                               writers, exclusive for garbage collection)
//! ```

use crate::digest::{Digest, Hasher};
use crate::error::{Error, IoContext, Result};
use crate::reference::Reference;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One image the store knows, by its config digest (docker's image id).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    /// The config blob's digest: the image id.
    pub id: Digest,
    /// The manifest blob's digest.
    pub manifest: Digest,
    /// The manifest's media type (OCI or Docker schema 2).
    pub media_type: String,
    /// Fully qualified `registry/repo:tag` names pointing at it.
    #[serde(default)]
    pub names: Vec<String>,
    /// Where it was pulled from or pushed to (`registry/repo`): the source
    /// of cross-repository blob mounts when pushing elsewhere on a registry.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Creation time from the config, as the config gives it.
    #[serde(default)]
    pub created: Option<String>,
    /// Seconds since the epoch when the store recorded it.
    #[serde(default)]
    pub added: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    images: Vec<ImageRecord>,
}

/// A content store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A held `flock`; released when dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A name no other writer (thread or process) uses at the same time.
pub(crate) fn unique_name(prefix: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{}-{n}-{nanos:08x}", std::process::id())
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Write `bytes` to `path` atomically: temp file, fsync, rename, fsync dir.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    capsa_sys::file::write_atomic(path, bytes, mode, capsa_sys::file::Durability::Synced)
        .at("write", path)
}

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for sub in ["blobs/sha256", "layers", "l", "tmp", "locks"] {
            let p = root.join(sub);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&p)
                .at("create directory", &p)?;
        }
        Ok(Store { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives (whether or not it is there).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// Whether the blob is stored.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// A directory for partial writes; nothing in it is ever content.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Take a lock file under `locks/`.
    fn lock(&self, name: &str, exclusive: bool) -> Result<Lock> {
        let path = self.root.join("locks").join(name);
        let file = capsa_sys::file::lock_path(&path, exclusive).at("lock", &path)?;
        Ok(Lock { _file: file })
    }

    /// Held by every writer of blobs and layers for the length of its
    /// work, so that garbage collection (which takes it exclusively) never
    /// deletes what a pull is about to reference.
    pub fn writer_lock(&self) -> Result<Lock> {
        self.lock("gc.lock", false)
    }

    /// Held by garbage collection.
    pub fn gc_lock(&self) -> Result<Lock> {
        self.lock("gc.lock", true)
    }

    /// Start writing a blob; `finish` verifies and renames it into place.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let path = self.tmp_dir().join(unique_name("blob-"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .at("create", &path)?;
        Ok(BlobWriter {
            file: Some(io::BufWriter::with_capacity(256 * 1024, file)),
            path,
            hasher: Hasher::new(),
            store: self.clone(),
        })
    }

    /// Copy a reader into the store. With `expected`, a mismatch keeps
    /// nothing and fails naming `what`.
    pub fn put_blob(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        let mut w = self.blob_writer()?;
        let path = w.path.clone();
        io::copy(&mut reader, &mut w)
            .at("write blob for", what)
            .map_err(|e| match e {
                Error::Io { source, .. } => Error::Io {
                    op: "write blob",
                    path,
                    source,
                },
                e => e,
            })?;
        w.finish(expected, what)
    }

    /// Store bytes already in memory.
    pub fn put_bytes(&self, bytes: &[u8], expected: Option<&Digest>, what: &str) -> Result<Digest> {
        let actual = Digest::of(bytes);
        if let Some(e) = expected {
            e.check(&actual, what)?;
        }
        if !self.has_blob(&actual) {
            let mut w = self.blob_writer()?;
            w.write_all(bytes).at("write", w.path.clone())?;
            w.finish(Some(&actual), what)?;
        }
        Ok(actual)
    }

    /// Read a small blob (manifest, config), checking its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(d);
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound(format!("blob {d}"))
            } else {
                Error::Io {
                    op: "read",
                    path: path.clone(),
                    source: e,
                }
            }
        })?;
        d.check(&Digest::of(&bytes), format!("blob {}", path.display()))?;
        Ok(bytes)
    }

    /// Open a blob for streaming.
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        let path = self.blob_path(d);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound(format!("blob {d}"))
            } else {
                Error::Io {
                    op: "open",
                    path,
                    source: e,
                }
            }
        })
    }

    /// Every image record, as of now (the index is replaced atomically, so
    /// a reader needs no lock).
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let path = self.root.join("images.json");
        match fs::read(&path) {
            Ok(b) => Ok(serde_json::from_slice::<Index>(&b)
                .map_err(|e| crate::error::invalid(path.display().to_string(), e))?
                .images),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::Io {
                op: "read",
                path,
                source: e,
            }),
        }
    }

    /// Change the index under its lock; the change is written atomically.
    pub fn update_images<R>(
        &self,
        f: impl FnOnce(&mut Vec<ImageRecord>) -> Result<R>,
    ) -> Result<R> {
        let _lock = self.lock("images.lock", true)?;
        let mut images = self.images()?;
        let r = f(&mut images)?;
        let bytes = serde_json::to_vec_pretty(&Index { images })
            .map_err(|e| crate::error::invalid("images.json", e))?;
        write_atomic(&self.root.join("images.json"), &bytes, 0o600)?;
        Ok(r)
    }

    /// Record an image under `name` (if any), taking the name from any
    /// other image that had it, as `docker tag` and `pull` do.
    pub fn record(&self, mut rec: ImageRecord, name: Option<&Reference>) -> Result<ImageRecord> {
        self.update_images(|images| {
            let name = name
                .filter(|r| r.tag.is_some())
                .map(|r| r.with_tag(r.tag.as_deref().unwrap_or("latest")).to_string());
            if let Some(n) = &name {
                for other in images.iter_mut() {
                    other.names.retain(|x| x != n);
                }
            }
            let rec = match images.iter_mut().find(|i| i.id == rec.id) {
                Some(existing) => {
                    existing.manifest = rec.manifest.clone();
                    existing.media_type = rec.media_type.clone();
                    for o in rec.origins.drain(..) {
                        if !existing.origins.contains(&o) {
                            existing.origins.push(o);
                        }
                    }
                    existing
                }
                None => {
                    if rec.added == 0 {
                        rec.added = now_secs();
                    }
                    images.push(rec);
                    images.last_mut().expect("just pushed")
                }
            };
            if let Some(n) = name {
                if !rec.names.contains(&n) {
                    rec.names.push(n);
                }
            }
            Ok(rec.clone())
        })
    }

    /// Find an image by name (normalised), id or unique id prefix, or
    /// `name@digest` (matching the manifest digest).
    pub fn resolve(&self, what: &str) -> Result<ImageRecord> {
        let images = self.images()?;
        find(&images, what).cloned()
    }
}

/// The lookup behind [`Store::resolve`], over a list already read.
pub fn find<'a>(images: &'a [ImageRecord], what: &str) -> Result<&'a ImageRecord> {
    let hexish = what.strip_prefix("sha256:").unwrap_or(what);
    if hexish.len() >= 3 && hexish.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hits: Vec<_> = images
            .iter()
            .filter(|i| i.id.hex().starts_with(hexish))
            .collect();
        match hits.len() {
            1 => return Ok(hits[0]),
            n if n > 1 => {
                return Err(Error::Conflict(format!(
                    "{what}: id prefix matches {n} images; give more digits"
                )))
            }
            _ => {}
        }
    }
    if let Ok(r) = Reference::parse(what) {
        if let Some(d) = &r.digest {
            if let Some(i) = images.iter().find(|i| &i.manifest == d) {
                return Ok(i);
            }
        } else {
            let full = r.to_string();
            if let Some(i) = images.iter().find(|i| i.names.contains(&full)) {
                return Ok(i);
            }
            // Images loaded without a registry (`localhost/...`), as podman
            // names them: let a short name find them too.
            let local = format!(
                "localhost/{}:{}",
                what.split(':').next().unwrap_or(what),
                r.tag.as_deref().unwrap_or("latest")
            );
            if let Some(i) = images.iter().find(|i| i.names.contains(&local)) {
                return Ok(i);
            }
        }
    }
    Err(Error::NotFound(what.to_string()))
}

/// A blob being written: hashed as it goes, renamed into the store only
/// when `finish` has checked its digest; dropped unfinished, it leaves
/// nothing behind.
pub struct BlobWriter {
    file: Option<io::BufWriter<File>>,
    path: PathBuf,
    hasher: Hasher,
    store: Store,
}

impl BlobWriter {
    /// Bytes written so far (where a resumed download continues).
    pub fn written(&self) -> u64 {
        self.hasher.len()
    }

    /// Verify against `expected` (if given), fsync and rename into place.
    pub fn finish(mut self, expected: Option<&Digest>, what: &str) -> Result<(Digest, u64)> {
        let file = self.file.take().expect("finish is called once");
        let file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .at("flush", &self.path)?;
        let hasher = std::mem::take(&mut self.hasher);
        let size = hasher.len();
        let actual = hasher.finish();
        if let Some(e) = expected {
            e.check(&actual, what)?;
        }
        let dest = self.store.blob_path(&actual);
        if dest.exists() {
            return Ok((actual, size));
        }
        file.sync_all().at("fsync", &self.path)?;
        fs::rename(&self.path, &dest).at("rename into", &dest)?;
        Ok((actual, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self.file.as_mut().ok_or(io::ErrorKind::BrokenPipe)?;
        let n = f.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Finished writers renamed the file away; this only removes a
        // partial one (or a duplicate of a blob that was already there).
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store(name: &str) -> (PathBuf, Store) {
        let dir = std::env::temp_dir().join(unique_name(&format!("capsa-store-{name}-")));
        let s = Store::open(&dir).unwrap();
        (dir, s)
    }

    #[test]
    fn a_blob_whose_digest_does_not_match_is_not_kept() {
        let (dir, s) = temp_store("mismatch");
        let wrong = Digest::of(b"something else");
        let err = s
            .put_blob(&b"content"[..], Some(&wrong), "layer x")
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert_eq!(fs::read_dir(dir.join("blobs/sha256")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
        let (d, n) = s
            .put_blob(&b"content"[..], Some(&Digest::of(b"content")), "x")
            .unwrap();
        assert_eq!(n, 7);
        assert_eq!(s.read_blob(&d).unwrap(), b"content");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupted_blob_is_refused_on_read() {
        let (dir, s) = temp_store("corrupt");
        let d = s.put_bytes(b"{}", None, "config").unwrap();
        fs::write(s.blob_path(&d), b"{ }").unwrap();
        assert!(matches!(s.read_blob(&d), Err(Error::DigestMismatch { .. })));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn names_move_between_images_and_resolve_by_prefix() {
        let (dir, s) = temp_store("names");
        let rec = |b: &[u8]| ImageRecord {
            id: Digest::of(b),
            manifest: Digest::of(&[b, b"m"].concat()),
            media_type: String::new(),
            names: vec![],
            origins: vec![],
            created: None,
            added: 0,
        };
        let r = Reference::parse("busybox").unwrap();
        let a = s.record(rec(b"a"), Some(&r)).unwrap();
        let b = s.record(rec(b"b"), Some(&r)).unwrap();
        let images = s.images().unwrap();
        assert_eq!(images.len(), 2);
        assert!(images
            .iter()
            .find(|i| i.id == a.id)
            .unwrap()
            .names
            .is_empty());
        assert_eq!(s.resolve("busybox").unwrap().id, b.id);
        assert_eq!(s.resolve(&b.id.hex()[..8]).unwrap().id, b.id);
        assert!(matches!(s.resolve("nosuch"), Err(Error::NotFound(_))));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn concurrent_index_updates_lose_nothing() {
        let (dir, s) = temp_store("concurrent");
        std::thread::scope(|sc| {
            for t in 0..8u8 {
                let s = s.clone();
                sc.spawn(move || {
                    for i in 0..10u8 {
                        let id = Digest::of(&[t, i]);
                        let r = Reference::parse(&format!("t{t}/i{i}")).unwrap();
                        s.record(
                            ImageRecord {
                                manifest: id.clone(),
                                id,
                                media_type: String::new(),
                                names: vec![],
                                origins: vec![],
                                created: None,
                                added: 0,
                            },
                            Some(&r),
                        )
                        .unwrap();
                    }
                });
            }
        });
        assert_eq!(s.images().unwrap().len(), 80);
        fs::remove_dir_all(dir).unwrap();
    }
}
