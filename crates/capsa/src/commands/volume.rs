//! `capsa volume ...`.

use crate::cli::{Format, VolumeCommand};
use anyhow::Result;
use capsa_engine::{volume, Engine};

fn filters(f: &[String]) -> Result<Vec<volume::Filter>> {
    Ok(f.iter()
        .map(|s| volume::Filter::parse(s))
        .collect::<capsa_engine::Result<_>>()?)
}

pub fn dispatch(engine: &Engine, cmd: VolumeCommand) -> Result<i32> {
    match cmd {
        VolumeCommand::Create(a) => {
            if a.driver != "local" {
                anyhow::bail!("--driver {}: only local volumes exist", a.driver);
            }
            let mut labels = std::collections::BTreeMap::new();
            for l in &a.label {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                if k.is_empty() {
                    anyhow::bail!("--label {l:?}: expected KEY=VALUE");
                }
                labels.insert(k.to_string(), v.to_string());
            }
            let v = volume::create(engine, a.name.as_deref(), labels)?;
            println!("{}", v.name);
        }
        VolumeCommand::Ls(a) => {
            let vols = volume::select(engine, &filters(&a.filter)?)?;
            let rows: Vec<_> = vols
                .iter()
                .map(|(v, users)| {
                    serde_json::json!({
                        "Name": v.name,
                        "Driver": v.driver,
                        "Scope": v.scope,
                        "Mountpoint": v.mountpoint,
                        "Labels": v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                        "Links": users.len().to_string(),
                        "Size": "N/A",
                    })
                })
                .collect();
            const HEADERS: &[(&str, &str)] = &[
                ("Name", "VOLUME NAME"),
                ("Driver", "DRIVER"),
                ("Scope", "SCOPE"),
                ("Mountpoint", "MOUNTPOINT"),
                ("Labels", "LABELS"),
                ("Links", "LINKS"),
                ("Size", "SIZE"),
            ];
            if a.quiet {
                for (v, _) in &vols {
                    println!("{}", v.name);
                }
            } else if crate::format::template(&a.format, &rows, HEADERS)? {
            } else if a.format == Format::Json {
                let v: Vec<_> = vols.iter().map(|(v, _)| v).collect();
                println!("{}", crate::format::pretty(&v)?);
            } else {
                println!("{:<10}{:<40}CONTAINERS", "DRIVER", "VOLUME NAME");
                for (v, users) in &vols {
                    println!("{:<10}{:<40}{}", v.driver, v.name, users.join(","));
                }
            }
        }
        VolumeCommand::Inspect(a) => {
            let mut out = Vec::new();
            for n in &a.names {
                let v = volume::get(engine, n)?;
                let mut j = serde_json::to_value(&v)?;
                j["UsedBy"] = serde_json::json!(volume::users(engine, n)?);
                out.push(j);
            }
            if !crate::format::template(&a.format, &out, &[])? {
                println!("{}", crate::format::pretty(&out)?);
            }
        }
        VolumeCommand::Rm(a) => {
            let mut code = 0;
            for n in &a.names {
                match volume::remove(engine, n) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("capsa: volume rm {n}: {e}");
                        code = 1;
                    }
                }
            }
            return Ok(code);
        }
        VolumeCommand::Prune(a) => {
            let gone = volume::prune(engine, a.all, &filters(&a.filter)?)?;
            for n in &gone {
                println!("Deleted: {n}");
            }
        }
    }
    Ok(0)
}
