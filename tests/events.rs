//! `capsa events`: the log every command and monitor appends to, read
//! back in order, filtered, formatted, and followed as it grows.

use capsa_tests::images::load_busybox_probe;
use capsa_tests::registry::Capsa;
use capsa_tests::Env;
use std::io::BufRead;
use std::time::{Duration, Instant};

fn now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

#[test]
fn events_show_create_start_die_destroy_in_order() {
    let env = Env::new("events-order");
    let c = Capsa::new(&env, "e");
    let image = load_busybox_probe(&env, &c);
    let t0 = now();
    c.ok(&["run", "--rm", "--name", "once", image, "true"]);
    c.ok(&[
        "run",
        "-d",
        "--name",
        "held",
        "-l",
        "team=a",
        image,
        "sh",
        "-c",
        "trap 'exit 143' TERM; sleep 1000 & wait",
    ]);
    c.ok(&["stop", "-t", "5", "held"]);
    c.ok(&["rm", "held"]);
    c.ok(&["volume", "create", "vol"]);
    c.ok(&["volume", "rm", "vol"]);
    c.ok(&["tag", image, "localhost/again:1"]);
    c.ok(&["rmi", "localhost/again:1"]);
    let events = |filters: &[&str], format: &str| {
        let until = now();
        let mut a = vec![
            "events", "--since", &t0, "--until", &until, "--format", format,
        ];
        for f in filters {
            a.extend_from_slice(&["--filter", f]);
        }
        c.ok(&a)
    };
    assert_eq!(
        events(&["container=once"], "{{.Action}}"),
        "create\nstart\ndie\ndestroy\n"
    );
    // stop: the signal, the exit, then the stop, as dockerd's order.
    assert_eq!(
        events(&["container=held"], "{{.Action}} {{.Actor.Attributes.signal}}"),
        "create <no value>\nstart <no value>\nkill 15\ndie <no value>\nstop <no value>\ndestroy <no value>\n"
    );
    assert_eq!(
        events(
            &["event=die"],
            "{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}"
        ),
        "once 0\nheld 143\n"
    );
    assert_eq!(
        events(
            &["label=team=a", "event=start"],
            "{{.Actor.Attributes.name}}"
        ),
        "held\n"
    );
    assert_eq!(
        events(&["type=volume"], "{{.Action}} {{.Actor.ID}}"),
        "create vol\ndestroy vol\n"
    );
    assert_eq!(
        events(&["type=image", "image=localhost/again:1"], "{{.Action}}"),
        "tag\nuntag\n"
    );
    // docker's text lines and JSON.
    let line = events(&["container=once", "event=create"], "table");
    assert!(
        line.contains(" container create ") && line.contains("name=once"),
        "{line}"
    );
    let json: serde_json::Value =
        serde_json::from_str(events(&["container=once", "event=die"], "json").trim()).unwrap();
    assert_eq!(
        (json["Type"].as_str(), json["status"].as_str()),
        (Some("container"), Some("die"))
    );
    let e = c.fails(&["events", "--filter", "colour=red", "--until", &now()]);
    assert!(e.contains("--filter"), "{e}");
}

#[test]
fn events_follow_the_log_as_it_grows() {
    let env = Env::new("events-follow");
    let c = Capsa::new(&env, "e");
    let image = load_busybox_probe(&env, &c);
    // From before the start: nothing is missed however soon it begins.
    let t0 = now();
    let mut follower = c
        .cmd(&[
            "events",
            "--since",
            &t0,
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    c.ok(&[
        "run",
        "-d",
        "--name",
        "probed",
        "--health-cmd",
        "true",
        "--health-interval",
        "100ms",
        image,
        "sleep",
        "1000",
    ]);
    capsa_tests::until(30, "probed healthy", || {
        c.ok(&["ps", "--format", "{{.Status}}"])
            .contains("(healthy)")
    });
    c.ok(&["rm", "-f", "probed"]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|l: &String| l == "destroy probed") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no destroy within 30 s: {seen:?}"),
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let pos = |w: &str| {
        seen.iter()
            .position(|l| l == w)
            .unwrap_or_else(|| panic!("{w}: {seen:?}"))
    };
    assert!(pos("create probed") < pos("start probed"), "{seen:?}");
    assert!(
        pos("start probed") < pos("health_status: healthy probed"),
        "{seen:?}"
    );
    assert!(pos("die probed") < pos("destroy probed"), "{seen:?}");
}
