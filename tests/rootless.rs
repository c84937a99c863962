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

    let o = as_user(&env, &state, &["spec", "--rootless", "-b", b.path()]);
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
