//! The default `config.json` that `capsa-runtime spec` writes: the same
//! shape as runc's, so that tools and tutorials written for runc apply.

use serde_json::{json, Value};

/// The default spec; `rootless` adapts it for an unprivileged user whose
/// uid and gid are given (a user namespace mapping them to root, no network
/// namespace, /sys bound from the host, no cgroup resources).
pub fn spec(rootless: Option<(u32, u32)>) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut v = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": true,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "capsa",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if let Some((uid, gid)) = rootless {
        v["linux"]["namespaces"] = json!([
            { "type": "pid" }, { "type": "ipc" }, { "type": "uts" },
            { "type": "mount" }, { "type": "cgroup" }, { "type": "user" }
        ]);
        v["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": uid, "size": 1 }]);
        v["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": gid, "size": 1 }]);
        v["linux"].as_object_mut().map(|l| l.remove("resources"));
        let mounts = v["mounts"]
            .as_array_mut()
            .expect("mounts is an array literal");
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = json!({ "destination": "/sys", "type": "none", "source": "/sys",
                             "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] });
            }
            if m["destination"] == "/dev/pts" {
                m["options"] = json!([
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620"
                ]);
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_and_validates_shape() {
        let bytes = serde_json::to_vec(&spec(None)).unwrap();
        let s = crate::parse(std::path::Path::new("config.json"), &bytes).unwrap();
        assert_eq!(s.hostname().as_deref(), Some("capsa"));
        assert_eq!(s.mounts().as_ref().unwrap().len(), 7);
    }

    #[test]
    fn rootless_spec_maps_the_user_and_drops_the_network_namespace() {
        let v = spec(Some((1000, 1000)));
        assert_eq!(v["linux"]["uidMappings"][0]["hostID"], 1000);
        let ns: Vec<_> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(ns.contains(&"user") && !ns.contains(&"network"));
        assert!(v["linux"].get("resources").is_none());
    }
}
