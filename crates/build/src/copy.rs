//! `COPY` and `ADD`: sources from the context (the ignore rules applied,
//! globs expanded), another stage or image (`--from`), or a heredoc;
//! hashed for the cache key (names, modes, owners and bytes; times left
//! out); copied into an overlay snapshot of the stage through the in-root
//! handle, whose upper directory becomes the layer.
//!
//! Security: a source is opened with `RESOLVE_BENEATH` in the context, so
//! `../x`, an absolute link or a link that climbs out is an error naming
//! it, never a host file; inside a copied directory, links are copied as
//! links. The destination is resolved in the stage's root
//! (`RESOLVE_IN_ROOT`), so an image's link cannot send a copy to the
//! host; the stream is unpacked as a copy (no whiteouts, no device nodes,
//! names checked).

use crate::containerfile::{Copy, Instruction};
use crate::ignore::{self, Ignore};
use crate::stage::{Build, State};
use crate::Result;
use capsa_image::commit::LayerBlob;
use capsa_image::pack::{add_fd_with, reopen_plain, Keep, Specials};
use capsa_sys::resolve::Symlinks;
use capsa_sys::root::Root;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Where a source comes from.
enum From {
    Context(PathBuf),
    /// A stage's or an image's layers.
    Layers(Vec<capsa_image::manifest::Layer>),
}

enum Item {
    /// A path in the context or the `--from` root, cleaned.
    Path(String),
    Heredoc {
        name: String,
        body: String,
    },
    /// `ADD URL`: fetched into the step's work directory, named by the
    /// URL's last path component.
    Url {
        name: String,
        file: PathBuf,
    },
}

/// A `COPY`/`ADD` with its sources found and hashed.
pub(crate) struct Prepared {
    from: From,
    items: Vec<Item>,
    dest: String,
    into_dir: bool,
    add: bool,
    chown: Option<String>,
    chmod: Option<u32>,
    hash: capsa_image::Digest,
    text: String,
}

impl Prepared {
    /// The step as its cache key sees it.
    pub fn describe(&self) -> String {
        format!("{} {}", self.text, self.hash)
    }
}

/// Header edits: owners (reset to root, or `--chown`), `--chmod`, and for
/// hashing no times; ignored context paths left out.
struct Edit<'a> {
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
    zero_time: bool,
    /// The ignore rules, the source's path in the context, and the tar
    /// name that path has in the stream.
    ignore: Option<(&'a Ignore, &'a str, &'a str)>,
}

impl Edit<'_> {
    fn apply(&self, name: &str, h: &mut tar::Header) -> Keep {
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

struct HashWriter(capsa_image::digest::Hasher);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Open `rel` beneath `root` (a link out is an error) as a file or
/// directory.
fn open_source(root: &Root, rel: &str, links: Symlinks) -> std::result::Result<OwnedFd, String> {
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

/// The paths in `root` a glob matches, walked level by level.
fn glob(root: &Path, pattern: &[String], ignore: &Ignore) -> Vec<String> {
    let mut found = vec![String::new()];
    for (i, p) in pattern.iter().enumerate() {
        let mut next = Vec::new();
        for base in &found {
            let dir = root.join(base);
            if !ignore::is_glob(p) {
                let cand = if base.is_empty() {
                    p.clone()
                } else {
                    format!("{base}/{p}")
                };
                if std::fs::symlink_metadata(root.join(&cand)).is_ok() {
                    next.push(cand);
                }
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| ignore::component(p, n))
                .collect();
            names.sort();
            for n in names {
                next.push(if base.is_empty() {
                    n
                } else {
                    format!("{base}/{n}")
                });
            }
        }
        found = next;
        if i + 1 == pattern.len() {
            found.retain(|f| !ignore.ignored(f));
        }
    }
    found
}

pub(crate) fn prepare(
    b: &Build<'_>,
    st: &State,
    ins: &Instruction,
    c: &Copy,
    done: &[Option<State>],
    stage: usize,
) -> Result<Prepared> {
    let add = ins.keyword == "ADD";
    let word = |w: &str| {
        crate::expand::word(w, b.file.escape, &|n| st.lookup(n)).map_err(|r| b.fail(ins, r))
    };
    let dest = word(&c.dest)?;
    let into_dir = dest.ends_with('/') || c.sources.len() > 1;
    let workdir = st
        .config
        .config
        .working_dir
        .clone()
        .unwrap_or_else(|| "/".into());
    let dest = if dest.starts_with('/') {
        dest
    } else {
        format!("{workdir}/{dest}")
    };
    let dest = format!("/{}", ignore::clean(&dest).join("/"));
    let chmod = c
        .chmod
        .as_deref()
        .map(|m| u32::from_str_radix(m, 8).ok().filter(|m| *m <= 0o7777))
        .map(|m| {
            m.ok_or_else(|| {
                b.fail(
                    ins,
                    format!(
                        "--chmod={}: not an octal mode",
                        c.chmod.as_deref().unwrap_or("")
                    ),
                )
            })
        })
        .transpose()?;
    let mut hasher = tar::Builder::new(HashWriter(capsa_image::digest::Hasher::new()));
    let mut items = Vec::new();
    let from = match &c.from {
        None => From::Context(b.context.clone()),
        Some(f) => {
            let f = word(f)?;
            let src = match b.file.stages[..stage].iter().position(|s| {
                s.alias() == Some(f.to_ascii_lowercase().as_str()) || s.index.to_string() == f
            }) {
                Some(j) => done[j]
                    .clone()
                    .ok_or_else(|| b.fail(ins, format!("--from={f}: that stage was not built")))?,
                // Not a stage before this one: an image.
                None => b
                    .image(&f)
                    .map_err(|e| b.fail(ins, format!("--from={f}: {e}")))?,
            };
            let _ = hasher.get_mut().write_all(src.key.as_str().as_bytes());
            From::Layers(src.layers())
        }
    };
    let mut heredocs = c.heredocs.iter();
    let ctx_root = match &from {
        From::Context(p) => {
            Some(Root::open(p).map_err(|e| b.fail(ins, format!("{}: {}", p.display(), e.desc())))?)
        }
        From::Layers(_) => None,
    };
    for s in &c.sources {
        if crate::containerfile::heredoc_marker(s).is_some() && s.starts_with("<<") {
            let h = heredocs
                .next()
                .ok_or_else(|| b.fail(ins, format!("{s}: no heredoc body")))?;
            let body = if h.expand {
                word(&format!("\"{}\"", h.body.replace('"', "\\\"")))?
            } else {
                h.body.clone()
            };
            let _ = hasher
                .get_mut()
                .write_all(format!("heredoc {}\n{body}", h.name).as_bytes());
            items.push(Item::Heredoc {
                name: h.name.clone(),
                body,
            });
            continue;
        }
        let s = word(s)?;
        if add && (s.starts_with("http://") || s.starts_with("https://")) {
            let (name, file, digest) =
                fetch(b, &s).map_err(|r| b.fail(ins, format!("{s}: {r}")))?;
            let _ = hasher
                .get_mut()
                .write_all(format!("url {s} {digest}\n").as_bytes());
            items.push(Item::Url { name, file });
            continue;
        }
        let clean = ignore::clean(&s);
        if climbs_out(&s) {
            return Err(b.fail(ins, format!("{s}: outside the context")));
        }
        let paths = match (&from, ignore::is_glob(&s)) {
            (From::Context(root), true) => {
                let m = glob(root, &clean, &b.ignore);
                if m.is_empty() {
                    return Err(b.fail(ins, format!("{s}: no file in the context matches")));
                }
                m
            }
            _ => vec![clean.join("/")],
        };
        for p in paths {
            if let Some(root) = &ctx_root {
                if !p.is_empty() && b.ignore.ignored(&p) {
                    return Err(b.fail(
                        ins,
                        format!("{s}: left out of the context by its ignore file"),
                    ));
                }
                let fd = open_source(root, &p, Symlinks::Beneath)
                    .map_err(|r| b.fail(ins, format!("{s}: {r}")))?;
                let top = format!("./{p}");
                let edit = Edit {
                    owner: Some((0, 0)),
                    chmod,
                    zero_time: true,
                    ignore: Some((&b.ignore, &p, &top)),
                };
                add_fd_with(&mut hasher, &fd, &top, Specials::Skip, &|n, h| {
                    edit.apply(n, h)
                })
                .map_err(|e| b.fail(ins, format!("{s}: {e}")))?;
            } else {
                let _ = hasher.get_mut().write_all(format!("path {p}\n").as_bytes());
            }
            items.push(Item::Path(p));
        }
    }
    let _ = hasher
        .get_mut()
        .write_all(format!("{:?} {:?} {into_dir}", c.chown, chmod).as_bytes());
    let hash = hasher.into_inner().map_err(|e| b.fail(ins, e))?.0.finish();
    Ok(Prepared {
        from,
        items,
        dest,
        into_dir,
        add,
        chown: c.chown.as_ref().map(|w| word(w)).transpose()?,
        chmod,
        hash,
        text: ins.to_string(),
    })
}

/// A mounted overlay for a step, unmounted and removed when dropped.
pub(crate) struct Work {
    pub dir: PathBuf,
    pub mounts: Vec<PathBuf>,
}

impl Work {
    pub fn new(b: &Build<'_>) -> Result<Work> {
        let base = b.engine.root.join("build-work");
        std::fs::create_dir_all(&base)
            .map_err(|e| crate::invalid(base.display().to_string(), e))?;
        let mut n = [0u8; 8];
        let _ = rustix::rand::getrandom(&mut n, rustix::rand::GetRandomFlags::empty());
        let dir = base.join(n.iter().map(|b| format!("{b:02x}")).collect::<String>());
        std::fs::create_dir(&dir).map_err(|e| crate::invalid(dir.display().to_string(), e))?;
        Ok(Work {
            dir,
            mounts: Vec::new(),
        })
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
}

impl Drop for Work {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = capsa_image::snapshot::unmount(m);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn apply(
    b: &Build<'_>,
    st: &State,
    ins: &Instruction,
    p: Prepared,
) -> Result<Option<LayerBlob>> {
    let store = &b.engine.images;
    let mut work = Work::new(b)?;
    let lowers = work.lowers(b, &st.layers())?;
    let snap = capsa_image::snapshot::Snapshot::create(
        &work.dir,
        &lowers,
        capsa_image::snapshot::OverlayApi::Auto,
        None,
        capsa_engine::create::fuse_choice(),
    )?;
    work.mounts.push(snap.rootfs.clone());
    let fail = |e: &dyn std::fmt::Display| b.fail(ins, e);
    let root = Root::open(&snap.rootfs).map_err(|e| fail(&e.desc()))?;
    let owner = match &p.chown {
        Some(c) => Some(chown(&snap.rootfs, c).map_err(|e| fail(&e))?),
        None => None,
    };
    // The source root: the context, or the --from stage mounted read-only.
    let (src_root, links, keep_owner) = match &p.from {
        From::Context(dir) => (
            Root::open(dir).map_err(|e| fail(&e.desc()))?,
            Symlinks::Beneath,
            false,
        ),
        From::Layers(layers) => {
            let lowers = work.lowers(b, layers)?;
            let at = work.dir.join("from");
            std::fs::create_dir_all(&at).map_err(|e| fail(&e))?;
            capsa_image::snapshot::mount_overlay(
                &lowers,
                None,
                &at,
                capsa_image::snapshot::OverlayApi::Auto,
            )?;
            work.mounts.push(at.clone());
            (
                Root::open(&at).map_err(|e| fail(&e.desc()))?,
                Symlinks::InRoot,
                true,
            )
        }
    };
    // Into a directory when the destination says so, or is one already.
    let dest_is_dir = p.into_dir
        || root
            .open_at(
                Path::new(&p.dest),
                libc::O_PATH | libc::O_DIRECTORY,
                Symlinks::InRoot,
            )
            .is_ok();
    let ctx_ignore = matches!(p.from, From::Context(_)).then_some(&b.ignore);
    for item in &p.items {
        match item {
            Item::Heredoc { name, body } => {
                let (dir, fname) =
                    target(&root, &p.dest, dest_is_dir, name).map_err(|e| fail(&e))?;
                let data = body.clone().into_bytes();
                let (u, g) = owner.unwrap_or((0, 0));
                let mode = p.chmod.unwrap_or(0o644);
                let top = fname.clone();
                stream(&dir, &top, move |t| {
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                    h.set_mode(mode);
                    h.set_uid(u as u64);
                    h.set_gid(g as u64);
                    h.set_mtime(capsa_engine::manage::now_secs());
                    t.append_data(&mut h, fname.as_str(), data.as_slice())
                        .map_err(|e| capsa_engine::Error::Io {
                            op: "write",
                            path: PathBuf::from("the copy's tar stream"),
                            source: e,
                        })
                })
                .map_err(|e| fail(&e))?;
            }
            Item::Url { name, file } => {
                let (dir, fname) =
                    target(&root, &p.dest, dest_is_dir, name).map_err(|e| fail(&e))?;
                let f = std::fs::File::open(file).map_err(|e| fail(&e))?;
                let len = f.metadata().map_err(|e| fail(&e))?.len();
                let (u, g) = owner.unwrap_or((0, 0));
                let mode = p.chmod.unwrap_or(0o600);
                let top = fname.clone();
                stream(&dir, &top, move |t| {
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(len);
                    h.set_mode(mode);
                    h.set_uid(u as u64);
                    h.set_gid(g as u64);
                    h.set_mtime(capsa_engine::manage::now_secs());
                    t.append_data(&mut h, fname.as_str(), f)
                        .map_err(|e| capsa_engine::Error::Io {
                            op: "write",
                            path: PathBuf::from("the copy's tar stream"),
                            source: e,
                        })
                })
                .map_err(|e| fail(&e))?;
            }
            Item::Path(rel) => {
                let src =
                    open_source(&src_root, rel, links).map_err(|r| fail(&format!("{rel}: {r}")))?;
                let is_dir = rustix::fs::fstat(&src)
                    .map(|s| {
                        rustix::fs::FileType::from_raw_mode(s.st_mode)
                            == rustix::fs::FileType::Directory
                    })
                    .unwrap_or(false);
                let edit = Edit {
                    owner: owner.or(if keep_owner { None } else { Some((0, 0)) }),
                    chmod: p.chmod,
                    zero_time: false,
                    ignore: ctx_ignore.map(|i| (i, rel.as_str(), ".")),
                };
                if is_dir {
                    let dir = made_dir(&root, &p.dest, owner).map_err(|e| fail(&e))?;
                    stream(&dir, ".", move |t| {
                        Ok(add_fd_with(t, &src, ".", Specials::Skip, &|n, h| {
                            edit.apply(n, h)
                        })?)
                    })
                    .map_err(|e| fail(&e))?;
                    continue;
                }
                if p.add && is_archive(&src) {
                    let dir = root
                        .mkdir_all(Path::new(&p.dest))
                        .map_err(|e| fail(&format!("{}: {}", p.dest, e.desc())))?;
                    extract(&dir, &src).map_err(|e| fail(&format!("{rel}: {e}")))?;
                    continue;
                }
                let base = rel.rsplit('/').next().unwrap_or(rel).to_string();
                let (dir, fname) =
                    target(&root, &p.dest, dest_is_dir, &base).map_err(|e| fail(&e))?;
                let name = fname.clone();
                let edit = Edit {
                    ignore: None,
                    ..edit
                };
                stream(&dir, &fname, move |t| {
                    Ok(add_fd_with(t, &src, &name, Specials::Skip, &|n, h| {
                        edit.apply(n, h)
                    })?)
                })
                .map_err(|e| fail(&e))?;
            }
        }
    }
    let upper = work.dir.join("upper");
    let layer = capsa_image::commit::layer(
        store,
        &upper,
        &capsa_image::diff::Options {
            mount_points: &[],
            below: &|_| true,
        },
    )?;
    Ok(layer.map(|(l, _)| l))
}

/// `ADD URL`: the body into a file of the build's own, its name and
/// digest. Plain HTTP(S) from the host, as docker's daemon fetches.
fn fetch(
    b: &Build<'_>,
    url: &str,
) -> std::result::Result<(String, PathBuf, capsa_image::Digest), String> {
    let name = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .unwrap_or("index.html")
        .to_string();
    let resp = ureq::get(url).call().map_err(|e| e.to_string())?;
    let dir = b.engine.root.join("build-work");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join(format!(".url-{}", std::process::id()));
    let mut f = std::fs::File::create(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut r = capsa_image::digest::HashingReader::new(resp.into_reader());
    std::io::copy(&mut r, &mut f).map_err(|e| e.to_string())?;
    let (digest, _) = r.finish().map_err(|e| e.to_string())?;
    let kept = dir.join(format!(".url-{}", digest.hex()));
    std::fs::rename(&file, &kept).map_err(|e| e.to_string())?;
    b.fetched.borrow_mut().push(kept.clone());
    Ok((name, kept, digest))
}

/// Whether a path climbs above its top with `..`.
fn climbs_out(p: &str) -> bool {
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

/// The destination directory, made when missing; one made now belongs
/// to `--chown`'s owner, as BuildKit and buildah make it.
fn made_dir(
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
fn target(
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
fn stream(
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

/// Whether a file reads as a tar archive (plain or compressed), which
/// `ADD` unpacks.
fn is_archive(fd: &OwnedFd) -> bool {
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
fn extract(dir: &OwnedFd, src: &OwnedFd) -> std::result::Result<(), String> {
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
fn chown(rootfs: &Path, spec: &str) -> std::result::Result<(u32, u32), String> {
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
