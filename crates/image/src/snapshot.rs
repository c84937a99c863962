//! A container's root: an overlay of its image's layers (read-only, shared)
//! under its own upper and work directories.

use crate::error::{Error, IoContext, Result};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
use std::fs;
use std::path::{Path, PathBuf};

/// How the overlay is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayApi {
    /// The new mount API, one `lowerdir+` per layer (Linux 6.8+): no limit
    /// on the number of layers but overlay's own (500). Falls back to
    /// `Legacy` where the kernel lacks it.
    Auto,
    /// mount(2) with one option string, which must fit a page: layers are
    /// named by their short links.
    Legacy,
}

/// Mount an overlay at `target`: `lowers` top first, and an upper/work
/// pair (none for a read-only view).
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    api: OverlayApi,
) -> Result<()> {
    if lowers.is_empty() {
        return Err(Error::Unsupported(
            "an overlay needs at least one lower layer".into(),
        ));
    }
    // A read-only view of one layer: overlay wants two lowers without an
    // upper, so bind it read-only instead.
    if upper.is_none() && lowers.len() == 1 {
        rustix::mount::mount_bind(&lowers[0], target).at("bind", target)?;
        return rustix::mount::mount_remount(
            target,
            rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::RDONLY,
            "",
        )
        .at("make read-only", target);
    }
    if api == OverlayApi::Auto {
        match mount_new_api(lowers, upper, target) {
            Ok(()) => return Ok(()),
            // EINVAL: no `lowerdir+` key on this kernel.
            Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(e).at("mount overlay on", target),
        }
    }
    mount_legacy(lowers, upper, target)
}

/// mount(2) with one option string. When absolute paths do not fit the
/// page the kernel copies, the layers are named relative to their common
/// directory (the store's `l/`), and the mount is made from there.
fn mount_legacy(lowers: &[PathBuf], upper: Option<(&Path, &Path)>, target: &Path) -> Result<()> {
    let join = |ls: Vec<String>| {
        let mut o = format!("lowerdir={}", ls.join(":"));
        if capsa_sys::process::in_user_namespace() {
            o.push_str(",userxattr");
        }
        if let Some((u, w)) = upper {
            o.push_str(&format!(
                ",upperdir={},workdir={}",
                u.display(),
                w.display()
            ));
        }
        o
    };
    let cstr = |s: String| {
        std::ffi::CString::new(s).map_err(|_| Error::Unsupported("NUL in a path".into()))
    };
    let target_c = cstr(target.display().to_string())?;
    let absolute = join(lowers.iter().map(|p| p.display().to_string()).collect());
    if absolute.len() < PAGE {
        return rustix::mount::mount(
            "overlay",
            target,
            "overlay",
            rustix::mount::MountFlags::empty(),
            cstr(absolute)?.as_c_str(),
        )
        .at("mount overlay on", target);
    }
    let base = lowers[0].parent().and_then(Path::parent).filter(|b| {
        lowers
            .iter()
            .all(|l| l.parent().and_then(Path::parent) == Some(b))
    });
    let Some(base) = base else {
        return Err(too_many(lowers.len(), absolute.len()));
    };
    let relative = join(
        lowers
            .iter()
            .map(|l| l.strip_prefix(base).unwrap_or(l).display().to_string())
            .collect(),
    );
    if relative.len() >= PAGE {
        return Err(too_many(lowers.len(), relative.len()));
    }
    capsa_sys::mount::mount_from_dir(
        &cstr(base.display().to_string())?,
        c"overlay",
        &target_c,
        c"overlay",
        &cstr(relative)?,
    )
    .map_err(|e| Error::Io {
        op: "mount overlay on",
        path: target.to_path_buf(),
        source: std::io::Error::from_raw_os_error(e as i32),
    })
}

/// The kernel copies one page of mount options.
const PAGE: usize = 4096;

fn too_many(n: usize, len: usize) -> Error {
    Error::Unsupported(format!(
        "{n} layers do not fit the overlay options of this kernel ({len} bytes; a page is {PAGE}); Linux 6.8+ lifts this"
    ))
}

fn mount_new_api(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> rustix::io::Result<()> {
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    // The name /proc/mounts shows as the mount's source.
    rustix::mount::fsconfig_set_string(&fs, "source", "capsa")?;
    // Rootless: whiteouts and opaque directories as `user.overlay.*`
    // xattrs, the only ones a user namespace may write (Linux 5.11+).
    if capsa_sys::process::in_user_namespace() {
        rustix::mount::fsconfig_set_flag(&fs, "userxattr")?;
    }
    for l in lowers {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", l.as_path())?;
    }
    if let Some((u, w)) = upper {
        rustix::mount::fsconfig_set_string(&fs, "upperdir", u)?;
        rustix::mount::fsconfig_set_string(&fs, "workdir", w)?;
    }
    rustix::mount::fsconfig_create(&fs)?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

/// Unmount what `mount_overlay` mounted.
pub fn unmount(target: &Path) -> Result<()> {
    rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty()).at("unmount", target)
}

/// A mounted container root under `dir`: `dir/upper`, `dir/work`,
/// `dir/rootfs`.
#[derive(Debug)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    /// What mounted it: the kernel's overlay, or fuse-overlayfs.
    pub driver: Driver,
}

/// Which overlay a root is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// The kernel's overlayfs (in a user namespace, with `userxattr`).
    Kernel,
    /// fuse-overlayfs: rootless where the kernel refuses an overlay in a
    /// user namespace (before Linux 5.11, or a filesystem it will not
    /// stack on), or where `CAPSA_OVERLAY=fuse` asks for it.
    Fuse,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Kernel => "overlay",
            Driver::Fuse => "fuse-overlayfs",
        }
    }
}

/// The environment variable that asks rootless capsa for fuse-overlayfs.
pub const DRIVER_ENV: &str = "CAPSA_OVERLAY";

/// When fuse-overlayfs may make a root: the caller's choice (rootless
/// capsa allows it; root never runs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fuse {
    Never,
    /// Where the kernel refuses the overlay.
    Fallback,
    Always,
}

/// Mount the container root at `target`: the kernel's overlay, or
/// fuse-overlayfs as `fuse` allows.
fn mount_root(
    lowers: &[PathBuf],
    upper: (&Path, &Path),
    target: &Path,
    api: OverlayApi,
    fuse: Fuse,
) -> Result<Driver> {
    if fuse == Fuse::Always {
        mount_fuse(lowers, upper, target, "")?;
        return Ok(Driver::Fuse);
    }
    match mount_overlay(lowers, Some(upper), target, api) {
        Ok(()) => Ok(Driver::Kernel),
        Err(Error::Io { source, .. })
            if fuse == Fuse::Fallback
                && matches!(
                    source.raw_os_error(),
                    Some(libc::EPERM) | Some(libc::EINVAL) | Some(libc::ENODEV)
                ) =>
        {
            mount_fuse(lowers, upper, target, "")?;
            Ok(Driver::Fuse)
        }
        Err(e) => Err(e),
    }
}

/// fuse-overlayfs over `lowers` (top first) with `upper`, at `target`,
/// with `extra` options (`,uidmapping=...`). It forks into the background
/// once the mount is made; unmounting the target ends it.
fn mount_fuse(
    lowers: &[PathBuf],
    (upper, work): (&Path, &Path),
    target: &Path,
    extra: &str,
) -> Result<()> {
    // Its options are one comma-separated string with colon-separated
    // lowers: a path holding either would be misread.
    let all: Vec<&Path> = lowers
        .iter()
        .map(PathBuf::as_path)
        .chain([upper, work])
        .collect();
    if let Some(p) = all
        .iter()
        .find(|p| p.to_string_lossy().contains([',', ':', '\\']))
    {
        return Err(Error::Unsupported(format!(
            "fuse-overlayfs cannot take {} (a ',', ':' or '\\' in the path)",
            p.display()
        )));
    }
    let lower = lowers
        .iter()
        .map(|l| l.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let out = std::process::Command::new("fuse-overlayfs")
        .arg("-o")
        .arg(format!(
            "lowerdir={lower},upperdir={},workdir={}{extra}",
            upper.display(),
            work.display()
        ))
        .arg(target)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            Error::Unsupported(format!(
                "fuse-overlayfs: {e} (rootless capsa falls back to it where the kernel refuses an overlay: Debian's fuse-overlayfs package)"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Unsupported(format!(
            "fuse-overlayfs on {}: {}",
            target.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Image layers seen through a user namespace's id map: what the
/// container's root (uid 0 inside, a high uid outside) sees as its own.
#[derive(Debug, Clone, Copy)]
pub struct IdMapped<'a> {
    /// A user namespace with the container's maps (the mapping is all
    /// that counts; it need not be the container's own namespace).
    pub userns: std::os::fd::BorrowedFd<'a>,
    /// The host uid and gid of the container's root, the upper's owner.
    pub root: (u32, u32),
}

impl Snapshot {
    /// Create upper/work/rootfs under `dir` and mount the overlay; with
    /// `mapped`, each lower layer is an id-mapped mount.
    pub fn create(
        dir: &Path,
        lowers: &[PathBuf],
        api: OverlayApi,
        mapped: Option<IdMapped<'_>>,
        fuse: Fuse,
    ) -> Result<Snapshot> {
        let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
        for d in [&upper, &work, &rootfs] {
            fs::create_dir_all(d).at("create", d)?;
        }
        let mut driver = Driver::Kernel;
        match mapped {
            None => driver = mount_root(lowers, (&upper, &work), &rootfs, api, fuse)?,
            Some(m) => {
                let (uid, gid) = m.root;
                rustix::fs::chown(
                    &upper,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                )
                .at("chown", &upper)?;
                let mapped_dir = dir.join("lowers");
                let res = mapped_lowers(lowers, m, &mapped_dir)
                    .and_then(|mapped| mount_overlay(&mapped, Some((&upper, &work)), &rootfs, api));
                // The overlay holds private clones of its layers: the
                // id-mapped mounts it was made from can go now.
                unmount_all(&mapped_dir);
                res?
            }
        }
        Ok(Snapshot {
            dir: dir.to_path_buf(),
            rootfs,
            driver,
        })
    }

    /// Create upper/work/rootfs under `dir` and mount `lowers` through
    /// fuse-overlayfs, its files' owners shown through `uidmapping` and
    /// `gidmapping` (fuse-overlayfs's `container:host:size` triples): a
    /// rootless container in a user namespace of its own (`--userns
    /// keep-id`) sees the image's owners, where id-mapped mounts are out
    /// of a user namespace's reach.
    pub fn create_fuse_mapped(
        dir: &Path,
        lowers: &[PathBuf],
        uidmapping: &str,
        gidmapping: &str,
    ) -> Result<Snapshot> {
        let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
        for d in [&upper, &work, &rootfs] {
            fs::create_dir_all(d).at("create", d)?;
        }
        mount_fuse(
            lowers,
            (&upper, &work),
            &rootfs,
            &format!(",uidmapping={uidmapping},gidmapping={gidmapping}"),
        )?;
        Ok(Snapshot {
            dir: dir.to_path_buf(),
            rootfs,
            driver: Driver::Fuse,
        })
    }

    /// Unmount (lazily, as a container's processes may still hold it) and
    /// remove the snapshot's directories.
    pub fn remove(self) -> Result<()> {
        match rustix::mount::unmount(&self.rootfs, rustix::mount::UnmountFlags::DETACH) {
            Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e).at("unmount", &self.rootfs),
        }
        crate::layers::remove_tree(&self.dir);
        Ok(())
    }
}

/// Each lower layer as an id-mapped mount attached at `dir/<n>`, top
/// first, as overlay takes them (by path on every kernel since 5.19).
fn mapped_lowers(lowers: &[PathBuf], m: IdMapped<'_>, dir: &Path) -> Result<Vec<PathBuf>> {
    use std::os::fd::AsRawFd;
    let mut out = Vec::with_capacity(lowers.len());
    for (n, lower) in lowers.iter().enumerate() {
        let at = dir.join(n.to_string());
        fs::create_dir_all(&at).at("create", &at)?;
        let sys = |op: &'static str, e: capsa_sys::Errno| Error::Io {
            op,
            path: lower.clone(),
            source: std::io::Error::from_raw_os_error(e as i32),
        };
        let tree = capsa_sys::mount::clone_tree(lower, false).map_err(|e| sys("open_tree", e))?;
        capsa_sys::mount::set_idmap(&tree, m.userns.as_raw_fd(), false)
            .map_err(|e| sys("id-map (mount_setattr)", e))?;
        let target = fs::File::open(&at).at("open", &at)?;
        capsa_sys::mount::attach(tree.as_raw_fd(), target.as_raw_fd())
            .map_err(|e| sys("attach (move_mount)", e))?;
        out.push(at);
    }
    Ok(out)
}

/// Detach every mount made by `mapped_lowers` and remove their points.
fn unmount_all(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let _ = rustix::mount::unmount(e.path(), rustix::mount::UnmountFlags::DETACH);
        let _ = fs::remove_dir(e.path());
    }
    let _ = fs::remove_dir(dir);
}
