//! The image's config merged with the flags of `capsa run` into an OCI
//! runtime spec, built with `oci-spec`'s types on top of capsa's hardened
//! default (docker's 14 capabilities, its seccomp profile, masked paths).
//! The rooms: the process here; the user from the image (`user`); mounts,
//! volumes and namespaces (`mounts`); limits, devices, ulimits and
//! sysctls (`resources`); capabilities and security options
//! (`security`).

mod mounts;
mod resources;
mod security;
#[cfg(test)]
mod tests;
pub mod user;

pub use mounts::write_files;
pub use user::resolve_user;

use crate::error::{flag, Result};
use crate::options::RunOptions;
use capsa_spec::oci;
use oci_spec::image::ImageConfiguration;
use std::path::{Path, PathBuf};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the spec was built from, besides the flags.
pub struct Inputs<'a> {
    pub id: &'a str,
    pub config: &'a ImageConfiguration,
    pub rootfs: &'a Path,
    /// Where hostname, hosts, resolv.conf are written (in the run
    /// directory: small files rewritten per start, on tmpfs).
    pub dir: &'a Path,
    /// Where named volumes live (`<root>/volumes`).
    pub volumes: &'a Path,
    /// The cgroup path for the runtime.
    /// `linux.cgroupsPath`: a cgroupfs path, or systemd's `slice:prefix:name`.
    pub cgroup_path: &'a str,
    /// The container's private id range (`--userns auto`), if any.
    pub idmap: Option<crate::userns::IdRange>,
    /// `--userns keep-id` (rootless), if asked.
    pub keep_id: Option<crate::userns::KeepId>,
    /// What `--network` asked for.
    pub network: &'a crate::options::NetworkMode,
    /// Another container's network namespace to join (`container:NAME`).
    pub join_netns: Option<String>,
    /// The /etc/hosts to write, given the hostname.
    pub hosts: &'a dyn Fn(&str) -> String,
    /// `--pid`, `--ipc`, `--uts`: the host's namespace (no path) or another
    /// container's (its path).
    pub shared: Shared,
}

/// The namespaces of `--pid`, `--ipc` and `--uts` not the container's own.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    pub namespaces: Vec<(oci::LinuxNamespaceType, Option<String>)>,
    /// The hostname of the UTS namespace shared (the host's or another
    /// container's): no hostname of its own is set.
    pub hostname: Option<String>,
}

/// The container's hostname: `-h`, the host's with the host's network,
/// else docker's short id.
pub fn hostname(o: &RunOptions, network: &crate::options::NetworkMode, id: &str) -> String {
    match (&o.hostname, network) {
        (Some(h), _) => h.clone(),
        (None, crate::options::NetworkMode::Host) => rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        _ => id[..12].to_string(),
    }
}

/// The spec, and the process args it runs (for the record).
pub fn build(o: &RunOptions, i: &Inputs<'_>) -> Result<(oci::Spec, Vec<String>)> {
    let mut spec = capsa_spec::defaults::hardened(None)?;
    let image = i.config.config().clone().unwrap_or_default();

    // Command: --entrypoint replaces the image's entrypoint and its Cmd.
    let mut args: Vec<String> = match &o.entrypoint {
        Some(e) if e.is_empty() => vec![],
        Some(e) => vec![e.clone()],
        None => image.entrypoint().clone().unwrap_or_default(),
    };
    if !o.args.is_empty() {
        args.extend(o.args.iter().cloned());
    } else if o.entrypoint.is_none() {
        args.extend(image.cmd().clone().unwrap_or_default());
    }
    if args.is_empty() {
        return Err(flag(
            "COMMAND",
            "no command given and the image has neither Entrypoint nor Cmd",
        ));
    }
    if o.init {
        let init = [
            "/usr/bin/catatonit",
            "/usr/bin/tini",
            "/usr/bin/tini-static",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| {
            flag(
                "--init",
                "no init binary on this host (install catatonit or tini)",
            )
        })?;
        add_mount(
            &mut spec,
            mount(
                "/.capsa-init",
                "bind",
                init,
                &["bind", "ro", "nosuid", "nodev"],
            )?,
        );
        let mut a = vec!["/.capsa-init".to_string(), "--".to_string()];
        a.extend(args);
        args = a;
    }

    // Environment: PATH, the image's, env files, then -e (later wins).
    let mut env: Vec<String> = vec![DEFAULT_PATH.to_string()];
    let mut set = |kv: String| {
        let key = kv.split('=').next().unwrap_or("").to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    };
    for e in image.env().clone().unwrap_or_default() {
        set(e);
    }
    for f in &o.env_files {
        let text =
            std::fs::read_to_string(f).map_err(|e| flag("--env-file", format!("{f}: {e}")))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            set(env_entry(line));
        }
    }
    for e in &o.env {
        set(env_entry(e));
    }
    let hostname = i
        .shared
        .hostname
        .clone()
        .unwrap_or_else(|| hostname(o, i.network, i.id));
    set(format!("HOSTNAME={hostname}"));
    if o.tty {
        set("TERM=xterm".to_string());
    }

    let cwd = o
        .workdir
        .clone()
        .or_else(|| image.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    if !cwd.starts_with('/') {
        return Err(flag("-w", format!("{cwd:?} must be absolute")));
    }
    let user = o
        .user
        .clone()
        .or_else(|| image.user().clone())
        .unwrap_or_default();
    let (uid, gid, mut groups) = resolve_user(i.rootfs, &user)?;
    for g in user::resolve_groups(i.rootfs, &o.group_add)? {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }

    let process = spec.process_mut().get_or_insert_with(Default::default);
    process.set_terminal(Some(o.tty));
    process.set_args(Some(args.clone()));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(&cwd));
    if let Some(adj) = o.oom_score_adj {
        process.set_oom_score_adj(Some(adj));
    }
    process.set_user(
        oci::UserBuilder::default()
            .uid(uid)
            .gid(gid)
            .additional_gids(groups)
            .build()?,
    );
    // Security: in a UTS namespace not its own, a hostname set would be
    // the host's (or the other container's): none is.
    spec.set_hostname(i.shared.hostname.is_none().then(|| hostname.clone()));
    if let Some(d) = &o.domainname {
        if i.shared.hostname.is_some() {
            return Err(flag(
                "--domainname",
                "conflicts with --uts host or container: (the name is that namespace's)",
            ));
        }
        spec.set_domainname(Some(d.clone()));
    }
    spec.set_root(Some(
        oci::RootBuilder::default()
            .path(i.rootfs)
            .readonly(o.read_only)
            .build()?,
    ));
    let linux = linux(&mut spec);
    linux.set_cgroups_path(Some(PathBuf::from(i.cgroup_path)));
    if let Some(r) = i.idmap {
        let map = |host: u32| {
            oci::LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host)
                .size(r.size)
                .build()
        };
        linux.set_uid_mappings(Some(vec![map(r.uid)?]));
        linux.set_gid_mappings(Some(vec![map(r.gid)?]));
        linux.namespaces_mut().get_or_insert_with(Vec::new).push(
            oci::LinuxNamespaceBuilder::default()
                .typ(oci::LinuxNamespaceType::User)
                .build()?,
        );
    }
    if let Some(k) = i.keep_id {
        let maps = |gid: bool| {
            k.map(gid)
                .iter()
                .map(|(c, h, n)| {
                    oci::LinuxIdMappingBuilder::default()
                        .container_id(*c)
                        .host_id(*h)
                        .size(*n)
                        .build()
                })
                .collect::<std::result::Result<Vec<_>, _>>()
        };
        let linux = self::linux(&mut spec);
        linux.set_uid_mappings(Some(maps(false)?));
        linux.set_gid_mappings(Some(maps(true)?));
        linux.namespaces_mut().get_or_insert_with(Vec::new).push(
            oci::LinuxNamespaceBuilder::default()
                .typ(oci::LinuxNamespaceType::User)
                .build()?,
        );
        // podman's keep-id: the user's own ids run the command, unless
        // -u says otherwise.
        if o.user.is_none() {
            if let Some(p) = spec.process_mut() {
                p.set_user(oci::UserBuilder::default().uid(k.uid).gid(k.gid).build()?);
            }
        }
    }
    mounts::hosts_files(o, i, &hostname, &mut spec)?;
    mounts::namespaces(&mut spec, i);
    mounts::shared(o, &mut spec, i)?;
    mounts::volumes(o, i, &mut spec)?;
    mounts::image_volumes(o, i, image.volumes().as_deref().unwrap_or(&[]), &mut spec)?;
    resources::apply(o, &mut spec)?;
    security::apply(o, &mut spec)?;
    resources::ulimits_and_sysctls(o, &mut spec)?;
    if !o.annotations.is_empty() {
        let mut all = spec.annotations().clone().unwrap_or_default();
        for a in &o.annotations {
            let (k, v) = crate::flags::key_value("--annotation", a)?;
            all.insert(k, v);
        }
        spec.set_annotations(Some(all));
    }
    Ok((spec, args))
}

/// `KEY=VALUE`, or `KEY` alone: take the value from our environment.
pub(crate) fn env_entry(e: &str) -> String {
    if e.contains('=') {
        e.to_string()
    } else {
        format!("{e}={}", std::env::var(e).unwrap_or_default())
    }
}

/// The spec's `linux`, made if it is missing.
fn linux(spec: &mut oci::Spec) -> &mut oci::Linux {
    spec.linux_mut().get_or_insert_with(Default::default)
}

/// The spec's `process`, made if it is missing.
fn process(spec: &mut oci::Spec) -> &mut oci::Process {
    spec.process_mut().get_or_insert_with(Default::default)
}

/// A mount entry.
fn mount(
    destination: impl Into<PathBuf>,
    typ: &str,
    source: impl Into<PathBuf>,
    options: &[&str],
) -> Result<oci::Mount> {
    Ok(oci::MountBuilder::default()
        .destination(destination.into())
        .typ(typ)
        .source(source.into())
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// Add `m`, replacing a mount of the spec at the same destination.
fn add_mount(spec: &mut oci::Spec, m: oci::Mount) {
    let list = spec.mounts_mut().get_or_insert_with(Vec::new);
    list.retain(|x| x.destination() != m.destination());
    list.push(m);
}
