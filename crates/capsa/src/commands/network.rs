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
            let nets = network::list(engine);
            if a.format == Format::Json {
                let v: Vec<_> = nets
                    .iter()
                    .map(|n| network::inspect(engine, &n.name))
                    .collect::<Result<_, _>>()?;
                println!("{}", serde_json::to_string_pretty(&v)?);
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
            println!("{}", serde_json::to_string_pretty(&v)?);
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
