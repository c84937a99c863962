//! Container networking for the capsa engine: a Linux bridge per network,
//! a veth pair per container and network (one end a port of the bridge,
//! the other born in the container's namespace as `eth0`), addresses from
//! the network's subnet, a default route through the bridge, and NAT and
//! published ports in capsa's own nftables table.
//!
//! ```text
//!  host                                       container netns
//!  capsa0 (bridge, 10.99.0.1/16) ── veth<id> ═══ eth0 10.99.0.2/16
//!     │                                          default via 10.99.0.1
//!  nftables `inet capsa`: masquerade out, DNAT published ports
//! ```
//!
//! Links, addresses and routes are made over rtnetlink (`netlink`), rules
//! through nft's JSON interface (`nft`). The bridge is made when its first
//! container starts and deleted when its last one stops, with the table's
//! entries for it, so a host without running containers has nothing of
//! ours: no link, no rule.

// Library code returns errors; tests may unwrap.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod ipam;
pub mod netlink;
pub mod nft;
pub mod ports;

pub use error::{Error, Result};
pub use ipam::{Subnet, Subnet6};
pub use ports::{Proto, Published};

use netlink::Netlink;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;

/// A network: a bridge and a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    /// The bridge device on the host.
    pub bridge: String,
    pub subnet: Subnet,
    /// The bridge's address, the containers' default route.
    pub gateway: Ipv4Addr,
    /// IPv6 too (`--ipv6`): a subnet and the bridge's address in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Subnet6>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<std::net::Ipv6Addr>,
    /// `--internal`: no traffic routed in or out (the containers reach
    /// each other, and have no default route).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    pub created: String,
}

/// A container's place on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network: String,
    pub ip: Ipv4Addr,
    /// Its IPv6 address, on a network with IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// The interface inside the container (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// The host end of the veth pair.
    pub host_veth: String,
    /// More names for the container on this network (`--network-alias`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// The MTU of the link of the default route among `routes` (1500 without
/// one).
pub fn host_mtu(nl: &mut Netlink, routes: &[netlink::Route]) -> u32 {
    let oif = routes
        .iter()
        .find(|r| r.prefix == 0 && r.gateway.is_some())
        .and_then(|r| r.oif);
    oif.and_then(|i| nl.links().ok()?.into_iter().find(|l| l.index == i))
        .map(|l| l.mtu)
        .filter(|m| *m >= 576)
        .unwrap_or(1500)
}

/// The first of the host's `routes` that covers part of `subnet` (or
/// `subnet6`): a network there would shadow it. Checked before the
/// network's bridge exists, so none of them is ours.
pub fn overlapping_route(
    routes: &[netlink::Route],
    subnet: &Subnet,
    subnet6: Option<&Subnet6>,
) -> Option<String> {
    routes
        .iter()
        .filter(|r| r.prefix > 0)
        .find(|r| match r.dst {
            std::net::IpAddr::V4(a) => Subnet {
                addr: a,
                prefix: r.prefix,
            }
            .overlaps(subnet),
            // Link-local and multicast routes are on every v6 link.
            std::net::IpAddr::V6(a) => subnet6.is_some_and(|s6| {
                r.prefix >= 8
                    && !(a.segments()[0] & 0xffc0 == 0xfe80 || a.segments()[0] & 0xff00 == 0xff00)
                    && s6.overlaps(&Subnet6 {
                        addr: a,
                        prefix: r.prefix.min(128),
                    })
            }),
        })
        .map(|r| format!("{}/{}", r.dst, r.prefix))
}

/// Give link `index` its address in `net`'s subnet, and its IPv6 one on
/// a network with IPv6.
fn add_addresses(
    nl: &mut Netlink,
    index: u32,
    net: &Network,
    ip: Ipv4Addr,
    ip6: Option<std::net::Ipv6Addr>,
    name: &str,
) -> Result<()> {
    nl.add_address(index, ip.into(), net.subnet.prefix, name)?;
    if let (Some(ip6), Some(s6)) = (ip6, net.subnet6) {
        nl.add_address(index, ip6.into(), s6.prefix, name)?;
    }
    Ok(())
}

fn write_sysctl(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| Error::io("write", path, e))
}

/// Let 127.0.0.1:port reach a container through `net`'s bridge: the
/// kernel routes loopback sources out of a bridge only with
/// `route_localnet`. Set only on a bridge that publishes ports, since it
/// also makes the kernel accept 127.0.0.0/8 from the bridge (the guard
/// chain drops those, CVE-2020-8558).
pub fn route_localnet(net: &Network) -> Result<()> {
    write_sysctl(
        &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge),
        "1",
    )
}

/// Clear `route_localnet` on `net`'s bridge once no published port that
/// 127.0.0.1 reaches goes into it any more.
///
/// Security: CVE-2020-8558's class. The flag is what lets a container's
/// forged packet to 127.0.0.1 be accepted; it stays on no longer than a
/// port needs it, so that a bridge without such ports does not lean on
/// the guard rule alone.
pub fn clear_route_localnet_if_unused(net: &Network) -> Result<()> {
    if nft::loopback_ports_into(&net.subnet)? {
        return Ok(());
    }
    let path = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge);
    match std::fs::read_to_string(&path) {
        Ok(v) if v.trim() == "1" => write_sysctl(&path, "0"),
        // No bridge (already removed) or already clear.
        _ => Ok(()),
    }
}

/// Make the network's bridge, up with the gateway address, if it is not
/// there yet; add the network to the nftables table. Returns its index.
pub fn ensure_bridge(nl: &mut Netlink, net: &Network) -> Result<u32> {
    if let Some(l) = nl.link(&net.bridge)? {
        nl.set_up(l.index, None, &net.bridge)?;
        return Ok(l.index);
    }
    let routes = nl.routes()?;
    if let Some(r) = overlapping_route(&routes, &net.subnet, net.subnet6.as_ref()) {
        return Err(Error::Conflict(format!(
            "network {}: its subnet overlaps the host's route to {r}",
            net.name
        )));
    }
    let mtu = host_mtu(nl, &routes);
    nl.add_bridge(&net.bridge, mtu)?;
    let made = (|| {
        let l = nl
            .link(&net.bridge)?
            .ok_or_else(|| Error::Other(format!("bridge {} vanished", net.bridge)))?;
        add_addresses(nl, l.index, net, net.gateway, net.gateway6, &net.bridge)?;
        nl.set_up(l.index, None, &net.bridge)?;
        // Containers reach the world through the host, as with docker and
        // podman, which set the same switch.
        if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "0") {
            write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        }
        nft::add_network(net)?;
        Ok(l.index)
    })();
    if made.is_err() {
        if let Ok(Some(l)) = nl.link(&net.bridge) {
            let _ = nl.delete_link(l.index, &net.bridge);
        }
    }
    made
}

/// Put the container whose network namespace is `netns` on `net`: a veth
/// pair, the address, and (for its first network) the default route.
pub fn attach(
    net: &Network,
    netns: BorrowedFd<'_>,
    ep: &Endpoint,
    default_route: bool,
) -> Result<()> {
    let mut nl = Netlink::new()?;
    let bridge = ensure_bridge(&mut nl, net)?;
    let mtu = nl
        .links()?
        .into_iter()
        .find(|l| l.index == bridge)
        .map(|l| l.mtu)
        .unwrap_or(1500);
    nl.add_veth(&ep.host_veth, &ep.ifname, netns, mtu)?;
    let inside = (|| {
        let host = nl
            .link(&ep.host_veth)?
            .ok_or_else(|| Error::Other(format!("veth {} vanished", ep.host_veth)))?;
        nl.set_up(host.index, Some(bridge), &ep.host_veth)?;
        let mut c = Netlink::in_netns(netns)?;
        if let Some(lo) = c.link("lo")? {
            c.set_up(lo.index, None, "lo")?;
        }
        let eth = c
            .link(&ep.ifname)?
            .ok_or_else(|| Error::Other(format!("{} not in the container", ep.ifname)))?;
        add_addresses(&mut c, eth.index, net, ep.ip, ep.ip6, &ep.ifname)?;
        c.set_up(eth.index, None, &ep.ifname)?;
        if default_route && !net.internal {
            c.add_default_route(net.gateway.into())?;
            if let Some(g6) = net.gateway6 {
                c.add_default_route(g6.into())?;
            }
        }
        Ok(())
    })();
    if inside.is_err() {
        detach(ep);
    }
    inside
}

/// Take the container's veth pair away (it goes by itself when the
/// container's namespace dies; this is for a namespace that lives on).
/// Returns once the host end is gone: when the container's namespace has
/// just died, the kernel unregisters the pair asynchronously, and until it
/// is done the veth still counts as a port of its bridge.
pub fn detach(ep: &Endpoint) {
    let Ok(mut nl) = Netlink::new() else {
        return;
    };
    if let Ok(Some(l)) = nl.link(&ep.host_veth) {
        let _ = nl.delete_link(l.index, &ep.host_veth);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while matches!(nl.link(&ep.host_veth), Ok(Some(_))) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Delete the network's bridge (and its entries in the table) if no port
/// is left on it. Returns whether it went.
pub fn remove_bridge_if_unused(net: &Network) -> Result<bool> {
    let mut nl = Netlink::new()?;
    let links = nl.links()?;
    let Some(br) = links.iter().find(|l| l.name == net.bridge) else {
        return Ok(false);
    };
    if links.iter().any(|l| l.master == Some(br.index)) {
        return Ok(false);
    }
    nl.delete_link(br.index, &net.bridge)?;
    nft::remove_network(net)?;
    Ok(true)
}
