//! The build: which stages the target needs, and each stage's steps in
//! order over a state (config, layers, cache key, build args in scope).

use crate::containerfile::{self, Command, Containerfile, Health, Instruction, Kind};
use crate::{expand, invalid, key, Built, Error, Event, Options, Pull, Result};
use capsa_engine::images::PullPolicy;
use capsa_image::cache::{self, Entry};
use capsa_image::commit::LayerBlob;
use capsa_image::config::{Empty, Healthcheck, History, ImageConfig};
use capsa_image::{Digest, ImageRecord};
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
    pub context: PathBuf,
    pub ignore: crate::ignore::Ignore,
    globals: BTreeMap<String, Option<String>>,
    used: std::cell::RefCell<std::collections::BTreeSet<String>>,
    pub ran: Cell<usize>,
    pub cached: Cell<usize>,
    /// Files `ADD URL` fetched, removed when the build ends.
    pub fetched: std::cell::RefCell<Vec<PathBuf>>,
}

impl Drop for Build<'_> {
    fn drop(&mut self) {
        for f in self.fetched.borrow().iter() {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The Containerfile in `context`, as `-f` names it or podman finds it.
fn containerfile(opts: &Options) -> Result<(String, PathBuf)> {
    let path = match &opts.file {
        Some(f) => f.clone(),
        None => ["Containerfile", "Dockerfile"]
            .iter()
            .map(|n| opts.context.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                invalid(
                    opts.context.display().to_string(),
                    "no Containerfile or Dockerfile in the context (or give -f)",
                )
            })?,
    };
    let path = std::fs::canonicalize(&path).map_err(|e| invalid(path.display().to_string(), e))?;
    let meta = std::fs::metadata(&path).map_err(|e| invalid(path.display().to_string(), e))?;
    if !meta.is_file() || meta.len() > containerfile::MAX_SIZE as u64 {
        return Err(invalid(
            path.display().to_string(),
            "not a regular file of at most 4 MiB",
        ));
    }
    let text =
        std::fs::read_to_string(&path).map_err(|e| invalid(path.display().to_string(), e))?;
    Ok((text, path))
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
        if !context.is_dir() {
            return Err(invalid(
                context.display().to_string(),
                "the context must be a directory",
            ));
        }
        let (text, path) = containerfile(opts)?;
        let name = path
            .strip_prefix(&context)
            .unwrap_or(&path)
            .display()
            .to_string();
        let file = containerfile::parse(&text, &name)?;
        let ignore = [".containerignore", ".dockerignore"]
            .iter()
            .find_map(|n| std::fs::read_to_string(context.join(n)).ok())
            .map(|t| crate::ignore::Ignore::parse(&t))
            .unwrap_or_default();
        let b = Build {
            engine,
            opts,
            pull,
            events,
            globals: BTreeMap::new(),
            file,
            context,
            ignore,
            used: Default::default(),
            ran: Cell::new(0),
            cached: Cell::new(0),
            fetched: Default::default(),
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
        // What the step does, spelled out for its key.
        let prepared = match &ins.kind {
            Kind::Copy(c) | Kind::Add(c) => {
                Some(crate::copy::prepare(self, st, ins, c, done, stage)?)
            }
            _ => None,
        };
        let what = match (&prepared, &ins.kind) {
            (Some(p), _) => p.describe(),
            (None, Kind::Run { heredocs, .. }) => {
                let mut w = ins.to_string();
                for h in heredocs {
                    w.push('\n');
                    w.push_str(&h.body);
                }
                w.push('\n');
                w.push_str(&st.run_env().join("\n"));
                w
            }
            _ => ins.to_string(),
        };
        let k = key(&st.key, &[what.as_bytes()]);
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
            created_by: Some(format!("{what_line} # capsa", what_line = ins)),
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
