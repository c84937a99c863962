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
    if api == OverlayApi::Auto {
        match mount_new_api(lowers, upper, target) {
            Ok(()) => return Ok(()),
            // EINVAL: no `lowerdir+` key on this kernel.
            Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(e).at("mount overlay on", target),
        }
    }
    let mut opts = format!(
        "lowerdir={}",
        lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    );
    if let Some((u, w)) = upper {
        opts.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    // The kernel copies one page of options.
    if opts.len() >= 4095 {
        return Err(Error::Unsupported(format!(
            "{} layers do not fit the overlay options of this kernel ({} bytes; a page is 4096); Linux 6.8+ lifts this",
            lowers.len(),
            opts.len()
        )));
    }
    let data =
        std::ffi::CString::new(opts).map_err(|_| Error::Unsupported("NUL in a path".into()))?;
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        rustix::mount::MountFlags::empty(),
        data.as_c_str(),
    )
    .at("mount overlay on", target)
}

fn mount_new_api(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> rustix::io::Result<()> {
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
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

/// A mounted container root under `dir`: `dir/upper`, `dir/work`,
/// `dir/rootfs`.
#[derive(Debug)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
}

impl Snapshot {
    /// Create upper/work/rootfs under `dir` and mount the overlay.
    pub fn create(dir: &Path, lowers: &[PathBuf], api: OverlayApi) -> Result<Snapshot> {
        let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
        for d in [&upper, &work, &rootfs] {
            fs::create_dir_all(d).at("create", d)?;
        }
        mount_overlay(lowers, Some((&upper, &work)), &rootfs, api)?;
        Ok(Snapshot {
            dir: dir.to_path_buf(),
            rootfs,
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
