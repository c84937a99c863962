//! The build: which stages the target needs, and each stage's steps in
//! order over a state (config, layers, cache key, build args in scope).

use crate::containerfile::{self, Containerfile, Instruction, Kind};
use crate::{expand, invalid, key, Built, Error, Event, Options, Pull, Result};
use capsa_engine::images::PullPolicy;
use capsa_image::cache::{self, Entry};
use capsa_image::commit::LayerBlob;
use capsa_image::config::{History, ImageConfig};
use capsa_image::{Digest, ImageRecord};
use capsa_sys::root::Root;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// A stage as it stands after some steps.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    pub(crate) used: std::cell::RefCell<std::collections::BTreeSet<String>>,
    /// Each step done, for the trace (a fork's come back with its report).
    pub(crate) records: std::cell::RefCell<Vec<crate::StepRecord>>,
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

impl<'a> Build<'a> {
    pub fn new(
        engine: &'a capsa_engine::Engine,
        opts: &'a Options,
        pull: Pull<'a>,
        events: &'a dyn Fn(Event),
    ) -> Result<Build<'a>> {
        let context = std::fs::canonicalize(&opts.context)
            .map_err(|e| invalid(opts.context.display().to_string(), e))?;
        let ctx = crate::context::open_context(&context)?;
        let (text, name) = crate::context::containerfile(opts, &opts.context, &context, &ctx)?;
        let file = containerfile::parse(&text, &name)?;
        let mut ignore = crate::ignore::Ignore::default();
        for n in [".containerignore", ".dockerignore"] {
            if let Some(t) = crate::context::read_in(&ctx, n, 1 << 20)? {
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
            records: Default::default(),
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

    /// Commit a step's upper directory: `unmount` first (true when its
    /// mounts are gone for good), then its diff as a layer blob, then the
    /// directory itself (less what the layer leaves out) renamed into the
    /// store as that layer's unpacked copy, when it holds exactly what
    /// the blob holds.
    pub fn commit(
        &self,
        st: &State,
        upper: &std::path::Path,
        mount_points: &[String],
        below: &dyn Fn(&str) -> bool,
        unmount: impl FnOnce() -> bool,
    ) -> Result<Option<LayerBlob>> {
        // Adopted only when nothing can still write to it: unmounted for
        // good, not lazily.
        let unmounted = unmount();
        let store = &self.engine.images;
        let opts = capsa_image::diff::Options {
            mount_points,
            below,
            strip: unmounted,
        };
        let Some((layer, written)) = capsa_image::commit::layer(store, upper, &opts)? else {
            return Ok(None);
        };
        if !(unmounted && written.adoptable) {
            return Ok(Some(layer)); // unpacked from its blob when needed
        }
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
    pub(crate) fn stage_named(&self, name: &str, before: usize) -> Option<usize> {
        let n = name.to_ascii_lowercase();
        self.file.stages[..before]
            .iter()
            .position(|s| s.alias() == Some(n.as_str()) || s.index.to_string() == n)
    }

    /// The stages stage `i` starts from or copies from.
    pub(crate) fn deps(&self, i: usize) -> Vec<usize> {
        let s = &self.file.stages[i];
        let mut out = Vec::new();
        if let Kind::From { image, .. } = &s.from.kind {
            out.extend(self.stage_named(image, i));
        }
        for ins in &s.steps {
            if let Kind::Copy(c) = &ins.kind {
                if let Some(f) = &c.from {
                    out.extend(self.stage_named(f, i));
                }
            }
        }
        out
    }

    /// Whether the build's own directory exists yet.
    pub(crate) fn has_scratch(&self) -> bool {
        self.scratch.borrow().is_some()
    }

    /// Remove the build's own directory now.
    pub(crate) fn drop_scratch(&self) {
        self.scratch.borrow_mut().take();
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
            todo.extend(self.deps(i));
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
        let mut done = self.stages(&order)?;
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
            steps: self.records.take(),
        })
    }

    /// Build stage `i` (the `n`th of `of`).
    pub(crate) fn stage(
        &self,
        i: usize,
        n: usize,
        of: usize,
        done: &[Option<State>],
    ) -> Result<State> {
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
        self.done(n, s.from.to_string(), t0, None, false);
        for (k, (ins, trigger)) in steps.iter().enumerate() {
            let text = if *trigger {
                format!("ONBUILD {ins}")
            } else {
                ins.to_string()
            };
            (self.events)(Event::Step {
                stage: n,
                stages: of,
                n: k + 2,
                total,
                text: text.clone(),
            });
            let t0 = Instant::now();
            let before = self.cached.get();
            let layer = self.step(&mut st, ins, done, i)?;
            self.done(n, text, t0, layer, self.cached.get() > before);
        }
        Ok(st)
    }

    /// A step is done: tell, and keep it for the trace.
    fn done(&self, stage: usize, text: String, t0: Instant, layer: Option<u64>, cached: bool) {
        let took = t0.elapsed();
        (self.events)(Event::Done { stage, took, layer });
        self.records.borrow_mut().push(crate::StepRecord {
            stage,
            text,
            micros: took.as_micros() as u64,
            layer,
            cached,
        });
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

    pub(crate) fn word(&self, st: &State, ins: &Instruction, w: &str) -> Result<String> {
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
}
