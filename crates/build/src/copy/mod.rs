//! `COPY` and `ADD`: sources from the context (the ignore rules applied,
//! globs expanded), another stage or image (`--from`), a heredoc or a URL;
//! hashed for the cache key (names, modes, owners and bytes; times left
//! out); copied into an overlay snapshot of the stage through the in-root
//! handle, whose upper directory becomes the layer.
//!
//! Security: a context source is opened through the context's one handle
//! with `RESOLVE_BENEATH`, so `../x`, an absolute link or a link that
//! climbs out is an error naming it, never a host file; inside a copied
//! directory, links are copied as links. The destination is resolved in
//! the stage's root (`RESOLVE_IN_ROOT`), so an image's link cannot send a
//! copy to the host; the stream is unpacked as a copy (no whiteouts, no
//! device nodes, names checked). The context is hashed again after the
//! copy: a context that changed meanwhile fails the step rather than
//! leave a cache entry whose key does not match its layer.

mod into;
mod sources;

pub(crate) use into::Work;

use crate::containerfile::{Copy, Instruction};
use crate::ignore;
use crate::stage::{Build, State};
use crate::Result;
use capsa_image::commit::LayerBlob;
use capsa_image::pack::{add_fd_with, Specials};
use capsa_sys::resolve::Symlinks;
use capsa_sys::root::Root;
use sources::{Edit, From, HashWriter, Item};
use std::path::Path;

/// A `COPY`/`ADD` with its sources found and hashed.
pub(crate) struct Prepared {
    from: From,
    items: Vec<Item>,
    dest: String,
    into_dir: bool,
    add: bool,
    chown: Option<String>,
    chmod: Option<u32>,
    /// The key's parts: the instruction, then the sources' digest.
    hash: capsa_image::Digest,
    /// The context's part alone, checked again after the copy.
    ctx_hash: Option<capsa_image::Digest>,
}

impl Prepared {
    /// The sources' digest, for the step's cache key.
    pub fn digest(&self) -> &capsa_image::Digest {
        &self.hash
    }

    fn context_paths(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Path(p) if matches!(self.from, From::Context) => Some(p.as_str()),
                _ => None,
            })
            .collect()
    }
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
    let chmod = match c.chmod.as_deref() {
        None => None,
        Some(m) => Some(
            u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| b.fail(ins, format!("--chmod={m}: not an octal mode")))?,
        ),
    };
    let chown = c.chown.as_ref().map(|w| word(w)).transpose()?;
    let mut h = HashWriter(capsa_image::digest::Hasher::new());
    h.part(dest.as_bytes());
    h.part(format!("{chown:?} {chmod:?} {into_dir}").as_bytes());
    let mut items = Vec::new();
    let from = match &c.from {
        None => From::Context,
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
            h.part(b"from");
            h.part(src.key.as_str().as_bytes());
            From::Layers(src.layers())
        }
    };
    let mut heredocs = c.heredocs.iter();
    for s in &c.sources {
        if s.starts_with("<<") && crate::containerfile::heredoc_marker(s).is_some() {
            let hd = heredocs
                .next()
                .ok_or_else(|| b.fail(ins, format!("{s}: no heredoc body")))?;
            let body = if hd.expand {
                word(&format!("\"{}\"", hd.body.replace('"', "\\\"")))?
            } else {
                hd.body.clone()
            };
            h.part(b"heredoc");
            h.part(hd.name.as_bytes());
            h.part(body.as_bytes());
            items.push(Item::Heredoc {
                name: hd.name.clone(),
                body,
            });
            continue;
        }
        let s = word(s)?;
        if add && (s.starts_with("http://") || s.starts_with("https://")) {
            let (name, file, digest) =
                sources::fetch(b, &s).map_err(|r| b.fail(ins, format!("{s}: {r}")))?;
            h.part(b"url");
            h.part(s.as_bytes());
            h.part(digest.as_str().as_bytes());
            items.push(Item::Url { name, file });
            continue;
        }
        if sources::climbs_out(&s) {
            return Err(b.fail(ins, format!("{s}: outside the context")));
        }
        let clean = ignore::clean(&s);
        let paths = match (&from, ignore::is_glob(&s)) {
            (From::Context, true) => {
                let m = sources::glob(&b.ctx, &clean, &b.ignore);
                if m.is_empty() {
                    return Err(b.fail(ins, format!("{s}: no file in the context matches")));
                }
                m
            }
            _ => vec![clean.join("/")],
        };
        for p in paths {
            if matches!(from, From::Context) && sources::ignored(b, &p) {
                return Err(b.fail(
                    ins,
                    format!("{s}: left out of the context by its ignore file"),
                ));
            }
            h.part(b"path");
            h.part(p.as_bytes());
            items.push(Item::Path(p));
        }
    }
    let mut p = Prepared {
        from,
        items,
        dest,
        into_dir,
        add,
        chown,
        chmod,
        hash: capsa_image::Digest::of(b""),
        ctx_hash: None,
    };
    let paths = p.context_paths();
    if !paths.is_empty() {
        let mut ch = HashWriter(capsa_image::digest::Hasher::new());
        sources::hash_context(b, &paths, chmod, &mut ch).map_err(|r| b.fail(ins, r))?;
        let d = ch.0.finish();
        h.part(d.as_str().as_bytes());
        p.ctx_hash = Some(d);
    }
    p.hash = h.0.finish();
    Ok(p)
}

pub(crate) fn apply(
    b: &Build<'_>,
    st: &State,
    ins: &Instruction,
    p: Prepared,
) -> Result<Option<LayerBlob>> {
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
        Some(c) => Some(into::chown(&snap.rootfs, c).map_err(|e| fail(&e))?),
        None => None,
    };
    // The source root: the context's handle, or the --from stage mounted
    // read-only.
    let mut from_root = None;
    let (src_root, links, keep_owner) = match &p.from {
        From::Context => (&b.ctx, Symlinks::Beneath, false),
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
            let r: &Root = from_root.insert(Root::open(&at).map_err(|e| fail(&e.desc()))?);
            (r, Symlinks::InRoot, true)
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
    let ctx_ignore = matches!(p.from, From::Context).then_some(&b.ignore);
    let ids = owner.unwrap_or((0, 0));
    for item in &p.items {
        match item {
            Item::Heredoc { name, body } => {
                let (dir, fname) =
                    into::target(&root, &p.dest, dest_is_dir, name).map_err(|e| fail(&e))?;
                let data = body.as_bytes();
                into::write_file(
                    &dir,
                    &fname,
                    data,
                    data.len() as u64,
                    p.chmod.unwrap_or(0o644),
                    ids,
                )
                .map_err(|e| fail(&e))?;
            }
            Item::Url { name, file } => {
                let (dir, fname) =
                    into::target(&root, &p.dest, dest_is_dir, name).map_err(|e| fail(&e))?;
                let f = std::fs::File::open(file).map_err(|e| fail(&e))?;
                let len = f.metadata().map_err(|e| fail(&e))?.len();
                // A download is 0600, as docker makes it.
                into::write_file(&dir, &fname, f, len, p.chmod.unwrap_or(0o600), ids)
                    .map_err(|e| fail(&e))?;
            }
            Item::Path(rel) => {
                let src = sources::open_source(src_root, rel, links)
                    .map_err(|r| fail(&format!("{rel}: {r}")))?;
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
                    let dir = into::made_dir(&root, &p.dest, owner).map_err(|e| fail(&e))?;
                    into::stream(&dir, ".", move |t| {
                        Ok(add_fd_with(t, &src, ".", Specials::Skip, &|n, h| {
                            edit.apply(n, h)
                        })?)
                    })
                    .map_err(|e| fail(&e))?;
                    continue;
                }
                if p.add && into::is_archive(&src) {
                    let dir = root
                        .mkdir_all(Path::new(&p.dest))
                        .map_err(|e| fail(&format!("{}: {}", p.dest, e.desc())))?;
                    into::extract(&dir, &src).map_err(|e| fail(&format!("{rel}: {e}")))?;
                    continue;
                }
                let base = rel.rsplit('/').next().unwrap_or(rel).to_string();
                let (dir, fname) =
                    into::target(&root, &p.dest, dest_is_dir, &base).map_err(|e| fail(&e))?;
                let name = fname.clone();
                let edit = Edit {
                    ignore: None,
                    ..edit
                };
                into::stream(&dir, &fname, move |t| {
                    Ok(add_fd_with(t, &src, &name, Specials::Skip, &|n, h| {
                        edit.apply(n, h)
                    })?)
                })
                .map_err(|e| fail(&e))?;
            }
        }
    }
    // Security: what was copied must be what was hashed, or the cache
    // would hand this layer to a build whose context differs.
    if let Some(before) = &p.ctx_hash {
        let mut ch = HashWriter(capsa_image::digest::Hasher::new());
        sources::hash_context(b, &p.context_paths(), p.chmod, &mut ch).map_err(|r| fail(&r))?;
        if ch.0.finish() != *before {
            return Err(fail(
                &"the context changed while it was copied; build again",
            ));
        }
    }
    // Nothing of ours holds the step's roots any more.
    drop(root);
    drop(from_root);
    let upper = work.dir.join("upper");
    let layer = b.commit(st, &upper, &[], &|_| true, || work.unmount())?;
    Ok(layer)
}
