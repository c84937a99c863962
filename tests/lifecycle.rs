//! The container lifecycle through the command line, as containerd drives
//! runc: create, state, start, kill, delete; run; list; ps; spec; features.

use capsa_tests::*;
use serde_json::{json, Value};
use std::process::Command;

#[test]
fn run_returns_the_container_exit_code() {
    let env = Env::new("exitcode");
    let mut b = env.bundle("b");
    b.args(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(7), "stderr: {}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert!(stderr(&o).contains("err"));
    env.assert_gone(&id);
}

#[test]
fn run_forwards_signals_and_reports_death_by_signal_as_128_plus_signal() {
    let env = Env::new("signaled");
    let mut b = env.bundle("b");
    b.args(&[
        "sh",
        "-c",
        "trap 'exit 42' TERM; touch /tmp/ready; while true; do sleep 0.05; done",
    ]);
    let id = env.id("c");
    let mut child = env
        .cmd(&["run", "-b", b.path(), &id])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(10, || b.rootfs().join("tmp/ready").exists()),
        "container never got ready"
    );
    // SIGTERM to `run` reaches the container's init, whose trap answers.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(42));
    env.assert_gone(&id);

    // Killed from outside: 128 + 9.
    let id2 = env.id("c2");
    std::fs::remove_file(b.rootfs().join("tmp/ready")).unwrap();
    let mut child = env
        .cmd(&["run", "-b", b.path(), &id2])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(10, || b.rootfs().join("tmp/ready").exists()));
    env.rt_ok(&["kill", &id2, "KILL"]);
    assert_eq!(child.wait().unwrap().code(), Some(137));
}

#[test]
fn create_start_kill_delete_walks_every_status() {
    let env = Env::new("lifecycle");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    let pidfile = env.dir.join("pid");
    env.rt_ok(&[
        "create",
        "-b",
        b.path(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    let st = env.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    assert_eq!(st["bundle"], b.path());

    // The init is in the cgroup the spec named.
    let procs = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/pids/{}/b/cgroup.procs",
        env.cgroup_parent
    ))
    .unwrap();
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");

    env.rt_ok(&["start", &id]);
    assert_eq!(env.state(&id)["status"], "running");
    // The process becomes sleep, not the runtime (start returns once the
    // init has written the FIFO; its execve follows).
    let comm = || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert!(wait_for(5, || comm().trim() == "sleep"), "{}", comm());

    env.rt_ok(&["kill", &id, "KILL"]);
    assert!(
        wait_for(5, || env.state(&id)["status"] == "stopped"),
        "never stopped"
    );
    assert_eq!(env.state(&id)["pid"], 0);
    env.rt_ok(&["delete", &id]);
    let o = env.rt(&["state", &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    env.assert_gone(&id);
}

#[test]
fn delete_of_a_created_container_kills_its_init() {
    let env = Env::new("delcreated");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["create", "-b", b.path(), &id]);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    env.rt_ok(&["delete", &id]);
    assert!(wait_for(2, || !std::path::Path::new(&format!(
        "/proc/{pid}"
    ))
    .exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true)));
    env.assert_gone(&id);
}

#[test]
fn delete_force_kills_a_running_container() {
    let env = Env::new("delforce");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    assert_eq!(env.state(&id)["status"], "running");
    env.rt_ok(&["delete", "--force", &id]);
    env.assert_gone(&id);
    // Deleting what is gone is fine with --force, an error without.
    env.rt_ok(&["delete", "--force", &id]);
    assert_eq!(env.rt(&["delete", &id]).status.code(), Some(1));
}

#[test]
fn kill_accepts_names_and_numbers_and_all() {
    let env = Env::new("kill");
    let mut b = env.bundle("b");
    // A shell that traps TERM and reports it, with a child of its own.
    b.args(&["sh", "-c", "trap 'echo got-term > /tmp/term; exit 0' TERM; touch /tmp/trapped; sleep 100 & while true; do sleep 0.05; done"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    // As pid 1 the shell ignores a TERM that comes before its trap.
    assert!(wait_for(5, || b.rootfs().join("tmp/trapped").exists()));
    env.rt_ok(&["kill", &id, "SIGTERM"]);
    assert!(wait_for(5, || env.state(&id)["status"] == "stopped"));
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("tmp/term"))
            .unwrap()
            .trim(),
        "got-term"
    );
    env.rt_ok(&["delete", &id]);

    let id2 = env.id("c2");
    let mut b2 = env.bundle("b2");
    b2.args(&["sh", "-c", "sleep 100 & sleep 100"]);
    env.rt_ok(&["run", "-d", "-b", b2.path(), &id2]);
    assert!(wait_for(5, || serde_json::from_str::<Vec<i32>>(
        &env.rt_ok(&["ps", "--format", "json", &id2])
    )
    .unwrap()
    .len()
        >= 2));
    env.rt_ok(&["kill", "--all", &id2, "9"]);
    assert!(wait_for(5, || env.state(&id2)["status"] == "stopped"));
    let o = env.rt(&["kill", &id2, "KILL"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not running"), "{}", stderr(&o));
    // As runc: `kill --all` of a stopped container with nothing left in its
    // cgroup is done, not an error; signal 0 only checks.
    env.rt_ok(&["kill", "--all", &id2, "0"]);
    let o = env.rt(&["kill", &id2, "0"]);
    assert_eq!(o.status.code(), Some(1), "signal 0 to a stopped container");
    let o = env.rt(&["kill", &id2, "NOSUCHSIG"]);
    assert!(stderr(&o).contains("unknown signal"), "{}", stderr(&o));
    let o = env.rt(&["kill", "", "KILL"]);
    assert!(!o.status.success(), "an empty id was accepted");
}

#[test]
fn signal_zero_checks_a_running_container() {
    let env = Env::new("kill0");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    env.rt_ok(&["kill", &id, "0"]);
    assert_eq!(env.state(&id)["status"], "running");
    env.rt_ok(&["delete", "-f", &id]);
    let o = env.rt(&["kill", &id, "0"]);
    assert!(!o.status.success(), "signal 0 to a missing container");
    env.assert_gone(&id);
}

#[test]
fn version_is_runcs_three_lines() {
    let o = Command::new(runtime_bin()).arg("-v").output().unwrap();
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("capsa-runtime version 0."), "{out}");
    assert!(
        lines[1].starts_with("commit: ") && lines[1].len() > 8,
        "{out}"
    );
    assert_eq!(lines[2], "spec: 1.2.0", "{out}");
    let long = Command::new(runtime_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(long.stdout, o.stdout);
}

#[test]
fn list_shows_containers_as_table_json_and_ids() {
    let env = Env::new("list");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["create", "-b", b.path(), &id]);
    let json: Value = serde_json::from_str(&env.rt_ok(&["list", "--format", "json"])).unwrap();
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), 1);
    assert_eq!(arr[0]["id"], id.as_str());
    assert_eq!(arr[0]["status"], "created");
    let table = env.rt_ok(&["list"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("ID"));
    let row = lines.next().unwrap();
    assert!(row.starts_with(&id) && row.contains("created"), "{row}");
    assert_eq!(env.rt_ok(&["list", "-q"]).trim(), id);
    // runc's fields in runc's order: engines and runc's tests read it as
    // text.
    let text = env.rt_ok(&["list", "--format", "json"]);
    let keys: Vec<&str> = text
        .split('"')
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[1].starts_with(':'))
        .map(|w| w[0])
        .collect();
    assert_eq!(
        keys,
        [
            "ociVersion",
            "id",
            "pid",
            "status",
            "bundle",
            "rootfs",
            "created",
            "owner"
        ],
        "{text}"
    );
    assert!(text.contains("\"owner\":\"root\""), "{text}");
    let state = env.rt_ok(&["state", &id]);
    let first: Vec<&str> = state.lines().skip(1).take(4).map(str::trim).collect();
    assert!(first[0].starts_with("\"ociVersion\""), "{state}");
    assert!(first[1].starts_with("\"id\""), "{state}");
    assert!(first[2].starts_with("\"pid\""), "{state}");
    assert!(first[3].starts_with("\"status\""), "{state}");
}

#[test]
fn ps_lists_the_container_processes() {
    let env = Env::new("ps");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let pid = env.state(&id)["pid"].as_i64().unwrap() as i32;
    let pids: Vec<i32> =
        serde_json::from_str(&env.rt_ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids, vec![pid]);
    let table = env.rt_ok(&["ps", &id]);
    assert!(table.lines().next().unwrap().contains("PID"));
    assert!(
        table.lines().skip(1).any(|l| l.contains("sleep 100")),
        "{table}"
    );
}

#[test]
fn spec_writes_a_default_config_once() {
    let env = Env::new("spec");
    let d = env.dir.join("bundle");
    std::fs::create_dir_all(&d).unwrap();
    env.rt_ok(&["spec", "--bundle", d.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&std::fs::read(d.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["args"][0], "sh");
    assert_eq!(v["root"]["path"], "rootfs");
    // runc's default: its three capabilities, no seccomp, and on this
    // (not pure v2) host no cgroup namespace, so that a spec edited as
    // runc's users edit it (adding one) is not refused as "given twice".
    assert_eq!(
        v["process"]["capabilities"]["bounding"],
        json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    );
    assert!(v["linux"].get("seccomp").is_none(), "{v}");
    let types: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["pid", "network", "ipc", "uts", "mount"]);
    // capsa's hardened default behind a flag.
    let h = env.dir.join("hardened");
    std::fs::create_dir_all(&h).unwrap();
    env.rt_ok(&["spec", "--hardened", "-b", h.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&std::fs::read(h.join("config.json")).unwrap()).unwrap();
    assert!(v["linux"]["seccomp"].is_object(), "{v}");
    assert!(v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "cgroup"));
    let o = env.rt(&["spec", "--bundle", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
    let r = env.dir.join("rootless");
    std::fs::create_dir_all(&r).unwrap();
    env.rt_ok(&["spec", "--rootless", "-b", r.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&std::fs::read(r.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["linux"]["uidMappings"][0]["containerID"], 0);
}

#[test]
fn spec_then_run_runs_a_busybox_shell_command() {
    let env = Env::new("specrun");
    let b = env.bundle("b");
    std::fs::remove_file(b.dir.join("config.json")).unwrap();
    env.rt_ok(&["spec", "-b", b.path()]);
    // The default spec asks for a terminal, which `run` in the foreground
    // provides itself; the command's exit code comes back through it.
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    v["process"]["args"] =
        serde_json::json!(["sh", "-c", "echo from-busybox; echo line-two; exit 5"]);
    // As runc's users do: add a cgroup namespace to runc's default.
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    v["linux"]["cgroupsPath"] = Value::String(format!("/{}/b", env.cgroup_parent));
    std::fs::write(b.dir.join("config.json"), v.to_string()).unwrap();
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(5), "stderr: {}", stderr(&o));
    // runc's foreground terminal: "\n" as written (ONLCR cleared).
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("from-busybox\nline-two\n"), "{out:?}");
    env.assert_gone(&id);
}

#[test]
fn features_reports_what_the_runtime_supports() {
    let env = Env::new("features");
    let v: Value = serde_json::from_str(&env.rt_ok(&["features"])).unwrap();
    assert_eq!(v["ociVersionMax"], "1.2.0");
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    for n in [
        "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time",
    ] {
        assert!(ns.contains(&n), "{n} missing");
    }
    assert!(v["linux"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "CAP_SYS_ADMIN"));
}

#[test]
fn log_file_gets_errors_in_json_as_containerd_reads_them() {
    let env = Env::new("logjson");
    let log = env.dir.join("log.json");
    let o = env.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "nonexistent-id",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("does not exist"));
}

#[test]
fn debug_log_has_runc_words_for_create_and_exec_and_stays_off_stderr() {
    let env = Env::new("debuglog");
    let log = env.dir.join("debug.json");
    let log = log.to_str().unwrap();
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    let debug = ["--debug", "--log", log, "--log-format", "json"];
    let o = env.rt(&[&debug[..], &["run", "-d", "-b", b.path(), &id]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.rt(&[&debug[..], &["exec", &id, "true"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("debug"), "{}", stderr(&o));
    let msgs: Vec<String> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["level"] == "debug")
        .map(|l| l["msg"].as_str().unwrap().to_string())
        .collect();
    for words in [
        "nsexec container setup",
        "child process in init()",
        "init: closing the pipe to signal completion",
        "setns_init: about to exec",
    ] {
        assert!(
            msgs.iter().any(|m| m.contains(words)),
            "{words:?} not in {msgs:#?}"
        );
    }
}

#[test]
fn systemd_cgroup_without_systemd_is_a_clear_error() {
    let env = Env::new("systemd");
    if std::path::Path::new("/run/systemd/system").exists() {
        return;
    }
    let o = env.rt(&["--systemd-cgroup", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("systemd is not running"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_reused_pid_is_never_taken_for_the_container() {
    let env = Env::new("pidreuse");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    env.rt_ok(&["kill", &id, "KILL"]);
    assert!(wait_for(5, || env.state(&id)["status"] == "stopped"));
    // Another process now holds the recorded pid (here: a sleep of ours,
    // written into the state as if the kernel had recycled the pid).
    let mut other = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    let path = env.root.join(&id).join("state.json");
    let mut st: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    st["pid"] = json!(other.id());
    std::fs::write(&path, st.to_string()).unwrap();
    assert_eq!(env.state(&id)["status"], "stopped");
    assert_eq!(env.state(&id)["pid"], 0);
    let o = env.rt(&["kill", &id, "KILL"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "kill reached a process that is not the container"
    );
    env.rt_ok(&["delete", "--force", &id]);
    assert!(
        other.try_wait().unwrap().is_none(),
        "delete killed a process that is not the container"
    );
    other.kill().unwrap();
    other.wait().unwrap();
    env.assert_gone(&id);
}

/// With the host's pid namespace the init's end does not end the rest:
/// `kill KILL` reaches every process of the container's cgroup (as runc
/// 1.2's), running or after its init is gone, and so does `delete`.
#[test]
fn kill_with_the_host_pid_namespace_leaves_no_process() {
    let env = Env::new("hostpid");
    let no_pidns = |b: &mut Bundle| {
        b.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    };
    let procs = |id: &str| -> Vec<i32> {
        serde_json::from_str(&env.rt_ok(&["ps", "--format", "json", id])).unwrap()
    };
    // Running: the init and two children.
    let mut b = env.bundle("b");
    no_pidns(&mut b);
    b.args(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    assert!(wait_for(5, || procs(&id).len() == 3));
    env.rt_ok(&["kill", &id, "KILL"]);
    assert!(wait_for(5, || procs(&id).is_empty()), "{:?}", procs(&id));
    // The init gone, a child left behind in the cgroup.
    let mut b = env.bundle("b2");
    no_pidns(&mut b);
    b.args(&["sh", "-c", "sleep 1000 & exit 0"]);
    let id2 = env.id("c2");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id2]);
    assert!(wait_for(5, || env.state(&id2)["status"] == "stopped"));
    assert_eq!(procs(&id2).len(), 1);
    env.rt_ok(&["kill", &id2, "KILL"]);
    assert!(wait_for(5, || procs(&id2).is_empty()), "{:?}", procs(&id2));
    // A plain signal still goes to the init alone, and fails once it is gone.
    assert_eq!(env.rt(&["kill", &id2, "TERM"]).status.code(), Some(1));
}
