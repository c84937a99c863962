//! Images made here, offline: layer tars entry by entry, and OCI layouts
//! (single or multi-platform) that skopeo can push to a test registry.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A layer tar built entry by entry.
pub struct LayerTar(tar::Builder<Vec<u8>>);

impl Default for LayerTar {
    fn default() -> Self {
        LayerTar(tar::Builder::new(Vec::new()))
    }
}

impl LayerTar {
    pub fn dir(mut self, path: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        self.0.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }
    pub fn file(mut self, path: &str, data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }
    /// A file owned by `uid`:`gid`.
    pub fn owned_file(mut self, path: &str, data: &[u8], uid: u64, gid: u64) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }
    pub fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

struct Blobs(PathBuf);

impl Blobs {
    fn put(&self, bytes: &[u8]) -> (String, usize) {
        let d = sha256(bytes);
        std::fs::write(self.0.join(&d), bytes).unwrap();
        (format!("sha256:{d}"), bytes.len())
    }
}

/// Write an OCI layout at `dir` whose index names `tag` one image per
/// `(architecture, layers)`; several make a multi-platform index. Layers
/// are stored gzip'd. Returns the config digest of each platform's image.
pub fn oci_layout(dir: &Path, tag: &str, platforms: &[(&str, Vec<Vec<u8>>)]) -> Vec<String> {
    oci_layout_with(dir, tag, platforms, serde_json::json!({}))
}

/// As [`oci_layout`], with extra keys in the image config's `config`.
pub fn oci_layout_with(
    dir: &Path,
    tag: &str,
    platforms: &[(&str, Vec<Vec<u8>>)],
    extra: serde_json::Value,
) -> Vec<String> {
    use std::io::Write;
    let blobs = Blobs(dir.join("blobs/sha256"));
    std::fs::create_dir_all(&blobs.0).unwrap();
    let mut manifests = Vec::new();
    let mut configs = Vec::new();
    for (arch, layers) in platforms {
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for l in layers {
            diff_ids.push(format!("sha256:{}", sha256(l)));
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(l).unwrap();
            let (d, n) = blobs.put(&gz.finish().unwrap());
            descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}));
        }
        let mut config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        if let Some(m) = extra.as_object() {
            for (k, v) in m {
                config["config"][k] = v.clone();
            }
        }
        let config = config.to_string();
        let (cd, cn) = blobs.put(config.as_bytes());
        configs.push(cd.clone());
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
            "layers": descs,
        })
        .to_string();
        let (md, mn) = blobs.put(m.as_bytes());
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let mut top = manifests[0].clone();
    if manifests.len() > 1 {
        let idx = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}).to_string();
        let (d, n) = blobs.put(idx.as_bytes());
        top = serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": n});
    }
    top["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [top]}).to_string(),
    )
    .unwrap();
    configs
}

/// Load an image of two layers, busybox and the probe (at /probe), into
/// `c`'s store as `localhost/bb:test`; returns that name.
pub fn load_busybox_probe(env: &crate::Env, c: &crate::registry::Capsa) -> &'static str {
    let probe = std::fs::read(crate::probe_bin()).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(probe.len() as u64);
    b.append_data(&mut h, "probe", probe.as_slice()).unwrap();
    let layout = env.dir.join(format!(
        "bbprobe-{}",
        c.store.file_name().unwrap().to_string_lossy()
    ));
    oci_layout(
        &layout,
        "bbprobe",
        &[(
            "amd64",
            vec![
                crate::engines::busybox_rootfs_tar(),
                b.into_inner().unwrap(),
            ],
        )],
    );
    c.ok(&["load", "-q", "-i", layout.to_str().unwrap()]);
    c.ok(&["tag", "localhost/imported:bbprobe", "localhost/bb:test"]);
    "localhost/bb:test"
}
