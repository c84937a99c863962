//! Rootless capsa end to end: users the test creates (and removes), with
//! the /etc/subuid ranges useradd gives them, run the engine's commands
//! as themselves: pull from a registry of the test's own, run, exec, logs,
//! bind mounts, published ports, stop and rm.

use capsa_tests::engines::busybox_rootfs_tar;
use capsa_tests::images::{oci_layout, LayerTar};
use capsa_tests::registry::Registry;
use capsa_tests::users::User;
use capsa_tests::{require, skopeo, wait_for, Env};
use serde_json::Value;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

fn tun_open_to_users() -> bool {
    std::fs::metadata("/dev/net/tun").is_ok_and(|m| m.permissions().mode() & 0o006 == 0o006)
}

/// An image of busybox, files of two owners, and a top layer that deletes
/// a file (whiteout) and empties a directory (opaque), pushed to `reg`.
fn push_image(env: &Env, reg: &Registry) -> String {
    let owned = LayerTar::default()
        .dir("owned")
        .owned_file("owned/a", b"a", 1000, 1000)
        .owned_file("owned/b", b"b", 2, 3)
        .dir("gone")
        .file("gone/x", b"x")
        .file("etc/dropped", b"x")
        .bytes();
    let top = LayerTar::default()
        .dir("etc")
        .file("etc/.wh.dropped", b"")
        .dir("gone")
        .file("gone/.wh..wh..opq", b"")
        .file("gone/y", b"y")
        .bytes();
    let layout = env.dir.join("layout");
    oci_layout(
        &layout,
        "v1",
        &[("amd64", vec![busybox_rootfs_tar(), owned, top])],
    );
    let name = format!("{}/rootless/img:v1", reg.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{name}"),
    ]);
    name
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The host's uid of `pid`'s process.
fn host_uid(pid: i64) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn a_user_pulls_runs_execs_publishes_and_removes_as_root_of_its_own_namespace() {
    if !require(
        tun_open_to_users(),
        "/dev/net/tun open to users (udev makes it 0666; .ci/run does here)",
    ) || !require(
        Path::new("/usr/bin/newuidmap").exists(),
        "newuidmap (uidmap)",
    ) || !require(Path::new("/usr/bin/pasta").exists(), "pasta (passt)")
    {
        return;
    }
    let env = Env::new("rl-engine");
    let Some(reg) = Registry::plain(&env, "rootless") else {
        return;
    };
    let img = push_image(&env, &reg);
    let mut user = User::create(&env, "a", true);
    user.ok(&["pull", "-q", &img]);
    let info = user.ok(&["info"]);
    assert!(info.contains("rootless"), "{info}");

    // The image's owners are kept (within the mapped range), whiteouts
    // and opaque directories hide what they should; root inside.
    let out = user.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &img,
        "sh",
        "-c",
        "stat -c %u:%g /owned/a /owned/b; ls /gone; test -e /etc/dropped && echo dropped-seen; id -u",
    ]);
    assert_eq!(out, "1000:1000\n2:3\ny\n0\n");
    // The same through fuse-overlayfs, the fallback where the kernel
    // refuses an overlay in a user namespace (asked for here: this
    // kernel does not refuse).
    user.env = vec!["CAPSA_OVERLAY=fuse".into()];
    let name = "fused";
    let out = user.ok(&[
        "run",
        "--name",
        name,
        "--network",
        "none",
        &img,
        "sh",
        "-c",
        "stat -c %u:%g /owned/a /owned/b; ls /gone; test -e /etc/dropped && echo dropped-seen; echo new > /owned/c; cat /owned/c",
    ]);
    assert_eq!(out, "1000:1000\n2:3\ny\nnew\n");
    let trace = json(&user.ok(&["inspect", name]))[0]["Trace"].to_string();
    assert!(trace.contains("fuse-overlayfs mounted"), "{trace}");
    user.ok(&["rm", name]);

    // Restarts and health probes: the user's own monitor makes the
    // container again and execs the probe, in the user's namespace.
    user.env.clear();
    user.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--network",
        "none",
        "--restart",
        "on-failure:1",
        &img,
        "sh",
        "-c",
        "exit 2",
    ]);
    user.ok(&[
        "run",
        "-d",
        "--name",
        "checked",
        "--network",
        "none",
        "--health-cmd",
        "true",
        "--health-interval",
        "100ms",
        &img,
        "sleep",
        "1000",
    ]);
    capsa_tests::until(30, "again restarted once, checked healthy", || {
        let a = json(&user.ok(&["inspect", "again"]))[0].clone();
        let h = json(&user.ok(&["inspect", "checked"]))[0].clone();
        a["State"]["Status"] == "exited"
            && a["State"]["MonitorPid"] == 0
            && a["RestartCount"] == 1
            && h["State"]["Health"]["Status"] == "healthy"
    });
    user.ok(&["rm", "-f", "again", "checked"]);
    // A user other than the container's root reads through it too.
    let out = user.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "1000",
        &img,
        "sh",
        "-c",
        "id -u; cat /owned/a",
    ]);
    assert_eq!(out, "1000\na");
    user.env.clear();

    // Root inside is the user outside; exec joins it; logs are kept.
    user.ok(&[
        "run",
        "-d",
        "--name",
        "sleeper",
        &img,
        "sh",
        "-c",
        "echo hello-rootless; exec sleep 600",
    ]);
    let pid = json(&user.ok(&["inspect", "sleeper"]))[0]["State"]["Pid"]
        .as_i64()
        .unwrap();
    assert_eq!(host_uid(pid), user.uid, "the container's root on the host");
    assert_eq!(user.ok(&["exec", "sleeper", "id", "-u"]), "0\n");
    // Security: a record naming a container's process (as a pid reused
    // after the pause died would, start time and user namespace matching)
    // is not joined: that would put the command in the container's mounts.
    let record = user.home.join("run/capsa/pause.pid");
    let original = std::fs::read_to_string(&record).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start: u64 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let userns = std::fs::metadata(format!("/proc/{pid}/ns/user"))
        .unwrap()
        .ino();
    std::fs::write(&record, format!("{pid} {start} {userns}\n")).unwrap();
    nix::unistd::chown(&record, Some(user.uid.into()), None).unwrap();
    assert!(user.ok(&["ps"]).contains("sleeper"));
    let now = std::fs::read_to_string(&record).unwrap();
    assert!(
        !now.starts_with(&format!("{pid} ")),
        "the container's process was taken for the pause: {now}"
    );
    // Back to the pause that holds the containers' namespace (the one
    // just started made a namespace of its own, where they are not).
    std::fs::write(&record, original).unwrap();
    // cp both ways: the copy out is the user's on the host.
    let host_file = user.home.join("to-copy");
    std::fs::write(&host_file, "copied-in\n").unwrap();
    nix::unistd::chown(&host_file, Some(user.uid.into()), None).unwrap();
    user.ok(&["cp", host_file.to_str().unwrap(), "sleeper:/copied"]);
    assert_eq!(
        user.ok(&["exec", "sleeper", "cat", "/copied"]),
        "copied-in\n"
    );
    let back = user.home.join("copied-back");
    user.ok(&["cp", "sleeper:/copied", back.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&back).unwrap().uid(), user.uid);
    // stats answers as far as the host allows (no cgroup here: no usage).
    assert!(user
        .ok(&["stats", "--no-stream", "sleeper"])
        .contains("sleeper"));
    // A named volume keeps what a container wrote for the next one.
    user.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "kept:/v",
        &img,
        "sh",
        "-c",
        "echo in-volume > /v/f",
    ]);
    assert_eq!(
        user.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "kept:/v",
            &img,
            "cat",
            "/v/f"
        ]),
        "in-volume\n"
    );
    // save, then load into a fresh store of the same user.
    let archive = user.home.join("img.tar");
    user.ok(&["save", "-o", archive.to_str().unwrap(), &img]);
    let other_store = user.home.join("second-store");
    let loaded = user.ok(&[
        "--root",
        other_store.to_str().unwrap(),
        "load",
        "-i",
        archive.to_str().unwrap(),
    ]);
    assert!(loaded.contains("rootless/img"), "{loaded}");
    // No cgroup: top lists the container's pid namespace instead.
    let top = user.ok(&["top", "sleeper"]);
    assert!(top.contains("sleep 600"), "{top}");
    // The host's network: /sys is bound, not mounted (sysfs is the
    // network namespace owner's to mount).
    let out = user.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        &img,
        "ls",
        "/sys/class/net",
    ]);
    assert!(out.contains("lo"), "{out}");
    // The host's cgroupfs stays out of a rootless container's reach, on
    // its own network and on the host's (where /sys is the host's).
    for net in ["none", "host"] {
        let o = user.run(&[
            "run",
            "--rm",
            "--network",
            net,
            &img,
            "sh",
            "-c",
            "for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/*/tasks; do [ -e $f ] && echo 1 > $f && echo WROTE $f; done; true",
        ]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && !out.contains("WROTE"),
            "--network {net}: {out}"
        );
    }
    // push: what was pulled goes back under another name.
    let pushed = format!("{}/rootless/again:v1", reg.addr);
    user.ok(&["tag", &img, &pushed]);
    user.ok(&["push", "-q", &pushed]);
    skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{pushed}"),
    ]);
    assert!(wait_for(10, || user
        .ok(&["logs", "sleeper"])
        .contains("hello-rootless")));

    // A file written into a bind mount is the user's on the host.
    let data = user.home.join("data");
    std::fs::create_dir_all(&data).unwrap();
    nix::unistd::chown(&data, Some(user.uid.into()), None).unwrap();
    let vol = format!("{}:/data", data.display());
    user.ok(&["run", "--rm", "-v", &vol, &img, "touch", "/data/made"]);
    assert_eq!(
        std::fs::metadata(data.join("made")).unwrap().uid(),
        user.uid
    );

    // --userns keep-id (podman's): the user's own uid inside, the image's
    // owners kept (through fuse-overlayfs's id map), and what it writes
    // into a bind mount is the user's on the host.
    let out = user.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--userns",
        "keep-id",
        "-v",
        &vol,
        &img,
        "sh",
        "-c",
        "id -u; stat -c %u:%g /bin/busybox /owned/a /owned/b; touch /data/kept",
    ]);
    assert_eq!(out, format!("{}\n0:0\n1000:1000\n2:3\n", user.uid));
    assert_eq!(
        std::fs::metadata(data.join("kept")).unwrap().uid(),
        user.uid
    );

    // A published port reaches a server inside, through pasta.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    user.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("{port}:80"),
        &img,
        "sh",
        "-c",
        "echo served-rootless > /index.html; exec httpd -f -p 80 -h /",
    ]);
    assert!(
        wait_for(30, || http_get(port)
            .is_some_and(|r| r.contains("served-rootless"))),
        "port {port} did not reach the container"
    );

    // An image with an owner beyond the user's 65536 ids is refused by
    // name, with what to change.
    let wide = LayerTar::default()
        .owned_file("far", b"f", 70_000, 0)
        .bytes();
    let layout = env.dir.join("wide");
    oci_layout(&layout, "v1", &[("amd64", vec![wide])]);
    let wide_name = format!("{}/rootless/wide:v1", reg.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{wide_name}"),
    ]);
    let e = user.fails(&["pull", "-q", &wide_name]);
    assert!(e.contains("70000") && e.contains("/etc/subuid"), "{e}");

    // Limits need a delegated cgroup, which this host has not.
    let e = user.fails(&["run", "--rm", "--memory", "64m", &img, "true"]);
    assert!(e.contains("rootless") && e.contains("cgroup"), "{e}");
    // A device access mode only the devices cgroup could keep is refused,
    // not dropped in silence; rwm (the node as the user may open it) runs.
    let e = user.fails(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/null:r",
        &img,
        "true",
    ]);
    assert!(e.contains("--device") && e.contains("rwm"), "{e}");
    user.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--device",
        "/dev/zero:/dev/zero2",
        &img,
        "head",
        "-c1",
        "/dev/zero2",
    ]);

    user.ok(&["stop", "-t", "1", "sleeper", "web"]);
    user.ok(&["rm", "sleeper", "web"]);
    assert_eq!(user.ok(&["ps", "-aq"]), "");
    // Nothing of the containers is left: no monitor, no pasta; only the
    // pause process that holds the user's namespace.
    assert!(
        wait_for(10, || user.processes().iter().all(|p| p == "capsa-pause")),
        "left behind: {:?}",
        user.processes()
    );
    assert!(!Path::new(&format!("/tmp/capsa-run-{}", user.uid)).exists());
}

#[test]
fn two_users_keep_apart_and_a_user_without_subids_is_told_what_to_add() {
    if !require(
        Path::new("/usr/bin/newuidmap").exists(),
        "newuidmap (uidmap)",
    ) {
        return;
    }
    let env = Env::new("rl-users");
    let tar = env.dir.join("busybox.tar");
    std::fs::write(&tar, busybox_rootfs_tar()).unwrap();
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (a, b) = (User::create(&env, "a", true), User::create(&env, "b", true));
    a.ok(&["import", tar.to_str().unwrap(), "mine:1"]);
    assert!(a.ok(&["images"]).contains("mine"));
    assert!(!b.ok(&["images"]).contains("mine"));
    let store = a.home.join(".local/share/capsa");
    let m = std::fs::metadata(&store).unwrap();
    assert_eq!(
        (m.uid(), m.permissions().mode() & 0o777),
        (a.uid, 0o700),
        "a's store is a's alone"
    );

    // A pause process that was killed (and, on a host whose init does not
    // reap, left a zombie) is replaced by the next command.
    let _ = Command::new("pkill")
        .args(["-KILL", "-x", "-U", &a.uid.to_string(), "capsa-pause"])
        .output();
    assert!(wait_for(10, || a.processes().is_empty()));
    assert!(a.ok(&["images"]).contains("mine"));
    assert!(
        wait_for(10, || a.processes() == ["capsa-pause"]),
        "{:?}",
        a.processes()
    );
    // Its command line is its own, never the command's that started it.
    let pause = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "capsa-pause")
                && std::fs::metadata(e.path()).is_ok_and(|m| m.uid() == a.uid)
                // The one killed above may linger as a zombie.
                && std::fs::read_to_string(e.path().join("status"))
                    .is_ok_and(|st| !st.contains("State:\tZ"))
        })
        .unwrap();
    let cmdline = std::fs::read(pause.path().join("cmdline")).unwrap();
    assert_eq!(cmdline, b"capsa-pause\0__capsa_pause\0");

    let c = User::create(&env, "c", false);
    let e = c.fails(&["images"]);
    assert!(
        e.contains("/etc/subuid") && e.contains("usermod --add-subuids"),
        "{e}"
    );
}
