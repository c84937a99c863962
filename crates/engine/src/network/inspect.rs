//! `capsa network inspect` and `prune`.

use super::*;

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
