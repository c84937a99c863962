//! Making a container: a record, an overlay snapshot of its image, and a
//! bundle (config.json) built from the image's config and the flags.
//! Everything is checked before anything is made; a failure half-way
//! unmounts and removes what was made.

use crate::container::{Container, State, Status};
use crate::error::{Error, IoContext, Result};
use crate::options::RunOptions;
use crate::Engine;
use capsa_image::snapshot::{IdMapped, OverlayApi, Snapshot};
use capsa_image::ImageRecord;
use std::os::fd::AsFd;
use std::time::Instant;

/// Whether a snapshot may use fuse-overlayfs: only for rootless capsa,
/// where the kernel refuses the overlay, or where CAPSA_OVERLAY=fuse asks.
pub fn fuse_choice() -> capsa_image::snapshot::Fuse {
    match (
        crate::rootless::active(),
        std::env::var_os(capsa_image::snapshot::DRIVER_ENV).is_some_and(|v| v == "fuse"),
    ) {
        (false, _) => capsa_image::snapshot::Fuse::Never,
        (true, false) => capsa_image::snapshot::Fuse::Fallback,
        (true, true) => capsa_image::snapshot::Fuse::Always,
    }
}

/// Make container from `image` (already in the store) with `opts`.
pub fn create(
    engine: &Engine,
    image: &ImageRecord,
    image_name: &str,
    opts: &RunOptions,
) -> Result<Container> {
    let t0 = Instant::now();
    let trace = std::cell::RefCell::new(Vec::new());
    let mark = |step: String| {
        trace.borrow_mut().push(format!(
            "{:>8} us  engine  {step}",
            t0.elapsed().as_micros()
        ))
    };
    // The flags were read at the command line; what depends on this host
    // is checked before anything exists.
    if let Some(c) = &opts.cpus {
        crate::options::cpu_quota(c.get().0)?;
    }
    let userns_size = crate::userns::parse(opts.userns.as_deref())?;
    let keep_id = crate::userns::keep_id(opts.userns.as_deref())?;
    if userns_size.is_some() && crate::rootless::active() {
        return Err(crate::error::flag(
            "--userns",
            "auto takes host ids beyond the user's own range: rootless, every container already runs in the user's namespace",
        ));
    }
    if opts.rm && opts.restart_policy() != crate::restart::Policy::No {
        return Err(crate::error::flag(
            "--restart",
            "conflicts with --rm: a container removed at its exit cannot start again",
        ));
    }
    let mode = crate::network::mode(opts.network.as_deref());
    // The networks exist before anything is made.
    let (network, mut ports) = crate::network::request(engine, &mode, opts)?;
    let join = match &mode {
        crate::network::Mode::Container(target) => Some(
            crate::joins::resolve(
                engine,
                "--network",
                target,
                "net",
                capsa_spec::oci::LinuxNamespaceType::Network,
            )?
            .1,
        ),
        _ => None,
    };
    let shared = shared_namespaces(engine, opts)?;
    // --volumes-from: the other containers' volumes and binds, as -v
    // entries of this one's (its record keeps them).
    let with_volumes;
    let opts = if opts.volumes_from.is_empty() {
        opts
    } else {
        with_volumes = RunOptions {
            volumes: volumes_from(engine, opts)?,
            ..opts.clone()
        };
        &with_volumes
    };
    let (id, name) = engine.reserve(opts.name.as_deref())?;
    let dir = engine.containers().join(&id);
    let result = (|| {
        // The manifest and config are read (and their digests checked)
        // once: for the layers here and the config for the spec below.
        let img = capsa_image::local::open(&engine.images, image)?;
        let layers = img.layers(&format!("image {}", image.id.short()))?;
        capsa_image::local::unpack_layers(&engine.images, &layers, &|_| {})?;
        let lowers = capsa_image::local::lowers(&engine.images, &layers);
        mark(format!(
            "image {} ready: {} layers",
            image.id.short(),
            lowers.len()
        ));
        let idmap = userns_size
            .map(|size| crate::userns::allocate(engine, &dir, size))
            .transpose()?;
        let (snap, note) = mount_snapshot(&dir, &lowers, idmap, keep_id)?;
        if let Some(n) = note {
            mark(n);
        }
        mark(format!(
            "{} mounted at {}: lowerdir+={} (top first), upperdir={}, workdir={}",
            snap.driver.name(),
            snap.rootfs.display(),
            lowers
                .iter()
                .map(|l| l.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
            dir.join("upper").display(),
            dir.join("work").display()
        ));
        // podman's default cgroup manager: where systemd is PID 1 on a pure
        // v2 host, the container's cgroup is a scope systemd makes
        // (`machine.slice/capsa-ID.scope`), unless --cgroup-parent names a
        // cgroupfs path or another runtime runs it.
        // Rootless: the system's systemd makes no scope for a user; a
        // delegated subtree of its own takes the container (cgroupfs).
        let rootless = crate::rootless::active();
        let systemd = opts.runtime.is_none()
            && !rootless
            && crate::runtime::systemd_host()
            && opts
                .cgroup_parent
                .as_deref()
                .is_none_or(|p| !p.starts_with('/'));
        let (cgroup_path, systemd_scope) = if systemd {
            let slice = opts
                .cgroup_parent
                .clone()
                .unwrap_or_else(|| "machine.slice".to_string());
            if !slice.ends_with(".slice") || slice.contains(':') {
                return Err(crate::error::flag(
                    "--cgroup-parent",
                    "with systemd managing cgroups: a slice name (machine.slice) or an absolute cgroupfs path",
                ));
            }
            let form = format!("{slice}:capsa:{id}");
            let scope = capsa_cgroups::systemd::Scope::of(Some(std::path::Path::new(&form)), &id)
                .map_err(|e| crate::error::flag("--cgroup-parent", e.to_string()))?;
            (scope.path.display().to_string(), Some(form))
        } else {
            let parent = opts.cgroup_parent.clone().unwrap_or_else(|| {
                match rootless.then(crate::rootless::delegated_cgroup).flatten() {
                    Some(d) => format!("{}/capsa", d.display()),
                    None => "/capsa".to_string(),
                }
            });
            if !parent.starts_with('/') {
                return Err(crate::error::flag(
                    "--cgroup-parent",
                    "must be an absolute cgroup path",
                ));
            }
            (
                format!("{}/capsa-{}", parent.trim_end_matches('/'), &id[..12]),
                None,
            )
        };
        // -P: every port the image exposes, on a free host port.
        if opts.publish_all {
            let exposed = img
                .config
                .config()
                .as_ref()
                .and_then(|c| c.exposed_ports().clone())
                .unwrap_or_default();
            for e in exposed.iter().chain(&opts.expose) {
                for p in capsa_network::ports::parse(e).map_err(crate::network::net_err)? {
                    if !ports
                        .iter()
                        .any(|q| q.container_port == p.container_port && q.proto == p.proto)
                    {
                        ports.push(p);
                    }
                }
            }
        }
        let eps = match &network {
            Some(net) => vec![crate::network::allocate(
                engine,
                net,
                &id,
                &dir,
                0,
                &opts.network_aliases,
            )?],
            None => Vec::new(),
        };
        if let Some(e) = eps.first() {
            mark(format!(
                "network {}: address {}/{} on bridge {}, via {}",
                e.network,
                e.ip,
                network.as_ref().map(|n| n.subnet.prefix).unwrap_or(0),
                network.as_ref().map(|n| n.bridge.as_str()).unwrap_or(""),
                e.host_veth
            ));
        }
        let hosts = |hostname: &str| {
            hosts_text(
                engine,
                &mode,
                join.as_ref(),
                (&id, &name),
                hostname,
                &eps,
                opts,
            )
        };
        let inputs = crate::spec::Inputs {
            id: &id,
            config: &img.config,
            rootfs: &snap.rootfs,
            dir: &engine.files_dir(&id)?,
            volumes: &engine.volumes(),
            cgroup_path: systemd_scope.as_deref().unwrap_or(&cgroup_path),
            idmap,
            keep_id,
            network: &mode,
            join_netns: join
                .as_ref()
                .map(|t| format!("/proc/{}/ns/net", t.state.pid)),
            hosts: &hosts,
            shared: shared.clone(),
        };
        let (spec, args) = crate::spec::build(opts, &inputs)?;
        // The working directory exists before the start, made in the
        // container's root (through the in-root handle) when the image
        // lacks it, as docker's daemon and BuildKit's WORKDIR make it.
        if let Some(cwd) = spec.process().as_ref().map(|p| p.cwd().clone()) {
            if cwd != std::path::Path::new("/") {
                capsa_sys::root::Root::open(&snap.rootfs)
                    .and_then(|r| r.mkdir_all(&cwd))
                    .map_err(|e| {
                        crate::error::flag(
                            "-w (or the image's WorkingDir)",
                            format!("{}: {}", cwd.display(), e.desc()),
                        )
                    })?;
            }
        }
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&spec).map_err(|e| Error::data("config.json", e))?,
        )
        .at("write", &path)?;
        mark("spec written (image config + flags over docker's defaults)".into());
        // What the init applies at start, just before execve.
        let process = spec.process().clone().unwrap_or_default();
        let caps = process
            .capabilities()
            .as_ref()
            .and_then(|c| c.bounding().as_ref().map(|b| b.len()))
            .unwrap_or(0);
        let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(s) => format!(
                "seccomp filter of {} rules, default {:?}",
                s.syscalls().as_ref().map_or(0, |r| r.len()),
                s.default_action()
            ),
            None => "no seccomp filter".into(),
        };
        mark(format!(
            "at start the init keeps {caps} capabilities, no_new_privs={}, loads a {seccomp}, then execve {:?}",
            process.no_new_privileges().unwrap_or(false),
            args
        ));
        let stop_signal = opts.stop_signal.clone().or_else(|| {
            img.config
                .config()
                .as_ref()
                .and_then(|c| c.stop_signal().clone())
        });
        let typed = capsa_image::config::ImageConfig::parse(
            &img.config_bytes,
            &format!("image {}", image.id.short()),
        )?;
        let healthcheck = crate::health::resolve(typed.config.healthcheck.as_ref(), &opts.health)?;
        let mut labels = typed.config.labels.clone().unwrap_or_default();
        for l in &opts.labels {
            let (k, v) = crate::flags::key_value("--label", l)?;
            labels.insert(k, v);
        }
        let now = crate::manage::now_secs();
        let c = Container {
            id: id.clone(),
            name: name.clone(),
            image_id: image.id.to_string(),
            image: image_name.to_string(),
            created: capsa_image::local::rfc3339(now),
            created_secs: now,
            created_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            args,
            options: RunOptions {
                stop_signal,
                ..opts.clone()
            },
            cgroup_path,
            systemd_scope,
            idmap,
            labels,
            healthcheck,
            ports,
            lowers: lowers.iter().map(|l| l.display().to_string()).collect(),
            trace: trace.borrow().clone(),
            state: State {
                status: Status::Created,
                pid: 0,
                pid_start: 0,
                monitor_pid: 0,
                exit_code: None,
                started_at: None,
                finished_at: None,
                finished_secs: None,
                error: None,
                restart_count: 0,
                stopped_by_hand: false,
                health: None,
                boot_id: None,
            },
        };
        // The others' hosts files name it once it runs (the monitor).
        engine.save(&c)?;
        crate::events::emit(engine, &crate::events::Event::container(&c, "create", &[]));
        Ok(c)
    })();
    if result.is_err() {
        let _ = rustix::mount::unmount(
            dir.join("rootfs").as_path(),
            rustix::mount::UnmountFlags::DETACH,
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// `--volumes-from C[:ro|rw]`: `opts`' own `-v`, then each of C's volumes
/// (named, anonymous and its image's, as its bundle mounts them from the
/// store) and binds (its `-v` and `--mount` ones) at the same paths, read
/// only with `:ro` (else as C has them). A path this container mounts
/// already keeps its own.
fn volumes_from(
    engine: &Engine,
    opts: &RunOptions,
) -> Result<Vec<crate::flags::Flag<crate::flags::Volume>>> {
    use crate::flags::{Flag, Mount};
    let mut out = opts.volumes.clone();
    let taken = |out: &[Flag<crate::flags::Volume>], t: &str| {
        out.iter().any(|v| v.get().target == t)
            || opts.mounts.iter().any(|m| m.get().target() == t)
            || opts.tmpfs.iter().any(|m| m.get().destination == t)
    };
    for from in &opts.volumes_from {
        let (what, ro) = match from.rsplit_once(':') {
            Some((w, "ro")) => (w, Some(true)),
            Some((w, "rw")) => (w, Some(false)),
            Some((_, m)) => {
                return Err(crate::error::flag(
                    "--volumes-from",
                    format!("{from:?}: the mode is ro or rw, not {m:?}"),
                ))
            }
            None => (from.as_str(), None),
        };
        let c = engine.find(what)?;
        let path = c.dir(engine).join("config.json");
        let spec: capsa_spec::oci::Spec = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| Error::data(path.display(), "not a bundle capsa wrote"))?;
        let mut found: Vec<(String, String, bool)> = Vec::new();
        // Volumes: bind mounts of `<root>/volumes/NAME/_data`.
        let store = engine.volumes();
        for m in spec.mounts().iter().flatten() {
            let Some(src) = m.source().as_ref() else {
                continue;
            };
            let Ok(rest) = src.strip_prefix(&store) else {
                continue;
            };
            let mut parts = rest.components();
            let (Some(name), Some(data), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if data.as_os_str() != "_data" {
                continue;
            }
            let readonly = m.options().iter().flatten().any(|o| o == "ro");
            found.push((
                name.as_os_str().to_string_lossy().into_owned(),
                m.destination().display().to_string(),
                readonly,
            ));
        }
        // Binds: as its flags gave them.
        for v in c
            .options
            .volumes
            .iter()
            .map(Flag::get)
            .filter(|v| !v.is_named())
        {
            found.push((v.source.clone(), v.target.clone(), v.readonly));
        }
        for m in c.options.mounts.iter().map(Flag::get) {
            if let Mount::Bind {
                source,
                target,
                readonly,
                ..
            } = m
            {
                found.push((source.clone(), target.clone(), *readonly));
            }
        }
        for (source, target, readonly) in found {
            if taken(&out, &target) {
                continue;
            }
            let text = format!(
                "{source}:{target}{}",
                if ro.unwrap_or(readonly) { ":ro" } else { "" }
            );
            out.push(
                Flag::parse(&text)
                    .map_err(|e| crate::error::flag("--volumes-from", format!("{what}: {e}")))?,
            );
        }
    }
    Ok(out)
}

/// `--pid`, `--ipc` and `--uts` resolved before anything is made: the
/// host's namespace, or a running container's (through its init, whose
/// start time the record holds).
pub(crate) fn shared_namespaces(engine: &Engine, opts: &RunOptions) -> Result<crate::spec::Shared> {
    use crate::flags::NsMode;
    use capsa_spec::oci::LinuxNamespaceType as T;
    let mut out = crate::spec::Shared::default();
    for (flag, mode, kind, typ) in opts.namespace_modes() {
        match mode {
            NsMode::Host => {
                out.namespaces.push((typ, None));
                if typ == T::Uts {
                    out.hostname = Some(
                        rustix::system::uname()
                            .nodename()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
            NsMode::Container(what) => {
                let (j, t) = crate::joins::resolve(engine, flag, &what, kind, typ)?;
                out.namespaces.push((typ, Some(j.path)));
                if typ == T::Uts {
                    // Security: from the other container's record, never
                    // from its /etc/hostname, which it may rewrite (into
                    // lines of this one's /etc/hosts).
                    out.hostname = Some(t.hostname());
                }
            }
            NsMode::Private | NsMode::NoShm => {}
        }
    }
    if out.hostname.is_some() && opts.hostname.is_some() {
        return Err(crate::error::flag(
            "--hostname",
            "conflicts with --uts host or container: (the hostname is that namespace's)",
        ));
    }
    Ok(out)
}

/// The /etc/hosts of container `id` (named `name`): the host's with the
/// host's network, the joined container's with `container:`, else one of
/// its own naming its peers; then `--add-host`'s lines.
pub(crate) fn hosts_text(
    engine: &Engine,
    mode: &crate::network::Mode,
    join: Option<&Container>,
    (id, name): (&str, &str),
    hostname: &str,
    eps: &[capsa_network::Endpoint],
    opts: &RunOptions,
) -> String {
    let added = crate::network::added_hosts(opts);
    match (mode, join) {
        (crate::network::Mode::Host, _) => {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default() + &added
        }
        (_, Some(t)) => {
            std::fs::read_to_string(engine.run.join("files").join(&t.id).join("hosts"))
                .unwrap_or_default()
                + &added
        }
        _ => crate::network::hosts_file(engine, id, hostname, name, eps, &added),
    }
}

/// Mount the container's overlay (`dir`'s upper and work over `lowers`):
/// with its id range's mapping (`--userns auto`), through fuse-overlayfs's
/// mapping (`keep-id`), or plain; with a line for the trace when mapped.
pub(crate) fn mount_snapshot(
    dir: &std::path::Path,
    lowers: &[std::path::PathBuf],
    idmap: Option<crate::userns::IdRange>,
    keep_id: Option<crate::userns::KeepId>,
) -> Result<(Snapshot, Option<String>)> {
    let fuse = fuse_choice();
    Ok(match (idmap, keep_id) {
        (None, Some(k)) => {
            let snap = Snapshot::create_fuse_mapped(
                dir,
                lowers,
                &k.fuse_option(false),
                &k.fuse_option(true),
            )?;
            let note = format!(
                "user namespace keep-id: uid {} and gid {} the same inside as outside; uid map {}, gid map {}; image layers through fuse-overlayfs with that map",
                k.uid,
                k.gid,
                k.fuse_option(false),
                k.fuse_option(true)
            );
            (snap, Some(note))
        }
        (None, None) => (
            Snapshot::create(dir, lowers, OverlayApi::Auto, None, fuse)?,
            None,
        ),
        (Some(r), _) => {
            let maps = [capsa_spec::IdMap {
                container: 0,
                host: r.uid,
                size: r.size,
            }];
            let gmaps = [capsa_spec::IdMap {
                container: 0,
                host: r.gid,
                size: r.size,
            }];
            let ns = capsa_runtime::userns_fd(&maps, &gmaps)?;
            let mapped = IdMapped {
                userns: ns.as_fd(),
                root: (r.uid, r.gid),
            };
            let snap = Snapshot::create(dir, lowers, OverlayApi::Auto, Some(mapped), fuse)?;
            let note = format!(
                "user namespace: container ids 0-{} are host uids {}-{} and gids {}-{}; image layers id-mapped",
                r.size - 1,
                r.uid,
                r.uid + (r.size - 1),
                r.gid,
                r.gid + (r.size - 1)
            );
            (snap, Some(note))
        }
    })
}
