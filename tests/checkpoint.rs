//! `checkpoint` and `restore` through CRIU's RPC, on the real kernel with
//! a CRIU that passes `criu check` here (scripts/criu.sh builds one; CI
//! runs it and sets CAPSA_CRIU).

use capsa_tests::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// The CRIU to use: `$CAPSA_CRIU`, else what scripts/criu.sh built. Under
/// CI its absence fails; elsewhere the test says it is skipped.
fn criu() -> Option<PathBuf> {
    let p = std::env::var_os("CAPSA_CRIU")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/capsa-criu/criu"));
    let works = std::process::Command::new(&p)
        .arg("check")
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        assert!(
            std::env::var_os("CI").is_none(),
            "no working CRIU at {} (run scripts/criu.sh)",
            p.display()
        );
        eprintln!(
            "SKIPPED: no working CRIU at {} (run scripts/criu.sh)",
            p.display()
        );
        return None;
    }
    Some(p)
}

/// capsa-runtime with `--criu` and stdio on pipes this test holds (CRIU
/// dumps a pipe and a restore hands over new ones; a file of ours or the
/// host's /dev/null it could not restore). Waits for the command.
fn rt_piped(env: &Env, criu: &Path, args: &[&str]) -> (std::process::ExitStatus, String, Child) {
    let mut c = env.cmd(&[&["--criu", criu.to_str().unwrap()][..], args].concat());
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    // The container keeps the write ends: read only what is there.
    let mut err = String::new();
    if !status.success() {
        use std::io::Read;
        let mut buf = vec![0u8; 64 << 10];
        let fd = child.stderr.as_mut().unwrap();
        nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .unwrap();
        if let Ok(n) = fd.read(&mut buf) {
            err = String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    (status, err, child)
}

/// The test's ends of a command's stdio pipes (the command was waited
/// for; the container it made may still hold the other ends).
type Pipes = (
    Option<std::process::ChildStdin>,
    Option<std::process::ChildStdout>,
    Option<std::process::ChildStderr>,
);

/// [`rt_piped`], required to succeed; returns the pipes, to keep open.
fn rt_piped_ok(env: &Env, criu: &Path, args: &[&str]) -> Pipes {
    let (s, e, mut child) = rt_piped(env, criu, args);
    assert!(s.success(), "{}: {e}", args[0]);
    (child.stdin.take(), child.stdout.take(), child.stderr.take())
}

fn count(p: &Path) -> u64 {
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A container counting into a bind-mounted host directory: its counter
/// lives in the shell's memory, so a restored one goes on from where the
/// dump left it, and a restarted one would begin at 1.
fn counting(env: &Env) -> (Bundle, PathBuf) {
    let data = env.dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut b = env.bundle("b");
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"] }));
    b.args(&[
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /data/count; sleep 0.05; done",
    ]);
    (b, data.join("count"))
}

#[test]
fn checkpoint_then_restore_continues_the_process_where_it_was() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr");
    let (b, counter) = counting(&env);
    let id = env.id("c");
    let _run = rt_piped_ok(&env, &criu, &["run", "-d", "-b", b.path(), &id]);
    assert!(wait_for(10, || count(&counter) >= 5));
    let images = env.dir.join("images");
    let _ = rt_piped_ok(
        &env,
        &criu,
        &["checkpoint", "--image-path", images.to_str().unwrap(), &id],
    );
    // Dumped and gone, as runc's checkpoint leaves it.
    assert_ne!(env.rt(&["state", &id]).status.code(), Some(0));
    let at_dump = count(&counter);
    assert!(images.join("inventory.img").exists());
    let fds: Vec<String> =
        serde_json::from_slice(&std::fs::read(images.join("descriptors.json")).unwrap()).unwrap();
    assert!(fds.iter().all(|f| f.starts_with("pipe:")), "{fds:?}");
    assert_eq!(
        count(&counter),
        at_dump,
        "the process ran on after the dump"
    );

    // Restored under another id and into another cgroup than the dump's:
    // the new container's, in every hierarchy.
    let mut b = b;
    b.config["linux"]["cgroupsPath"] = json!(format!("/{}/restored", env.cgroup_parent));
    b.save();
    let id = env.id("r");
    let _restored = rt_piped_ok(
        &env,
        &criu,
        &[
            "restore",
            "-d",
            "--image-path",
            images.to_str().unwrap(),
            "-b",
            b.path(),
            &id,
        ],
    );
    assert_eq!(env.state(&id)["status"], "running");
    // It goes on from its count: never back to 1.
    assert!(wait_for(10, || count(&counter) > at_dump + 3));
    // In the container's cgroup, and reachable as any container.
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mine = format!("/{}/restored", env.cgroup_parent);
    assert!(
        cg.lines()
            .filter(|l| !l.contains("name="))
            .all(|l| l.ends_with(&mine)),
        "{cg}"
    );
    let out = env.rt_ok(&["exec", &id, "cat", "/data/count"]);
    assert!(out.trim().parse::<u64>().unwrap() > at_dump);
    env.rt_ok(&["delete", "--force", &id]);
    env.assert_gone(&id);
}

#[test]
fn leave_running_keeps_the_container_and_a_dump_can_build_on_a_pre_dump() {
    let Some(criu) = criu() else { return };
    let env = Env::new("crleave");
    let (b, counter) = counting(&env);
    let id = env.id("c");
    let _run = rt_piped_ok(&env, &criu, &["run", "-d", "-b", b.path(), &id]);
    assert!(wait_for(10, || count(&counter) >= 2));
    let images = env.dir.join("images");
    let _ = rt_piped_ok(
        &env,
        &criu,
        &[
            "checkpoint",
            "--leave-running",
            "--image-path",
            images.to_str().unwrap(),
            &id,
        ],
    );
    assert!(images.join("inventory.img").exists());
    assert_eq!(env.state(&id)["status"], "running");
    let before = count(&counter);
    assert!(wait_for(10, || count(&counter) > before));

    // A pre-dump needs the kernel's soft-dirty bits: where CRIU says they
    // are missing, it is refused in so many words; else a dump builds on it.
    let tracks = std::process::Command::new(&criu)
        .args(["check", "--feature", "mem_dirty_track"])
        .output()
        .is_ok_and(|o| o.status.success());
    let parent = env.dir.join("parent");
    let (s, e, _) = rt_piped(
        &env,
        &criu,
        &[
            "checkpoint",
            "--pre-dump",
            "--image-path",
            parent.to_str().unwrap(),
            &id,
        ],
    );
    if !tracks {
        assert!(!s.success());
        assert!(
            e.contains("--pre-dump: CRIU cannot track memory changes"),
            "{e}"
        );
        assert_eq!(env.state(&id)["status"], "running");
        return;
    }
    assert!(s.success(), "pre-dump: {e}");
    let images = env.dir.join("images2");
    let _ = rt_piped_ok(
        &env,
        &criu,
        &[
            "checkpoint",
            "--parent-path",
            "../parent",
            "--image-path",
            images.to_str().unwrap(),
            &id,
        ],
    );
    assert!(images.join("inventory.img").exists());
}

/// What can be refused before CRIU runs is, with the flag named, and the
/// container is left as it was.
#[test]
fn bad_checkpoint_arguments_and_a_missing_criu_are_clear_errors() {
    let Some(criu) = criu() else { return };
    let env = Env::new("crbad");
    let (b, _) = counting(&env);
    let id = env.id("c");
    let _run = rt_piped_ok(&env, &criu, &["run", "-d", "-b", b.path(), &id]);
    let images = env.dir.join("images");
    let img = images.to_str().unwrap();
    let abs = env.dir.join("parent");
    for (args, words) in [
        (
            vec!["--parent-path", abs.to_str().unwrap()],
            "--parent-path",
        ),
        (vec!["--parent-path", "./nowhere"], "--parent-path"),
        (
            vec!["--manage-cgroups-mode", "bogus"],
            "--manage-cgroups-mode",
        ),
        (vec!["--empty-ns", "pid"], "--empty-ns"),
    ] {
        let mut all = vec![
            "--criu",
            criu.to_str().unwrap(),
            "checkpoint",
            "--image-path",
            img,
        ];
        all.extend(args.iter().copied());
        all.push(&id);
        let o = env.rt(&all);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains(words), "{args:?}: {}", stderr(&o));
    }
    let o = env.rt(&[
        "--criu",
        "/nonexistent/criu",
        "checkpoint",
        "--image-path",
        img,
        &id,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot run CRIU /nonexistent/criu"),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.state(&id)["status"], "running");
    let o = env.rt(&[
        "--criu",
        criu.to_str().unwrap(),
        "checkpoint",
        "--image-path",
        img,
        "nosuch",
    ]);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

/// An image directory is input from anywhere: a malformed one fails the
/// restore clearly and leaves no state or cgroup behind.
#[test]
fn restore_from_a_bad_image_fails_and_leaves_nothing() {
    let Some(criu) = criu() else { return };
    let env = Env::new("crbadimg");
    let (b, _) = counting(&env);
    let images = env.dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let id = env.id("c");
    let restore = |env: &Env| {
        env.rt(&[
            "--criu",
            criu.to_str().unwrap(),
            "restore",
            "-d",
            "--image-path",
            images.to_str().unwrap(),
            "-b",
            b.path(),
            &id,
        ])
    };
    let o = restore(&env);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("descriptors.json"), "{}", stderr(&o));
    std::fs::write(images.join("descriptors.json"), "not json").unwrap();
    let o = restore(&env);
    assert!(stderr(&o).contains("descriptors.json"), "{}", stderr(&o));
    // Well-formed, but no images: CRIU itself fails, with its log named.
    std::fs::write(images.join("descriptors.json"), "[\"/dev/null\"]").unwrap();
    let o = restore(&env);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("criu failed") && stderr(&o).contains("restore.log"),
        "{}",
        stderr(&o)
    );
    // A FIFO for descriptors.json is refused, not waited on forever.
    std::fs::remove_file(images.join("descriptors.json")).unwrap();
    nix::unistd::mkfifo(
        &images.join("descriptors.json"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let o = restore(&env);
    assert!(stderr(&o).contains("descriptors.json"), "{}", stderr(&o));
    env.assert_gone(&id);
    let cg = Path::new("/sys/fs/cgroup/memory")
        .join(&env.cgroup_parent)
        .join("b");
    assert!(!cg.exists(), "{} left behind", cg.display());
}

/// A container with a terminal: CRIU dumps its pty slave without the
/// master (held outside), and a restore gets a new master, which goes to
/// the console socket as at create.
#[test]
fn a_terminal_container_is_restored_with_a_new_master_on_the_console_socket() {
    use std::os::unix::net::UnixListener;
    let Some(criu) = criu() else { return };
    let env = Env::new("crtty");
    let (mut b, counter) = counting(&env);
    b.config["process"]["terminal"] = json!(true);
    b.save();
    let id = env.id("c");
    let sock = env.dir.join("tty.sock");
    let rx = receive_master(UnixListener::bind(&sock).unwrap());
    let s = sock.to_str().unwrap();
    let _run = rt_piped_ok(
        &env,
        &criu,
        &["run", "-d", "--console-socket", s, "-b", b.path(), &id],
    );
    let _master = rx.join().unwrap();
    assert!(wait_for(10, || count(&counter) >= 3));
    let images = env.dir.join("images");
    let img = images.to_str().unwrap();
    let _ = rt_piped_ok(&env, &criu, &["checkpoint", "--image-path", img, &id]);
    let at_dump = count(&counter);
    std::fs::remove_file(&sock).unwrap();
    let rx = receive_master(UnixListener::bind(&sock).unwrap());
    let _ = rt_piped_ok(
        &env,
        &criu,
        &[
            "restore",
            "-d",
            "--console-socket",
            s,
            "--image-path",
            img,
            "-b",
            b.path(),
            &id,
        ],
    );
    let master = rx.join().unwrap();
    assert!(nix::unistd::isatty(std::os::fd::AsRawFd::as_raw_fd(&master)).unwrap());
    assert!(wait_for(10, || count(&counter) > at_dump + 2));
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let tty = std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
    assert!(
        tty.display().to_string().contains("pts"),
        "{}",
        tty.display()
    );
}

/// A network namespace the container joined by path is left to its owner:
/// CRIU dumps none of it, and the restored container is in that same
/// namespace again.
#[test]
fn a_joined_network_namespace_is_joined_again_on_restore() {
    use std::os::unix::fs::MetadataExt;
    let Some(criu) = criu() else { return };
    let env = Env::new("crnetns");
    // A namespace of the test's own, kept by a bind on a file of its dir
    // (the Env unmounts what is under its dir).
    let ns = env.dir.join("netns");
    std::fs::write(&ns, "").unwrap();
    let made = std::process::Command::new("unshare")
        .arg(format!("--net={}", ns.display()))
        .arg("true")
        .status()
        .unwrap();
    assert!(made.success());
    let ino = std::fs::metadata(&ns).unwrap().ino();
    let (mut b, counter) = counting(&env);
    for n in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "network" {
            n["path"] = json!(ns);
        }
    }
    b.save();
    let id = env.id("c");
    let _run = rt_piped_ok(&env, &criu, &["run", "-d", "-b", b.path(), &id]);
    assert!(wait_for(10, || count(&counter) >= 2));
    let images = env.dir.join("images");
    let img = images.to_str().unwrap();
    let _ = rt_piped_ok(&env, &criu, &["checkpoint", "--image-path", img, &id]);
    let _ = rt_piped_ok(
        &env,
        &criu,
        &["restore", "-d", "--image-path", img, "-b", b.path(), &id],
    );
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let net = std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .ino();
    assert_eq!(net, ino);
}

/// CRIU, as root, creates its log in the image (or work) directory by
/// name, following links: a directory others can write to could hold a
/// link to a host file, which CRIU would truncate. Such a directory is
/// refused before CRIU runs, and the host file is untouched.
#[test]
fn an_image_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let Some(criu) = criu() else { return };
    let env = Env::new("crlink");
    let (b, _) = counting(&env);
    let victim = env.dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let images = env.dir.join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::set_permissions(&images, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::symlink(&victim, images.join("restore.log")).unwrap();
    std::os::unix::fs::symlink(&victim, images.join("dump.log")).unwrap();
    std::fs::write(images.join("descriptors.json"), "[]").unwrap();
    let id = env.id("c");
    let img = images.to_str().unwrap();
    let c = criu.to_str().unwrap();
    let o = env.rt(&[
        "--criu",
        c,
        "restore",
        "-d",
        "--image-path",
        img,
        "-b",
        b.path(),
        &id,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not writable by group or others"),
        "{}",
        stderr(&o)
    );
    let _run = rt_piped_ok(&env, &criu, &["run", "-d", "-b", b.path(), &id]);
    let o = env.rt(&["--criu", c, "checkpoint", "--image-path", img, &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not writable by group or others"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(env.state(&id)["status"], "running");
}

/// A container that may mount (CAP_SYS_ADMIN) covers its read-only bind
/// with a tmpfs of its own: CRIU, which knows external mounts by mount
/// point, would restore both as the host source, the top one writable.
/// The dump is refused while anything is stacked on an external mount,
/// and the host directory stays read-only to the container.
#[test]
fn a_mount_stacked_on_a_bind_refuses_the_dump() {
    let Some(criu) = criu() else { return };
    let env = Env::new("crstack");
    let host = env.dir.join("host");
    std::fs::create_dir_all(&host).unwrap();
    let mut b = env.bundle("b");
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({ "destination": "/ro", "type": "bind", "source": host, "options": ["rbind", "ro"] }),
    );
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYS_ADMIN"));
    }
    b.config["linux"]["seccomp"] = json!(null);
    b.args(&[
        "sh",
        "-c",
        "mount -t tmpfs none /ro && touch /ro/ready && sleep 1000",
    ]);
    let id = env.id("c");
    let _run = rt_piped_ok(&env, &criu, &["run", "-d", "-b", b.path(), &id]);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert!(wait_for(10, || Path::new(&format!(
        "/proc/{pid}/root/ro/ready"
    ))
    .exists()));
    let images = env.dir.join("images");
    let img = images.to_str().unwrap();
    let (s, e, _) = rt_piped(&env, &criu, &["checkpoint", "--image-path", img, &id]);
    if s.success() {
        // Without the refusal: show what the restore would have made.
        let (_, e, _) = rt_piped(
            &env,
            &criu,
            &["restore", "-d", "--image-path", img, "-b", b.path(), &id],
        );
        let o = env.rt(&["exec", &id, "touch", "/ro/escaped"]);
        panic!(
            "dumped; restore: {e}; touch /ro/escaped: {:?}; on the host: {}",
            o.status.code(),
            host.join("escaped").exists()
        );
    }
    assert!(e.contains("/ro has mounts stacked on it"), "{e}");
    assert_eq!(env.state(&id)["status"], "running");
}

/// A CRIU configuration can name scripts CRIU runs as root: one inside
/// the container's rootfs, or one others can write, is refused.
#[test]
fn a_criu_config_the_container_could_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let Some(criu) = criu() else { return };
    let env = Env::new("crconf");
    let (mut b, _) = counting(&env);
    let inside = b.rootfs().join("etc/criu.conf");
    std::fs::write(&inside, "action-script=/bin/true\n").unwrap();
    let writable = env.dir.join("open.conf");
    std::fs::write(&writable, "").unwrap();
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).unwrap();
    let c = criu.to_str().unwrap();
    for (conf, words) in [
        (&inside, "inside the container's rootfs"),
        (&writable, "is not root's alone"),
    ] {
        b.config["annotations"] = json!({ "org.criu.config": conf });
        b.config["linux"]["cgroupsPath"] =
            json!(format!("/{}/c{}", env.cgroup_parent, words.len()));
        b.save();
        let id = env.id(&format!("c{}", words.len()));
        let _run = rt_piped_ok(&env, &criu, &["run", "-d", "-b", b.path(), &id]);
        let img = env.dir.join(format!("images{}", words.len()));
        let o = env.rt(&[
            "--criu",
            c,
            "checkpoint",
            "--image-path",
            img.to_str().unwrap(),
            &id,
        ]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(words), "{}", stderr(&o));
        assert_eq!(env.state(&id)["status"], "running");
    }
}
