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
use crate::error::{IoContext, Result};
use rustix::fs::{Mode, OFlags};
use std::io::{self, BufRead, BufReader, Read};
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

pub fn limits() -> Limits {
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

mod entry;
mod meta;
#[cfg(test)]
use entry::opaque_xattr;
pub(crate) use entry::remove_at;
use entry::Unpacker;

#[cfg(test)]
mod tests;
