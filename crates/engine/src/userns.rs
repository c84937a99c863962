//! `--userns auto`: each container gets its own range of host ids, so its
//! root is an unprivileged uid on the host (podman's `--userns=auto`).
//!
//! Ranges come from the pool that `/etc/subuid` and `/etc/subgid` give the
//! user `containers` (podman's convention), else from a built-in pool far
//! above the ids that useradd hands out. A container's lease is a file in
//! its own directory (`<root>/containers/<id>/userns`), written under a
//! lock: removing the container frees its range, and no lease can outlive
//! its container.

use crate::error::{flag, Error, IoContext, Result};
use crate::Engine;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The built-in pool: one billion ids from uid 1,000,000,000.
const DEFAULT_POOL: (u32, u32) = (1_000_000_000, 1_000_000_000);
/// Ids per container unless `auto:size=N` says otherwise (a full 16-bit
/// range, as images expect ids such as 65534 for nobody).
const DEFAULT_SIZE: u32 = 65536;
const LEASE: &str = "userns";

/// One container's range: container ids `0..size` are host ids
/// `uid..uid+size` (and `gid..gid+size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
    /// Where the range starts in the pool (the same for uids and gids).
    pub offset: u32,
}

/// What `--userns` asks for: `None` for the host's namespace (the default,
/// and docker's only value `host`), or a private range of this size.
pub fn parse(value: Option<&str>) -> Result<Option<u32>> {
    match value {
        None | Some("") | Some("host") => Ok(None),
        Some("auto") => Ok(Some(DEFAULT_SIZE)),
        Some(v) if v.starts_with("auto:") => {
            let size = v
                .strip_prefix("auto:size=")
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    flag(
                        "--userns",
                        format!("{v:?}: expected auto:size=N with N > 0"),
                    )
                })?;
            Ok(Some(size))
        }
        Some("keep-id") | Some("nomap") => Err(flag(
            "--userns",
            format!("{value:?} is not supported yet (it needs an id-mapped copy of the image); host and auto[:size=N] are", value = value.unwrap_or_default()),
        )),
        Some(v) => Err(flag(
            "--userns",
            format!("{v:?}: expected host or auto[:size=N]"),
        )),
    }
}

/// The first range of `name` in a subid file (`name:start:count` lines).
fn subid_range(text: &str, name: &str) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        (f.next()? == name).then_some(())?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

/// The uid and gid pools: `containers` in /etc/subuid and /etc/subgid
/// when both have it, else the built-in pool for both.
fn pools() -> ((u32, u32), (u32, u32)) {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    match (
        subid_range(&read("/etc/subuid"), "containers"),
        subid_range(&read("/etc/subgid"), "containers"),
    ) {
        (Some(u), Some(g)) => (u, g),
        _ => (DEFAULT_POOL, DEFAULT_POOL),
    }
}

/// The lowest free offset for `size` ids in a pool of `pool` ids, given the
/// leases held (offset, size).
fn first_free(pool: u32, size: u32, mut held: Vec<(u32, u32)>) -> Option<u32> {
    held.sort_unstable();
    let mut at: u32 = 0;
    for (off, len) in held {
        if off >= at && off - at >= size {
            break;
        }
        at = at.max(off.saturating_add(len));
    }
    (pool.checked_sub(at)? >= size).then_some(at)
}

/// Lease a range of `size` ids for the container whose directory is `dir`.
pub fn allocate(engine: &Engine, dir: &Path, size: u32) -> Result<IdRange> {
    let ((uid0, ucount), (gid0, gcount)) = pools();
    let _l = engine.lock("userns")?;
    let held = leases(engine)
        .into_iter()
        .map(|r| (r.offset, r.size))
        .collect();
    let offset = first_free(ucount.min(gcount), size, held).ok_or_else(|| {
        Error::Conflict(format!(
            "--userns auto: no free range of {size} ids left in the pool ({ucount} ids from {uid0}); remove containers or set a containers entry in /etc/subuid and /etc/subgid"
        ))
    })?;
    let r = IdRange {
        uid: uid0 + offset,
        gid: gid0 + offset,
        size,
        offset,
    };
    let path = dir.join(LEASE);
    let body = serde_json::to_vec(&r).map_err(|e| Error::data(path.display(), e))?;
    capsa_sys::file::write_atomic(&path, &body, 0o644, capsa_sys::file::Durability::Synced)
        .at("write", &path)?;
    Ok(r)
}

/// Every lease held by a container that still exists.
fn leases(engine: &Engine) -> Vec<IdRange> {
    let Ok(rd) = std::fs::read_dir(engine.containers()) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| std::fs::read(e.path().join(LEASE)).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userns_values_parse_as_podman_spells_them() {
        assert_eq!(parse(None).unwrap(), None);
        assert_eq!(parse(Some("host")).unwrap(), None);
        assert_eq!(parse(Some("auto")).unwrap(), Some(65536));
        assert_eq!(parse(Some("auto:size=1024")).unwrap(), Some(1024));
        for bad in [
            "auto:size=0",
            "auto:size=x",
            "auto:uidmapping=0:1:2",
            "keep-id",
        ] {
            let e = parse(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("--userns") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn subid_files_give_the_containers_range() {
        let t = "alice:100000:65536\ncontainers:2147483647:2147483648\n";
        assert_eq!(subid_range(t, "containers"), Some((2147483647, 2147483648)));
        assert_eq!(subid_range(t, "bob"), None);
    }

    #[test]
    fn ranges_fill_the_first_gap_that_fits() {
        assert_eq!(first_free(1000, 100, vec![]), Some(0));
        assert_eq!(first_free(1000, 100, vec![(0, 100)]), Some(100));
        assert_eq!(first_free(1000, 100, vec![(100, 100), (0, 100)]), Some(200));
        // A freed range in the middle is reused.
        assert_eq!(first_free(1000, 100, vec![(0, 100), (200, 100)]), Some(100));
        // A gap too small is skipped.
        assert_eq!(first_free(1000, 100, vec![(0, 100), (150, 100)]), Some(250));
        // Exhausted.
        assert_eq!(first_free(250, 100, vec![(0, 100), (100, 100)]), None);
        assert_eq!(first_free(300, 100, vec![(0, 100), (100, 100)]), Some(200));
    }
}
