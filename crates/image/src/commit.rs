//! New images from changes: a directory's diff stored as a gzip'd layer
//! blob (its diff id hashed on the way), and a config and manifest over a
//! list of layers, built with oci-spec's types.

use crate::config::ImageConfig;
use crate::digest::{Digest, Hasher};
use crate::error::{invalid, IoContext, Result};
use crate::manifest::{self, Layer};
use crate::store::Store;
use oci_spec::image::{DescriptorBuilder, ImageManifestBuilder, MediaType};
use std::io::Write;
use std::path::Path;

/// A layer in the store, as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerBlob {
    pub blob: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
}

impl From<&Layer> for LayerBlob {
    fn from(l: &Layer) -> LayerBlob {
        LayerBlob {
            blob: l.blob.clone(),
            diff_id: l.diff_id.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
        }
    }
}

/// Hashes the uncompressed tar (the diff id) on its way to the encoder.
struct Tee<W: Write> {
    inner: W,
    diff: Hasher,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.diff.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Store the diff in `upper` as a layer. `None` when the step changed
/// nothing (no layer, an `empty_layer` history entry).
pub fn layer(
    store: &Store,
    upper: &Path,
    opts: &crate::diff::Options<'_>,
) -> Result<Option<(LayerBlob, crate::diff::Written)>> {
    let gz = flate2::write::GzEncoder::new(store.blob_writer()?, flate2::Compression::fast());
    let mut b = tar::Builder::new(Tee {
        inner: gz,
        diff: Hasher::new(),
    });
    let written = crate::diff::write(&mut b, upper, opts)?;
    if written.entries == 0 {
        return Ok(None); // the unfinished blob is dropped, nothing kept
    }
    let tee = b.into_inner().at("write", store.tmp_dir())?;
    let diff_id = tee.diff.finish();
    let (blob, size) = tee
        .inner
        .finish()
        .at("write", store.tmp_dir())?
        .finish(None, "built layer")?;
    Ok(Some((
        LayerBlob {
            blob,
            diff_id,
            size,
            media_type: manifest::OCI_LAYER_GZIP.into(),
        },
        written,
    )))
}

/// Write `config` (its diff ids set from `layers`) and an OCI manifest
/// over them; returns the manifest's digest and the config's.
pub fn image(
    store: &Store,
    config: &mut ImageConfig,
    layers: &[LayerBlob],
) -> Result<(Digest, Digest)> {
    config.rootfs.kind = "layers".into();
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.clone()).collect();
    let bytes = serde_json::to_vec(config).map_err(|e| invalid("image config", e))?;
    let config_digest = store.put_bytes(&bytes, None, "image config")?;
    let desc = |mt: MediaType, d: &Digest, size: u64| {
        DescriptorBuilder::default()
            .media_type(mt)
            .digest(
                oci_spec::image::Digest::try_from(d.as_str())
                    .map_err(|e| invalid(d.as_str(), e))?,
            )
            .size(size)
            .build()
            .map_err(|e| invalid("descriptor", e))
    };
    let layer_descs = layers
        .iter()
        .map(|l| desc(MediaType::from(l.media_type.as_str()), &l.blob, l.size))
        .collect::<Result<Vec<_>>>()?;
    let m = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(desc(
            MediaType::ImageConfig,
            &config_digest,
            bytes.len() as u64,
        )?)
        .layers(layer_descs)
        .build()
        .map_err(|e| invalid("manifest", e))?;
    let mbytes = serde_json::to_vec(&m).map_err(|e| invalid("manifest", e))?;
    let md = store.put_bytes(&mbytes, None, "manifest")?;
    Ok((md, config_digest))
}
