//! Looking at containers: `inspect` (with the kernel's view: namespaces
//! and their inodes, the cgroup and its limits, mounts, the overlay's
//! layers, the start trace), `stats` samples, `top`, and `info` about the
//! host.

use crate::container::{Container, Status};
use crate::error::Result;
use crate::Engine;
use serde_json::{json, Value};

/// Namespaces of a running init, as /proc/PID/ns shows them.
fn namespaces(pid: i32) -> Value {
    let mut out = Vec::new();
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        let link = std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        out.push(json!({"type": ns, "path": format!("/proc/{pid}/ns/{ns}"), "inode": link, "shared_with_host": link == host}));
    }
    json!(out)
}

/// The cgroup files that hold the container's limits, with their values.
fn cgroup_files(path: &str) -> Value {
    let mut out = serde_json::Map::new();
    let rel = path.trim_start_matches('/');
    for (dir, files) in [
        (
            "/sys/fs/cgroup/memory",
            &[
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "memory.usage_in_bytes",
            ][..],
        ),
        (
            "/sys/fs/cgroup/cpu,cpuacct",
            &["cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"][..],
        ),
        (
            "/sys/fs/cgroup/cpu",
            &["cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"][..],
        ),
        ("/sys/fs/cgroup/pids", &["pids.max", "pids.current"][..]),
        ("/sys/fs/cgroup/blkio", &["blkio.weight"][..]),
        ("/sys/fs/cgroup/cpuset", &["cpuset.cpus"][..]),
        (
            "/sys/fs/cgroup",
            &[
                "memory.max",
                "memory.swap.max",
                "cpu.max",
                "cpu.weight",
                "pids.max",
                "io.weight",
                "cpuset.cpus",
            ][..],
        ),
        ("/sys/fs/cgroup/unified", &["cgroup.procs"][..]),
    ] {
        for f in files {
            let p = format!("{dir}/{rel}/{f}");
            if let Ok(v) = std::fs::read_to_string(&p) {
                out.entry(p).or_insert(json!(v.trim()));
            }
        }
    }
    Value::Object(out)
}

fn mounts(pid: i32) -> Value {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    json!(text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(json!({"target": f.get(4)?, "type": f.get(sep + 1)?, "source": f.get(sep + 2)?, "options": f.get(5)?}))
        })
        .collect::<Vec<_>>())
}

/// `capsa inspect`, docker's shape plus what the kernel sees.
pub fn inspect(engine: &Engine, c: &Container) -> Value {
    let running = matches!(c.state.status, Status::Running | Status::Paused) && c.init_alive();
    let spec: Option<capsa_spec::oci::Spec> = std::fs::read(c.dir(engine).join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let process = spec.as_ref().and_then(|s| s.process().clone());
    let linux = spec.as_ref().and_then(|s| s.linux().clone());
    let mut caps: Vec<String> = process
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .map(|b| b.iter().map(capsa_spec::caps::name_of).collect())
        .unwrap_or_default();
    caps.sort();
    // A config that does not read says nothing: "unknown", never
    // "unconfined" or no capabilities.
    let seccomp = match linux.as_ref().and_then(|l| l.seccomp().as_ref()) {
        None if spec.is_none() => json!("unknown"),
        None => json!("unconfined"),
        Some(s) => json!({
            "defaultAction": s.default_action(),
            "rules": s.syscalls().as_ref().map_or(0, |r| r.len()),
        }),
    };
    let dir = c.dir(engine);
    let restart = c.options.restart_policy();
    json!({
        "Id": c.id,
        "Name": c.name,
        "Created": c.created,
        "Path": c.args.first(),
        "Args": c.args.get(1..).unwrap_or(&[]),
        "State": {
            "Status": format!("{:?}", c.state.status).to_lowercase(),
            "Running": c.state.status == Status::Running,
            "Paused": c.state.status == Status::Paused,
            "Restarting": c.state.status == Status::Restarting,
            "Pid": c.state.pid,
            "MonitorPid": c.state.monitor_pid,
            // Docker's: 0 while it runs (a restarted container's last exit
            // is in the log of its restarts, not here).
            "ExitCode": if matches!(c.state.status, Status::Running | Status::Paused) { 0 } else { c.state.exit_code.unwrap_or(0) },
            "StartedAt": c.state.started_at,
            "FinishedAt": c.state.finished_at,
            "Error": c.state.error,
            "Health": c.state.health,
        },
        "RestartCount": c.state.restart_count,
        "Image": c.image_id,
        "ImageName": c.image,
        "Config": {
            "Hostname": spec.as_ref().and_then(|s| s.hostname().clone()),
            "Env": process.as_ref().and_then(|p| p.env().clone()),
            "Cmd": c.args,
            "WorkingDir": process.as_ref().map(|p| p.cwd().clone()),
            "User": process.as_ref().map(|p| p.user().clone()),
            "Tty": c.options.tty,
            "OpenStdin": c.options.interactive,
            "StopSignal": c.options.stop_signal,
            "Healthcheck": c.healthcheck,
            "Labels": c.labels,
        },
        "HostConfig": {
            "AutoRemove": c.options.rm,
            "Annotations": c.options.annotations.iter().filter_map(|a| crate::flags::key_value("--annotation", a).ok()).collect::<std::collections::BTreeMap<_, _>>(),
            "RestartPolicy": {
                "Name": restart.name(),
                "MaximumRetryCount": restart.max_retries(),
            },
            "Privileged": c.options.privileged,
            "ReadonlyRootfs": c.options.read_only,
            "NetworkMode": c.options.network.clone().unwrap_or_else(|| crate::network::DEFAULT.into()),
            "Binds": c.options.volumes,
            "Mounts": c.options.mounts,
            "Resources": linux.as_ref().and_then(|l| l.resources().clone()),
            "CapAdd": c.options.cap_add,
            "CapDrop": c.options.cap_drop,
            "SecurityOpt": c.options.security_opt,
            "Runtime": c.options.runtime.clone().unwrap_or_else(|| "capsa (in-process)".into()),
            "UsernsMode": c.options.userns.clone().unwrap_or_default(),
        },
        "NetworkSettings": {
            "Networks": crate::network::endpoints(&c.dir(engine))
                .into_iter()
                .map(|e| (e.network.clone(), json!({"IPAddress": e.ip.to_string(), "GlobalIPv6Address": e.ip6.map(|a| a.to_string()), "Interface": e.ifname, "HostVeth": e.host_veth, "Aliases": e.aliases})))
                .collect::<serde_json::Map<_, _>>(),
            "Ports": c.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        },
        "IdMappings": c.idmap.map(|r| json!({
            "UidMap": [format!("0:{}:{}", r.uid, r.size)],
            "GidMap": [format!("0:{}:{}", r.gid, r.size)],
        })),
        "Capabilities": if spec.is_some() { json!(caps) } else { json!("unknown") },
        "Seccomp": seccomp,
        "Cgroup": {"Path": c.cgroup_path, "Files": if running { cgroup_files(&c.cgroup_path) } else { json!({}) }},
        "Namespaces": if running { namespaces(c.state.pid) } else { json!([]) },
        "Mounts": if running { mounts(c.state.pid) } else { json!(spec.as_ref().and_then(|s| s.mounts().clone())) },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": c.lowers.join(":"),
                "UpperDir": dir.join("upper"),
                "WorkDir": dir.join("work"),
                "MergedDir": dir.join("rootfs"),
            }
        },
        "LogPath": dir.join("ctr.log"),
        "Trace": c.trace,
    })
}

/// One sample of a container's usage.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Sample {
    pub cpu_ns: u64,
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub pids: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub net_rx: u64,
    pub net_tx: u64,
}

/// Read the container's cgroup (v1 or v2) and its network devices.
pub fn sample(c: &Container) -> Result<Sample> {
    if !c.init_alive() {
        return Err(crate::error::Error::Conflict(format!(
            "container {} is not running",
            c.name
        )));
    }
    let st = crate::runtime::cgroup(c)?.stats();
    let mut s = Sample {
        cpu_ns: st.cpu.usage.total,
        mem_usage: st.memory.usage.usage.saturating_sub(
            st.memory
                .raw
                .get("total_inactive_file")
                .or(st.memory.raw.get("inactive_file"))
                .copied()
                .unwrap_or(0),
        ),
        mem_limit: st.memory.usage.limit,
        pids: st.pids.current,
        ..Default::default()
    };
    for e in &st.blkio.io_service_bytes_recursive {
        match e.op.to_ascii_lowercase().as_str() {
            "read" => s.blk_read += e.value,
            "write" => s.blk_write += e.value,
            _ => {}
        }
    }
    // A limit beyond physical memory means none: show the host's memory.
    let host = host_memory();
    if s.mem_limit == 0 || s.mem_limit > host {
        s.mem_limit = host;
    }
    let net = std::fs::read_to_string(format!("/proc/{}/net/dev", c.state.pid)).unwrap_or_default();
    for l in net.lines().skip(2) {
        let Some((dev, rest)) = l.split_once(':') else {
            continue;
        };
        if dev.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        s.net_rx += f.first().copied().unwrap_or(0);
        s.net_tx += f.get(8).copied().unwrap_or(0);
    }
    Ok(s)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(u64::MAX)
}

/// The container's processes, as host pids.
pub fn top(c: &Container) -> Result<Vec<i32>> {
    // Rootless without a delegated cgroup: the processes of the init's
    // pid namespace (the container's own, as the spec always makes one).
    if capsa_sys::process::in_user_namespace() {
        use std::os::unix::fs::MetadataExt;
        let ns = |pid: &str| std::fs::metadata(format!("/proc/{pid}/ns/pid")).map(|m| m.ino());
        let init = ns(&c.state.pid.to_string()).map_err(|e| crate::error::Error::Io {
            op: "stat",
            path: format!("/proc/{}/ns/pid", c.state.pid).into(),
            source: e,
        })?;
        let mut pids: Vec<i32> = std::fs::read_dir("/proc")
            .map_err(|e| crate::error::Error::Io {
                op: "list",
                path: "/proc".into(),
                source: e,
            })?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| ns(&p.to_string()).is_ok_and(|i| i == init))
            .collect();
        pids.sort_unstable();
        return Ok(pids);
    }
    crate::runtime::cgroup(c)?
        .procs()
        .map_err(|e| crate::error::Error::Data {
            what: format!("cgroup {}", c.cgroup_path),
            message: e.to_string(),
        })
}

/// What this host offers containers.
pub fn info(engine: &Engine) -> Value {
    let cgroups2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    // The v1 controllers of hierarchies that are mounted: a directory
    // under /sys/fs/cgroup may be a plain one (`net_cls` on a hybrid host
    // where nothing mounted it), and /proc/cgroups lists what the kernel
    // has, mounted or not.
    let mut v1: Vec<String> = capsa_cgroups::Hierarchy::detect()
        .map(|h| {
            h.v1.into_iter()
                .flat_map(|m| m.controllers)
                .filter(|c| !c.starts_with("name="))
                .collect()
        })
        .unwrap_or_default();
    v1.sort();
    let unified = [
        "/sys/fs/cgroup/cgroup.controllers",
        "/sys/fs/cgroup/unified/cgroup.controllers",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .unwrap_or_default();
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    let overlay = std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .contains("overlay");
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .map(|s| s.trim().to_string());
    let seccomp = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
        .ok()
        .map(|s| s.trim().to_string());
    let uname = rustix::system::uname();
    let namespaces_here: Vec<&str> = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"]
        .into_iter()
        .filter(|n| std::path::Path::new(&format!("/proc/self/ns/{n}")).exists())
        .collect();
    json!({
        "Kernel": uname.release().to_string_lossy(),
        "CgroupVersion": if cgroups2 { "2" } else if unified.is_empty() { "1" } else { "1 (hybrid: v1 controllers, a cgroup2 mount beside them)" },
        "CgroupDriver": if crate::runtime::systemd_host() { "systemd" } else { "cgroupfs" },
        "CgroupV1Controllers": v1,
        "CgroupV2Controllers": unified.split_whitespace().collect::<Vec<_>>(),
        "Namespaces": namespaces_here,
        "Overlay": overlay,
        "Seccomp": seccomp,
        "UserNamespaces": userns,
        "LSMs": lsm.trim().split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
        // The CVE-2020-8558 guard: which of our bridges route 127.0.0.1
        // (for ports published on it) and whether the drop rule that keeps
        // containers from forging packets to it is in place.
        "LoopbackGuard": {
            "RouteLocalnet": crate::network::list(engine)
                .iter()
                .filter(|n| {
                    std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{}/route_localnet", n.bridge))
                        .is_ok_and(|v| v.trim() == "1")
                })
                .map(|n| n.bridge.clone())
                .collect::<Vec<_>>(),
            "DropRule": capsa_network::nft::guard_active(),
        },
        "Rootless": crate::rootless::describe(),
        "Root": engine.root,
        "RunRoot": engine.run,
        "Containers": engine.list().map(|l| l.len()).unwrap_or(0),
        "Images": engine.images.images().map(|l| l.len()).unwrap_or(0),
    })
}
