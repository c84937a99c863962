//! Helpers for the integration tests: a private state root, bundles on a
//! busybox rootfs with the probe at `/probe`, a cgroup parent per test, and
//! cleanup that runs even when a test fails (on drop).

pub mod engines;
pub mod guest;
pub mod images;
pub mod registry;
pub mod users;

use serde_json::Value;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Where the built binaries are (`CAPSA_BIN_DIR`, or the workspace's debug
/// target directory).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("CAPSA_BIN_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/x86_64-unknown-linux-gnu/debug")
}

fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// The capsa-runtime binary under test.
pub fn runtime_bin() -> PathBuf {
    bin("capsa-runtime")
}

/// The probe binary.
pub fn probe_bin() -> PathBuf {
    bin("capsa-probe")
}

const APPLETS: [&str; 30] = [
    "sh", "true", "false", "echo", "cat", "ls", "sleep", "id", "hostname", "ps", "mount", "touch",
    "mkdir", "test", "stat", "readlink", "tty", "env", "pwd", "grep", "wc", "head", "kill",
    "printf", "uname", "mknod", "rm", "chmod", "dd", "ionice",
];

/// One test's world: a temp directory, a state root, a cgroup parent, and
/// the container ids it used (deleted with `--force` on drop).
pub struct Env {
    pub dir: PathBuf,
    pub root: PathBuf,
    /// Name of this test's cgroup parent, directly under each hierarchy.
    pub cgroup_parent: String,
    ids: RefCell<Vec<String>>,
    pub runtime: PathBuf,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("capsa-test-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("{tag}-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Env {
            root: dir.join("state"),
            dir,
            cgroup_parent: tag,
            ids: RefCell::new(Vec::new()),
            runtime: runtime_bin(),
        }
    }

    /// A container id unique to this test, deleted at the end.
    pub fn id(&self, suffix: &str) -> String {
        let id = format!("{}-{suffix}", self.cgroup_parent);
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// A bundle named `name` with a busybox rootfs, the probe at `/probe`,
    /// and the default spec adapted for tests (no terminal, writable root,
    /// this test's cgroup parent).
    pub fn bundle(&self, name: &str) -> Bundle {
        let dir = self.dir.join(name);
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        link_or_copy(Path::new("/bin/busybox"), &rootfs.join("bin/busybox"));
        for a in APPLETS {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a));
        }
        link_or_copy(&probe_bin(), &rootfs.join("probe"));
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
        let mut config =
            serde_json::to_value(capsa_spec::defaults::hardened(None).unwrap()).unwrap();
        config["process"]["terminal"] = Value::Bool(false);
        config["root"]["readonly"] = Value::Bool(false);
        config["linux"]["cgroupsPath"] = Value::String(format!("/{}/{name}", self.cgroup_parent));
        let b = Bundle { dir, config };
        b.save();
        b
    }

    /// Run capsa-runtime with this test's `--root`. Output goes through
    /// files, not pipes: a container started by `create` or `run -d`
    /// inherits them and may outlive the command.
    pub fn rt(&self, args: &[&str]) -> Output {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let out = self.dir.join(format!(".out-{n}"));
        let err = self.dir.join(format!(".err-{n}"));
        let status = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .expect("spawn capsa-runtime");
        let o = Output {
            status,
            stdout: std::fs::read(&out).unwrap_or_default(),
            stderr: std::fs::read(&err).unwrap_or_default(),
        };
        let _ = std::fs::remove_file(out);
        let _ = std::fs::remove_file(err);
        o
    }

    /// A Command for capsa-runtime with this test's `--root`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.runtime);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// capsa-runtime in the background (no stdin), for tests that act
    /// while it runs (a hook blocked on [`Env::fifo`], say).
    pub fn spawn_rt(&self, args: &[&str]) -> std::process::Child {
        self.cmd(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn capsa-runtime")
    }

    /// A FIFO in the test's directory: a hook that reads it waits until
    /// the test writes to it.
    pub fn fifo(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        p
    }

    /// Run and require success; returns stdout.
    pub fn rt_ok(&self, args: &[&str]) -> String {
        let o = self.rt(args);
        assert!(
            o.status.success(),
            "capsa-runtime {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A tmpfs of `size` (as the mount option says it, or the kernel's
    /// default) made at `dir` under the test's directory; the drop
    /// unmounts it, even when the test fails.
    pub fn mount_tmpfs(&self, dir: &Path, size: Option<&str>) {
        assert!(
            dir.starts_with(&self.dir),
            "{} is not the test's",
            dir.display()
        );
        std::fs::create_dir_all(dir).unwrap();
        let data = size.map(|s| format!("size={s}"));
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            data.as_deref(),
        )
        .unwrap();
    }

    /// `state ID` as JSON.
    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.rt_ok(&["state", id])).expect("state is JSON")
    }

    /// Directories of this test's cgroup parent that exist on the host.
    pub fn cgroup_leftovers(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        // A pure v2 host: the hierarchy is /sys/fs/cgroup itself.
        let v2 = Path::new("/sys/fs/cgroup").join(&self.cgroup_parent);
        if v2.exists() {
            out.push(v2);
        }
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                let p = h.path().join(&self.cgroup_parent);
                if p.exists() {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Assert that container `id` left nothing: no state dir, no cgroup.
    pub fn assert_gone(&self, id: &str) {
        assert!(
            !self.root.join(id).exists(),
            "state directory of {id} is left"
        );
        let left = self.cgroup_leftovers();
        assert!(left.is_empty(), "cgroup directories left: {left:?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.rt(&["delete", "--force", id]);
        }
        // A failed test may leave mounts (overlay roots) under its dir.
        engines::unmount_under(&self.dir);
        // A failed test may leave cgroups: remove ours, deepest first.
        for p in self.cgroup_leftovers() {
            remove_cgroup_tree(&p);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn remove_cgroup_tree(p: &Path) {
    // On this host hugetlb, net_cls, net_prio and perf_event under
    // /sys/fs/cgroup are plain tmpfs directories, where conmon leaves a
    // `tasks` file of its own: not a cgroup, removed as files are.
    if nix::sys::statfs::statfs(p)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
    {
        let _ = std::fs::remove_dir_all(p);
        return;
    }
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    for _ in 0..50 {
        if std::fs::remove_dir(p).is_ok() || !p.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn link_or_copy(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

/// A bundle directory and its config, saved with [`Bundle::save`].
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    pub fn save(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// Set the process args and save.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = serde_json::json!(args);
        self.save();
        self
    }

    /// Drop the namespace of `kind` (`pid`, `cgroup`, ...) from the spec:
    /// the container shares the runtime's. Saved.
    pub fn without_namespace(&mut self, kind: &str) -> &mut Self {
        let kept: Vec<Value> = self.config["linux"]["namespaces"]
            .as_array()
            .map(|a| a.iter().filter(|n| n["type"] != kind).cloned().collect())
            .unwrap_or_default();
        self.config["linux"]["namespaces"] = Value::Array(kept);
        self.save();
        self
    }

    /// Add `cap` (`CAP_SYS_ADMIN`, ...) to the bounding, effective and
    /// permitted sets. Not saved (as `user_namespace`).
    pub fn grant_cap(&mut self, cap: &str) -> &mut Self {
        for set in ["bounding", "effective", "permitted"] {
            self.config["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(Value::String(cap.to_string()));
        }
        self
    }

    /// A new user namespace mapping container ids 0..65536 to host ids
    /// from `host`.
    pub fn user_namespace(&mut self, host: u32) -> &mut Self {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({ "type": "user" }));
        let map = serde_json::json!([{ "containerID": 0, "hostID": host, "size": 65536 }]);
        self.config["linux"]["uidMappings"] = map.clone();
        self.config["linux"]["gidMappings"] = map;
        self
    }

    pub fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}

/// Parse the probe's JSON from a command's stdout (the last JSON line).
pub fn probe_output(o: &Output) -> Value {
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "no probe JSON in stdout: {text}\nstderr: {}",
                String::from_utf8_lossy(&o.stderr)
            )
        });
    serde_json::from_str(line).expect("probe JSON")
}

/// Namespace inode of a host process.
pub fn ns_inode(pid: &str, ns: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{ns}"))
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// Wait until `f` holds, or fail the test after `secs` seconds saying
/// what did not come (the state changes in another process: a monitor).
pub fn until(secs: u64, why: &str, f: impl FnMut() -> bool) {
    assert!(wait_for(secs, f), "not within {secs} s: {why}");
}

/// Wait until `f` holds, up to `secs` seconds.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The stdout of `o`, which `what` (a command, for the message) must have
/// succeeded with; its stderr in the panic otherwise.
pub fn succeeded(what: &str, o: &Output) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The stderr of `o`, which `what` must have failed with; its stdout in
/// the panic otherwise.
pub fn failed(what: &str, o: &Output) -> String {
    assert!(
        !o.status.success(),
        "{what} should have failed:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether `what`, a tool or host feature a test needs, is `present`. A
/// test that returns on `false` is skipped, and says so on stderr; under
/// `CI` the absence fails the test instead, so no test passes there by
/// not running.
pub fn require(present: bool, what: &str) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is missing here (scripts/deps.sh installs the tools)"
    );
    eprintln!("SKIPPED: {what} is missing here (scripts/deps.sh installs the tools)");
    false
}

/// Whether `program` runs (`program --version` starts).
pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Unless the command succeeded (the machine allows what the test asks),
/// it must have failed with every one of `words` on stderr and left
/// nothing of container `id` behind.
pub fn refused_unless_allowed(env: &Env, o: &Output, id: &str, words: &[&str]) {
    if o.status.success() {
        return;
    }
    let e = stderr(o);
    assert!(
        words.iter().all(|w| e.contains(w)),
        "stderr lacks {words:?}: {e}"
    );
    env.assert_gone(id);
}

/// Accept one connection on a console socket and receive the pty master
/// it carries, as containerd and podman receive it.
pub fn receive_master(
    listener: std::os::unix::net::UnixListener,
) -> std::thread::JoinHandle<std::os::fd::OwnedFd> {
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            std::os::fd::AsRawFd::as_raw_fd(&conn),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        for c in msg.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                return owned(fds[0]);
            }
        }
        panic!("no fd received on the console socket");
    })
}

// SCM_RIGHTS installed the fd for us alone. (Reopening it through /proc
// would not do: that opens a new pty.)
fn owned(fd: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    // SAFETY: SCM_RIGHTS just installed it for us alone.
    #[allow(unsafe_code)]
    let owned = unsafe { capsa_sys::fd::inherited(fd) };
    owned.expect("the received fd is open")
}

/// `skopeo ARGS...`, required to succeed; its stdout. An independent
/// client of the registries and layouts capsa writes.
pub fn skopeo(args: &[&str]) -> String {
    let o = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo (scripts/deps.sh installs it)");
    succeeded(&format!("skopeo {args:?}"), &o)
}
