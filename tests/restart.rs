//! Restart policies (`--restart`): the monitor restarts the container as
//! docker's daemon would (backoff, retry counts), `stop` and `kill` set the
//! policy aside, and `start --all-restartable` brings back after a reboot
//! what the policies say.

use capsa_tests::images::load_busybox_probe;
use capsa_tests::registry::Capsa;
use capsa_tests::{until, Env};
use serde_json::Value;

fn status(v: &Value) -> &str {
    v["State"]["Status"].as_str().unwrap_or("")
}

fn settled_exited(c: &Capsa, name: &str) -> Value {
    let mut last = Value::Null;
    until(30, &format!("{name} exited, its monitor gone"), || {
        last = c.inspect(name);
        status(&last) == "exited" && last["State"]["MonitorPid"] == 0
    });
    last
}

/// Whether `pid` runs (a zombie does not: PID 1 here may never reap it).
fn pid_alive(pid: i64) -> bool {
    pid > 0
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
}

#[test]
fn on_failure_restarts_a_crashing_container_exactly_as_many_times_as_it_says() {
    let env = Env::new("restart-onfail");
    let c = Capsa::new(&env, "r");
    let image = load_busybox_probe(&env, &c);
    c.ok(&[
        "run",
        "-d",
        "--restart",
        "on-failure:2",
        "--name",
        "crash",
        image,
        "sh",
        "-c",
        "echo life; exit 3",
    ]);
    let v = settled_exited(&c, "crash");
    assert_eq!(v["RestartCount"], 2, "{v:#}");
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
    let logs = c.ok(&["logs", "crash"]);
    assert_eq!(logs.lines().filter(|l| *l == "life").count(), 3, "{logs}");
    // A clean exit is not a failure: no restart.
    c.ok(&[
        "run",
        "-d",
        "--restart",
        "on-failure",
        "--name",
        "clean",
        image,
        "true",
    ]);
    let v = settled_exited(&c, "clean");
    assert_eq!(
        (v["RestartCount"].clone(), v["State"]["ExitCode"].clone()),
        (0.into(), 0.into())
    );
}

#[test]
fn stop_and_kill_set_the_policy_aside_until_the_next_start() {
    let env = Env::new("restart-stop");
    let c = Capsa::new(&env, "r");
    let image = load_busybox_probe(&env, &c);

    // unless-stopped, stopped by hand: stays stopped, its monitor gone
    // (no process is left that could start it).
    c.ok(&[
        "run",
        "-d",
        "--restart",
        "unless-stopped",
        "--name",
        "us",
        image,
        "sleep",
        "1000",
    ]);
    let monitor = c.inspect("us")["State"]["MonitorPid"].as_i64().unwrap();
    c.ok(&["stop", "-t", "1", "us"]);
    let v = c.inspect("us");
    assert_eq!(status(&v), "exited", "{v:#}");
    assert_eq!(v["RestartCount"], 0);
    assert!(!pid_alive(monitor), "the monitor {monitor} is still there");

    // Started by hand, the policy holds again: an init killed from the
    // host (a crash, not `capsa kill`) is restarted.
    c.ok(&["start", "us"]);
    let pid = c.inspect("us")["State"]["Pid"].as_i64().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    until(30, "us restarted after its crash", || {
        let v = c.inspect("us");
        v["RestartCount"] == 1 && status(&v) == "running" && v["State"]["Pid"] != pid
    });
    c.ok(&["stop", "-t", "1", "us"]);

    // A crash loop under `always`, stopped while it waits to restart.
    c.ok(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        "loop",
        image,
        "sh",
        "-c",
        "exit 1",
    ]);
    until(30, "loop restarted three times", || {
        c.inspect("loop")["RestartCount"].as_u64() >= Some(3)
    });
    c.ok(&["stop", "loop"]);
    let v = c.inspect("loop");
    assert_eq!(status(&v), "exited", "{v:#}");
    assert_eq!(v["State"]["MonitorPid"], 0);
    let count = v["RestartCount"].clone();
    assert_eq!(settled_exited(&c, "loop")["RestartCount"], count);

    // `kill` with a signal that is not fatal leaves the policy: the
    // container exits on it and comes back; SIGKILL ends it for good. (An
    // init takes only the signals it handles.)
    c.ok(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        "usr1",
        image,
        "sh",
        "-c",
        "trap 'exit 9' USR1; sleep 1000 & wait",
    ]);
    c.ok(&["kill", "-s", "USR1", "usr1"]);
    until(30, "usr1 back after SIGUSR1", || {
        let v = c.inspect("usr1");
        v["RestartCount"] == 1 && status(&v) == "running"
    });
    c.ok(&["kill", "usr1"]);
    let v = settled_exited(&c, "usr1");
    assert_eq!(v["RestartCount"], 1);
    assert_eq!(v["State"]["ExitCode"], 137);
}

#[test]
fn start_all_restartable_brings_back_what_a_reboot_stopped() {
    let env = Env::new("restart-boot");
    let c = Capsa::new(&env, "r");
    let image = load_busybox_probe(&env, &c);
    for (name, policy) in [
        ("always", "always"),
        ("unless", "unless-stopped"),
        ("onfail", "on-failure"),
        ("never", "no"),
        ("byhand", "unless-stopped"),
    ] {
        c.ok(&[
            "run",
            "-d",
            "--restart",
            policy,
            "--name",
            name,
            "-h",
            name,
            image,
            "sleep",
            "1000",
        ]);
    }
    c.ok(&["stop", "-t", "1", "byhand"]);
    // The reboot: every monitor and init gone without a word (monitors
    // first, so none records or restarts anything), the overlays
    // unmounted, the run directory's files gone.
    for name in ["always", "unless", "onfail", "never"] {
        let v = c.inspect(name);
        let id = v["Id"].as_str().unwrap().to_string();
        for pid in [&v["State"]["MonitorPid"], &v["State"]["Pid"]] {
            let pid = pid.as_i64().unwrap() as i32;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            until(10, &format!("{name}'s process {pid} gone"), || {
                !pid_alive(pid as i64)
            });
        }
        let rootfs = c.store.join("containers").join(&id).join("rootfs");
        nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).unwrap();
        std::fs::remove_dir_all(c.run.join("files").join(&id)).unwrap();
    }
    c.ok(&["start", "--all-restartable"]);
    for (name, up) in [
        ("always", true),
        ("unless", true),
        ("onfail", true),
        ("never", false),
        ("byhand", false),
    ] {
        let v = c.inspect(name);
        assert_eq!(status(&v) == "running", up, "{name}: {v:#}");
        if up {
            // Its root mounted again, its files written again.
            let out = c.run(&["exec", name, "cat", "/etc/hostname"]);
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                name,
                "{}\n{:#}\n{}",
                String::from_utf8_lossy(&out.stderr),
                c.inspect(name),
                c.ok(&["logs", name])
            );
        }
    }
}

#[test]
fn restart_flag_errors_name_the_flag_and_leave_nothing() {
    let env = Env::new("restart-bad");
    let c = Capsa::new(&env, "r");
    let image = load_busybox_probe(&env, &c);
    let e = c.fails(&["run", "-d", "--restart", "sometimes", image, "true"]);
    assert!(e.contains("--restart") && e.contains("sometimes"), "{e}");
    let e = c.fails(&["run", "-d", "--restart", "always:3", image, "true"]);
    assert!(e.contains("--restart") && e.contains("on-failure"), "{e}");
    let e = c.fails(&["run", "--rm", "--restart", "always", image, "true"]);
    assert!(e.contains("--restart") && e.contains("--rm"), "{e}");
    assert_eq!(c.ok(&["ps", "-aq"]).trim(), "");
}
