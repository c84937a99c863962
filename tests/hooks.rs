//! OCI hooks: each stage runs where the spec says, with the state on stdin,
//! and fails as the spec says.

use capsa_tests::*;
use serde_json::{json, Value};

fn hook(cmd: &str) -> Value {
    json!({ "path": "/bin/sh", "args": ["sh", "-c", cmd], "env": ["PATH=/bin:/usr/bin"] })
}

#[test]
fn every_stage_runs_in_order_with_the_state_on_stdin() {
    let env = Env::new("hooks");
    let mut b = env.bundle("b");
    let d = env.dir.display().to_string();
    b.config["hooks"] = json!({
        "prestart": [hook(&format!("cat > {d}/prestart.json"))],
        "createRuntime": [hook(&format!("cat > {d}/createRuntime.json; readlink /proc/self/ns/uts > {d}/createRuntime.uts"))],
        "createContainer": [hook(&format!("cat > {d}/createContainer.json; readlink /proc/self/ns/uts > {d}/createContainer.uts"))],
        "startContainer": [hook("cat > /tmp/startContainer.json")],
        "poststart": [hook(&format!("cat > {d}/poststart.json"))],
        "poststop": [hook(&format!("cat > {d}/poststop.json"))]
    });
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["create", "-b", b.path(), &id]);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let read = |f: &str| -> Value {
        serde_json::from_slice(
            &std::fs::read(env.dir.join(f)).unwrap_or_else(|_| panic!("{f} not written")),
        )
        .unwrap()
    };
    for f in [
        "prestart.json",
        "createRuntime.json",
        "createContainer.json",
    ] {
        let s = read(f);
        assert_eq!(s["id"], id.as_str(), "{f}");
        assert_eq!(s["pid"], pid, "{f}");
        assert_eq!(s["bundle"], b.path(), "{f}");
    }
    assert_eq!(read("prestart.json")["status"], "creating");
    // createRuntime runs in the runtime's namespaces, createContainer in
    // the container's.
    let host_uts = std::fs::read_link("/proc/self/ns/uts")
        .unwrap()
        .display()
        .to_string();
    let init_uts = std::fs::read_link(format!("/proc/{pid}/ns/uts"))
        .unwrap()
        .display()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(env.dir.join("createRuntime.uts"))
            .unwrap()
            .trim(),
        host_uts
    );
    assert_eq!(
        std::fs::read_to_string(env.dir.join("createContainer.uts"))
            .unwrap()
            .trim(),
        init_uts
    );
    assert!(!env.dir.join("poststart.json").exists());

    env.rt_ok(&["start", &id]);
    assert!(
        wait_for(5, || b.rootfs().join("tmp/startContainer.json").exists()),
        "startContainer did not run inside the container"
    );
    assert_eq!(read("poststart.json")["status"], "running");
    env.rt_ok(&["delete", "--force", &id]);
    assert_eq!(read("poststop.json")["status"], "stopped");
    env.assert_gone(&id);
}

#[test]
fn a_failing_prestart_hook_fails_create_and_leaves_nothing() {
    let env = Env::new("hookfail");
    let mut b = env.bundle("b");
    b.config["hooks"] = json!({ "prestart": [hook("echo nope >&2; exit 3")] });
    b.args(&["true"]);
    let id = env.id("c");
    let o = env.rt(&["create", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("prestart[0]") && e.contains("nope"), "{e}");
    env.assert_gone(&id);
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_fails() {
    let env = Env::new("hooktimeout");
    let mut b = env.bundle("b");
    let mut h = hook("sleep 30");
    h["timeout"] = json!(1);
    b.config["hooks"] = json!({ "createRuntime": [h] });
    b.args(&["true"]);
    let id = env.id("c");
    let t = std::time::Instant::now();
    let o = env.rt(&["create", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    assert!(stderr(&o).contains("timed out"), "{}", stderr(&o));
    env.assert_gone(&id);
}

#[test]
fn a_failing_poststart_hook_is_a_warning_and_a_failing_poststop_fails_delete() {
    let env = Env::new("hookwarn");
    let mut b = env.bundle("b");
    b.config["hooks"] = json!({ "poststart": [hook("exit 1")], "poststop": [hook("exit 1")] });
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["create", "-b", b.path(), &id]);
    let o = env.rt(&["start", &id]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("poststart hook"), "{}", stderr(&o));
    assert_eq!(env.state(&id)["status"], "running");
    // runc's delete fails then, with the container gone all the same.
    let o = env.rt(&["delete", "-f", &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("poststop hook"), "{}", stderr(&o));
    env.assert_gone(&id);
}

/// A startContainer hook's path resolves inside the container, so the
/// image may provide it: it runs as the container's process would (the
/// spec's user and capabilities, no_new_privs), never with the runtime's
/// privileges. Without that it ran as uid 0 with every capability.
#[test]
fn a_start_container_hook_runs_with_the_containers_privileges() {
    let env = Env::new("hookpriv");
    let mut b = env.bundle("b");
    b.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    b.config["hooks"] = json!({
        "startContainer": [hook("id -u > /tmp/hook.out; grep -E 'Cap(Eff|Prm)|NoNewPrivs' /proc/self/status >> /tmp/hook.out")]
    });
    std::fs::set_permissions(
        b.rootfs().join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    b.args(&["true"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-b", b.path(), &id]);
    let out = std::fs::read_to_string(b.rootfs().join("tmp/hook.out")).unwrap();
    assert!(out.starts_with("1000\n"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("CapPrm:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
}

/// createContainer hooks are host programs run inside the container's
/// namespaces: they run from a sealed image of their binary, checked on the
/// running hook from the host (it waits on a FIFO the test opens).
#[test]
fn create_container_hooks_run_sealed() {
    use std::os::fd::AsRawFd;
    let env = Env::new("hooksealed");
    let mut b = env.bundle("b");
    let go = env.fifo("go");
    let marker = format!("hook-{}", env.cgroup_parent);
    b.config["hooks"] = json!({
        "createContainer": [{ "path": "/bin/sh",
            "args": ["sh", "-c", format!("read x < {}", go.display()), &marker] }]
    });
    b.args(&["true"]);
    let id = env.id("c");
    let mut create = env.spawn_rt(&["create", "-b", b.path(), &id]);
    let find = || {
        std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            cmd.split(|c| *c == 0)
                .any(|a| a == marker.as_bytes())
                .then(|| e.path())
        })
    };
    assert!(wait_for(10, || find().is_some()), "the hook never ran");
    let exe = std::fs::File::open(find().unwrap().join("exe")).unwrap();
    let sealed = capsa_sys::exe::is_sealed(exe.as_raw_fd());
    // Release the hook whatever the verdict, so that create ends.
    std::fs::write(&go, "go\n").unwrap();
    assert!(create.wait().unwrap().success());
    assert!(sealed, "the createContainer hook runs the host's own file");
}

/// A hook that writes more than a pipe holds (1 MiB on stdout and
/// stderr) runs to its end: its output is drained while it runs. Before,
/// it waited on us forever (and with no timeout, so did create).
#[test]
fn a_hook_writing_a_megabyte_does_not_hang_create() {
    let env = Env::new("hookbig");
    let mut b = env.bundle("b");
    b.config["hooks"] = json!({
        "prestart": [hook("head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2; cat > /dev/null")],
        "createRuntime": [hook("head -c 1048576 /dev/zero | tr '\\\\0' x; echo failing-at-the-end >&2; exit 4")]
    });
    b.args(&["true"]);
    let id = env.id("c");
    let errf = env.dir.join("create.err");
    let mut child = env
        .cmd(&["create", "-b", b.path(), &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&errf).unwrap())
        .spawn()
        .unwrap();
    let mut done = None;
    let ended = wait_for(30, || {
        done = child.try_wait().unwrap();
        done.is_some()
    });
    if !ended {
        // Its hooks die with it (their pipes close); nothing is left.
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(ended, "create hung on a hook's output");
    let err = std::fs::read_to_string(&errf).unwrap();
    assert_eq!(done.unwrap().code(), Some(1), "{err}");
    assert!(err.contains("createRuntime[0]"), "{err}");
    env.assert_gone(&id);
}

/// A startContainer hook runs under the container's seccomp filter (as
/// runc runs it): a call the profile kills kills the hook, and the start
/// fails in runc's words.
#[test]
fn a_start_container_hook_runs_under_the_seccomp_filter() {
    let env = Env::new("hookseccomp");
    let mut b = env.bundle("b");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL" }]
    });
    b.config["hooks"] = json!({ "startContainer": [hook("mkdir /tmp/by-hook")] });
    b.args(&["true"]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    assert_ne!(o.status.code(), Some(0));
    let e = stderr(&o);
    assert!(
        e.contains("error running hook") && e.contains("bad system call"),
        "{e}"
    );
    assert!(!b.rootfs().join("tmp/by-hook").exists());
}

/// SCMP_ACT_NOTIFY without an agent listening fails the create clearly
/// (runc's words), and leaves nothing behind.
#[test]
fn seccomp_notify_without_an_agent_fails_clearly() {
    let env = Env::new("noagent");
    let mut b = env.bundle("b");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": env.dir.join("no-agent.sock"),
        "syscalls": [{ "names": ["mkdir"], "action": "SCMP_ACT_NOTIFY" }]
    });
    b.args(&["true"]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("failed to connect with seccomp agent"),
        "{}",
        stderr(&o)
    );
    env.assert_gone(&id);
}
