//! The container's user, from the image's own /etc/passwd and /etc/group,
//! read through the in-root handle.

use crate::error::{flag, Result};
use std::path::Path;

/// Read a file of the image through `openat2(RESOLVE_IN_ROOT)`.
///
/// Security: a regular file of the image, read through the in-root handle:
/// a link (to a host path, say) cannot lead the host out of the root, and a
/// FIFO or device there is never opened (it would hang the host, or be
/// opened by host root). Missing reads as empty; anything else that is not
/// a regular file is an error naming it.
fn read_in_root(rootfs: &Path, path: &str) -> std::result::Result<String, String> {
    use capsa_sys::root::ReadError;
    let root = capsa_sys::root::Root::open(rootfs)
        .map_err(|e| format!("{}: {}", rootfs.display(), e.desc()))?;
    match root.read(Path::new(path), 4 << 20) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(ReadError::Sys(capsa_sys::Errno::ENOENT)) => Ok(String::new()),
        Err(e) => Err(format!("{path} in the image: {e}")),
    }
}

/// `uid[:gid]` or `name[:group]` to numbers, with the user's groups, from
/// the image's /etc/passwd and /etc/group.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>)> {
    if user.is_empty() {
        return Ok((0, 0, vec![]));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let read = |path: &str| {
        read_in_root(rootfs, path)
            .map_err(|why| flag("-u (or the image's User)", format!("{user:?}: {why}")))
    };
    let passwd = read("/etc/passwd")?;
    let group = read("/etc/group")?;
    let entry = |text: &str, key: &str| -> Option<Vec<String>> {
        text.lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && (f[0] == key || f[2] == key))
    };
    let (uid, name, primary) = match u.parse::<u32>() {
        Ok(n) => {
            let e = entry(&passwd, u);
            (
                n,
                e.as_ref().map(|f| f[0].clone()),
                e.and_then(|f| f.get(3).and_then(|g| g.parse().ok())),
            )
        }
        Err(_) => {
            let f = entry(&passwd, u).ok_or_else(|| {
                flag(
                    "-u (or the image's User)",
                    format!("no user {u:?} in the image's /etc/passwd"),
                )
            })?;
            (
                f[2].parse()
                    .map_err(|_| flag("-u", format!("bad uid for {u} in /etc/passwd")))?,
                Some(f[0].clone()),
                f.get(3).and_then(|g| g.parse().ok()),
            )
        }
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => entry(&group, g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| flag("-u", format!("no group {g:?} in the image's /etc/group")))?,
        },
        None => primary.unwrap_or(0),
    };
    let mut groups = Vec::new();
    if let Some(n) = name {
        for l in group.lines() {
            let f: Vec<_> = l.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == n) {
                if let Ok(x) = f[2].parse::<u32>() {
                    if x != gid && !groups.contains(&x) {
                        groups.push(x);
                    }
                }
            }
        }
    }
    Ok((uid, gid, groups))
}

/// `--group-add`: each a gid, or a group name of the image's /etc/group.
pub fn resolve_groups(rootfs: &Path, names: &[String]) -> Result<Vec<u32>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let group = read_in_root(rootfs, "/etc/group").map_err(|why| flag("--group-add", why))?;
    names
        .iter()
        .map(|n| match n.parse::<u32>() {
            Ok(g) => Ok(g),
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == n)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    flag(
                        "--group-add",
                        format!("no group {n:?} in the image's /etc/group"),
                    )
                }),
        })
        .collect()
}
