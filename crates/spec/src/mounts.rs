//! Mount entries of the spec turned into mount(2) arguments.

use crate::SpecError;
use std::path::PathBuf;

/// One mount, ready for mount(2): flags split from filesystem data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    /// Filesystem type (`proc`, `tmpfs`, `bind`, ...).
    pub fstype: String,
    /// Source as written in the spec (a host path for binds, resolved
    /// against the bundle when relative).
    pub source: Option<PathBuf>,
    /// `MS_*` flags to set.
    pub flags: u64,
    /// Propagation changes applied after the mount (`MS_PRIVATE`, ...,
    /// possibly with `MS_REC`).
    pub propagation: Vec<u64>,
    /// Options the filesystem interprets itself (`mode=755,size=65536k`).
    pub data: String,
    /// A bind mount (`bind` or `rbind` in the options, or type `bind`).
    pub bind: bool,
    /// `rbind`: submounts come along.
    pub recursive: bool,
    /// An id-mapped mount: (uid map, gid map), from the mount's
    /// `uidMappings`/`gidMappings`.
    pub idmap: Option<(Vec<crate::IdMap>, Vec<crate::IdMap>)>,
    /// `MS_*` flags the recursive options (`rro`, `rnosuid`, ...) set and
    /// clear on the mount and every mount under it (`mount_setattr` with
    /// `AT_RECURSIVE`).
    pub recursive_set: u64,
    pub recursive_clear: u64,
    /// `MS_*` flags the options clear by name (`rw`, `suid`, `dev`,
    /// `exec`, ...): a bind takes its source's flags, and these are
    /// cleared on it, as runc's remount does.
    pub clear: u64,
    /// `tmpcopyup`: a tmpfs gets a copy of what the directory it covers
    /// holds.
    pub copy_up: bool,
}

impl MountPlan {
    /// Whether the mount is made read-only.
    pub fn readonly(&self) -> bool {
        self.flags & libc::MS_RDONLY != 0
    }
}

/// Parse `mounts[index]` of the spec.
pub fn plan(
    index: usize,
    m: &oci_spec::runtime::Mount,
    bundle: &std::path::Path,
) -> Result<MountPlan, SpecError> {
    let field = format!("mounts[{index}]");
    let dest = m.destination().clone();
    if !dest.is_absolute() {
        return Err(SpecError::invalid(
            format!("{field}.destination"),
            format!("{:?} is not an absolute path", dest.display().to_string()),
        ));
    }
    if dest
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(SpecError::invalid(
            format!("{field}.destination"),
            format!("{:?} contains \"..\"", dest.display().to_string()),
        ));
    }
    let mut p = MountPlan {
        destination: dest,
        fstype: m.typ().clone().unwrap_or_default(),
        source: m.source().clone(),
        flags: 0,
        propagation: Vec::new(),
        data: String::new(),
        bind: false,
        recursive: false,
        idmap: None,
        recursive_set: 0,
        recursive_clear: 0,
        clear: 0,
        copy_up: false,
    };
    let mut data: Vec<&str> = Vec::new();
    for opt in m.options().iter().flatten() {
        match option(opt) {
            Some(Opt::Set(f)) => {
                p.flags |= f;
                p.clear &= !f;
            }
            Some(Opt::Clear(f)) => {
                p.flags &= !f;
                p.clear |= f;
            }
            Some(Opt::Propagation(f)) => p.propagation.push(f),
            Some(Opt::Bind { recursive }) => {
                p.bind = true;
                p.recursive |= recursive;
            }
            Some(Opt::RecSet(f)) => {
                p.recursive_set |= f;
                p.recursive_clear &= !f;
            }
            Some(Opt::RecClear(f)) => {
                p.recursive_clear |= f;
                p.recursive_set &= !f;
            }
            Some(Opt::CopyUp) => p.copy_up = true,
            Some(Opt::Ignore) => {}
            None => data.push(opt),
        }
    }
    if p.fstype == "bind" {
        p.bind = true;
    }
    if p.bind {
        match &p.source {
            None => {
                return Err(SpecError::invalid(
                    format!("{field}.source"),
                    "a bind mount needs a source",
                ))
            }
            Some(s) if s.is_relative() => p.source = Some(bundle.join(s)),
            Some(_) => {}
        }
    }
    if p.fstype.is_empty() && !p.bind {
        return Err(SpecError::invalid(
            format!("{field}.type"),
            "missing (only bind mounts may omit it)",
        ));
    }
    p.data = data.join(",");
    let to_maps = |v: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| -> Vec<crate::IdMap> {
        v.iter()
            .flatten()
            .map(|m| crate::IdMap {
                container: m.container_id(),
                host: m.host_id(),
                size: m.size(),
            })
            .collect()
    };
    let (u, g) = (to_maps(m.uid_mappings()), to_maps(m.gid_mappings()));
    if !u.is_empty() || !g.is_empty() {
        if u.is_empty() || g.is_empty() {
            return Err(SpecError::invalid(
                format!("{field}.uidMappings"),
                "an id-mapped mount needs both uidMappings and gidMappings",
            ));
        }
        if !p.bind {
            return Err(SpecError::invalid(
                format!("{field}.uidMappings"),
                "id-mapped mounts are supported for bind mounts",
            ));
        }
        p.idmap = Some((u, g));
    }
    Ok(p)
}

enum Opt {
    Set(u64),
    Clear(u64),
    Propagation(u64),
    Bind {
        recursive: bool,
    },
    RecSet(u64),
    RecClear(u64),
    /// `tmpcopyup`.
    CopyUp,
    Ignore,
}

fn option(name: &str) -> Option<Opt> {
    use Opt::*;
    let rec = libc::MS_REC;
    Some(match name {
        "ro" => Set(libc::MS_RDONLY),
        "rw" => Clear(libc::MS_RDONLY),
        "nosuid" => Set(libc::MS_NOSUID),
        "suid" => Clear(libc::MS_NOSUID),
        "nodev" => Set(libc::MS_NODEV),
        "dev" => Clear(libc::MS_NODEV),
        "noexec" => Set(libc::MS_NOEXEC),
        "exec" => Clear(libc::MS_NOEXEC),
        "sync" => Set(libc::MS_SYNCHRONOUS),
        "async" => Clear(libc::MS_SYNCHRONOUS),
        "dirsync" => Set(libc::MS_DIRSYNC),
        "remount" => Set(libc::MS_REMOUNT),
        "mand" => Set(libc::MS_MANDLOCK),
        "nomand" => Clear(libc::MS_MANDLOCK),
        "atime" => Clear(libc::MS_NOATIME),
        "noatime" => Set(libc::MS_NOATIME),
        "diratime" => Clear(libc::MS_NODIRATIME),
        "nodiratime" => Set(libc::MS_NODIRATIME),
        "relatime" => Set(libc::MS_RELATIME),
        "norelatime" => Clear(libc::MS_RELATIME),
        "strictatime" => Set(libc::MS_STRICTATIME),
        "nostrictatime" => Clear(libc::MS_STRICTATIME),
        "nosymfollow" => Set(libc::MS_NOSYMFOLLOW),
        "symfollow" => Clear(libc::MS_NOSYMFOLLOW),
        // The recursive forms (OCI 1.1): the mount and all under it.
        "rro" => RecSet(libc::MS_RDONLY),
        "rrw" => RecClear(libc::MS_RDONLY),
        "rnosuid" => RecSet(libc::MS_NOSUID),
        "rsuid" => RecClear(libc::MS_NOSUID),
        "rnodev" => RecSet(libc::MS_NODEV),
        "rdev" => RecClear(libc::MS_NODEV),
        "rnoexec" => RecSet(libc::MS_NOEXEC),
        "rexec" => RecClear(libc::MS_NOEXEC),
        "rnodiratime" => RecSet(libc::MS_NODIRATIME),
        "rdiratime" => RecClear(libc::MS_NODIRATIME),
        "rnoatime" => RecSet(libc::MS_NOATIME),
        "ratime" => RecClear(libc::MS_NOATIME),
        "rrelatime" => RecSet(libc::MS_RELATIME),
        "rnorelatime" => RecClear(libc::MS_RELATIME),
        "rstrictatime" => RecSet(libc::MS_STRICTATIME),
        "rnostrictatime" => RecClear(libc::MS_STRICTATIME),
        "rnosymfollow" => RecSet(libc::MS_NOSYMFOLLOW),
        "rsymfollow" => RecClear(libc::MS_NOSYMFOLLOW),
        "bind" => Bind { recursive: false },
        "rbind" => Bind { recursive: true },
        "private" => Propagation(libc::MS_PRIVATE),
        "rprivate" => Propagation(libc::MS_PRIVATE | rec),
        "shared" => Propagation(libc::MS_SHARED),
        "rshared" => Propagation(libc::MS_SHARED | rec),
        "slave" => Propagation(libc::MS_SLAVE),
        "rslave" => Propagation(libc::MS_SLAVE | rec),
        "unbindable" => Propagation(libc::MS_UNBINDABLE),
        "runbindable" => Propagation(libc::MS_UNBINDABLE | rec),
        // Id-mapped mounts are asked by their mappings; the options only
        // say whether submounts are mapped too (rbind decides that here).
        "tmpcopyup" => CopyUp,
        "defaults" | "idmap" | "ridmap" => Ignore,
        _ => return None,
    })
}

/// `linux.rootfsPropagation` to mount flags.
pub fn propagation(name: &str) -> Option<u64> {
    match option(name)? {
        Opt::Propagation(f) => Some(f),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::MountBuilder;

    fn mount(dest: &str, typ: &str, src: &str, opts: &[&str]) -> oci_spec::runtime::Mount {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(src)
            .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
            .unwrap()
    }

    #[test]
    fn flags_and_data_are_split() {
        let m = mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        );
        let p = plan(1, &m, std::path::Path::new("/b")).unwrap();
        assert_eq!(p.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(p.data, "mode=755,size=65536k");
        assert!(!p.bind);
    }

    #[test]
    fn rbind_with_propagation_and_relative_source() {
        let m = mount("/data", "none", "data", &["rbind", "ro", "rprivate"]);
        let p = plan(0, &m, std::path::Path::new("/bundle")).unwrap();
        assert!(p.bind && p.recursive && p.readonly());
        assert_eq!(p.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
        assert_eq!(p.source.unwrap(), PathBuf::from("/bundle/data"));
    }

    #[test]
    fn relative_destination_is_refused_with_its_field() {
        let m = mount("proc", "proc", "proc", &[]);
        let e = plan(3, &m, std::path::Path::new("/b"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("mounts[3].destination:"), "{e}");
    }

    #[test]
    fn later_option_wins() {
        let m = mount("/x", "tmpfs", "tmpfs", &["ro", "rw"]);
        assert!(!plan(0, &m, std::path::Path::new("/b")).unwrap().readonly());
    }
}
