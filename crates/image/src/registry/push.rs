//! Push: every blob the registry lacks is uploaded (monolithic PUT after
//! a POST), or mounted from another repository of the same registry that
//! the image came from; then the manifest is put under the tag.

use super::{scope, Body, Client};
use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::local;
use crate::manifest;
use crate::reference::Reference;
use crate::store::{ImageRecord, Store};
use crate::{Progress, ProgressFn};

impl Client {
    fn has_blob(&self, repo: &str, d: &Digest) -> Result<bool> {
        match self.call(
            "HEAD",
            &format!("/v2/{repo}/blobs/{d}"),
            &scope(repo, "pull,push"),
            &[],
            Body::None,
        ) {
            Ok(_) => Ok(true),
            Err(crate::Error::Registry { reason, .. }) if reason.contains("404") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Try a cross-repository mount; true when the registry mounted it.
    fn mount_blob(&self, repo: &str, from: &str, d: &Digest) -> Result<bool> {
        let sc = format!("{} {}", scope(repo, "pull,push"), scope(from, "pull"));
        let resp = self.call(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?mount={d}&from={from}"),
            &sc,
            &[("Content-Length", "0".into())],
            Body::None,
        )?;
        if resp.status == 201 {
            return Ok(true);
        }
        // 202: the registry started an upload instead; abandon it (it
        // expires) and upload normally.
        Ok(false)
    }

    fn upload_blob(
        &self,
        store: &Store,
        repo: &str,
        d: &Digest,
        progress: ProgressFn<'_>,
    ) -> Result<()> {
        let sc = scope(repo, "pull,push");
        let resp = self.call(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &sc,
            &[("Content-Length", "0".into())],
            Body::None,
        )?;
        let loc = resp
            .header("location")
            .ok_or_else(|| self.err(format!("upload of {d}: no Location in the answer")))?;
        let sep = if loc.contains('?') { '&' } else { '?' };
        let url = format!("{loc}{sep}digest={d}");
        let file = store.open_blob(d)?;
        let len = file.metadata().at("stat", store.blob_path(d))?.len();
        let counted = Counted {
            inner: file,
            done: 0,
            total: len,
            digest: d,
            progress,
        };
        self.call(
            "PUT",
            &url,
            &sc,
            &[("Content-Type", "application/octet-stream".into())],
            Body::Reader(Box::new(counted), len),
        )?;
        progress(Progress::Done { digest: d.clone() });
        Ok(())
    }
}

struct Counted<'a, R> {
    inner: R,
    done: u64,
    total: u64,
    digest: &'a Digest,
    progress: ProgressFn<'a>,
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = self.done;
        self.done += n as u64;
        if self.done >> 20 != before >> 20 || self.done == self.total {
            (self.progress)(Progress::Bytes {
                digest: self.digest.clone(),
                done: self.done,
                total: self.total,
            });
        }
        Ok(n)
    }
}

/// Push a stored image to `target`; returns the manifest digest.
pub fn push(
    store: &Store,
    client: &Client,
    rec: &ImageRecord,
    target: &Reference,
    jobs: usize,
    progress: ProgressFn<'_>,
) -> Result<Digest> {
    let repo = &target.repository;
    let image = local::open(store, rec)?;
    let config = manifest::digest_of(image.manifest.config())?;
    let mut blobs: Vec<Digest> = image.layers("image")?.into_iter().map(|l| l.blob).collect();
    blobs.push(config);
    // Another repository of this registry that has the image already.
    let from: Option<String> = rec
        .origins
        .iter()
        .filter_map(|o| o.split_once('/'))
        .find(|(reg, r)| *reg == target.registry && *r != repo)
        .map(|(_, r)| r.to_string());
    client.ping_scope(repo)?;
    crate::parallel::for_each(&blobs, jobs, |d| {
        if client.has_blob(repo, d)? {
            progress(Progress::Exists { digest: d.clone() });
            return Ok(());
        }
        if let Some(f) = &from {
            if client.mount_blob(repo, f, d)? {
                progress(Progress::Mounted {
                    digest: d.clone(),
                    from: f.clone(),
                });
                return Ok(());
            }
        }
        client.upload_blob(store, repo, d, progress)
    })?;
    let bytes = store.read_blob(&rec.manifest)?;
    let tag = target.manifest_ref();
    client.call(
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &scope(repo, "pull,push"),
        &[("Content-Type", rec.media_type.clone())],
        Body::Bytes(&bytes),
    )?;
    store.record(
        ImageRecord {
            origins: vec![target.name()],
            ..rec.clone()
        },
        None,
    )?;
    Ok(rec.manifest.clone())
}

impl Client {
    /// Authenticate for pushing to `repo` before any body is streamed.
    fn ping_scope(&self, repo: &str) -> Result<()> {
        match self.call(
            "HEAD",
            &format!("/v2/{repo}/blobs/{}", Digest::of(b"")),
            &scope(repo, "pull,push"),
            &[],
            Body::None,
        ) {
            Ok(_) => Ok(()),
            Err(crate::Error::Registry { reason, .. }) if reason.contains("404") => Ok(()),
            Err(e) => Err(e),
        }
    }
}
