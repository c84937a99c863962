//! Health checks: `--health-*` and the image's HEALTHCHECK, run by the
//! container's monitor as docker's daemon runs them; `ps` and `inspect`
//! show the state, `healthcheck run` runs one by hand.

use capsa_tests::images::load_busybox_probe;
use capsa_tests::registry::Capsa;
use capsa_tests::{until, Env};
use serde_json::Value;

fn health(c: &Capsa, name: &str) -> Value {
    c.inspect(name)["State"]["Health"].clone()
}

fn ps_status(c: &Capsa, name: &str) -> String {
    let out = c.ok(&["ps", "--format", "json"]);
    let all: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    all.as_array()
        .and_then(|a| a.iter().find(|x| x["Names"][0] == name).cloned())
        .map(|x| x["Status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn a_health_check_turns_unhealthy_when_its_file_is_removed() {
    let env = Env::new("health-file");
    let c = Capsa::new(&env, "h");
    let image = load_busybox_probe(&env, &c);
    c.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--health-cmd",
        "cat /ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        image,
        "sh",
        "-c",
        "echo fine > /ok; exec sleep 1000",
    ]);
    until(30, "web healthy", || {
        health(&c, "web")["Status"] == "healthy"
    });
    assert!(
        ps_status(&c, "web").ends_with("(healthy)"),
        "{}",
        ps_status(&c, "web")
    );
    let h = health(&c, "web");
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["ExitCode"].clone(), last["Output"].clone()),
        (0.into(), "fine\n".into())
    );
    let v = c.inspect("web");
    assert_eq!(
        v["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "cat /ok"])
    );
    assert_eq!(v["Config"]["Healthcheck"]["Interval"], 200_000_000);

    c.ok(&["exec", "web", "rm", "/ok"]);
    until(30, "web unhealthy", || {
        health(&c, "web")["Status"] == "unhealthy"
    });
    assert!(
        ps_status(&c, "web").ends_with("(unhealthy)"),
        "{}",
        ps_status(&c, "web")
    );
    let h = health(&c, "web");
    assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h:#}");
    let log = h["Log"].as_array().unwrap();
    assert!(log.len() <= 5, "docker keeps five: {h:#}");
    let last = log.last().unwrap();
    assert_eq!(last["ExitCode"], 1);
    assert!(last["Output"].as_str().unwrap().contains("/ok"), "{h:#}");

    // By hand: exit 1 while failing; once the file is back, 0 and healthy.
    let out = c.run(&["healthcheck", "run", "web"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "unhealthy");
    c.ok(&["exec", "web", "sh", "-c", "echo back > /ok"]);
    c.ok(&["healthcheck", "run", "web"]);
    let h = health(&c, "web");
    assert_eq!(
        (h["Status"].clone(), h["FailingStreak"].clone()),
        ("healthy".into(), 0.into())
    );
}

/// Security (CVE-2016-9962, CVE-2024-21626 class): a probe is a process
/// entering the container, its command the image's; it passes the
/// runtime's door like any exec, and holds none of the monitor's fds (its
/// clients, the container's stdio, the log).
#[test]
fn a_probe_enters_through_the_door_with_no_fd_of_the_monitors() {
    let env = Env::new("health-door");
    let c = Capsa::new(&env, "h");
    let image = load_busybox_probe(&env, &c);
    c.ok(&[
        "run", "-d", "-i", "--name", "fds", "--health-cmd",
        "ls /proc/self/fd | tr '\\n' ' '; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status | tr '\\n\\t' '  '",
        "--health-interval", "100ms", image, "sleep", "1000",
    ]);
    // A client attached: one more fd the monitor holds.
    let mut attached = c
        .cmd(&["attach", "fds"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    until(30, "two probes", || {
        health(&c, "fds")["Log"].as_array().map_or(0, Vec::len) >= 2
    });
    let h = health(&c, "fds");
    let out = h["Log"].as_array().unwrap().last().unwrap()["Output"]
        .as_str()
        .unwrap()
        .to_string();
    // ls's own directory fd is the 3.
    assert!(out.starts_with("0 1 2 3 C"), "{out:?}");
    let init = c.ok(&[
        "exec",
        "fds",
        "grep",
        "-E",
        "^(CapEff|Seccomp|NoNewPrivs):",
        "/proc/1/status",
    ]);
    let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        words(&out)[4..],
        words(&init)[..],
        "the probe has the init's privileges"
    );
    let _ = attached.kill();
    let _ = attached.wait();
}

#[test]
fn a_probe_past_its_timeout_is_killed_and_counts_as_a_failure() {
    let env = Env::new("health-timeout");
    let c = Capsa::new(&env, "h");
    let image = load_busybox_probe(&env, &c);
    c.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 100",
        "--health-timeout",
        "300ms",
        "--health-interval",
        "100ms",
        "--health-retries",
        "1",
        image,
        "sleep",
        "1000",
    ]);
    until(30, "slow unhealthy", || {
        health(&c, "slow")["Status"] == "unhealthy"
    });
    let h = health(&c, "slow");
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], -1, "{h:#}");
    assert!(
        last["Output"]
            .as_str()
            .unwrap()
            .contains("exceeded timeout"),
        "{h:#}"
    );
    // Killed, not left behind: at most the one probe under way runs.
    let procs = c.ok(&["exec", "slow", "ps", "-o", "args"]);
    let probes = procs.lines().filter(|l| l.trim() == "sleep 100").count();
    assert!(probes <= 1, "{procs}");
}

#[test]
fn the_images_healthcheck_runs_unless_told_otherwise() {
    let env = Env::new("health-image");
    let c = Capsa::new(&env, "h");
    let image = load_busybox_probe(&env, &c);
    let ctx = env.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        format!("FROM {image}\nHEALTHCHECK --interval=200ms --retries=1 CMD test -e /ok\n"),
    )
    .unwrap();
    c.ok(&[
        "build",
        "-q",
        "-t",
        "localhost/checked:1",
        ctx.to_str().unwrap(),
    ]);
    c.ok(&[
        "run",
        "-d",
        "--name",
        "img",
        "localhost/checked:1",
        "sh",
        "-c",
        "touch /ok; exec sleep 1000",
    ]);
    until(30, "img healthy", || {
        health(&c, "img")["Status"] == "healthy"
    });
    assert_eq!(
        c.inspect("img")["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -e /ok"])
    );
    // A start period: failures do not count while it lasts.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "warming",
        "--health-start-period",
        "1h",
        "--health-start-interval",
        "100ms",
        "localhost/checked:1",
        "sleep",
        "1000",
    ]);
    until(30, "three failed probes", || {
        health(&c, "warming")["Log"].as_array().map_or(0, Vec::len) >= 3
    });
    let h = health(&c, "warming");
    assert_eq!(
        (h["Status"].clone(), h["FailingStreak"].clone()),
        ("starting".into(), 0.into())
    );
    assert!(ps_status(&c, "warming").ends_with("(health: starting)"));
    // --no-healthcheck: none, whatever the image says.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "plain",
        "--no-healthcheck",
        "localhost/checked:1",
        "sleep",
        "1000",
    ]);
    let v = c.inspect("plain");
    assert_eq!(v["State"]["Health"], Value::Null);
    assert_eq!(
        v["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    let e = c.fails(&["healthcheck", "run", "plain"]);
    assert!(e.contains("no health check"), "{e}");
}

#[test]
fn bad_health_flags_name_the_flag_and_leave_nothing() {
    let env = Env::new("health-bad");
    let c = Capsa::new(&env, "h");
    let image = load_busybox_probe(&env, &c);
    for (args, words) in [
        (&["--health-interval", "5"][..], "--health-interval"),
        (&["--health-timeout", "1x"][..], "--health-timeout"),
        (
            &["--health-start-period", "0s"][..],
            "--health-start-period",
        ),
        (
            &["--no-healthcheck", "--health-cmd", "true"][..],
            "--no-healthcheck",
        ),
    ] {
        let mut a = vec!["run", "-d"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[image, "true"]);
        let e = c.fails(&a);
        assert!(e.contains(words), "{args:?}: {e}");
    }
    assert_eq!(c.ok(&["ps", "-aq"]).trim(), "");
}
