//! The image's config merged with the flags of `capsa run` into an OCI
//! runtime spec, on top of docker's defaults (capsa-spec's default spec:
//! docker's 14 capabilities, its seccomp profile, masked paths).

use crate::error::{flag, Error, IoContext, Result};
use crate::options::{self, RunOptions};
use oci_spec::image::ImageConfiguration;
use serde_json::{json, Value};
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
    /// What `--network` asked for.
    pub network: &'a crate::network::Mode,
    /// Another container's network namespace to join (`container:NAME`).
    pub join_netns: Option<String>,
    /// The /etc/hosts to write, given the hostname.
    pub hosts: &'a dyn Fn(&str) -> String,
}

/// The spec, and the process args it runs (for the record).
pub fn build(o: &RunOptions, i: &Inputs<'_>) -> Result<(Value, Vec<String>)> {
    let mut spec =
        capsa_spec::defaults::spec(None).map_err(|e| Error::data("the default spec", e))?;
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
            json!({"destination": "/.capsa-init", "type": "bind", "source": init, "options": ["bind", "ro", "nosuid", "nodev"]}),
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
    let hostname = match (&o.hostname, i.network) {
        (Some(h), _) => h.clone(),
        (None, crate::network::Mode::Host) => rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        _ => i.id[..12].to_string(),
    };
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
    let (uid, gid, groups) = resolve_user(i.rootfs, &user)?;

    let p = &mut spec["process"];
    p["terminal"] = json!(o.tty);
    p["args"] = json!(args);
    p["env"] = json!(env);
    p["cwd"] = json!(cwd);
    p["user"] = json!({"uid": uid, "gid": gid, "additionalGids": groups});

    spec["hostname"] = json!(hostname);
    spec["root"] = json!({"path": i.rootfs, "readonly": o.read_only});
    spec["linux"]["cgroupsPath"] = json!(i.cgroup_path);

    if let Some(r) = i.idmap {
        let map = |host: u32| json!([{"containerID": 0, "hostID": host, "size": r.size}]);
        spec["linux"]["uidMappings"] = map(r.uid);
        spec["linux"]["gidMappings"] = map(r.gid);
        if let Some(list) = spec["linux"]["namespaces"].as_array_mut() {
            list.push(json!({"type": "user"}));
        }
    }
    hosts_files(o, i, &hostname, &mut spec)?;
    namespaces(&mut spec, i)?;
    volumes(o, i, &mut spec)?;
    image_volumes(o, i, image.volumes().as_deref().unwrap_or(&[]), &mut spec)?;
    resources(o, &mut spec)?;
    security(o, &mut spec)?;
    for u in &o.ulimits {
        let (ty, soft, hard) = options::parse_ulimit(u)?;
        let rl = spec["process"]["rlimits"].as_array_mut();
        let list = match rl {
            Some(l) => l,
            None => {
                spec["process"]["rlimits"] = json!([]);
                spec["process"]["rlimits"].as_array_mut().expect("just set")
            }
        };
        list.retain(|r| r["type"] != ty);
        list.push(json!({"type": ty, "soft": soft, "hard": hard}));
    }
    for s in &o.sysctls {
        let (k, v) = options::parse_kv("--sysctl", s)?;
        spec["linux"]["sysctl"][k] = json!(v);
    }
    Ok((spec, args))
}

/// `KEY=VALUE`, or `KEY` alone: take the value from our environment.
fn env_entry(e: &str) -> String {
    if e.contains('=') {
        e.to_string()
    } else {
        format!("{e}={}", std::env::var(e).unwrap_or_default())
    }
}

fn add_mount(spec: &mut Value, m: Value) {
    let dest = m["destination"].clone();
    if let Some(list) = spec["mounts"].as_array_mut() {
        list.retain(|x| x["destination"] != dest);
        list.push(m);
    }
}

/// Read a file of the image through `openat2(RESOLVE_IN_ROOT)`.
///
/// Security: a regular file of the image, read through the in-root handle:
/// a link (to a host path, say) cannot lead the host out of the root, and a
/// FIFO or device there is never opened (it would hang the host, or be
/// opened by host root). Missing reads as empty; anything else that is not
/// a regular file is an error naming it.
fn read_in_root(rootfs: &Path, path: &str) -> std::result::Result<String, String> {
    use capsa_sys::root::ReadError;
    let root = capsa_sys::root::Root::open(rootfs)
        .map_err(|e| format!("{}: {}", rootfs.display(), e.desc()))?;
    match root.read(Path::new(path), 4 << 20) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(ReadError::Sys(capsa_sys::Errno::ENOENT)) => Ok(String::new()),
        Err(e) => Err(format!("{path} in the image: {e}")),
    }
}

/// `uid[:gid]` or `name[:group]` to numbers, with the user's groups, from
/// the image's /etc/passwd and /etc/group.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>)> {
    if user.is_empty() {
        return Ok((0, 0, vec![]));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let read = |path: &str| {
        read_in_root(rootfs, path)
            .map_err(|why| flag("-u (or the image's User)", format!("{user:?}: {why}")))
    };
    let passwd = read("/etc/passwd")?;
    let group = read("/etc/group")?;
    let entry = |text: &str, key: &str| -> Option<Vec<String>> {
        text.lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && (f[0] == key || f[2] == key))
    };
    let (uid, name, primary) = match u.parse::<u32>() {
        Ok(n) => {
            let e = entry(&passwd, u);
            (
                n,
                e.as_ref().map(|f| f[0].clone()),
                e.and_then(|f| f.get(3).and_then(|g| g.parse().ok())),
            )
        }
        Err(_) => {
            let f = entry(&passwd, u).ok_or_else(|| {
                flag(
                    "-u (or the image's User)",
                    format!("no user {u:?} in the image's /etc/passwd"),
                )
            })?;
            (
                f[2].parse()
                    .map_err(|_| flag("-u", format!("bad uid for {u} in /etc/passwd")))?,
                Some(f[0].clone()),
                f.get(3).and_then(|g| g.parse().ok()),
            )
        }
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => entry(&group, g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| flag("-u", format!("no group {g:?} in the image's /etc/group")))?,
        },
        None => primary.unwrap_or(0),
    };
    let mut groups = Vec::new();
    if let Some(n) = name {
        for l in group.lines() {
            let f: Vec<_> = l.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == n) {
                if let Ok(x) = f[2].parse::<u32>() {
                    if x != gid && !groups.contains(&x) {
                        groups.push(x);
                    }
                }
            }
        }
    }
    Ok((uid, gid, groups))
}

/// /etc/hostname, /etc/hosts, /etc/resolv.conf written for the container
/// and bind-mounted, as docker does.
fn hosts_files(o: &RunOptions, i: &Inputs<'_>, hostname: &str, spec: &mut Value) -> Result<()> {
    let write = |name: &str, text: String| -> Result<PathBuf> {
        let p = i.dir.join(name);
        std::fs::write(&p, text).at("write", &p)?;
        Ok(p)
    };
    let host_net = *i.network == crate::network::Mode::Host;
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
    for (name, text) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", (i.hosts)(hostname)),
        ("resolv.conf", resolv),
    ] {
        let src = write(name, text)?;
        let mut opts = vec!["rbind", "rprivate", "nosuid", "nodev", "noexec"];
        if o.read_only {
            opts.push("ro");
        }
        add_mount(
            spec,
            json!({"destination": format!("/etc/{name}"), "type": "bind", "source": src, "options": opts}),
        );
    }
    Ok(())
}

fn namespaces(spec: &mut Value, i: &Inputs<'_>) -> Result<()> {
    use crate::network::Mode;
    let list = spec["linux"]["namespaces"]
        .as_array_mut()
        .ok_or_else(|| Error::data("the default spec", "no linux.namespaces"))?;
    match i.network {
        Mode::None | Mode::Bridge(_) => {}
        Mode::Host => list.retain(|n| n["type"] != "network"),
        Mode::Container(_) => {
            for n in list.iter_mut().filter(|n| n["type"] == "network") {
                n["path"] = json!(i.join_netns);
            }
        }
    }
    Ok(())
}

fn volumes(o: &RunOptions, i: &Inputs<'_>, spec: &mut Value) -> Result<()> {
    for v in &o.volumes {
        let v = options::parse_volume(v)?;
        let source = if v.source.is_empty() {
            // Anonymous: a volume of its own, named by the container.
            let d = i
                .volumes
                .join(format!(
                    "{}-{}",
                    &i.id[..12],
                    v.target.trim_start_matches('/').replace('/', "-")
                ))
                .join("_data");
            std::fs::create_dir_all(&d).at("create volume", &d)?;
            d
        } else if v.is_named() {
            let d = i.volumes.join(&v.source).join("_data");
            std::fs::create_dir_all(&d).at("create volume", &d)?;
            d
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
        add_mount(
            spec,
            json!({"destination": v.target, "type": "bind", "source": source, "options": opts}),
        );
    }
    for t in &o.tmpfs {
        let (dest, extra) = t.split_once(':').unwrap_or((t.as_str(), ""));
        if !dest.starts_with('/') {
            return Err(flag("--tmpfs", format!("{dest:?} must be absolute")));
        }
        let mut opts: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
        opts.extend(
            extra
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        add_mount(
            spec,
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": opts}),
        );
    }
    Ok(())
}

/// The image's VOLUMEs that no -v or --tmpfs covers get anonymous volumes,
/// seeded with the image's content there.
fn image_volumes(
    o: &RunOptions,
    i: &Inputs<'_>,
    declared: &[String],
    spec: &mut Value,
) -> Result<()> {
    let covered: Vec<String> = o
        .volumes
        .iter()
        .filter_map(|v| options::parse_volume(v).ok().map(|v| v.target))
        .chain(
            o.tmpfs
                .iter()
                .map(|t| t.split(':').next().unwrap_or("").to_string()),
        )
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
        let kernel = |p: &Path| ["/proc", "/sys", "/dev"].iter().any(|k| p.starts_with(k));
        if kernel(&lexical) || kernel(&resolved) || target.contains("..") {
            return Err(Error::Refused {
                what: format!("the image's config.Volumes: {target:?}"),
                reason: "a volume may not cover /proc, /sys or /dev".into(),
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
        add_mount(
            spec,
            json!({"destination": target, "type": "bind", "source": d, "options": ["rbind", "rprivate"]}),
        );
    }
    Ok(())
}

fn resources(o: &RunOptions, spec: &mut Value) -> Result<()> {
    let r = &mut spec["linux"]["resources"];
    if let Some(m) = &o.memory {
        let limit = options::parse_bytes("--memory", m)?;
        if limit < 6 << 20 {
            return Err(flag("--memory", "the minimum is 6 MiB"));
        }
        r["memory"]["limit"] = json!(limit);
        match o.memory_swap.as_deref() {
            None => r["memory"]["swap"] = json!(limit * 2),
            Some("-1") => r["memory"]["swap"] = json!(-1),
            Some(s) => {
                let total = options::parse_bytes("--memory-swap", s)?;
                if total < limit {
                    return Err(flag(
                        "--memory-swap",
                        "must be at least --memory (it is memory plus swap)",
                    ));
                }
                r["memory"]["swap"] = json!(total);
            }
        }
    } else if o.memory_swap.is_some() {
        return Err(flag("--memory-swap", "needs --memory"));
    }
    if let Some(c) = &o.cpus {
        let (quota, period) = options::parse_cpus(c)?;
        r["cpu"]["quota"] = json!(quota);
        r["cpu"]["period"] = json!(period);
    }
    if let Some(s) = o.cpu_shares {
        if !(2..=262_144).contains(&s) {
            return Err(flag("--cpu-shares", "must be between 2 and 262144"));
        }
        r["cpu"]["shares"] = json!(s);
    }
    if let Some(c) = &o.cpuset_cpus {
        r["cpu"]["cpus"] = json!(c);
    }
    if let Some(p) = o.pids_limit {
        r["pids"]["limit"] = json!(if p <= 0 { -1 } else { p });
    }
    if let Some(w) = o.blkio_weight {
        if !(10..=1000).contains(&w) {
            return Err(flag("--blkio-weight", "must be between 10 and 1000"));
        }
        r["blockIO"]["weight"] = json!(w);
    }
    for d in &o.devices {
        let (host, ctr, perms) = options::parse_device(d)?;
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = std::fs::metadata(&host).map_err(|e| flag("--device", format!("{host}: {e}")))?;
        let ty = if m.file_type().is_char_device() {
            "c"
        } else if m.file_type().is_block_device() {
            "b"
        } else {
            return Err(flag("--device", format!("{host} is not a device")));
        };
        let (major, minor) = (libc::major(m.rdev()), libc::minor(m.rdev()));
        if spec["linux"]["devices"].is_null() {
            spec["linux"]["devices"] = json!([]);
        }
        spec["linux"]["devices"].as_array_mut().expect("array").push(json!({
            "path": ctr, "type": ty, "major": major, "minor": minor, "fileMode": m.mode() & 0o777, "uid": 0, "gid": 0
        }));
        let r = &mut spec["linux"]["resources"];
        if r["devices"].is_null() {
            r["devices"] = json!([]);
        }
        r["devices"].as_array_mut().expect("array").push(
            json!({"allow": true, "type": ty, "major": major, "minor": minor, "access": perms}),
        );
    }
    Ok(())
}

/// `chown` -> `CAP_CHOWN`; `ALL` stays.
fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up == "ALL" || up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

fn security(o: &RunOptions, spec: &mut Value) -> Result<()> {
    // "All" is what this process may hand on (its bounding set): a host
    // without CAP_SYS_RESOURCE, say, cannot give it to a container.
    let all: Vec<String> = (0..=capsa_sys::caps::last_cap())
        .filter(|n| capsa_sys::process::bounding_has(*n))
        .filter_map(|n| {
            capsa_spec::caps::NAMES
                .get(n as usize)
                .map(|s| s.to_string())
        })
        .collect();
    let mut caps: Vec<String> = if o.privileged {
        all.clone()
    } else {
        spec["process"]["capabilities"]["bounding"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    // docker's rules: --cap-add ALL starts from every capability (less
    // the drops); --cap-drop ALL keeps only the adds; otherwise the
    // defaults plus adds less drops.
    let check = |flag_name: &str, list: &[String]| -> Result<Vec<String>> {
        list.iter()
            .map(|c| {
                let c = cap_name(c);
                if c != "ALL" && !all.contains(&c) {
                    Err(flag(flag_name, format!("unknown capability {c}")))
                } else {
                    Ok(c)
                }
            })
            .collect()
    };
    let adds = check("--cap-add", &o.cap_add)?;
    let drops = check("--cap-drop", &o.cap_drop)?;
    if adds.iter().any(|c| c == "ALL") {
        caps = all.clone();
    } else if drops.iter().any(|c| c == "ALL") {
        caps.clear();
    }
    for c in adds.iter().filter(|c| *c != "ALL") {
        if !caps.contains(c) {
            caps.push(c.clone());
        }
    }
    if !adds.iter().any(|c| c == "ALL") && drops.iter().any(|c| c == "ALL") {
        // only the adds are left
    } else {
        caps.retain(|c| !drops.contains(c));
    }
    for set in ["bounding", "effective", "permitted"] {
        spec["process"]["capabilities"][set] = json!(caps);
    }
    if o.privileged {
        if let Some(l) = spec["linux"].as_object_mut() {
            l.remove("seccomp");
            l.remove("maskedPaths");
            l.remove("readonlyPaths");
        }
        spec["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
    }
    for s in &o.security_opt {
        let (k, v) = s.split_once(['=', ':']).unwrap_or((s.as_str(), ""));
        match (k, v) {
            ("no-new-privileges", "" | "true") => spec["process"]["noNewPrivileges"] = json!(true),
            ("no-new-privileges", "false") => spec["process"]["noNewPrivileges"] = json!(false),
            ("seccomp", "unconfined") => {
                if let Some(l) = spec["linux"].as_object_mut() {
                    l.remove("seccomp");
                }
            }
            ("seccomp", file) if !file.is_empty() => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| flag("--security-opt seccomp", format!("{file}: {e}")))?;
                let mut profile: Value = serde_json::from_str(&text).map_err(|e| {
                    flag("--security-opt seccomp", format!("{file}: not JSON: {e}"))
                })?;
                // docker's profile format adds these; the OCI spec has not.
                if let Some(m) = profile.as_object_mut() {
                    for k in ["archMap", "includes", "excludes", "defaultErrno"] {
                        m.remove(k);
                    }
                }
                spec["linux"]["seccomp"] = profile;
            }
            ("apparmor", p) if !p.is_empty() => {
                if p == "unconfined" {
                    if let Some(pr) = spec["process"].as_object_mut() {
                        pr.remove("apparmorProfile");
                    }
                } else {
                    spec["process"]["apparmorProfile"] = json!(p);
                }
            }
            ("label", _) => {
                return Err(flag(
                    "--security-opt",
                    "SELinux labels are not supported on this host (no SELinux)",
                ))
            }
            _ => {
                return Err(flag(
                    "--security-opt",
                    format!("unknown option {s:?} (seccomp=, no-new-privileges, apparmor=)"),
                ))
            }
        }
    }
    Ok(())
}
