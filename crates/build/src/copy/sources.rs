//! Where `COPY` and `ADD` read: the context (through its one handle,
//! `RESOLVE_BENEATH`), a stage or image, a heredoc, a URL; and how their
//! content is hashed for the cache key.

use crate::ignore::{self, Ignore};
use crate::stage::Build;
use capsa_image::pack::{add_fd_with, reopen_plain, Keep, Specials};
use capsa_sys::resolve::Symlinks;
use capsa_sys::root::Root;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Where a step's sources come from.
pub(super) enum From {
    Context,
    /// A stage's or an image's layers.
    Layers(Vec<capsa_image::manifest::Layer>),
}

/// One source.
pub(super) enum Item {
    /// A path in the context or the `--from` root, cleaned.
    Path(String),
    Heredoc {
        name: String,
        body: String,
    },
    /// `ADD URL`: fetched into the build's own directory, named by the
    /// URL's last path component.
    Url {
        name: String,
        file: PathBuf,
    },
}

/// Header edits: owners (reset to root, or `--chown`), `--chmod`, and for
/// hashing no times; ignored context paths left out.
pub(super) struct Edit<'a> {
    pub owner: Option<(u32, u32)>,
    pub chmod: Option<u32>,
    pub zero_time: bool,
    /// The ignore rules, the source's path in the context, and the tar
    /// name that path has in the stream.
    pub ignore: Option<(&'a Ignore, &'a str, &'a str)>,
}

impl Edit<'_> {
    pub fn apply(&self, name: &str, h: &mut tar::Header) -> Keep {
        if let Some((ig, base, top)) = self.ignore {
            let under = name.strip_prefix(top).unwrap_or("").trim_start_matches('/');
            let rel = match (base.is_empty(), under.is_empty()) {
                (_, true) => base.to_string(),
                (true, false) => under.to_string(),
                (false, false) => format!("{base}/{under}"),
            };
            if !rel.is_empty() && ig.ignored(&rel) {
                let dir = h.entry_type() == tar::EntryType::Directory;
                return if dir && ig.may_include_under(&rel) {
                    Keep::Children
                } else {
                    Keep::No
                };
            }
        }
        if let Some((u, g)) = self.owner {
            h.set_uid(u as u64);
            h.set_gid(g as u64);
        }
        if let Some(m) = self.chmod {
            h.set_mode(m);
        }
        if self.zero_time {
            h.set_mtime(0);
        }
        Keep::Yes
    }
}

/// A hasher that tar streams and framed parts are written to.
pub(super) struct HashWriter(pub capsa_image::digest::Hasher);

impl HashWriter {
    /// One part, length first, so no two sequences of parts hash alike.
    pub fn part(&mut self, bytes: &[u8]) {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }
}

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Open `rel` in `root` as a file or directory: in the context
/// (`Beneath`), a link out is an error; in a stage's root (`InRoot`),
/// links stay in it.
pub(super) fn open_source(
    root: &Root,
    rel: &str,
    links: Symlinks,
) -> std::result::Result<OwnedFd, String> {
    let fd = root
        .open_at(Path::new(rel), libc::O_PATH, links)
        .map_err(|e| match e {
            capsa_sys::Errno::EXDEV => "leads out of the context (a link or ..)".to_string(),
            capsa_sys::Errno::ENOENT => "no such file in the context".to_string(),
            e => e.desc().to_string(),
        })?;
    reopen_plain(&fd)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "not a regular file or a directory".to_string())
}

/// The names in directory `rel` of the context (through its handle).
fn names_in(ctx: &Root, rel: &str) -> Vec<String> {
    let Ok(fd) = ctx.open_at(
        Path::new(if rel.is_empty() { "." } else { rel }),
        libc::O_RDONLY | libc::O_DIRECTORY,
        Symlinks::Beneath,
    ) else {
        return Vec::new();
    };
    let Ok(dir) = rustix::fs::Dir::read_from(&fd) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().ok().map(str::to_string))
        .filter(|n| n != "." && n != "..")
        .collect();
    names.sort();
    names
}

/// The context paths a glob matches, walked level by level through the
/// context's handle; ignored ones left out.
pub(super) fn glob(ctx: &Root, pattern: &[String], ignore: &Ignore) -> Vec<String> {
    let join = |base: &str, n: &str| {
        if base.is_empty() {
            n.to_string()
        } else {
            format!("{base}/{n}")
        }
    };
    let mut found = vec![String::new()];
    for p in pattern {
        let mut next = Vec::new();
        for base in &found {
            if ignore::is_glob(p) {
                for n in names_in(ctx, base) {
                    if ignore::component(p, &n) {
                        next.push(join(base, &n));
                    }
                }
            } else {
                let cand = join(base, p);
                if ctx.path_fd(Path::new(&cand), Symlinks::Beneath).is_ok() {
                    next.push(cand);
                }
            }
        }
        found = next;
    }
    found.retain(|f| !ignore.ignored(f));
    found
}

/// Whether a path climbs above its top with `..`.
pub(super) fn climbs_out(p: &str) -> bool {
    let mut depth = 0i32;
    for c in p.split('/') {
        match c {
            ".." => depth -= 1,
            "" | "." => {}
            _ => depth += 1,
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// Whether a context path is left out, as written or where its links
/// lead (a link to an ignored directory does not take it in).
pub(super) fn ignored(b: &Build<'_>, p: &str) -> bool {
    if p.is_empty() {
        return false;
    }
    if b.ignore.ignored(p) {
        return true;
    }
    b.ctx
        .resolve(Path::new(p))
        .map(|r| {
            let r = r.display().to_string();
            let r = r.trim_start_matches('/');
            !r.is_empty() && b.ignore.ignored(r)
        })
        .unwrap_or(false)
}

/// Hash the context paths as they would be copied (names, modes, owners,
/// bytes; no times) into `h`.
pub(super) fn hash_context(
    b: &Build<'_>,
    paths: &[&str],
    chmod: Option<u32>,
    h: &mut HashWriter,
) -> std::result::Result<(), String> {
    for p in paths {
        let fd = open_source(&b.ctx, p, Symlinks::Beneath).map_err(|r| format!("{p}: {r}"))?;
        let top = format!("./{p}");
        let edit = Edit {
            owner: Some((0, 0)),
            chmod,
            zero_time: true,
            ignore: Some((&b.ignore, p, &top)),
        };
        h.part(top.as_bytes());
        let mut t = tar::Builder::new(&mut *h);
        add_fd_with(&mut t, &fd, &top, Specials::Skip, &|n, hd| {
            edit.apply(n, hd)
        })
        .map_err(|e| format!("{p}: {e}"))?;
        t.finish().map_err(|e| format!("{p}: {e}"))?;
    }
    Ok(())
}

/// The most a URL's body may be: as much as one layer may unpack to.
fn url_limit() -> u64 {
    capsa_image::unpack::limits().max_bytes
}

/// `ADD URL`: the body into a file in the build's own directory; its
/// name and digest. Fetched from the host, as docker's daemon fetches,
/// with timeouts, at most five redirects and a size limit; refused when
/// the build has no network.
pub(super) fn fetch(
    b: &Build<'_>,
    url: &str,
) -> std::result::Result<(String, PathBuf, capsa_image::Digest), String> {
    if b.opts.network.as_deref() == Some("none") {
        return Err("the build has --network none".into());
    }
    let name = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .unwrap_or("index.html")
        .to_string();
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(std::time::Duration::from_secs(30))
        .timeout_read(std::time::Duration::from_secs(60))
        .redirects(5)
        .build();
    let resp = agent.get(url).call().map_err(|e| e.to_string())?;
    let dir = b.scratch()?;
    // A name of this process's own, made here and nowhere else: a fork
    // building another stage shares the directory.
    let mut n = [0u8; 8];
    let _ = rustix::rand::getrandom(&mut n, rustix::rand::GetRandomFlags::empty());
    let file = dir.join(format!(
        "url-{}-{}",
        std::process::id(),
        n.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let mut f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&file)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let limit = url_limit();
    let mut r = capsa_image::digest::HashingReader::new(std::io::Read::take(
        resp.into_reader(),
        limit.saturating_add(1),
    ));
    let n = std::io::copy(&mut r, &mut f).map_err(|e| e.to_string())?;
    if n > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    let (digest, _) = r.finish().map_err(|e| e.to_string())?;
    b.fetched.borrow_mut().push(file.clone());
    Ok((name, file, digest))
}
