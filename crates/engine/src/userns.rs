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
        // podman's keep-id: see [`keep_id`].
        Some("keep-id") => Ok(None),
        Some("nomap") => Err(flag(
            "--userns",
            "\"nomap\" is not supported; host, auto[:size=N] and keep-id (rootless) are",
        )),
        Some(v) => Err(flag(
            "--userns",
            format!("{v:?}: expected host or auto[:size=N]"),
        )),
    }
}

/// podman's `--userns keep-id`, rootless: the user's own uid and gid are
/// the same inside the container as outside, in a user namespace of the
/// container's own nested in the user's. In the user's namespace the user
/// is 0 and its subordinate ids are 1..=`top`; the container's map puts
/// container ids 0..uid on 1..=uid, the uid on 0, and the rest on
/// themselves, so that every id of the user's namespace is used once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepId {
    pub uid: u32,
    pub gid: u32,
    /// The highest uid and gid of the user's namespace.
    pub top: (u32, u32),
}

impl KeepId {
    /// The container's uid (`gid` false) or gid map, as
    /// (container, in the user's namespace, size) triples.
    pub fn map(&self, gid: bool) -> Vec<(u32, u32, u32)> {
        let (own, top) = if gid {
            (self.gid, self.top.1)
        } else {
            (self.uid, self.top.0)
        };
        // An empty extent (a uid or gid of 0) is one the kernel refuses.
        [(0, 1, own), (own, 0, 1), (own + 1, own + 1, top - own)]
            .into_iter()
            .filter(|m| m.2 > 0)
            .collect()
    }

    /// fuse-overlayfs's `uidmapping=`/`gidmapping=` value for the map.
    pub fn fuse_option(&self, gid: bool) -> String {
        self.map(gid)
            .iter()
            .map(|(c, h, n)| format!("{c}:{h}:{n}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// `--userns keep-id`: only rootless, where the user's namespace maps the
/// user to 0 (read from our own uid and gid maps).
pub fn keep_id(value: Option<&str>) -> Result<Option<KeepId>> {
    if value != Some("keep-id") {
        return Ok(None);
    }
    if !crate::rootless::active() {
        return Err(flag(
            "--userns",
            "keep-id keeps an ordinary user's uid inside: it is for rootless capsa (as root, use auto)",
        ));
    }
    let read = |file: &str| -> Option<(u32, u32)> {
        let text = std::fs::read_to_string(file).ok()?;
        let mut own = None;
        let mut top = 0u32;
        for l in text.lines() {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            let [inside, outside, size] = f[..] else {
                continue;
            };
            if inside == 0 {
                own = Some(outside);
            }
            top = top.max(inside.saturating_add(size).saturating_sub(1));
        }
        Some((own?, top))
    };
    let (Some((uid, utop)), Some((gid, gtop))) =
        (read("/proc/self/uid_map"), read("/proc/self/gid_map"))
    else {
        return Err(flag(
            "--userns",
            "keep-id: the user namespace's maps cannot be read",
        ));
    };
    if uid >= utop || gid >= gtop {
        return Err(flag(
            "--userns",
            format!("keep-id needs more subordinate ids than the user's uid {uid} (gid {gid}): the user's namespace reaches {utop}:{gtop}; give a larger range in /etc/subuid and /etc/subgid"),
        ));
    }
    Ok(Some(KeepId {
        uid,
        gid,
        top: (utop, gtop),
    }))
}

/// The first non-empty range in a subid file (`who:start:count` lines)
/// of any of `whos` (a user's name and its uid, or `containers`).
pub(crate) fn subid_range(text: &str, whos: &[&str]) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let who = f.next()?;
        whos.contains(&who).then_some(())?;
        let first: u32 = f.next()?.trim().parse().ok()?;
        let count: u32 = f.next()?.trim().parse().ok()?;
        (count > 0).then_some((first, count))
    })
}

/// The uid and gid pools: `containers` in /etc/subuid and /etc/subgid
/// when both have it, else the built-in pool for both.
fn pools() -> ((u32, u32), (u32, u32)) {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    match (
        subid_range(&read("/etc/subuid"), &["containers"]),
        subid_range(&read("/etc/subgid"), &["containers"]),
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
    fn keep_id_maps_every_id_of_the_users_namespace_once() {
        let k = KeepId {
            uid: 1000,
            gid: 1001,
            top: (65536, 65536),
        };
        assert_eq!(
            k.map(false),
            [(0, 1, 1000), (1000, 0, 1), (1001, 1001, 64536)]
        );
        let root_group = KeepId { gid: 0, ..k };
        assert_eq!(root_group.map(true), [(0, 0, 1), (1, 1, 65536)]);
        assert_eq!(k.fuse_option(true), "0:1:1001:1001:0:1:1002:1002:64535");
        for gid in [false, true] {
            let total: u32 = k.map(gid).iter().map(|m| m.2).sum();
            assert_eq!(total, 65537, "ids 0..=65536, each once");
        }
        assert!(parse(Some("keep-id")).unwrap().is_none());
        // As root (not rootless capsa), keep-id is refused by name.
        if !crate::rootless::active() {
            let e = keep_id(Some("keep-id")).unwrap_err().to_string();
            assert!(e.contains("--userns") && e.contains("rootless"), "{e}");
        }
    }

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
            "keep-ids",
        ] {
            let e = parse(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("--userns") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn subid_files_give_the_containers_range() {
        let t = "alice:100000:65536\ncontainers:2147483647:2147483648\n";
        assert_eq!(
            subid_range(t, &["containers"]),
            Some((2147483647, 2147483648))
        );
        assert_eq!(subid_range(t, &["bob"]), None);
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
