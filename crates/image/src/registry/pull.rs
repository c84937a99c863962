//! Pull: resolve the manifest (choosing the platform from an index), then
//! fetch the config and the layers concurrently; each layer is verified as
//! it streams in, resumed with a Range request when the connection drops,
//! and unpacked as soon as it is complete, while others still download.

use super::{scope, Body, Client};
use crate::digest::Digest;
use crate::error::{invalid, IoContext, Result};
use crate::layers;
use crate::local;
use crate::manifest::{self, Document, Image, Layer, Platform};
use crate::reference::Reference;
use crate::store::{ImageRecord, Store};
use crate::{Progress, ProgressFn};
use std::io::{Read, Write};

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub platform: Platform,
    /// Layers fetched at once.
    pub jobs: usize,
    /// Unpack layers as they arrive (a later `run` needs them unpacked).
    pub unpack: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            jobs: 4,
            unpack: true,
        }
    }
}

/// Manifests are small; anything larger is refused rather than read.
const MANIFEST_LIMIT: u64 = 4 << 20;
const CONFIG_LIMIT: u64 = 8 << 20;
const RETRIES: u32 = 3;

impl Client {
    /// Fetch a manifest by tag or digest: its bytes, media type and digest.
    pub(crate) fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String, Digest)> {
        let resp = self.call(
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &scope(repo, "pull"),
            &[("Accept", manifest::ACCEPT.to_string())],
            Body::None,
        )?;
        let ct = resp.header("content-type").unwrap_or_default();
        let bytes = resp
            .bytes(MANIFEST_LIMIT + 1)
            .map_err(|e| self.err(format!("manifest {repo}:{reference}: {e}")))?;
        if bytes.len() as u64 > MANIFEST_LIMIT {
            return Err(self.err(format!("manifest {repo}:{reference} is larger than 4 MiB")));
        }
        let digest = Digest::of(&bytes);
        if reference.starts_with("sha256:") {
            Digest::parse(reference)?.check(&digest, format!("manifest {repo}@{reference}"))?;
        }
        Ok((bytes, ct, digest))
    }

    /// Stream a blob into the store, verified; resumed after a dropped
    /// connection from where it stopped.
    pub(crate) fn fetch_blob(
        &self,
        store: &Store,
        repo: &str,
        digest: &Digest,
        size: u64,
        progress: ProgressFn<'_>,
    ) -> Result<()> {
        let mut w = store.blob_writer()?;
        let mut failures = 0;
        let path = format!("/v2/{repo}/blobs/{digest}");
        loop {
            let from = w.written();
            let headers: Vec<(&str, String)> = if from > 0 {
                vec![("Range", format!("bytes={from}-"))]
            } else {
                vec![]
            };
            let outcome = self
                .call("GET", &path, &scope(repo, "pull"), &headers, Body::None)
                .and_then(|resp| {
                    if from > 0 && resp.status != 206 {
                        // The registry ignored the range: start over.
                        w = store.blob_writer()?;
                    }
                    // Never read past the size the manifest promised.
                    let remaining = size.saturating_sub(w.written());
                    let mut r = resp.reader().take(remaining + 1);
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut last = 0;
                    loop {
                        let n = match r.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(self.err(format!("blob {digest}: {e}"))),
                        };
                        w.write_all(&buf[..n]).at("write", store.tmp_dir())?;
                        if w.written() > size {
                            return Err(invalid(
                                format!("blob {digest}"),
                                format!("larger than the {size} bytes its descriptor gives"),
                            ));
                        }
                        if w.written() - last >= 1 << 20 || w.written() == size {
                            last = w.written();
                            progress(Progress::Bytes {
                                digest: digest.clone(),
                                done: w.written(),
                                total: size,
                            });
                        }
                    }
                    Ok(())
                });
            match outcome {
                Ok(()) if w.written() == size => break,
                Ok(()) => {
                    failures += 1;
                    if failures > RETRIES {
                        return Err(self.err(format!(
                            "blob {digest}: connection closed at {} of {size} bytes",
                            w.written()
                        )));
                    }
                    progress(Progress::Retry {
                        digest: digest.clone(),
                        from: w.written(),
                        reason: "connection closed early".into(),
                    });
                }
                Err(e @ crate::Error::Invalid { .. }) => return Err(e),
                Err(e) => {
                    failures += 1;
                    if failures > RETRIES {
                        return Err(e);
                    }
                    progress(Progress::Retry {
                        digest: digest.clone(),
                        from: w.written(),
                        reason: e.to_string(),
                    });
                    std::thread::sleep(std::time::Duration::from_millis(200 * u64::from(failures)));
                }
            }
        }
        w.finish(
            Some(digest),
            &format!("blob {digest} from {}/{repo}", self.registry),
        )?;
        progress(Progress::Done {
            digest: digest.clone(),
        });
        Ok(())
    }
}

/// Pull `reference` into the store and record it under its name.
pub fn pull(
    store: &Store,
    client: &Client,
    reference: &Reference,
    opts: &PullOptions,
    progress: ProgressFn<'_>,
) -> Result<ImageRecord> {
    let _w = store.writer_lock()?;
    let repo = &reference.repository;
    let (mut bytes, mut ct, mut digest) = client.manifest(repo, &reference.manifest_ref())?;
    let what = reference.to_string();
    let mut index_bytes = None;
    let mut wanted: Option<String> = None;
    let m = loop {
        match manifest::parse(&bytes, Some(&ct), &what)? {
            Document::Image(m) => break m,
            Document::Index(idx) => {
                if index_bytes.is_some() {
                    return Err(invalid(what, "an index inside an index"));
                }
                let d = manifest::select(&idx, &opts.platform, &what)?;
                wanted = Some(d.media_type().to_string());
                index_bytes = Some(bytes);
                (bytes, ct, digest) = client.manifest(repo, d.digest().as_ref())?;
            }
        }
    };
    // Security: CVE-2021-41190. The manifest is what its descriptor in the
    // index said it is.
    if let Some(want) = wanted {
        let got = manifest::manifest_media_type(&m);
        if got != want {
            return Err(invalid(
                what,
                format!("the index names a {want:?}, the registry served a {got:?}"),
            ));
        }
    }
    // A config is a few kilobytes: a huge one is not an image's.
    if m.config().size() > CONFIG_LIMIT {
        return Err(invalid(
            what,
            format!(
                "its config is {} bytes, more than the {} MiB a config may be",
                m.config().size(),
                CONFIG_LIMIT >> 20
            ),
        ));
    }
    let config_digest = manifest::digest_of(m.config())?;
    if !store.has_blob(&config_digest) {
        client.fetch_blob(store, repo, &config_digest, m.config().size(), &|_| {})?;
    }
    let image = Image::new((*m).clone(), store.read_blob(&config_digest)?, &what)?;
    let all = image.layers(&what)?;
    progress(Progress::Resolved {
        reference: what.clone(),
        digest: digest.clone(),
        layers: all.len(),
    });
    fetch_layers(store, client, repo, &all, opts, progress)?;
    if let Some(ib) = index_bytes {
        store.put_bytes(&ib, None, "index")?;
    }
    store.put_bytes(&bytes, Some(&digest), "manifest")?;
    let name = reference.tag.as_ref().map(|_| reference.clone());
    local::record(store, &digest, name.as_ref(), Some(reference.name()))
}

/// Download (and unpack) layers, `opts.jobs` at a time.
fn fetch_layers(
    store: &Store,
    client: &Client,
    repo: &str,
    all: &[Layer],
    opts: &PullOptions,
    progress: ProgressFn<'_>,
) -> Result<()> {
    // Unpacking is CPU-bound: no more at once than there are cores, while
    // downloads (I/O-bound) use all the jobs.
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let unpack_slots = std::sync::Mutex::new(cores);
    let slot_free = std::sync::Condvar::new();
    crate::parallel::for_each(all, opts.jobs, |l| {
        if store.has_blob(&l.blob) {
            progress(Progress::Exists {
                digest: l.blob.clone(),
            });
        } else {
            client.fetch_blob(store, repo, &l.blob, l.size, progress)?;
        }
        if opts.unpack && !layers::exists(store, &l.chain_id) {
            {
                let mut free = unpack_slots.lock().unwrap_or_else(|p| p.into_inner());
                while *free == 0 {
                    free = slot_free.wait(free).unwrap_or_else(|p| p.into_inner());
                }
                *free -= 1;
            }
            progress(Progress::Unpacking {
                digest: l.blob.clone(),
            });
            let r = layers::ensure(store, &l.chain_id, &l.diff_id, &l.blob);
            *unpack_slots.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            slot_free.notify_one();
            r?;
            progress(Progress::Unpacked {
                digest: l.blob.clone(),
            });
        }
        Ok(())
    })
}
