//! Rootless: an unprivileged user runs a container from the spec that
//! `spec --rootless` writes (a user namespace mapping them to root, no
//! cgroups unless delegated).

use capsa_tests::*;
use serde_json::Value;
use std::process::{Command, Output, Stdio};

const UID: &str = "1000";

/// capsa-runtime as uid/gid 1000, with its state under the test's dir.
fn as_user(env: &Env, state: &std::path::Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid", UID, "--regid", UID, "--clear-groups"])
        .arg(&env.runtime)
        .arg("--root")
        .arg(state)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("setpriv (util-linux) runs capsa-runtime as another user")
}

fn chown_user(p: &std::path::Path) {
    nix::unistd::chown(p, Some(1000.into()), Some(1000.into())).unwrap();
}

#[test]
fn an_unprivileged_user_runs_the_rootless_spec() {
    let env = Env::new("rootless");
    let b = env.bundle("b");
    std::fs::remove_file(b.dir.join("config.json")).unwrap();
    chown_user(&b.dir);
    let state = env.dir.join("user-state");
    std::fs::create_dir(&state).unwrap();
    chown_user(&state);

    // runc's rootless default runs as it is (no seccomp profile in it)...
    let plain = env.bundle("plain");
    std::fs::remove_file(plain.dir.join("config.json")).unwrap();
    chown_user(&plain.dir);
    let o = as_user(&env, &state, &["spec", "--rootless", "-b", plain.path()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pcfg = plain.dir.join("config.json");
    let mut pv: Value = serde_json::from_slice(&std::fs::read(&pcfg).unwrap()).unwrap();
    pv["process"]["terminal"] = Value::Bool(false);
    pv["process"]["args"] = serde_json::json!(["sh", "-c", "grep Seccomp: /proc/self/status"]);
    std::fs::write(&pcfg, pv.to_string()).unwrap();
    let o = as_user(&env, &state, &["run", "-b", plain.path(), "rl-plain"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Seccomp:\t0"));
    // ...and capsa's hardened one, with its seccomp profile.
    let o = as_user(
        &env,
        &state,
        &["spec", "--rootless", "--hardened", "-b", b.path()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = b.dir.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    assert_eq!(v["linux"]["uidMappings"][0]["hostID"], 1000);
    v["process"]["terminal"] = Value::Bool(false);
    v["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; grep Seccomp: /proc/self/status; exit 6"
    ]);
    std::fs::write(&cfg, v.to_string()).unwrap();

    let o = as_user(&env, &state, &["run", "-b", b.path(), "rl"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], vec!["0"], "{out}");
    assert_eq!(lines[1], vec!["0", "1000", "1"], "{out}");
    assert_eq!(lines[2], vec!["Seccomp:", "2"], "{out}");
    assert!(!state.join("rl").exists(), "state left after run");

    // Limits need a delegated cgroup: refused, clearly, leaving nothing.
    v["linux"]["resources"] = serde_json::json!({ "memory": { "limit": 67108864 } });
    std::fs::write(&cfg, v.to_string()).unwrap();
    let o = as_user(&env, &state, &["create", "-b", b.path(), "rl2"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("rootless") && e.contains("not delegated"), "{e}");
    assert!(
        !state.join("rl2").exists(),
        "state left after a refused create"
    );
}

/// A user the test creates (with its /etc/subuid and /etc/subgid range),
/// removed on drop.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    sub: (u32, u32),
}

impl TestUser {
    fn create() -> TestUser {
        let name = format!("crl{}", std::process::id());
        let o = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/false", &name])
            .output()
            .expect("useradd");
        assert!(
            o.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let id = |flag: &str| -> u32 {
            String::from_utf8_lossy(
                &Command::new("id")
                    .args([flag, &name])
                    .output()
                    .unwrap()
                    .stdout,
            )
            .trim()
            .parse()
            .unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let range = |file: &str| -> (u32, u32) {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name}:")))
                .unwrap_or_else(|| panic!("useradd gave {name} no range in {file}"));
            let f: Vec<&str> = line.split(':').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        };
        let sub = range("/etc/subuid");
        assert_eq!(
            range("/etc/subgid").0,
            sub.0,
            "subuid and subgid ranges differ"
        );
        TestUser {
            name,
            uid,
            gid,
            sub,
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
        capsa_tests::users::strip_subids(&self.name);
    }
}

/// A user created by the test maps a whole range (its own uid as root,
/// then its /etc/subuid range) through newuidmap/newgidmap.
#[test]
fn a_created_user_maps_its_subuid_range_through_newuidmap() {
    let env = Env::new("rootlesssub");
    let user = TestUser::create();
    let b = env.bundle("b");
    let state = env.dir.join("user-state");
    std::fs::create_dir(&state).unwrap();
    nix::unistd::chown(&state, Some(user.uid.into()), Some(user.gid.into())).unwrap();
    let mut v =
        serde_json::to_value(capsa_spec::defaults::hardened(Some((user.uid, user.gid))).unwrap())
            .unwrap();
    v["process"]["terminal"] = Value::Bool(false);
    v["linux"]["uidMappings"] = serde_json::json!([{ "containerID": 0, "hostID": user.uid, "size": 1 }, { "containerID": 1, "hostID": user.sub.0, "size": user.sub.1 }]);
    v["linux"]["gidMappings"] = serde_json::json!([{ "containerID": 0, "hostID": user.gid, "size": 1 }, { "containerID": 1, "hostID": user.sub.0, "size": user.sub.1 }]);
    v["process"]["args"] = serde_json::json!(["cat", "/proc/self/uid_map"]);
    std::fs::write(b.dir.join("config.json"), v.to_string()).unwrap();
    let o = Command::new("setpriv")
        .args([
            "--reuid",
            &user.uid.to_string(),
            "--regid",
            &user.gid.to_string(),
            "--clear-groups",
        ])
        .arg(&env.runtime)
        .arg("--root")
        .arg(&state)
        .args(["run", "-b", b.path(), "sub"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let maps: Vec<Vec<String>> = out
        .lines()
        .take(2)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(maps.len(), 2, "stdout {out}\nstderr {}", stderr(&o));
    assert_eq!(
        maps[0],
        vec!["0".to_string(), user.uid.to_string(), "1".into()]
    );
    assert_eq!(
        maps[1],
        vec![
            "1".to_string(),
            user.sub.0.to_string(),
            user.sub.1.to_string()
        ]
    );
    assert!(!state.join("sub").exists());
}

/// CVE-2023-25809: a rootless container without a cgroup namespace sees
/// the host's cgroupfs through its `/sys` bind. It stays read-only all the
/// way down, even in a cgroup the user owns (as a delegation gives).
#[test]
fn rootless_without_cgroupns_cannot_write_the_host_cgroupfs() {
    let env = Env::new("rootless-cgfs");
    let base = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(std::path::Path::new)
        .find(|p| p.join("cgroup.procs").exists())
        .expect("a cgroup2 mount");
    let mine = base.join(&env.cgroup_parent);
    std::fs::create_dir(&mine).unwrap();
    chown_user(&mine);
    let b = env.bundle("b");
    let state = env.dir.join("user-state");
    std::fs::create_dir(&state).unwrap();
    chown_user(&state);
    let mut v =
        serde_json::to_value(capsa_spec::defaults::hardened(Some((1000, 1000))).unwrap()).unwrap();
    v["process"]["terminal"] = Value::Bool(false);
    let ns: Vec<Value> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "cgroup")
        .cloned()
        .collect();
    v["linux"]["namespaces"] = Value::Array(ns);
    let mounts: Vec<Value> = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"] != "/sys/fs/cgroup")
        .cloned()
        .collect();
    v["mounts"] = Value::Array(mounts);
    let target = mine.join("x");
    v["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        format!("mkdir {} 2>&1; echo done", target.display())
    ]);
    std::fs::write(b.dir.join("config.json"), v.to_string()).unwrap();
    let o = as_user(&env, &state, &["run", "-b", b.path(), "cgfs"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("done"), "{out} {}", stderr(&o));
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!target.exists(), "the container made a host cgroup");
}
