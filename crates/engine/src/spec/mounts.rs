//! The container's mounts beyond the default ones: /etc/hostname, hosts
//! and resolv.conf, `-v` and `--tmpfs`, the image's VOLUMEs; and the
//! network namespace `--network` asks for.

use super::{add_mount, linux, mount, Inputs};
use crate::error::{flag, Error, IoContext, Result};
use crate::flags::Mount;
use crate::options::RunOptions;
use capsa_spec::oci;
use std::path::{Path, PathBuf};

/// /etc/hostname, /etc/hosts, /etc/resolv.conf written for the container
/// and bind-mounted, as docker does.
pub(super) fn hosts_files(
    o: &RunOptions,
    i: &Inputs<'_>,
    hostname: &str,
    spec: &mut oci::Spec,
) -> Result<()> {
    let files = write_files(o, i.dir, i.network, hostname, &(i.hosts)(hostname))?;
    for (name, src) in ["hostname", "hosts", "resolv.conf"].iter().zip(files) {
        let mut opts = vec!["rbind", "rprivate", "nosuid", "nodev", "noexec"];
        if o.read_only {
            opts.push("ro");
        }
        add_mount(spec, mount(format!("/etc/{name}"), "bind", src, &opts)?);
    }
    Ok(())
}

/// Write hostname, hosts and resolv.conf into `dir` (the run directory's,
/// made again at a start after a reboot emptied it): their paths.
pub fn write_files(
    o: &RunOptions,
    dir: &Path,
    network: &crate::options::NetworkMode,
    hostname: &str,
    hosts: &str,
) -> Result<[PathBuf; 3]> {
    let write = |name: &str, text: String| -> Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, text).at("write", &p)?;
        Ok(p)
    };
    let host_net = *network == crate::options::NetworkMode::Host;
    // Loopback resolvers of the host cannot answer inside another network
    // namespace: left out.
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv: String = if host_net {
        host_resolv
    } else {
        host_resolv
            .lines()
            .filter(|l| {
                let ns = l.trim_start().strip_prefix("nameserver").map(str::trim);
                !matches!(ns, Some(a) if a.starts_with("127.") || a == "::1")
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    Ok([
        write("hostname", format!("{hostname}\n"))?,
        write("hosts", hosts.to_string())?,
        write("resolv.conf", with_dns(o, resolv))?,
    ])
}

/// `--dns`, `--dns-search` and `--dns-option` in place of the host's
/// nameserver, search and options lines, as docker writes them.
fn with_dns(o: &RunOptions, resolv: String) -> String {
    let drop_ns = !o.dns.is_empty();
    let drop_search = !o.dns_search.is_empty();
    let drop_opts = !o.dns_options.is_empty();
    let mut out: String = resolv
        .lines()
        .filter(|l| {
            let k = l.split_whitespace().next();
            !((drop_ns && k == Some("nameserver"))
                || (drop_search && matches!(k, Some("search") | Some("domain")))
                || (drop_opts && k == Some("options")))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for d in &o.dns {
        out.push_str(&format!("nameserver {}\n", d.get().0));
    }
    let words = |v: &[crate::flags::Flag<crate::flags::ResolvWord>]| {
        v.iter()
            .map(|w| w.get().0.clone())
            .collect::<Vec<_>>()
            .join(" ")
    };
    if !o.dns_search.is_empty() {
        out.push_str(&format!("search {}\n", words(&o.dns_search)));
    }
    if !o.dns_options.is_empty() {
        out.push_str(&format!("options {}\n", words(&o.dns_options)));
    }
    out
}

/// The network namespace `--network` asks for: the host's (none in the
/// spec), another container's (joined by path), or a new one.
pub(super) fn namespaces(spec: &mut oci::Spec, i: &Inputs<'_>) {
    use crate::options::NetworkMode as Mode;
    let list = linux(spec).namespaces_mut().get_or_insert_with(Vec::new);
    let net = |n: &oci::LinuxNamespace| n.typ() == oci::LinuxNamespaceType::Network;
    match i.network {
        Mode::None | Mode::Bridge(_) | Mode::Pasta => {}
        Mode::Host => {
            list.retain(|n| !net(n));
            // sysfs may be mounted only by the owner of the network
            // namespace: rootless on the host's network, /sys is the
            // host's, bound read-only (as runc's rootless spec has it).
            if capsa_sys::process::in_user_namespace() {
                if let Some(m) = spec
                    .mounts_mut()
                    .iter_mut()
                    .flatten()
                    .find(|m| m.destination() == Path::new("/sys"))
                {
                    m.set_typ(Some("bind".into()));
                    m.set_source(Some("/sys".into()));
                    m.set_options(Some(
                        ["rbind", "nosuid", "noexec", "nodev", "ro"]
                            .map(String::from)
                            .to_vec(),
                    ));
                }
            }
        }
        Mode::Container(_) => {
            for n in list.iter_mut().filter(|n| net(n)) {
                n.set_path(i.join_netns.as_ref().map(PathBuf::from));
            }
        }
    }
}

/// `--pid`, `--ipc`, `--uts` (the host's or another container's
/// namespace), and /dev/shm as `--ipc` and `--shm-size` say.
pub(super) fn shared(o: &RunOptions, spec: &mut oci::Spec, i: &Inputs<'_>) -> Result<()> {
    let list = linux(spec).namespaces_mut().get_or_insert_with(Vec::new);
    if o.cgroupns_host {
        list.retain(|n| n.typ() != oci::LinuxNamespaceType::Cgroup);
    }
    for (typ, path) in &i.shared.namespaces {
        match path {
            None => list.retain(|n| n.typ() != *typ),
            Some(p) => {
                for n in list.iter_mut().filter(|n| n.typ() == *typ) {
                    n.set_path(Some(PathBuf::from(p)));
                }
            }
        }
    }
    let ipc = o.ipc.as_ref().map(|f| f.get().0.clone());
    let mounts = spec.mounts_mut().get_or_insert_with(Vec::new);
    let shm = |m: &oci::Mount| m.destination() == Path::new("/dev/shm");
    match ipc {
        // The host's IPC namespace: the host's /dev/shm with it.
        Some(crate::flags::NsMode::Host) => {
            mounts.retain(|m| !shm(m));
            add_mount(
                spec,
                mount(
                    "/dev/shm",
                    "bind",
                    "/dev/shm",
                    &["rbind", "rprivate", "nosuid", "nodev", "noexec"],
                )?,
            );
        }
        Some(crate::flags::NsMode::NoShm) => mounts.retain(|m| !shm(m)),
        _ => {
            if let Some(size) = o.shm_size {
                for m in mounts
                    .iter_mut()
                    .filter(|m| shm(m) && m.typ().as_deref() == Some("tmpfs"))
                {
                    let mut opts: Vec<String> = m
                        .options()
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|x| !x.starts_with("size="))
                        .collect();
                    opts.push(format!("size={size}"));
                    m.set_options(Some(opts));
                }
            }
        }
    }
    Ok(())
}

pub(super) fn volumes(o: &RunOptions, i: &Inputs<'_>, spec: &mut oci::Spec) -> Result<()> {
    for v in &o.volumes {
        let v = v.get();
        let source = if v.source.is_empty() {
            volume(i, None, &v.target, true)?
        } else if v.is_named() {
            volume(i, Some(&v.source), &v.target, true)?
        } else {
            let p = PathBuf::from(&v.source);
            if !p.exists() {
                return Err(flag(
                    "-v",
                    format!("{}: no such file or directory on the host", v.source),
                ));
            }
            p
        };
        let mut opts = vec!["rbind", "rprivate"];
        if v.readonly {
            opts.push("ro");
        }
        add_mount(spec, mount(&v.target, "bind", source, &opts)?);
    }
    for t in &o.tmpfs {
        let t = t.get();
        let mut opts = vec!["nosuid", "nodev", "noexec"];
        opts.extend(t.options.iter().map(String::as_str));
        add_mount(spec, mount(&t.destination, "tmpfs", "tmpfs", &opts)?);
    }
    for m in &o.mounts {
        match m.get() {
            Mount::Bind {
                source,
                target,
                readonly,
                propagation,
            } => {
                // As docker's --mount (unlike -v): a missing source is an
                // error, never made.
                if !Path::new(source).exists() {
                    return Err(flag(
                        "--mount",
                        format!("bind source {source}: no such file or directory on the host"),
                    ));
                }
                let mut opts = vec!["rbind", propagation.map_or("rprivate", |p| p.option())];
                // As docker: a shared or slave bind needs the root's
                // propagation to match, or the pivot's recursive change
                // undoes it.
                use crate::flags::Propagation as P;
                let root = match propagation {
                    Some(P::Shared | P::Rshared) => Some("rshared"),
                    Some(P::Slave | P::Rslave) => Some("rslave"),
                    _ => None,
                };
                if let Some(r) = root {
                    let l = linux(spec);
                    if l.rootfs_propagation().as_deref() != Some("rshared") {
                        l.set_rootfs_propagation(Some(r.into()));
                    }
                }
                if *readonly {
                    opts.push("ro");
                }
                add_mount(spec, mount(target, "bind", source, &opts)?);
            }
            Mount::Volume {
                name,
                target,
                readonly,
                nocopy,
            } => {
                let source = volume(i, name.as_deref(), target, !nocopy)?;
                let mut opts = vec!["rbind", "rprivate"];
                if *readonly {
                    opts.push("ro");
                }
                add_mount(spec, mount(target, "bind", source, &opts)?);
            }
            Mount::Tmpfs { target, size, mode } => {
                let mut opts: Vec<String> =
                    ["nosuid", "nodev", "noexec"].map(String::from).to_vec();
                if let Some(s) = size {
                    opts.push(format!("size={s}"));
                }
                if let Some(m) = mode {
                    opts.push(format!("mode={m:o}"));
                }
                let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
                add_mount(spec, mount(target, "tmpfs", "tmpfs", &opts)?);
            }
        }
    }
    Ok(())
}

/// A volume's data directory, made if missing: `name`'s, or without one
/// the container's own for `target`. An empty one gets the image's
/// content at `target` when `copy` (docker copies into an empty volume
/// unless told `volume-nocopy`).
fn volume(i: &Inputs<'_>, name: Option<&str>, target: &str, copy: bool) -> Result<PathBuf> {
    let dir = match name {
        Some(n) => i.volumes.join(n),
        // Anonymous: a volume of its own, named by the container.
        None => i.volumes.join(format!(
            "{}-{}",
            &i.id[..12],
            target.trim_start_matches('/').replace('/', "-")
        )),
    };
    let d = dir.join("_data");
    std::fs::create_dir_all(&d).at("create volume", &d)?;
    let empty = std::fs::read_dir(&d)
        .at("read volume", &d)?
        .next()
        .is_none();
    if copy && empty {
        crate::copy::seed_volume(i.rootfs, target, &d)?;
    }
    Ok(d)
}

/// The image's VOLUMEs that no -v or --tmpfs covers get anonymous volumes,
/// seeded with the image's content there.
pub(super) fn image_volumes(
    o: &RunOptions,
    i: &Inputs<'_>,
    declared: &[String],
    spec: &mut oci::Spec,
) -> Result<()> {
    let covered: Vec<String> = o
        .volumes
        .iter()
        .map(|v| v.get().target.clone())
        .chain(o.tmpfs.iter().map(|t| t.get().destination.clone()))
        .chain(o.mounts.iter().map(|m| m.get().target().to_string()))
        .collect();
    for target in declared {
        let target = format!("/{}", target.trim_matches('/'));
        // Security: CVE-2019-16884 class. A volume over /proc, /sys or
        // /dev would hide what the kernel provides there, or redirect
        // the runtime's writes to it. Checked on where the path leads in
        // the image (`/./dev`, `/x/../dev`, a link `/vol -> /dev`), not on
        // how it is spelled.
        let lexical: std::path::PathBuf = Path::new(&target)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        let resolved = capsa_sys::root::Root::open(i.rootfs)
            .and_then(|r| r.resolve(Path::new(&target)))
            .map_err(|e| Error::Refused {
                what: format!("the image's config.Volumes: {target:?}"),
                reason: e.desc().to_string(),
            })?;
        // A volume over `/` itself would cover all three.
        let kernel = |p: &Path| {
            p == Path::new("/") || ["/proc", "/sys", "/dev"].iter().any(|k| p.starts_with(k))
        };
        if kernel(&lexical) || kernel(&resolved) || target.contains("..") {
            return Err(Error::Refused {
                what: format!("the image's config.Volumes: {target:?}"),
                reason: "a volume may not cover /, /proc, /sys or /dev".into(),
            });
        }
        if covered.iter().any(|c| c.trim_end_matches('/') == target) {
            continue;
        }
        let d = i
            .volumes
            .join(format!(
                "{}-{}",
                &i.id[..12],
                target.trim_start_matches('/').replace('/', "-")
            ))
            .join("_data");
        std::fs::create_dir_all(&d).at("create volume", &d)?;
        crate::copy::seed_volume(i.rootfs, &target, &d)?;
        add_mount(spec, mount(&target, "bind", d, &["rbind", "rprivate"])?);
    }
    Ok(())
}
