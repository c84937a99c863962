//! `capsa network ...` and `capsa port`.

use crate::cli::{Format, NetworkCommand, PortArgs};
use anyhow::Result;
use capsa_engine::{network, Engine};

pub fn dispatch(engine: &Engine, cmd: NetworkCommand) -> Result<i32> {
    match cmd {
        NetworkCommand::Create(a) => {
            if a.driver != "bridge" {
                anyhow::bail!("--driver {}: only bridge networks exist", a.driver);
            }
            let o = network::CreateOptions {
                subnets: &a.subnet,
                gateway: a.gateway.as_deref(),
                ipv6: a.ipv6,
                internal: a.internal,
            };
            let n = network::create(engine, &a.name, &o)?;
            println!("{}", n.id);
        }
        NetworkCommand::Ls(a) => {
            // The default network is listed even before its first use.
            let _ = network::get(engine, network::DEFAULT);
            let mut filters: Vec<(&str, &str)> = Vec::new();
            for f in &a.filter {
                match f.split_once('=') {
                    Some((k @ ("name" | "id" | "driver"), v)) => filters.push((k, v)),
                    _ => anyhow::bail!("--filter {f:?}: filters are name=, id= and driver="),
                }
            }
            // Every key given, one of its values (docker's rule).
            let nets: Vec<_> = network::list(engine)
                .into_iter()
                .filter(|n| {
                    ["name", "id", "driver"].iter().all(|k| {
                        let vals: Vec<&str> = filters
                            .iter()
                            .filter(|(fk, _)| fk == k)
                            .map(|(_, v)| *v)
                            .collect();
                        vals.is_empty()
                            || vals.iter().any(|v| match *k {
                                "name" => n.name.contains(v),
                                "id" => n.id.starts_with(v),
                                _ => *v == "bridge",
                            })
                    })
                })
                .collect();
            let rows: Vec<_> = nets
                .iter()
                .map(|n| {
                    serde_json::json!({
                        "ID": &n.id[..12],
                        "Name": n.name,
                        "Driver": "bridge",
                        "Scope": "local",
                        "IPv6": n.subnet6.is_some().to_string(),
                        "Internal": n.internal.to_string(),
                        "Labels": "",
                        "CreatedAt": n.created,
                    })
                })
                .collect();
            const HEADERS: &[(&str, &str)] = &[
                ("ID", "NETWORK ID"),
                ("Name", "NAME"),
                ("Driver", "DRIVER"),
                ("Scope", "SCOPE"),
                ("IPv6", "IPV6"),
                ("Internal", "INTERNAL"),
                ("Labels", "LABELS"),
                ("CreatedAt", "CREATED AT"),
            ];
            if a.quiet {
                for n in &nets {
                    println!("{}", &n.id[..12]);
                }
            } else if crate::format::template(&a.format, &rows, HEADERS)? {
            } else if a.format == Format::Json {
                let v: Vec<_> = nets
                    .iter()
                    .map(|n| network::inspect(engine, &n.name))
                    .collect::<Result<_, _>>()?;
                println!("{}", crate::format::pretty(&v)?);
            } else {
                println!(
                    "{:<14}{:<20}{:<16}{:<18}CONTAINERS",
                    "NETWORK ID", "NAME", "BRIDGE", "SUBNET"
                );
                for n in nets {
                    let on = network::members(engine, &n.name).len();
                    println!(
                        "{:<14}{:<20}{:<16}{:<18}{on}",
                        &n.id[..12],
                        n.name,
                        n.bridge,
                        n.subnet.to_string()
                    );
                }
            }
        }
        NetworkCommand::Inspect(a) => {
            let v: Vec<_> = a
                .names
                .iter()
                .map(|n| network::inspect(engine, n))
                .collect::<Result<_, _>>()?;
            if !crate::format::template(&a.format, &v, &[])? {
                println!("{}", crate::format::pretty(&v)?);
            }
        }
        NetworkCommand::Rm(a) => {
            let mut code = 0;
            for n in &a.names {
                match network::remove(engine, n) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("capsa: {e}");
                        code = 1;
                    }
                }
            }
            return Ok(code);
        }
        NetworkCommand::Connect(a) => {
            // The record as it is (a container killed meanwhile is not
            // running): the network is told, it does not look.
            let c = capsa_engine::manage::refresh(engine, engine.find(&a.container)?)?;
            network::connect_one(engine, &a.network, &c, &a.alias)?;
        }
        NetworkCommand::Disconnect(a) => {
            let c = engine.find(&a.container)?;
            network::disconnect_one(engine, &a.network, &c)?;
        }
        NetworkCommand::Prune => {
            for n in network::prune(engine)? {
                println!("{n}");
            }
        }
    }
    Ok(0)
}

/// `capsa port CONTAINER [PORT[/PROTO]]`, as docker prints it.
pub fn port(engine: &Engine, a: PortArgs) -> Result<i32> {
    let c = engine.find(&a.container)?;
    let want = a.port.as_deref().map(|p| match p.split_once('/') {
        Some((n, proto)) => (n.to_string(), proto.to_string()),
        None => (p.to_string(), "tcp".to_string()),
    });
    let mut found = false;
    for p in &c.ports {
        let ip = p.host_addr();
        match &want {
            Some((n, proto)) => {
                if *n == p.container_port.to_string() && proto == p.proto.name() {
                    println!("{ip}:{}", p.host_port);
                    found = true;
                }
            }
            None => {
                println!(
                    "{}/{} -> {ip}:{}",
                    p.container_port,
                    p.proto.name(),
                    p.host_port
                );
                found = true;
            }
        }
    }
    if !found && want.is_some() {
        anyhow::bail!(
            "no public port {} published for {}",
            a.port.unwrap_or_default(),
            c.name
        );
    }
    Ok(0)
}
