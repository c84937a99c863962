//! Published ports: `-p [IP:][HOST:]CONTAINER[/tcp|/udp]`, as docker reads
//! them, and the host sockets that keep a published port ours.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
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
    /// The host address it is published on; none for every address.
    pub host_ip: Option<Ipv4Addr>,
    /// The host port; 0 until a free one is chosen.
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(
            f,
            "{}/{} -> {ip}:{}",
            self.container_port,
            self.proto.name(),
            self.host_port
        )
    }
}

fn port(s: &str, spec: &str) -> Result<u16> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::invalid("-p", format!("{spec:?}: {s:?} is not a port (1-65535)")))
}

/// Parse one `-p` value.
pub fn parse(spec: &str) -> Result<Published> {
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
    if rest.contains('-') {
        return Err(Error::invalid(
            "-p",
            format!("{spec:?}: port ranges are not supported; publish each port"),
        ));
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => (None, None, *c),
        [h, c] => (None, Some(*h), *c),
        [i, h, c] => (Some(*i), Some(*h), *c),
        _ => {
            return Err(Error::invalid(
                "-p",
                format!("{spec:?}: expected [IP:][HOST:]CONTAINER[/tcp|/udp]"),
            ))
        }
    };
    let host_ip = match ip {
        None | Some("") | Some("0.0.0.0") => None,
        Some(i) => Some(i.parse::<Ipv4Addr>().map_err(|_| {
            Error::invalid("-p", format!("{spec:?}: {i:?} is not an IPv4 address"))
        })?),
    };
    let host_port = match host {
        None | Some("") => 0,
        Some(h) => port(h, spec)?,
    };
    Ok(Published {
        host_ip,
        host_port,
        container_port: port(ctr, spec)?,
        proto,
    })
}

/// Bind the host side of `p` (without listening): the port is then ours
/// for as long as the socket lives, another bind of it fails, and a port
/// of 0 becomes a free one chosen by the kernel. Traffic to it never
/// reaches this socket: nftables sends it to the container first.
pub fn reserve(p: &mut Published) -> Result<OwnedFd> {
    let ip = p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let fd = bind(p, std::net::SocketAddr::from((ip, p.host_port)))?
        .ok_or_else(|| Error::Other("no IPv4 on this host".into()))?;
    if p.host_port == 0 {
        let bound = rustix::net::getsockname(&fd)
            .ok()
            .and_then(|a| std::net::SocketAddrV4::try_from(a).ok());
        if let Some(a) = bound {
            p.host_port = a.port();
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
        std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, p.host_port)),
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
        let p = parse("8080:80").unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port, p.proto),
            (None, 8080, 80, Proto::Tcp)
        );
        let p = parse("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!((p.host_port, p.proto), (8080, Proto::Udp));
        let p = parse("80").unwrap();
        assert_eq!((p.host_port, p.container_port), (0, 80));
        let p = parse("127.0.0.1::80").unwrap();
        assert_eq!((p.host_ip, p.host_port), (Some(Ipv4Addr::LOCALHOST), 0));
        for bad in [
            "x:80",
            "80/sctp",
            "1.2.3:80:80",
            "0:80",
            "70000:80",
            "8000-8001:80",
            "a:b:c:d",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("-p") && e.contains(bad), "{e}");
        }
    }
}
