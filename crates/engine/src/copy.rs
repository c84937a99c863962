//! `capsa cp`: files between the host and a container's root. The
//! container side is resolved with `openat2(RESOLVE_IN_ROOT)` in the
//! container's overlay, and what is written on either side goes through
//! the image unpacker, which never writes outside its target directory:
//! a symlink in the container cannot send a copy to (or fetch one from)
//! the host's files.

use crate::container::Container;
use crate::error::{Error, Result};
use crate::Engine;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// `path` of the container root at `root`, through the in-root handle.
fn in_root(root: &Path, path: &str, flags: libc::c_int) -> Result<OwnedFd> {
    capsa_sys::root::Root::open(root)
        .and_then(|r| r.open_at(Path::new(path), flags, capsa_sys::resolve::Symlinks::InRoot))
        .map_err(|e| Error::sys("open", format!("{path} in the container"), e))
}

/// Add `src` on the host (a file or a directory) to `b` as `name`.
fn add_host_path<W: Write>(b: &mut tar::Builder<W>, src: &Path, name: &str) -> Result<()> {
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
    })
}

/// Pack with `pack` into a pipe while the copy's options unpack it into
/// `dir`: a copy is streamed, never held whole in memory.
///
/// Security: a container's huge (or sparse) file once made `capsa cp`
/// build its whole tar in the host's memory.
///
/// Unpacked as a copy (never a layer): no whiteout rules, names with `..`
/// or empty components refused, every entry under the copy's own top
/// name, no device nodes or FIFOs, set-id bits and ownership only in
/// archive mode.
///
/// Security: a container's file named `.wh...` once made the host's copy
/// destination be emptied (a whiteout of `..`).
fn stream_copy(
    pack: impl FnOnce(&mut tar::Builder<Stoppable>) -> Result<()> + Send,
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
        top: Some(top.to_string()),
    };
    stream(pack, dir, opts)
}

/// Pack with `pack` into a pipe while the unpacker, with `opts`, writes
/// it into `dir` (see `stream_copy`; `capsa build` copies with it too).
pub fn stream(
    pack: impl FnOnce(&mut tar::Builder<Stoppable>) -> Result<()> + Send,
    dir: &Path,
    opts: capsa_image::unpack::Options,
) -> Result<()> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys("pipe", "copy", e))?;
    let (mut r, w) = (std::fs::File::from(r), std::fs::File::from(w));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|s| {
        let inner = Stoppable {
            inner: w,
            stop: stop.clone(),
        };
        let packer = s.spawn(move || {
            let mut b = tar::Builder::new(inner);
            pack(&mut b)?;
            b.into_inner()
                .map(drop)
                .map_err(|e| Error::sys("write", "the copy's tar stream", e))
        });
        let unpacked = capsa_image::unpack::unpack_tar_with(&mut r, dir, opts).map(drop);
        if unpacked.is_err() {
            // Stop the packer at its next write and let the write it may be
            // blocked in finish: closing the pipe instead would raise
            // SIGPIPE in the packer, and kill the whole command.
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        }
        let packed = packer
            .join()
            .unwrap_or_else(|_| Err(Error::Protocol("copy: the packer panicked".into())));
        match (unpacked, packed) {
            (Ok(()), p) => p,
            // The packer's own failure cut the stream short: it says why.
            (Err(_), Err(p)) if !stopped(&p) => Err(p),
            (Err(u), _) => Err(u.into()),
        }
    })
}

/// The packer's end of the pipe: writes fail once the unpacker has
/// stopped.
pub struct Stoppable {
    inner: std::fs::File,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Write for Stoppable {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the copy's unpacker stopped",
            ));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Whether `e` is the packer stopped by the unpacker's failure (whose own
/// error is the one to report).
fn stopped(e: &Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = src {
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        src = x.source();
    }
    false
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
    let fd =
        reopen_plain(&in_root(&rootfs, path, libc::O_PATH)?)?.ok_or_else(|| Error::Refused {
            what: format!("{path} in the container"),
            reason: "not a regular file or a directory".into(),
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
    let me = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let top = name.clone();
    stream_copy(
        move |b| Ok(add_fd(b, &fd, &name, Specials::Skip)?),
        &dir,
        &top,
        Some(me),
        archive,
    )
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
    let root = c.idmap.as_ref().map_or((0, 0), |r| (r.uid, r.gid));
    let top = name.clone();
    stream_copy(
        move |b| add_host_path(b, src, &name),
        Path::new(&capsa_sys::resolve::fd_path(dir.as_raw_fd())),
        &top,
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
    // The image's own ids and modes, as docker seeds a volume.
    stream_copy(
        move |b| Ok(add_fd(b, &fd, ".", Specials::Skip)?),
        dest,
        ".",
        None,
        true,
    )
}
