//! Unpacking a layer tar into a directory, safely and as an overlay lower
//! layer: whiteouts become overlay whiteouts, and nothing the tar says can
//! make us write outside the directory.
//!
//! Security: every path is resolved with `openat2(RESOLVE_IN_ROOT)` from the
//! layer directory, and the last component is created with `*at` calls that
//! never follow a symlink. `..`, absolute names, symlink chains and hard
//! links all stay inside, as if the layer directory were `/` (which is
//! also how docker reads such names). This answers the tar-slip class
//! (CVE-2018-15664-like races are moot: the directory is ours alone until
//! it is renamed into the store).

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::process::{Gid, Uid};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc;

/// How a layer blob is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detect from magic bytes (media types lie; bytes do not).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// A reader that yields the uncompressed bytes of `r`.
pub fn decompress<'a>(r: impl Read + Send + 'a) -> io::Result<Box<dyn Read + Send + 'a>> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    let head = br.fill_buf()?.to_vec();
    Ok(match Compression::detect(&head) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
        Compression::None => Box::new(br),
    })
}

/// What an unpack found.
#[derive(Debug, Clone, Default)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar: the layer's diff id.
    pub diff_id: Option<Digest>,
    /// Uncompressed size.
    pub size: u64,
    /// Entries written.
    pub entries: u64,
}

const CHUNK: usize = 1 << 20;

/// What a layer may unpack to: at most `max_bytes`, and past `floor`
/// bytes at most `max_ratio` times what was downloaded (a real layer
/// inflates a few times; a decompression bomb, thousands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_ratio: u64,
    pub floor: u64,
}

impl Limits {
    /// 32 GiB, and 100x past the first 64 MiB.
    pub const DEFAULT: Limits = Limits {
        max_bytes: 32 << 30,
        max_ratio: 100,
        floor: 64 << 20,
    };

    fn check(&self, compressed: u64, unpacked: u64) -> io::Result<()> {
        if unpacked > self.max_bytes {
            return Err(io::Error::other(format!(
                "the layer unpacks to more than {} bytes (--max-layer-size): refused",
                self.max_bytes
            )));
        }
        if unpacked > self.floor && unpacked > compressed.saturating_mul(self.max_ratio) {
            return Err(io::Error::other(format!(
                "the layer inflates more than {}x ({compressed} bytes to over {unpacked}): refused as a decompression bomb (--max-inflate-ratio)",
                self.max_ratio
            )));
        }
        Ok(())
    }
}

static LIMITS: std::sync::OnceLock<Limits> = std::sync::OnceLock::new();

/// Set the limits for this process (the command line does, from its
/// flags); [`Limits::DEFAULT`] otherwise.
pub fn set_limits(l: Limits) {
    let _ = LIMITS.set(l);
}

fn limits() -> Limits {
    *LIMITS.get().unwrap_or(&Limits::DEFAULT)
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads chunks that another thread decompressed: inflating and writing
/// files then use both cores.
struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(c)) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Unpack a (possibly compressed) layer tar from `blob` into `dest`, an
/// empty directory that only we use. Returns the diff id it hashed.
pub fn unpack_layer(blob: impl Read + Send, dest: &Path) -> Result<Unpacked> {
    let limits = limits();
    let compressed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let blob = Counting {
        inner: blob,
        count: compressed.clone(),
    };
    let counter = compressed.clone();
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
        s.spawn(move || {
            let mut unpacked = 0u64;
            let mut r = match decompress(blob) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            loop {
                let mut chunk = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    match r.read(&mut chunk[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                if filled == 0 {
                    return;
                }
                // Security: a decompression bomb stops here, before it
                // fills the disk.
                unpacked += filled as u64;
                let so_far = compressed.load(std::sync::atomic::Ordering::Relaxed);
                if let Err(e) = limits.check(so_far, unpacked) {
                    let _ = tx.send(Err(e));
                    return;
                }
                chunk.truncate(filled);
                if tx.send(Ok(chunk)).is_err() {
                    return; // the unpacker stopped on an error
                }
            }
        });
        let reader = ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        };
        unpack_counted(reader, dest, Options::LAYER, Some(counter))
    })
}

/// How a tar is unpacked: as an image layer, or as a copy (`capsa cp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `.wh.` entries are whiteouts (image layers only: a container's own
    /// file named `.wh.x` is just a file).
    pub whiteouts: bool,
    /// Every entry owned by these ids instead of the tar's.
    pub owner: Option<(u32, u32)>,
    /// Set-user-id and set-group-id bits kept.
    pub setid: bool,
    /// Device nodes and FIFOs made (skipped otherwise, as `docker cp`).
    pub nodes: bool,
    /// An entry whose name has a `..` or empty component is refused
    /// instead of cleaned.
    pub strict_names: bool,
    /// Extended attributes (file capabilities, overlay markers) applied.
    pub xattrs: bool,
    /// Every entry must be this name or under it (a copy's own top name):
    /// a stream that says otherwise was not made by us, and is refused.
    pub top: Option<String>,
}

impl Options {
    /// An image layer: everything the tar says, inside the directory.
    pub const LAYER: Options = Options {
        whiteouts: true,
        owner: None,
        setid: true,
        nodes: true,
        strict_names: false,
        xattrs: true,
        top: None,
    };
}

/// Unpack an uncompressed tar stream into `dest`, as an image layer.
pub fn unpack_tar(reader: impl Read, dest: &Path) -> Result<Unpacked> {
    unpack_tar_with(reader, dest, Options::LAYER)
}

/// Unpack an uncompressed tar stream into `dest`, as `opts` says.
pub fn unpack_tar_with(reader: impl Read, dest: &Path, opts: Options) -> Result<Unpacked> {
    unpack_counted(reader, dest, opts, None)
}

fn unpack_counted(
    reader: impl Read,
    dest: &Path,
    opts: Options,
    compressed: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
) -> Result<Unpacked> {
    let root = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .at("open layer directory", dest)?;
    let mut hashing = HashingReader::new(reader);
    let mut u = Unpacker {
        root,
        dest,
        cache: None,
        dir_times: Vec::new(),
        buf: vec![0u8; 256 * 1024],
        opts,
        written: 0,
        compressed,
    };
    let mut entries = 0u64;
    {
        let mut archive = tar::Archive::new(&mut hashing);
        for entry in archive.entries().at("read tar in", dest)? {
            let entry = entry.at("read tar entry in", dest)?;
            u.entry(entry)?;
            entries += 1;
        }
    }
    u.finish_dirs()?;
    let (diff_id, size) = hashing.finish().at("read tar in", dest)?;
    Ok(Unpacked {
        diff_id: Some(diff_id),
        size,
        entries,
    })
}

/// A tar name made relative and clean: `..` cannot climb above the root,
/// as `filepath.Clean("/" + name)` does for docker.
pub fn clean_path(raw: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            p => out.push(String::from_utf8_lossy(p).into_owned()),
        }
    }
    out
}

struct Unpacker<'a> {
    root: OwnedFd,
    dest: &'a Path,
    /// The last parent directory opened, by its clean path: tar entries of
    /// one directory come together, so this saves most lookups.
    cache: Option<(Vec<String>, OwnedFd)>,
    /// Directory mtimes are set last: creating children changes them.
    dir_times: Vec<(Vec<String>, i64)>,
    buf: Vec<u8>,
    opts: Options,
    /// Bytes of file content written so far.
    written: u64,
    /// For a layer: the compressed bytes read so far.
    compressed: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";

fn unsafe_entry(entry: &[String], reason: impl Into<String>) -> Error {
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

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
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
                    OVERLAY_OPAQUE,
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
                chown_nofollow(&parent, &name, uid, gid).at("chown", path())?;
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
                rustix::fs::mknodat(&parent, name.as_str(), ft, mode, dev)
                    .at("create node", path())?;
                chown_nofollow(&parent, &name, uid, gid).at("chown", path())?;
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
                .at("chown", path())?;
        }
        // After chown: chown clears set-id bits.
        rustix::fs::fchmod(fd, mode).at("chmod", path())?;
        for (k, v) in xattrs {
            rustix::fs::fsetxattr(fd, k.as_str(), v, rustix::fs::XattrFlags::empty())
                .at("set xattr on", path())?;
        }
        if let Some(m) = mtime {
            rustix::fs::futimens(fd, &times(m)).at("set times of", path())?;
        }
        Ok(())
    }

    fn finish_dirs(&mut self) -> Result<()> {
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

/// lchown relative to a directory fd.
fn chown_nofollow(dir: &OwnedFd, name: &str, uid: u32, gid: u32) -> rustix::io::Result<()> {
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// lutimes relative to a directory fd.
fn times_nofollow(dir: &OwnedFd, name: &str, mtime: i64) -> rustix::io::Result<()> {
    rustix::fs::utimensat(dir, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// xattrs from pax `SCHILY.xattr.*` records. Overlay's own `trusted.overlay.*`
/// attributes are refused: a layer must not forge redirects or metacopy
/// markers; whiteouts are the tar's own business.
fn xattrs_of<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    comps: &[String],
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts {
            let ext = ext.map_err(|e| unsafe_entry(comps, format!("bad pax header: {e}")))?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if name.starts_with("trusted.overlay.") {
                    return Err(unsafe_entry(comps, format!("overlay attribute {name}")));
                }
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests;
