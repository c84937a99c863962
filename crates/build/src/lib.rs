//! `capsa build`: images from a Containerfile. Each stage starts from an
//! image (pulled through the engine), `scratch` or an earlier stage; each
//! `RUN` runs as a real container through the engine's own runtime and
//! monitor; each `COPY` and `ADD` lands in an overlay snapshot through the
//! in-root handle; what the step changed (the overlay's upper directory)
//! becomes one layer in the same store as pulled ones. Metadata
//! instructions change the config and add history.
//!
//! The cache chains keys: a step's key hashes its parent's key, its text
//! after expansion and, for `COPY` and `ADD`, its sources' content. A hit
//! makes no container and writes no layer.
//!
//! The library never prints: progress goes to a callback as [`Event`]s,
//! and `RUN`'s output to the command's own stdout and stderr (the attach
//! client's, as `capsa run`).

// Library code returns errors; tests may unwrap.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod context;
mod copy;
mod metadata;
mod parallel;
mod run;
mod stage;

pub use capsa_containerfile::{self as containerfile, expand, ignore, ParseError};

use capsa_image::{Digest, ImageRecord, Reference};
use std::path::PathBuf;
use std::time::Duration;

/// What a build failed on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A step failed: where, and why.
    #[error("{file}:{line}: {instruction}: {reason}")]
    Step {
        file: String,
        line: usize,
        instruction: String,
        reason: String,
    },
    /// A `RUN` exited non-zero.
    #[error("{file}:{line}: {instruction}: the command exited with code {code}")]
    Run {
        file: String,
        line: usize,
        instruction: String,
        code: i32,
    },
    /// The build as a whole (its flags, context or file).
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    /// A stage built by a fork of the build failed; its words.
    #[error("{0}")]
    Forked(String),
    #[error(transparent)]
    Engine(#[from] capsa_engine::Error),
    #[error(transparent)]
    Image(#[from] capsa_image::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(what: impl Into<String>, reason: impl ToString) -> Error {
    Error::Invalid {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// What `capsa build` was asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The context directory.
    pub context: PathBuf,
    /// `-f`: the Containerfile (default: `Containerfile`, else
    /// `Dockerfile`, in the context).
    pub file: Option<PathBuf>,
    pub tags: Vec<Reference>,
    pub build_args: Vec<(String, String)>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// `--pull`: fetch base images even when the store has them.
    pub pull: bool,
    /// `--network` for `RUN` steps.
    pub network: Option<String>,
    /// `--cgroup-parent` for `RUN` steps.
    pub cgroup_parent: Option<String>,
    /// `--label`s on the final image.
    pub labels: Vec<(String, String)>,
    /// The monitor binary for `RUN` containers (beside `capsa`).
    pub monitor: Option<PathBuf>,
    /// The probe, for the built-in demo image as a base.
    pub probe: PathBuf,
    /// `-q`: the steps' output is not shown.
    pub quiet: bool,
}

/// What the build tells as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// A step starts: stage `stage` of `stages`, step `n` of `total`.
    Step {
        stage: usize,
        stages: usize,
        n: usize,
        total: usize,
        text: String,
    },
    /// The step's result came from the cache.
    Cached,
    /// The step is done: its stage, its time and the layer it made.
    Done {
        stage: usize,
        took: Duration,
        layer: Option<u64>,
    },
    /// Something the user should know (an unused build arg).
    Note(String),
}

/// One step as it went, for `--trace`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    /// The stage's number in the build (1-based).
    pub stage: usize,
    pub text: String,
    pub micros: u64,
    /// The size of the layer it made.
    pub layer: Option<u64>,
    pub cached: bool,
}

/// The built image.
#[derive(Debug, Clone)]
pub struct Built {
    pub image: ImageRecord,
    /// Steps run, and steps taken from the cache.
    pub ran: usize,
    pub cached: usize,
    /// Every step, stage by stage (those of stages built at once, too).
    pub steps: Vec<StepRecord>,
}

/// Pull a base image that is not in the store (the binary shows progress).
pub type Pull<'a> = &'a dyn Fn(&Reference) -> capsa_engine::Result<ImageRecord>;

/// Build per `opts`.
pub fn build(
    engine: &capsa_engine::Engine,
    opts: &Options,
    pull: Pull<'_>,
    events: &dyn Fn(Event),
) -> Result<Built> {
    stage::Build::new(engine, opts, pull, events)?.run()
}

/// A cache key: the parent's, then the step's parts.
pub(crate) fn key(parent: &Digest, parts: &[&[u8]]) -> Digest {
    let mut h = capsa_image::digest::Hasher::new();
    h.update(parent.as_str().as_bytes());
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finish()
}
