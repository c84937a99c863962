//! Users the tests create (and remove), to run capsa rootless as them.

use crate::{bin_dir, wait_for, Env};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A user of the test's own, with a home under the test's directory and
/// copies of capsa and its monitor it may run. Removed on drop, with
/// every process it still has.
pub struct User {
    pub name: String,
    pub uid: u32,
    pub home: PathBuf,
    bin: PathBuf,
    /// A cgroup v2 directory each command is started in (a leaf of the
    /// user's delegated subtree), if any.
    pub cgroup: Option<PathBuf>,
    /// `loginctl enable-linger` was asked for: undone on drop.
    pub linger: bool,
    /// Extra environment for every command (`KEY=VALUE`).
    pub env: Vec<String>,
}

impl User {
    pub fn create(env: &Env, tag: &str, subids: bool) -> User {
        // Users and the binaries live under the test's directory, which
        // they must be able to cross.
        std::fs::set_permissions(&env.dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        let name = format!("cr{tag}{}", std::process::id());
        let home = env.dir.join(format!("home-{tag}"));
        // useradd takes a lock on /etc/passwd that a parallel test may hold.
        let mut last = String::new();
        let made = wait_for(30, || {
            let o = Command::new("useradd")
                .args(["--create-home", "--shell", "/bin/sh", "--home-dir"])
                .arg(&home)
                .arg(&name)
                .output()
                .expect("useradd (passwd) is installed");
            last = String::from_utf8_lossy(&o.stderr).into_owned();
            o.status.success()
        });
        assert!(made, "useradd {name}: {last}");
        let uid = nix::unistd::User::from_name(&name)
            .unwrap()
            .expect("the user just made")
            .uid
            .as_raw();
        let user = User {
            name: name.clone(),
            uid,
            bin: env.dir.join(format!("bin-{tag}")),
            home,
            cgroup: None,
            linger: false,
            env: Vec::new(),
        };
        strip_subids(&name);
        if subids {
            // A range of the test's own, far from others: 65536 ids from
            // a base the uid picks.
            let base = 3_000_000 + (uid % 1000) * 70_000;
            for f in ["/etc/subuid", "/etc/subgid"] {
                let mut text = std::fs::read_to_string(f).unwrap_or_default();
                text.push_str(&format!("{name}:{base}:65536\n"));
                std::fs::write(f, text).unwrap();
            }
        }
        std::fs::create_dir_all(&user.bin).unwrap();
        for b in ["capsa", "capsa-monitor"] {
            let dst = user.bin.join(b);
            std::fs::copy(bin_dir().join(b), &dst).unwrap();
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&user.bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let run = user.home.join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        nix::unistd::chown(&run, Some(uid.into()), None).unwrap();
        user
    }

    /// capsa as this user: no PAM session (setpriv), a clean environment
    /// with its home and runtime directory, in `cgroup` when one is set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(r#"[ -z "$CG" ] || echo $$ > "$CG/cgroup.procs" || exit 99; exec "$@""#)
            .arg("sh")
            .env("CG", self.cgroup.clone().unwrap_or_default())
            .arg("setpriv")
            .args([
                "--reuid",
                &self.uid.to_string(),
                "--regid",
                &self.uid.to_string(),
            ])
            .args(["--init-groups", "--", "env", "-i"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!(
                "XDG_RUNTIME_DIR={}",
                self.home.join("run").display()
            ))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .args(&self.env)
            .arg(self.bin.join("capsa"))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("setpriv (util-linux)")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        crate::succeeded(&format!("{} capsa {args:?}", self.name), &self.run(args))
    }

    pub fn fails(&self, args: &[&str]) -> String {
        crate::failed(&format!("{} capsa {args:?}", self.name), &self.run(args))
    }

    /// The user's processes, by name.
    pub fn processes(&self) -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path();
                p.file_name()?.to_str()?.parse::<u32>().ok()?;
                let m = std::fs::metadata(&p).ok()?;
                let comm = std::fs::read_to_string(p.join("comm")).ok()?;
                let status = std::fs::read_to_string(p.join("status")).ok()?;
                // Zombies hold nothing.
                let zombie = status.lines().any(|l| l.starts_with("State:\tZ"));
                (m.uid() == self.uid && !zombie).then(|| comm.trim().to_string())
            })
            .collect()
    }
}

/// Remove `name`'s lines from /etc/subuid and /etc/subgid (older shadow
/// versions keep them after userdel).
pub fn strip_subids(name: &str) {
    for f in ["/etc/subuid", "/etc/subgid"] {
        if let Ok(text) = std::fs::read_to_string(f) {
            let kept: String = text
                .lines()
                .filter(|l| !l.starts_with(&format!("{name}:")))
                .map(|l| format!("{l}\n"))
                .collect();
            let _ = std::fs::write(f, kept);
        }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        if let Ok(o) = self.cmd(&["ps", "-aq"]).output() {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = self.run(&["rm", "-f", id]);
            }
        }
        // The pause process (and with it the user's namespace and every
        // overlay mounted there), and anything else of the user's.
        let _ = wait_for(10, || {
            let _ = Command::new("pkill")
                .args(["-KILL", "-U", &self.uid.to_string()])
                .output();
            self.processes().is_empty()
        });
        if self.linger {
            let _ = Command::new("loginctl")
                .args(["disable-linger", &self.name])
                .output();
            let _ = Command::new("loginctl")
                .args(["terminate-user", &self.name])
                .output();
            let _ = wait_for(10, || self.processes().is_empty());
        }
        let _ = Command::new("userdel").arg(&self.name).output();
        strip_subids(&self.name);
    }
}
