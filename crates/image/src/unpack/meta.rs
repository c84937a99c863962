//! A tar entry's metadata on the file made for it: owners (and why a
//! rootless unpack may not give one), times without following links, and
//! the xattrs a layer may carry.

use super::entry::unsafe_entry;
use crate::error::{Error, Result};
use rustix::fs::{AtFlags, Timespec, Timestamps};
use rustix::process::{Gid, Uid};
use std::io::Read;
use std::os::fd::OwnedFd;

/// A failed chown; in a user namespace (rootless), EINVAL means the id
/// is not mapped: the user's subordinate range is too small for the image.
pub(super) fn chown_err(
    e: rustix::io::Errno,
    uid: u32,
    gid: u32,
    path: std::path::PathBuf,
) -> Error {
    if e == rustix::io::Errno::INVAL && capsa_sys::process::in_user_namespace() {
        return Error::Invalid {
            what: path.display().to_string(),
            reason: format!(
                "owned by {uid}:{gid} in the image, beyond the ids this user namespace maps: give the user a larger range in /etc/subuid and /etc/subgid (65536 ids cover most images)"
            ),
        };
    }
    Error::Io {
        op: "chown",
        path,
        source: e.into(),
    }
}

/// lchown relative to a directory fd.
pub(super) fn chown_nofollow(
    dir: &OwnedFd,
    name: &str,
    uid: u32,
    gid: u32,
) -> rustix::io::Result<()> {
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// lutimes relative to a directory fd.
pub(super) fn times_nofollow(dir: &OwnedFd, name: &str, mtime: i64) -> rustix::io::Result<()> {
    rustix::fs::utimensat(dir, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
}

pub(super) fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// xattrs from pax `SCHILY.xattr.*` records. Overlay's own attributes,
/// `trusted.overlay.*` and (for a rootless overlay with `userxattr`)
/// `user.overlay.*`, are refused: a layer must not forge redirects or
/// metacopy markers; whiteouts are the tar's own business.
pub(super) fn xattrs_of<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    comps: &[String],
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts {
            let ext = ext.map_err(|e| unsafe_entry(comps, format!("bad pax header: {e}")))?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                // Security: a forged redirect or metacopy xattr makes
                // overlay show a file of another path or layer (the
                // CVE-2021-3847 class of overlay xattr confusion).
                if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                    return Err(unsafe_entry(comps, format!("overlay attribute {name}")));
                }
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}
