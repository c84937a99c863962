//! The pure cgroup v2 suite (issue 15). These run inside the guest that
//! `tests/guest.rs` boots (systemd as PID 1, cgroup2 at /sys/fs/cgroup):
//! on this machine's v1 hybrid host they are ignored, visibly, and the
//! guest test runs them with `--ignored`.

use capsa_tests::images::load_busybox_probe;
use capsa_tests::registry::Capsa;
use capsa_tests::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const IN_GUEST: &str = "runs inside the pure v2 guest (tests/guest.rs)";

/// The test runs on a pure v2 host, or fails saying where it is.
fn require_v2() {
    let fs = nix::sys::statfs::statfs("/sys/fs/cgroup").unwrap();
    assert_eq!(
        fs.filesystem_type(),
        nix::sys::statfs::CGROUP2_SUPER_MAGIC,
        "not a pure cgroup v2 host: run through tests/guest.rs"
    );
}

fn cg_dir(path: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'))
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// Every limit we map, as a spec's `linux.resources`.
fn all_resources() -> Value {
    json!({
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 50},
        "blockIO": {"weight": 300},
        "unified": {"memory.min": "1048576"}
    })
}

/// What the v2 files of a cgroup say for [`all_resources`].
fn read_back(dir: &Path) -> Vec<(&'static str, String)> {
    [
        "memory.max",
        "memory.low",
        "memory.swap.max",
        "memory.min",
        "cpu.weight",
        "cpu.max",
        "cpuset.cpus",
        "cpuset.mems",
        "pids.max",
        "io.weight",
    ]
    .into_iter()
    .map(|f| {
        (
            f,
            std::fs::read_to_string(dir.join(f))
                .unwrap_or_else(|e| format!("({e})"))
                .trim()
                .to_string(),
        )
    })
    .collect()
}

/// A bundle with every limit, run detached by `runtime` (a path to capsa-
/// runtime, runc or crun) with its own state root; the v2 files read back,
/// then the container deleted. Returns what the files said.
fn limits_under(env: &Env, runtime: &Path, name: &str) -> Vec<(&'static str, String)> {
    let mut b = env.bundle(name);
    b.config["linux"]["resources"] = all_resources();
    // crun 1.8 knows spec versions up to 1.1.
    b.config["ociVersion"] = json!("1.0.2");
    b.args(&["sleep", "100"]);
    let root = env.dir.join(format!("state-{name}"));
    let id = env.id(name);
    // Its errors go to a file, not a pipe: the detached container
    // inherits them and would hold a pipe open until it exits.
    let err = env.dir.join(format!("{name}.stderr"));
    let rt = |args: &[&str]| {
        let st = Command::new(runtime)
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        assert!(
            st.success(),
            "{} {args:?}: {}",
            runtime.display(),
            std::fs::read_to_string(&err).unwrap_or_default()
        );
    };
    rt(&["run", "-d", "-b", b.path(), &id]);
    let dir = cg_dir(b.config["linux"]["cgroupsPath"].as_str().unwrap());
    let got = read_back(&dir);
    rt(&["delete", "-f", &id]);
    assert!(
        wait_for(10, || !dir.exists()),
        "{} left {}",
        runtime.display(),
        dir.display()
    );
    got
}

#[test]
#[ignore = "runs inside the pure v2 guest (tests/guest.rs)"]
fn every_limit_lands_in_its_v2_file_as_runc_and_crun_write_it() {
    let _ = IN_GUEST;
    require_v2();
    let env = Env::new("v2-limits");
    let ours = limits_under(&env, &env.runtime, "capsa");
    let want = [
        ("memory.max", "67108864"),
        ("memory.low", "33554432"),
        // v2 counts swap alone: the spec's memory+swap less memory.
        ("memory.swap.max", "67108864"),
        ("memory.min", "1048576"),
        ("cpu.max", "50000 100000"),
        ("cpuset.cpus", "0"),
        ("cpuset.mems", "0"),
        ("pids.max", "50"),
    ];
    for (f, v) in want {
        let got = &ours.iter().find(|(g, _)| *g == f).unwrap().1;
        assert_eq!(got, v, "{f}: {ours:?}");
    }
    // What capsa made (the parent too) went with the container.
    env.assert_gone("capsa");
    // The controls: runc and crun, same bundle, same host.
    for control in ["runc", "crun"] {
        let path = which(control);
        let theirs = limits_under(&env, &path, control);
        assert_eq!(ours, theirs, "capsa and {control} disagree");
    }
    // runc and crun leave the parent they made: not ours to judge.
    let _ = std::fs::remove_dir(cg_dir(&env.cgroup_parent));
}

fn which(name: &str) -> PathBuf {
    for d in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(d).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed in the guest");
}

#[test]
#[ignore = "runs inside the pure v2 guest (tests/guest.rs)"]
fn update_pause_kill_all_and_delete_on_v2() {
    require_v2();
    let env = Env::new("v2-life");
    let mut b = env.bundle("b");
    b.args(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let dir = cg_dir(b.config["linux"]["cgroupsPath"].as_str().unwrap());
    // No limit at create: update enables what it needs on the way.
    env.rt_ok(&[
        "update",
        "--memory",
        "100m",
        "--cpu-quota",
        "25000",
        "--cpu-period",
        "100000",
        "--pids-limit",
        "40",
        &id,
    ]);
    assert_eq!(read(&dir, "memory.max"), "104857600");
    assert_eq!(read(&dir, "cpu.max"), "25000 100000");
    assert_eq!(read(&dir, "pids.max"), "40");
    env.rt_ok(&["pause", &id]);
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    assert_eq!(env.state(&id)["status"], "paused");
    env.rt_ok(&["resume", &id]);
    assert_eq!(read(&dir, "cgroup.freeze"), "0");
    let stats: Value = serde_json::from_str(&env.rt_ok(&["events", "--stats", &id])).unwrap();
    assert!(
        stats["data"]["memory"]["usage"]["usage"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{stats}"
    );
    assert!(
        stats["data"]["pids"]["current"].as_u64().unwrap_or(0) >= 3,
        "{stats}"
    );
    env.rt_ok(&["kill", "--all", &id, "KILL"]);
    assert!(wait_for(10, || read(&dir, "cgroup.procs").is_empty()));
    env.rt_ok(&["delete", &id]);
    assert!(!dir.exists());
    env.assert_gone(&id);
}

#[test]
#[ignore = "runs inside the pure v2 guest (tests/guest.rs)"]
fn the_engine_applies_its_flags_on_v2_and_says_so() {
    require_v2();
    let env = Env::new("v2-engine");
    let c = Capsa::new(&env, "c");
    let img = load_busybox_probe(&env, &c);
    let id = c.ok(&[
        "run",
        "-d",
        "--cpus",
        "0.5",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "50",
        "--cpuset-cpus",
        "0",
        "--cpu-shares",
        "512",
        "--blkio-weight",
        "300",
        img,
        "sleep",
        "100",
    ]);
    let id = id.trim();
    let v: Value = serde_json::from_str(&c.ok(&["inspect", id])).unwrap();
    let path = v[0]["Cgroup"]["Path"].as_str().unwrap().to_string();
    let dir = cg_dir(&path);
    assert_eq!(read(&dir, "cpu.max"), "50000 100000", "{}", dir.display());
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "memory.swap.max"), "67108864");
    assert_eq!(read(&dir, "pids.max"), "50");
    assert_eq!(read(&dir, "cpuset.cpus"), "0");
    assert_eq!(read(&dir, "cpu.weight"), "20");
    assert_eq!(read(&dir, "io.weight"), "default 2930");
    // From inside: the container's own cgroup namespace root.
    let inside = c.ok(&[
        "exec",
        id,
        "cat",
        "/sys/fs/cgroup/cpu.max",
        "/sys/fs/cgroup/memory.max",
    ]);
    assert_eq!(
        inside.split_whitespace().collect::<Vec<_>>(),
        ["50000", "100000", "67108864"]
    );
    let stats = c.ok(&["stats", "--no-stream", "--format", "json"]);
    assert!(stats.contains(&id[..12]), "{stats}");
    let info: Value = serde_json::from_str(&c.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(info["CgroupVersion"], "2", "{info}");
    assert_eq!(info["CgroupDriver"], "systemd", "{info}");
    let trace = v[0]["Trace"].to_string();
    assert!(!trace.contains("v1"), "v1 words on a v2 host: {trace}");
    c.ok(&["stop", "-t", "1", id]);
    c.ok(&["rm", id]);
    assert!(!dir.exists(), "{} left", dir.display());
}

fn systemctl_show(unit: &str, props: &[&str]) -> String {
    let mut c = Command::new("systemctl");
    c.args(["show", unit]);
    for p in props {
        c.arg("-p").arg(p);
    }
    let o = c.output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
#[ignore = "runs inside the pure v2 guest (tests/guest.rs)"]
fn the_systemd_driver_makes_a_scope_that_systemd_knows() {
    require_v2();
    let env = Env::new("v2-systemd");
    let mut b = env.bundle("b");
    let id = env.id("sd");
    b.config["linux"]["cgroupsPath"] = json!(format!("system.slice:capsa:{id}"));
    b.config["linux"]["resources"] = json!({
        "memory": {"limit": 67108864},
        "cpu": {"quota": 50000, "period": 100000},
        "pids": {"limit": 40}
    });
    b.args(&["sleep", "100"]);
    env.rt_ok(&["--systemd-cgroup", "run", "-d", "-b", b.path(), &id]);
    let unit = format!("capsa-{id}.scope");
    let show = systemctl_show(
        &unit,
        &[
            "ActiveState",
            "Delegate",
            "MemoryMax",
            "TasksMax",
            "CPUQuotaPerSecUSec",
            "ControlGroup",
        ],
    );
    for want in [
        "ActiveState=active",
        "Delegate=yes",
        "MemoryMax=67108864",
        "TasksMax=40",
        "CPUQuotaPerSecUSec=500ms",
        &format!("ControlGroup=/system.slice/{unit}"),
    ] {
        assert!(show.contains(want), "{want} not in:\n{show}");
    }
    let dir = cg_dir(&format!("system.slice/{unit}"));
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert!(read(&dir, "cgroup.procs")
        .lines()
        .any(|l| l == pid.to_string()));
    // update goes through systemd too: a reload keeps it.
    env.rt_ok(&["--systemd-cgroup", "update", "--memory", "100m", &id]);
    assert!(systemctl_show(&unit, &["MemoryMax"]).contains("MemoryMax=104857600"));
    let o = Command::new("systemctl")
        .arg("daemon-reload")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(
        read(&dir, "memory.max"),
        "104857600",
        "the reload reset the limit"
    );
    env.rt_ok(&["delete", "-f", &id]);
    assert!(
        systemctl_show(&unit, &["LoadState"]).contains("LoadState=not-found"),
        "{}",
        systemctl_show(&unit, &["LoadState", "ActiveState"])
    );
    assert!(!dir.exists(), "{} left", dir.display());
    env.assert_gone(&id);
}

#[test]
#[ignore = "runs inside the pure v2 guest (tests/guest.rs)"]
fn the_engine_puts_containers_in_systemd_scopes_where_systemd_runs() {
    require_v2();
    let env = Env::new("v2-engine-sd");
    let c = Capsa::new(&env, "c");
    let img = load_busybox_probe(&env, &c);
    // No --cgroup-parent: podman's default, a scope in machine.slice.
    let capsa = |args: &[&str]| {
        let mut cmd = c.cmd(args);
        cmd.env_remove("CAPSA_CGROUP_PARENT");
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "capsa {args:?}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let id = capsa(&[
        "run",
        "-d",
        "--memory",
        "64m",
        "--pids-limit",
        "30",
        img,
        "sleep",
        "100",
    ]);
    let unit = format!("capsa-{id}.scope");
    let show = systemctl_show(
        &unit,
        &["ActiveState", "Slice", "MemoryMax", "TasksMax", "Delegate"],
    );
    for want in [
        "ActiveState=active",
        "Slice=machine.slice",
        "MemoryMax=67108864",
        "TasksMax=30",
        "Delegate=yes",
    ] {
        assert!(show.contains(want), "{want} not in:\n{show}");
    }
    let v: Value = serde_json::from_str(&capsa(&["inspect", &id])).unwrap();
    assert_eq!(v[0]["Cgroup"]["Path"], format!("/machine.slice/{unit}"));
    let dir = cg_dir(&format!("machine.slice/{unit}"));
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert!(capsa(&["stats", "--no-stream", "--format", "json"]).contains(&id[..12]));
    capsa(&["rm", "-f", &id]);
    assert!(
        wait_for(10, || systemctl_show(&unit, &["LoadState"])
            .contains("LoadState=not-found")),
        "{}",
        systemctl_show(&unit, &["LoadState", "ActiveState"])
    );
    assert!(!dir.exists(), "{} left", dir.display());
}

#[test]
#[ignore = "runs inside the pure v2 guest (tests/guest.rs)"]
fn the_ebpf_device_filter_and_the_oom_kill_on_v2() {
    require_v2();
    let env = Env::new("v2-dev-oom");
    let mut b = env.bundle("b");
    b.config["linux"]["resources"] = json!({"memory": {"limit": 33554432, "swap": 33554432}});
    b.grant_cap("CAP_MKNOD");
    // /dev/null is allowed; a node of /dev/kmsg (c 1:11) made inside is
    // not; then past the memory limit.
    b.args(&[
        "sh",
        "-c",
        "head -c0 /dev/null && echo null-ok; \
         (mknod /tmp/kmsg c 1 11 && exec 3</tmp/kmsg) 2>/dev/null && echo kmsg-opened || echo kmsg-denied; \
         dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd-exit-$?",
    ]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out, "null-ok\nkmsg-denied\ndd-exit-137\n", "{}", stderr(&o));
    env.assert_gone(&id);
}

/// containerd's CRI with `SystemdCgroup = true` and capsa-runtime as the
/// runtime handler's binary, as Kubernetes' recommended setup on v2: the
/// pod's containers are scopes systemd knows, with their limits.
#[test]
#[ignore = "runs inside the pure v2 guest (tests/guest.rs)"]
fn cri_with_systemd_cgroups_runs_a_pod_in_scopes_systemd_knows() {
    use capsa_tests::engines::{
        busybox_oci_archive, cri_connect, cri_remove, pause_oci_archive, Containerd, BUSYBOX, PAUSE,
    };
    use k8s_cri::v1::*;
    require_v2();
    let env = Env::new("v2-cri");
    let cri = format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "capsa"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.capsa]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.capsa.options]
        BinaryName = "{rt}"
        SystemdCgroup = true
"#,
        rt = env.runtime.display(),
    );
    let mut c = Containerd::start_with(&env, Some(&cri)).expect("containerd in the guest");
    c.namespace = "k8s.io".into();
    c.ctr_ok(&[
        "images",
        "import",
        pause_oci_archive(&env.dir).to_str().unwrap(),
    ]);
    c.ctr_ok(&[
        "images",
        "import",
        busybox_oci_archive(&env.dir).to_str().unwrap(),
    ]);
    let logs = env.dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let socket = c.socket.clone();
    let slice = "capsatest.slice".to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A CRI call that never returns fails the test with containerd's log.
    let cri_timeout = Duration::from_secs(240);
    let started = rt.block_on(async move {
        tokio::time::timeout(cri_timeout, async move {
            let mut cl = cri_connect(socket).await;
            // Host network: no CNI needed for what this test is about.
            let sandbox_config = PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: "pod1".into(),
                    uid: "uid-1".into(),
                    namespace: "capsa".into(),
                    attempt: 0,
                }),
                // Host network shares the host's UTS namespace: no hostname.
                log_directory: logs.display().to_string(),
                linux: Some(LinuxPodSandboxConfig {
                    cgroup_parent: slice.clone(),
                    security_context: Some(LinuxSandboxSecurityContext {
                        namespace_options: Some(NamespaceOption {
                            network: NamespaceMode::Node as i32,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let pod = cl
                .run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(sandbox_config.clone()),
                    runtime_handler: "capsa".into(),
                })
                .await
                .expect("RunPodSandbox")
                .into_inner()
                .pod_sandbox_id;
            let ctr = cl
                .create_container(CreateContainerRequest {
                    pod_sandbox_id: pod.clone(),
                    config: Some(ContainerConfig {
                        metadata: Some(ContainerMetadata {
                            name: "c1".into(),
                            attempt: 0,
                        }),
                        image: Some(ImageSpec {
                            image: BUSYBOX.into(),
                            ..Default::default()
                        }),
                        command: vec!["sleep".into(), "100".into()],
                        log_path: "c1.log".into(),
                        linux: Some(LinuxContainerConfig {
                            resources: Some(LinuxContainerResources {
                                memory_limit_in_bytes: 48 << 20,
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    sandbox_config: Some(sandbox_config.clone()),
                })
                .await
                .expect("CreateContainer")
                .into_inner()
                .container_id;
            cl.start_container(StartContainerRequest {
                container_id: ctr.clone(),
            })
            .await
            .expect("StartContainer");
            (pod, ctr)
        })
        .await
    });
    let (pod, ctr) = started.unwrap_or_else(|_| {
        panic!(
            "CRI calls still running after {cri_timeout:?}; containerd:\n{}",
            c.log()
        )
    });
    // containerd names the scope cri-containerd-ID.scope, in the pod's slice.
    let unit = format!("cri-containerd-{ctr}.scope");
    let show = systemctl_show(&unit, &["ActiveState", "Slice", "MemoryMax", "Delegate"]);
    for want in [
        "ActiveState=active",
        "Slice=capsatest.slice",
        "MemoryMax=50331648",
        "Delegate=yes",
    ] {
        assert!(show.contains(want), "{want} not in:\n{show}\n{}", c.log());
    }
    let sandbox = systemctl_show(&format!("cri-containerd-{pod}.scope"), &["ActiveState"]);
    assert!(sandbox.contains("ActiveState=active"), "{sandbox}");
    let socket = c.socket.clone();
    let ended = rt.block_on(async move {
        tokio::time::timeout(cri_timeout, async move {
            let mut cl = cri_connect(socket).await;
            cri_remove(&mut cl, &pod, &ctr, 0).await;
        })
        .await
    });
    assert!(
        ended.is_ok(),
        "CRI calls still running after {cri_timeout:?}; containerd:\n{}",
        c.log()
    );
    assert!(
        wait_for(10, || systemctl_show(&unit, &["LoadState"])
            .contains("LoadState=not-found")),
        "{}",
        systemctl_show(&unit, &["LoadState", "ActiveState"])
    );
}

/// An RDMA device for `rdma.max`: soft-RoCE (`rdma_rxe`) over a dummy
/// link, made once per boot. It is never removed: unregistering an RDMA
/// device after cgroups held limits on it corrupts a list in Debian 12's
/// 6.1 kernel (`rdmacg_unregister_device`, seen here), and the guest's
/// disk is a snapshot that the next boot forgets anyway.
fn rxe() -> String {
    let dev = "capsarxe";
    let script = format!(
        "rdma link show {dev}/1 >/dev/null 2>&1 || {{ modprobe rdma_rxe && ip link add capsarxe-l type dummy && ip link set capsarxe-l up && rdma link add {dev} type rxe netdev capsarxe-l; }}"
    );
    let o = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(o.status.success(), "{script}: {}", stderr(&o));
    dev.to_string()
}

/// io.cost enabled on a disk (per-device `io.weight` needs it, or BFQ),
/// disabled again on drop.
struct IoCost(String);

impl IoCost {
    fn on(disk: &str) -> IoCost {
        std::fs::write("/sys/fs/cgroup/io.cost.qos", format!("{disk} enable=1"))
            .expect("enable io.cost on the guest's disk");
        IoCost(disk.to_string())
    }
}

impl Drop for IoCost {
    fn drop(&mut self) {
        let _ = std::fs::write("/sys/fs/cgroup/io.cost.qos", format!("{} enable=0", self.0));
    }
}

/// `MAJ:MIN` of the guest's root disk.
fn root_disk() -> (i64, i64) {
    let dev = std::fs::read_to_string("/sys/block/vda/dev").expect("the guest's disk is vda");
    let (ma, mi) = dev.trim().split_once(':').unwrap();
    (ma.parse().unwrap(), mi.parse().unwrap())
}

/// Every file [`every_field_lands_and_updates_under_both_drivers`] reads.
const EVERY_FILE: [&str; 15] = [
    "memory.max",
    "memory.low",
    "memory.swap.max",
    "memory.high",
    "memory.min",
    "cpu.weight",
    "cpu.max",
    "cpu.idle",
    "cpuset.cpus",
    "cpuset.mems",
    "pids.max",
    "io.weight",
    "io.max",
    "hugetlb.2MB.max",
    "rdma.max",
];

/// Files an update changes, with their new values.
type Changes = Vec<(&'static str, String)>;

fn read_every(dir: &Path) -> Vec<(&'static str, String)> {
    EVERY_FILE.iter().map(|f| (*f, read(dir, f))).collect()
}

fn expect(got: &[(&'static str, String)], want: &[(&str, &str)], when: &str) {
    for (f, v) in want {
        let g = &got.iter().find(|(n, _)| n == f).unwrap().1;
        assert_eq!(g, v, "{f} {when}: {got:#?}");
    }
}

/// Every `linux.resources` field capsa maps on v2, under the cgroupfs and
/// the systemd driver: applied at create, read back, changed by `update`
/// one by one and read back, kept over a systemd reload; an OOM kill
/// shows as an `oom` event; the device filter allows and denies.
#[test]
#[ignore = "runs inside the pure v2 guest (tests/guest.rs)"]
fn every_field_lands_and_updates_under_both_drivers() {
    require_v2();
    let env = Env::new("v2-every");
    let rdma_dev = rxe();
    let (ma, mi) = root_disk();
    let disk = format!("{ma}:{mi}");
    let _iocost = IoCost::on(&disk);
    let mut seen = vec![];
    for driver in ["cgroupfs", "systemd"] {
        let systemd = driver == "systemd";
        let id = env.id(&format!("every-{driver}"));
        let mut b = env.bundle(&format!("b-{driver}"));
        if systemd {
            b.config["linux"]["cgroupsPath"] = json!(format!("system.slice:capsa:{id}"));
        }
        b.config["linux"]["resources"] = json!({
            "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 50},
            "blockIO": {
                "weight": 300,
                "weightDevice": [{"major": ma, "minor": mi, "weight": 200}],
                "throttleReadBpsDevice": [{"major": ma, "minor": mi, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": ma, "minor": mi, "rate": 100}]
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "rdma": {rdma_dev.clone(): {"hcaHandles": 10, "hcaObjects": 100}},
            "unified": {"memory.high": "50331648", "memory.min": "1048576"}
        });
        b.args(&["sleep", "1000"]);
        let flag: &[&str] = if systemd { &["--systemd-cgroup"] } else { &[] };
        let rt = |args: &[&str]| env.rt_ok(&[flag, args].concat());
        rt(&["run", "-d", "-b", b.path(), &id]);
        let dir = if systemd {
            cg_dir(&format!("system.slice/capsa-{id}.scope"))
        } else {
            cg_dir(b.config["linux"]["cgroupsPath"].as_str().unwrap())
        };
        let reload = || {
            if systemd {
                let o = Command::new("systemctl")
                    .arg("daemon-reload")
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", stderr(&o));
            }
        };
        let at_create = read_every(&dir);
        let rdma = format!("{} hca_handle=10 hca_object=100", rdma_dev);
        let io_weight = format!("default 2930\n{disk} 1920");
        let io_max = format!("{disk} rbps=1048576 wbps=max riops=max wiops=100");
        let want = [
            ("memory.max", "67108864"),
            ("memory.low", "33554432"),
            ("memory.swap.max", "67108864"),
            ("memory.high", "50331648"),
            ("memory.min", "1048576"),
            // shares 512 on v2's scale, as runc converts it.
            ("cpu.weight", "20"),
            ("cpu.max", "50000 100000"),
            ("cpu.idle", "0"),
            ("cpuset.cpus", "0"),
            ("cpuset.mems", "0"),
            ("pids.max", "50"),
            // blkio 10..1000 onto io 1..10000: 300 is 2930, 200 is 1920.
            ("io.weight", &io_weight),
            ("io.max", &io_max),
            ("hugetlb.2MB.max", "4194304"),
            ("rdma.max", &rdma),
        ];
        expect(&at_create, &want, &format!("at create ({driver})"));
        reload();
        expect(&read_every(&dir), &want, "after a systemd reload");
        if systemd {
            let show = systemctl_show(
                &format!("capsa-{id}.scope"),
                &["MemoryHigh", "MemoryMin", "DevicePolicy", "IOWeight"],
            );
            for w in [
                "MemoryHigh=50331648",
                "MemoryMin=1048576",
                "DevicePolicy=strict",
                "IOWeight=2930",
            ] {
                assert!(show.contains(w), "{w} not in {show}");
            }
        }
        // The device filter, through exec: /dev/null yes, a kmsg node no.
        let out = rt(&[
            "exec",
            &id,
            "sh",
            "-c",
            "head -c0 /dev/null && echo null-ok; (mknod /tmp/kmsg c 1 11 && exec 3</tmp/kmsg) 2>/dev/null && echo kmsg-opened || echo kmsg-denied",
        ]);
        assert_eq!(out, "null-ok\nkmsg-denied\n", "{driver}");
        // update, one field at a time.
        let resources = env.dir.join(format!("update-{driver}.json"));
        std::fs::write(
            &resources,
            json!({
                "hugepageLimits": [{"pageSize": "2MB", "limit": 8388608}],
                "blockIO": {"throttleReadBpsDevice": [{"major": ma, "minor": mi, "rate": 2097152}]},
                "rdma": {rdma_dev.clone(): {"hcaHandles": 5}},
                "unified": {"memory.high": "62914560"}
            })
            .to_string(),
        )
        .unwrap();
        // Each step: its flags, and every file it changes, with the value.
        let steps: Vec<(Vec<&str>, Changes)> = vec![
            (
                vec!["--memory", "100m"],
                vec![("memory.max", "104857600".into())],
            ),
            (
                vec!["--memory-reservation", "40m"],
                vec![("memory.low", "41943040".into())],
            ),
            // swap is counted with memory in the flag, alone in the file;
            // as with runc, it comes with a memory limit.
            (
                vec!["--memory", "100m", "--memory-swap", "200m"],
                vec![("memory.swap.max", "104857600".into())],
            ),
            (
                vec!["--cpu-share", "1024"],
                vec![("cpu.weight", "39".into())],
            ),
            (
                vec!["--cpu-quota", "30000", "--cpu-period", "60000"],
                vec![("cpu.max", "30000 60000".into())],
            ),
            (
                vec!["--cpuset-cpus", "0-1"],
                vec![("cpuset.cpus", "0-1".into())],
            ),
            (vec!["--cpuset-mems", "0"], vec![]),
            (vec!["--pids-limit", "60"], vec![("pids.max", "60".into())]),
            (
                vec!["--blkio-weight", "500"],
                vec![("io.weight", format!("default 4950\n{disk} 1920"))],
            ),
            // An idle group's weight reads 0 (the kernel's choice).
            (
                vec!["--cpu-idle", "1"],
                vec![("cpu.idle", "1".into()), ("cpu.weight", "0".into())],
            ),
            (
                vec!["-r", resources.to_str().unwrap()],
                vec![
                    ("hugetlb.2MB.max", "8388608".into()),
                    (
                        "io.max",
                        format!("{disk} rbps=2097152 wbps=max riops=max wiops=100"),
                    ),
                    ("memory.high", "62914560".into()),
                    (
                        "rdma.max",
                        format!("{} hca_handle=5 hca_object=100", rdma_dev),
                    ),
                ],
            ),
        ];
        let mut now = at_create.clone();
        for (flags, changes) in &steps {
            rt(&[&["update"][..], flags, &[&id]].concat());
            let got = read_every(&dir);
            for ((f, before), (_, after)) in now.iter().zip(&got) {
                match changes.iter().find(|(c, _)| c == f) {
                    Some((_, v)) => assert_eq!(after, v, "{f} after update {flags:?} ({driver})"),
                    None => assert_eq!(before, after, "{f} moved on update {flags:?} ({driver})"),
                }
            }
            now = got;
        }
        reload();
        assert_eq!(read_every(&dir), now, "a systemd reload undid an update");
        seen.push(now);
        rt(&["delete", "-f", &id]);
        assert!(!dir.exists(), "{} left", dir.display());
        // An OOM kill is an `oom` event.
        let oid = env.id(&format!("oom-{driver}"));
        let mut ob = env.bundle(&format!("oom-{driver}"));
        if systemd {
            ob.config["linux"]["cgroupsPath"] = json!(format!("system.slice:capsa:{oid}"));
        }
        ob.config["linux"]["resources"] = json!({"memory": {"limit": 33554432, "swap": 33554432}});
        // The OOM comes once the test says go, after the stream is up.
        ob.args(&[
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.1; done; dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 1000",
        ]);
        rt(&["run", "-d", "-b", ob.path(), &oid]);
        let mut events = env
            .cmd(&[flag, &["events", "--interval", "1h", &oid]].concat())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = std::io::BufRead::lines(std::io::BufReader::new(events.stdout.take().unwrap()));
        // The first stats event says the stream is up; then the OOM.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a stats event");
        assert!(first.contains("\"stats\""), "{first}");
        rt(&["exec", &oid, "touch", "/tmp/go"]);
        let oom = rx.recv_timeout(Duration::from_secs(60));
        let _ = events.kill();
        let _ = events.wait();
        assert!(
            oom.as_deref().is_ok_and(|l| l.contains("\"oom\"")),
            "no oom event ({driver}): {oom:?}"
        );
        rt(&["delete", "-f", &oid]);
    }
    // The two drivers agree on every file.
    assert_eq!(seen[0], seen[1], "cgroupfs and systemd disagree");
    env.assert_gone("every");
}

/// A scope that is not capsa's: `systemd-run --scope` holding a sleep.
struct Victim {
    unit: String,
    child: std::process::Child,
}

impl Victim {
    fn start(name: &str) -> Victim {
        let child = Command::new("systemd-run")
            .args(["--quiet", "--scope", "--unit", name, "sleep", "1000"])
            .spawn()
            .unwrap();
        let unit = format!("{name}.scope");
        assert!(
            wait_for(20, || systemctl_show(&unit, &["ActiveState"])
                .contains("ActiveState=active")),
            "{unit} did not start"
        );
        Victim { unit, child }
    }

    fn alive(&self) -> bool {
        systemctl_show(&self.unit, &["ActiveState"]).contains("ActiveState=active")
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = Command::new("systemctl")
            .args(["stop", &self.unit])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Security: a hostile `linux.cgroupsPath` under `--systemd-cgroup` names a
/// unit that is not the container's (a session, another store's container).
/// capsa refuses to start there, and never stops or kills a unit it did not
/// start: not on a failed create, not on `delete -f` after its own scope
/// is gone and the name was taken again.
#[test]
#[ignore = "runs inside the pure v2 guest (tests/guest.rs)"]
fn the_systemd_driver_never_touches_a_unit_it_did_not_start() {
    require_v2();
    let env = Env::new("v2-sd-own");
    let tag = std::process::id();
    // 1. Named outright: refused, the victim untouched.
    let victim = Victim::start(&format!("victim-{tag}"));
    let mut b = env.bundle("b");
    b.args(&["sleep", "1000"]);
    b.config["linux"]["cgroupsPath"] = json!(format!("system.slice::victim-{tag}"));
    b.save();
    let id = env.id("named");
    let o = env.rt(&["--systemd-cgroup", "run", "-d", "-b", b.path(), &id]);
    assert!(
        !o.status.success(),
        "a create into {} was accepted",
        victim.unit
    );
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(victim.alive(), "the failed create stopped {}", victim.unit);
    let o = env.rt(&["--systemd-cgroup", "delete", "-f", &id]);
    assert!(
        victim.alive(),
        "delete -f stopped {}: {}",
        victim.unit,
        stderr(&o)
    );
    drop(victim);
    // 2. Ours first, then gone, then its name taken by another: delete -f
    //    leaves the newcomer alone.
    let id = env.id("reused");
    b.config["linux"]["cgroupsPath"] = json!(format!("system.slice:capsa:{id}"));
    b.save();
    env.rt_ok(&["--systemd-cgroup", "run", "-d", "-b", b.path(), &id]);
    let unit = format!("capsa-{id}");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            // KILL: the container's init ignores TERM, and stop would wait
            // out systemd's 90 s.
            "systemctl kill --signal=KILL {unit}.scope; systemctl stop {unit}.scope; systemctl reset-failed {unit}.scope 2>/dev/null; true"
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let newcomer = Victim::start(&unit);
    env.rt_ok(&["--systemd-cgroup", "delete", "-f", &id]);
    assert!(
        newcomer.alive(),
        "delete -f stopped the newcomer {}",
        newcomer.unit
    );
    drop(newcomer);
    env.assert_gone(&id);
}

/// Rootless with a delegated cgroup (issue 18): a user with a systemd
/// user manager (`loginctl enable-linger`) owns `user@UID.service`'s
/// cgroup; rootless capsa puts its containers under it and applies their
/// limits there, where on a host without delegation they are refused.
#[test]
#[ignore = "runs inside the pure v2 guest (tests/guest.rs)"]
fn rootless_limits_land_in_the_users_delegated_cgroup() {
    use capsa_tests::users::User;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    require_v2();
    let env = Env::new("v2-rootless");
    let mut user = User::create(&env, "v", true);
    let o = Command::new("loginctl")
        .args(["enable-linger", &user.name])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "loginctl enable-linger: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    user.linger = true;
    let uid = user.uid;
    let service = cg_dir(&format!("user.slice/user-{uid}.slice/user@{uid}.service"));
    assert!(
        wait_for(60, || std::fs::metadata(service.join("cgroup.procs"))
            .is_ok_and(|m| m.uid() == uid)),
        "systemd did not delegate {} to {}",
        service.display(),
        user.name
    );
    // The user manager trims its cgroup of what it does not know as it
    // starts: the leaf is made once it is up.
    let unit = format!("user@{uid}.service");
    assert!(
        wait_for(60, || Command::new("systemctl")
            .args(["is-active", "--quiet", &unit])
            .status()
            .is_ok_and(|s| s.success())),
        "{unit} did not start"
    );
    // A leaf of the user's own for the commands (the delegation root
    // itself may hold no process once it gives controllers away).
    let leaf = service.join("capsa-commands");
    std::fs::create_dir_all(&leaf).unwrap();
    for f in [
        "",
        "cgroup.procs",
        "cgroup.threads",
        "cgroup.subtree_control",
    ] {
        nix::unistd::chown(&leaf.join(f), Some(uid.into()), None).unwrap();
    }
    user.cgroup = Some(leaf.clone());

    let tar = env.dir.join("busybox.tar");
    std::fs::write(&tar, capsa_tests::engines::busybox_rootfs_tar()).unwrap();
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    user.ok(&["import", tar.to_str().unwrap(), "bb:rl"]);
    let info = user.ok(&["info"]);
    assert!(info.contains("delegated cgroup v2 subtree"), "{info}");
    let inside = user.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--memory",
        "64m",
        "--pids-limit",
        "40",
        "bb:rl",
        "cat",
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/pids.max",
    ]);
    assert_eq!(
        inside.split_whitespace().collect::<Vec<_>>(),
        ["67108864", "40"]
    );
    let id = user.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--memory",
        "32m",
        "bb:rl",
        "sleep",
        "100",
    ]);
    let id = id.trim();
    let v: Value = serde_json::from_str(&user.ok(&["inspect", id])).unwrap();
    let path = v[0]["Cgroup"]["Path"].as_str().unwrap().to_string();
    assert!(
        path.starts_with(&format!(
            "/user.slice/user-{uid}.slice/user@{uid}.service/capsa/"
        )),
        "{path}"
    );
    let dir = cg_dir(&path);
    assert_eq!(read(&dir, "memory.max"), "33554432");
    user.ok(&["stop", "-t", "1", id]);
    user.ok(&["rm", id]);
    assert!(!dir.exists(), "{} left", dir.display());
    drop(user);
    let _ = std::fs::remove_dir(&leaf);
}
