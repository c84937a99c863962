//! Real container engines for the drop-in tests: a busybox OCI image made
//! here (no registry), and containerd started with a config, root, state
//! and socket of the test's own.

use crate::Env;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A tar of a busybox rootfs with every applet linked.
pub fn busybox_rootfs_tar() -> Vec<u8> {
    let mut layer = tar::Builder::new(Vec::new());
    let dir_header = |path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        (h, path.to_string())
    };
    for d in ["bin/", "proc/", "sys/", "dev/", "etc/", "tmp/", "root/"] {
        let (mut h, p) = dir_header(d);
        if d == "tmp/" {
            h.set_mode(0o1777);
        }
        layer.append_data(&mut h, p, std::io::empty()).unwrap();
    }
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static provides /bin/busybox");
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    h.set_mtime(0);
    layer
        .append_data(&mut h, "bin/busybox", busybox.as_slice())
        .unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| *a != "busybox")
    {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(0);
        layer
            .append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\n";
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(passwd.len() as u64);
    h.set_mtime(0);
    layer
        .append_data(&mut h, "etc/passwd", &passwd[..])
        .unwrap();
    layer.into_inner().unwrap()
}

/// Write an OCI image archive (an image layout, tarred) of the busybox
/// rootfs, named `docker.io/library/busybox:capsa-test`.
pub fn busybox_oci_archive(dir: &Path) -> PathBuf {
    oci_archive(
        &dir.join("busybox-oci.tar"),
        BUSYBOX,
        &busybox_rootfs_tar(),
        &[],
        &["sh"],
    )
}

/// A pause image (`localhost/capsa-pause:test`) around Debian's static
/// catatonit, for CRI sandboxes.
pub fn pause_oci_archive(dir: &Path) -> PathBuf {
    let bin = std::fs::read("/usr/bin/catatonit").expect("catatonit provides the pause binary");
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(bin.len() as u64);
    h.set_mtime(0);
    layer.append_data(&mut h, "pause", bin.as_slice()).unwrap();
    oci_archive(
        &dir.join("pause-oci.tar"),
        PAUSE,
        &layer.into_inner().unwrap(),
        &["/pause", "-P"],
        &[],
    )
}

/// The pause image's name.
pub const PAUSE: &str = "localhost/capsa-pause:test";

/// An OCI archive of one layer, named `name`.
pub fn oci_archive(
    path: &Path,
    name: &str,
    layer: &[u8],
    entrypoint: &[&str],
    cmd: &[&str],
) -> PathBuf {
    let layer_d = sha256(layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": if entrypoint.is_empty() { serde_json::Value::Null } else { serde_json::json!(entrypoint) },
            "Cmd": if cmd.is_empty() { serde_json::Value::Null } else { serde_json::json!(cmd) }
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_d}")] },
        // One history entry per layer, as buildah insists when it builds
        // on the image.
        "history": [{ "created_by": "capsa tests" }]
    })
    .to_string()
    .into_bytes();
    let config_d = sha256(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_d}"), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer_d}"), "size": layer.len() }]
    })
    .to_string()
    .into_bytes();
    let manifest_d = sha256(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_d}"), "size": manifest.len(),
            "annotations": { "io.containerd.image.name": name },
            "platform": { "architecture": "amd64", "os": "linux" }
        }]
    })
    .to_string()
    .into_bytes();
    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        archive.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    add(&format!("blobs/sha256/{manifest_d}"), &manifest);
    add(&format!("blobs/sha256/{config_d}"), &config);
    add(&format!("blobs/sha256/{layer_d}"), layer);
    std::fs::write(path, archive.into_inner().unwrap()).unwrap();
    path.to_path_buf()
}

/// The image name the archive carries.
pub const BUSYBOX: &str = "docker.io/library/busybox:capsa-test";

/// A containerd of the test's own; stopped, and its mounts undone, on drop.
pub struct Containerd {
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// The containerd namespace the test works in (its cgroup parent too).
    pub namespace: String,
    child: Child,
}

impl Containerd {
    /// Start containerd (without the CRI plugin) under `env.dir`, or `None`
    /// when containerd is not installed.
    pub fn start(env: &Env) -> Option<Containerd> {
        Self::start_with(env, None)
    }

    /// Start containerd with `extra` config (for example the CRI plugin's).
    pub fn start_with(env: &Env, extra: Option<&str>) -> Option<Containerd> {
        if !crate::require(crate::installed("containerd"), "containerd") {
            return None;
        }
        let dir = env.dir.join("containerd");
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("containerd.sock");
        let disabled = if extra.is_some() {
            ""
        } else {
            "\"io.containerd.grpc.v1.cri\""
        };
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\ndisabled_plugins = [{disabled}]\n[grpc]\n  address = \"{s}\"\n[ttrpc]\n  address = \"{s}.ttrpc\"\n[debug]\n  address = \"{d}/debug.sock\"\n{}",
            extra.unwrap_or(""),
            d = dir.display(),
            s = socket.display()
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd {
            dir,
            socket,
            namespace: env.cgroup_parent.clone(),
            child,
        };
        assert!(
            crate::wait_for(20, || c.ctr(&["version"]).status.success()),
            "containerd did not come up: {}",
            c.log()
        );
        Some(c)
    }

    /// `ctr -a SOCKET -n NAMESPACE ARGS...`
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("-a")
            .arg(&self.socket)
            .arg("-n")
            .arg(&self.namespace)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// ctr that must succeed; its stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let o = self.ctr(args);
        assert!(
            o.status.success(),
            "ctr {args:?} failed: {}\n{}\ncontainerd log:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Tasks and containers of our namespace first, so shims exit.
        let tasks = self.ctr(&["task", "ls", "-q"]);
        for t in String::from_utf8_lossy(&tasks.stdout).lines() {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", t]);
            let _ = self.ctr(&["task", "delete", "-f", t]);
        }
        let cs = self.ctr(&["container", "ls", "-q"]);
        for c in String::from_utf8_lossy(&cs.stdout).lines() {
            let _ = self.ctr(&["container", "delete", c]);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        unmount_under(&self.dir);
        // The runc shim keeps its runtime state per namespace here.
        let _ = std::fs::remove_dir(Path::new("/run/containerd/runc").join(&self.namespace));
    }
}

/// Detach every mount below `dir`, deepest first (what a killed engine may
/// leave: overlay rootfs, shm).
pub fn unmount_under(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut targets: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| Path::new(t).starts_with(dir))
        .map(str::to_string)
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = nix::mount::umount2(t.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// podman with a root, run root, tmpdir and containers.conf of the test's
/// own, and capsa-runtime as its OCI runtime.
pub struct Podman {
    pub dir: PathBuf,
    runtime: PathBuf,
    /// The cgroup parent its containers go under (the test's own).
    pub cgroup_parent: String,
}

impl Podman {
    /// `None` when podman is not installed (outside CI).
    pub fn new(env: &Env) -> Option<Podman> {
        if !crate::require(crate::installed("podman"), "podman") {
            return None;
        }
        let dir = env.dir.join("podman");
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        // Default ulimits this machine allows (root here lacks
        // CAP_SYS_RESOURCE), cgroupfs without systemd, events to a file, no
        // network; podman's default seccomp profile applies.
        std::fs::write(
            dir.join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\nnetns = \"none\"\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
        Some(Podman {
            dir,
            runtime: env.runtime.clone(),
            cgroup_parent: env.cgroup_parent.clone(),
        })
    }

    /// `podman ARGS...` with this test's storage and runtime.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .arg("--storage-driver")
            .arg("overlay")
            .arg("--runtime")
            .arg(&self.runtime)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "podman {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-a", "-f", "-t", "0"]);
        let _ = self.run(&["system", "reset", "-f"]);
        unmount_under(&self.dir);
    }
}

/// dockerd with a data root, exec root, socket and daemon.json of the test's
/// own (no iptables, no bridge), capsa-runtime registered as runtime
/// `capsa`, and the test's cgroup parent.
pub struct Dockerd {
    pub dir: PathBuf,
    socket: PathBuf,
    child: Child,
}

impl Dockerd {
    /// `None` when docker is not installed (outside CI).
    pub fn start(env: &Env) -> Option<Dockerd> {
        if !crate::require(crate::installed("dockerd"), "dockerd (docker.io)") {
            return None;
        }
        let dir = env.dir.join("docker");
        std::fs::create_dir_all(&dir).unwrap();
        let daemon = serde_json::json!({
            "runtimes": { "capsa": { "path": env.runtime } },
            // Limits this machine's root may set (it lacks CAP_SYS_RESOURCE).
            "default-ulimits": { "nofile": { "Name": "nofile", "Hard": 1024, "Soft": 1024 } },
            "cgroup-parent": format!("/{}", env.cgroup_parent),
        });
        std::fs::write(dir.join("daemon.json"), daemon.to_string()).unwrap();
        let socket = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Dockerd { dir, socket, child };
        assert!(
            crate::wait_for(60, || d.docker(&["version"]).status.success()),
            "dockerd did not come up: {}",
            d.log()
        );
        Some(d)
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed: {}\n{}\ndockerd log:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `docker import` of the busybox rootfs as `busybox:capsa-test`.
    pub fn import_busybox(&self) {
        let mut child = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(["import", "-", "busybox:capsa-test"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &busybox_rootfs_tar()).unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success(), "docker import failed");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        unmount_under(&self.dir);
    }
}

/// A CRI client of containerd's runtime service.
pub type CriClient =
    k8s_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>;

/// Connect to the CRI socket (a unix socket; the URI is tonic's formality).
pub async fn cri_connect(socket: PathBuf) -> CriClient {
    let channel = tonic::transport::Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let p = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(p).await?,
                ))
            }
        }))
        .await
        .expect("connect to containerd's CRI socket");
    k8s_cri::v1::runtime_service_client::RuntimeServiceClient::new(channel)
}

/// Stop and remove a container (waiting `timeout` seconds), then its pod.
pub async fn cri_remove(cl: &mut CriClient, pod: &str, ctr: &str, timeout: i64) {
    use k8s_cri::v1::*;
    cl.stop_container(StopContainerRequest {
        container_id: ctr.to_string(),
        timeout,
    })
    .await
    .expect("StopContainer");
    cl.remove_container(RemoveContainerRequest {
        container_id: ctr.to_string(),
    })
    .await
    .expect("RemoveContainer");
    cl.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.to_string(),
    })
    .await
    .expect("StopPodSandbox");
    cl.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod.to_string(),
    })
    .await
    .expect("RemovePodSandbox");
}
