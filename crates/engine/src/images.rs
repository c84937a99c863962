//! Which image a container runs: the built-in demo image, made on first
//! use from the probe, and docker's pull policy (`--pull`).

use crate::error::{Error, Result};
use crate::Engine;
use capsa_image::{local, ImageRecord, Reference, Store};
use std::path::Path;

/// The built-in image: the probe, which explains what a container sees.
pub const DEMO: &str = "localhost/capsa-demo:latest";

/// `--pull`: when to fetch the image from its registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Only when it is not in the store (docker's default).
    #[default]
    Missing,
    Always,
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<PullPolicy> {
        match s {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => Err(crate::error::flag(
                "--pull",
                format!("{other:?}: missing, always or never"),
            )),
        }
    }
}

/// The image named `image` as `policy` says to get it: the demo image
/// (built from `probe`), the store's, or what `pull` fetches. Returns the
/// record and the name to record it under.
pub fn resolve(
    engine: &Engine,
    image: &str,
    policy: PullPolicy,
    probe: &Path,
    pull: impl FnOnce(&Reference) -> Result<ImageRecord>,
) -> Result<(ImageRecord, String)> {
    if image == "capsa-demo" || image == DEMO {
        return Ok((demo(&engine.images, probe)?, DEMO.to_string()));
    }
    let r = Reference::parse(image)?;
    match (policy, engine.images.resolve(image)) {
        (PullPolicy::Never | PullPolicy::Missing, Ok(rec)) => Ok((rec, r.to_string())),
        (PullPolicy::Never, Err(e)) => Err(e.into()),
        (PullPolicy::Missing, Err(capsa_image::Error::NotFound(_))) | (PullPolicy::Always, _) => {
            Ok((pull(&r)?, r.to_string()))
        }
        (PullPolicy::Missing, Err(e)) => Err(e.into()),
    }
}

/// The demo image, built on first use from the probe binary at `probe`,
/// and again whenever the probe changes (its digest is a label).
pub fn demo(store: &Store, probe: &Path) -> Result<ImageRecord> {
    let bin = std::fs::read(probe).map_err(|e| Error::Refused {
        what: probe.display().to_string(),
        reason: format!("the demo image is built from it, and it cannot be read ({e}): cargo build -p capsa-probe"),
    })?;
    let digest = capsa_image::Digest::of(&bin).to_string();
    if let Ok(r) = store.resolve(DEMO) {
        let label = local::open(store, &r).ok().and_then(|i| {
            i.config
                .config()
                .as_ref()?
                .labels()
                .as_ref()?
                .get("capsa.probe")
                .cloned()
        });
        if label.as_deref() == Some(digest.as_str()) {
            return Ok(r);
        }
    }
    let tar = demo_layer(&bin).map_err(|e| Error::data("the demo image's layer", e))?;
    let name = Reference::parse(DEMO)?;
    let rec = local::import_rootfs(store, &tar[..], Some(&name), &|_| {})?;
    // The import gives a generic config: point it at the probe.
    Ok(local::set_command(
        store,
        &rec,
        &["/probe", "explain"],
        &[("capsa.probe", &digest)],
        Some(&name),
    )?)
}

/// The demo image's one layer: the probe, the directories the kernel's
/// filesystems are mounted on, and a passwd naming root.
fn demo_layer(probe: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for d in ["proc/", "sys/", "dev/", "etc/", "tmp/"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(if d == "tmp/" { 0o1777 } else { 0o755 });
        h.set_size(0);
        b.append_data(&mut h, d, std::io::empty())?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(probe.len() as u64);
    b.append_data(&mut h, "probe", probe)?;
    let passwd = b"root:x:0:0:root:/:/probe\n";
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(passwd.len() as u64);
    b.append_data(&mut h, "etc/passwd", &passwd[..])?;
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies_read_as_docker_spells_them() {
        assert_eq!(
            "missing".parse::<PullPolicy>().unwrap(),
            PullPolicy::Missing
        );
        assert_eq!("always".parse::<PullPolicy>().unwrap(), PullPolicy::Always);
        assert_eq!("never".parse::<PullPolicy>().unwrap(), PullPolicy::Never);
        let e = "sometimes".parse::<PullPolicy>().unwrap_err().to_string();
        assert!(e.contains("--pull") && e.contains("sometimes"), "{e}");
    }

    #[test]
    fn the_demo_layer_holds_the_probe_and_the_mount_points() {
        let tar = demo_layer(b"\x7fELF").unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        for n in ["proc", "sys", "dev", "tmp", "probe", "etc/passwd"] {
            assert!(
                names.iter().any(|x| x.trim_end_matches('/') == n),
                "{n}: {names:?}"
            );
        }
    }
}
