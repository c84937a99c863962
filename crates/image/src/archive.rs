//! Image archives: `load` reads docker-archive (`docker save`), oci-archive
//! and OCI layout directories; `save` writes one layout that is both (the
//! shape docker 25+ writes): `oci-layout`, `index.json`, `blobs/sha256/*`
//! and docker's `manifest.json`, so `docker load`, `podman load`, skopeo
//! and umoci all read it.

use crate::digest::Digest;
use crate::error::{invalid, IoContext, Result};
use crate::local;
use crate::manifest::{self, Document};
use crate::reference::Reference;
use crate::store::{ImageRecord, Store};
use crate::unpack::{clean_path, Compression};
use crate::{Progress, ProgressFn};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

/// Small metadata files kept in memory while loading.
const SMALL: u64 = 4 << 20;

#[derive(Default)]
struct Ingested {
    /// Archive path -> blob stored from it.
    files: HashMap<String, (Digest, u64)>,
    /// Small files' bytes (manifest.json, index.json, configs).
    small: HashMap<String, Vec<u8>>,
    /// Symlinks (older docker-archives link duplicate layers).
    links: HashMap<String, String>,
}

impl Ingested {
    fn add(
        &mut self,
        store: &Store,
        name: String,
        size: u64,
        r: impl Read,
        what: &str,
    ) -> Result<()> {
        // A blob under blobs/<alg>/<hex> must hash to its name.
        let expected = match name.strip_prefix("blobs/sha256/") {
            Some(hex) => Some(
                Digest::parse(&format!("sha256:{hex}"))
                    .map_err(|_| invalid(what, format!("{name}: not a sha256 blob name")))?,
            ),
            None => None,
        };
        if size <= SMALL {
            let mut bytes = Vec::with_capacity(size as usize);
            r.take(size).read_to_end(&mut bytes).at("read", what)?;
            let d = store.put_bytes(&bytes, expected.as_ref(), &format!("{what}: {name}"))?;
            self.files.insert(name.clone(), (d, bytes.len() as u64));
            self.small.insert(name, bytes);
        } else {
            let (d, n) = store.put_blob(r, expected.as_ref(), &format!("{what}: {name}"))?;
            self.files.insert(name, (d, n));
        }
        Ok(())
    }

    /// Follow symlinks (relative to the link's directory) to a file.
    fn file(&self, name: &str, what: &str) -> Result<&(Digest, u64)> {
        let mut cur = clean_path(name.as_bytes()).join("/");
        for _ in 0..16 {
            if let Some(f) = self.files.get(&cur) {
                return Ok(f);
            }
            let Some(t) = self.links.get(&cur) else { break };
            let dir = cur.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            cur = clean_path(format!("{dir}/{t}").as_bytes()).join("/");
        }
        Err(invalid(
            what,
            format!("{name} is named by the archive's manifest but not in it"),
        ))
    }
}

/// Load every image of an archive (tar, gzip'd or not) or layout directory.
pub fn load(store: &Store, path: &Path, progress: ProgressFn<'_>) -> Result<Vec<ImageRecord>> {
    let what = path.display().to_string();
    let _w = store.writer_lock()?;
    let mut ing = Ingested::default();
    if path.is_dir() {
        ingest_dir(store, path, path, &mut ing, &what)?;
    } else {
        let f = File::open(path).at("open", path)?;
        let r = crate::unpack::decompress(f).at("read", path)?;
        let mut a = tar::Archive::new(r);
        for e in a
            .entries()
            .map_err(|e| invalid(&what, format!("not a tar archive: {e}")))?
        {
            let e = e.map_err(|e| invalid(&what, format!("bad tar entry: {e}")))?;
            let name = clean_path(&e.path_bytes()).join("/");
            match e.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = e.header().size().unwrap_or(0);
                    ing.add(store, name.clone(), size, e, &what)?;
                    if let Some((d, _)) = ing.files.get(&name) {
                        progress(Progress::Done { digest: d.clone() });
                    }
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(t) = e.link_name_bytes() {
                        let t = String::from_utf8_lossy(&t).into_owned();
                        // Hard link names are archive-absolute.
                        let t = if e.header().entry_type() == tar::EntryType::Link {
                            format!("/{t}")
                        } else {
                            t
                        };
                        ing.links.insert(name, t);
                    }
                }
                _ => {}
            }
        }
    }
    // Hard links were recorded as absolute paths: resolve those directly.
    let abs: Vec<(String, String)> = ing
        .links
        .iter()
        .filter(|(_, t)| t.starts_with('/'))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    for (n, t) in abs {
        if let Some(f) = ing.files.get(&clean_path(t.as_bytes()).join("/")).cloned() {
            ing.files.insert(n, f);
        }
    }
    // An OCI index keeps the manifests as they were (docker 25+ and capsa
    // write both files); manifest.json alone is an older docker-archive.
    if let Some(i) = ing.small.get("index.json").cloned() {
        load_oci(store, &i, &what)
    } else if let Some(m) = ing.small.get("manifest.json").cloned() {
        load_docker(store, &ing, &m, &what)
    } else {
        Err(invalid(
            what,
            "neither a docker-archive (manifest.json) nor an OCI layout (index.json)",
        ))
    }
}

fn ingest_dir(
    store: &Store,
    root: &Path,
    dir: &Path,
    ing: &mut Ingested,
    what: &str,
) -> Result<()> {
    for e in fs::read_dir(dir).at("read", dir)? {
        let e = e.at("read", dir)?;
        let p = e.path();
        let rel = p
            .strip_prefix(root)
            .unwrap_or(&p)
            .to_string_lossy()
            .into_owned();
        let ft = e.file_type().at("stat", &p)?;
        if ft.is_dir() {
            ingest_dir(store, root, &p, ing, what)?;
        } else if ft.is_file() {
            let size = e.metadata().at("stat", &p)?.len();
            let f = File::open(&p).at("open", &p)?;
            ing.add(
                store,
                rel,
                size,
                std::io::BufReader::with_capacity(1 << 20, f),
                what,
            )?;
        }
    }
    Ok(())
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn load_docker(
    store: &Store,
    ing: &Ingested,
    manifest_json: &[u8],
    what: &str,
) -> Result<Vec<ImageRecord>> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(manifest_json)
        .map_err(|e| invalid(format!("{what}: manifest.json"), e))?;
    let mut out = Vec::new();
    for e in entries {
        let (config, config_size) = ing.file(&e.config, what)?.clone();
        let mut layers = Vec::new();
        for l in &e.layers {
            let (d, size) = ing.file(l, what)?.clone();
            let mut head = [0u8; 4];
            let n = store
                .open_blob(&d)?
                .read(&mut head)
                .at("read", store.blob_path(&d))?;
            let mt = match Compression::detect(&head[..n]) {
                Compression::Gzip => manifest::DOCKER_LAYER_GZIP,
                Compression::Zstd => manifest::OCI_LAYER_ZSTD,
                Compression::None => manifest::DOCKER_LAYER,
            };
            layers
                .push(serde_json::json!({"mediaType": mt, "digest": d.to_string(), "size": size}));
        }
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::DOCKER_MANIFEST,
            "config": {"mediaType": manifest::DOCKER_CONFIG, "digest": config.to_string(), "size": config_size},
            "layers": layers,
        });
        let m = serde_json::to_vec(&m).map_err(|e| invalid(what, e))?;
        let md = store.put_bytes(&m, None, "manifest")?;
        let tags = e.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            out.push(local::record(store, &md, None, None)?);
        }
        for t in tags {
            let r = Reference::parse(&t)?;
            out.push(local::record(store, &md, Some(&r), None)?);
        }
    }
    Ok(out)
}

fn load_oci(store: &Store, index_json: &[u8], what: &str) -> Result<Vec<ImageRecord>> {
    let Document::Index(index) = manifest::parse(index_json, Some(manifest::OCI_INDEX), what)?
    else {
        return Err(invalid(format!("{what}: index.json"), "not an index"));
    };
    let mut out = Vec::new();
    for desc in index.manifests() {
        let ann = desc.annotations().clone().unwrap_or_default();
        let name = ann
            .get("io.containerd.image.name")
            .or_else(|| ann.get("org.opencontainers.image.ref.name"))
            .map(|n| {
                if n.contains('/') || n.contains(':') {
                    Reference::parse(n)
                } else {
                    // A bare tag, as `skopeo copy ... oci:dir:tag` writes.
                    Reference::parse(&format!("localhost/imported:{n}"))
                }
            })
            .transpose()?;
        let mut d = manifest::digest_of(desc)?;
        // An index inside the layout: pick the host's platform.
        for _ in 0..4 {
            let bytes = store.read_blob(&d)?;
            match manifest::parse(&bytes, Some(desc.media_type().as_ref()), what)? {
                Document::Image(_) => break,
                Document::Index(inner) => {
                    d = manifest::digest_of(&manifest::select(
                        &inner,
                        &manifest::Platform::host(),
                        what,
                    )?)?;
                }
            }
        }
        out.push(local::record(store, &d, name.as_ref(), None)?);
    }
    if out.is_empty() {
        return Err(invalid(format!("{what}: index.json"), "lists no manifests"));
    }
    Ok(out)
}

/// Where `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    /// A tar of the layout (docker-archive and oci-archive at once).
    Archive,
    /// The layout as a directory.
    Dir,
}

/// The familiar form docker writes in manifest.json (`busybox:latest`).
fn familiar(name: &str) -> String {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
        .to_string()
}

/// Save images (with the names given, or all their names) to `dest`.
pub fn save(
    store: &Store,
    images: &[(ImageRecord, Vec<String>)],
    dest: &Path,
    format: SaveFormat,
) -> Result<()> {
    let mut blobs: Vec<Digest> = Vec::new();
    let mut index = Vec::new();
    let mut docker = Vec::new();
    for (rec, names) in images {
        let image = local::open(store, rec)?;
        let config = manifest::digest_of(image.manifest.config())?;
        let layers = image.layers(&format!("image {}", rec.id.short()))?;
        for d in std::iter::once(&rec.manifest)
            .chain(std::iter::once(&config))
            .chain(layers.iter().map(|l| &l.blob))
        {
            if !blobs.contains(d) {
                blobs.push(d.clone());
            }
        }
        let size = fs::metadata(store.blob_path(&rec.manifest))
            .at("stat", store.blob_path(&rec.manifest))?
            .len();
        let mut push_index = |name: Option<&String>| {
            let mut d = serde_json::json!({"mediaType": rec.media_type, "digest": rec.manifest.to_string(), "size": size});
            if let Some(n) = name {
                let tag = Reference::parse(n)
                    .ok()
                    .and_then(|r| r.tag)
                    .unwrap_or_else(|| "latest".into());
                d["annotations"] = serde_json::json!({"io.containerd.image.name": n, "org.opencontainers.image.ref.name": tag});
            }
            index.push(d);
        };
        if names.is_empty() {
            push_index(None);
        }
        for n in names {
            push_index(Some(n));
        }
        docker.push(DockerEntry {
            config: format!("blobs/sha256/{}", config.hex()),
            repo_tags: Some(names.iter().map(|n| familiar(n)).collect()),
            layers: layers
                .iter()
                .map(|l| format!("blobs/sha256/{}", l.blob.hex()))
                .collect(),
        });
    }
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": index}))
        .map_err(|e| invalid("index.json", e))?;
    let docker = serde_json::to_vec(&docker).map_err(|e| invalid("manifest.json", e))?;
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let files: [(&str, &[u8]); 3] = [
        ("oci-layout", layout),
        ("index.json", &index),
        ("manifest.json", &docker),
    ];
    match format {
        SaveFormat::Dir => {
            let sha = dest.join("blobs/sha256");
            fs::create_dir_all(&sha).at("create", &sha)?;
            for d in &blobs {
                let to = sha.join(d.hex());
                if !to.exists() {
                    fs::copy(store.blob_path(d), &to).at("copy blob to", &to)?;
                }
            }
            for (name, bytes) in files {
                crate::store::write_atomic(&dest.join(name), bytes, 0o644)?;
            }
            Ok(())
        }
        SaveFormat::Archive => {
            let dir = dest
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = dir.join(crate::store::unique_name(".capsa-save-"));
            let result = (|| {
                let f = File::create(&tmp).at("create", &tmp)?;
                let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, f));
                let dir_entry = |b: &mut tar::Builder<_>, p: &str| -> Result<()> {
                    let mut h = tar::Header::new_ustar();
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_size(0);
                    b.append_data(&mut h, p, std::io::empty()).at("write", &tmp)
                };
                dir_entry(&mut b, "blobs/")?;
                dir_entry(&mut b, "blobs/sha256/")?;
                for d in &blobs {
                    let mut f = store.open_blob(d)?;
                    let len = f.metadata().at("stat", store.blob_path(d))?.len();
                    let mut h = tar::Header::new_ustar();
                    h.set_mode(0o644);
                    h.set_size(len);
                    b.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), &mut f)
                        .at("write", &tmp)?;
                }
                for (name, bytes) in files {
                    let mut h = tar::Header::new_ustar();
                    h.set_mode(0o644);
                    h.set_size(bytes.len() as u64);
                    b.append_data(&mut h, name, bytes).at("write", &tmp)?;
                }
                let mut w = b.into_inner().at("write", &tmp)?;
                w.flush().at("write", &tmp)?;
                w.get_ref().sync_all().at("fsync", &tmp)?;
                fs::rename(&tmp, dest).at("rename to", dest)
            })();
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result
        }
    }
}

/// Write `dir` (a container's root, say) as a tar stream, walked by fd
/// (see [`crate::pack`]): device nodes and FIFOs as header-only entries,
/// never opened.
pub fn export_dir(dir: &Path, out: impl Write) -> Result<()> {
    let root = capsa_sys::root::Root::open(dir)
        .map_err(|e| crate::error::invalid(dir.display().to_string(), e.desc()))?;
    let top = capsa_sys::root::reopen(
        &root
            .path_fd(Path::new("/"), capsa_sys::resolve::Symlinks::InRoot)
            .map_err(|e| crate::error::invalid(dir.display().to_string(), e.desc()))?,
        libc::O_RDONLY | libc::O_DIRECTORY,
    )
    .map_err(|e| crate::error::invalid(dir.display().to_string(), e.desc()))?;
    let mut b = tar::Builder::new(out);
    crate::pack::add_fd(&mut b, &top, ".", crate::pack::Specials::Headers)?;
    b.into_inner().at("archive", dir)?.flush().at("write", dir)
}
