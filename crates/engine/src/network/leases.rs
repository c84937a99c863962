//! Who is on a network: each container's lease file (`net-<name>.json`
//! in its directory), addresses taken and freed under the network's lock.

use super::*;

/// The lease files of every container on `name`: (container dir, endpoint).
pub(super) fn leases(engine: &Engine, name: &str) -> Vec<(PathBuf, Endpoint)> {
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
    std::fs::remove_file(&p).at("remove", &p)?;
    crate::events::emit(
        engine,
        &crate::events::Event::new(
            crate::events::Kind::Network,
            "destroy",
            &n.id,
            &[("name", &n.name), ("type", "bridge")],
        ),
    );
    Ok(())
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
pub(super) fn check_aliases(net: &Network, aliases: &[String]) -> Result<()> {
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
        ports.extend(p.get().0.iter().copied());
    }
    let publishes = !ports.is_empty() || opts.publish_all;
    let net = match mode {
        Mode::Bridge(_) if crate::rootless::active() => {
            return Err(crate::error::flag(
                "--network",
                "rootless capsa cannot make bridges (veths and bridges take the host's root): use the default (pasta), none, host or container:NAME",
            ))
        }
        Mode::Bridge(n) => get(engine, n)?,
        // pasta is the rootless network: as root it would parse the
        // container's traffic with the host's root, for no gain.
        Mode::Pasta if !crate::rootless::active() => {
            return Err(crate::error::flag(
                "--network",
                "pasta is rootless capsa's network; as root, use a bridge (the default), none, host or container:NAME",
            ))
        }
        // pasta publishes the ports itself.
        Mode::Pasta if !opts.network_aliases.is_empty() => {
            return Err(crate::error::flag(
                "--network-alias",
                "aliases are names on a user network, not with pasta",
            ))
        }
        Mode::Pasta => return Ok((None, ports)),
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
    capsa_sys::file::write_atomic(&file, &body, 0o644, capsa_sys::file::Durability::Synced)
        .at("write", &file)?;
    Ok(ep)
}

/// Give the lease back.
pub fn release(dir: &Path, network: &str) {
    let _ = std::fs::remove_file(dir.join(format!("net-{network}.json")));
}
