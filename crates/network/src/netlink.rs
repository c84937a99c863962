//! rtnetlink requests over one socket: links (bridges, veth pairs),
//! addresses and routes, in the host's network namespace or a container's.
//! Synchronous, one request at a time, each acknowledged, so a failure
//! names the request that failed with the kernel's errno.

use crate::error::{Error, Result};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

/// A link as a dump shows it.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The bridge it is a port of.
    pub master: Option<u32>,
    pub mtu: u32,
}

/// A route of the main table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub dst: IpAddr,
    pub prefix: u8,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
}

/// One rtnetlink socket, bound to the network namespace it was made in.
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    /// A socket in our own network namespace.
    pub fn new() -> Result<Netlink> {
        let mut sock =
            Socket::new(NETLINK_ROUTE).map_err(|e| Error::io("socket", "rtnetlink", e))?;
        sock.bind_auto()
            .map_err(|e| Error::io("bind", "rtnetlink", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::io("connect", "rtnetlink", e))?;
        Ok(Netlink { sock, seq: 0 })
    }

    /// A socket in the network namespace `ns` (a socket stays in the
    /// namespace it was made in): this thread enters it, makes the socket
    /// and comes back.
    pub fn in_netns(ns: BorrowedFd<'_>) -> Result<Netlink> {
        let own = std::fs::File::open("/proc/thread-self/ns/net")
            .map_err(|e| Error::io("open", "/proc/thread-self/ns/net", e))?;
        capsa_sys::process::setns(ns.as_raw_fd(), libc::CLONE_NEWNET)
            .map_err(|e| Error::sys("setns", "the container's network namespace", e))?;
        let made = Netlink::new();
        capsa_sys::process::setns(own.as_raw_fd(), libc::CLONE_NEWNET)
            .map_err(|e| Error::sys("setns", "back to our network namespace", e))?;
        made
    }

    /// Send one request; collect the replies until the ack or the dump's end.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | flags;
        hdr.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf[..]);
        self.sock
            .send(&buf, 0)
            .map_err(|e| Error::io("send", what.to_string(), e))?;
        let mut out = Vec::new();
        let mut rx = vec![0u8; 64 * 1024];
        loop {
            let n = self
                .sock
                .recv(&mut &mut rx[..], 0)
                .map_err(|e| Error::io("recv", what.to_string(), e))?;
            let mut off = 0;
            while off < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[off..n])
                    .map_err(|e| Error::Other(format!("{what}: bad netlink reply: {e}")))?;
                let len = m.header.length as usize;
                match m.payload {
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(Error::Netlink {
                            what: what.to_string(),
                            source: e.to_io(),
                        })
                    }
                    // An ack (error code 0) or the end of a dump.
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(inner) => out.push(inner),
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }

    /// Every link of this namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            "list links",
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .map(|l| {
                let mut link = Link {
                    index: l.header.index,
                    name: String::new(),
                    master: None,
                    mtu: 0,
                };
                for a in l.attributes {
                    match a {
                        LinkAttribute::IfName(n) => link.name = n,
                        LinkAttribute::Controller(m) => link.master = Some(m),
                        LinkAttribute::Mtu(m) => link.mtu = m,
                        _ => {}
                    }
                }
                link
            })
            .collect())
    }

    /// The link named `name`, if there is one.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.name == name))
    }

    fn new_link(&mut self, attributes: Vec<LinkAttribute>, what: &str) -> Result<()> {
        let mut m = LinkMessage::default();
        m.attributes = attributes;
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            what,
        )
        .map(drop)
    }

    /// Make a bridge (down; `set_link` brings it up).
    pub fn add_bridge(&mut self, name: &str, mtu: u32) -> Result<()> {
        self.new_link(
            vec![
                LinkAttribute::IfName(name.to_string()),
                LinkAttribute::Mtu(mtu),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
            ],
            &format!("create bridge {name}"),
        )
    }

    /// Make a veth pair: `host` here, `peer` born in the namespace `peer_ns`.
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_ns: BorrowedFd<'_>,
        mtu: u32,
    ) -> Result<()> {
        let mut p = LinkMessage::default();
        p.attributes = vec![
            LinkAttribute::IfName(peer.to_string()),
            LinkAttribute::Mtu(mtu),
            LinkAttribute::NetNsFd(peer_ns.as_raw_fd()),
        ];
        self.new_link(
            vec![
                LinkAttribute::IfName(host.to_string()),
                LinkAttribute::Mtu(mtu),
                LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::Veth),
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
                ]),
            ],
            &format!("create veth pair {host} / {peer}"),
        )
    }

    /// Bring a link up, as a port of `master` when given.
    pub fn set_up(&mut self, index: u32, master: Option<u32>, name: &str) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        if let Some(b) = master {
            m.attributes.push(LinkAttribute::Controller(b));
        }
        self.request(
            RouteNetlinkMessage::SetLink(m),
            NLM_F_ACK,
            &format!("bring up {name}"),
        )
        .map(drop)
    }

    /// Delete a link (a veth takes its peer with it).
    pub fn delete_link(&mut self, index: u32, name: &str) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.request(
            RouteNetlinkMessage::DelLink(m),
            NLM_F_ACK,
            &format!("delete {name}"),
        )
        .map(drop)
    }

    /// Give a link an address (IPv6 ones without duplicate address
    /// detection, so they serve at once: the network is ours to number).
    pub fn add_address(&mut self, index: u32, ip: IpAddr, prefix: u8, name: &str) -> Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes = vec![AddressAttribute::Local(ip), AddressAttribute::Address(ip)];
        if ip.is_ipv6() {
            m.header.flags = AddressHeaderFlags::Nodad;
            m.attributes = vec![
                AddressAttribute::Address(ip),
                AddressAttribute::Flags(AddressFlags::Nodad),
            ];
        }
        self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {ip}/{prefix} to {name}"),
        )
        .map(drop)
    }

    /// The default route, through `gateway` (IPv4 or IPv6).
    pub fn add_default_route(&mut self, gateway: IpAddr) -> Result<()> {
        let mut m = RouteMessage::default();
        m.header.address_family = match gateway {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.attributes = vec![RouteAttribute::Gateway(gateway.into())];
        self.request(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("add default route via {gateway}"),
        )
        .map(drop)
    }

    /// The routes of the main table, IPv4 and IPv6.
    pub fn routes(&mut self) -> Result<Vec<Route>> {
        let mut out = Vec::new();
        for (family, unspecified) in [
            (AddressFamily::Inet, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            (AddressFamily::Inet6, IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        ] {
            let mut q = RouteMessage::default();
            q.header.address_family = family;
            let replies =
                self.request(RouteNetlinkMessage::GetRoute(q), NLM_F_DUMP, "list routes")?;
            for m in replies {
                let RouteNetlinkMessage::NewRoute(r) = m else {
                    continue;
                };
                if r.header.table != RouteHeader::RT_TABLE_MAIN {
                    continue;
                }
                let mut route = Route {
                    dst: unspecified,
                    prefix: r.header.destination_prefix_length,
                    oif: None,
                    gateway: None,
                };
                for a in r.attributes {
                    match a {
                        RouteAttribute::Destination(RouteAddress::Inet(d)) => route.dst = d.into(),
                        RouteAttribute::Destination(RouteAddress::Inet6(d)) => route.dst = d.into(),
                        RouteAttribute::Gateway(RouteAddress::Inet(g)) => {
                            route.gateway = Some(g.into())
                        }
                        RouteAttribute::Gateway(RouteAddress::Inet6(g)) => {
                            route.gateway = Some(g.into())
                        }
                        RouteAttribute::Oif(i) => route.oif = Some(i),
                        _ => {}
                    }
                }
                out.push(route);
            }
        }
        Ok(out)
    }
}
