//! CRI, the interface Kubernetes uses: containerd's CRI plugin with a
//! runtime handler whose binary is capsa-runtime, CNI from Debian's
//! plugins, and a small CRI client (gRPC over the containerd socket).

use capsa_tests::engines::{
    busybox_oci_archive, cri_connect, cri_remove, pause_oci_archive, Containerd, BUSYBOX, PAUSE,
};
use capsa_tests::*;
use k8s_cri::v1::*;

/// The CNI bridge network of this test; its bridge is deleted on drop.
struct Bridge(String);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .output();
    }
}

#[test]
fn cri_pod_with_capsa_runtime_handler() {
    let env = Env::new("cri");
    // A bridge name the kernel accepts (15 bytes at most), ours alone.
    let bridge = Bridge(format!("cb{}", std::process::id()));
    let cni = env.dir.join("cni");
    std::fs::create_dir_all(&cni).unwrap();
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0", "name": env.cgroup_parent,
        "plugins": [{
            "type": "bridge", "bridge": bridge.0, "isGateway": true, "ipMasq": false,
            "ipam": { "type": "host-local", "subnet": "10.233.77.0/24", "dataDir": env.dir.join("ipam") }
        }]
    });
    std::fs::write(cni.join("10-capsa.conflist"), conflist.to_string()).unwrap();
    let cri = format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  restrict_oom_score_adj = true
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
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"#,
        rt = env.runtime.display(),
        cni = cni.display()
    );
    let Some(mut c) = Containerd::start_with(&env, Some(&cri)) else {
        return;
    };
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
    // A program only the host has (static busybox, named echo).
    let hostonly = env.dir.join("hostonly");
    std::fs::create_dir_all(&hostonly).unwrap();
    std::fs::copy("/bin/busybox", hostonly.join("echo")).unwrap();
    let host_prog = hostonly.join("echo").display().to_string();
    let socket = c.socket.clone();
    let parent = format!("/{}", env.cgroup_parent);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut cl = cri_connect(socket).await;
        let sandbox_config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "pod1".into(),
                uid: "uid-1".into(),
                namespace: "capsa".into(),
                attempt: 0,
            }),
            hostname: "capsa-pod".into(),
            log_directory: logs.display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: parent.clone(),
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
        let status = cl
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner();
        let ip = status
            .status
            .as_ref()
            .and_then(|s| s.network.as_ref())
            .map(|n| n.ip.clone())
            .unwrap_or_default();
        assert!(ip.starts_with("10.233.77."), "pod IP {ip:?}");

        let limit = 48 << 20;
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
                    command: vec![
                        "sh".into(),
                        "-c".into(),
                        "echo hello-cri; exec sleep 100".into(),
                    ],
                    log_path: "c1.log".into(),
                    linux: Some(LinuxContainerConfig {
                        resources: Some(LinuxContainerResources {
                            memory_limit_in_bytes: limit,
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

        // The limit is on the container's cgroup, capsa made it.
        let file = format!("/sys/fs/cgroup/memory{parent}/{ctr}/memory.limit_in_bytes");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap().trim(),
            limit.to_string()
        );

        let ex = cl
            .exec_sync(ExecSyncRequest {
                container_id: ctr.clone(),
                cmd: vec!["sh".into(), "-c".into(), "hostname; exit 7".into()],
                timeout: 10,
            })
            .await
            .expect("ExecSync")
            .into_inner();
        assert_eq!(ex.exit_code, 7);
        assert_eq!(String::from_utf8_lossy(&ex.stdout), "capsa-pod\n");

        // CVE-2024-21626 through a pod's command and through ExecSync:
        // args[0] as /proc/self/fd/N/../..<a program only the host has>.
        let through = |n: u32| format!("/proc/self/fd/{n}{}{host_prog}", "/..".repeat(20));
        for n in 3..=20 {
            let name = format!("fd{n}");
            let made = cl
                .create_container(CreateContainerRequest {
                    pod_sandbox_id: pod.clone(),
                    config: Some(ContainerConfig {
                        metadata: Some(ContainerMetadata {
                            name: name.clone(),
                            attempt: 0,
                        }),
                        image: Some(ImageSpec {
                            image: BUSYBOX.into(),
                            ..Default::default()
                        }),
                        command: vec![through(n), "ESCAPED".into()],
                        log_path: format!("{name}.log"),
                        ..Default::default()
                    }),
                    sandbox_config: Some(sandbox_config.clone()),
                })
                .await;
            if let Ok(r) = made {
                let id = r.into_inner().container_id;
                let started = cl
                    .start_container(StartContainerRequest {
                        container_id: id.clone(),
                    })
                    .await;
                assert!(started.is_err(), "fd {n}: the pod's command started");
                let _ = cl
                    .remove_container(RemoveContainerRequest { container_id: id })
                    .await;
            }
            let log = std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default();
            assert!(!log.contains("ESCAPED"), "fd {n}: {log}");
        }
        for n in 3..=64 {
            if let Ok(r) = cl
                .exec_sync(ExecSyncRequest {
                    container_id: ctr.clone(),
                    cmd: vec![through(n), "ESCAPED".into()],
                    timeout: 10,
                })
                .await
            {
                let r = r.into_inner();
                let out = String::from_utf8_lossy(&r.stdout);
                assert!(
                    r.exit_code != 0 && !out.contains("ESCAPED"),
                    "exec fd {n}: {out}"
                );
            }
        }

        let stats = cl
            .container_stats(ContainerStatsRequest {
                container_id: ctr.clone(),
            })
            .await
            .expect("ContainerStats")
            .into_inner();
        let ws = stats
            .stats
            .and_then(|s| s.memory)
            .and_then(|m| m.working_set_bytes)
            .map(|v| v.value)
            .unwrap_or(0);
        assert!(ws > 0, "no memory usage in ContainerStats");

        let log = logs.join("c1.log");
        assert!(
            wait_for(10, || std::fs::read_to_string(&log)
                .is_ok_and(|l| l.contains("hello-cri"))),
            "container log: {:?}",
            std::fs::read_to_string(&log)
        );
        let line = std::fs::read_to_string(&log).unwrap();
        assert!(
            line.lines().any(|l| l.ends_with(" stdout F hello-cri")),
            "{line}"
        );

        cri_remove(&mut cl, &pod, &ctr, 1).await;
        assert!(
            !std::path::Path::new(&file).exists(),
            "the container's cgroup is left"
        );
    });
    drop(c);
    drop(bridge);
}
