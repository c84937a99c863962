//! A container's upper directory (what its overlay changed) as a layer
//! tar: overlay's whiteouts (0/0 character devices) become `.wh.NAME`
//! entries, an opaque directory gets `.wh..wh..opq`, hard links stay
//! links, and `security.capability` travels as a PAX xattr. This is what
//! `capsa build` commits after each `RUN` and `COPY`.
//!
//! Security (the CVE-2018-15664 class, and "trust nothing that came out
//! of a container"): the upper directory was written by the container. It
//! is walked by fd, children opened `O_PATH|O_NOFOLLOW` relative to their
//! directory and reopened only as what `fstat` says they are; device
//! nodes and FIFOs become header-only entries and are never opened; a
//! file is read for exactly the size its header announces. A name the
//! container made that a layer would read as a whiteout (`.wh.*`) is
//! refused, so a build step cannot delete what it did not delete.

use crate::error::{invalid, IoContext, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What a diff holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Entries written (0: the step changed nothing).
    pub entries: usize,
    /// Bytes of file content.
    pub bytes: u64,
    /// What the upper directory has that the layer does not (bare mount
    /// points, sockets), relative: to remove before the directory itself
    /// becomes the layer's unpacked copy.
    pub left_out: Vec<PathBuf>,
    /// Whether the directory, less `left_out`, is what unpacking the layer
    /// gives: false when it holds what the tar does not carry (xattrs
    /// other than overlay's and file capabilities, device nodes and FIFOs
    /// whose xattrs are not looked at). The layer is then unpacked.
    pub adoptable: bool,
}

/// How deep a diff goes: deeper trees are refused, not walked (each level
/// holds a descriptor).
pub const MAX_DEPTH: usize = 256;

/// How to read the upper directory.
pub struct Options<'a> {
    /// Paths (relative, `/`-separated) the runtime may have made as mount
    /// points (`etc/resolv.conf`, `proc`): left out when they are empty
    /// and the image below does not have them.
    pub mount_points: &'a [String],
    /// Whether the image below has `path` (to tell a mount point the
    /// runtime made from one the step emptied).
    pub below: &'a dyn Fn(&str) -> bool,
    /// Remove overlay's private xattrs (origin, impure, nlink) as the
    /// walk goes, so the directory can serve as a lower layer itself. Only
    /// on an unmounted upper directory.
    pub strip: bool,
}

/// Overlay's own bookkeeping on an upper directory, meaningless (and
/// misleading) once the directory is a lower layer (`uuid` is on the
/// upper's top directory since Linux 6.6).
const PRIVATE: [&str; 8] = [
    "trusted.overlay.origin",
    "trusted.overlay.impure",
    "trusted.overlay.nlink",
    "trusted.overlay.uuid",
    "user.overlay.origin",
    "user.overlay.impure",
    "user.overlay.nlink",
    "user.overlay.uuid",
];

fn strip(fd: &OwnedFd) {
    for x in PRIVATE {
        let _ = rustix::fs::fremovexattr(fd, x);
    }
}

/// Whether every xattr on `fd` is one the layer carries or overlay's own.
///
/// Security: layers are shared by chain id. A directory adopted as a
/// layer's unpacked copy must hold exactly what its tar holds, or a step
/// that reproduces a known layer byte for byte could add (say) an ACL
/// that every later image with that layer would get.
fn carried(fd: &OwnedFd) -> bool {
    let mut buf = vec![0u8; 4096];
    let Ok(n) = rustix::fs::flistxattr(fd, &mut buf) else {
        return false;
    };
    buf[..n]
        .split(|b| *b == 0)
        .filter(|x| !x.is_empty())
        .all(|x| {
            let x = std::str::from_utf8(x).unwrap_or("");
            x == "security.capability" || x == opaque_xattr() || PRIVATE.contains(&x)
        })
}

/// The xattr that says a directory is opaque, in the namespace the
/// overlay was mounted with: `trusted.` for root, `user.` with
/// `userxattr` (rootless). The other namespace's is the container's own
/// (it may set `user.overlay.opaque` on root's overlay) and means nothing.
fn opaque_xattr() -> &'static str {
    if capsa_sys::process::in_user_namespace() {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    }
}
/// Overlay features whose upper directories are not a plain diff.
const UNSUPPORTED: [&str; 4] = [
    "trusted.overlay.redirect",
    "user.overlay.redirect",
    "trusted.overlay.metacopy",
    "user.overlay.metacopy",
];

fn xattr(fd: &OwnedFd, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::fgetxattr(fd, name, &mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

fn header(st: &rustix::fs::Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

struct Walk<'a, W: Write> {
    b: &'a mut tar::Builder<W>,
    opts: &'a Options<'a>,
    links: HashMap<(u64, u64), PathBuf>,
    skip: HashSet<&'a str>,
    out: Written,
}

/// Write the diff in `upper` to `b`.
pub fn write<W: Write>(
    b: &mut tar::Builder<W>,
    upper: &Path,
    opts: &Options<'_>,
) -> Result<Written> {
    let fd = rustix::fs::open(
        upper,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .at("open", upper)?;
    let mut w = Walk {
        b,
        opts,
        links: HashMap::new(),
        skip: opts.mount_points.iter().map(String::as_str).collect(),
        out: Written::default(),
    };
    w.out.adoptable = carried(&fd);
    if opts.strip {
        // The layer's own top directory, as an unpack makes it.
        strip(&fd);
        let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755));
        let _ = rustix::fs::fchown(
            &fd,
            Some(rustix::fs::Uid::ROOT),
            Some(rustix::fs::Gid::ROOT),
        );
    }
    w.dir(&fd, Path::new(""), 0)?;
    Ok(w.out)
}

impl<W: Write> Walk<'_, W> {
    fn dir(&mut self, fd: &OwnedFd, rel: &Path, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(invalid(
                rel.display().to_string(),
                format!("deeper than {MAX_DEPTH} directories"),
            ));
        }
        let mut names: Vec<OsString> = Vec::new();
        for e in rustix::fs::Dir::read_from(fd).at("read directory", rel)? {
            let e = e.at("read directory", rel)?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        names.sort();
        for n in names {
            let path = rel.join(&n);
            self.entry(fd, &n, &path, depth)?;
        }
        Ok(())
    }

    fn entry(&mut self, parent: &OwnedFd, name: &OsStr, path: &Path, depth: usize) -> Result<()> {
        // A name the container made that a layer reads as a whiteout is
        // refused first, whatever the entry is.
        if name.as_bytes().starts_with(b".wh.") {
            return Err(invalid(
                path.display().to_string(),
                "a build step made a file whose name marks a whiteout in a layer (.wh.*)",
            ));
        }
        let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW).at("stat", path)?;
        let kind = FileType::from_raw_mode(st.st_mode);
        // An overlay whiteout: the step deleted what the image had.
        if kind == FileType::CharacterDevice && st.st_rdev == 0 {
            let mut h = header(&st, tar::EntryType::Regular);
            h.set_mode(0o600);
            let mut wh = OsString::from(".wh.");
            wh.push(name);
            let wh = path.with_file_name(wh);
            self.b
                .append_data(&mut h, &wh, std::io::empty())
                .at("archive", path)?;
            self.out.entries += 1;
            return Ok(());
        }
        let shown = path.to_str().unwrap_or("");
        if self.skip.contains(shown)
            && !(self.opts.below)(shown)
            && self.empty(parent, name, kind)?
        {
            self.out.left_out.push(path.to_path_buf());
            return Ok(());
        }
        match kind {
            FileType::Directory => {
                let fd = rustix::fs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .at("open", path)?;
                self.examine(&fd, path)?;
                let mut h = header(&st, tar::EntryType::Directory);
                self.b
                    .append_data(&mut h, path, std::io::empty())
                    .at("archive", path)?;
                self.out.entries += 1;
                if xattr(&fd, opaque_xattr()).as_deref() == Some(b"y") {
                    let mut oh = header(&st, tar::EntryType::Regular);
                    oh.set_mode(0o600);
                    self.b
                        .append_data(&mut oh, path.join(".wh..wh..opq"), std::io::empty())
                        .at("archive", path)?;
                    self.out.entries += 1;
                }
                self.dir(&fd, path, depth + 1)
            }
            FileType::Symlink => {
                let target =
                    rustix::fs::readlinkat(parent, name, Vec::new()).at("read link", path)?;
                let mut h = header(&st, tar::EntryType::Symlink);
                h.set_mode(0o777);
                self.b
                    .append_link(&mut h, path, OsStr::from_bytes(target.as_bytes()))
                    .at("archive", path)?;
                self.out.entries += 1;
                Ok(())
            }
            FileType::RegularFile => self.file(parent, name, path, &st),
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let mut h = header(
                    &st,
                    match kind {
                        FileType::CharacterDevice => tar::EntryType::Char,
                        FileType::BlockDevice => tar::EntryType::Block,
                        _ => tar::EntryType::Fifo,
                    },
                );
                let _ = h.set_device_major(rustix::fs::major(st.st_rdev));
                let _ = h.set_device_minor(rustix::fs::minor(st.st_rdev));
                // Never opened, so their xattrs are not looked at: the
                // layer is unpacked rather than adopted.
                self.out.adoptable = false;
                self.b
                    .append_data(&mut h, path, std::io::empty())
                    .at("archive", path)?;
                self.out.entries += 1;
                Ok(())
            }
            // Sockets do not travel in layers.
            _ => {
                self.out.left_out.push(path.to_path_buf());
                Ok(())
            }
        }
    }

    /// A directory's or regular file's xattrs: overlay features whose
    /// upper directory is no plain diff are refused; anything the layer
    /// does not carry makes the directory unfit to adopt; overlay's own
    /// bookkeeping goes (with `strip`).
    fn examine(&mut self, fd: &OwnedFd, path: &Path) -> Result<()> {
        for x in UNSUPPORTED {
            if xattr(fd, x).is_some() {
                return Err(invalid(
                    path.display().to_string(),
                    format!("the overlay wrote {x}: mount overlay without redirect_dir and metacopy to build"),
                ));
            }
        }
        self.out.adoptable &= carried(fd);
        if self.opts.strip {
            strip(fd);
        }
        Ok(())
    }

    /// Whether `name` is an empty file or directory (a bare mount point).
    fn empty(&self, parent: &OwnedFd, name: &OsStr, kind: FileType) -> Result<bool> {
        Ok(match kind {
            FileType::RegularFile => {
                rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                    .at("stat", Path::new(name))?
                    .st_size
                    == 0
            }
            FileType::Directory => {
                let fd = rustix::fs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .at("open", Path::new(name))?;
                let mut n = 0;
                for e in rustix::fs::Dir::read_from(&fd).at("read directory", Path::new(name))? {
                    let e = e.at("read directory", Path::new(name))?;
                    if !matches!(e.file_name().to_bytes(), b"." | b"..") {
                        n += 1;
                    }
                }
                n == 0
            }
            _ => false,
        })
    }

    fn file(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        path: &Path,
        st: &rustix::fs::Stat,
    ) -> Result<()> {
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let mut h = header(st, tar::EntryType::Link);
                self.b
                    .append_link(&mut h, path, first)
                    .at("archive", path)?;
                self.out.entries += 1;
                return Ok(());
            }
            self.links.insert(key, path.to_path_buf());
        }
        let pfd = rustix::fs::openat(
            parent,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .at("open", path)?;
        let Some(fd) = crate::pack::reopen_plain(&pfd)? else {
            return Err(invalid(
                path.display().to_string(),
                "changed type while the diff was read",
            ));
        };
        let now = rustix::fs::fstat(&fd).at("stat", path)?;
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
            return Err(invalid(
                path.display().to_string(),
                "replaced while the diff was read",
            ));
        }
        self.examine(&fd, path)?;
        if let Some(cap) = xattr(&fd, "security.capability") {
            self.b
                .append_pax_extensions([("SCHILY.xattr.security.capability", cap.as_slice())])
                .at("archive", path)?;
        }
        let size = now.st_size as u64;
        let mut h = header(&now, tar::EntryType::Regular);
        h.set_size(size);
        let mut exact = std::io::Read::take(std::fs::File::from(fd), size);
        self.b
            .append_data(&mut h, path, &mut exact)
            .at("archive", path)?;
        if exact.limit() != 0 {
            return Err(invalid(
                path.display().to_string(),
                "shrank while the diff was read",
            ));
        }
        self.out.entries += 1;
        self.out.bytes += size;
        Ok(())
    }
}
