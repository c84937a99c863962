//! One tar entry at a time: resolving its parent inside the layer
//! directory, creating the entry without following symlinks, and the
//! overlay whiteouts. See the module above for the security argument.

use super::meta::{chown_err, chown_nofollow, times, times_nofollow, xattrs_of};
use super::{clean_path, limits, Options};
use crate::error::{Error, IoContext, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::process::{Gid, Uid};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

pub(super) struct Unpacker<'a> {
    pub(super) root: OwnedFd,
    pub(super) dest: &'a Path,
    /// The last parent directory opened, by its clean path: tar entries of
    /// one directory come together, so this saves most lookups.
    pub(super) cache: Option<(Vec<String>, OwnedFd)>,
    /// Directory mtimes are set last: creating children changes them.
    pub(super) dir_times: Vec<(Vec<String>, i64)>,
    pub(super) buf: Vec<u8>,
    pub(super) opts: Options,
    /// Bytes of file content written so far.
    pub(super) written: u64,
    /// For a layer: the compressed bytes read so far.
    pub(super) compressed: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

/// The xattr that makes a directory opaque: overlay's `trusted.` one, or
/// in a user namespace (rootless), where `trusted.` is out of reach and
/// overlay is mounted with `userxattr`, its `user.` one.
pub(super) fn opaque_xattr() -> &'static str {
    if capsa_sys::process::in_user_namespace() {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    }
}

pub(super) fn unsafe_entry(entry: &[String], reason: impl Into<String>) -> Error {
    Error::UnsafeEntry {
        entry: entry.join("/"),
        reason: reason.into(),
    }
}

impl Unpacker<'_> {
    fn resolve(&self, comps: &[String], flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let path = if comps.is_empty() {
            ".".to_string()
        } else {
            comps.join("/")
        };
        loop {
            match rustix::fs::openat2(
                &self.root,
                path.as_str(),
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => continue,
                r => return r,
            }
        }
    }

    /// Open (creating as needed, mode 0755) the directory `comps`.
    fn dir(&mut self, comps: &[String]) -> Result<OwnedFd> {
        match self.resolve(comps, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => Ok(fd),
            Err(rustix::io::Errno::NOENT) if !comps.is_empty() => {
                let (last, parent) = comps.split_last().expect("not empty");
                let p = self.dir(parent)?;
                match rustix::fs::mkdirat(&p, last.as_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => {
                        return Err(e).at("create directory", self.dest.join(comps.join("/")))
                    }
                }
                match self.resolve(comps, OFlags::RDONLY | OFlags::DIRECTORY) {
                    Ok(fd) => Ok(fd),
                    // It exists but does not resolve: a symlink to nothing
                    // inside the layer (often a host path). Docker refuses
                    // this too.
                    Err(rustix::io::Errno::NOENT) => Err(unsafe_entry(
                        comps,
                        "a parent is a symlink to a directory that is not in the layer",
                    )),
                    Err(e) => Err(e).at("open directory", self.dest.join(comps.join("/"))),
                }
            }
            Err(rustix::io::Errno::NOTDIR) => {
                Err(unsafe_entry(comps, "a parent is not a directory"))
            }
            Err(e) => Err(e).at("open directory", self.dest.join(comps.join("/"))),
        }
    }

    fn parent(&mut self, comps: &[String]) -> Result<OwnedFd> {
        let parent = &comps[..comps.len() - 1];
        if let Some((p, fd)) = &self.cache {
            if p == parent {
                return fd.try_clone().at("dup", self.dest);
            }
        }
        let fd = self.dir(parent)?;
        let dup = fd.try_clone().at("dup", self.dest)?;
        self.cache = Some((parent.to_vec(), fd));
        Ok(dup)
    }

    /// Remove whatever is at `name` in `parent` (a directory recursively).
    fn remove(&mut self, parent: &OwnedFd, name: &str, comps: &[String]) -> Result<()> {
        // Whatever was here may be (or lead to) the cached parent.
        self.cache = None;
        remove_at(parent, name).at("remove", self.dest.join(comps.join("/")))
    }

    pub(super) fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        if self.opts.strict_names {
            let trimmed = raw.strip_suffix(b"/").unwrap_or(&raw);
            let bad = trimmed
                .split(|&b| b == b'/')
                .any(|c| c.is_empty() || c == b"..");
            if bad && trimmed != b"." {
                return Err(unsafe_entry(
                    &[String::from_utf8_lossy(&raw).into_owned()],
                    "a name with an empty or \"..\" component",
                ));
            }
        }
        let comps = clean_path(&raw);
        if let Some(top) = self.opts.top.as_deref() {
            if top != "." && comps.first().map(String::as_str) != Some(top) {
                return Err(unsafe_entry(
                    &[String::from_utf8_lossy(&raw).into_owned()],
                    format!("an entry outside {top:?}"),
                ));
            }
        }
        let Some(name) = comps.last().cloned() else {
            return Ok(()); // the root itself: the layer directory stays ours
        };
        let header = entry.header().clone();
        let kind = header.entry_type();
        // Whiteouts: `.wh..wh..opq` makes its directory opaque, `.wh.NAME`
        // hides NAME of lower layers; overlay spells these as an xattr and a
        // 0:0 character device.
        let whiteout = name.strip_prefix(".wh.").filter(|_| self.opts.whiteouts);
        if let Some(hidden) = whiteout {
            // Security: `.wh..` and `.wh...` name the directory itself and
            // its parent: no whiteout may remove either.
            if hidden == "." || hidden == ".." {
                return Err(unsafe_entry(&comps, "a whiteout of . or .."));
            }
            let parent = self.parent(&comps)?;
            if hidden == ".wh..opq" {
                rustix::fs::fsetxattr(
                    &parent,
                    opaque_xattr(),
                    b"y",
                    rustix::fs::XattrFlags::empty(),
                )
                .at(
                    "set opaque on",
                    self.dest.join(comps[..comps.len() - 1].join("/")),
                )?;
            } else if !hidden.starts_with(".wh.") && !hidden.is_empty() {
                if rustix::fs::statat(&parent, hidden, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                    self.remove(&parent, hidden, &comps)?;
                }
                rustix::fs::mknodat(&parent, hidden, FileType::CharacterDevice, Mode::empty(), 0)
                    .at("create whiteout", self.dest.join(comps.join("/")))?;
            }
            return Ok(());
        }
        let parent = self.parent(&comps)?;
        let existing = rustix::fs::statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let is_dir = kind == tar::EntryType::Directory;
        let existing_dir = existing
            .as_ref()
            .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        if existing.is_some() && !(is_dir && existing_dir) {
            self.remove(&parent, &name, &comps)?;
        }
        let keep = if self.opts.setid { 0o7777 } else { 0o1777 };
        let mode = Mode::from_raw_mode(header.mode().unwrap_or(0o644) & keep);
        let (uid, gid) = self.opts.owner.unwrap_or((
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        ));
        let mtime = header.mtime().unwrap_or(0) as i64;
        let path = || self.dest.join(comps.join("/"));
        let mut xattrs = xattrs_of(&mut entry, &comps)?;
        if !self.opts.xattrs {
            xattrs.clear();
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = rustix::fs::openat(
                    &parent,
                    name.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .at("create", path())?;
                let mut file = File::from(fd);
                let limits = limits();
                let compressed = self.compressed.clone();
                let check = move |written: u64| match &compressed {
                    // A layer: its limits, against what was downloaded.
                    Some(c) => limits.check(c.load(std::sync::atomic::Ordering::Relaxed), written),
                    None if written > limits.max_bytes => Err(io::Error::other(format!(
                        "more than {} bytes (--max-layer-size): refused",
                        limits.max_bytes
                    ))),
                    None => Ok(()),
                };
                copy(
                    &mut entry,
                    &mut file,
                    &mut self.buf,
                    &mut self.written,
                    &check,
                )
                .at("write", path())?;
                self.finish_fd(file.as_fd(), uid, gid, mode, &xattrs, Some(mtime), &comps)?;
            }
            tar::EntryType::Directory => {
                if !existing_dir {
                    rustix::fs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o700))
                        .at("create directory", path())?;
                }
                let fd = rustix::fs::openat(
                    &parent,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .at("open directory", path())?;
                self.finish_fd(fd.as_fd(), uid, gid, mode, &xattrs, None, &comps)?;
                self.dir_times.push((comps.clone(), mtime));
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(&comps, "symlink without a target"))?
                    .into_owned();
                // The target is stored as given: it is only ever followed
                // inside the container's root (or RESOLVE_IN_ROOT here).
                rustix::fs::symlinkat(target.as_slice(), &parent, name.as_str())
                    .at("create symlink", path())?;
                chown_nofollow(&parent, &name, uid, gid)
                    .map_err(|e| chown_err(e, uid, gid, path()))?;
                times_nofollow(&parent, &name, mtime).at("set times of", path())?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(&comps, "hard link without a target"))?
                    .into_owned();
                let tcomps = clean_path(&target);
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(unsafe_entry(&comps, "hard link to the layer root"));
                };
                // Security: the target's directory is resolved inside the
                // layer, and linkat without AT_SYMLINK_FOLLOW links a symlink
                // itself, never what it points to: no link to a host file.
                let tdir = self.dir(tparent)?;
                rustix::fs::linkat(
                    &tdir,
                    tname.as_str(),
                    &parent,
                    name.as_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| {
                    if e == rustix::io::Errno::NOENT {
                        unsafe_entry(
                            &comps,
                            format!("hard link target {} is not in this layer", tcomps.join("/")),
                        )
                    } else {
                        Error::Io {
                            op: "hard link",
                            path: path(),
                            source: e.into(),
                        }
                    }
                })?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo
                if self.opts.nodes =>
            {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                match rustix::fs::mknodat(&parent, name.as_str(), ft, mode, dev) {
                    Ok(()) => {}
                    // Rootless: a user namespace may not make device nodes
                    // (podman's rootless store skips them too); the
                    // runtime binds the host's standard devices anyway.
                    Err(rustix::io::Errno::PERM) if capsa_sys::process::in_user_namespace() => {
                        return Ok(())
                    }
                    Err(e) => return Err(e).at("create node", path()),
                }
                chown_nofollow(&parent, &name, uid, gid)
                    .map_err(|e| chown_err(e, uid, gid, path()))?;
                // mknod applied the umask: set the mode from the tar (the
                // node is ours and new, so chmodat cannot be redirected).
                rustix::fs::chmodat(&parent, name.as_str(), mode, AtFlags::empty())
                    .at("chmod", path())?;
                times_nofollow(&parent, &name, mtime).at("set times of", path())?;
            }
            // Global pax headers, GNU long names etc. are consumed by the
            // tar reader; anything else (sockets, unknown types) is skipped
            // as docker does.
            _ => {}
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_fd(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        uid: u32,
        gid: u32,
        mode: Mode,
        xattrs: &[(String, Vec<u8>)],
        mtime: Option<i64>,
        comps: &[String],
    ) -> Result<()> {
        let path = || self.dest.join(comps.join("/"));
        if uid != 0 || gid != 0 {
            rustix::fs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                .map_err(|e| chown_err(e, uid, gid, path()))?;
        }
        // After chown: chown clears set-id bits.
        rustix::fs::fchmod(fd, mode).at("chmod", path())?;
        for (k, v) in xattrs {
            match rustix::fs::fsetxattr(fd, k.as_str(), v, rustix::fs::XattrFlags::empty()) {
                Ok(()) => {}
                // Rootless: `trusted.` and some `security.` attributes
                // are the host root's; the file is kept without them.
                Err(rustix::io::Errno::PERM) if capsa_sys::process::in_user_namespace() => {}
                Err(e) => return Err(e).at("set xattr on", path()),
            }
        }
        if let Some(m) = mtime {
            rustix::fs::futimens(fd, &times(m)).at("set times of", path())?;
        }
        Ok(())
    }

    pub(super) fn finish_dirs(&mut self) -> Result<()> {
        // Deepest first, so setting a child does not disturb its parent.
        let mut dirs = std::mem::take(&mut self.dir_times);
        dirs.sort_by_key(|(c, _)| std::cmp::Reverse(c.len()));
        for (comps, mtime) in dirs {
            if let Ok(fd) = self.resolve(
                &comps,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
            ) {
                rustix::fs::futimens(&fd, &times(mtime))
                    .at("set times of", self.dest.join(comps.join("/")))?;
            }
        }
        Ok(())
    }
}

/// Copy `r` into `w`, counting into `written`, refused when `check`
/// says so (a sparse entry expands without reading the compressed
/// stream, so the layer's limits are applied to what is written too).
fn copy(
    r: &mut impl Read,
    w: &mut File,
    buf: &mut [u8],
    written: &mut u64,
    check: &dyn Fn(u64) -> io::Result<()>,
) -> io::Result<()> {
    use std::io::Write;
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        *written += n as u64;
        check(*written)?;
        w.write_all(&buf[..n])?;
    }
}

/// Remove `name` in `dir`, recursively when it is a directory; never
/// follows a symlink.
pub(crate) fn remove_at(dir: &impl AsFd, name: &str) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(rustix::io::Errno::ISDIR) | Err(rustix::io::Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for ent in rustix::fs::Dir::read_from(&sub)? {
        let ent = ent?;
        let n = ent.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            names.push(n);
        }
    }
    for n in names {
        remove_at(&sub, &n)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(())
}
