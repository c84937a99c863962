//! Networks as the engine keeps them: `<root>/networks/<name>.json`, the
//! default `bridge` network made on first use, and each container's place
//! on a network as a lease file in its own directory
//! (`<root>/containers/<id>/net-<name>.json`): an address is taken under
//! the network's lease lock (`ipam-<name>`) and freed with the container;
//! the bridge is made and deleted under `net-<name>`.
//!
//! Names: every container's `/etc/hosts` lists itself, and on a user
//! network (not the default `bridge`, as in docker) every other container
//! of that network by name and short id. A container that joins is added
//! to the others' files, one that goes is taken out: plain files, no DNS
//! server to run (the files are rewritten in place, as they are bind
//! mounts).

mod attach;
mod hosts;
mod inspect;
mod leases;
mod pasta;

pub use attach::*;
pub use hosts::*;
pub use inspect::*;
pub use leases::*;
pub use pasta::Pasta;

use crate::container::{Container, Status};
use crate::error::{Error, IoContext, Result};
use crate::Engine;
use capsa_network::{Endpoint, Network, Subnet, Subnet6};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The network `capsa run` uses unless told otherwise.
pub const DEFAULT: &str = crate::options::DEFAULT_NETWORK;
const DEFAULT_BRIDGE: &str = "capsa0";
const DEFAULT_SUBNET: &str = "10.99.0.0/16";

pub use crate::options::{mode, NetworkMode as Mode};

fn dir(engine: &Engine) -> PathBuf {
    engine.root.join("networks")
}

fn path(engine: &Engine, name: &str) -> PathBuf {
    dir(engine).join(format!("{name}.json"))
}

/// A name of letters, digits, `_ . -`, starting with a letter or digit,
/// at most `max` long: network names and aliases alike.
fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn check_name(name: &str) -> Result<()> {
    if is_name(name, 64) && !matches!(name, "none" | "host" | "default") {
        Ok(())
    } else {
        Err(crate::error::flag(
            "network name",
            format!("{name:?}: letters, digits, _ . - (not none, host or default)"),
        ))
    }
}

fn save(engine: &Engine, n: &Network) -> Result<()> {
    let d = dir(engine);
    std::fs::create_dir_all(&d).at("create", &d)?;
    let p = path(engine, &n.name);
    let body = serde_json::to_vec_pretty(n).map_err(|e| Error::data(&n.name, e))?;
    capsa_sys::file::write_atomic(&p, &body, 0o644, capsa_sys::file::Durability::Synced)
        .at("write", &p)
}

/// The network `name`; the default one is made on first use.
pub fn get(engine: &Engine, name: &str) -> Result<Network> {
    let p = path(engine, name);
    let parse = |b: Vec<u8>| serde_json::from_slice(&b).map_err(|e| Error::data(p.display(), e));
    match std::fs::read(&p) {
        Ok(b) => parse(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && name == DEFAULT => {
            let _l = engine.lock("networks")?;
            // Made by another command while we waited for the lock?
            if let Ok(b) = std::fs::read(&p) {
                return parse(b);
            }
            let subnet = Subnet::parse(DEFAULT_SUBNET).map_err(net_err)?;
            let n = Network {
                name: DEFAULT.into(),
                id: crate::container::new_id()?,
                bridge: DEFAULT_BRIDGE.into(),
                subnet,
                gateway: subnet.first_host(),
                subnet6: None,
                gateway6: None,
                internal: false,
                created: capsa_sys::time::now_rfc3339(),
            };
            save(engine, &n)?;
            Ok(n)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound(format!(
            "no such network: {name} (capsa network ls lists them)"
        ))),
        Err(e) => Err(e).at("read", &p),
    }
}

/// Every network of the store, the default included once made.
pub fn list(engine: &Engine) -> Vec<Network> {
    let mut out: Vec<Network> = std::fs::read_dir(dir(engine))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub(crate) fn net_err(e: capsa_network::Error) -> Error {
    match e {
        capsa_network::Error::Conflict(m) => Error::Conflict(m),
        capsa_network::Error::Invalid { field, msg } => crate::error::flag(&field, msg),
        e => Error::Network(e),
    }
}

/// What `capsa network create` asks for.
#[derive(Debug, Default, Clone)]
pub struct CreateOptions<'a> {
    /// `--subnet`, each IPv4 or IPv6 (at most one of each).
    pub subnets: &'a [String],
    /// `--gateway` for the IPv4 subnet.
    pub gateway: Option<&'a str>,
    /// `--ipv6`: an IPv6 subnet too (a ULA /64 unless one is given).
    pub ipv6: bool,
    /// `--internal`: no traffic routed in or out, no default route.
    pub internal: bool,
}

/// `capsa network create`: a bridge network with an IPv4 subnet (given,
/// else the first free 10.100.N.0/24), its gateway (else the subnet's
/// first address), and with `--ipv6` an IPv6 subnet.
pub fn create(engine: &Engine, name: &str, o: &CreateOptions<'_>) -> Result<Network> {
    check_name(name)?;
    let _l = engine.lock("networks")?;
    if path(engine, name).exists() || name == DEFAULT {
        return Err(Error::Conflict(format!("network {name} already exists")));
    }
    let (v6, v4): (Vec<&String>, Vec<&String>) = o.subnets.iter().partition(|s| s.contains(':'));
    if v4.len() > 1 || v6.len() > 1 {
        return Err(crate::error::flag(
            "--subnet",
            "at most one IPv4 and one IPv6 subnet",
        ));
    }
    let others = list(engine);
    // The host's routes, once: up to 256 candidate subnets are checked.
    let routes = capsa_network::netlink::Netlink::new()
        .and_then(|mut nl| nl.routes())
        .map_err(net_err)?;
    let id = crate::container::new_id()?;
    let bridge = format!("capsa-{}", &id[..8]);
    let subnet6 = match (v6.first(), o.ipv6) {
        (Some(s), _) => Some(Subnet6::parse(s).map_err(net_err)?),
        // A unique local /64 named by the network's id (RFC 4193).
        (None, true) => Some(
            Subnet6::parse(&format!("fd{}:{}:{}::/64", &id[..2], &id[2..6], &id[6..10]))
                .map_err(net_err)?,
        ),
        (None, false) => None,
    };
    if let Some(s6) = &subnet6 {
        if let Some(o) = others
            .iter()
            .find(|o| o.subnet6.is_some_and(|x| x.overlaps(s6)))
        {
            return Err(Error::Conflict(format!(
                "--subnet {s6} overlaps network {}",
                o.name
            )));
        }
    }
    let taken = |s: &Subnet| -> Option<String> {
        if let Some(o) = others.iter().find(|o| o.subnet.overlaps(s)) {
            return Some(format!("network {} ({})", o.name, o.subnet));
        }
        capsa_network::overlapping_route(&routes, s, subnet6.as_ref())
            .map(|r| format!("the host's route to {r}"))
    };
    let subnet = match v4.first() {
        Some(s) => {
            let s = Subnet::parse(s).map_err(net_err)?;
            if let Some(what) = taken(&s) {
                return Err(Error::Conflict(format!("--subnet overlaps {what}")));
            }
            s
        }
        None => {
            let mut found = None;
            for n in 0..=255u8 {
                let s = Subnet {
                    addr: Ipv4Addr::new(10, 100, n, 0),
                    prefix: 24,
                };
                if taken(&s).is_none() {
                    found = Some(s);
                    break;
                }
            }
            found.ok_or_else(|| {
                Error::Conflict("no free subnet in 10.100.0.0/16; give --subnet".into())
            })?
        }
    };
    let gateway = match o.gateway {
        None => subnet.first_host(),
        Some(g) => {
            let ip: Ipv4Addr = g.parse().map_err(|_| {
                crate::error::flag("--gateway", format!("{g:?} is not an IPv4 address"))
            })?;
            if !subnet.contains(ip) || ip == subnet.addr {
                return Err(crate::error::flag(
                    "--gateway",
                    format!("{ip} is not a host address of {subnet}"),
                ));
            }
            ip
        }
    };
    let n = Network {
        name: name.to_string(),
        id,
        bridge,
        subnet,
        gateway,
        gateway6: subnet6.map(|s| s.first_host()),
        subnet6,
        internal: o.internal,
        created: capsa_sys::time::now_rfc3339(),
    };
    save(engine, &n)?;
    crate::events::emit(
        engine,
        &crate::events::Event::new(
            crate::events::Kind::Network,
            "create",
            &n.id,
            &[("name", &n.name), ("type", "bridge")],
        ),
    );
    Ok(n)
}
