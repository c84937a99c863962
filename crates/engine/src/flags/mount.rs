//! `--mount type=bind|volume|tmpfs,KEY=VALUE,...`, read as docker reads
//! it (a CSV record: a field may be quoted to hold a comma).

use super::{parse_bytes, FromFlag};
use crate::error::{flag, Result};

/// Mount propagation of a bind (`bind-propagation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Private,
    Rprivate,
    Shared,
    Rshared,
    Slave,
    Rslave,
}

impl Propagation {
    /// The OCI mount option.
    pub fn option(self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::Rprivate => "rprivate",
            Propagation::Shared => "shared",
            Propagation::Rshared => "rshared",
            Propagation::Slave => "slave",
            Propagation::Rslave => "rslave",
        }
    }
}

/// One `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A host path (which must exist).
    Bind {
        source: String,
        target: String,
        readonly: bool,
        propagation: Option<Propagation>,
    },
    /// A named volume (made if missing), or an anonymous one without a
    /// source; a new one is filled with the image's content at the target
    /// unless `nocopy`.
    Volume {
        name: Option<String>,
        target: String,
        readonly: bool,
        nocopy: bool,
    },
    Tmpfs {
        target: String,
        size: Option<i64>,
        mode: Option<u32>,
    },
}

impl Mount {
    pub fn target(&self) -> &str {
        match self {
            Mount::Bind { target, .. }
            | Mount::Volume { target, .. }
            | Mount::Tmpfs { target, .. } => target,
        }
    }
}

/// The fields of a CSV record: commas split, double quotes hold commas
/// (and `""` a quote), as Go's encoding/csv reads docker's flag.
fn fields(text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err(flag("--mount", format!("{text:?}: a quote is not closed")));
    }
    out.push(cur);
    Ok(out)
}

fn boolean(key: &str, v: Option<&str>) -> Result<bool> {
    match v {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(flag("--mount", format!("{key}={v:?}: true or false"))),
    }
}

impl FromFlag for Mount {
    fn from_flag(text: &str) -> Result<Self> {
        let bad = |why: String| flag("--mount", format!("{text:?}: {why}"));
        let mut kind = None;
        let mut source = None;
        let mut target = None;
        let mut readonly = false;
        let mut propagation = None;
        let mut nocopy = None;
        let mut size = None;
        let mut mode = None;
        for f in fields(text)? {
            let (key, value) = match f.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_string())),
                None => (f.trim().to_ascii_lowercase(), None),
            };
            let need = |v: &Option<String>| {
                v.clone()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad(format!("{key} needs a value")))
            };
            match key.as_str() {
                "type" => kind = Some(need(&value)?),
                "source" | "src" => source = Some(need(&value)?),
                "destination" | "dst" | "target" => target = Some(need(&value)?),
                "readonly" | "ro" => readonly = boolean(&key, value.as_deref())?,
                "bind-propagation" => {
                    propagation = Some(match need(&value)?.as_str() {
                        "private" => Propagation::Private,
                        "rprivate" => Propagation::Rprivate,
                        "shared" => Propagation::Shared,
                        "rshared" => Propagation::Rshared,
                        "slave" => Propagation::Slave,
                        "rslave" => Propagation::Rslave,
                        p => return Err(bad(format!("bind-propagation {p:?}: private, rprivate, shared, rshared, slave or rslave"))),
                    })
                }
                "volume-nocopy" => nocopy = Some(boolean(&key, value.as_deref())?),
                "tmpfs-size" => size = Some(parse_bytes("--mount tmpfs-size", &need(&value)?)?),
                "tmpfs-mode" => {
                    let v = need(&value)?;
                    mode = Some(
                        u32::from_str_radix(&v, 8)
                            .ok()
                            .filter(|m| *m <= 0o7777)
                            .ok_or_else(|| bad(format!("tmpfs-mode {v:?}: an octal mode such as 1777")))?,
                    )
                }
                // Docker takes it and ignores it on Linux.
                "consistency" => {}
                "volume-driver" if value.as_deref() == Some("local") => {}
                k => return Err(bad(format!("{k}: not an option capsa takes (type, source, target, readonly, bind-propagation, volume-nocopy, tmpfs-size, tmpfs-mode)"))),
            }
        }
        let target = target.ok_or_else(|| bad("a target is required".into()))?;
        if !target.starts_with('/') {
            return Err(bad(format!("the target {target:?} must be absolute")));
        }
        let kind = kind.unwrap_or_else(|| "volume".into());
        let mixed = |opt: &str| bad(format!("{opt} does not go with type={kind}"));
        match kind.as_str() {
            "bind" => {
                if nocopy.is_some() {
                    return Err(mixed("volume-nocopy"));
                }
                if size.is_some() || mode.is_some() {
                    return Err(mixed("tmpfs-*"));
                }
                let source = source.ok_or_else(|| bad("a bind needs a source".into()))?;
                if !source.starts_with('/') {
                    return Err(bad(format!("the bind source {source:?} must be absolute")));
                }
                Ok(Mount::Bind {
                    source,
                    target,
                    readonly,
                    propagation,
                })
            }
            "volume" => {
                if propagation.is_some() {
                    return Err(mixed("bind-propagation"));
                }
                if size.is_some() || mode.is_some() {
                    return Err(mixed("tmpfs-*"));
                }
                // Security: a name is a directory of the store's volumes
                // (see `parse_volume`).
                if let Some(n) = &source {
                    crate::volume::check_name(n)
                        .map_err(|_| bad(format!("{n:?} is not a volume name")))?;
                }
                Ok(Mount::Volume {
                    name: source,
                    target,
                    readonly,
                    nocopy: nocopy.unwrap_or(false),
                })
            }
            "tmpfs" => {
                if source.is_some() {
                    return Err(bad("a tmpfs has no source".into()));
                }
                if propagation.is_some() {
                    return Err(mixed("bind-propagation"));
                }
                if nocopy.is_some() {
                    return Err(mixed("volume-nocopy"));
                }
                if readonly {
                    return Err(mixed("readonly"));
                }
                Ok(Mount::Tmpfs { target, size, mode })
            }
            k => Err(bad(format!("type {k:?}: bind, volume or tmpfs"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Result<Mount> {
        Mount::from_flag(s)
    }

    #[test]
    fn mounts_read_as_docker_writes_them() {
        assert_eq!(
            m("type=bind,source=/srv,target=/data,readonly,bind-propagation=rslave").unwrap(),
            Mount::Bind {
                source: "/srv".into(),
                target: "/data".into(),
                readonly: true,
                propagation: Some(Propagation::Rslave),
            }
        );
        assert_eq!(
            m("src=cache,dst=/cache,volume-nocopy").unwrap(),
            Mount::Volume {
                name: Some("cache".into()),
                target: "/cache".into(),
                readonly: false,
                nocopy: true,
            }
        );
        assert_eq!(
            m("type=tmpfs,target=/run,tmpfs-size=64m,tmpfs-mode=1770").unwrap(),
            Mount::Tmpfs {
                target: "/run".into(),
                size: Some(64 << 20),
                mode: Some(0o1770),
            }
        );
        assert_eq!(
            m("type=bind,\"source=/a,b\",target=/x").unwrap().target(),
            "/x"
        );
        assert!(
            matches!(m("type=bind,\"source=/a,b\",target=/x").unwrap(), Mount::Bind { source, .. } if source == "/a,b")
        );
    }

    #[test]
    fn bad_mounts_name_the_flag_and_the_fault() {
        for (bad, words) in [
            ("type=bind,target=/x", "needs a source"),
            ("type=bind,source=rel,target=/x", "absolute"),
            ("type=volume,source=..,target=/x", "volume name"),
            ("type=tmpfs,target=/x,volume-nocopy", "does not go with"),
            (
                "type=bind,source=/a,target=/x,tmpfs-size=1m",
                "does not go with",
            ),
            ("type=nfs,target=/x", "bind, volume or tmpfs"),
            ("type=tmpfs,target=/x,tmpfs-mode=999", "octal"),
            ("type=bind,source=/a", "target is required"),
            ("type=bind,source=/a,target=/x,frob=1", "frob"),
            ("type=bind,\"source=/a,target=/x", "quote"),
        ] {
            let e = m(bad).unwrap_err().to_string();
            assert!(e.starts_with("--mount") && e.contains(words), "{bad}: {e}");
        }
    }
}
