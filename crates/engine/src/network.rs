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

use crate::container::{Container, Status};
use crate::error::{Error, IoContext, Result};
use crate::Engine;
use capsa_network::{Endpoint, Network, Subnet, Subnet6};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The network `capsa run` uses unless told otherwise.
pub const DEFAULT: &str = "bridge";
const DEFAULT_BRIDGE: &str = "capsa0";
const DEFAULT_SUBNET: &str = "10.99.0.0/16";

/// What `--network` asks for, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    None,
    Host,
    /// Another container's namespace.
    Container(String),
    /// A bridge network by name (`bridge` or a user network).
    Bridge(String),
}

/// `--network VALUE`; the default network without one.
pub fn mode(value: Option<&str>) -> Mode {
    match value.unwrap_or(DEFAULT) {
        "none" => Mode::None,
        "host" => Mode::Host,
        "default" => Mode::Bridge(DEFAULT.into()),
        c if c.starts_with("container:") => Mode::Container(c["container:".len()..].to_string()),
        n => Mode::Bridge(n.to_string()),
    }
}

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
    capsa_sys::file::write_atomic(&p, &body, 0o644).at("write", &p)
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
    Ok(n)
}

/// The lease files of every container on `name`: (container dir, endpoint).
fn leases(engine: &Engine, name: &str) -> Vec<(PathBuf, Endpoint)> {
    let file = format!("net-{name}.json");
    std::fs::read_dir(engine.containers())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let b = std::fs::read(e.path().join(&file)).ok()?;
            Some((e.path(), serde_json::from_slice(&b).ok()?))
        })
        .collect()
}

/// The container ids on a network.
pub fn members(engine: &Engine, name: &str) -> Vec<String> {
    leases(engine, name)
        .into_iter()
        .filter_map(|(d, _)| d.file_name().map(|f| f.to_string_lossy().into_owned()))
        .collect()
}

/// `capsa network rm`: only a network no container is on.
pub fn remove(engine: &Engine, name: &str) -> Result<()> {
    let n = get(engine, name)?;
    let _l = engine.lock(&format!("ipam-{name}"))?;
    let _b = engine.lock(&format!("net-{name}"))?;
    let on = members(engine, name);
    if !on.is_empty() {
        return Err(Error::Conflict(format!(
            "network {name} has containers: {}; remove them or disconnect them first",
            on.iter().map(|i| &i[..12]).collect::<Vec<_>>().join(", ")
        )));
    }
    let _ = capsa_network::remove_bridge_if_unused(&n);
    let p = path(engine, name);
    std::fs::remove_file(&p).at("remove", &p)
}

/// Endpoints of a container, in the order it joined its networks.
pub fn endpoints(dir: &Path) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("net-") && n.ends_with(".json")
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| a.ifname.cmp(&b.ifname));
    out
}

/// Aliases are names in hosts files, and only user networks have them
/// (the default one names nobody, as docker's).
fn check_aliases(net: &Network, aliases: &[String]) -> Result<()> {
    if let Some(a) = aliases.iter().find(|a| !is_name(a, 253)) {
        return Err(crate::error::flag(
            "--network-alias",
            format!("{a:?}: letters, digits, _ . - (a host name)"),
        ));
    }
    if !aliases.is_empty() && net.name == DEFAULT {
        return Err(crate::error::flag(
            "--network-alias",
            "aliases are names on a user network; the default network has none",
        ));
    }
    Ok(())
}

/// What a run asks of the network, checked before anything is made: its
/// bridge network (none for `none`, `host`, `container:`) and the ports
/// it publishes (`-p`; `-P` is added once the image is read).
pub fn request(
    engine: &Engine,
    mode: &Mode,
    opts: &crate::options::RunOptions,
) -> Result<(Option<Network>, Vec<capsa_network::Published>)> {
    let mut ports = Vec::new();
    for p in &opts.publish {
        ports.extend(capsa_network::ports::parse(p).map_err(net_err)?);
    }
    let publishes = !ports.is_empty() || opts.publish_all;
    let net = match mode {
        Mode::Bridge(n) => get(engine, n)?,
        _ if publishes => {
            return Err(crate::error::flag(
                "-p",
                "ports are published from a bridge network, not with --network none, host or container:",
            ))
        }
        _ if !opts.network_aliases.is_empty() => {
            return Err(crate::error::flag(
                "--network-alias",
                "aliases are names on a user network, not with --network none, host or container:",
            ))
        }
        _ => return Ok((None, ports)),
    };
    check_aliases(&net, &opts.network_aliases)?;
    if net.internal && publishes {
        return Err(crate::error::flag(
            "-p",
            format!(
                "network {} is internal: nothing is routed into it",
                net.name
            ),
        ));
    }
    if net.subnet6.is_none() {
        if let Some(p) = ports
            .iter()
            .find(|p| p.host_ip.is_some_and(|i| i.is_ipv6()))
        {
            return Err(crate::error::flag(
                "-p",
                format!(
                    "{}: network {} has no IPv6 (create it with --ipv6)",
                    p.host_addr(),
                    net.name
                ),
            ));
        }
    }
    Ok((Some(net), ports))
}

/// Lease an address on `net` for the container `id` (directory `dir`),
/// as interface number `n` in the container.
pub fn allocate(
    engine: &Engine,
    net: &Network,
    id: &str,
    dir: &Path,
    n: usize,
    aliases: &[String],
) -> Result<Endpoint> {
    // Leases have a lock of their own: a create never waits for a bridge
    // being made or deleted (`net-<name>`), only for other leases.
    let _l = engine.lock(&format!("ipam-{}", net.name))?;
    let file = dir.join(format!("net-{}.json", net.name));
    if file.exists() {
        return Err(Error::Conflict(format!(
            "container {} is already on network {}",
            &id[..12],
            net.name
        )));
    }
    let held = leases(engine, &net.name);
    let taken: Vec<Ipv4Addr> = held.iter().map(|(_, e)| e.ip).collect();
    let ip = net.subnet.allocate(net.gateway, &taken).map_err(net_err)?;
    let ip6 = match (net.subnet6, net.gateway6) {
        (Some(s6), Some(g6)) => {
            let taken6: Vec<_> = held.iter().filter_map(|(_, e)| e.ip6).collect();
            Some(s6.allocate(g6, &taken6).map_err(net_err)?)
        }
        _ => None,
    };
    let ep = Endpoint {
        network: net.name.clone(),
        ip,
        ip6,
        ifname: format!("eth{n}"),
        host_veth: format!("veth{}{n}", &id[..8]),
        aliases: aliases.to_vec(),
    };
    let body = serde_json::to_vec(&ep).map_err(|e| Error::data(file.display(), e))?;
    capsa_sys::file::write_atomic(&file, &body, 0o644).at("write", &file)?;
    Ok(ep)
}

/// Give the lease back.
pub fn release(dir: &Path, network: &str) {
    let _ = std::fs::remove_file(dir.join(format!("net-{network}.json")));
}

/// A container on a user network, as the others' hosts files name it.
struct Member {
    id: String,
    name: String,
    hostname: String,
    /// Its hosts lines on this network (IPv4, and IPv6 when it has one).
    lines: String,
}

/// Who runs on each user network, read once per command (each lease file
/// and record once, however many hosts files are written). A created or
/// stopped container is not named, as docker's resolver does not name it.
#[derive(Default)]
struct Rosters(std::collections::HashMap<String, Vec<Member>>);

impl Rosters {
    fn of(&mut self, engine: &Engine, network: &str) -> &[Member] {
        self.0.entry(network.to_string()).or_insert_with(|| {
            leases(engine, network)
                .into_iter()
                .filter_map(|(dir, ep)| {
                    let id = dir.file_name()?.to_string_lossy().into_owned();
                    let c = engine
                        .load(&id)
                        .ok()
                        .filter(|c| matches!(c.state.status, Status::Running | Status::Paused))?;
                    let lines = std::iter::once(std::net::IpAddr::from(ep.ip))
                        .chain(ep.ip6.map(Into::into))
                        .map(|ip| {
                            let mut names = vec![c.name.clone(), c.short_id().to_string()];
                            names.extend(ep.aliases.iter().cloned());
                            format!("{ip}\t{}\n", names.join(" "))
                        })
                        .collect();
                    Some(Member {
                        hostname: c.hostname(),
                        name: c.name,
                        id,
                        lines,
                    })
                })
                .collect()
        })
    }

    /// The hosts file of container `id`: itself, then (on user networks)
    /// the other containers of its networks.
    fn hosts_file(
        &mut self,
        engine: &Engine,
        id: &str,
        hostname: &str,
        name: &str,
        eps: &[Endpoint],
    ) -> String {
        let mut s =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        match eps.first() {
            Some(e) => {
                s.push_str(&format!("{}\t{hostname} {name}\n", e.ip));
                if let Some(ip6) = e.ip6 {
                    s.push_str(&format!("{ip6}\t{hostname} {name}\n"));
                }
            }
            None => s.push_str(&format!("127.0.1.1\t{hostname}\n")),
        }
        for ep in eps.iter().filter(|e| e.network != DEFAULT) {
            for m in self.of(engine, &ep.network).iter().filter(|m| m.id != id) {
                s.push_str(&m.lines);
            }
        }
        s
    }
}

/// The hosts file of a container: itself, then (on user networks) the
/// other containers of its networks.
pub fn hosts_file(
    engine: &Engine,
    id: &str,
    hostname: &str,
    name: &str,
    eps: &[Endpoint],
) -> String {
    Rosters::default().hosts_file(engine, id, hostname, name, eps)
}

/// Rewrite the hosts files of every other container running on `c`'s user
/// `networks` (after `c` joined, left, started or stopped), and with
/// `own` (its endpoints) `c`'s own too: in place, since each is a bind
/// mount in its container. One roster for all of them.
pub fn refresh_peers(
    engine: &Engine,
    c: &Container,
    networks: &[String],
    own: Option<&[Endpoint]>,
) {
    let mut rosters = Rosters::default();
    let hosts = |id: &str| engine.run.join("files").join(id).join("hosts");
    if let Some(eps) = own {
        let path = hosts(&c.id);
        if path.exists() {
            let text = rosters.hosts_file(engine, &c.id, &c.hostname(), &c.name, eps);
            let _ = std::fs::write(&path, text);
        }
    }
    for net in networks.iter().filter(|n| n.as_str() != DEFAULT) {
        let peers: Vec<(String, String, String)> = rosters
            .of(engine, net)
            .iter()
            .filter(|m| m.id != c.id)
            .map(|m| (m.id.clone(), m.hostname.clone(), m.name.clone()))
            .collect();
        for (id, hostname, name) in peers {
            let path = hosts(&id);
            if !path.exists() {
                continue;
            }
            let eps = endpoints(&engine.containers().join(&id));
            let text = rosters.hosts_file(engine, &id, &hostname, &name, &eps);
            let _ = std::fs::write(&path, text);
        }
    }
}

/// `c` started or stopped (its record says so), on endpoints `eps`: its
/// own hosts file and those of the others on its user networks now name
/// whoever runs. Nothing to do (and no I/O) without a user network.
pub fn running_changed(engine: &Engine, c: &Container, eps: &[Endpoint]) {
    let networks: Vec<String> = eps
        .iter()
        .map(|e| e.network.clone())
        .filter(|n| n != DEFAULT)
        .collect();
    if !networks.is_empty() {
        refresh_peers(engine, c, &networks, Some(eps));
    }
}

/// What a running container holds of the network: the sockets that keep
/// its published host ports, and the ports as published.
#[derive(Debug, Default)]
pub struct Attached {
    pub sockets: Vec<std::os::fd::OwnedFd>,
    pub ports: Vec<capsa_network::Published>,
    /// The networks it was put on.
    pub endpoints: Vec<Endpoint>,
}

/// Put the container (its init is `pid`) on its networks and publish its
/// ports: called by the monitor between the create and the start. Undone
/// on failure.
pub fn connect(engine: &Engine, c: &Container, pid: i32) -> Result<Attached> {
    use std::os::fd::AsFd;
    let eps = endpoints(&c.dir(engine));
    let mut held = Attached::default();
    let Some(first) = eps.first() else {
        return Ok(held);
    };
    let res = (|| {
        for p in &c.ports {
            let mut p = *p;
            held.sockets
                .push(capsa_network::ports::reserve(&mut p).map_err(net_err)?);
            if first.ip6.is_some() && p.host_ip.is_none() {
                held.sockets
                    .extend(capsa_network::ports::reserve6(&p).map_err(net_err)?);
            }
            held.ports.push(p);
        }
        let ns_path = format!("/proc/{pid}/ns/net");
        let ns = std::fs::File::open(&ns_path).at("open", &ns_path)?;
        let mut nets = Vec::new();
        for (n, ep) in eps.iter().enumerate() {
            let net = get(engine, &ep.network)?;
            let _l = engine.lock(&format!("net-{}", net.name))?;
            capsa_network::attach(&net, ns.as_fd(), ep, n == 0).map_err(net_err)?;
            nets.push(net);
        }
        // Ports go to the first network's address: its bridge routes
        // 127.0.0.1 to the container (IPv4 ports on every address or on a
        // loopback one).
        let loopback = held
            .ports
            .iter()
            .any(|p| p.host_ip.is_none_or(|h| h.is_loopback() && h.is_ipv4()));
        let refs: Vec<&capsa_network::Network> = nets.iter().collect();
        // Under the first network's lock: a container stopping on it must
        // not clear route_localnet between our ports and the flag.
        let _l = match nets.first() {
            Some(n) => Some(engine.lock(&format!("net-{}", n.name))?),
            None => None,
        };
        capsa_network::nft::add_container(&refs, &held.ports, first.ip, first.ip6)
            .map_err(net_err)?;
        // Only once the guard is known to be in place.
        if let (true, Some(net)) = (loopback, nets.first()) {
            capsa_network::route_localnet(net).map_err(net_err)?;
        }
        Ok(())
    })();
    match res {
        Ok(()) => {
            held.endpoints = eps;
            Ok(held)
        }
        Err(e) => {
            disconnect(engine, c, &held.ports);
            Err(e)
        }
    }
}

/// Undo `connect` once the container has stopped: its ports, its veth
/// pairs, and a bridge left with no port.
pub fn disconnect(engine: &Engine, c: &Container, ports: &[capsa_network::Published]) {
    let eps = endpoints(&c.dir(engine));
    release_ports(engine, ports, &eps);
    teardown(engine, &eps);
}

/// Stop sending the published ports to the container (whose endpoints are
/// `eps`). Ports went to its first network: that bridge stops routing
/// 127.0.0.1 once no port needs it.
pub fn release_ports(engine: &Engine, ports: &[capsa_network::Published], eps: &[Endpoint]) {
    capsa_network::nft::remove_ports(ports);
    if ports.is_empty() {
        return;
    }
    if let Some(net) = eps.first().and_then(|ep| get(engine, &ep.network).ok()) {
        if let Ok(_l) = engine.lock(&format!("net-{}", net.name)) {
            let _ = capsa_network::clear_route_localnet_if_unused(&net);
        }
    }
}

/// Delete the endpoints' veth pairs, and each bridge left with no port
/// (deleting a link waits for the kernel's RCU grace periods: tens of ms,
/// which the monitor spends after it has reported the exit).
pub fn teardown(engine: &Engine, eps: &[Endpoint]) {
    for ep in eps {
        capsa_network::detach(ep);
        if let Ok(net) = get(engine, &ep.network) {
            if let Ok(_l) = engine.lock(&format!("net-{}", net.name)) {
                let _ = capsa_network::remove_bridge_if_unused(&net);
            }
        }
    }
}

/// `capsa network connect`: lease an address on `name` for `c`; a running
/// container gets its interface at once, the others at their next start.
pub fn connect_one(
    engine: &Engine,
    name: &str,
    c: &Container,
    aliases: &[String],
) -> Result<Endpoint> {
    use std::os::fd::AsFd;
    if c.options
        .network
        .as_deref()
        .is_some_and(|n| n == "host" || n == "none" || n.starts_with("container:"))
    {
        return Err(Error::Conflict(format!(
            "container {} uses --network {}: it has no network namespace of its own to connect",
            c.name,
            c.options.network.as_deref().unwrap_or_default()
        )));
    }
    let net = get(engine, name)?;
    check_aliases(&net, aliases)?;
    let dir = c.dir(engine);
    let n = endpoints(&dir).len();
    let ep = allocate(engine, &net, &c.id, &dir, n, aliases)?;
    let c = crate::manage::refresh(engine, c.clone())?;
    if c.state.status == crate::Status::Running || c.state.status == crate::Status::Paused {
        let ns_path = format!("/proc/{}/ns/net", c.state.pid);
        let res = std::fs::File::open(&ns_path)
            .at("open", &ns_path)
            .and_then(|ns| {
                let _l = engine.lock(&format!("net-{}", net.name))?;
                capsa_network::attach(&net, ns.as_fd(), &ep, n == 0).map_err(net_err)?;
                // The guard, asserted on this attach too.
                capsa_network::nft::add_container(&[&net], &[], ep.ip, ep.ip6).map_err(net_err)
            });
        if let Err(e) = res {
            release(&dir, &net.name);
            return Err(e);
        }
    }
    refresh_peers(
        engine,
        &c,
        std::slice::from_ref(&net.name),
        Some(&endpoints(&dir)),
    );
    Ok(ep)
}

/// `capsa network disconnect`.
pub fn disconnect_one(engine: &Engine, name: &str, c: &Container) -> Result<()> {
    let dir = c.dir(engine);
    let Some(ep) = endpoints(&dir).into_iter().find(|e| e.network == name) else {
        return Err(Error::NotFound(format!(
            "container {} is not on network {name}",
            c.name
        )));
    };
    capsa_network::detach(&ep);
    release(&dir, name);
    if let Ok(net) = get(engine, name) {
        let _l = engine.lock(&format!("net-{name}"))?;
        let _ = capsa_network::remove_bridge_if_unused(&net);
    }
    refresh_peers(engine, c, &[name.to_string()], Some(&endpoints(&dir)));
    Ok(())
}

/// `capsa network inspect`: the network and who is on it.
pub fn inspect(engine: &Engine, name: &str) -> Result<serde_json::Value> {
    let n = get(engine, name)?;
    let mut containers = serde_json::Map::new();
    for (dir, ep) in leases(engine, name) {
        let id = dir
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cname = engine.load(&id).map(|c| c.name).unwrap_or_default();
        containers.insert(
            id,
            serde_json::json!({"Name": cname, "IPv4Address": format!("{}/{}", ep.ip, n.subnet.prefix), "IPv6Address": ep.ip6.map(|a| a.to_string()), "Interface": ep.ifname, "HostVeth": ep.host_veth}),
        );
    }
    Ok(serde_json::json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Driver": "bridge",
        "Bridge": n.bridge,
        "EnableIPv6": n.subnet6.is_some(),
        "Internal": n.internal,
        "IPAM": {"Config": std::iter::once(json_subnet(&n.subnet.to_string(), &n.gateway.to_string()))
            .chain(n.subnet6.zip(n.gateway6).map(|(s, g)| json_subnet(&s.to_string(), &g.to_string())))
            .collect::<Vec<_>>()},
        // The CVE-2020-8558 guard as the kernel has it now: whether the
        // bridge routes 127.0.0.1 (route_localnet) and the drop rule that
        // keeps containers from forging packets to it is there.
        "LoopbackGuard": {
            "RouteLocalnet": std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{}/route_localnet", n.bridge))
                .is_ok_and(|v| v.trim() == "1"),
            "DropRule": capsa_network::nft::guard_active(),
        },
        "NameResolution": if n.name == DEFAULT { "none (the default network, as docker's)" } else { "/etc/hosts of each container, rewritten as containers come and go" },
        "Containers": containers,
    }))
}

/// `capsa network prune`: every network without containers but the default.
pub fn prune(engine: &Engine) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    for n in list(engine) {
        if n.name != DEFAULT && members(engine, &n.name).is_empty() {
            remove(engine, &n.name)?;
            gone.push(n.name);
        }
    }
    Ok(gone)
}

fn json_subnet(subnet: &str, gateway: &str) -> serde_json::Value {
    serde_json::json!({"Subnet": subnet, "Gateway": gateway})
}
