//! The build: which stages the target needs, and each stage's steps in
//! order over a state (config, layers, cache key, build args in scope).

use crate::containerfile::{self, Command, Containerfile, Health, Instruction, Kind};
use crate::{expand, invalid, key, Built, Error, Event, Options, Pull, Result};
use capsa_engine::images::PullPolicy;
use capsa_image::cache::{self, Entry};
use capsa_image::commit::LayerBlob;
use capsa_image::config::{Empty, Healthcheck, History, ImageConfig};
use capsa_image::{Digest, ImageRecord};
use capsa_sys::root::Root;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// A stage as it stands after some steps.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub config: ImageConfig,
    pub layers: Vec<LayerBlob>,
    pub key: Digest,
    /// Build args declared in this stage, with their values.
    pub args: BTreeMap<String, Option<String>>,
    /// Whether this stage set `CMD` (an `ENTRYPOINT` clears an inherited one).
    pub cmd_set: bool,
}

impl State {
    /// A variable's value for expansion: `ENV` before `ARG`.
    pub fn lookup(&self, name: &str) -> Option<String> {
        self.config
            .config
            .env_var(name)
            .map(str::to_string)
            .or_else(|| self.args.get(name).cloned().flatten())
    }

    /// The build args a `RUN` sees (those `ENV` does not set).
    pub fn run_env(&self) -> Vec<String> {
        self.args
            .iter()
            .filter_map(|(k, v)| Some((k, v.as_ref()?)))
            .filter(|(k, _)| self.config.config.env_var(k).is_none())
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    /// The state's layers with their chain ids (to unpack, or mount).
    pub fn layers(&self) -> Vec<capsa_image::manifest::Layer> {
        let ids: Vec<Digest> = self.layers.iter().map(|l| l.diff_id.clone()).collect();
        self.layers
            .iter()
            .zip(capsa_image::layers::chain_ids(&ids))
            .map(|(l, chain_id)| capsa_image::manifest::Layer {
                blob: l.blob.clone(),
                size: l.size,
                media_type: l.media_type.clone(),
                diff_id: l.diff_id.clone(),
                chain_id,
            })
            .collect()
    }
}

pub(crate) struct Build<'a> {
    pub engine: &'a capsa_engine::Engine,
    pub opts: &'a Options,
    pull: Pull<'a>,
    pub events: &'a dyn Fn(Event),
    pub file: Containerfile,
    /// The context directory, opened once.
    pub ctx: Root,
    pub ignore: crate::ignore::Ignore,
    globals: BTreeMap<String, Option<String>>,
    used: std::cell::RefCell<std::collections::BTreeSet<String>>,
    pub ran: Cell<usize>,
    pub cached: Cell<usize>,
    /// Files `ADD URL` fetched (in the build's own directory).
    pub fetched: std::cell::RefCell<Vec<PathBuf>>,
    /// The build's own directory under `build-work/`, made on first use.
    scratch: std::cell::RefCell<Option<crate::copy::Work>>,
}

impl Drop for Build<'_> {
    fn drop(&mut self) {
        // The build's own directory (fetched URLs) goes with it.
        self.scratch.borrow_mut().take();
    }
}

/// Read a small file of the context through its handle: a regular file
/// only (a FIFO would hang the build, a device be opened by root), links
/// scoped to the context, at most `limit` bytes.
///
/// Security: "trust nothing that came out of" a context someone else may
/// have written: `Containerfile -> /etc/shadow` reads the context's own
/// `etc/shadow` (or nothing), never the host's.
fn read_in(ctx: &Root, name: &str, limit: usize) -> Result<Option<String>> {
    use capsa_sys::root::ReadError;
    match ctx.read(std::path::Path::new(name), limit as u64 + 1) {
        Ok(b) if b.len() > limit => Err(invalid(name, format!("larger than {limit} bytes"))),
        Ok(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| invalid(name, "not UTF-8 text")),
        Err(ReadError::Sys(capsa_sys::Errno::ENOENT)) => Ok(None),
        Err(e) => Err(invalid(name, e)),
    }
}

/// The Containerfile, as `-f` names it or podman finds it in the context,
/// and the name errors give it.
fn containerfile(
    opts: &Options,
    context: &std::path::Path,
    ctx: &Root,
) -> Result<(String, String)> {
    let limit = containerfile::MAX_SIZE;
    let Some(f) = &opts.file else {
        for n in ["Containerfile", "Dockerfile"] {
            if let Some(t) = read_in(ctx, n, limit)? {
                return Ok((t, n.to_string()));
            }
        }
        return Err(invalid(
            context.display().to_string(),
            "no Containerfile or Dockerfile in the context (or give -f)",
        ));
    };
    let shown = f.display().to_string();
    let path = std::fs::canonicalize(f).map_err(|e| invalid(&shown, e))?;
    if let Ok(rel) = path.strip_prefix(context) {
        let rel = rel.display().to_string();
        return read_in(ctx, &rel, limit)?
            .map(|t| (t, rel.clone()))
            .ok_or_else(|| invalid(&shown, "not found"));
    }
    // Outside the context: the user's own path, read as a regular file.
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    let root = Root::open(dir).map_err(|e| invalid(&shown, e.desc()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    read_in(&root, &name, limit)?
        .map(|t| (t, shown.clone()))
        .ok_or_else(|| invalid(&shown, "not found"))
}

/// The context directory, opened once: every later look into it goes
/// through this handle, so renaming the directory (or putting a link in
/// its place) mid-build changes nothing.
fn open_context(context: &std::path::Path) -> Result<Root> {
    let fd = rustix::fs::open(
        context,
        rustix::fs::OFlags::PATH
            | rustix::fs::OFlags::DIRECTORY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| {
        invalid(
            context.display().to_string(),
            format!("the context must be a directory: {e}"),
        )
    })?;
    Ok(Root::from_fd(fd))
}

impl<'a> Build<'a> {
    pub fn new(
        engine: &'a capsa_engine::Engine,
        opts: &'a Options,
        pull: Pull<'a>,
        events: &'a dyn Fn(Event),
    ) -> Result<Build<'a>> {
        let context = std::fs::canonicalize(&opts.context)
            .map_err(|e| invalid(opts.context.display().to_string(), e))?;
        let ctx = open_context(&context)?;
        let (text, name) = containerfile(opts, &context, &ctx)?;
        let file = containerfile::parse(&text, &name)?;
        let mut ignore = crate::ignore::Ignore::default();
        for n in [".containerignore", ".dockerignore"] {
            if let Some(t) = read_in(&ctx, n, 1 << 20)? {
                ignore = crate::ignore::Ignore::parse(&t);
                break;
            }
        }
        if let Some(n) = opts
            .network
            .as_deref()
            .filter(|n| n.starts_with("container:"))
        {
            return Err(invalid(
                "--network",
                format!("{n}: a build's steps do not join another container"),
            ));
        }
        let b = Build {
            engine,
            opts,
            pull,
            events,
            globals: BTreeMap::new(),
            file,
            ctx,
            ignore,
            used: Default::default(),
            ran: Cell::new(0),
            cached: Cell::new(0),
            fetched: Default::default(),
            scratch: Default::default(),
        };
        let mut globals = BTreeMap::new();
        for ins in &b.file.args {
            if let Kind::Arg(list) = &ins.kind {
                for (k, v) in list {
                    let lookup = |n: &str| globals.get(n).cloned().flatten();
                    let v = b.arg_value(k, v.as_deref(), ins, &lookup)?;
                    globals.insert(k.clone(), v);
                }
            }
        }
        let mut b = b;
        b.globals = globals;
        Ok(b)
    }

    /// An arg's value: `--build-arg` over its default (expanded).
    fn arg_value(
        &self,
        name: &str,
        default: Option<&str>,
        ins: &Instruction,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<String>> {
        if let Some((_, v)) = self.opts.build_args.iter().rev().find(|(k, _)| k == name) {
            self.used.borrow_mut().insert(name.to_string());
            return Ok(Some(v.clone()));
        }
        default
            .map(|d| expand::word(d, self.file.escape, lookup))
            .transpose()
            .map_err(|r| self.fail(ins, r))
    }

    /// The build's own directory (for fetched URLs), made on first use
    /// and removed with the build.
    pub fn scratch(&self) -> std::result::Result<PathBuf, String> {
        let mut s = self.scratch.borrow_mut();
        if s.is_none() {
            *s = Some(crate::copy::Work::new(self).map_err(|e| e.to_string())?);
        }
        Ok(s.as_ref().map(|w| w.dir.clone()).unwrap_or_default())
    }

    /// Commit a step's upper directory: `unmount` first, then its diff as
    /// a layer blob, then the directory itself (less what the layer
    /// leaves out) renamed into the store as that layer's unpacked copy.
    pub fn commit(
        &self,
        st: &State,
        upper: &std::path::Path,
        mount_points: &[String],
        below: &dyn Fn(&str) -> bool,
        unmount: impl FnOnce(),
    ) -> Result<Option<LayerBlob>> {
        unmount();
        let store = &self.engine.images;
        let opts = capsa_image::diff::Options {
            mount_points,
            below,
            strip: true,
        };
        let Some((layer, written)) = capsa_image::commit::layer(store, upper, &opts)? else {
            return Ok(None);
        };
        let root = Root::open(upper).map_err(|e| invalid(upper.display().to_string(), e.desc()))?;
        for p in &written.left_out {
            let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
                continue;
            };
            let dir = root
                .open_at(
                    parent,
                    libc::O_PATH | libc::O_DIRECTORY,
                    capsa_sys::resolve::Symlinks::Refuse,
                )
                .map_err(|e| invalid(p.display().to_string(), e.desc()))?;
            let gone = rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty())
                .or_else(|_| rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::REMOVEDIR));
            gone.map_err(|e| invalid(p.display().to_string(), e))?;
        }
        let mut ids: Vec<Digest> = st.layers.iter().map(|l| l.diff_id.clone()).collect();
        ids.push(layer.diff_id.clone());
        if let Some(chain) = capsa_image::layers::chain_ids(&ids).last() {
            capsa_image::layers::adopt(store, chain, &layer.diff_id, upper)?;
        }
        Ok(Some(layer))
    }

    pub fn fail(&self, ins: &Instruction, reason: impl ToString) -> Error {
        Error::Step {
            file: self.file.file.clone(),
            line: ins.line,
            instruction: ins.keyword.clone(),
            reason: reason.to_string(),
        }
    }

    /// The stage `name` (an alias or an index) names, if one before `before`.
    fn stage_named(&self, name: &str, before: usize) -> Option<usize> {
        let n = name.to_ascii_lowercase();
        self.file.stages[..before]
            .iter()
            .position(|s| s.alias() == Some(n.as_str()) || s.index.to_string() == n)
    }

    /// The stages `t` needs (itself, the stages it starts from and copies
    /// from), in file order.
    fn needed(&self, t: usize) -> Vec<usize> {
        let mut need = vec![false; self.file.stages.len()];
        let mut todo = vec![t];
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut need[i], true) {
                continue;
            }
            let s = &self.file.stages[i];
            if let Kind::From { image, .. } = &s.from.kind {
                todo.extend(self.stage_named(image, i));
            }
            for ins in &s.steps {
                if let Kind::Copy(c) = &ins.kind {
                    if let Some(f) = &c.from {
                        todo.extend(self.stage_named(f, i));
                    }
                }
            }
        }
        (0..need.len()).filter(|&i| need[i]).collect()
    }

    pub fn run(self) -> Result<Built> {
        let _lock = self.engine.images.writer_lock()?;
        crate::copy::Work::sweep(&self);
        let target = match &self.opts.target {
            Some(t) => self
                .stage_named(t, self.file.stages.len())
                .ok_or_else(|| invalid("--target", format!("no stage named {t:?}")))?,
            None => self.file.stages.len() - 1,
        };
        let order = self.needed(target);
        let mut done: Vec<Option<State>> = vec![None; self.file.stages.len()];
        for (n, &i) in order.iter().enumerate() {
            let st = self.stage(i, n + 1, order.len(), &done)?;
            done[i] = Some(st);
        }
        let unused: Vec<&str> = self
            .opts
            .build_args
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !self.used.borrow().contains(*k))
            .collect();
        if !unused.is_empty() {
            (self.events)(Event::Note(format!(
                "build args not consumed by any ARG: {}",
                unused.join(", ")
            )));
        }
        let mut st = done[target]
            .take()
            .ok_or_else(|| invalid("--target", "the stage was not built"))?;
        if !self.opts.labels.is_empty() {
            let labels = st.config.config.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in &self.opts.labels {
                labels.insert(k.clone(), v.clone());
            }
        }
        let store = &self.engine.images;
        let (manifest, _) = capsa_image::commit::image(store, &mut st.config, &st.layers)?;
        let mut tags = self.opts.tags.iter();
        let mut image = capsa_image::local::record(store, &manifest, tags.next(), None)?;
        for t in tags {
            image = store.record(image, Some(t))?;
        }
        Ok(Built {
            image,
            ran: self.ran.get(),
            cached: self.cached.get(),
        })
    }

    /// Build stage `i` (the `n`th of `of`).
    fn stage(&self, i: usize, n: usize, of: usize, done: &[Option<State>]) -> Result<State> {
        let s = &self.file.stages[i];
        let t0 = Instant::now();
        let mut st = self.from(i, &s.from, done)?;
        // The base's ONBUILD triggers run first, then are gone.
        let triggers = st.config.config.on_build.take().unwrap_or_default();
        let mut steps: Vec<(Instruction, bool)> = Vec::new();
        for t in &triggers {
            let ins = containerfile::parse_one(t, &self.file.file, s.from.line)?;
            // Security: a base image's trigger does not choose the
            // network its step runs on (the host's, say).
            if let Kind::Run {
                network: Some(n), ..
            } = &ins.kind
            {
                return Err(self.fail(&ins, format!("ONBUILD RUN --network={n}: a base image's trigger cannot choose the network")));
            }
            steps.push((ins, true));
        }
        steps.extend(s.steps.iter().map(|x| (x.clone(), false)));
        let total = steps.len() + 1;
        (self.events)(Event::Step {
            stage: n,
            stages: of,
            n: 1,
            total,
            text: s.from.to_string(),
        });
        (self.events)(Event::Done {
            took: t0.elapsed(),
            layer: None,
        });
        for (k, (ins, trigger)) in steps.iter().enumerate() {
            (self.events)(Event::Step {
                stage: n,
                stages: of,
                n: k + 2,
                total,
                text: if *trigger {
                    format!("ONBUILD {ins}")
                } else {
                    ins.to_string()
                },
            });
            let t0 = Instant::now();
            let layer = self.step(&mut st, ins, done, i)?;
            (self.events)(Event::Done {
                took: t0.elapsed(),
                layer,
            });
        }
        Ok(st)
    }

    /// The network a `RUN` step runs on: its `--network` flag (`none`
    /// and `default` always; `host` only when the build itself was given
    /// `--network host`), else the build's.
    ///
    /// Security: a Containerfile (or a base image's trigger) does not put
    /// a step in the host's network namespace on its own say.
    pub fn run_network(&self, ins: &Instruction, flag: Option<&str>) -> Result<Option<String>> {
        let build = self.opts.network.clone();
        match flag {
            None | Some("default") => Ok(build),
            Some("none") => Ok(Some("none".into())),
            Some("host") if build.as_deref() == Some("host") => Ok(build),
            Some(n) => Err(self.fail(
                ins,
                format!("--network={n}: a step may ask for none or default; host only when the build is given --network host"),
            )),
        }
    }

    /// The state a `FROM` starts from.
    fn from(&self, i: usize, ins: &Instruction, done: &[Option<State>]) -> Result<State> {
        let Kind::From {
            image, platform, ..
        } = &ins.kind
        else {
            return Err(self.fail(ins, "not a FROM"));
        };
        if let Some(p) = platform {
            let want = capsa_image::manifest::Platform::parse(p).map_err(|e| self.fail(ins, e))?;
            if want.arch != capsa_image::manifest::Platform::host().arch {
                return Err(self.fail(
                    ins,
                    format!("--platform={p}: only this host's platform can be built"),
                ));
            }
        }
        let lookup = |n: &str| self.globals.get(n).cloned().flatten();
        let image =
            expand::word(image, self.file.escape, &lookup).map_err(|r| self.fail(ins, r))?;
        let zero = Digest::of(b"");
        if let Some(j) = self.stage_named(&image, i) {
            let base = done[j]
                .clone()
                .ok_or_else(|| self.fail(ins, format!("stage {image} was not built")))?;
            return Ok(State {
                key: key(&base.key, &[b"FROM stage"]),
                args: BTreeMap::new(),
                cmd_set: false,
                ..base
            });
        }
        if image == "scratch" {
            return Ok(State {
                config: ImageConfig::scratch(),
                layers: Vec::new(),
                key: key(&zero, &[b"FROM scratch"]),
                args: BTreeMap::new(),
                cmd_set: false,
            });
        }
        self.image(&image).map_err(|e| self.fail(ins, e))
    }

    /// The state an image starts a stage with, pulled when missing (or
    /// always, with `--pull`).
    pub fn image(&self, image: &str) -> Result<State> {
        let policy = if self.opts.pull {
            PullPolicy::Always
        } else {
            PullPolicy::Missing
        };
        let (rec, _) =
            capsa_engine::images::resolve(self.engine, image, policy, &self.opts.probe, self.pull)?;
        self.base(&rec, &Digest::of(b""))
    }

    fn base(&self, rec: &ImageRecord, zero: &Digest) -> Result<State> {
        let store = &self.engine.images;
        let image = capsa_image::local::open(store, rec)?;
        let config = ImageConfig::parse(&image.config_bytes, "the base image's config")?;
        let layers = image
            .layers("the base image")?
            .iter()
            .map(LayerBlob::from)
            .collect();
        Ok(State {
            config,
            layers,
            key: key(zero, &[b"FROM", rec.id.as_str().as_bytes()]),
            args: BTreeMap::new(),
            cmd_set: false,
        })
    }

    fn word(&self, st: &State, ins: &Instruction, w: &str) -> Result<String> {
        expand::word(w, self.file.escape, &|n| st.lookup(n)).map_err(|r| self.fail(ins, r))
    }

    /// One step; returns the size of the layer it made, if any.
    fn step(
        &self,
        st: &mut State,
        ins: &Instruction,
        done: &[Option<State>],
        stage: usize,
    ) -> Result<Option<u64>> {
        // ARG changes what later steps see, not the image.
        if let Kind::Arg(list) = &ins.kind {
            for (k, v) in list {
                let global = self.globals.get(k).cloned().flatten();
                let default = v.clone().or(global);
                let val = self.arg_value(k, default.as_deref(), ins, &|n| st.lookup(n))?;
                st.key = key(
                    &st.key,
                    &[
                        b"ARG",
                        k.as_bytes(),
                        val.as_deref().unwrap_or("\0").as_bytes(),
                    ],
                );
                st.args.insert(k.clone(), val);
            }
            return Ok(None);
        }
        // What the step does, spelled out for its key: each part framed
        // by its length (`key`), so no two different steps read alike.
        let prepared = match &ins.kind {
            Kind::Copy(c) | Kind::Add(c) => {
                Some(crate::copy::prepare(self, st, ins, c, done, stage)?)
            }
            _ => None,
        };
        let text = ins.to_string();
        let mut parts: Vec<Vec<u8>> = vec![text.clone().into_bytes()];
        match (&prepared, &ins.kind) {
            (Some(p), _) => parts.push(p.digest().as_str().as_bytes().to_vec()),
            (
                None,
                Kind::Run {
                    heredocs, network, ..
                },
            ) => {
                parts.push(
                    self.run_network(ins, network.as_deref())?
                        .unwrap_or_default()
                        .into_bytes(),
                );
                for h in heredocs {
                    parts.push(h.name.clone().into_bytes());
                    parts.push(h.body.clone().into_bytes());
                }
                for e in st.run_env() {
                    parts.push(e.into_bytes());
                }
            }
            _ => {}
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let k = key(&st.key, &refs);
        let store = &self.engine.images;
        if !self.opts.no_cache {
            if let Some(e) = cache::get(store, &k) {
                let grew = e.layers.len() > st.layers.len();
                let size = grew.then(|| e.layers.last().map(|l| l.size)).flatten();
                st.config = e.config;
                st.layers = e.layers;
                st.key = k;
                if matches!(ins.kind, Kind::Cmd(_)) {
                    st.cmd_set = true;
                }
                self.cached.set(self.cached.get() + 1);
                (self.events)(Event::Cached);
                return Ok(size);
            }
        }
        let layer = match (&ins.kind, prepared) {
            (_, Some(p)) => crate::copy::apply(self, st, ins, p)?,
            (
                Kind::Run {
                    command,
                    heredocs,
                    network,
                },
                None,
            ) => crate::run::step(self, st, ins, command, heredocs, network.as_deref())?,
            _ => {
                self.metadata(st, ins)?;
                None
            }
        };
        let empty = layer.is_none();
        let size = layer.as_ref().map(|l| l.size);
        st.layers.extend(layer);
        st.config.history.push(History {
            created: Some(capsa_image::local::rfc3339_now()),
            created_by: Some(format!("{text} # capsa")),
            empty_layer: empty,
            ..Default::default()
        });
        st.config.created = Some(capsa_image::local::rfc3339_now());
        self.ran.set(self.ran.get() + 1);
        cache::put(
            store,
            &k,
            &Entry {
                config: st.config.clone(),
                layers: st.layers.clone(),
            },
        )?;
        st.key = k;
        Ok(size)
    }

    /// The instructions that change only the config.
    fn metadata(&self, st: &mut State, ins: &Instruction) -> Result<()> {
        let shell = |st: &State, c: &Command| match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = st
                    .config
                    .config
                    .shell
                    .clone()
                    .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                v.push(s.clone());
                v
            }
        };
        match &ins.kind {
            Kind::Env(pairs) => {
                // Every value is expanded with the env before this line.
                let vals = pairs
                    .iter()
                    .map(|(k, v)| Ok((self.word(st, ins, k)?, self.word(st, ins, v)?)))
                    .collect::<Result<Vec<_>>>()?;
                for (k, v) in vals {
                    st.config.config.set_env(&k, &v);
                }
            }
            Kind::Label(pairs) => {
                let vals = pairs
                    .iter()
                    .map(|(k, v)| Ok((self.word(st, ins, k)?, self.word(st, ins, v)?)))
                    .collect::<Result<Vec<_>>>()?;
                let labels = st.config.config.labels.get_or_insert_with(BTreeMap::new);
                labels.extend(vals);
            }
            Kind::Workdir(w) => {
                let w = self.word(st, ins, w)?;
                let base = st
                    .config
                    .config
                    .working_dir
                    .clone()
                    .unwrap_or_else(|| "/".into());
                let joined = if w.starts_with('/') {
                    w
                } else {
                    format!("{base}/{w}")
                };
                st.config.config.working_dir =
                    Some(format!("/{}", crate::ignore::clean(&joined).join("/")));
            }
            Kind::User(u) => st.config.config.user = Some(self.word(st, ins, u)?),
            Kind::Cmd(c) => {
                st.config.config.cmd = Some(shell(st, c));
                st.cmd_set = true;
            }
            Kind::Entrypoint(c) => {
                st.config.config.entrypoint = Some(shell(st, c));
                if !st.cmd_set {
                    st.config.config.cmd = None;
                }
            }
            Kind::Shell(v) => st.config.config.shell = Some(v.clone()),
            Kind::Expose(ports) => {
                for p in ports {
                    let p = self.word(st, ins, p)?;
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    st.config
                        .config
                        .exposed_ports
                        .get_or_insert_with(BTreeMap::new)
                        .insert(p, Empty {});
                }
            }
            Kind::Volume(vs) => {
                for v in vs {
                    let v = self.word(st, ins, v)?;
                    if v.is_empty() {
                        return Err(self.fail(ins, "a volume needs a path"));
                    }
                    st.config
                        .config
                        .volumes
                        .get_or_insert_with(BTreeMap::new)
                        .insert(v, Empty {});
                }
            }
            Kind::StopSignal(s) => st.config.config.stop_signal = Some(self.word(st, ins, s)?),
            Kind::Maintainer(m) => st.config.author = Some(m.clone()),
            Kind::Onbuild(t) => st
                .config
                .config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(t.clone()),
            Kind::Healthcheck(Health::None) => {
                st.config.config.healthcheck = Some(Healthcheck {
                    test: vec!["NONE".into()],
                    ..Default::default()
                })
            }
            Kind::Healthcheck(Health::Check { command, options }) => {
                let test = match command {
                    Command::Exec(v) => [vec!["CMD".to_string()], v.clone()].concat(),
                    Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                };
                let mut h = Healthcheck {
                    test,
                    ..Default::default()
                };
                for (k, v) in options {
                    let bad = |why: &str| self.fail(ins, format!("--{k}={v}: {why}"));
                    if k == "retries" {
                        h.retries = Some(v.parse().map_err(|_| bad("not a number"))?);
                        continue;
                    }
                    let ns =
                        duration_ns(v).ok_or_else(|| bad("not a duration (30s, 1m30s, 500ms)"))?;
                    match k.as_str() {
                        "interval" => h.interval = Some(ns),
                        "timeout" => h.timeout = Some(ns),
                        "start-period" => h.start_period = Some(ns),
                        _ => h.start_interval = Some(ns),
                    }
                }
                st.config.config.healthcheck = Some(h);
            }
            _ => return Err(self.fail(ins, "not a metadata instruction")),
        }
        Ok(())
    }
}

/// A Go duration (`1m30s`, `500ms`, `2h`) in nanoseconds.
pub(crate) fn duration_ns(s: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(total as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_durations_read_as_docker_reads_them() {
        assert_eq!(super::duration_ns("30s"), Some(30_000_000_000));
        assert_eq!(super::duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(super::duration_ns("500ms"), Some(500_000_000));
        assert_eq!(super::duration_ns("5"), None);
        assert_eq!(super::duration_ns("5x"), None);
        assert_eq!(super::duration_ns(""), None);
    }
}
