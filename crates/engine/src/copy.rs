//! `capsa cp`: files between the host and a container's root. The
//! container side is resolved with `openat2(RESOLVE_IN_ROOT)` in the
//! container's overlay, and what is written on either side goes through
//! the image unpacker, which never writes outside its target directory:
//! a symlink in the container cannot send a copy to (or fetch one from)
//! the host's files.

use crate::container::Container;
use crate::error::{Error, Result};
use crate::Engine;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// `path` of the container root at `root`, through the in-root handle.
fn in_root(root: &Path, path: &str, flags: libc::c_int) -> Result<OwnedFd> {
    capsa_sys::root::Root::open(root)
        .and_then(|r| r.open_at(Path::new(path), flags, capsa_sys::resolve::Symlinks::InRoot))
        .map_err(|e| Error::Other(format!("{path} in the container: {}", e.desc())))
}

/// A tar of `src` (a file or a directory), its top entry named `name`.
fn tar_of(src: &Path, name: &str) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let meta = std::fs::symlink_metadata(src).map_err(|e| Error::Io {
        op: "stat",
        path: src.to_path_buf(),
        source: e,
    })?;
    let r = if meta.is_dir() {
        b.append_dir_all(name, src)
    } else {
        b.append_path_with_name(src, name)
    };
    r.map_err(|e| Error::Io {
        op: "read",
        path: src.to_path_buf(),
        source: e,
    })?;
    b.into_inner().map_err(|e| Error::Other(e.to_string()))
}

/// Unpack a copy (never a layer): no whiteout rules, names with `..` or
/// empty components refused, no device nodes or FIFOs, set-id bits and
/// ownership only in archive mode.
///
/// Security: a container's file named `.wh...` once made the host's copy
/// destination be emptied (a whiteout of `..`).
fn unpack_into(
    tar: &[u8],
    dir: &Path,
    top: &str,
    owner: Option<(u32, u32)>,
    archive: bool,
) -> Result<()> {
    let opts = capsa_image::unpack::Options {
        whiteouts: false,
        owner: if archive { None } else { owner },
        setid: archive,
        nodes: false,
        strict_names: true,
        xattrs: archive,
    };
    // Every entry under the copy's own top name: a stream that says
    // otherwise was not made by us.
    let mut a = tar::Archive::new(tar);
    for e in a
        .entries()
        .map_err(|e| Error::Other(format!("copy: {e}")))?
    {
        let e = e.map_err(|e| Error::Other(format!("copy: {e}")))?;
        let p = e.path_bytes();
        let first = p
            .split(|b| *b == b'/')
            .find(|c| !c.is_empty() && *c != b".");
        if top != "." && first != Some(top.as_bytes()) {
            return Err(Error::Other(format!(
                "copy: an entry {:?} outside {top:?}: refused",
                String::from_utf8_lossy(&p)
            )));
        }
    }
    capsa_image::unpack::unpack_tar_with(tar, dir, opts)?;
    Ok(())
}

use capsa_image::pack::{add_fd, reopen_plain, Specials};

/// Copy `path` of the container to `dest` on the host (a directory that
/// exists receives it by name, as `docker cp` does). The files get the
/// caller's ids unless `archive` (`-a`) keeps the container's.
pub fn from_container(
    engine: &Engine,
    c: &Container,
    path: &str,
    dest: &Path,
    archive: bool,
) -> Result<()> {
    let rootfs = c.dir(engine).join("rootfs");
    let fd = reopen_plain(&in_root(&rootfs, path, libc::O_PATH)?)?.ok_or_else(|| {
        Error::Other(format!(
            "{path} in the container: not a regular file or a directory"
        ))
    })?;
    let base = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    let (dir, name) = if dest.is_dir() {
        (dest.to_path_buf(), base)
    } else {
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (
            parent.to_path_buf(),
            dest.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(base),
        )
    };
    let mut b = tar::Builder::new(Vec::new());
    add_fd(&mut b, &fd, &name, Specials::Skip)?;
    let tar = b.into_inner().map_err(|e| Error::Other(e.to_string()))?;
    let me = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    unpack_into(&tar, &dir, &name, Some(me), archive)
}

/// Copy `src` on the host into the container at `path`. The files get the
/// container's root ids unless `archive` (`-a`) keeps the host's.
pub fn to_container(
    engine: &Engine,
    c: &Container,
    src: &Path,
    path: &str,
    archive: bool,
) -> Result<()> {
    let rootfs = c.dir(engine).join("rootfs");
    let (dir_path, name) = match in_root(&rootfs, path, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(_) => (
            path.to_string(),
            src.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        Err(_) => {
            let p = Path::new(path);
            (
                p.parent()
                    .map(|x| x.display().to_string())
                    .unwrap_or_else(|| "/".into()),
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )
        }
    };
    if name.is_empty() {
        return Err(crate::error::flag(
            "cp",
            format!("{}: nothing to name the copy by", src.display()),
        ));
    }
    let dir = in_root(&rootfs, &dir_path, libc::O_PATH | libc::O_DIRECTORY)?;
    let tar = tar_of(src, &name)?;
    let root = c.idmap.as_ref().map_or((0, 0), |r| (r.uid, r.gid));
    unpack_into(
        &tar,
        Path::new(&capsa_sys::resolve::fd_path(dir.as_raw_fd())),
        &name,
        Some(root),
        archive,
    )
}

/// Fill a new volume with what the image has at `path` (docker copies an
/// image's content into the anonymous volume of a VOLUME it declares).
pub(crate) fn seed_volume(rootfs: &Path, path: &str, dest: &Path) -> Result<()> {
    let Ok(fd) = in_root(rootfs, path, libc::O_PATH | libc::O_DIRECTORY) else {
        return Ok(()); // nothing there in the image
    };
    let Some(fd) = reopen_plain(&fd)? else {
        return Ok(());
    };
    let mut b = tar::Builder::new(Vec::new());
    add_fd(&mut b, &fd, ".", Specials::Skip)?;
    let tar = b.into_inner().map_err(|e| Error::Other(e.to_string()))?;
    // The image's own ids and modes, as docker seeds a volume.
    unpack_into(&tar, dest, ".", None, true)
}
