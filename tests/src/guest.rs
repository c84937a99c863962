//! The pure cgroup v2 guest of issue 15: Debian 12, systemd as PID 1,
//! booted with qemu from the image `scripts/guest-image.sh` caches. The
//! root disk is opened with `snapshot=on` (every boot starts clean), the
//! workspace's target directory is shared read-write over 9p at `/capsa`,
//! and commands run through qemu-guest-agent on a virtio-serial port.

use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the guest image is cached (`CAPSA_GUEST_CACHE`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CAPSA_GUEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/capsa-guest"))
}

/// What a command in the guest did.
#[derive(Debug)]
pub struct GuestOutput {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// A booted guest; powered off (killed: its disk is a snapshot) on drop.
pub struct Guest {
    qemu: Child,
    agent: BufReader<UnixStream>,
    dir: PathBuf,
    /// The accelerator it booted with: `kvm` or `tcg`.
    pub accel: &'static str,
}

/// KVM when the host has a stock one; this host's `kvm_pvm` cannot boot a
/// stock Debian kernel, so it gets TCG straight away.
fn accelerators() -> Vec<&'static str> {
    let kvm = Path::new("/dev/kvm").exists() && !Path::new("/sys/module/kvm_pvm").exists();
    if kvm {
        vec!["kvm", "tcg"]
    } else {
        vec!["tcg"]
    }
}

impl Guest {
    /// Build the image if needed, boot it with `share` at `/capsa`, and
    /// wait for its agent and for systemd to finish starting.
    pub fn boot(dir: &Path, share: &Path) -> Result<Guest, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/guest-image.sh");
        let o = Command::new("bash")
            .arg(&script)
            .arg(cache_dir())
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        if !o.status.success() {
            return Err(format!(
                "{} failed: {}{}",
                script.display(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        let mut last = String::new();
        for accel in accelerators() {
            match Guest::boot_with(dir, share, accel) {
                Ok(g) => return Ok(g),
                Err(e) => last = format!("{accel}: {e}"),
            }
        }
        Err(last)
    }

    fn boot_with(dir: &Path, share: &Path, accel: &'static str) -> Result<Guest, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let cache = cache_dir();
        let sock = dir.join("qga.sock");
        let _ = std::fs::remove_file(&sock);
        let console = dir.join("console.log");
        let qemu = Command::new("qemu-system-x86_64")
            .args(["-machine", "q35", "-accel", accel, "-cpu", "max"])
            .args(["-smp", "2", "-m", "3072", "-display", "none", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-kernel")
            .arg(cache.join("vmlinuz"))
            .arg("-initrd")
            .arg(cache.join("initrd.img"))
            .args([
                "-append",
                "console=ttyS0 panic=-1 systemd.unified_cgroup_hierarchy=1",
            ])
            .arg("-drive")
            .arg(format!(
                "file={},if=virtio,format=raw,snapshot=on",
                cache.join("root.img").display()
            ))
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=capsa,security_model=passthrough,id=capsa",
                share.display()
            ))
            .args(["-device", "virtio-serial"])
            .arg("-chardev")
            .arg(format!(
                "socket,path={},server=on,wait=off,id=qga",
                sock.display()
            ))
            .args([
                "-device",
                "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("qemu-system-x86_64: {e}"))?;
        let mut qemu = Some(qemu);
        let fail = |qemu: &mut Option<Child>, why: String| -> String {
            if let Some(mut q) = qemu.take() {
                let _ = q.kill();
                let _ = q.wait();
            }
            let tail: String = std::fs::read_to_string(&console)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            format!("{why}; console's last lines:\n{tail}")
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        let stream = loop {
            if let Ok(s) = UnixStream::connect(&sock) {
                break s;
            }
            if let Some(Ok(Some(st))) = qemu.as_mut().map(|q| q.try_wait()) {
                return Err(fail(&mut qemu, format!("qemu exited: {st}")));
            }
            if Instant::now() > deadline {
                return Err(fail(&mut qemu, "no agent socket".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut g = Guest {
            qemu: qemu.take().ok_or("qemu gone")?,
            agent: BufReader::new(stream),
            dir: dir.to_path_buf(),
            accel,
        };
        // The agent answers once systemd has started it; then wait for
        // the boot to settle, so that tests see a finished system.
        if let Err(e) = g.sync(deadline) {
            let mut q = Some(std::mem::replace(
                &mut g.qemu,
                Command::new("true").spawn().map_err(|e| e.to_string())?,
            ));
            return Err(fail(&mut q, e));
        }
        let o = g.exec(
            "systemctl is-system-running --wait; mountpoint -q /capsa || mount /capsa",
            Duration::from_secs(120),
        )?;
        if o.code != 0 && !o.stdout.contains("degraded") {
            return Err(format!("the guest did not start: {o:?}"));
        }
        Ok(g)
    }

    /// `guest-sync`: drop whatever is queued and agree on an id, retried
    /// until the agent answers. Each try has a new id, and only the answer
    /// to the last one counts: the agent answers in order, so no stale
    /// answer is left to be taken for the next command's.
    fn sync(&mut self, deadline: Instant) -> Result<(), String> {
        self.agent
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut id = u64::from(std::process::id()) * 1_000_000;
        loop {
            if Instant::now() > deadline {
                return Err("the guest agent never answered".into());
            }
            id += 1;
            let cmd = json!({"execute": "guest-sync", "arguments": {"id": id}});
            if self.send(&cmd).is_err() {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            loop {
                match self.read() {
                    Ok(v) if v["return"] == json!(id) => {
                        // A guest that stops answering is an error, not
                        // a test that hangs: no agent call takes this long.
                        self.agent
                            .get_ref()
                            .set_read_timeout(Some(Duration::from_secs(120)))
                            .map_err(|e| e.to_string())?;
                        return Ok(());
                    }
                    // An answer to an earlier try.
                    Ok(_) => continue,
                    Err(_) => break,
                }
            }
        }
    }

    fn send(&mut self, cmd: &Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(cmd)?;
        line.push(b'\n');
        self.agent.get_mut().write_all(&line)
    }

    fn read(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        let n =
            self.agent.read_line(&mut line).map_err(|e| {
                match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                "the guest agent did not answer in time (a hung or crashed guest: see the console)"
                    .to_string()
            }
            _ => e.to_string(),
        }
            })?;
        if n == 0 {
            return Err("the agent closed its port".into());
        }
        serde_json::from_str(line.trim_start_matches('\u{ff}')).map_err(|e| format!("{e}: {line}"))
    }

    fn call(&mut self, cmd: Value) -> Result<Value, String> {
        self.send(&cmd).map_err(|e| e.to_string())?;
        let v = self.read()?;
        if let Some(e) = v.get("error") {
            return Err(format!("{}: {e}", cmd["execute"]));
        }
        Ok(v["return"].clone())
    }

    /// Run `script` with `/bin/sh -c` in the guest, as root; its output
    /// once it has exited (or an error after `timeout`).
    pub fn exec(&mut self, script: &str, timeout: Duration) -> Result<GuestOutput, String> {
        let r = self.call(json!({"execute": "guest-exec", "arguments": {
            "path": "/bin/sh", "arg": ["-c", script], "capture-output": true,
        }}))?;
        let pid = r["pid"].as_i64().ok_or("guest-exec gave no pid")?;
        let deadline = Instant::now() + timeout;
        let mut wait = Duration::from_millis(5);
        loop {
            let st =
                self.call(json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}))?;
            if st["exited"] == json!(true) {
                let text = |k: &str| {
                    st[k]
                        .as_str()
                        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default()
                };
                return Ok(GuestOutput {
                    code: st["exitcode"]
                        .as_i64()
                        .unwrap_or_else(|| 128 + st["signal"].as_i64().unwrap_or(0)),
                    stdout: text("out-data"),
                    stderr: text("err-data"),
                });
            }
            if Instant::now() > deadline {
                let _ = self.exec_quiet(&format!("kill -9 {pid}"));
                return Err(format!("{script:?} still running after {timeout:?}"));
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(200));
        }
    }

    fn exec_quiet(&mut self, script: &str) -> Result<(), String> {
        self.call(json!({"execute": "guest-exec", "arguments": {"path": "/bin/sh", "arg": ["-c", script]}}))
            .map(drop)
    }

    /// The guest's console so far (the kernel's and systemd's messages).
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}
