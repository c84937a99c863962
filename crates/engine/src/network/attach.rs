//! A running container on its networks: veths, the guard, published
//! ports; and their undoing.

use super::*;

/// What a running container holds of the network: the sockets that keep
/// its published host ports, and the ports as published.
#[derive(Debug, Default)]
pub struct Attached {
    pub sockets: Vec<std::os::fd::OwnedFd>,
    pub ports: Vec<capsa_network::Published>,
    /// The networks it was put on.
    pub endpoints: Vec<Endpoint>,
    /// Rootless: the pasta that carries its traffic.
    pub pasta: Option<Pasta>,
}

/// Put the container (its init is `pid`) on its networks and publish its
/// ports: called by the monitor between the create and the start. Undone
/// on failure.
pub fn connect(engine: &Engine, c: &Container, pid: i32) -> Result<Attached> {
    use std::os::fd::AsFd;
    let mut held = Attached::default();
    if mode(c.options.network.as_deref()) == Mode::Pasta {
        held.ports = c.ports.clone();
        held.pasta = Some(pasta::start(&c.dir(engine), pid, &mut held.ports)?);
        return Ok(held);
    }
    let eps = endpoints(&c.dir(engine));
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
/// `c` is the record as it is now (the caller refreshed it: the network
/// does not look at processes itself).
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
    if c.state.status == crate::Status::Running || c.state.status == crate::Status::Paused {
        let ns_path = format!("/proc/{}/ns/net", c.state.pid);
        let res = std::fs::File::open(&ns_path)
            .at("open", &ns_path)
            .and_then(|ns| {
                // Security: the pid is checked to still be the init after
                // its namespace was opened: a recycled pid would put the
                // link into another process's (the host's) namespace.
                let same = capsa_runtime::state::proc_stat(c.state.pid)
                    .is_some_and(|(_, start)| start == c.state.pid_start);
                if !same {
                    return Err(Error::Conflict(format!(
                        "container {} stopped meanwhile",
                        c.name
                    )));
                }
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
        c,
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
