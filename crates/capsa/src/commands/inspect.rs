//! inspect, stats, top, info.

use crate::cli::*;
use crate::progress::human;
use anyhow::{bail, Context, Result};
use capsa_engine::{inspect, manage, Container, Engine, Status};
use std::time::Duration;

pub fn inspect(engine: &Engine, a: InspectAnyArgs) -> Result<i32> {
    let mut out = Vec::new();
    for t in &a.targets {
        let as_container = a.kind.as_deref() != Some("image");
        let as_image = a.kind.as_deref() != Some("container");
        match engine.find(t) {
            Ok(c) if as_container => {
                let c = manage::refresh(engine, c)?;
                out.push(inspect::inspect(engine, &c));
                continue;
            }
            _ => {}
        }
        if as_image {
            if let Ok(v) = super::images::inspect_one(&engine.images, t) {
                out.push(v);
                continue;
            }
        }
        bail!("no such container or image: {t}");
    }
    if !crate::format::template(&a.format, &out, &[])? {
        println!("{}", crate::format::pretty(&out)?);
    }
    Ok(0)
}

pub fn stats(engine: &Engine, a: StatsArgs) -> Result<i32> {
    let pick = || -> Result<Vec<Container>> {
        if a.containers.is_empty() {
            Ok(engine
                .list()?
                .into_iter()
                .filter(|c| c.state.status == Status::Running && c.init_alive())
                .collect())
        } else {
            a.containers.iter().map(|w| Ok(engine.find(w)?)).collect()
        }
    };
    let interval = Duration::from_millis(if a.no_stream { 500 } else { 1000 });
    let mut sampler = capsa_engine::stats::Sampler::default();
    // CPU % needs two samples: the first round only primes them.
    sampler.sample(&pick()?);
    loop {
        std::thread::sleep(interval);
        let rows = sampler.sample(&pick()?);
        // docker's stats fields, for a template.
        let fields: Vec<serde_json::Value> = rows
            .iter()
            .map(|s| {
                serde_json::json!({
                    "Container": s.id,
                    "ID": s.id,
                    "Name": s.name,
                    "CPUPerc": format!("{:.2}%", s.cpu_percent.unwrap_or(0.0)),
                    "MemUsage": format!("{} / {}", human(s.mem_usage), human(s.mem_limit)),
                    "MemPerc": format!("{:.2}%", s.mem_perc),
                    "NetIO": format!("{} / {}", human(s.net_input), human(s.net_output)),
                    "BlockIO": format!("{} / {}", human(s.block_input), human(s.block_output)),
                    "PIDs": s.pids.to_string(),
                })
            })
            .collect();
        const HEADERS: &[(&str, &str)] = &[
            ("Container", "CONTAINER"),
            ("ID", "CONTAINER ID"),
            ("Name", "NAME"),
            ("CPUPerc", "CPU %"),
            ("MemUsage", "MEM USAGE / LIMIT"),
            ("MemPerc", "MEM %"),
            ("NetIO", "NET I/O"),
            ("BlockIO", "BLOCK I/O"),
            ("PIDs", "PIDS"),
        ];
        if matches!(a.format, Format::Template { .. }) {
            if !a.no_stream {
                print!("\x1b[2J\x1b[H");
            }
            crate::format::template(&a.format, &fields, HEADERS)?;
        } else if a.format == Format::Json {
            println!("{}", serde_json::to_string(&rows)?);
        } else {
            if !a.no_stream {
                print!("\x1b[2J\x1b[H");
            }
            println!(
                "{:12}  {:20}  {:>7}  {:>21}  {:>6}  {:>17}  {:>17}  PIDS",
                "CONTAINER ID",
                "NAME",
                "CPU %",
                "MEM USAGE / LIMIT",
                "MEM %",
                "NET I/O",
                "BLOCK I/O"
            );
            for s in &rows {
                println!(
                    "{:12}  {:20}  {:>6.2}%  {:>21}  {:>5.2}%  {:>17}  {:>17}  {}",
                    s.id,
                    s.name,
                    s.cpu_percent.unwrap_or(0.0),
                    format!("{} / {}", human(s.mem_usage), human(s.mem_limit)),
                    s.mem_perc,
                    format!("{} / {}", human(s.net_input), human(s.net_output)),
                    format!("{} / {}", human(s.block_input), human(s.block_output)),
                    s.pids
                );
            }
        }
        if a.no_stream {
            return Ok(0);
        }
    }
}

pub fn top(engine: &Engine, a: TopArgs) -> Result<i32> {
    let c = manage::refresh(engine, engine.find(&a.container)?)?;
    let pids = inspect::top(&c)?;
    if pids.is_empty() {
        bail!("container {} has no processes", c.name);
    }
    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    let o = std::process::Command::new("ps")
        .args([
            "-o",
            "user,pid,ppid,c,stime,tty,time,cmd",
            "-p",
            &list.join(","),
        ])
        .output()
        .context("running ps")?;
    print!("{}", String::from_utf8_lossy(&o.stdout));
    Ok(0)
}

pub fn info(engine: &Engine, a: FormatArgs) -> Result<i32> {
    let v = inspect::info(engine);
    if crate::format::template(&a.format, std::slice::from_ref(&v), &[])? {
    } else if a.format == Format::Json {
        println!("{}", crate::format::pretty(&v)?);
    } else if let Some(m) = v.as_object() {
        for (k, val) in m {
            let text = match val {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            println!("{k:22} {text}");
        }
    }
    Ok(0)
}
