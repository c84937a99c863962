//! IPv4 and IPv6 subnets and address assignment. Which addresses are taken is the
//! caller's to say (leases live with the containers that hold them).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// An IPv4 subnet, `10.99.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// Parse `A.B.C.D/N`; host bits must be zero.
    pub fn parse(s: &str) -> Result<Subnet> {
        let bad = |m: &str| Error::invalid("subnet", format!("{s:?}: {m}"));
        let (a, p) = s.split_once('/').ok_or_else(|| bad("expected A.B.C.D/N"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = p.parse().map_err(|_| bad("bad prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(bad(
                "prefix length must be 8 to 30 (room for a gateway and a container)",
            ));
        }
        let net = Subnet { addr, prefix };
        if u32::from(addr) & !net.mask() != 0 {
            return Err(bad(&format!(
                "host bits set (the subnet is {}/{prefix})",
                Ipv4Addr::from(u32::from(addr) & net.mask())
            )));
        }
        Ok(net)
    }

    pub fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// Whether two subnets share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    /// The first host address: the gateway by convention.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    fn broadcast(&self) -> u32 {
        u32::from(self.addr) | !self.mask()
    }

    /// The lowest address that is neither the network, the broadcast, the
    /// gateway nor taken.
    pub fn allocate(&self, gateway: Ipv4Addr, taken: &[Ipv4Addr]) -> Result<Ipv4Addr> {
        let start = u32::from(self.addr) + 1;
        (start..self.broadcast())
            .map(Ipv4Addr::from)
            .find(|ip| *ip != gateway && !taken.contains(ip))
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "subnet {self} is exhausted: all {} addresses are taken",
                    self.broadcast() - start
                ))
            })
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl TryFrom<String> for Subnet {
    type Error = Error;
    fn try_from(s: String) -> Result<Subnet> {
        Subnet::parse(&s)
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

/// An IPv6 subnet, `fd00:231:1::/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet6 {
    pub addr: std::net::Ipv6Addr,
    pub prefix: u8,
}

impl Subnet6 {
    /// Parse `ADDR/N` (48 to 120); host bits must be zero.
    pub fn parse(s: &str) -> Result<Subnet6> {
        let bad = |m: &str| Error::invalid("subnet", format!("{s:?}: {m}"));
        let (a, p) = s.split_once('/').ok_or_else(|| bad("expected ADDR/N"))?;
        let addr: std::net::Ipv6Addr = a.parse().map_err(|_| bad("not an IPv6 address"))?;
        let prefix: u8 = p.parse().map_err(|_| bad("bad prefix length"))?;
        if !(48..=120).contains(&prefix) {
            return Err(bad("an IPv6 prefix length must be 48 to 120"));
        }
        let net = Subnet6 { addr, prefix };
        if u128::from(addr) & !net.mask() != 0 {
            return Err(bad("host bits set"));
        }
        Ok(net)
    }

    pub fn mask(&self) -> u128 {
        u128::MAX << (128 - self.prefix)
    }

    pub fn overlaps(&self, other: &Subnet6) -> bool {
        let m = self.mask() & other.mask();
        u128::from(self.addr) & m == u128::from(other.addr) & m
    }

    /// `::1` of the subnet: the gateway.
    pub fn first_host(&self) -> std::net::Ipv6Addr {
        std::net::Ipv6Addr::from(u128::from(self.addr) + 1)
    }

    /// The lowest address past the gateway that is not taken.
    pub fn allocate(
        &self,
        gateway: std::net::Ipv6Addr,
        taken: &[std::net::Ipv6Addr],
    ) -> Result<std::net::Ipv6Addr> {
        let start = u128::from(self.addr) + 1;
        let end = u128::from(self.addr) | !self.mask();
        (start..=end)
            .map(std::net::Ipv6Addr::from)
            .find(|ip| *ip != gateway && !taken.contains(ip))
            .ok_or_else(|| Error::Conflict(format!("subnet {self} is exhausted")))
    }
}

impl std::fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl TryFrom<String> for Subnet6 {
    type Error = Error;
    fn try_from(s: String) -> Result<Subnet6> {
        Subnet6::parse(&s)
    }
}

impl From<Subnet6> for String {
    fn from(s: Subnet6) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_refuse_host_bits() {
        let s = Subnet::parse("10.99.0.0/16").unwrap();
        assert_eq!(s.first_host(), Ipv4Addr::new(10, 99, 0, 1));
        assert!(s.contains(Ipv4Addr::new(10, 99, 255, 3)));
        assert!(!s.contains(Ipv4Addr::new(10, 98, 0, 1)));
        for bad in [
            "10.99.0.1/16",
            "10.99.0.0",
            "10.99.0.0/31",
            "300.1.1.0/24",
            "x/24",
        ] {
            let e = Subnet::parse(bad).unwrap_err().to_string();
            assert!(e.contains("subnet") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn overlapping_subnets_are_seen() {
        let a = Subnet::parse("10.0.0.0/8").unwrap();
        let b = Subnet::parse("10.5.0.0/16").unwrap();
        let c = Subnet::parse("192.168.1.0/24").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }

    #[test]
    fn addresses_skip_the_gateway_and_taken_ones_until_exhausted() {
        let s = Subnet::parse("10.1.2.0/30").unwrap(); // .1 and .2 usable
        let gw = s.first_host();
        let first = s.allocate(gw, &[]).unwrap();
        assert_eq!(first, Ipv4Addr::new(10, 1, 2, 2));
        let e = s.allocate(gw, &[first]).unwrap_err().to_string();
        assert!(e.contains("exhausted") && e.contains("10.1.2.0/30"), "{e}");
        let s = Subnet::parse("10.1.2.0/24").unwrap();
        let taken = [Ipv4Addr::new(10, 1, 2, 2), Ipv4Addr::new(10, 1, 2, 4)];
        assert_eq!(s.allocate(gw, &taken).unwrap(), Ipv4Addr::new(10, 1, 2, 3));
    }

    #[test]
    fn ipv6_subnets_parse_and_hand_out_addresses() {
        let s = Subnet6::parse("fd00:231:1::/64").unwrap();
        assert_eq!(s.first_host().to_string(), "fd00:231:1::1");
        let a = s.allocate(s.first_host(), &[]).unwrap();
        assert_eq!(a.to_string(), "fd00:231:1::2");
        assert_eq!(
            s.allocate(s.first_host(), &[a]).unwrap().to_string(),
            "fd00:231:1::3"
        );
        assert!(s.overlaps(&Subnet6::parse("fd00:231:1::/48").unwrap()));
        assert!(!s.overlaps(&Subnet6::parse("fd00:231:2::/64").unwrap()));
        for bad in ["fd00::1/64", "fd00::/32", "10.0.0.0/64", "fd00::"] {
            let e = Subnet6::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        let tiny = Subnet6::parse("fd00::/120").unwrap();
        let taken: Vec<_> = (2..=255u128)
            .map(|i| std::net::Ipv6Addr::from(u128::from(tiny.addr) + i))
            .collect();
        let e = tiny
            .allocate(tiny.first_host(), &taken)
            .unwrap_err()
            .to_string();
        assert!(e.contains("exhausted"), "{e}");
    }
}
