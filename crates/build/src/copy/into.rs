//! Where `COPY` and `ADD` write: a step's overlay snapshot (its work
//! directory, locked while in use, so a later build can tell a dead one
//! from a live one), the destination resolved in the stage's root, and
//! the stream the unpacker writes there.

use crate::stage::Build;
use crate::Result;
use capsa_sys::resolve::Symlinks;
use capsa_sys::root::Root;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A step's directory under `<root>/build-work/`, with the mounts made in
/// it; unmounted and removed when dropped. Its `lock` file is held
/// (flock) while it lives: one whose lock can be taken was left by a
/// build that died, and the next build removes it.
pub(crate) struct Work {
    pub dir: PathBuf,
    pub mounts: Vec<PathBuf>,
    _lock: std::fs::File,
}

/// Open (made when missing, never truncated, never through a link) and
/// flock `path`.
fn flock(path: &Path, op: rustix::fs::FlockOperation) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)?;
    rustix::fs::flock(&f, op)?;
    Ok(f)
}

fn lock(dir: &Path) -> std::io::Result<std::fs::File> {
    flock(
        &dir.join("lock"),
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
}

/// `build-work/.sweep`: held shared while a work directory is made and
/// locked, exclusively by a sweep, so a sweep never takes a directory
/// between its making and its locking.
fn sweep_lock(base: &Path, exclusive: bool) -> std::io::Result<std::fs::File> {
    flock(
        &base.join(".sweep"),
        if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        },
    )
}

/// Unmount whatever is mounted under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort();
    for p in points.iter().rev() {
        let _ = rustix::mount::unmount(p.as_path(), rustix::mount::UnmountFlags::DETACH);
    }
}

impl Work {
    pub fn new(b: &Build<'_>) -> Result<Work> {
        let base = b.engine.root.join("build-work");
        std::fs::create_dir_all(&base)
            .map_err(|e| crate::invalid(base.display().to_string(), e))?;
        let mut n = [0u8; 8];
        let _ = rustix::rand::getrandom(&mut n, rustix::rand::GetRandomFlags::empty());
        let dir = base.join(n.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let bad = |e: std::io::Error| crate::invalid(dir.display().to_string(), e);
        let guard = sweep_lock(&base, false).map_err(bad)?;
        std::fs::create_dir(&dir).map_err(bad)?;
        let l = lock(&dir).map_err(bad)?;
        drop(guard);
        Ok(Work {
            dir,
            mounts: Vec::new(),
            _lock: l,
        })
    }

    /// Remove what builds that died left under `build-work/` (their
    /// locks are free); live builds' directories stay.
    pub fn sweep(b: &Build<'_>) {
        let base = b.engine.root.join("build-work");
        let Ok(_guard) = sweep_lock(&base, true) else {
            return;
        };
        let Ok(rd) = std::fs::read_dir(&base) else {
            return;
        };
        for e in rd.flatten() {
            let d = e.path();
            if e.file_type().map_or(true, |t| !t.is_dir()) {
                continue;
            }
            if lock(&d).is_ok() {
                unmount_under(&d);
                let _ = std::fs::remove_dir_all(&d);
            }
        }
    }

    /// Lower dirs for `layers` (unpacked first); an empty one for none.
    pub fn lowers(
        &self,
        b: &Build<'_>,
        layers: &[capsa_image::manifest::Layer],
    ) -> Result<Vec<PathBuf>> {
        let store = &b.engine.images;
        capsa_image::local::unpack_layers(store, layers, &|_| {})?;
        let l = capsa_image::local::lowers(store, layers);
        if !l.is_empty() {
            return Ok(l);
        }
        let empty = self.dir.join("empty");
        std::fs::create_dir_all(&empty)
            .map_err(|e| crate::invalid(empty.display().to_string(), e))?;
        Ok(vec![empty])
    }

    /// Unmount what this step mounted (before its upper directory goes);
    /// true when every mount went at once (none lazily).
    pub fn unmount(&mut self) -> bool {
        let mut clean = true;
        for m in self.mounts.drain(..).rev() {
            if rustix::mount::unmount(m.as_path(), rustix::mount::UnmountFlags::empty()).is_err() {
                clean = false;
                let _ = rustix::mount::unmount(m.as_path(), rustix::mount::UnmountFlags::DETACH);
            }
        }
        clean
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        self.unmount();
        // Whatever is still mounted here is not walked into.
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The destination directory, made when missing; one made now belongs
/// to `--chown`'s owner, as BuildKit and buildah make it.
pub(super) fn made_dir(
    root: &Root,
    dest: &str,
    owner: Option<(u32, u32)>,
) -> std::result::Result<OwnedFd, String> {
    let existed = root
        .open_at(
            Path::new(dest),
            libc::O_PATH | libc::O_DIRECTORY,
            Symlinks::InRoot,
        )
        .is_ok();
    let fd = root
        .mkdir_all(Path::new(dest))
        .map_err(|e| format!("{dest}: {}", e.desc()))?;
    if let (false, Some((u, g))) = (existed, owner) {
        rustix::fs::chownat(
            &fd,
            "",
            Some(rustix::fs::Uid::from_raw(u)),
            Some(rustix::fs::Gid::from_raw(g)),
            rustix::fs::AtFlags::EMPTY_PATH,
        )
        .map_err(|e| format!("{dest}: chown: {e}"))?;
    }
    Ok(fd)
}

/// The directory (made when missing) and name a single file lands as.
pub(super) fn target(
    root: &Root,
    dest: &str,
    dest_is_dir: bool,
    base: &str,
) -> std::result::Result<(OwnedFd, String), String> {
    let (dir, name) = if dest_is_dir {
        (dest.to_string(), base.to_string())
    } else {
        let (d, n) = dest.rsplit_once('/').unwrap_or(("", dest));
        (
            if d.is_empty() {
                "/".into()
            } else {
                d.to_string()
            },
            n.to_string(),
        )
    };
    if name.is_empty() {
        return Err(format!("{dest}: nothing to name the copy by"));
    }
    let fd = root
        .mkdir_all(Path::new(&dir))
        .map_err(|e| format!("{dir}: {}", e.desc()))?;
    Ok((fd, name))
}

/// Stream what `pack` writes into `dir` (an fd in the stage's root), as a
/// copy under `top`, keeping the headers' owners and modes.
pub(super) fn stream(
    dir: &OwnedFd,
    top: &str,
    pack: impl FnOnce(&mut tar::Builder<capsa_engine::copy::Stoppable>) -> capsa_engine::Result<()>
        + Send,
) -> capsa_engine::Result<()> {
    let opts = capsa_image::unpack::Options {
        whiteouts: false,
        owner: None,
        setid: true,
        nodes: false,
        strict_names: true,
        xattrs: false,
        top: Some(top.to_string()),
    };
    capsa_engine::copy::stream(
        pack,
        Path::new(&capsa_sys::resolve::fd_path(dir.as_raw_fd())),
        opts,
    )
}

/// Write one file (a heredoc's body, a fetched URL) as `name` in `dir`.
pub(super) fn write_file(
    dir: &OwnedFd,
    name: &str,
    data: impl std::io::Read + Send,
    len: u64,
    mode: u32,
    (uid, gid): (u32, u32),
) -> capsa_engine::Result<()> {
    let top = name.to_string();
    stream(dir, name, move |t| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(len);
        h.set_mode(mode);
        h.set_uid(uid as u64);
        h.set_gid(gid as u64);
        h.set_mtime(capsa_engine::manage::now_secs());
        t.append_data(&mut h, top.as_str(), data)
            .map_err(|e| capsa_engine::Error::Io {
                op: "write",
                path: PathBuf::from("the copy's tar stream"),
                source: e,
            })
    })
}

/// Whether a file reads as a tar archive (plain or compressed), which
/// `ADD` unpacks.
pub(super) fn is_archive(fd: &OwnedFd) -> bool {
    let Ok(f) = fd.try_clone().map(std::fs::File::from) else {
        return false;
    };
    let Ok(r) = capsa_image::unpack::decompress(f) else {
        return false;
    };
    let mut a = tar::Archive::new(r);
    let ok = matches!(a.entries().map(|mut e| e.next()), Ok(Some(Ok(_))));
    let _ = rustix::fs::seek(fd, rustix::fs::SeekFrom::Start(0));
    ok
}

/// `ADD`'s unpacking of a local archive into `dir`, owners kept.
pub(super) fn extract(dir: &OwnedFd, src: &OwnedFd) -> std::result::Result<(), String> {
    let _ = rustix::fs::seek(src, rustix::fs::SeekFrom::Start(0));
    let f = std::fs::File::from(src.try_clone().map_err(|e| e.to_string())?);
    let r = capsa_image::unpack::decompress(f).map_err(|e| e.to_string())?;
    let opts = capsa_image::unpack::Options {
        whiteouts: false,
        owner: None,
        setid: true,
        nodes: false,
        strict_names: false,
        xattrs: false,
        top: None,
    };
    capsa_image::unpack::unpack_tar_with(
        r,
        Path::new(&capsa_sys::resolve::fd_path(dir.as_raw_fd())),
        opts,
    )
    .map(drop)
    .map_err(|e| e.to_string())
}

/// `--chown=user[:group]` to ids, names read from the stage's own
/// /etc/passwd and /etc/group; a user without a group gets the same
/// number as its group, as Docker does.
pub(super) fn chown(rootfs: &Path, spec: &str) -> std::result::Result<(u32, u32), String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            capsa_engine::spec::user::resolve_user(rootfs, u)
                .map_err(|e| e.to_string())?
                .0
        }
    };
    let gid = match g {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                capsa_engine::spec::user::resolve_user(rootfs, &format!("0:{g}"))
                    .map_err(|e| e.to_string())?
                    .1
            }
        },
    };
    Ok((uid, gid))
}
