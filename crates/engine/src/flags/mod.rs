//! `capsa run`'s flag values, read once, at the command line, into types
//! ([`Flag`]); the engine only ever sees them read. A record keeps each as
//! the user wrote it (docker's spelling, which `inspect` shows), and reads
//! it again when it is loaded.

use crate::error::{flag, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod mount;
mod ns;
pub use mount::{Mount, Propagation};
pub use ns::{Ns, NsMode, IPC, PID, UTS};

/// A value a flag's text is read into.
pub trait FromFlag: Sized {
    /// Read `text`; an error names the flag.
    fn from_flag(text: &str) -> Result<Self>;
}

/// A flag's value as written and as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag<T> {
    text: String,
    value: T,
}

impl<T: FromFlag> Flag<T> {
    /// Read `text` (the only way to make one: a `Flag` is always read).
    pub fn parse(text: &str) -> Result<Flag<T>> {
        Ok(Flag {
            value: T::from_flag(text)?,
            text: text.to_string(),
        })
    }

    /// Each of `texts`, read.
    pub fn all(texts: &[String]) -> Result<Vec<Flag<T>>> {
        texts.iter().map(|t| Flag::parse(t)).collect()
    }
}

impl<T> Flag<T> {
    pub fn get(&self) -> &T {
        &self.value
    }
    /// As the user wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl<T> Serialize for Flag<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de, T: FromFlag> Deserialize<'de> for Flag<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Flag::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl FromFlag for Volume {
    fn from_flag(text: &str) -> Result<Self> {
        parse_volume(text)
    }
}

/// `--tmpfs DEST[:OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    pub destination: String,
    pub options: Vec<String>,
}

impl FromFlag for Tmpfs {
    fn from_flag(text: &str) -> Result<Self> {
        let (dest, extra) = text.split_once(':').unwrap_or((text, ""));
        if !dest.starts_with('/') {
            return Err(flag("--tmpfs", format!("{dest:?} must be absolute")));
        }
        Ok(Tmpfs {
            destination: dest.to_string(),
            options: extra
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

/// `-m/--memory`: bytes, at least the kernel's floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory(pub i64);

impl FromFlag for Memory {
    fn from_flag(text: &str) -> Result<Self> {
        let limit = parse_bytes("--memory", text)?;
        if limit < 6 << 20 {
            return Err(flag("--memory", "the minimum is 6 MiB"));
        }
        Ok(Memory(limit))
    }
}

/// `--memory-swap`: memory plus swap, or `-1` for no limit on swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    Unlimited,
    Total(i64),
}

impl FromFlag for Swap {
    fn from_flag(text: &str) -> Result<Self> {
        if text.trim() == "-1" {
            return Ok(Swap::Unlimited);
        }
        parse_bytes("--memory-swap", text).map(Swap::Total)
    }
}

/// `--cpus`: a share of CPUs, more than 0 (how many this host has is
/// checked when a container is made, not when a record is read).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpus(pub f64);

impl FromFlag for Cpus {
    fn from_flag(text: &str) -> Result<Self> {
        let v: f64 = text
            .trim()
            .parse()
            .map_err(|_| flag("--cpus", format!("{text:?} is not a number")))?;
        if !(v.is_finite() && v > 0.0) {
            return Err(flag("--cpus", format!("{text:?} must be more than 0")));
        }
        Ok(Cpus(v))
    }
}

/// `--device HOST[:CONTAINER[:PERMS]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub host: String,
    pub container: String,
    pub permissions: String,
}

impl FromFlag for Device {
    fn from_flag(text: &str) -> Result<Self> {
        let (host, container, permissions) = parse_device(text)?;
        Ok(Device {
            host,
            container,
            permissions,
        })
    }
}

/// `--ulimit NAME=SOFT[:HARD]`, as the OCI rlimit it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub typ: capsa_spec::oci::PosixRlimitType,
    pub soft: u64,
    pub hard: u64,
}

impl FromFlag for Ulimit {
    fn from_flag(text: &str) -> Result<Self> {
        let (ty, soft, hard) = parse_ulimit(text)?;
        let typ = serde_json::from_value(serde_json::Value::String(ty.clone()))
            .map_err(|_| flag("--ulimit", format!("{text:?}: no such limit ({ty})")))?;
        Ok(Ulimit { typ, soft, hard })
    }
}

/// `--sysctl KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

impl FromFlag for Sysctl {
    fn from_flag(text: &str) -> Result<Self> {
        let (key, value) = parse_kv("--sysctl", text)?;
        Ok(Sysctl { key, value })
    }
}

/// `-p [IP:][HOST:]CONTAINER[/PROTO]`: the ports it publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish(pub Vec<capsa_network::Published>);

impl FromFlag for Publish {
    fn from_flag(text: &str) -> Result<Self> {
        capsa_network::ports::parse(text)
            .map(Publish)
            .map_err(|e| flag("-p", e))
    }
}

/// `512m`, `1g`, `100k`, `2048` (bytes), as docker reads memory sizes.
pub fn parse_bytes(name: &str, s: &str) -> Result<i64> {
    match capsa_spec::units::parse_size(s) {
        Ok(0) => Err(flag(name, format!("{s:?} must be positive"))),
        Ok(n) => Ok(n as i64),
        Err(e) => Err(flag(name, e.to_string())),
    }
}

/// A bind or named volume: `HOST:CTR[:ro|rw]` or `NAME:CTR[:ro]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// An absolute host path, or a volume name.
    pub source: String,
    pub target: String,
    pub readonly: bool,
}

impl Volume {
    pub fn is_named(&self) -> bool {
        !self.source.starts_with('/')
    }
}

pub fn parse_volume(s: &str) -> Result<Volume> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (String::new(), *t, ""),
        [s, t] => (s.to_string(), *t, ""),
        [s, t, m] => (s.to_string(), *t, *m),
        _ => return Err(flag("-v", format!("{s:?}: expected SOURCE:TARGET[:ro]"))),
    };
    if !target.starts_with('/') {
        return Err(flag(
            "-v",
            format!("{s:?}: the container path must be absolute"),
        ));
    }
    let readonly = match mode {
        "" | "rw" => false,
        "ro" => true,
        m => return Err(flag("-v", format!("{s:?}: unknown mode {m:?} (ro or rw)"))),
    };
    // Security: a name is a directory of the store's `volumes/`: `..`
    // (which the old check let through) led to the store's own top.
    if !source.is_empty() && !source.starts_with('/') && crate::volume::check_name(&source).is_err()
    {
        return Err(flag(
            "-v",
            format!("{source:?} is neither an absolute path nor a volume name"),
        ));
    }
    Ok(Volume {
        source,
        target: target.to_string(),
        readonly,
    })
}

/// `nofile=1024[:2048]` as an OCI rlimit.
pub fn parse_ulimit(s: &str) -> Result<(String, u64, u64)> {
    let (name, vals) = s
        .split_once('=')
        .ok_or_else(|| flag("--ulimit", format!("{s:?}: expected NAME=SOFT[:HARD]")))?;
    let known = [
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
        "as",
    ];
    if !known.contains(&name) {
        return Err(flag("--ulimit", format!("unknown limit {name:?}")));
    }
    let num = |v: &str| -> Result<u64> {
        if v == "-1" || v == "unlimited" {
            return Ok(u64::MAX);
        }
        v.parse()
            .map_err(|_| flag("--ulimit", format!("{s:?}: {v:?} is not a number")))
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(vals)?, num(vals)?),
    };
    if soft > hard {
        return Err(flag(
            "--ulimit",
            format!("{s:?}: soft limit above hard limit"),
        ));
    }
    Ok((format!("RLIMIT_{}", name.to_ascii_uppercase()), soft, hard))
}

/// `/dev/x[:/dev/y[:rwm]]`.
pub fn parse_device(s: &str) -> Result<(String, String, String)> {
    let parts: Vec<&str> = s.split(':').collect();
    let (host, ctr, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, c] if c.starts_with('/') => (*h, *c, "rwm"),
        [h, p] => (*h, *h, *p),
        [h, c, p] => (*h, *c, *p),
        _ => {
            return Err(flag(
                "--device",
                format!("{s:?}: expected HOST[:CONTAINER[:PERMS]]"),
            ))
        }
    };
    if !perms.chars().all(|c| "rwm".contains(c)) || perms.is_empty() {
        return Err(flag(
            "--device",
            format!("{s:?}: permissions are a mix of r, w, m"),
        ));
    }
    Ok((host.to_string(), ctr.to_string(), perms.to_string()))
}

/// `KEY=VALUE`.
pub fn parse_kv(name: &str, s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(flag(name, format!("{s:?}: expected KEY=VALUE"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_once_kept_as_written() {
        let v: Flag<Volume> = Flag::parse("/srv:/data:ro").unwrap();
        assert!(v.get().readonly && v.get().target == "/data");
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "\"/srv:/data:ro\"");
        let back: Flag<Volume> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        // A record holding what no longer reads is refused as a whole.
        assert!(serde_json::from_str::<Flag<Volume>>("\"relative\"").is_err());
    }

    #[test]
    fn each_kind_reads_its_flag() {
        assert_eq!(
            Flag::<Memory>::parse("64m").unwrap().get(),
            &Memory(64 << 20)
        );
        let e = Flag::<Memory>::parse("1m").unwrap_err().to_string();
        assert!(e.contains("--memory") && e.contains("6 MiB"), "{e}");
        assert_eq!(Flag::<Swap>::parse("-1").unwrap().get(), &Swap::Unlimited);
        assert!(Flag::<Cpus>::parse("0").is_err());
        let t = Flag::<Tmpfs>::parse("/run:size=1m,mode=700").unwrap();
        assert_eq!(t.get().options, ["size=1m", "mode=700"]);
        assert!(Flag::<Tmpfs>::parse("run").is_err());
        let d = Flag::<Device>::parse("/dev/null:/dev/n:r").unwrap();
        assert_eq!(d.get().permissions, "r");
        let u = Flag::<Ulimit>::parse("nofile=10:20").unwrap();
        assert_eq!((u.get().soft, u.get().hard), (10, 20));
        assert!(Flag::<Sysctl>::parse("=1").is_err());
        assert_eq!(Flag::<Publish>::parse("8080:80").unwrap().get().0.len(), 1);
    }
}

/// `KEY=VALUE` (or `KEY`, an empty value) of `--label` and
/// `--annotation`: the key may not be empty.
pub fn key_value(name: &str, text: &str) -> Result<(String, String)> {
    let (k, v) = text.split_once('=').unwrap_or((text, ""));
    if k.trim().is_empty() {
        return Err(flag(name, format!("{text:?}: expected KEY=VALUE")));
    }
    Ok((k.to_string(), v.to_string()))
}

/// `--add-host NAME:IP` (or `NAME=IP`): a line of the container's
/// /etc/hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddHost {
    pub name: String,
    pub ip: std::net::IpAddr,
}

impl FromFlag for AddHost {
    fn from_flag(text: &str) -> Result<Self> {
        let bad = |why: &str| flag("--add-host", format!("{text:?}: {why}"));
        let (name, ip) = match (text.split_once('='), text.split_once(':')) {
            (Some(kv), _) => kv,
            (None, Some(kv)) => kv,
            (None, None) => return Err(bad("expected NAME:IP")),
        };
        let host_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !host_name {
            return Err(bad("the name may hold letters, digits, - . _"));
        }
        if ip == "host-gateway" {
            return Err(bad("host-gateway is not supported yet; give the address"));
        }
        let ip = ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| bad("not an IP address"))?;
        Ok(AddHost {
            name: name.to_string(),
            ip,
        })
    }
}

/// `--dns IP`: a nameserver of the container's /etc/resolv.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns(pub std::net::IpAddr);

impl FromFlag for Dns {
    fn from_flag(text: &str) -> Result<Self> {
        text.parse()
            .map(Dns)
            .map_err(|_| flag("--dns", format!("{text:?}: not an IP address")))
    }
}

/// `--dns-search DOMAIN` and `--dns-option OPT`: one word of a
/// resolv.conf line.
///
/// Security: a word with a newline would add lines of its own choosing
/// to the container's resolv.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvWord(pub String);

impl FromFlag for ResolvWord {
    fn from_flag(text: &str) -> Result<Self> {
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(flag(
                "--dns-search/--dns-option",
                format!("{text:?}: one word, no spaces"),
            ));
        }
        Ok(ResolvWord(text.to_string()))
    }
}
