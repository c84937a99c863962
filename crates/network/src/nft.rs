//! capsa's own nftables table, `inet capsa`, through nft's JSON interface.
//! No rule is ever added per container: containers and networks are
//! elements of sets and maps, so adding or removing one is one element,
//! found by value, never a rule handle to track.
//!
//! ```text
//! table inet capsa
//!   sets subnets, subnets6, bridges          our networks
//!   sets internal, internal_self              --internal bridges, and each
//!                                             as (bridge . bridge)
//!   maps any_addr, any_port   proto . port      -> container ip, port
//!   maps ip_addr, ip_port      ip . proto . port -> container ip, port
//!                (a pair of maps, as nft 1.0's JSON reader refuses
//!                concatenated map values)
//!   map any6_addr  proto . port -> container ipv6 (port from any_port)
//!   maps ip6_addr, ip6_port   ipv6 . proto . port -> container ipv6, port
//!   prerouting, output (nat):  fib daddr type local -> jump ports
//!   ports:        dnat through the ip_ maps, then the any_ maps
//!   postrouting:  masquerade out of our subnets (both families); from
//!                 127.0.0.0/8 into a bridge (route_localnet); hairpin (a
//!                 container to a port published by its own network)
//!   forward:      drop in or out of an internal bridge; accept from our
//!                 bridges, and replies to them
//!   guard (raw prerouting): drop packets from our bridges to 127.0.0.0/8
//! ```
//!
//! The table is made with the first network and deleted with the last, so
//! a host without capsa networks has no trace of it.

use crate::error::{Error, Result};
use crate::ports::Published;
use serde_json::{json, Value};
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

const TABLE: &str = "capsa";
/// One table for both address families: `inet`.
const FAMILY: &str = "inet";
/// The lock every capsa store on the host takes around the table's life.
const LOCK: &str = "/run/capsa-nftables.lock";

/// Run `nft -j -f -` with these commands, all or nothing.
fn run(cmds: Vec<Value>) -> Result<()> {
    let body = json!({ "nftables": cmds }).to_string();
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Nft(format!(
                "cannot run nft ({e}); install the nftables package"
            ))
        })?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(body.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Nft(format!("nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Hold the host-wide table lock until the file drops.
fn lock() -> Result<std::fs::File> {
    capsa_sys::file::lock_path(std::path::Path::new(LOCK), true)
        .map_err(|e| Error::io("lock", LOCK, e))
}

fn obj(kind: &str, mut v: Value) -> Value {
    v["family"] = json!(FAMILY);
    v["table"] = json!(TABLE);
    json!({ kind: v })
}

fn rule(chain: &str, expr: Value) -> Value {
    json!({"add": obj("rule", json!({"chain": chain, "expr": expr}))})
}

fn field(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn is(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

/// The table, its sets, maps, chains and rules.
fn base() -> Vec<Value> {
    let local = is(
        "==",
        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
        json!("local"),
    );
    let mut c = vec![
        json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
        json!({"add": obj("set", json!({"name": "subnets", "type": "ipv4_addr", "flags": ["interval"]}))}),
        json!({"add": obj("set", json!({"name": "subnets6", "type": "ipv6_addr", "flags": ["interval"]}))}),
        json!({"add": obj("set", json!({"name": "bridges", "type": "ifname"}))}),
        json!({"add": obj("set", json!({"name": "internal", "type": "ifname"}))}),
        json!({"add": obj("set", json!({"name": "internal_self", "type": ["ifname", "ifname"]}))}),
        // IPv6 ports are published on every address only, to the same
        // container port as their IPv4 twin (`any_port`).
        json!({"add": obj("map", json!({"name": "any6_addr", "type": ["inet_proto", "inet_service"], "map": "ipv6_addr"}))}),
    ];
    for (prefix, key, addr) in [
        ("any", json!(["inet_proto", "inet_service"]), "ipv4_addr"),
        (
            "ip",
            json!(["ipv4_addr", "inet_proto", "inet_service"]),
            "ipv4_addr",
        ),
        (
            "ip6",
            json!(["ipv6_addr", "inet_proto", "inet_service"]),
            "ipv6_addr",
        ),
    ] {
        for (suffix, value) in [("addr", addr), ("port", "inet_service")] {
            c.push(json!({"add": obj("map", json!({"name": format!("{prefix}_{suffix}"), "type": key.clone(), "map": value}))}));
        }
    }
    c.extend([json!({"add": obj("chain", json!({"name": "ports"}))})]);
    for (name, ty, hook, prio) in [
        ("prerouting", "nat", "prerouting", -100),
        ("output", "nat", "output", -100),
        ("postrouting", "nat", "postrouting", 100),
        ("forward", "filter", "forward", 0),
        ("guard", "filter", "prerouting", -300),
    ] {
        c.push(json!({"add": obj("chain", json!({"name": name, "type": ty, "hook": hook, "prio": prio, "policy": "accept"}))}));
    }
    // Idempotent as a whole: "add" of what exists is a no-op, and each
    // chain is flushed before its rules are added, so running this again
    // (another network, another store) neither duplicates rules nor needs
    // a look at the table first. Set and map elements are not touched.
    for chain in [
        "ports",
        "prerouting",
        "output",
        "postrouting",
        "forward",
        "guard",
    ] {
        c.push(json!({"flush": obj("chain", json!({"name": chain}))}));
    }
    // Security: CVE-2020-8558's class. route_localnet on our bridges (for
    // 127.0.0.1 published ports) makes the kernel accept packets for
    // 127.0.0.0/8 that arrive from a bridge: a container with CAP_NET_RAW
    // could forge one to a service the host binds to loopback only. Drop
    // them before NAT (raw priority), where the replies of our own
    // 127.0.0.1 -> container connections still carry the gateway address.
    c.push(rule(
        "guard",
        json!([
            is("==", meta("iifname"), json!("@bridges")),
            is("==", field("ip", "daddr"), json!({"prefix": {"addr": "127.0.0.0", "len": 8}})),
            {"drop": null}
        ]),
    ));
    // Nor may they claim to come from it (a forged loopback source is
    // trusted by services that check it). Replies to our own 127.0.0.1 ->
    // container connections carry the gateway address here (raw, before
    // conntrack undoes NAT).
    c.push(rule(
        "guard",
        json!([
            is("==", meta("iifname"), json!("@bridges")),
            is("==", field("ip", "saddr"), json!({"prefix": {"addr": "127.0.0.0", "len": 8}})),
            {"drop": null}
        ]),
    ));
    let jump = json!({"jump": {"target": "ports"}});
    c.push(rule("prerouting", json!([local.clone(), jump.clone()])));
    c.push(rule("output", json!([local, jump])));
    let lookup = |key: &[Value], map: &str| json!({"map": {"key": {"concat": key}, "data": format!("@{map}")}});
    let dnat = |key: Vec<Value>, maps: &str| json!([{"dnat": {"family": "ip", "addr": lookup(&key, &format!("{maps}_addr")), "port": lookup(&key, &format!("{maps}_port"))}}]);
    let dport = field("th", "dport");
    c.push(rule(
        "ports",
        dnat(
            vec![field("ip", "daddr"), meta("l4proto"), dport.clone()],
            "ip",
        ),
    ));
    c.push(rule(
        "ports",
        dnat(vec![meta("l4proto"), dport.clone()], "any"),
    ));
    let on6 = [field("ip6", "daddr"), meta("l4proto"), dport.clone()];
    c.push(rule(
        "ports",
        json!([{"dnat": {"family": "ip6", "addr": lookup(&on6, "ip6_addr"), "port": lookup(&on6, "ip6_port")}}]),
    ));
    let key6 = [meta("l4proto"), dport];
    c.push(rule(
        "ports",
        json!([{"dnat": {"family": "ip6", "addr": lookup(&key6, "any6_addr"), "port": lookup(&key6, "any_port")}}]),
    ));
    let from_ours = is("==", field("ip", "saddr"), json!("@subnets"));
    let to_bridge = is("==", meta("oifname"), json!("@bridges"));
    let masq = json!({"masquerade": null});
    // Out of our subnets to anywhere else.
    c.push(rule(
        "postrouting",
        json!([
            from_ours.clone(),
            is("!=", meta("oifname"), json!("@bridges")),
            masq.clone()
        ]),
    ));
    // 127.0.0.1:port -> a container: the reply must come back to us.
    c.push(rule(
        "postrouting",
        json!([
            is(
                "==",
                field("ip", "saddr"),
                json!({"prefix": {"addr": "127.0.0.0", "len": 8}})
            ),
            to_bridge.clone(),
            masq.clone()
        ]),
    ));
    // A container reaching a port published by a container of its network.
    c.push(rule(
        "postrouting",
        json!([
            is("in", json!({"ct": {"key": "status"}}), json!("dnat")),
            from_ours,
            to_bridge.clone(),
            masq.clone()
        ]),
    ));
    // The same two for IPv6 (there is no loopback case: ::1 is never
    // routed out of the host).
    let from_ours6 = is("==", field("ip6", "saddr"), json!("@subnets6"));
    c.push(rule(
        "postrouting",
        json!([
            from_ours6.clone(),
            is("!=", meta("oifname"), json!("@bridges")),
            masq.clone()
        ]),
    ));
    c.push(rule(
        "postrouting",
        json!([
            is("in", json!({"ct": {"key": "status"}}), json!("dnat")),
            from_ours6,
            to_bridge,
            masq
        ]),
    ));
    // An internal network's traffic stays on its bridge: nothing is
    // routed out of it or into it (from the host's uplinks or our other
    // networks), whatever routes a container sets itself. Traffic between
    // its own containers passes here too when the host bridges through
    // netfilter (br_netfilter: in and out are then both the bridge).
    let same_bridge = is(
        "!=",
        json!({"concat": [meta("iifname"), meta("oifname")]}),
        json!("@internal_self"),
    );
    for dir in ["iifname", "oifname"] {
        c.push(rule(
            "forward",
            json!([is("==", meta(dir), json!("@internal")), same_bridge.clone(), {"drop": null}]),
        ));
    }
    c.push(rule(
        "forward",
        json!([is("==", meta("iifname"), json!("@bridges")), {"accept": null}]),
    ));
    c.push(rule(
        "forward",
        json!([
            is("==", meta("oifname"), json!("@bridges")),
            is("in", json!({"ct": {"key": "state"}}), json!(["established", "related"])),
            {"accept": null}
        ]),
    ));
    c
}

fn element(op: &str, set: &str, elem: Value) -> Value {
    json!({op: obj("element", json!({"name": set, "elem": [elem]}))})
}

/// A network's set elements: its subnets (by family) and its bridge.
fn network_elems(net: &crate::Network) -> Vec<(&'static str, Value)> {
    let prefix = |addr: String, len: u8| json!({"prefix": {"addr": addr, "len": len}});
    let mut v = vec![
        (
            "subnets",
            prefix(net.subnet.addr.to_string(), net.subnet.prefix),
        ),
        ("bridges", json!(net.bridge)),
    ];
    if net.internal {
        v.push(("internal", json!(net.bridge)));
        v.push(("internal_self", json!({"concat": [net.bridge, net.bridge]})));
    }
    if let Some(s6) = net.subnet6 {
        v.push(("subnets6", prefix(s6.addr.to_string(), s6.prefix)));
    }
    v
}

/// Make the table if it is missing and add a network (its subnets and
/// bridge) to it.
pub fn add_network(net: &crate::Network) -> Result<()> {
    let _l = lock()?;
    let mut cmds = base();
    for (set, e) in network_elems(net) {
        cmds.push(element("add", set, e));
    }
    run(cmds)
}

/// Take a network out of the table; the table goes with the last one.
pub fn remove_network(net: &crate::Network) -> Result<()> {
    let _l = lock()?;
    let all: Vec<Value> = network_elems(net)
        .into_iter()
        .map(|(set, e)| element("delete", set, e))
        .collect();
    if run(all.clone()).is_err() {
        // One by one: a missing element must not keep the others.
        for cmd in all {
            let _ = run(vec![cmd]);
        }
    }
    if bridges_left()? == 0 {
        // Already gone is as good.
        let _ = run(vec![
            json!({"delete": {"table": {"family": FAMILY, "name": TABLE}}}),
        ]);
    }
    Ok(())
}

/// Whether the guard rule (drop 127.0.0.0/8 from our bridges) is in
/// place now, as the kernel has it.
pub fn guard_active() -> bool {
    list("chain", "guard")
        .unwrap_or_default()
        .iter()
        .filter_map(|o| o["rule"]["expr"].as_array())
        .any(|e| e.iter().any(|x| x.get("drop").is_some()))
}

/// `nft -j list KIND inet capsa NAME`: the objects it prints (none when
/// the table or the object is missing).
fn list(kind: &str, name: &str) -> Result<Vec<Value>> {
    let out = Command::new("nft")
        .args(["-j", "list", kind, FAMILY, TABLE, name])
        .output()
        .map_err(|e| Error::Nft(format!("nft: {e}")))?;
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Ok(match v["nftables"].take() {
        Value::Array(a) => a,
        _ => Vec::new(),
    })
}

/// Whether some published port that 127.0.0.1 reaches (one on every
/// address, or on a loopback address) still goes to an address of
/// `subnet`: then its bridge needs `route_localnet`.
pub fn loopback_ports_into(subnet: &crate::ipam::Subnet) -> Result<bool> {
    let elems = |map: &str| -> Result<Vec<Value>> {
        Ok(list("map", map)?
            .iter()
            .filter_map(|o| o["map"]["elem"].as_array())
            .flatten()
            .cloned()
            .collect())
    };
    let into = |e: &Value| {
        e[1].as_str()
            .and_then(|a| a.parse::<Ipv4Addr>().ok())
            .is_some_and(|a| subnet.contains(a))
    };
    let loopback_key = |e: &Value| {
        e[0]["concat"][0]
            .as_str()
            .and_then(|a| a.parse::<Ipv4Addr>().ok())
            .is_some_and(|a| a.is_loopback())
    };
    Ok(elems("any_addr")?.iter().any(into)
        || elems("ip_addr")?.iter().any(|e| into(e) && loopback_key(e)))
}

fn bridges_left() -> Result<usize> {
    Ok(list("set", "bridges")?
        .iter()
        .filter_map(|o| o["set"]["elem"].as_array())
        .map(Vec::len)
        .sum())
}

/// The key of a published port, and the maps it goes in.
fn port_key(p: &Published) -> (&'static str, Value) {
    let on = |h: String| json!({"concat": [h, p.proto.name(), p.host_port]});
    match p.host_ip {
        None => ("any", json!({"concat": [p.proto.name(), p.host_port]})),
        Some(std::net::IpAddr::V4(h)) => ("ip", on(h.to_string())),
        Some(std::net::IpAddr::V6(h)) => ("ip6", on(h.to_string())),
    }
}

/// A container is attached to `nets`: assert the whole table (chains,
/// rules, the loopback guard) and the networks' elements, and send the
/// published ports to the container at `ip` (and, for ports on every
/// address, at `ip6` too; a port on an IPv6 host address goes to `ip6`
/// only). One nft transaction.
///
/// Security: CVE-2020-8558's class. The guard is asserted on every attach,
/// not only when the table is made: a reload of the host's ruleset (`nft
/// flush ruleset`, what restarting Debian's nftables service does) would
/// otherwise leave bridges with route_localnet and no guard.
pub fn add_container(
    nets: &[&crate::Network],
    ports: &[Published],
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
) -> Result<()> {
    let _l = lock()?;
    let mut cmds = base();
    for net in nets {
        for (set, e) in network_elems(net) {
            cmds.push(element("add", set, e));
        }
    }
    for p in ports {
        let (maps, key) = port_key(p);
        let to = match (p.host_ip, ip6) {
            (Some(std::net::IpAddr::V6(_)), Some(ip6)) => ip6.to_string(),
            (Some(std::net::IpAddr::V6(h)), None) => {
                return Err(Error::Other(format!(
                "-p [{h}]:{}: the container has no IPv6 address (a network with --ipv6 gives one)",
                p.host_port
            )))
            }
            _ => ip.to_string(),
        };
        cmds.push(element(
            "add",
            &format!("{maps}_addr"),
            json!([key.clone(), to]),
        ));
        if let (Some(ip6), None) = (ip6, p.host_ip) {
            cmds.push(element(
                "add",
                "any6_addr",
                json!([key.clone(), ip6.to_string()]),
            ));
        }
        cmds.push(element(
            "add",
            &format!("{maps}_port"),
            json!([key, p.container_port]),
        ));
    }
    run(cmds)
}

/// Stop sending them.
pub fn remove_ports(ports: &[Published]) {
    if ports.is_empty() {
        return;
    }
    let Ok(_l) = lock() else {
        return;
    };
    for p in ports {
        let (maps, key) = port_key(p);
        let mut from = vec![format!("{maps}_addr"), format!("{maps}_port")];
        if p.host_ip.is_none() {
            from.push("any6_addr".into());
        }
        // A map element is deleted by its key alone; one at a time, so a
        // missing one (no IPv6 twin) does not keep the others.
        for m in from {
            let _ = run(vec![element("delete", &m, key.clone())]);
        }
    }
}
