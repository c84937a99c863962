//! `/dev`: the default devices, the spec's, and the console.

#[allow(unused_imports)]
use super::*;

/// The devices every container gets, as (name, type, major, minor).
pub(super) const DEFAULT_DEVICES: [(&str, char, u64, u64); 6] = [
    ("null", 'c', 1, 3),
    ("zero", 'c', 1, 5),
    ("full", 'c', 1, 7),
    ("random", 'c', 1, 8),
    ("urandom", 'c', 1, 9),
    ("tty", 'c', 5, 0),
];

/// Populate `/dev` (when the spec mounts it) with the default devices,
/// `linux.devices`, and the standard links, every one made inside the
/// root (an image whose `/dev` is a link to a host directory gets them in
/// its own tree, never on the host). In a user namespace mknod is not
/// allowed, so device nodes are bind mounts of the host's, each checked to
/// be the device the spec names.
pub fn setup_dev(plan: &Plan, root: &Root) -> R<()> {
    if !plan
        .mounts
        .iter()
        .any(|m| m.destination == Path::new("/dev"))
    {
        return Ok(());
    }
    let mut nodes: Vec<(PathBuf, char, u64, u64, u32, u32, u32)> = DEFAULT_DEVICES
        .iter()
        .map(|(n, t, ma, mi)| (PathBuf::from("/dev").join(n), *t, *ma, *mi, 0o666, 0, 0))
        .collect();
    for d in &plan.devices {
        let t = match d.typ() {
            capsa_spec::oci::LinuxDeviceType::B => 'b',
            capsa_spec::oci::LinuxDeviceType::P => 'p',
            _ => 'c',
        };
        nodes.retain(|n| n.0 != *d.path());
        nodes.push((
            d.path().clone(),
            t,
            d.major() as u64,
            d.minor() as u64,
            d.file_mode().unwrap_or(0o666),
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
        ));
    }
    for (path, t, major, minor, mode, uid, gid) in nodes {
        let kind = match t {
            'b' => nix::sys::stat::SFlag::S_IFBLK,
            'p' => nix::sys::stat::SFlag::S_IFIFO,
            _ => nix::sys::stat::SFlag::S_IFCHR,
        };
        let rdev = nix::sys::stat::makedev(major, minor);
        let made = !plan.new_userns() && root.mknod(&path, kind, mode, rdev, uid, gid).is_ok();
        if !made {
            // The host's node of the same name, checked to be that device
            // (a host path of capsa's choosing, not one from the image).
            let rel = path.strip_prefix("/").unwrap_or(&path);
            let host_dev = Path::new("/").join(rel);
            let src = open_device(&host_dev, kind, rdev)?;
            let t = make(root, &path, true)?;
            capsa_sys::root::bind_fd(&src, &t, false)
                .map_err(|e| err("bind mount", host_dev.display(), e))?;
        }
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let p = Path::new("/dev").join(link);
        root.symlink(to, &p, link == "ptmx")
            .map_err(|e| err("symlink", p.display(), e))?;
    }
    Ok(())
}

/// An `O_PATH` fd of the device node at `path`, checked to be of `kind`
/// and number `rdev`, and not reached through a symlink.
pub fn open_device(path: &Path, kind: nix::sys::stat::SFlag, rdev: u64) -> R<OwnedFd> {
    let fd = capsa_sys::fd::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err("open", path.display(), e))?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| err("stat", path.display(), e))?;
    if st.st_mode & libc::S_IFMT != kind.bits()
        || (kind != nix::sys::stat::SFlag::S_IFIFO && st.st_rdev != rdev)
    {
        return Err(ChildError::msg(
            "rootfs",
            "check device",
            path.display(),
            format!(
                "not the device asked for ({}:{})",
                nix::sys::stat::major(rdev),
                nix::sys::stat::minor(rdev)
            ),
        ));
    }
    Ok(fd)
}

/// Bind the console's pty slave (an fd, never a path) onto `/dev/console`.
pub fn bind_console(root: &Root, slave: &OwnedFd) -> R<()> {
    let t = make(root, Path::new("/dev/console"), true)?;
    capsa_sys::root::bind_fd(slave, &t, false).map_err(|e| err("bind mount", "/dev/console", e))
}
