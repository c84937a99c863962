//! cgroups on the real kernel of this v1-hybrid host: limits enforced,
//! pause and resume, update while running, stats and OOM events; and on the
//! cgroup2 mount (`/sys/fs/cgroup/unified`): freeze, kill, procs and the
//! eBPF device filter.

use capsa_tests::*;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn stats(env: &Env, id: &str) -> Value {
    let v: Value = serde_json::from_str(&env.rt_ok(&["events", "--stats", id])).unwrap();
    assert_eq!(v["type"], "stats");
    v["data"].clone()
}

#[test]
fn memory_limit_kills_on_overrun_and_the_oom_event_is_seen() {
    let env = Env::new("oomkill");
    let mut b = env.bundle("b");
    let limit = 32 << 20;
    b.config["linux"]["resources"]["memory"] = json!({ "limit": limit, "swap": limit });
    b.args(&["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd-exit-$? > /tmp/done; sleep 100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    assert_eq!(stats(&env, &id)["memory"]["usage"]["limit"], limit);
    let mut events = env
        .cmd(&["events", "--interval", "10s", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = events.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The stream starts with a stats event; then allocate past the limit.
    let first_line = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    // runc's order, which its users match as text.
    assert!(
        first_line.starts_with(&format!("{{\"type\":\"stats\",\"id\":\"{id}\",\"data\":")),
        "{first_line}"
    );
    let first: Value = serde_json::from_str(&first_line).unwrap();
    assert_eq!(first["type"], "stats");
    std::fs::write(b.rootfs().join("tmp/go"), "").unwrap();
    let mut saw_oom = false;
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["type"] == "oom" {
            // runc's exact line: its users match the text.
            assert_eq!(line, format!("{{\"type\":\"oom\",\"id\":\"{id}\"}}"));
            saw_oom = true;
            break;
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    assert!(saw_oom, "no oom event");
    assert!(wait_for(5, || std::fs::read_to_string(
        b.rootfs().join("tmp/done")
    )
    .is_ok()));
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("tmp/done"))
            .unwrap()
            .trim(),
        "dd-exit-137"
    );
    // The stats carry no "oom" key (runc's shape): tools grep the stream
    // for "oom" to find the event, and nothing else may match.
    let st = env.rt_ok(&["events", "--stats", &id]);
    assert!(!st.contains("oom"), "{st}");
}

#[test]
fn pids_limit_bounds_a_fork_loop() {
    let env = Env::new("pidsmax");
    let mut b = env.bundle("b");
    b.config["linux"]["resources"]["pids"] = json!({ "limit": 8 });
    b.args(&["/probe", "spawn", "30", "/tmp/spawn.json"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    assert!(wait_for(10, || b.rootfs().join("tmp/spawn.json").exists()));
    let r: Value =
        serde_json::from_slice(&std::fs::read(b.rootfs().join("tmp/spawn.json")).unwrap()).unwrap();
    // The probe itself is one of the 8.
    assert_eq!(r["spawned"], 7, "{r}");
    assert_eq!(r["failed"], 23, "{r}");
    let s = stats(&env, &id);
    assert_eq!(s["pids"]["limit"], 8);
    let current = s["pids"]["current"].as_u64().unwrap();
    assert!((2..=8).contains(&current), "pids.current {current}");
    let pids: Vec<i32> =
        serde_json::from_str(&env.rt_ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(pids.len() <= 8, "{pids:?}");
}

#[test]
fn cpu_quota_caps_usage() {
    let env = Env::new("cpuquota");
    let mut b = env.bundle("b");
    b.config["linux"]["resources"]["cpu"] = json!({ "quota": 20000, "period": 100000 });
    b.args(&["sh", "-c", "while true; do :; done"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let usage = || stats(&env, &id)["cpu"]["usage"]["total"].as_u64().unwrap();
    // Measure only once the loop is seen running, so a slow start on a busy
    // machine is not read as throttling.
    let first = usage();
    assert!(
        wait_for(10, || usage() > first),
        "no cpu used at all in 10 s: state {}, cpu {}",
        env.state(&id),
        stats(&env, &id)["cpu"]
    );
    let t0 = std::time::Instant::now();
    let u0 = usage();
    std::thread::sleep(std::time::Duration::from_millis(2000));
    let u1 = usage();
    let ratio = (u1 - u0) as f64 / t0.elapsed().as_nanos() as f64;
    // 0.2 of a cpu, with slack for the periods at the edges.
    assert!(
        ratio > 0.05 && ratio < 0.35,
        "cpu used {ratio:.3} of wall time under a 0.2 quota: state {}, cpu {}",
        env.state(&id),
        stats(&env, &id)["cpu"]
    );
    let s = stats(&env, &id);
    assert!(
        s["cpu"]["throttling"]["throttledPeriods"].as_u64().unwrap() > 0,
        "{}",
        s["cpu"]
    );
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let env = Env::new("pause");
    let mut b = env.bundle("b");
    b.args(&[
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.01; done",
    ]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let count = || {
        std::fs::read_to_string(b.rootfs().join("tmp/count"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(wait_for(5, || count() > 2));
    env.rt_ok(&["pause", &id]);
    assert_eq!(env.state(&id)["status"], "paused");
    let frozen_at = count();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(count(), frozen_at, "the container ran while paused");
    let o = env.rt(&["pause", &id]);
    assert!(stderr(&o).contains("already paused"), "{}", stderr(&o));
    env.rt_ok(&["resume", &id]);
    assert_eq!(env.state(&id)["status"], "running");
    assert!(
        wait_for(5, || count() > frozen_at + 2),
        "no progress after resume"
    );
    let o = env.rt(&["resume", &id]);
    assert!(stderr(&o).contains("not paused"), "{}", stderr(&o));
    // A paused container can be deleted with --force.
    env.rt_ok(&["pause", &id]);
    env.rt_ok(&["delete", "-f", &id]);
    env.assert_gone(&id);
}

#[test]
fn update_changes_limits_while_the_container_runs() {
    let env = Env::new("update");
    let mut b = env.bundle("b");
    b.config["linux"]["resources"]["memory"] = json!({ "limit": 64 << 20 });
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let file = |ctl: &str, f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctl}/{}/b/{f}", env.cgroup_parent))
            .unwrap()
            .trim()
            .to_string()
    };
    env.rt_ok(&[
        "update",
        "--memory",
        "32m",
        "--pids-limit",
        "20",
        "--cpu-quota",
        "30000",
        "--cpu-period",
        "100000",
        "--cpu-share",
        "256",
        &id,
    ]);
    assert_eq!(
        file("memory", "memory.limit_in_bytes"),
        (32 << 20).to_string()
    );
    assert_eq!(file("pids", "pids.max"), "20");
    assert_eq!(file("cpu", "cpu.cfs_quota_us"), "30000");
    assert_eq!(file("cpu", "cpu.shares"), "256");
    // --resources takes a linux.resources JSON.
    let r = env.dir.join("r.json");
    std::fs::write(
        &r,
        json!({ "pids": { "limit": 50 }, "memory": { "limit": 48 << 20 } }).to_string(),
    )
    .unwrap();
    env.rt_ok(&["update", "--resources", r.to_str().unwrap(), &id]);
    assert_eq!(file("pids", "pids.max"), "50");
    assert_eq!(
        file("memory", "memory.limit_in_bytes"),
        (48 << 20).to_string()
    );
    assert_eq!(stats(&env, &id)["memory"]["usage"]["limit"], 48 << 20);
    // A field this host cannot honour is refused by name.
    std::fs::write(&r, json!({ "network": { "classID": 1 } }).to_string()).unwrap();
    let o = env.rt(&["update", "--resources", r.to_str().unwrap(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("linux.resources.network.classID"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn update_under_a_pod_quota_and_to_unlimited_memory_orders_its_writes() {
    let env = Env::new("podquota");
    // The pod: half a CPU, as a kubelet would set it.
    let pod = Path::new("/sys/fs/cgroup/cpu")
        .join(&env.cgroup_parent)
        .join("pod");
    std::fs::create_dir_all(&pod).unwrap();
    std::fs::write(pod.join("cpu.cfs_quota_us"), "50000").unwrap();
    let mut b = env.bundle("b");
    b.config["linux"]["cgroupsPath"] = json!(format!("/{}/pod/b", env.cgroup_parent));
    b.config["linux"]["resources"]["cpu"] = json!({ "quota": 500000, "period": 1000000 });
    b.config["linux"]["resources"]["memory"] = json!({ "limit": 64 << 20, "swap": 96 << 20 });
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    // Above the pod's half: the kernel refuses it.
    let o = env.rt(&["update", "--cpu-quota", "600000", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // A shorter period with a lower quota: only the quota first passes.
    env.rt_ok(&[
        "update",
        "--cpu-period",
        "10000",
        "--cpu-quota",
        "3000",
        &id,
    ]);
    let file = |ctl: &str, f: &str| {
        let dir = format!("/sys/fs/cgroup/{ctl}/{}/pod/b", env.cgroup_parent);
        std::fs::read_to_string(Path::new(&dir).join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(file("cpu", "cpu.cfs_period_us"), "10000");
    assert_eq!(file("cpu", "cpu.cfs_quota_us"), "3000");
    // Unlimited memory without a word on swap lifts swap too.
    env.rt_ok(&["update", "--memory", "-1", &id]);
    let unlimited = file("memory", "memory.limit_in_bytes");
    assert_ne!(unlimited, (64 << 20).to_string());
    if Path::new(&format!(
        "/sys/fs/cgroup/memory/{}/pod/b/memory.memsw.limit_in_bytes",
        env.cgroup_parent
    ))
    .exists()
    {
        assert_eq!(file("memory", "memory.memsw.limit_in_bytes"), unlimited);
    }
}

#[test]
fn unsupported_resources_fail_create_by_name_and_leave_nothing() {
    let env = Env::new("badres");
    let mut b = env.bundle("b");
    b.config["linux"]["resources"]["network"] = json!({ "classID": 7 });
    b.save();
    let id = env.id("c");
    let o = env.rt(&["create", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("linux.resources.network.classID"),
        "{}",
        stderr(&o)
    );
    env.assert_gone(&id);
    // A unified key of a controller this host has on v1: runc's words.
    b.config["linux"]["resources"] = json!({"unified": {"memory.min": "131072"}});
    b.save();
    let o = env.rt(&["create", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("linux.resources.unified.memory.min") && e.contains("invalid configuration"),
        "{e}"
    );
    env.assert_gone(&id);
}

#[test]
fn stats_report_cpu_memory_pids_and_pressure() {
    let env = Env::new("stats");
    let mut b = env.bundle("b");
    b.config["linux"]["resources"]["memory"] = json!({ "limit": 100 << 20 });
    b.args(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 100",
    ]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    assert!(
        wait_for(10, || {
            let s = stats(&env, &id);
            s["cpu"]["usage"]["total"].as_u64() > Some(0)
                && s["memory"]["usage"]["usage"].as_u64() > Some(0)
        }),
        "no cpu or memory use seen in 10 s"
    );
    let s = stats(&env, &id);
    assert!(s["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    assert_eq!(
        s["cpu"]["usage"]["percpu"].as_array().unwrap().len(),
        std::thread::available_parallelism().unwrap().get()
    );
    assert!(s["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert_eq!(s["memory"]["usage"]["limit"], 100 << 20);
    assert!(
        s["memory"]["raw"].as_object().unwrap().contains_key("rss")
            || s["memory"]["raw"]
                .as_object()
                .unwrap()
                .contains_key("total_rss")
    );
    assert!(s["pids"]["current"].as_u64().unwrap() >= 1);
    // PSI comes from the cgroup2 directory of this hybrid host.
    assert!(s["cpu"]["psi"]["some"]["total"].is_u64(), "{}", s["cpu"]);
}

/// A cgroup of our own on the cgroup2 mount, removed on drop.
struct V2Cgroup {
    parent: PathBuf,
    cg: capsa_cgroups::Cgroup,
}

impl V2Cgroup {
    fn new(env: &Env) -> Option<V2Cgroup> {
        let h = capsa_cgroups::Hierarchy::detect().unwrap();
        if !require(h.v2.is_some(), "a cgroup2 mount") {
            return None;
        }
        let root = h.v2.clone()?;
        let v2_only = capsa_cgroups::Hierarchy {
            v1: vec![],
            v2: Some(root.clone()),
        };
        let path = Path::new("/").join(&env.cgroup_parent).join("v2");
        let mut cg = capsa_cgroups::Cgroup::new(&v2_only, &path);
        cg.create().unwrap();
        Some(V2Cgroup {
            parent: root.join(&env.cgroup_parent),
            cg,
        })
    }

    /// A shell of ours moved into the cgroup, running `script`.
    fn spawn(&self, script: &str) -> std::process::Child {
        let dir = self.cg.v2.as_ref().unwrap().display().to_string();
        Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("echo $$ > {dir}/cgroup.procs && {script}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

impl Drop for V2Cgroup {
    fn drop(&mut self) {
        let _ = self.cg.signal_all(libc::SIGKILL);
        let _ = self.cg.remove();
        let _ = std::fs::remove_dir(&self.parent);
    }
}

#[test]
fn cgroup2_freeze_kill_and_procs_on_the_real_kernel() {
    let env = Env::new("v2freeze");
    let Some(v2) = V2Cgroup::new(&env) else {
        return;
    };
    let mut child = v2.spawn("exec sleep 100");
    let pid = child.id() as i32;
    assert!(
        wait_for(5, || v2.cg.procs().unwrap() == vec![pid]),
        "{:?}",
        v2.cg.procs()
    );
    v2.cg.freeze(true).unwrap();
    assert!(v2.cg.is_frozen());
    let events = std::fs::read_to_string(v2.cg.v2.as_ref().unwrap().join("cgroup.events")).unwrap();
    assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    v2.cg.freeze(false).unwrap();
    assert!(!v2.cg.is_frozen());
    // cgroup.kill: the kernel kills every process of the cgroup.
    v2.cg.signal_all(libc::SIGKILL).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(wait_for(5, || v2.cg.procs().unwrap().is_empty()));
}

#[test]
fn cgroup2_ebpf_device_filter_denies_what_is_not_allowed() {
    let env = Env::new("v2devices");
    let Some(v2) = V2Cgroup::new(&env) else {
        return;
    };
    let rules: Vec<capsa_spec::oci::LinuxDeviceCgroup> =
        serde_json::from_value(json!([{ "allow": false, "access": "rwm" }])).unwrap();
    capsa_cgroups::devices::attach_filter(v2.cg.v2.as_ref().unwrap(), &rules).unwrap();
    // /dev/null is in the default allowlist; /dev/kmsg (c 1:11) is not.
    let child = v2.spawn("head -c0 /dev/null && echo null-ok; (exec 3</dev/kmsg) 2>/dev/null && echo kmsg-opened || echo kmsg-denied");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "null-ok\nkmsg-denied\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An update replaces the filter (one program stays attached): now
    // /dev/kmsg is allowed.
    let allow: Vec<capsa_spec::oci::LinuxDeviceCgroup> = serde_json::from_value(json!([{ "allow": false, "access": "rwm" }, { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "r" }])).unwrap();
    capsa_cgroups::devices::attach_filter(v2.cg.v2.as_ref().unwrap(), &allow).unwrap();
    assert_eq!(
        capsa_cgroups::devices::attached_filters(v2.cg.v2.as_ref().unwrap()).unwrap(),
        1
    );
    let out = v2
        .spawn("(exec 3</dev/kmsg) 2>/dev/null && echo kmsg-opened || echo kmsg-denied")
        .wait_with_output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "kmsg-opened\n");
    // The same shell outside the cgroup may open it.
    let free = Command::new("/bin/sh")
        .arg("-c")
        .arg("(exec 3</dev/kmsg) && echo kmsg-opened")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&free.stdout), "kmsg-opened\n");
}

/// The `0::` (v2) line of a process's /proc/PID/cgroup.
fn v2_line(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("0::"))
        .unwrap_or_default()
        .to_string()
}

/// Security: `linux.resources.unified` is written by the host's root; a
/// `cgroup.procs` (or `cgroup.threads`) key would pull any host process
/// into the container's cgroup, under its limits and its kill. Refused at
/// create and at update, and the host process stays where it was.
#[test]
fn a_unified_cgroup_procs_key_cannot_pull_a_host_process_in() {
    let env = Env::new("unifiedprocs");
    let mut host = Command::new("sleep").arg("100").spawn().unwrap();
    let pid = host.id();
    let before = v2_line(pid);
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    for key in ["cgroup.procs", "cgroup.threads"] {
        b.config["linux"]["resources"] = json!({"unified": {key: pid.to_string()}});
        b.save();
        let id = env.id(&format!("c-{}", key.replace('.', "-")));
        for verb in [
            &["run", "-d", "-b", b.path(), &id][..],
            &["create", "-b", b.path(), &id][..],
        ] {
            let o = env.rt(verb);
            assert_eq!(v2_line(pid), before, "{verb:?} moved the host process");
            assert!(!o.status.success(), "{verb:?} {key} was accepted");
            assert!(
                stderr(&o).contains(&format!("unified.{key}")),
                "{verb:?}: {}",
                stderr(&o)
            );
            env.assert_gone(&id);
        }
    }
    // update: the same key on a running container.
    b.config["linux"]["resources"] = json!({});
    b.save();
    let id = env.id("running");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let r = env.dir.join("r.json");
    std::fs::write(
        &r,
        json!({"unified": {"cgroup.procs": pid.to_string()}}).to_string(),
    )
    .unwrap();
    let o = env.rt(&["update", "-r", r.to_str().unwrap(), &id]);
    assert_eq!(v2_line(pid), before, "update moved the host process");
    assert!(!o.status.success(), "update with cgroup.procs was accepted");
    env.rt_ok(&["delete", "-f", &id]);
    // The host process lived through the container's removal.
    assert!(host.try_wait().unwrap().is_none(), "the host process died");
    let _ = host.kill();
    let _ = host.wait();
    env.assert_gone(&id);
}

/// A cgroup that is frozen (by itself or a parent) would hold the init
/// before it reports: create refuses it with runc's words, promptly, and
/// leaves the cgroup as it was.
#[test]
fn create_into_a_frozen_cgroup_is_refused_not_hung() {
    let env = Env::new("frozencg");
    let freezer = Path::new("/sys/fs/cgroup/freezer").join(&env.cgroup_parent);
    let parent = freezer.join("frozen");
    std::fs::create_dir_all(&parent).unwrap();
    std::fs::write(parent.join("freezer.state"), "FROZEN").unwrap();
    let mut b = env.bundle("b");
    b.args(&["true"]);
    for (i, child) in ["", "/child"].iter().enumerate() {
        b.config["linux"]["cgroupsPath"] = json!(format!("/{}/frozen{child}", env.cgroup_parent));
        b.save();
        for verb in ["run", "create"] {
            let id = env.id(&format!("{verb}-{i}"));
            let args: Vec<&str> = if verb == "run" {
                vec!["run", "-d", "-b", b.path(), &id]
            } else {
                vec!["create", "-b", b.path(), &id]
            };
            let mut child_proc = env.spawn_rt(&args);
            let done = wait_for(20, || child_proc.try_wait().unwrap().is_some());
            if !done {
                let _ = std::fs::write(parent.join("freezer.state"), "THAWED");
                let _ = child_proc.kill();
                let _ = child_proc.wait();
                panic!("{verb} into a frozen cgroup hung");
            }
            let o = env.rt(&["state", &id]);
            assert!(!o.status.success(), "{verb} made {id}");
            assert!(!child_proc.wait().unwrap().success(), "{verb} succeeded");
        }
    }
    let o = env.rt(&["run", "-d", "-b", b.path(), &env.id("msg")]);
    assert!(
        stderr(&o).contains("container's cgroup unexpectedly frozen"),
        "{}",
        stderr(&o)
    );
    // A refused create undoes only what it made: the frozen cgroup the
    // spec named is still there, still frozen (runc's tests count on it).
    assert_eq!(
        std::fs::read_to_string(parent.join("freezer.state"))
            .unwrap()
            .trim(),
        "FROZEN"
    );
    std::fs::write(parent.join("freezer.state"), "THAWED").unwrap();
    let _ = std::fs::remove_dir(parent.join("child"));
    std::fs::remove_dir(&parent).unwrap();
}

/// A device in `linux.devices` is made, not allowed: its use is for
/// `linux.resources.devices` to allow (runc's rule). A rule's access is
/// only r, w and m: anything else in it is dropped, not sent to the kernel.
#[test]
fn a_spec_device_is_not_usable_unless_the_cgroup_rules_allow_it() {
    let env = Env::new("devdeny");
    let mut b = env.bundle("b");
    b.config["linux"]["devices"] =
        json!([{ "path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11 }]);
    b.config["linux"]["resources"]["devices"] = json!([
        { "allow": false, "access": "rwm" },
        { "allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa" }
    ]);
    // Reading /dev/kmsg needs CAP_SYSLOG: given, so that only the device
    // cgroup stands in the way.
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYSLOG"));
    }
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let o = env.rt(&["exec", &id, "head", "-c", "1", "/dev/kmsg"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    // The default devices stay usable.
    env.rt_ok(&["exec", &id, "sh", "-c", "echo x > /dev/null"]);
    // Allowed by an update, it is usable.
    let r = env.dir.join("r.json");
    let allow = json!({ "devices": [{ "allow": true, "type": "c", "major": 1, "minor": 11, "access": "r" }] });
    std::fs::write(&r, allow.to_string()).unwrap();
    env.rt_ok(&["update", "--resources", r.to_str().unwrap(), &id]);
    let o = env.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "head -c 1 /dev/kmsg >/dev/null && echo read",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "read",
        "{}",
        stderr(&o)
    );
}

/// With its cgroup mounted writable a container may make sub-cgroups and
/// move processes there (runc allows it): `delete --force` kills those
/// too and removes the sub-cgroups, deepest first.
#[test]
fn delete_force_kills_and_removes_the_sub_cgroups_a_container_made() {
    let env = Env::new("subcg");
    let mut b = cgroup_writable_bundle(&env);
    b.args(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    env.rt_ok(&["exec", "-d", &id, "sleep", "999"]);
    let script = "set -e; pid=$(ps -o pid,args | grep 'sleep 99[9]' | awk '{print $1}'); \
        for s in memory freezer pids; do mkdir -p /sys/fs/cgroup/$s/foo/bar; \
        echo $pid > /sys/fs/cgroup/$s/foo/bar/tasks; done";
    env.rt_ok(&["exec", &id, "sh", "-c", script]);
    let ps: Vec<i32> = serde_json::from_str(&env.rt_ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(ps.len(), 2, "ps lists the sub-cgroup's process too: {ps:?}");
    env.rt_ok(&["delete", "--force", &id]);
    assert!(env.rt(&["state", &id]).status.code() != Some(0));
    for s in ["memory", "freezer", "pids"] {
        let dir = Path::new("/sys/fs/cgroup")
            .join(s)
            .join(&env.cgroup_parent)
            .join("b");
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

/// `exec --cgroup`: a sub-cgroup of the container's, per controller or for
/// all; `..` (which could lead out of the container's cgroup), an unknown
/// controller and a missing sub-cgroup are refused.
#[test]
fn exec_cgroup_joins_a_sub_cgroup_and_never_one_outside() {
    let env = Env::new("execcg");
    let mut b = env.bundle("b");
    b.args(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let base = format!("/{}/b", env.cgroup_parent);
    for ctl in ["memory", "pids"] {
        std::fs::create_dir(format!("/sys/fs/cgroup/{ctl}{base}/sub")).unwrap();
    }
    let refused = |arg: &str, words: &str| {
        let o = env.rt(&["exec", "--cgroup", arg, &id, "true"]);
        assert_ne!(o.status.code(), Some(0), "{arg}");
        assert!(stderr(&o).contains(words), "{arg}: {}", stderr(&o));
    };
    refused("..", ".. is not a sub cgroup path");
    refused("memory:../..", "is not a sub cgroup path");
    refused("whaaat:/", "unknown controller");
    refused("nonexistent", "/nonexistent/cgroup.procs: no such file");
    let out = env.rt_ok(&[
        "exec",
        "--cgroup",
        "memory,pids:sub",
        &id,
        "cat",
        "/proc/self/cgroup",
    ]);
    // The container has its own cgroup namespace: paths are relative to
    // its cgroup.
    assert!(out.lines().any(|l| l.ends_with(":memory:/sub")), "{out}");
    assert!(out.lines().any(|l| l.ends_with(":pids:/sub")), "{out}");
    assert!(out.lines().any(|l| l.ends_with(":freezer:/")), "{out}");
}

/// Sub-cgroups nested deep (80 levels of 40-character names), with a
/// process at the bottom: walked by directory fd, nothing of it hides from
/// `ps`, `delete --force` kills it and removes them all. (An earlier walk
/// by path gave up past 64 levels, and with it the kill.)
#[test]
fn deep_sub_cgroups_do_not_hide_a_process() {
    let env = Env::new("deepcg");
    let mut b = cgroup_writable_bundle(&env);
    b.args(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    env.rt_ok(&["exec", "-d", &id, "sleep", "999"]);
    let script = "set -e; pid=$(ps -o pid,args | grep 'sleep 99[9]' | awk '{print $1}'); \
        n=$(printf 'x%.0s' $(seq 38)); for s in memory pids freezer; do \
        cd /sys/fs/cgroup/$s; for i in $(seq 10 89); do mkdir $n$i; cd $n$i; done; \
        echo $pid > tasks; done";
    env.rt_ok(&["exec", &id, "sh", "-c", script]);
    let ps: Vec<i32> = serde_json::from_str(&env.rt_ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(ps.len(), 2, "the deep process is listed: {ps:?}");
    env.rt_ok(&["delete", "--force", &id]);
    for s in ["memory", "pids", "freezer"] {
        let dir = Path::new("/sys/fs/cgroup")
            .join(s)
            .join(&env.cgroup_parent)
            .join("b");
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

/// `update --cpu-burst` (runc's flag) lands in the cgroup's burst file.
#[test]
fn update_cpu_burst_is_written() {
    let env = Env::new("burst");
    let mut b = env.bundle("b");
    b.config["linux"]["resources"]["cpu"] = json!({ "quota": 50000, "period": 100000 });
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    env.rt_ok(&["update", "--cpu-burst", "20000", &id]);
    let f = format!(
        "/sys/fs/cgroup/cpu/{}/b/cpu.cfs_burst_us",
        env.cgroup_parent
    );
    assert_eq!(std::fs::read_to_string(f).unwrap().trim(), "20000");
}

/// A bundle whose container has its cgroup mounted writable (so it may
/// make sub-cgroups and move processes there, as runc allows).
fn cgroup_writable_bundle(env: &Env) -> Bundle {
    let mut b = env.bundle("b");
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["type"] == "cgroup" {
            m["options"] = json!(["nosuid", "noexec", "nodev", "relatime", "rw"]);
        }
    }
    b
}
