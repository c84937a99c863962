//! What the container's process sees, reported by the probe from inside:
//! namespaces, ids, capabilities, limits, fds, hostname, time.

use capsa_tests::*;
use serde_json::{json, Value};

fn run_probe(env: &Env, b: &capsa_tests::Bundle, id: &str) -> Value {
    let o = env.rt(&["run", "-b", b.path(), id]);
    assert!(o.status.success(), "run failed: {}", stderr(&o));
    probe_output(&o)
}

#[test]
fn probe_is_pid_1_in_new_namespaces_with_the_spec_hostname() {
    let env = Env::new("ns");
    let mut b = env.bundle("b");
    b.config["hostname"] = json!("probe-host");
    b.config["domainname"] = json!("probe.domain");
    b.args(&["/probe"]);
    let id = env.id("c");
    let p = run_probe(&env, &b, &id);
    assert_eq!(p["pid"], 1);
    assert_eq!(p["hostname"], "probe-host");
    assert_eq!(p["domainname"], "probe.domain");
    let me = std::process::id().to_string();
    for ns in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        let inside = p["namespaces"][ns].as_u64().unwrap();
        assert_ne!(inside, ns_inode(&me, ns), "{ns} namespace is the host's");
    }
    // No user namespace asked: the host's.
    assert_eq!(
        p["namespaces"]["user"].as_u64().unwrap(),
        ns_inode(&me, "user")
    );
    // The cgroup namespace is rooted at the container's cgroup.
    assert!(
        p["cgroup"]
            .as_str()
            .unwrap()
            .lines()
            .all(|l| l.ends_with(":/")),
        "{}",
        p["cgroup"]
    );
}

#[test]
fn capabilities_match_the_spec_sets_exactly() {
    let env = Env::new("caps");
    let mut b = env.bundle("b");
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"]
    });
    b.args(&["/probe"]);
    let p = run_probe(&env, &b, &env.id("c"));
    let caps = &p["caps"];
    // CHOWN = bit 0, KILL = bit 5, NET_RAW = bit 13.
    assert_eq!(caps["CapBnd"], "0000000000002021");
    assert_eq!(caps["CapPrm"], "0000000000000021");
    assert_eq!(caps["CapEff"], "0000000000000021");
    assert_eq!(caps["CapInh"], "0000000000000020");
    assert_eq!(caps["CapAmb"], "0000000000000020");
    assert_eq!(p["no_new_privs"], "1");
}

#[test]
fn user_group_umask_rlimits_and_env_are_applied() {
    let env = Env::new("user");
    let mut b = env.bundle("b");
    b.config["process"]["user"] =
        json!({ "uid": 1000, "gid": 1001, "additionalGids": [2000, 2001], "umask": 63 });
    b.config["process"]["rlimits"] = json!([
        { "type": "RLIMIT_NOFILE", "soft": 512, "hard": 768 },
        { "type": "RLIMIT_CORE", "soft": 0, "hard": 0 }
    ]);
    // A key twice (the last wins, once) and an empty HOME (replaced), as
    // runc does.
    b.config["process"]["env"] = json!(["PATH=/bin", "FOO=first", "HOME=", "FOO=bar"]);
    b.config["process"]["cwd"] = json!("/tmp");
    b.args(&["/probe"]);
    let p = run_probe(&env, &b, &env.id("c"));
    assert_eq!(p["uid"], 1000);
    assert_eq!(p["gid"], 1001);
    assert_eq!(p["groups"], "2000 2001");
    assert_eq!(p["umask"], "0077");
    assert_eq!(p["rlimits"]["Max open files"], json!(["512", "768"]));
    assert_eq!(p["rlimits"]["Max core file size"], json!(["0", "0"]));
    assert_eq!(p["cwd"], "/tmp");
    let envs: Vec<&str> = p["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(envs.contains(&"FOO=bar"));
    assert_eq!(
        envs.iter().filter(|e| e.starts_with("FOO=")).count(),
        1,
        "{envs:?}"
    );
    // HOME from the container's /etc/passwd would be absent for uid 1000.
    assert!(envs.contains(&"HOME=/"), "{envs:?}");
    assert_eq!(
        envs.iter().filter(|e| e.starts_with("HOME=")).count(),
        1,
        "{envs:?}"
    );
    // An unprivileged user keeps no capability.
    assert_eq!(p["caps"]["CapEff"], "0000000000000000");
}

#[test]
fn only_stdio_reaches_the_container_unless_fds_are_preserved() {
    let env = Env::new("fds");
    let mut b = env.bundle("b");
    b.args(&["/probe"]);
    let p = run_probe(&env, &b, &env.id("c"));
    let fds: Vec<String> = p["fds"].as_object().unwrap().keys().cloned().collect();
    // 0, 1, 2 and the directory the probe opened to list them.
    assert_eq!(fds.len(), 4, "{}", p["fds"]);
    for n in ["0", "1", "2"] {
        assert!(fds.contains(&n.to_string()));
    }

    // --preserve-fds 1 passes fd 3.
    let id = env.id("p");
    let file = env.dir.join("passed");
    std::fs::write(&file, "x").unwrap();
    // The shell opens the file at fd 3 and execs the runtime with it.
    let script = format!(
        "exec 3<{} && exec {} --root {} run --preserve-fds 1 -b {} {}",
        file.display(),
        env.runtime.display(),
        env.root.display(),
        b.path(),
        id
    );
    let o = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let p = probe_output(&o);
    assert!(
        p["fds"]["3"].as_str().unwrap_or("").ends_with("passed"),
        "{}",
        p["fds"]
    );
}

#[test]
fn user_namespace_maps_are_written_by_the_parent() {
    let env = Env::new("userns");
    let mut b = env.bundle("b");
    b.user_namespace(100000);
    b.args(&["/probe"]);
    let id = env.id("c");
    let p = run_probe(&env, &b, &id);
    assert_eq!(p["uid"], 0);
    let map: Vec<&str> = p["uid_map"].as_str().unwrap().split_whitespace().collect();
    assert_eq!(map, vec!["0", "100000", "65536"]);
    let gmap: Vec<&str> = p["gid_map"].as_str().unwrap().split_whitespace().collect();
    assert_eq!(gmap, vec!["0", "100000", "65536"]);
    assert_ne!(
        p["namespaces"]["user"].as_u64().unwrap(),
        ns_inode(&std::process::id().to_string(), "user")
    );
    env.assert_gone(&id);
}

#[test]
fn namespaces_given_by_path_are_joined() {
    let env = Env::new("join");
    let mut a = env.bundle("a");
    a.args(&["sleep", "100"]);
    let ida = env.id("a");
    env.rt_ok(&["run", "-d", "-b", a.path(), &ida]);
    let pid = env.state(&ida)["pid"].as_i64().unwrap().to_string();

    let mut b = env.bundle("b");
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    for n in ns.iter_mut() {
        if n["type"] == "network" || n["type"] == "ipc" {
            let kind = if n["type"] == "network" { "net" } else { "ipc" };
            n["path"] = json!(format!("/proc/{pid}/ns/{kind}"));
        }
    }
    b.args(&["/probe"]);
    let p = run_probe(&env, &b, &env.id("b"));
    assert_eq!(
        p["namespaces"]["net"].as_u64().unwrap(),
        ns_inode(&pid, "net")
    );
    assert_eq!(
        p["namespaces"]["ipc"].as_u64().unwrap(),
        ns_inode(&pid, "ipc")
    );
    assert_ne!(
        p["namespaces"]["uts"].as_u64().unwrap(),
        ns_inode(&pid, "uts")
    );
    assert_eq!(p["pid"], 1);
}

#[test]
fn a_user_namespace_given_by_path_is_joined_first() {
    let env = Env::new("joinuser");
    let mut a = env.bundle("a");
    a.user_namespace(200000);
    a.args(&["sleep", "100"]);
    let ida = env.id("a");
    env.rt_ok(&["run", "-d", "-b", a.path(), &ida]);
    let pid = env.state(&ida)["pid"].as_i64().unwrap().to_string();

    let mut b = env.bundle("b");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "user", "path": format!("/proc/{pid}/ns/user") }));
    b.args(&["/probe"]);
    let p = run_probe(&env, &b, &env.id("b"));
    assert_eq!(
        p["namespaces"]["user"].as_u64().unwrap(),
        ns_inode(&pid, "user")
    );
    assert_eq!(
        p["uid_map"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        vec!["0", "200000", "65536"]
    );
    // Its own new namespaces are owned by the joined user namespace.
    assert_ne!(
        p["namespaces"]["uts"].as_u64().unwrap(),
        ns_inode(&pid, "uts")
    );
    assert_eq!(p["pid"], 1);
}

#[test]
fn time_namespace_offsets_shift_the_boot_clock() {
    boot_clock_shifted(false);
}

/// With a new user namespace too, the offsets are written by the runtime
/// (which owns the time namespace's user namespace's parent) before the
/// init first enters it.
#[test]
fn time_namespace_offsets_apply_with_a_user_namespace_too() {
    boot_clock_shifted(true);
}

fn boot_clock_shifted(userns: bool) {
    let env = Env::new("timens");
    let mut b = env.bundle("b");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "time" }));
    if userns {
        b.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "user" }));
        b.config["linux"]["uidMappings"] =
            json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        b.config["linux"]["gidMappings"] =
            json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        // The rootfs stays the host root's: world-readable, which is all
        // `cat` needs (its busybox is a hard link of the host's: never
        // chown it).
    }
    b.config["linux"]["timeOffsets"] = json!({ "boottime": { "secs": 86400000, "nanosecs": 0 } });
    b.args(&["cat", "/proc/uptime"]);
    let o = env.rt(&["run", "-b", b.path(), &env.id("c")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let inside: f64 = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(inside > host + 86_000_000.0, "inside {inside} host {host}");
}

#[test]
fn sysctls_are_set_inside_the_namespaces() {
    let env = Env::new("sysctl");
    let mut b = env.bundle("b");
    b.config["linux"]["sysctl"] =
        json!({ "net.ipv4.ip_unprivileged_port_start": "42", "kernel.shmmni": "1234" });
    // /proc/sys stays in readonlyPaths: sysctls are written before it
    // becomes read-only (docker relies on this order).
    b.args(&[
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni",
    ]);
    let o = env.rt(&["run", "-b", b.path(), &env.id("c")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "42\n1234\n");
    // The host's values are untouched.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .unwrap()
            .trim(),
        "42"
    );
}

#[test]
fn oom_score_adj_and_io_priority_are_applied() {
    let env = Env::new("oom");
    let mut b = env.bundle("b");
    b.config["process"]["oomScoreAdj"] = json!(500);
    b.config["process"]["ioPriority"] = json!({ "class": "IOPRIO_CLASS_BE", "priority": 6 });
    b.args(&["sh", "-c", "cat /proc/self/oom_score_adj; ionice -p $$"]);
    let o = env.rt(&["run", "-b", b.path(), &env.id("c")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "500\nbest-effort: prio 6\n"
    );
}

/// The CPUs this test may run on (it is not pinned), as the kernel lists
/// them in /proc/PID/status.
fn allowed_cpus(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim()
        .to_string()
}

/// capsa-runtime pinned to CPU 0, as a caller (a shim) may pin it.
fn rt_pinned(env: &Env, args: &[&str]) -> std::process::Output {
    let c = env.cmd(args);
    std::process::Command::new("taskset")
        .args(["-c", "0"])
        .arg(c.get_program())
        .args(c.get_args())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("taskset (util-linux)")
}

#[test]
fn scheduler_personality_memory_policy_are_applied_and_affinity_is_reset() {
    let host = allowed_cpus(&std::fs::read_to_string("/proc/self/status").unwrap());
    assert_ne!(
        host, "0",
        "this test needs two CPUs to tell a reset from a pin"
    );
    let env = Env::new("sched");
    let mut b = env.bundle("b");
    b.config["process"]["scheduler"] = json!({ "policy": "SCHED_BATCH", "nice": 7 });
    b.config["linux"]["personality"] = json!({ "domain": "LINUX32" });
    b.config["linux"]["memoryPolicy"] = json!({ "mode": "MPOL_BIND", "nodes": "0" });
    // Fields 19 (nice) and 41 (policy) of stat; the personality; the
    // machine a 32-bit personality reports; the policy of the stack.
    b.args(&[
        "sh",
        "-c",
        "cut -d' ' -f19,41 /proc/self/stat; cat /proc/self/personality; uname -m; \
         grep -m1 -o 'bind:0' /proc/self/numa_maps; grep Cpus_allowed_list /proc/self/status",
    ]);
    let o = rt_pinned(&env, &["run", "-b", b.path(), &env.id("c")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..4], ["7 3", "00000008", "i686", "bind:0"], "{out}");
    assert_eq!(
        allowed_cpus(&out),
        host,
        "the runtime's pin leaked in: {out}"
    );
}

#[test]
fn exec_cpu_affinity_final_is_the_exec_process_affinity() {
    let host = allowed_cpus(&std::fs::read_to_string("/proc/self/status").unwrap());
    assert_ne!(host, "0", "this test needs two CPUs");
    let env = Env::new("execaff");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let f = env.dir.join("process.json");
    let process = json!({
        "user": { "uid": 0, "gid": 0 }, "cwd": "/", "env": ["PATH=/bin"],
        "args": ["grep", "Cpus_allowed_list", "/proc/self/status"],
        "execCPUAffinity": { "initial": "0", "final": "1" }
    });
    std::fs::write(&f, process.to_string()).unwrap();
    let o = rt_pinned(&env, &["exec", "--process", f.to_str().unwrap(), &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(allowed_cpus(&String::from_utf8_lossy(&o.stdout)), "1");
    // Without it, the exec'd process gets every CPU back, not the pin.
    let o = rt_pinned(
        &env,
        &[
            "exec",
            &id,
            "grep",
            "Cpus_allowed_list",
            "/proc/self/status",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(allowed_cpus(&String::from_utf8_lossy(&o.stdout)), host);
}
