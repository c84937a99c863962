//! build, and builder prune: a Containerfile built through capsa-build,
//! its steps shown as they go (on stderr), the image id on stdout.

use crate::cli::*;
use anyhow::{Context, Result};
use capsa_build::Event;
use capsa_engine::Engine;
use std::cell::Cell;
use std::io::IsTerminal;

fn pair(flag: &str, v: &str, from_env: bool) -> Result<(String, String)> {
    match v.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        None if from_env && !v.is_empty() => {
            Ok((v.to_string(), std::env::var(v).unwrap_or_default()))
        }
        _ => anyhow::bail!("{flag} {v:?}: expected KEY=VALUE"),
    }
}

fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1 << 10 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

pub fn build(engine: &Engine, a: BuildArgs) -> Result<i32> {
    let tags = a
        .tag
        .iter()
        .map(|t| capsa_image::Reference::parse(t).with_context(|| format!("-t {t}")))
        .collect::<Result<Vec<_>>>()?;
    let exe = std::env::current_exe().context("locating the capsa binary")?;
    let monitor = Some(exe.with_file_name("capsa-monitor")).filter(|m| m.exists());
    let opts = capsa_build::Options {
        context: a.context.clone(),
        file: a.file.clone(),
        tags,
        build_args: a
            .build_arg
            .iter()
            .map(|v| pair("--build-arg", v, true))
            .collect::<Result<_>>()?,
        target: a.target.clone(),
        no_cache: a.no_cache,
        pull: a.pull,
        network: a.network.clone(),
        cgroup_parent: a.cgroup_parent.clone(),
        labels: a
            .label
            .iter()
            .map(|v| pair("--label", v, false))
            .collect::<Result<_>>()?,
        monitor,
        probe: exe.with_file_name("capsa-probe"),
        quiet: a.quiet,
    };
    // A terminal gets the step lines in bold; plain is for logs and CI.
    let tty = match a.progress {
        BuildProgress::Tty => true,
        BuildProgress::Plain => false,
        BuildProgress::Auto => std::io::stderr().is_terminal(),
    };
    let quiet = a.quiet;
    // This process's current step (a stage built by a fork of this
    // process has its own copy): whether the cache answered it.
    let cached = Cell::new(false);
    let stages = Cell::new(0);
    let events = |e: Event| match e {
        Event::Step {
            stage,
            stages: of,
            n,
            total,
            text,
        } => {
            cached.set(false);
            stages.set(of);
            if !quiet {
                let line = format!("[{stage}/{of}] STEP {n}/{total}: {text}");
                if tty {
                    eprintln!("\x1b[1m{line}\x1b[0m");
                } else {
                    eprintln!("{line}");
                }
            }
        }
        Event::Cached => cached.set(true),
        Event::Done { stage, took, layer } => {
            if !quiet {
                let what = match (cached.get(), layer) {
                    (true, _) => "Using cache".to_string(),
                    (false, Some(n)) => format!("layer {}", size(n)),
                    (false, None) => "no layer".to_string(),
                };
                eprintln!(
                    "[{stage}/{}] --> {what} ({:.3}s)",
                    stages.get(),
                    took.as_secs_f64()
                );
            }
        }
        Event::Note(n) => eprintln!("capsa: {n}"),
    };
    let pull = |r: &capsa_image::Reference| {
        super::transfer::pull_missing(&engine.images, r, &a.registry, quiet)
    };
    let built = match capsa_build::build(engine, &opts, &pull, &events) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("capsa: build: {e}");
            // docker build's status for a failed build.
            return Ok(1);
        }
    };
    if a.trace {
        eprintln!("trace of the build (each step's time, and the layer it made):");
        for s in &built.steps {
            eprintln!(
                "  {:>9.3} ms  {:>10}  [{}] {}{}",
                s.micros as f64 / 1e3,
                s.layer.map(size).unwrap_or_else(|| "-".into()),
                s.stage,
                if s.cached { "(cached) " } else { "" },
                s.text
            );
        }
    }
    if !quiet {
        eprintln!(
            "--> {} steps ran, {} from the cache",
            built.ran, built.cached
        );
        for n in &built.image.names {
            eprintln!("Successfully tagged {n}");
        }
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, built.image.id.to_string())
            .with_context(|| format!("--iidfile {}", f.display()))?;
    }
    println!("{}", built.image.id);
    Ok(0)
}

pub fn prune(engine: &Engine, a: BuilderPruneArgs) -> Result<()> {
    let n = capsa_image::cache::prune(&engine.images, a.all)?;
    let (_, chains) = super::images::in_use(engine)?;
    let c = capsa_image::local::gc(&engine.images, &chains)?;
    println!(
        "Deleted {n} build cache entries; total reclaimed space: {}",
        size(c.bytes)
    );
    Ok(())
}
