//! Published ports: `-p [IP:][HOST:]CONTAINER[/tcp|/udp]`, ports or ranges,
//! as docker reads them, and the host sockets that keep a published port
//! ours.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

/// A transport protocol a port is published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The host address it is published on (IPv4, or IPv6 for a container
    /// with an IPv6 address); none for every address.
    pub host_ip: Option<IpAddr>,
    /// The host port; 0 until a free one is chosen.
    pub host_port: u16,
    /// With `-p A-B:C`: any free host port from `host_port` to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port_max: Option<u16>,
    pub container_port: u16,
    pub proto: Proto,
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} -> {}:{}",
            self.container_port,
            self.proto.name(),
            self.host_addr(),
            self.host_port
        )?;
        match self.host_port_max {
            Some(max) => write!(f, "-{max}"),
            None => Ok(()),
        }
    }
}

impl Published {
    /// The host address as docker prints it: `0.0.0.0` for every address,
    /// an IPv6 one in brackets.
    pub fn host_addr(&self) -> String {
        match self.host_ip {
            None => "0.0.0.0".into(),
            Some(IpAddr::V4(a)) => a.to_string(),
            Some(IpAddr::V6(a)) => format!("[{a}]"),
        }
    }
}

fn port(s: &str, spec: &str) -> Result<u16> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::invalid("-p", format!("{spec:?}: {s:?} is not a port (1-65535)")))
}

/// A port or a range `A-B`, as (first, last).
fn ports(s: &str, spec: &str) -> Result<(u16, u16)> {
    let Some((a, b)) = s.split_once('-') else {
        let p = port(s, spec)?;
        return Ok((p, p));
    };
    let (a, b) = (port(a, spec)?, port(b, spec)?);
    if a > b {
        return Err(Error::invalid(
            "-p",
            format!("{spec:?}: the range {s:?} ends before it starts"),
        ));
    }
    Ok((a, b))
}

/// Parse one `-p` value: one published port, or one per port of a range
/// (`8000-8002:80-82`, `80-82` on free host ports); `8000-8010:80`
/// publishes 80 on whichever port of the host range is free.
pub fn parse(spec: &str) -> Result<Vec<Published>> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, "tcp")) => (r, Proto::Tcp),
        Some((r, "udp")) => (r, Proto::Udp),
        Some((_, p)) => {
            return Err(Error::invalid(
                "-p",
                format!("{spec:?}: unknown protocol {p:?} (tcp or udp)"),
            ))
        }
        None => (spec, Proto::Tcp),
    };
    // An IPv6 address comes in brackets: [ADDR]:HOST:CONTAINER.
    let (ip6, rest) = match rest.strip_prefix('[') {
        Some(r) => {
            let (addr, after) = r.split_once("]:").ok_or_else(|| {
                Error::invalid("-p", format!("{spec:?}: expected [IPv6]:[HOST]:CONTAINER"))
            })?;
            (Some(addr), after)
        }
        None => (None, rest),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match (ip6, parts.as_slice()) {
        (Some(a), [h, c]) => (Some(a), Some(*h), *c),
        (Some(_), _) => {
            return Err(Error::invalid(
                "-p",
                format!("{spec:?}: expected [IPv6]:[HOST]:CONTAINER"),
            ))
        }
        (None, p) => match p {
            [c] => (None, None, *c),
            [h, c] => (None, Some(*h), *c),
            [i, h, c] => (Some(*i), Some(*h), *c),
            _ => {
                return Err(Error::invalid(
                    "-p",
                    format!("{spec:?}: expected [IP:][HOST:]CONTAINER[/tcp|/udp]"),
                ))
            }
        },
    };
    let host_ip = match (ip, ip6.is_some()) {
        (None | Some(""), _) | (Some("0.0.0.0"), false) | (Some("::"), true) => None,
        (Some(i), false) => Some(IpAddr::V4(i.parse::<Ipv4Addr>().map_err(|_| {
            Error::invalid("-p", format!("{spec:?}: {i:?} is not an IPv4 address"))
        })?)),
        (Some(i), true) => {
            let a = i.parse::<Ipv6Addr>().map_err(|_| {
                Error::invalid("-p", format!("{spec:?}: {i:?} is not an IPv6 address"))
            })?;
            // Linux routes no packet from ::1 out of the host, and IPv6
            // has no route_localnet: a DNAT to a container cannot work.
            if a.is_loopback() {
                return Err(Error::invalid(
                    "-p",
                    format!("{spec:?}: ::1 cannot be forwarded to a container (IPv6 has no route_localnet); publish on 127.0.0.1 or on every address"),
                ));
            }
            Some(IpAddr::V6(a))
        }
    };
    let (c0, c1) = ports(ctr, spec)?;
    let host = match host {
        None | Some("") => None,
        Some(h) => Some(ports(h, spec)?),
    };
    let one = |host_port, host_port_max, container_port| Published {
        host_ip,
        host_port,
        host_port_max,
        container_port,
        proto,
    };
    Ok(match host {
        None => (c0..=c1).map(|c| one(0, None, c)).collect(),
        Some((h0, h1)) if c0 == c1 && h0 != h1 => vec![one(h0, Some(h1), c0)],
        Some((h0, h1)) if h1 - h0 == c1 - c0 => {
            (c0..=c1).map(|c| one(h0 + (c - c0), None, c)).collect()
        }
        Some(_) => {
            return Err(Error::invalid(
                "-p",
                format!("{spec:?}: the host and container ranges differ in size"),
            ))
        }
    })
}

/// Bind the host side of `p` (without listening): the port is then ours
/// for as long as the socket lives, another bind of it fails, and a port
/// of 0 becomes a free one chosen by the kernel. Traffic to it never
/// reaches this socket: nftables sends it to the container first.
pub fn reserve(p: &mut Published) -> Result<OwnedFd> {
    let ip = p.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if let Some(max) = p.host_port_max {
        // The first free port of the range.
        for port in p.host_port..=max {
            match bind(p, std::net::SocketAddr::from((ip, port))) {
                Ok(Some(fd)) => {
                    p.host_port = port;
                    p.host_port_max = None;
                    return Ok(fd);
                }
                Err(Error::Conflict(_)) => continue,
                Ok(None) => break,
                Err(e) => return Err(e),
            }
        }
        return Err(Error::Conflict(format!(
            "-p {}-{}:{}: every host port of the range ({}) is in use",
            p.host_port,
            max,
            p.container_port,
            p.proto.name()
        )));
    }
    let fd = bind(p, std::net::SocketAddr::from((ip, p.host_port)))?
        .ok_or_else(|| Error::Other(format!("no {ip} on this host")))?;
    if p.host_port == 0 {
        let bound = rustix::net::getsockname(&fd).ok().and_then(|a| {
            std::net::SocketAddrV4::try_from(a.clone())
                .map(|a| a.port())
                .or_else(|_| std::net::SocketAddrV6::try_from(a).map(|a| a.port()))
                .ok()
        });
        if let Some(port) = bound {
            p.host_port = port;
        }
    }
    Ok(fd)
}

/// The IPv6 twin of a port published on every address, for a container
/// with an IPv6 address: `[::]:port` (IPv6 only), the port `reserve`
/// chose. None on a host without IPv6.
pub fn reserve6(p: &Published) -> Result<Option<OwnedFd>> {
    bind(
        p,
        std::net::SocketAddr::from((Ipv6Addr::UNSPECIFIED, p.host_port)),
    )
}

/// A socket of `p`'s protocol bound to `at` (IPv6 ones IPv6 only); None
/// when the host lacks the address family.
fn bind(p: &Published, at: std::net::SocketAddr) -> Result<Option<OwnedFd>> {
    use rustix::net::{AddressFamily, SocketType};
    let ty = match p.proto {
        Proto::Tcp => SocketType::STREAM,
        Proto::Udp => SocketType::DGRAM,
    };
    let family = if at.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = match rustix::net::socket_with(family, ty, rustix::net::SocketFlags::CLOEXEC, None) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::AFNOSUPPORT) => return Ok(None),
        Err(e) => return Err(Error::io("socket", "port reservation", e.into())),
    };
    if at.is_ipv6() {
        rustix::net::sockopt::set_ipv6_v6only(&fd, true)
            .map_err(|e| Error::io("setsockopt IPV6_V6ONLY", "port reservation", e.into()))?;
    }
    rustix::net::bind(&fd, &at).map_err(|e| match e {
        rustix::io::Errno::ADDRINUSE => Error::Conflict(format!(
            "-p {}: host port {at} ({}) is already in use",
            p.container_port,
            p.proto.name()
        )),
        rustix::io::Errno::ADDRNOTAVAIL => {
            Error::invalid("-p", format!("{} is not an address of this host", at.ip()))
        }
        e => Error::io("bind", at.to_string(), e.into()),
    })?;
    Ok(Some(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs_parse_as_docker_reads_them() {
        let one = |s: &str| {
            let v = parse(s).unwrap();
            assert_eq!(v.len(), 1, "{s}");
            v[0]
        };
        let p = one("8080:80");
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port, p.proto),
            (None, 8080, 80, Proto::Tcp)
        );
        let p = one("127.0.0.1:8080:80/udp");
        assert_eq!(p.host_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!((p.host_port, p.proto), (8080, Proto::Udp));
        let p = one("80");
        assert_eq!((p.host_port, p.container_port), (0, 80));
        let p = one("127.0.0.1::80");
        assert_eq!(
            (p.host_ip, p.host_port),
            (Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), 0)
        );
        for bad in [
            "x:80",
            "80/sctp",
            "1.2.3:80:80",
            "0:80",
            "70000:80",
            "a:b:c:d",
            "8000-8001:80-82",
            "8000:80-81",
            "82-80",
            "8000-:80",
            "[::1]:8080:80",
            "[fd00::1:8080:80",
            "[fd00::x]:8080:80",
            "[fd00::1]:80",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("-p") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn ipv6_host_addresses_come_in_brackets() {
        let p = parse("[fd00::1]:8080:80/udp").unwrap()[0];
        assert_eq!(p.host_ip, Some("fd00::1".parse().unwrap()));
        assert_eq!((p.host_port, p.container_port), (8080, 80));
        assert_eq!(p.host_addr(), "[fd00::1]");
        assert_eq!(p.to_string(), "80/udp -> [fd00::1]:8080");
        let p = parse("[fd00::1]::80").unwrap()[0];
        assert_eq!(p.host_port, 0);
        // [::] is every address, as 0.0.0.0 is.
        assert_eq!(parse("[::]:8080:80").unwrap()[0].host_ip, None);
    }

    #[test]
    fn ranges_publish_one_port_per_port_or_any_port_of_the_host_range() {
        let pairs = |s: &str| -> Vec<(u16, Option<u16>, u16)> {
            parse(s)
                .unwrap()
                .iter()
                .map(|p| (p.host_port, p.host_port_max, p.container_port))
                .collect()
        };
        assert_eq!(
            pairs("8000-8002:80-82"),
            [(8000, None, 80), (8001, None, 81), (8002, None, 82)]
        );
        assert_eq!(pairs("80-81"), [(0, None, 80), (0, None, 81)]);
        assert_eq!(pairs("8000-8010:80"), [(8000, Some(8010), 80)]);
        let v = parse("127.0.0.1:9000-9001:90-91/udp").unwrap();
        assert!(v
            .iter()
            .all(|p| p.host_ip == Some(IpAddr::V4(Ipv4Addr::LOCALHOST)) && p.proto == Proto::Udp));
    }

    #[test]
    fn a_host_range_gives_its_first_free_port_and_says_when_none_is() {
        // Two free ports next to each other: bind one, ask for the pair.
        let (a, held) = (0..50)
            .find_map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
                let a = l.local_addr().ok()?.port();
                let next = std::net::TcpListener::bind(("127.0.0.1", a.checked_add(1)?)).ok()?;
                drop(next);
                Some((a, l))
            })
            .expect("two adjacent free ports");
        let mut p = parse(&format!("127.0.0.1:{a}-{}:80", a + 1)).unwrap()[0];
        let fd = reserve(&mut p).unwrap();
        assert_eq!((p.host_port, p.host_port_max), (a + 1, None));
        let mut q = parse(&format!("127.0.0.1:{a}-{}:80", a + 1)).unwrap()[0];
        let e = reserve(&mut q).unwrap_err().to_string();
        assert!(e.contains("every host port of the range"), "{e}");
        drop((fd, held));
    }
}
