//! Manifests, indexes and configs, OCI and Docker schema 2 alike (they share
//! a shape; only media types differ), and platform selection.

use crate::digest::Digest;
use crate::error::{invalid, Error, Result};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The most layers an image may have.
pub const MAX_LAYERS: usize = 500;

/// Every manifest type capsa reads, for a registry's `Accept` header.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A parsed manifest document.
#[derive(Debug, Clone)]
pub enum Document {
    Image(Box<ImageManifest>),
    Index(Box<ImageIndex>),
}

/// Parse a manifest or index, telling them apart by media type (from the
/// document or, failing that, the transport) and shape.
pub fn parse(bytes: &[u8], content_type: Option<&str>, what: &str) -> Result<Document> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(what, format!("not JSON: {e}")))?;
    let mt = v
        .get("mediaType")
        .and_then(|m| m.as_str())
        .or(content_type)
        .unwrap_or("");
    if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) {
        return Err(Error::Unsupported(format!(
            "{what}: Docker schema 1 manifests are not supported (deprecated since 2017)"
        )));
    }
    // Security: CVE-2021-41190. A document that reads as an index to one
    // client and as a manifest to another (both `manifests` and `layers`
    // or `config`, or a media type its shape contradicts) is refused, as
    // is one whose own media type differs from what the registry said.
    let has_index_shape = v.get("manifests").is_some();
    let has_manifest_shape = v.get("layers").is_some() || v.get("config").is_some();
    if has_index_shape && has_manifest_shape {
        return Err(invalid(
            what,
            "ambiguous: both an index (manifests) and a manifest (layers, config)",
        ));
    }
    let known = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
    let declared = v.get("mediaType").and_then(|m| m.as_str());
    let said = content_type.map(|c| c.split(';').next().unwrap_or("").trim());
    if let (Some(d), Some(s)) = (declared, said) {
        if known.contains(&s) && d != s {
            return Err(invalid(
                what,
                format!("its mediaType {d:?} is not the {s:?} the registry served it as"),
            ));
        }
    }
    let is_index =
        mt == OCI_INDEX || mt == DOCKER_LIST || (mt.is_empty() && v.get("manifests").is_some());
    if (is_index && has_manifest_shape) || (!is_index && has_index_shape) {
        return Err(invalid(
            what,
            format!("its media type {mt:?} does not match its content"),
        ));
    }
    if is_index {
        let idx: ImageIndex =
            serde_json::from_value(v).map_err(|e| invalid(what, format!("bad index: {e}")))?;
        Ok(Document::Index(Box::new(idx)))
    } else {
        let m: ImageManifest =
            serde_json::from_value(v).map_err(|e| invalid(what, format!("bad manifest: {e}")))?;
        Ok(Document::Image(Box::new(m)))
    }
}

/// The media type to record for a manifest.
pub fn manifest_media_type(m: &ImageManifest) -> String {
    match m.media_type() {
        Some(t) => t.to_string(),
        None => OCI_MANIFEST.to_string(),
    }
}

/// A descriptor's digest, validated as capsa's type.
pub fn digest_of(d: &Descriptor) -> Result<Digest> {
    Digest::parse(d.digest().as_ref())
}

/// An os/arch[/variant] triple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The host's platform, in Go's names as images use them.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: None,
        }
    }

    /// Parse `os/arch[/variant]` as `--platform` takes it.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<_> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(invalid(
                format!("--platform {s:?}"),
                "expected os/arch[/variant]",
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Pick the manifest for `want` from an index.
pub fn select(index: &ImageIndex, want: &Platform, what: &str) -> Result<Descriptor> {
    let mut offered = Vec::new();
    for m in index.manifests() {
        let Some(p) = m.platform() else { continue };
        let (os, arch) = (p.os().to_string(), p.architecture().to_string());
        offered.push(format!("{os}/{arch}"));
        let variant_ok = match (&want.variant, p.variant()) {
            (Some(w), Some(v)) => w == v,
            (Some(_), None) => false,
            (None, _) => true,
        };
        if os == want.os && arch == want.arch && variant_ok {
            return Ok(m.clone());
        }
    }
    Err(invalid(
        what,
        format!(
            "no image for platform {want}; the index offers {}",
            offered.join(", ")
        ),
    ))
}

/// An image's manifest and config, read from the store.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    pub config_bytes: Vec<u8>,
}

/// One layer of an image: its blob, its uncompressed digest and its chain id.
#[derive(Debug, Clone)]
pub struct Layer {
    pub blob: Digest,
    pub size: u64,
    pub media_type: String,
    pub diff_id: Digest,
    pub chain_id: Digest,
}

impl Image {
    /// Parse an image's config.
    pub fn new(manifest: ImageManifest, config_bytes: Vec<u8>, what: &str) -> Result<Image> {
        let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(format!("{what} config"), e))?;
        Ok(Image {
            manifest,
            config,
            config_bytes,
        })
    }

    /// Layers bottom first, paired with the config's diff ids.
    pub fn layers(&self, what: &str) -> Result<Vec<Layer>> {
        let diff_ids = self
            .config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| Digest::parse(d))
            .collect::<Result<Vec<_>>>()?;
        let descs = self.manifest.layers();
        // Each layer's limits hold per layer: a manifest of thousands would
        // multiply them (and overlayfs stacks at most 500 lower layers).
        if descs.len() > MAX_LAYERS {
            return Err(invalid(
                what,
                format!(
                    "{} layers, more than the {MAX_LAYERS} an image may have",
                    descs.len()
                ),
            ));
        }
        if descs.len() != diff_ids.len() {
            return Err(invalid(
                what,
                format!(
                    "manifest has {} layers but the config lists {} diff ids",
                    descs.len(),
                    diff_ids.len()
                ),
            ));
        }
        let chains = crate::layers::chain_ids(&diff_ids);
        descs
            .iter()
            .zip(diff_ids)
            .zip(chains)
            .map(|((d, diff_id), chain_id)| {
                Ok(Layer {
                    blob: digest_of(d)?,
                    size: d.size(),
                    media_type: d.media_type().to_string(),
                    diff_id,
                    chain_id,
                })
            })
            .collect()
    }
}

/// A layer media type capsa can unpack (compression itself is detected
/// from the bytes).
pub fn is_layer_type(mt: &MediaType) -> bool {
    let s = mt.to_string();
    s.contains("layer") || s.contains("rootfs.diff")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_print() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//").is_err());
    }

    #[test]
    fn an_index_is_told_from_a_manifest_and_the_platform_is_picked() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
              {{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
              {{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":2,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            d('a'),
            d('b')
        );
        let Document::Index(idx) = parse(index.as_bytes(), None, "x").unwrap() else {
            panic!("an index")
        };
        let amd = select(&idx, &Platform::parse("linux/amd64").unwrap(), "x").unwrap();
        assert_eq!(amd.size(), 2);
        let arm = select(&idx, &Platform::parse("linux/arm64/v8").unwrap(), "x").unwrap();
        assert_eq!(arm.size(), 1);
        let err = select(&idx, &Platform::parse("linux/s390x").unwrap(), "x").unwrap_err();
        assert!(
            err.to_string().contains("linux/arm64, linux/amd64"),
            "{err}"
        );
    }

    #[test]
    fn schema_1_is_refused_by_name() {
        let err = parse(br#"{"schemaVersion":1,"name":"x"}"#, None, "m").unwrap_err();
        assert!(err.to_string().contains("schema 1"));
    }
}
