//! Unpacked layers, each once, in a directory named by its chain id and
//! shared by every image that has it; renamed into place only when
//! complete, so a killed or failed unpack leaves nothing a later run uses.
//!
//! ```text
//! layers/<chain-hex>/diff      the layer's files, whiteouts as overlay's
//! layers/<chain-hex>/diff-id   sha256 of the uncompressed tar
//! l/<short> -> ../layers/<chain-hex>/diff   short names for overlay options
//! layers/.tmp-*                an unpack in progress (or a dead one: GC)
//! ```

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::store::{unique_name, Store};
use crate::unpack;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

/// Chain ids as the OCI image spec defines them: the first is the first
/// diff id, each next one `sha256(parent + " " + diff_id)`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => Digest::of(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The directory of a layer (whether or not it is there).
pub fn layer_dir(store: &Store, chain: &Digest) -> PathBuf {
    store.root().join("layers").join(chain.hex())
}

/// The layer's files.
pub fn diff_dir(store: &Store, chain: &Digest) -> PathBuf {
    layer_dir(store, chain).join("diff")
}

/// A short name for the layer's files, as docker's overlay2 keeps them, so
/// that many layers fit the mount(2) option page on kernels without
/// `lowerdir+`.
pub fn short_link(store: &Store, chain: &Digest) -> PathBuf {
    store.root().join("l").join(&chain.hex()[..16])
}

/// Whether the layer is unpacked.
pub fn exists(store: &Store, chain: &Digest) -> bool {
    diff_dir(store, chain).is_dir()
}

/// Unpack `blob` as the layer `chain` unless it already is; the tar must
/// hash to `diff_id`. Returns true when this call did the unpacking.
pub fn ensure(store: &Store, chain: &Digest, diff_id: &Digest, blob: &Digest) -> Result<bool> {
    if exists(store, chain) {
        return Ok(false);
    }
    let layers = store.root().join("layers");
    let tmp = layers.join(unique_name(".tmp-"));
    let result = (|| {
        let diff = tmp.join("diff");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&diff)
            .at("create", &diff)?;
        let file = store.open_blob(blob)?;
        let u = unpack::unpack_layer(std::io::BufReader::with_capacity(1 << 20, file), &diff)?;
        if let Some(actual) = &u.diff_id {
            diff_id.check(actual, format!("layer {blob} (uncompressed)"))?;
        }
        install(store, &tmp, chain, diff_id)
    })();
    if tmp.exists() {
        remove_tree(&tmp);
    }
    result
}

/// Make `dir` (a step's overlay upper directory, unmounted, holding
/// exactly what the layer's tar holds, in overlay's own form) the layer
/// `chain`, by rename: `capsa build` then need not unpack the layer it
/// has just written. Returns false (and leaves `dir`) when the layer is
/// there already, or `dir` is on another filesystem.
pub fn adopt(
    store: &Store,
    chain: &Digest,
    diff_id: &Digest,
    dir: &std::path::Path,
) -> Result<bool> {
    if exists(store, chain) {
        return Ok(false);
    }
    let layers = store.root().join("layers");
    let tmp = layers.join(unique_name(".tmp-"));
    let result = (|| {
        fs::create_dir_all(&tmp).at("create", &tmp)?;
        match fs::rename(dir, tmp.join("diff")) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => return Ok(false),
            Err(e) => return Err(e).at("rename", dir),
        }
        install(store, &tmp, chain, diff_id)
    })();
    if tmp.exists() {
        remove_tree(&tmp);
    }
    result
}

/// `tmp` (holding the layer's `diff/`) made the layer `chain`: its diff
/// id beside it, its short link, then one rename into place. False when
/// another process installed the same layer first (theirs is kept).
fn install(store: &Store, tmp: &std::path::Path, chain: &Digest, diff_id: &Digest) -> Result<bool> {
    fs::write(tmp.join("diff-id"), diff_id.as_str()).at("write", tmp.join("diff-id"))?;
    let link = short_link(store, chain);
    let target = PathBuf::from("../layers").join(chain.hex()).join("diff");
    match std::os::unix::fs::symlink(&target, &link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).at("create link", &link),
    }
    match fs::rename(tmp, layer_dir(store, chain)) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
            Ok(false)
        }
        Err(e) => Err(e).at("rename into place", layer_dir(store, chain)),
    }
}

/// Remove a directory tree we own, without following symlinks in it.
pub(crate) fn remove_tree(path: &std::path::Path) {
    if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
        if let Ok(dir) = fs::File::open(parent) {
            let _ = unpack::remove_at(&dir, &name.to_string_lossy());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn a_layer_that_does_not_hash_to_its_diff_id_is_not_kept() {
        let root = std::env::temp_dir().join(unique_name("capsa-layers-"));
        let store = Store::open(&root).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_path("f").unwrap();
        h.set_size(1);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let blob = store.put_bytes(&tar, None, "layer").unwrap();
        let wrong = Digest::of(b"not the tar");
        let err = ensure(&store, &wrong, &wrong, &blob).unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        let left: Vec<_> = fs::read_dir(root.join("layers")).unwrap().collect();
        assert!(left.is_empty(), "a half layer was left: {left:?}");
        let right = Digest::of(&tar);
        assert!(ensure(&store, &right, &right, &blob).unwrap());
        assert!(!ensure(&store, &right, &right, &blob).unwrap());
        assert!(diff_dir(&store, &right).join("f").is_file());
        assert!(short_link(&store, &right).join("f").is_file());
        fs::remove_dir_all(root).unwrap();
    }
}
