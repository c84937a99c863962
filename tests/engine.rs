//! The engine end to end: `capsa run` and friends on real containers, each
//! flag checked from inside (the probe, busybox) and from the host's
//! cgroup files; bad input leaves nothing behind.

use capsa_tests::images::load_busybox_probe;
use capsa_tests::registry::Capsa;
use capsa_tests::{installed, probe_output, require, wait_for, Env};
use serde_json::Value;
use std::time::{Duration, Instant};

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn setup(name: &str) -> (Env, Capsa, &'static str) {
    let env = Env::new(name);
    let c = Capsa::new(&env, "c");
    let img = load_busybox_probe(&env, &c);
    (env, c, img)
}

fn inspect(c: &Capsa, id: &str) -> Value {
    json(&c.ok(&["inspect", id]))[0].clone()
}

/// No overlay of ours is mounted any more.
fn assert_no_mounts(c: &Capsa) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ours: Vec<&str> = info
        .lines()
        .filter(|l| l.contains(c.store.to_str().unwrap()))
        .collect();
    assert!(ours.is_empty(), "mounts left: {ours:?}");
}

/// Monitors of this store still running (by their command line).
fn monitors(c: &Capsa) -> usize {
    let store = c.store.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|cmd| {
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            args.contains(&&b"__capsa_monitor"[..]) && args.contains(&store.as_bytes())
        })
        .count()
}

#[test]
fn run_passes_output_and_the_exit_code_through_and_rm_removes() {
    let (_env, c, img) = setup("eng-run");
    let o = c.run(&[
        "run",
        "--rm",
        img,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("err"));
    assert_eq!(c.ok(&["ps", "-aq"]), "", "--rm left the container");
    assert_no_mounts(&c);
    // A command that does not exist: docker's 127.
    let o = c.run(&["run", "--rm", img, "/nonexistent"]);
    assert_eq!(
        o.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // One that is there but cannot run (a directory): docker's 126.
    let o = c.run(&["run", "--rm", img, "/bin"]);
    assert_eq!(
        o.status.code(),
        Some(126),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("permission denied"));
    assert_eq!(c.ok(&["ps", "-aq"]), "");
}

#[test]
fn the_demo_image_explains_what_a_container_sees() {
    let env = Env::new("eng-demo");
    let c = Capsa::new(&env, "c");
    let out = c.ok(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--hostname",
        "box",
        "capsa-demo",
    ]);
    assert!(out.contains("Hello from inside a capsa container"), "{out}");
    assert!(out.contains("My hostname is box"), "{out}");
    assert!(out.contains("Memory limit: 67108864"), "{out}");
    assert!(out.contains("14 of 41 capabilities"), "{out}");
}

#[test]
fn flags_reach_the_container_and_its_cgroup() {
    let (env, c, img) = setup("eng-flags");
    let id = c
        .ok(&[
            "run",
            "-d",
            "--name",
            "flags",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "--hostname",
            "box",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "net_raw",
            "--read-only",
            "--tmpfs",
            "/scratch",
            "--ulimit",
            "nofile=512:1024",
            img,
            "/probe",
            "sleep",
            "3",
        ])
        .trim()
        .to_string();
    let cg = format!("{}/capsa-{}", env.cgroup_parent, &id[..12]);
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert!(wait_for(5, || !read(&format!(
        "/sys/fs/cgroup/memory/{cg}/memory.limit_in_bytes"
    ))
    .is_empty()));
    assert_eq!(
        read(&format!("/sys/fs/cgroup/memory/{cg}/memory.limit_in_bytes")),
        (64 << 20).to_string()
    );
    let quota = ["cpu,cpuacct", "cpu"]
        .iter()
        .map(|d| read(&format!("/sys/fs/cgroup/{d}/{cg}/cpu.cfs_quota_us")))
        .find(|s| !s.is_empty());
    assert_eq!(quota.as_deref(), Some("50000"));
    assert_eq!(read(&format!("/sys/fs/cgroup/pids/{cg}/pids.max")), "50");
    let i = inspect(&c, "flags");
    assert_eq!(i["State"]["Status"], "running");
    let nets: Vec<&Value> = i["Namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == "net")
        .collect();
    assert_eq!(nets[0]["shared_with_host"], false);
    assert!(i["Cgroup"]["Files"]
        .as_object()
        .unwrap()
        .keys()
        .any(|k| k.ends_with("memory.limit_in_bytes")));
    assert!(!i["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .is_empty());
    assert_eq!(c.ok(&["wait", "flags"]).trim(), "0");
    let logs = c.ok(&["logs", "flags"]);
    let p = probe_output(&std::process::Output {
        status: Default::default(),
        stdout: logs.into_bytes(),
        stderr: vec![],
    });
    assert_eq!(p["hostname"], "box");
    assert!(p["env"].as_array().unwrap().iter().any(|e| e == "FOO=bar"));
    assert_eq!(p["cwd"], "/tmp");
    assert_eq!(
        (p["uid"].as_u64(), p["gid"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(
        p["caps"]["CapBnd"], "0000000000002000",
        "only NET_RAW (bit 13) is left"
    );
    assert_eq!(
        p["rlimits"]["Max open files"],
        serde_json::json!(["512", "1024"])
    );
    let mounts = p["mounts"].as_array().unwrap();
    assert!(mounts
        .iter()
        .any(|m| m["target"] == "/scratch" && m["fstype"] == "tmpfs"));
    assert!(mounts.iter().any(
        |m| m["target"] == "/" && m["options"].as_str().unwrap().split(',').any(|o| o == "ro")
    ));
}

#[test]
fn logs_follow_tail_and_timestamps() {
    let (_env, c, img) = setup("eng-logs");
    c.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        img,
        "sh",
        "-c",
        "for i in 1 2 3; do echo line $i; sleep 0.2; done; echo oops >&2",
    ]);
    let o = c.run(&["logs", "-f", "talker"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "line 1\nline 2\nline 3\n"
    );
    assert_eq!(String::from_utf8_lossy(&o.stderr), "oops\n");
    assert_eq!(c.ok(&["logs", "--tail", "1", "talker"]), "");
    assert_eq!(
        String::from_utf8_lossy(&c.run(&["logs", "-n", "2", "talker"]).stdout),
        "line 3\n"
    );
    let t = c.ok(&["logs", "-t", "talker"]);
    let first = t.lines().next().unwrap();
    assert!(
        first.len() > 30
            && first.as_bytes()[4] == b'-'
            && first.contains('T')
            && first.ends_with("line 1"),
        "{first}"
    );
    // docker's json-file format on disk.
    let id = inspect(&c, "talker")["Id"].as_str().unwrap().to_string();
    let raw =
        std::fs::read_to_string(c.store.join("containers").join(&id).join("ctr.log")).unwrap();
    let entry = json(raw.lines().next().unwrap());
    assert_eq!(
        (entry["log"].as_str(), entry["stream"].as_str()),
        (Some("line 1\n"), Some("stdout"))
    );
}

#[test]
fn exec_stop_pause_rename_and_rm() {
    let (env, c, img) = setup("eng-manage");
    let id = c
        .ok(&["run", "-d", "--name", "sleeper", img, "sleep", "100"])
        .trim()
        .to_string();
    assert_eq!(
        c.ok(&["exec", "sleeper", "cat", "/etc/hostname"]).trim(),
        &id[..12]
    );
    assert_eq!(
        c.ok(&["exec", "-u", "1000", "sleeper", "id", "-u"]).trim(),
        "1000"
    );
    assert_eq!(
        c.run(&["exec", "sleeper", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    let top = c.ok(&["top", "sleeper"]);
    assert!(top.contains("sleep 100"), "{top}");

    c.ok(&["pause", "sleeper"]);
    let freezer = format!(
        "/sys/fs/cgroup/freezer/{}/capsa-{}/freezer.state",
        env.cgroup_parent,
        &id[..12]
    );
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    assert!(c.ok(&["ps"]).contains("Paused"));
    c.ok(&["unpause", "sleeper"]);
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "THAWED");

    c.ok(&["rename", "sleeper", "dozer"]);
    let err = c.fails(&["rm", "dozer"]);
    assert!(err.contains("stop it first"), "{err}");
    // sleep as PID 1 ignores SIGTERM: stop waits its timeout, then kills.
    let t = Instant::now();
    c.ok(&["stop", "-t", "1", "dozer"]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let ps = c.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (137)"), "{ps}");
    let err = c.fails(&["exec", "dozer", "true"]);
    assert!(err.contains("not running"), "{err}");
    c.ok(&["rm", "dozer"]);
    assert_eq!(c.ok(&["ps", "-aq"]), "");
    assert_no_mounts(&c);
}

#[test]
fn stdin_goes_through_with_i_and_a_tty_with_t() {
    let (_env, c, img) = setup("eng-stdio");
    use std::io::Write;
    let mut child = c
        .cmd(&["run", "-i", "--rm", img, "sh", "-c", "cat; echo done"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello through stdin\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello through stdin\ndone\n"
    );
    let o = c.run(&["run", "-t", "--rm", img, "tty"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("/dev/pts/0"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// An attached client that stops reading (here: its own stdout is a pipe
/// nobody reads) must not stop the container's output or its log: the
/// monitor drops it once its queue is full. A container that never reads
/// its stdin must not stop the monitor either.
#[test]
fn a_stalled_client_does_not_stop_the_log_nor_a_deaf_container_the_monitor() {
    let (_env, c, img) = setup("eng-stall");
    let line = "x".repeat(100);
    c.ok(&[
        "run",
        "-d",
        "--name",
        "loud",
        img,
        "sh",
        "-c",
        &format!("while :; do echo {line}; done"),
    ]);
    let mut stalled = c
        .cmd(&["attach", "loud"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let id = inspect(&c, "loud")["Id"].as_str().unwrap().to_string();
    let log = c.store.join("containers").join(&id).join("ctr.log");
    // The log rotates at 10 MiB, keeping one old file.
    let size = || {
        [log.clone(), log.with_extension("log.1")]
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum::<u64>()
    };
    // Far past what the pipe, the socket and the client's queue hold
    // (64 KiB + a few hundred KiB + 1 MiB of output, less as log).
    let grew = wait_for(60, || size() > 8 << 20);
    let at = size();
    c.ok(&["rm", "-f", "loud"]);
    let _ = stalled.kill();
    let _ = stalled.wait();
    assert!(
        grew,
        "the log stopped at {at} bytes behind a stalled client"
    );

    // 4 MiB of input to a container that reads none of it for a while:
    // the monitor keeps serving (logs flow), then all of it arrives.
    use std::io::Write;
    let mut deaf = c
        .cmd(&[
            "run",
            "-i",
            "--rm",
            "--name",
            "deaf",
            img,
            "sh",
            "-c",
            "while [ ! -e /go ]; do echo tick; sleep 0.05; done; wc -c",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = deaf.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        input.write_all(&vec![b'y'; 4 << 20]).unwrap();
    });
    // Its output reaches the log while its input waits: 40 ticks take
    // two seconds, long after the input pipe (64 KiB) was full.
    let ticks = || {
        String::from_utf8_lossy(&c.run(&["logs", "deaf"]).stdout)
            .lines()
            .filter(|l| *l == "tick")
            .count()
    };
    assert!(
        wait_for(30, || ticks() >= 40),
        "the monitor stopped serving while input waited ({} ticks logged)",
        ticks()
    );
    c.ok(&["exec", "deaf", "touch", "/go"]);
    writer.join().unwrap();
    let o = deaf.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.ends_with("tick\n4194304\n"), "{out}");
}

#[test]
fn stats_report_memory_and_pids_from_the_cgroup() {
    let (_env, c, img) = setup("eng-stats");
    c.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "--memory",
        "64m",
        img,
        "sh",
        "-c",
        "sleep 100 & sleep 100",
    ]);
    let v = json(&c.ok(&["stats", "--no-stream", "--format", "json", "busy"]));
    assert_eq!(v[0]["MemLimit"], 64 << 20);
    assert!(v[0]["PIDs"].as_u64().unwrap() >= 2, "{v}");
    assert!(v[0]["MemUsage"].as_u64().unwrap() > 0, "{v}");
    c.ok(&["rm", "-f", "busy"]);
}

#[test]
fn a_killed_monitor_leaves_a_record_the_next_command_repairs() {
    let (_env, c, img) = setup("eng-repair");
    c.ok(&["run", "-d", "--name", "orphan", img, "sleep", "100"]);
    let i = inspect(&c, "orphan");
    let (monitor, pid) = (
        i["State"]["MonitorPid"].as_i64().unwrap() as i32,
        i["State"]["Pid"].as_i64().unwrap() as i32,
    );
    assert!(monitor > 0 && pid > 0);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    assert!(wait_for(5, || c.ok(&["ps", "-a"]).contains("Exited (-1)")));
    let i = inspect(&c, "orphan");
    assert!(
        i["State"]["Error"].as_str().unwrap().contains("monitor"),
        "{i}"
    );
    c.ok(&["rm", "orphan"]);
    assert_no_mounts(&c);
}

#[test]
fn bad_input_is_refused_by_name_and_leaves_nothing() {
    let (_env, c, img) = setup("eng-bad");
    let count = || {
        std::fs::read_dir(c.store.join("containers"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let err = c.fails(&["run", "--pull", "never", "localhost/nosuch:image", "true"]);
    assert!(err.contains("nosuch"), "{err}");
    let err = c.fails(&["run", "--memory", "12zz", img, "true"]);
    assert!(err.contains("--memory") && err.contains("12zz"), "{err}");
    let err = c.fails(&["run", "--cpus", "-1", img, "true"]);
    assert!(err.contains("--cpus"), "{err}");
    let err = c.fails(&["run", "-v", "/no/such/dir:/x", img, "true"]);
    assert!(err.contains("/no/such/dir"), "{err}");
    let err = c.fails(&["run", "--userns", "keep-id", img, "true"]);
    assert!(err.contains("--userns") && err.contains("keep-id"), "{err}");
    let err = c.fails(&["run", "--cap-add", "CAP_BOGUS", img, "true"]);
    assert!(err.contains("CAP_BOGUS"), "{err}");
    assert_eq!(count(), 0, "a refused run left a container directory");
    // Each run started its monitor ahead; a refused run's monitor goes too.
    assert!(
        wait_for(5, || monitors(&c) == 0),
        "a refused run left its monitor running"
    );
    c.ok(&["run", "-d", "--name", "taken", img, "sleep", "100"]);
    let err = c.fails(&["run", "--name", "taken", img, "true"]);
    assert!(err.contains("already in use"), "{err}");
    assert_eq!(count(), 1);
    assert!(
        wait_for(5, || monitors(&c) == 1),
        "the running container's monitor, only"
    );
    c.ok(&["rm", "-f", "taken"]);
    let err = c.fails(&["exec", "taken", "true"]);
    assert!(err.contains("no such container"), "{err}");
    assert_eq!(count(), 0);
    assert!(wait_for(5, || monitors(&c) == 0), "monitors left");
    assert_no_mounts(&c);
}

#[test]
fn concurrent_runs_with_one_name_give_it_to_one() {
    let (_env, c, img) = setup("eng-names");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let mut cmd = c.cmd(&["run", "-d", "--name", "unique", img, "sleep", "100"]);
            std::thread::spawn(move || cmd.output().unwrap())
        })
        .collect();
    let ok = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|o| o.status.success())
        .count();
    assert_eq!(ok, 1);
    assert_eq!(c.ok(&["ps", "-q"]).lines().count(), 1);
}

#[test]
fn volumes_bind_host_paths_and_named_volumes_persist() {
    let (env, c, img) = setup("eng-volumes");
    let host = env.dir.join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from host").unwrap();
    let bind = format!("{}:/data", host.display());
    c.ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        img,
        "sh",
        "-c",
        "cat /data/in > /data/out",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("out")).unwrap(),
        "from host"
    );
    let ro = format!("{}:/data:ro", host.display());
    assert_ne!(
        c.run(&["run", "--rm", "-v", &ro, img, "touch", "/data/x"])
            .status
            .code(),
        Some(0)
    );
    c.ok(&[
        "run",
        "--rm",
        "-v",
        "cache:/cache",
        img,
        "sh",
        "-c",
        "echo kept > /cache/f",
    ]);
    assert_eq!(
        c.ok(&["run", "--rm", "-v", "cache:/cache", img, "cat", "/cache/f"]),
        "kept\n"
    );
}

#[test]
fn the_runtime_flag_drives_runc_through_its_command_line() {
    if !require(installed("runc"), "runc") {
        return;
    }
    let (env, c, img) = setup("eng-runc");
    let o = c.run(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        img,
        "sh",
        "-c",
        "echo via runc; exit 4",
    ]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "via runc\n");
    // runc says a missing command only in words; they still give 127.
    let o = c.run(&["run", "--rm", "--runtime", "runc", img, "/nonexistent"]);
    assert_eq!(
        o.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let id = c
        .ok(&[
            "run",
            "-d",
            "--name",
            "r",
            "--runtime",
            "runc",
            "--memory",
            "64m",
            img,
            "sleep",
            "100",
        ])
        .trim()
        .to_string();
    // runc made the cgroup where capsa asked, with the limit.
    let limit = format!(
        "/sys/fs/cgroup/memory/{}/capsa-{}/memory.limit_in_bytes",
        env.cgroup_parent,
        &id[..12]
    );
    assert_eq!(
        std::fs::read_to_string(&limit).unwrap().trim(),
        (64 << 20).to_string()
    );
    // runc's own state knows the container.
    let state = std::process::Command::new("runc")
        .arg("--root")
        .arg(c.run.join("ext-runtime"))
        .args(["state", &id])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&state.stdout).contains("\"status\": \"running\""),
        "{}",
        String::from_utf8_lossy(&state.stdout)
    );
    assert_eq!(
        c.run(&["exec", "r", "sh", "-c", "exit 5"]).status.code(),
        Some(5)
    );
    c.ok(&["pause", "r"]);
    assert!(c.ok(&["ps"]).contains("Paused"));
    c.ok(&["unpause", "r"]);
    c.ok(&["stop", "-t", "1", "r"]);
    assert!(c.ok(&["ps", "-a"]).contains("Exited (137)"));
    c.ok(&["rm", "r"]);
    assert_no_mounts(&c);
}

#[test]
fn cp_copies_both_ways_and_container_symlinks_stay_inside() {
    let (env, c, img) = setup("eng-cp");
    c.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        img,
        "sh",
        "-c",
        "echo inside > /etc/motd; ln -s /etc /evil; sleep 100",
    ]);
    assert!(wait_for(5, || c
        .run(&["exec", "box", "test", "-L", "/evil"])
        .status
        .success()));
    let out = env.dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    c.ok(&["cp", "box:/evil/motd", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(out.join("motd")).unwrap(),
        "inside\n"
    );
    // Into the container through its symlink to /etc: the container's /etc.
    let src = env.dir.join("note");
    std::fs::write(&src, "from host").unwrap();
    c.ok(&["cp", src.to_str().unwrap(), "box:/evil/"]);
    assert_eq!(c.ok(&["exec", "box", "cat", "/etc/note"]), "from host");
    assert!(
        !std::path::Path::new("/etc/note").exists(),
        "the copy reached the host's /etc"
    );
    // A directory, out and back in under another name.
    c.ok(&[
        "exec",
        "box",
        "sh",
        "-c",
        "mkdir -p /d/sub && echo x > /d/sub/f",
    ]);
    c.ok(&["cp", "box:/d", out.join("d").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("d/sub/f")).unwrap(), "x\n");
    c.ok(&["cp", out.join("d").to_str().unwrap(), "box:/d2"]);
    assert_eq!(c.ok(&["exec", "box", "cat", "/d2/sub/f"]), "x\n");
    // export: the container's whole root as a tar, which import takes back.
    let tar = env.dir.join("box.tar");
    c.ok(&["export", "-o", tar.to_str().unwrap(), "box"]);
    c.ok(&["rm", "-f", "box"]);
    c.ok(&[
        "import",
        "-q",
        tar.to_str().unwrap(),
        "localhost/exported:v1",
    ]);
    assert_eq!(
        c.ok(&[
            "run",
            "--rm",
            "localhost/exported:v1",
            "cat",
            "/etc/motd",
            "/d2/sub/f"
        ]),
        "inside\nx\n"
    );
}

/// Run `capsa args` on a fresh pty; returns (master, child).
fn on_pty(c: &Capsa, args: &[&str]) -> (std::fs::File, std::process::Child) {
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let child = c
        .cmd(args)
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    (std::fs::File::from(pty.master), child)
}

/// Read the pty until `want` shows up (or a few seconds pass).
fn read_until(master: &mut std::fs::File, want: &str) -> String {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !seen.contains(want) {
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(master),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u8)).unwrap_or(0) == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match master.read(&mut buf) {
            Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
        let _ = master.as_raw_fd();
    }
    seen
}

#[test]
fn run_it_gives_a_terminal_the_exit_code_and_detach_keys() {
    use std::io::Write;
    let (_env, c, img) = setup("eng-it");
    let (mut m, mut child) = on_pty(&c, &["run", "-it", "--rm", img, "sh"]);
    read_until(&mut m, "# ");
    m.write_all(b"tty; echo sum-$((40+2)); exit 3\r").unwrap();
    let seen = read_until(&mut m, "sum-42");
    assert!(seen.contains("/dev/pts/0"), "{seen}");
    assert_eq!(child.wait().unwrap().code(), Some(3), "{seen}");

    let (mut m, mut child) = on_pty(&c, &["run", "-it", "--name", "keep", img, "sh"]);
    read_until(&mut m, "# ");
    m.write_all(b"\x10\x11").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(
        c.ok(&["ps"]).contains("keep"),
        "detaching stopped the container"
    );
    c.ok(&["rm", "-f", "keep"]);
}

#[test]
fn detach_keys_of_its_own_replace_dockers() {
    use std::io::Write;
    let (_env, c, img) = setup("eng-keys");
    let e = c.fails(&["run", "-it", "--detach-keys", "ctrl-", img, "sh"]);
    assert!(e.contains("--detach-keys"), "{e}");
    let (mut m, mut child) = on_pty(
        &c,
        &[
            "run",
            "-it",
            "--name",
            "keys",
            "--detach-keys",
            "ctrl-a,x",
            img,
            "sh",
        ],
    );
    read_until(&mut m, "# ");
    // docker's keys are plain input now.
    m.write_all(b"\x10\x11echo still-$((1+1))\r").unwrap();
    let seen = read_until(&mut m, "still-2");
    assert!(seen.contains("still-2"), "{seen}");
    m.write_all(b"\x01x").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(
        c.ok(&["ps"]).contains("keys"),
        "detaching stopped the container"
    );
    c.ok(&["rm", "-f", "keys"]);
}

#[test]
fn signals_to_an_attached_run_reach_the_container() {
    let (_env, c, img) = setup("eng-signals");
    let child = c
        .cmd(&[
            "run",
            "--rm",
            img,
            "sh",
            "-c",
            "trap 'echo got TERM; exit 9' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut out = child;
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(out.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    nix::sys::signal::kill(pid, nix::sys::signal::SIGTERM).unwrap();
    let o = out.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(9));
    assert!(String::from_utf8_lossy(&o.stdout).contains("got TERM"));
}

#[test]
fn security_and_process_flags_reach_the_container() {
    let (env, c, img) = setup("eng-security");
    let probe = |extra: &[&str], args: &[&str]| -> Value {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(extra);
        a.push(img);
        a.extend_from_slice(args);
        let o = c.run(&a);
        assert!(
            o.status.success(),
            "{a:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        probe_output(&o)
    };
    let p = probe(&[], &["/probe"]);
    assert_eq!(p["seccomp"], "2", "docker's default profile");
    assert_eq!(
        p["caps"]["CapBnd"], "00000000a80425fb",
        "docker's 14 capabilities"
    );
    let p = probe(
        &[
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "no-new-privileges",
        ],
        &["/probe"],
    );
    assert_eq!(
        (p["seccomp"].as_str(), p["no_new_privs"].as_str()),
        (Some("0"), Some("1"))
    );
    let p = probe(&["--privileged"], &["/probe"]);
    assert_eq!(p["seccomp"], "0");
    assert_ne!(p["caps"]["CapBnd"], "00000000a80425fb");
    let env_file = env.dir.join("env");
    std::fs::write(&env_file, "# comment\nFROM_FILE=yes\n").unwrap();
    let p = probe(
        &[
            "--env-file",
            env_file.to_str().unwrap(),
            "--entrypoint",
            "/probe",
            "-w",
            "/etc",
        ],
        &[],
    );
    assert!(p["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "FROM_FILE=yes"));
    assert_eq!(p["cwd"], "/etc");
    // --init: catatonit is PID 1 and the command its child.
    if std::path::Path::new("/usr/bin/catatonit").exists() {
        let p = probe(&["--init"], &["/probe"]);
        assert_eq!(p["ppid"], 1);
        assert_ne!(p["pid"], 1);
    }
    let out = c.ok(&[
        "run",
        "--rm",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--device",
        "/dev/null:/dev/mynull",
        img,
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_forward; test -c /dev/mynull && echo dev",
    ]);
    assert_eq!(out, "1\ndev\n");
}

#[test]
fn the_image_config_decides_what_the_flags_leave_open() {
    let env = Env::new("eng-imgcfg");
    let c = Capsa::new(&env, "c");
    let layout = env.dir.join("layout");
    let data = capsa_tests::images::LayerTar::default()
        .dir("data")
        .file("data/seed", b"from the image")
        .bytes();
    capsa_tests::images::oci_layout_with(
        &layout,
        "cfg",
        &[(
            "amd64",
            vec![capsa_tests::engines::busybox_rootfs_tar(), data],
        )],
        serde_json::json!({
            "Entrypoint": ["sh", "-c"], "Cmd": ["echo $GREETING from $(pwd) as $(id -u); cat /data/seed"],
            "Env": ["PATH=/bin", "GREETING=hello"], "WorkingDir": "/tmp", "User": "65534:65534",
            "Volumes": {"/data": {}}, "StopSignal": "SIGUSR1",
        }),
    );
    c.ok(&["load", "-q", "-i", layout.to_str().unwrap()]);
    let img = "localhost/imported:cfg";
    assert_eq!(
        c.ok(&["run", "--rm", img]),
        "hello from /tmp as 65534\nfrom the image"
    );
    // Flags win: -e, -w, -u, and a command replaces Cmd but keeps the entrypoint.
    assert_eq!(
        c.ok(&[
            "run",
            "--rm",
            "-e",
            "GREETING=hi",
            "-w",
            "/",
            "-u",
            "0",
            img,
            "echo $GREETING $(pwd) $(id -u)"
        ]),
        "hi / 0\n"
    );
    // The declared volume is a volume of its own, seeded from the image.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "v",
        img,
        "echo changed > /data/seed; sleep 100",
    ]);
    let i = inspect(&c, "v");
    assert_eq!(i["Config"]["StopSignal"], "SIGUSR1");
    let vols = std::fs::read_dir(c.store.join("volumes")).unwrap().count();
    assert_eq!(vols, 1);
    c.ok(&["rm", "-f", "v"]);
}

#[test]
fn logs_rotate_past_their_size_and_a_tty_gets_the_callers_window_size() {
    use std::io::Write;
    let (_env, c, img) = setup("eng-rotate");
    // 12 MB of lines: past the 10 MiB rotation size.
    c.ok(&["run", "--name", "chatty", img, "sh", "-c", "yes 0123456789012345678901234567890123456789012345678901234567890123456789 | head -c 12000000; echo; echo last"]);
    let id = inspect(&c, "chatty")["Id"].as_str().unwrap().to_string();
    let dir = c.store.join("containers").join(&id);
    let current = std::fs::metadata(dir.join("ctr.log")).unwrap().len();
    let rotated = std::fs::metadata(dir.join("ctr.log.1")).unwrap().len();
    assert!(
        rotated > 9 << 20 && current < rotated,
        "ctr.log {current} ctr.log.1 {rotated}"
    );
    assert_eq!(c.ok(&["logs", "--tail", "1", "chatty"]), "last\n");
    c.ok(&["rm", "chatty"]);

    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: 33,
            ws_col: 77,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )
    .unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = c
        .cmd(&["run", "-it", "--rm", img, "stty", "size"])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let seen = read_until(&mut master, "33 77");
    let _ = master.write_all(b"");
    assert!(seen.contains("33 77"), "{seen}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_resized_terminal_resizes_the_containers_pty() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let (_env, c, img) = setup("eng-resize");
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let child = c
        .cmd(&["run", "-it", "--rm", img, "sh"])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap())
        .spawn()
        .unwrap();
    let mut m = std::fs::File::from(pty.master);
    read_until(&mut m, "# ");
    // What a terminal emulator does: set the size, then SIGWINCH.
    capsa_sys::fd::set_window_size(slave.as_raw_fd(), 40, 100).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGWINCH,
    )
    .unwrap();
    // The resize reaches the container's pty asynchronously: ask its size
    // until it is the new one (each answer ends with a marker).
    let mut seen = String::new();
    for _ in 0..50 {
        // The marker is computed, so the echoed command line is not it.
        m.write_all(b"stty size; echo size-$((20+22))\r").unwrap();
        seen = read_until(&mut m, "size-42");
        if seen.contains("40 100") {
            break;
        }
    }
    assert!(seen.contains("40 100"), "{seen}");
    m.write_all(b"exit\r").unwrap();
    let mut child = child;
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// The host uid of a container's root, from its `/proc/self/uid_map`.
fn mapped_root(c: &Capsa, id: &str) -> (u64, u64) {
    let map = c.ok(&["exec", id, "cat", "/proc/self/uid_map"]);
    let f: Vec<u64> = map.split_whitespace().map(|w| w.parse().unwrap()).collect();
    assert_eq!(
        (f.len(), f[0]),
        (3, 0),
        "one range from container id 0: {map}"
    );
    (f[1], f[2])
}

#[test]
fn userns_auto_gives_each_container_its_own_host_ids() {
    let (env, c, img) = setup("eng-userns");
    let a = c.ok(&["run", "-d", "--userns", "auto", img, "sleep", "100"]);
    let a = a.trim();
    let b = c.ok(&[
        "run",
        "-d",
        "--userns",
        "auto:size=1000",
        img,
        "sleep",
        "100",
    ]);
    let b = b.trim();
    let (ua, na) = mapped_root(&c, a);
    let (ub, nb) = mapped_root(&c, b);
    assert_eq!((na, nb), (65536, 1000));
    assert!(ua >= 100_000 && ub >= 100_000, "roots map to high host ids");
    assert!(
        ua + na <= ub || ub + nb <= ua,
        "ranges overlap: {ua}+{na} {ub}+{nb}"
    );
    // Root inside, an unprivileged uid on the host.
    assert_eq!(c.ok(&["exec", a, "id", "-u"]).trim(), "0");
    let pid = inspect(&c, a)["State"]["Pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.contains(&ua.to_string()), "{uid_line}");
    assert_eq!(
        inspect(&c, a)["IdMappings"]["UidMap"][0],
        format!("0:{ua}:65536")
    );
    // The image's files (root's on the host) are root's inside, and what
    // the container writes is the mapped uid's on the host.
    let ls = c.ok(&["exec", a, "ls", "-ln", "/bin/busybox"]);
    assert_eq!(ls.split_whitespace().nth(2), Some("0"), "{ls}");
    c.ok(&[
        "exec",
        a,
        "sh",
        "-c",
        "echo hi > /made && touch /bin/busybox",
    ]);
    let upper = c.store.join("containers").join(a).join("upper");
    for f in ["made", "bin/busybox"] {
        let m = std::fs::metadata(upper.join(f)).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&m) as u64,
            ua,
            "{f} in the upper layer"
        );
    }
    // The container's root is nobody to host files: a host directory of
    // root's, writable by root alone, stays closed to it.
    let host = env.dir.join("host-dir");
    std::fs::create_dir(&host).unwrap();
    let vol = format!("{}:/h", host.display());
    let o = c.run(&[
        "run", "--rm", "--userns", "auto", "-v", &vol, img, "touch", "/h/x",
    ]);
    assert!(
        !o.status.success(),
        "touch in a host root's directory worked"
    );
    assert!(!host.join("x").exists());
    let o = c.run(&["run", "--rm", "-v", &vol, img, "touch", "/h/x"]);
    assert!(
        o.status.success() && host.join("x").exists(),
        "without --userns root writes"
    );
    // A removed container's range is free again.
    c.ok(&["rm", "-f", a]);
    let d = c.ok(&["run", "-d", "--userns", "auto", img, "sleep", "100"]);
    assert_eq!(mapped_root(&c, d.trim()).0, ua, "the freed range is reused");
    c.ok(&["rm", "-f", b, d.trim()]);
    assert_no_mounts(&c);
}

#[test]
fn concurrent_runs_under_a_new_cgroup_parent_all_start() {
    // Each run finds the parent missing or half made by another: a v1
    // cpuset parent made an instant ago has no cpus yet (ENOSPC on join).
    let (env, c, img) = setup("eng-fresh-parent");
    for round in 0..3 {
        let parent = format!("/{}/fresh{round}/deeper", env.cgroup_parent);
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let mut cmd =
                    c.cmd(&["run", "-d", "--cgroup-parent", &parent, img, "sleep", "100"]);
                std::thread::spawn(move || cmd.output().unwrap())
            })
            .collect();
        for h in handles {
            let o = h.join().unwrap();
            assert!(
                o.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let ids = c.ok(&["ps", "-q"]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        assert_eq!(ids.len(), 6);
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        c.ok(&args);
    }
}

/// `info` lists the v1 controllers of hierarchies that are mounted, not
/// every directory under /sys/fs/cgroup: on this hybrid host `net_cls`
/// and friends are plain directories that nothing mounted.
#[test]
fn info_lists_only_mounted_v1_controllers() {
    let env = Env::new("eng-info");
    let c = Capsa::new(&env, "c");
    let info = json(&c.ok(&["info", "--format", "json"]));
    let listed: Vec<String> = info["CgroupV1Controllers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounted: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(" - "))
        .filter(|(_, post)| post.starts_with("cgroup "))
        .flat_map(|(_, post)| post.rsplit(' ').next().unwrap_or("").split(','))
        .collect();
    for name in &listed {
        assert!(
            mounted.contains(&name.as_str()),
            "{name} is listed but not mounted: {listed:?}"
        );
    }
    for name in ["cpu", "memory", "pids", "net_cls", "perf_event"] {
        assert_eq!(
            listed.iter().any(|l| l == name),
            mounted.contains(&name),
            "{name}: listed {listed:?}"
        );
    }
}

/// `stats --no-stream --format json`: docker's fields, from the engine's
/// sampler (two samples, so a CPU share), for a running container only.
#[test]
fn stats_reports_a_running_container_in_dockers_fields() {
    let (_env, c, img) = setup("eng-stats");
    c.ok(&[
        "run", "-d", "--name", "busy", "--memory", "64m", img, "sleep", "100",
    ]);
    let v = json(&c.ok(&["stats", "--no-stream", "--format", "json", "busy"]));
    let s = &v.as_array().unwrap()[0];
    assert_eq!(s["Name"], "busy", "{v}");
    assert!(s["PIDs"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(s["MemLimit"], 64 << 20, "{v}");
    assert!(s["CPUPerc"].as_f64().unwrap() >= 0.0, "{v}");
    assert!(s["CPUs"].as_u64().unwrap() >= 1, "{v}");
    c.ok(&["rm", "-f", "busy"]);
}

/// `logs --since` reads a time with its zone offset: a minute before the
/// line, written at +05:00, shows it; a minute after, written at -03:00,
/// does not. (A parser that drops the offset reads the first as five
/// hours later, and shows nothing.)
#[test]
fn logs_since_takes_the_offset_of_the_time_given() {
    let (_env, c, img) = setup("eng-since");
    c.ok(&["run", "--name", "said", img, "echo", "hello"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let at = |secs: i64, offset: i64, zone: &str| {
        let local = capsa_sys::time::rfc3339(secs + offset, None);
        format!("{}{zone}", local.trim_end_matches('Z'))
    };
    let before = at(now - 60, 5 * 3600, "+05:00");
    let after = at(now + 60, -3 * 3600, "-03:00");
    assert_eq!(
        c.ok(&["logs", "--since", &before, "said"]),
        "hello\n",
        "{before}"
    );
    assert_eq!(c.ok(&["logs", "--since", &after, "said"]), "", "{after}");
    // A duration back from now, as docker takes it.
    assert_eq!(c.ok(&["logs", "--since", "10m", "said"]), "hello\n");
    c.ok(&["rm", "said"]);
}

/// `--add-host`, `--dns`, `--dns-search` and `--dns-option` land in the
/// container's /etc/hosts and /etc/resolv.conf; bad values name the flag
/// (a word with a newline would write lines of its own).
#[test]
fn add_host_and_dns_flags_write_hosts_and_resolv_conf() {
    let (_env, c, img) = setup("eng-dns");
    let out = c.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db.local:10.9.8.7",
        "--add-host",
        "six=[fd00::1]",
        "--dns",
        "192.0.2.53",
        "--dns",
        "192.0.2.54",
        "--dns-search",
        "example.test",
        "--dns-option",
        "ndots:2",
        img,
        "sh",
        "-c",
        "cat /etc/hosts; echo ---; cat /etc/resolv.conf",
    ]);
    let (hosts, resolv) = out.split_once("---\n").unwrap();
    assert!(
        hosts.contains("10.9.8.7\tdb.local\n") && hosts.contains("fd00::1\tsix\n"),
        "{hosts}"
    );
    let ns: Vec<&str> = resolv
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .collect();
    assert_eq!(
        ns,
        ["nameserver 192.0.2.53", "nameserver 192.0.2.54"],
        "{resolv}"
    );
    assert!(
        resolv.contains("search example.test\n") && resolv.contains("options ndots:2\n"),
        "{resolv}"
    );
    for (args, words) in [
        (vec!["--add-host", "nocolon"], "--add-host"),
        (vec!["--add-host", "x:not-an-ip"], "not an IP address"),
        (vec!["--dns", "resolver.example"], "--dns"),
        (vec!["--dns-search", "a\nnameserver 6.6.6.6"], "one word"),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend(args.iter().copied());
        a.extend([img, "true"]);
        let err = c.fails(&a);
        assert!(err.contains(words), "{args:?}: {err}");
    }
    assert_eq!(c.ok(&["ps", "-aq"]).trim(), "");
}
