//! `exec`: a new process that joins every namespace and the cgroup of a
//! running container.

use capsa_tests::*;
use serde_json::json;

fn running(env: &Env, name: &str) -> (String, capsa_tests::Bundle) {
    let mut b = env.bundle(name);
    b.config["hostname"] = json!("exec-host");
    b.args(&["sleep", "100"]);
    let id = env.id(name);
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    (id, b)
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup_of_the_container() {
    let env = Env::new("exec");
    let (id, _b) = running(&env, "c");
    let init = env.state(&id)["pid"].as_i64().unwrap().to_string();
    let o = env.rt(&["exec", &id, "/probe"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = probe_output(&o);
    for ns in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        assert_eq!(
            p["namespaces"][ns].as_u64().unwrap(),
            ns_inode(&init, ns),
            "{ns}"
        );
    }
    assert_eq!(p["hostname"], "exec-host");
    assert!(p["pid"].as_u64().unwrap() > 1);
    // Same cgroup as the init, seen from inside the cgroup namespace.
    assert!(
        p["cgroup"]
            .as_str()
            .unwrap()
            .lines()
            .all(|l| l.ends_with(":/")),
        "{}",
        p["cgroup"]
    );
    // The container's process defaults apply (the default spec's caps).
    assert_eq!(p["caps"]["CapBnd"], "00000000a80425fb");
    let fds: Vec<String> = p["fds"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(fds.len(), 4, "{}", p["fds"]);
}

#[test]
fn exec_returns_the_process_exit_code_and_output() {
    let env = Env::new("execcode");
    let (id, _b) = running(&env, "c");
    let o = env.rt(&["exec", &id, "sh", "-c", "echo hi; exit 9"]);
    assert_eq!(o.status.code(), Some(9));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n");
}

#[test]
fn exec_flags_set_env_cwd_and_user() {
    let env = Env::new("execflags");
    let (id, _b) = running(&env, "c");
    let o = env.rt(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        "-g",
        "4242",
        &id,
        "/probe",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = probe_output(&o);
    assert_eq!(p["uid"], 1000);
    assert_eq!(p["gid"], 1000);
    assert_eq!(p["groups"], "4242");
    assert_eq!(p["cwd"], "/tmp");
    assert!(p["env"].as_array().unwrap().iter().any(|e| e == "FOO=bar"));
}

#[test]
fn exec_with_a_process_file_and_detach_writes_the_pid_file() {
    let env = Env::new("execproc");
    let (id, b) = running(&env, "c");
    let proc_json = json!({
        "terminal": false,
        "user": { "uid": 0, "gid": 0 },
        "args": ["sh", "-c", "echo $MARK > /tmp/mark; sleep 100"],
        "env": ["PATH=/bin", "MARK=from-process-json"],
        "cwd": "/"
    });
    let f = env.dir.join("process.json");
    std::fs::write(&f, proc_json.to_string()).unwrap();
    let pidfile = env.dir.join("exec.pid");
    env.rt_ok(&[
        "exec",
        "--process",
        f.to_str().unwrap(),
        "--detach",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    assert!(wait_for(5, || std::fs::read_to_string(
        b.rootfs().join("tmp/mark")
    )
    .map(|s| s.trim() == "from-process-json")
    .unwrap_or(false)));
    let pids: Vec<i32> =
        serde_json::from_str(&env.rt_ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(pids.contains(&pid), "{pids:?} lacks {pid}");
}

#[test]
fn exec_of_a_missing_program_fails_clearly() {
    let env = Env::new("execmissing");
    let (id, _b) = running(&env, "c");
    // runc's code for an exec that could not start: 255.
    let o = env.rt(&["exec", &id, "no-such-program"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        stderr(&o).contains("executable file not found"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn exec_in_a_stopped_container_is_refused() {
    let env = Env::new("execstopped");
    let mut b = env.bundle("c");
    b.args(&["true"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    assert!(wait_for(5, || env.state(&id)["status"] == "stopped"));
    let o = env.rt(&["exec", &id, "true"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("stopped"), "{}", stderr(&o));
}

#[test]
fn exec_failures_exit_255_and_a_process_code_comes_through() {
    let env = Env::new("execcodes");
    let (id, _b) = running(&env, "c");
    let o = env.rt(&["exec", &id, "false"]);
    assert_eq!(o.status.code(), Some(1));
    let o = env.rt(&["exec", "--pid-file", "/non-existent/dir/pid", &id, "true"]);
    assert_eq!(o.status.code(), Some(255), "{}", stderr(&o));
    let o = env.rt(&["exec", &env.id("missing"), "true"]);
    assert_eq!(o.status.code(), Some(255), "{}", stderr(&o));
}

#[test]
fn exec_into_a_paused_container_is_refused_unless_ignore_paused() {
    let env = Env::new("execpaused");
    let (id, _b) = running(&env, "c");
    env.rt_ok(&["pause", &id]);
    let o = env.rt(&["exec", &id, "echo", "ok"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        stderr(&o).contains("cannot exec in a paused container"),
        "{}",
        stderr(&o)
    );
    // With --ignore-paused it starts frozen and runs once resumed.
    let child = env
        .cmd(&["exec", "--ignore-paused", &id, "echo", "ok"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Frozen: it joined the cgroup and waits there.
    let cg = env.state(&id)["pid"].as_i64().unwrap();
    let procs_of =
        |pid: i64| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let freezer_line = |s: String| {
        s.lines()
            .find(|l| l.contains(":freezer:"))
            .unwrap_or_default()
            .to_string()
    };
    let want = freezer_line(procs_of(cg));
    assert!(
        wait_for(10, || {
            std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
                let p = e.file_name().to_string_lossy().parse::<i64>().unwrap_or(0);
                p != cg && p > 0 && {
                    let c = procs_of(p);
                    freezer_line(c) == want
                        && std::fs::read_to_string(format!("/proc/{p}/stat"))
                            .is_ok_and(|s| s.contains(") D ") || s.contains(") S "))
                }
            })
        }),
        "no exec'd process in the frozen cgroup"
    );
    env.rt_ok(&["resume", &id]);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ok\n");
}

/// `exec --pidfd-socket` sends a pidfd of the new process: it refers to
/// that process (its pid, per the fd's fdinfo), and a missing socket fails
/// the exec before anything runs.
#[test]
fn exec_pidfd_socket_receives_the_process_pidfd() {
    use std::os::fd::AsRawFd;
    let env = Env::new("pidfdsock");
    let (id, _b) = running(&env, "c");
    let sock = env.dir.join("pidfd.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let rx = receive_master(listener);
    let pidfile = env.dir.join("exec.pid");
    env.rt_ok(&[
        "exec",
        "-d",
        "--pidfd-socket",
        sock.to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "sleep",
        "100",
    ]);
    let pidfd = rx.join().unwrap();
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).unwrap();
    assert!(
        info.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Pid:", pid.trim()]),
        "{info}"
    );
    let o = env.rt(&["exec", "--pidfd-socket", "/nonexistent.sock", &id, "true"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("--pidfd-socket"), "{}", stderr(&o));
}
