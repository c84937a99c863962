//! What comes out of a container or an image, on the host (issue 14):
//! `capsa cp` without image rules, files of the image read only when they
//! are regular files, layers whose whiteouts would climb out.

use capsa_tests::engines::busybox_rootfs_tar;
use capsa_tests::images::{load_busybox_probe, oci_layout, oci_layout_with, LayerTar};
use capsa_tests::registry::Capsa;
use capsa_tests::*;
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

fn setup(name: &str) -> (Env, Capsa, &'static str) {
    let env = Env::new(name);
    let c = Capsa::new(&env, "c");
    let img = load_busybox_probe(&env, &c);
    (env, c, img)
}

/// A running container `box` that did `script` first.
fn run_box(c: &Capsa, img: &str, script: &str) {
    let full = format!("{script} && touch /ready && sleep 100");
    c.ok(&["run", "-d", "--name", "box", img, "sh", "-c", &full]);
    assert!(wait_for(10, || c
        .run(&["exec", "box", "test", "-e", "/ready"])
        .status
        .success()));
}

/// A container's file named `.wh...` once made `capsa cp` apply a whiteout
/// of `..`, emptying the host's destination. A copy has no whiteouts: the
/// names are plain files and the destination keeps what it had.
#[test]
fn cp_applies_no_whiteout_rules_and_keeps_the_destination() {
    let (env, c, img) = setup("hs-cpwh");
    run_box(
        &c,
        img,
        "mkdir /d && touch /d/.wh... /d/.wh..wh..opq /d/.wh.a && echo a > /d/a",
    );
    let dest = env.dir.join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("keep"), "mine").unwrap();
    c.ok(&["cp", "box:/d", &format!("{}/", dest.display())]);
    assert_eq!(std::fs::read_to_string(dest.join("keep")).unwrap(), "mine");
    for f in [".wh...", ".wh..wh..opq", ".wh.a"] {
        let m = std::fs::symlink_metadata(dest.join("d").join(f)).unwrap();
        assert!(m.is_file(), "{f} is not a plain file: {m:?}");
    }
    assert_eq!(std::fs::read_to_string(dest.join("d/a")).unwrap(), "a\n");
}

/// An image layer whose whiteout names `..` is refused by name at load,
/// and nothing above the layer is removed.
#[test]
fn a_layer_whiteout_of_dot_dot_is_refused() {
    let env = Env::new("hs-layerwh");
    let c = Capsa::new(&env, "c");
    let layout = env.dir.join("layout");
    let evil = LayerTar::default().dir("d").file("d/.wh...", b"").bytes();
    oci_layout(
        &layout,
        "wh",
        &[("amd64", vec![busybox_rootfs_tar(), evil])],
    );
    // Layers are unpacked when first needed: at load or at the first run.
    let o = c.run(&["load", "-q", "-i", layout.to_str().unwrap()]);
    let e = if o.status.success() {
        c.fails(&["run", "--rm", "localhost/imported:wh", "true"])
    } else {
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    assert!(
        e.contains("d/.wh...") && e.contains("whiteout of . or .."),
        "{e}"
    );
    // Nothing above the refused layer was removed: the store's blobs are
    // all there and it still reads.
    let blobs = std::fs::read_dir(c.store.join("blobs/sha256"))
        .unwrap()
        .count();
    assert!(blobs >= 4, "blobs removed: {blobs} left");
    c.ok(&["images"]);
}

/// `cp` gives the copy the destination user's ids and drops set-id bits,
/// as `docker cp` does; `-a` keeps both.
#[test]
fn cp_keeps_owners_and_set_id_bits_only_in_archive_mode() {
    let (env, c, img) = setup("hs-cpown");
    run_box(
        &c,
        img,
        "echo x > /f && chown 1234:5678 /f && chmod 4755 /f",
    );
    let plain = env.dir.join("plain");
    let kept = env.dir.join("kept");
    c.ok(&["cp", "box:/f", plain.to_str().unwrap()]);
    c.ok(&["cp", "-a", "box:/f", kept.to_str().unwrap()]);
    let p = std::fs::metadata(&plain).unwrap();
    assert_eq!((p.uid(), p.gid()), (0, 0));
    assert_eq!(p.mode() & 0o7777, 0o755, "set-uid kept without -a");
    let k = std::fs::metadata(&kept).unwrap();
    assert_eq!((k.uid(), k.gid()), (1234, 5678));
    assert_eq!(k.mode() & 0o7777, 0o4755);
}

/// `capsa` run under `timeout`: a host-side open of a FIFO would hang it.
fn run_bounded(c: &Capsa, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("60").arg(&c.bin).args(args);
    for (k, v) in c.cmd(&[]).get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.stdin(std::process::Stdio::null()).output().unwrap()
}

/// An image whose `/etc/passwd` is a FIFO, and whose VOLUME holds a FIFO
/// beside a file: nothing hangs, the user lookup fails by name, the volume
/// gets the file and not the FIFO.
#[test]
fn a_fifo_in_the_image_is_never_opened_by_the_host() {
    let env = Env::new("hs-fifo");
    let c = Capsa::new(&env, "c");
    let fifo_layer = || {
        let mut b = tar::Builder::new(Vec::new());
        for path in ["etc/passwd", "data/pipe"] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Fifo);
            h.set_mode(0o644);
            h.set_size(0);
            b.append_data(&mut h, path, std::io::empty()).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(5);
        b.append_data(&mut h, "data/file", &b"seed\n"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let layout = env.dir.join("layout");
    oci_layout_with(
        &layout,
        "fifo",
        &[("amd64", vec![busybox_rootfs_tar(), fifo_layer()])],
        serde_json::json!({"Volumes": {"/data": {}}}),
    );
    c.ok(&["load", "-q", "-i", layout.to_str().unwrap()]);
    let img = "localhost/imported:fifo";
    let o = run_bounded(&c, &["run", "--rm", "-u", "someone", img, "true"]);
    assert_ne!(o.status.code(), Some(124), "capsa hung on the FIFO");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("someone"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run_bounded(&c, &["run", "--rm", img, "ls", "/data"]);
    assert_ne!(o.status.code(), Some(124), "capsa hung on the FIFO");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("file"),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.contains("pipe"), "the FIFO was seeded: {out}");
}

/// `kill --all` freezes the cgroup, signals every member, then thaws: a
/// container that forks as fast as it can (no pid namespace, so killing
/// its first process does not end the rest) loses every process at once.
#[test]
fn kill_all_leaves_no_process_that_forked_during_the_walk() {
    let env = Env::new("hs-killall");
    let mut b = env.bundle("b");
    b.without_namespace("pid");
    b.config["linux"]["resources"] = serde_json::json!({"pids": {"limit": 200}});
    // Eight loops forking up to the pids limit: as the walk kills some,
    // the others fill the freed slots with processes it never listed.
    b.args(&[
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do (while :; do sleep 60 & done) & done; wait",
    ]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let procs = || {
        let cg = format!("/sys/fs/cgroup/pids/{}/b/cgroup.procs", env.cgroup_parent);
        std::fs::read_to_string(cg)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    assert!(
        wait_for(10, || procs() > 150),
        "the container is not forking"
    );
    env.rt_ok(&["kill", "--all", &id, "KILL"]);
    assert!(
        wait_for(5, || procs() == 0),
        "{} processes left after kill --all",
        procs()
    );
}

/// Runtime state is the container's whole config, secrets included: 0700
/// directories and 0600 files, closed to another user.
#[test]
fn runtime_state_is_private_and_a_foreign_state_file_is_refused() {
    let env = Env::new("hs-state");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["create", "-b", b.path(), &id]);
    let dir = env.root.join(&id);
    let st = dir.join("state.json");
    assert_eq!(std::fs::metadata(&env.root).unwrap().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&st).unwrap().mode() & 0o777, 0o600);
    let o = as_other_user(&["cat", st.to_str().unwrap()]);
    assert!(!o.status.success(), "uid 1000 read the state");
    // A state file others can write is not ours to trust.
    std::fs::set_permissions(&st, std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = env.rt(&["state", &id]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not written by us"), "{}", stderr(&o));
    std::fs::set_permissions(&st, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.rt_ok(&["delete", "--force", &id]);
}

/// Without XDG_RUNTIME_DIR the rootless state goes to TMPDIR: a directory
/// another user made there first is refused, not used.
#[test]
fn a_premade_rootless_state_directory_is_refused() {
    let env = Env::new("hs-tmpstate");
    let tmp = env.dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = tmp.join("capsa-runtime-1000");
    std::fs::create_dir(&planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid", "1000", "--regid", "1000", "--clear-groups"])
            .arg(&env.runtime)
            .args(args)
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", &tmp)
            .output()
            .unwrap()
    };
    let o = run(&["list"]);
    assert!(!o.status.success(), "a foreign state directory was used");
    assert!(stderr(&o).contains("refusing it"), "{}", stderr(&o));
    // Once it is gone, the runtime makes its own, 0700.
    std::fs::remove_dir(&planted).unwrap();
    let o = run(&["list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = std::fs::metadata(&planted).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (1000, 0o700));
}

/// The monitor's attach socket is 0600 whatever the caller's umask.
#[test]
fn attach_sockets_are_private() {
    let (_env, c, img) = setup("hs-sock");
    c.ok(&["run", "-d", "--name", "s", img, "sleep", "100"]);
    let socks: Vec<_> = std::fs::read_dir(c.run.join("sock"))
        .unwrap()
        .flatten()
        .collect();
    assert!(!socks.is_empty(), "no attach socket");
    for s in socks {
        let mode = s.metadata().unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", s.path().display());
    }
}

/// A container starts with umask 0022 unless the spec sets one, whatever
/// the umask of whoever ran the runtime.
#[test]
fn the_container_umask_is_0022_not_the_callers() {
    let env = Env::new("hs-umask");
    let mut b = env.bundle("b");
    b.args(&["sh", "-c", "umask"]);
    let id = env.id("c");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 077; exec \"$@\"")
        .arg("sh")
        .arg(&env.runtime)
        .args([
            "--root",
            env.root.to_str().unwrap(),
            "run",
            "-b",
            b.path(),
            &id,
        ]);
    let o = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0022");
}

/// A layer that inflates a thousand times (100 MiB of zeros in a few
/// hundred kilobytes of gzip) is refused as a bomb before it fills the
/// disk, and nothing of it is kept.
#[test]
fn a_gzip_bomb_layer_is_refused() {
    let env = Env::new("hs-bomb");
    let c = Capsa::new(&env, "c");
    let bomb = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(100 << 20);
        b.append_data(&mut h, "zeros", std::io::repeat(0).take(100 << 20))
            .unwrap();
        b.into_inner().unwrap()
    };
    let e = load_and_run_error(&env, &c, "bomb", bomb);
    assert!(e.contains("decompression bomb"), "{e}");
    // No layer directory holds the zeros.
    let layers = c.store.join("layers");
    let big = std::fs::read_dir(&layers)
        .map(|rd| rd.flatten().any(|l| l.path().join("diff/zeros").exists()))
        .unwrap_or(false);
    assert!(!big, "the bomb's file was kept");
}

/// Rewrite the layout's one manifest with `edit`, under its new digest.
fn edit_manifest(layout: &std::path::Path, edit: impl Fn(&mut serde_json::Value)) {
    use sha2::Digest as _;
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&blob).unwrap()).unwrap();
    edit(&mut m);
    let bytes = serde_json::to_vec(&m).unwrap();
    let hex: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(layout.join("blobs/sha256").join(&hex), &bytes).unwrap();
    index["manifests"][0]["digest"] = serde_json::json!(format!("sha256:{hex}"));
    index["manifests"][0]["size"] = serde_json::json!(bytes.len());
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// CVE-2021-41190: a document that is both an index and a manifest, and
/// a manifest whose media type is not the one its descriptor names, are
/// refused by name.
#[test]
fn ambiguous_and_type_confused_manifests_are_refused() {
    let env = Env::new("hs-confused");
    let c = Capsa::new(&env, "c");
    let both = env.dir.join("both");
    oci_layout(&both, "both", &[("amd64", vec![busybox_rootfs_tar()])]);
    edit_manifest(&both, |m| m["manifests"] = serde_json::json!([]));
    let e = c.fails(&["load", "-q", "-i", both.to_str().unwrap()]);
    assert!(e.contains("ambiguous"), "{e}");
    let confused = env.dir.join("confused");
    oci_layout(
        &confused,
        "confused",
        &[("amd64", vec![busybox_rootfs_tar()])],
    );
    edit_manifest(&confused, |m| {
        m["mediaType"] = serde_json::json!("application/vnd.docker.distribution.manifest.v2+json")
    });
    let e = c.fails(&["load", "-q", "-i", confused.to_str().unwrap()]);
    assert!(e.contains("mediaType") && e.contains("served"), "{e}");
}

/// A container grows a file while `capsa cp` reads it, appending blocks
/// that are tar headers of its own (an entry `pwned` beside the copy).
/// The copy takes exactly the size it announced, so nothing but what was
/// asked for lands on the host.
#[test]
fn a_file_growing_during_cp_cannot_inject_entries() {
    let (env, c, img) = setup("hs-cpgrow");
    let blocks = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(0);
        b.append_data(&mut h, "pwned", std::io::empty()).unwrap();
        b.into_inner().unwrap() // the header and two zero blocks
    };
    let vol = env.dir.join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("blk"), &blocks).unwrap();
    let mount = format!("{}:/in", vol.display());
    c.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "-v",
        &mount,
        img,
        "sh",
        "-c",
        "mkdir /log && touch /ready && while :; do cat /in/blk >> /log/app.log; done",
    ]);
    assert!(wait_for(10, || c
        .run(&["exec", "box", "test", "-s", "/log/app.log"])
        .status
        .success()));
    let dest = env.dir.join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    for _ in 0..5 {
        let o = c.run(&["cp", "box:/log", &format!("{}/", dest.display())]);
        if !o.status.success() {
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(e.contains("changed size"), "{e}");
        }
        assert!(
            !dest.join("pwned").exists(),
            "an injected entry landed on the host"
        );
        let names: Vec<_> = std::fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names.iter().all(|n| n == "log"), "{names:?}");
    }
}

/// A store whose filesystem fills up (a 24 MiB tmpfs): the load or run
/// that cannot fit fails naming the cause, and the store stays readable
/// and usable for what does fit.
#[test]
fn a_full_store_fails_clearly_and_stays_consistent() {
    let env = Env::new("hs-full");
    let mut c = Capsa::new(&env, "c");
    let small = env.dir.join("small");
    env.mount_tmpfs(&small, Some("24m"));
    c.store = small.join("store");
    c.run = small.join("run");
    // 40 MiB of random bytes: too much for the store, in any form.
    let big = {
        let mut data = vec![0u8; 40 << 20];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, "big", &data[..]).unwrap();
        b.into_inner().unwrap()
    };
    let e = load_and_run_error(&env, &c, "big", big);
    assert!(e.contains("No space left on device"), "{e}");
    // The store still reads, and a small image still loads and runs.
    c.ok(&["images"]);
    let tiny = env.dir.join("tiny");
    oci_layout(&tiny, "tiny", &[("amd64", vec![busybox_rootfs_tar()])]);
    c.ok(&["load", "-q", "-i", tiny.to_str().unwrap()]);
    let out = c.ok(&["run", "--rm", "localhost/imported:tiny", "echo", "fits"]);
    assert_eq!(out.trim(), "fits");
}

/// `capsa-runtime create` killed by SIGKILL once its cgroup and init
/// exist (here while a prestart hook runs, before any state is saved):
/// the init notices the runtime is gone, and `delete -f` removes the
/// cgroup it noted first. Nothing is left. (Before: the init waited
/// forever on a channel it held both ends of, and the cgroup stayed.)
#[test]
fn a_create_killed_midway_is_cleaned_by_delete_force() {
    let env = Env::new("hs-k9create");
    let mut b = env.bundle("b");
    let marker = env.dir.join("hook-ran");
    let go = env.fifo("go");
    b.config["hooks"] = serde_json::json!({
        "prestart": [{ "path": "/bin/sh",
            "args": ["sh", "-c", format!("touch {}; read x < {}", marker.display(), go.display())] }]
    });
    b.args(&["true"]);
    let id = env.id("c");
    let mut create = env.spawn_rt(&["create", "-b", b.path(), &id]);
    assert!(wait_for(10, || marker.exists()), "the hook never ran");
    create.kill().unwrap();
    create.wait().unwrap();
    // Release the hook (its parent is gone; it ends on its own).
    std::fs::write(&go, "go\n").unwrap();
    env.rt_ok(&["delete", "--force", &id]);
    let runtime = env.runtime.display().to_string();
    assert!(
        wait_for(10, || Command::new("pgrep")
            .args(["-f", &format!("{runtime} --root {}", env.root.display())])
            .output()
            .map(|o| o.stdout.is_empty())
            .unwrap_or(false)),
        "a process of the killed create is left"
    );
    env.assert_gone(&id);
}

/// `capsa run` killed between reserving a container and writing its
/// record (here: a placeholder whose creating command is gone, with a
/// mounted root) leaves nothing once the next command lists containers;
/// before, no command showed it and its name stayed taken.
#[test]
fn an_abandoned_reservation_is_swept_by_the_next_listing() {
    let (env, c, img) = setup("hs-abandon");
    c.ok(&["create", "--name", "seed", img, "true"]);
    let containers = c.store.join("containers");
    // A reservation as a killed `capsa run` leaves it: its placeholder
    // names a creator that is gone, and its root is mounted.
    let id = "ab".repeat(32);
    let dir = containers.join(&id);
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    let dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    let mut dead = dead;
    dead.wait().unwrap();
    std::fs::write(
        dir.join("container.json"),
        serde_json::json!({"id": id, "name": "ghost", "creating": {"pid": pid, "start": 1}})
            .to_string(),
    )
    .unwrap();
    env.mount_tmpfs(&dir.join("rootfs"), None);
    c.ok(&["ps", "-a"]);
    assert!(!dir.exists(), "the abandoned reservation is still there");
    // Its name is free again.
    c.ok(&["create", "--name", "ghost", img, "true"]);
}

/// The error of loading a busybox image with `layer` on top (tagged
/// `tag`), or of running it when the load took it.
fn load_and_run_error(env: &Env, c: &Capsa, tag: &str, layer: Vec<u8>) -> String {
    let layout = env.dir.join(tag);
    oci_layout(
        &layout,
        tag,
        &[("amd64", vec![busybox_rootfs_tar(), layer])],
    );
    let o = c.run(&["load", "-q", "-i", layout.to_str().unwrap()]);
    if o.status.success() {
        c.fails(&["run", "--rm", &format!("localhost/imported:{tag}"), "true"])
    } else {
        String::from_utf8_lossy(&o.stderr).into_owned()
    }
}

/// `setpriv` as uid 1000: `args` run as another user of the host.
fn as_other_user(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid", "1000", "--regid", "1000", "--clear-groups"])
        .args(args)
        .output()
        .unwrap()
}

/// `--userns auto` once made the store and run directories traversable by
/// everyone, so that the container's root (a host uid of no privilege)
/// could reach its rootfs and bind sources. The runtime now hands the
/// rootfs down as the working directory and the init clones bind sources
/// before it takes the namespace's ids: the store stays closed to other
/// users.
#[test]
fn userns_auto_leaves_the_store_closed_to_other_users() {
    let (env, c, img) = setup("hs-userns-store");
    // The test's own directories are open, so only the store's modes count.
    std::fs::set_permissions(&env.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A host directory closed to the container's root, with an open one
    // inside: the bind is of the open one.
    let closed = env.dir.join("closed");
    std::fs::create_dir_all(closed.join("open")).unwrap();
    std::fs::write(closed.join("open/file"), "through the bind").unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let bind = format!("{}:/h:ro", closed.join("open").display());
    let out = c.ok(&[
        "run",
        "--rm",
        "--userns",
        "auto",
        "-e",
        "SECRET=s3cret",
        "-v",
        &bind,
        "-v",
        "hsvol:/vol",
        img,
        "sh",
        "-c",
        "cat /h/file && ls /vol && echo made",
    ]);
    assert!(
        out.contains("through the bind") && out.contains("made"),
        "{out}"
    );
    c.ok(&[
        "run", "-d", "--name", "u", "--userns", "auto", img, "sleep", "100",
    ]);
    for d in [&c.store, &c.run] {
        let mode = std::fs::metadata(d).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
    let containers = c.store.join("containers");
    let o = as_other_user(&["ls", containers.to_str().unwrap()]);
    assert!(
        !o.status.success(),
        "uid 1000 listed {}",
        containers.display()
    );
    let o = as_other_user(&["stat", containers.to_str().unwrap()]);
    assert!(
        !o.status.success(),
        "uid 1000 reached {}",
        containers.display()
    );
    c.ok(&["rm", "-f", "u"]);
}

/// The runtime, for a spec with a new user namespace: neither the rootfs
/// nor a bind source needs a host path the container's root can walk (as
/// runc's "userns with inaccessible mounts"). What the container mounts on
/// a bind of a shared host mount stays in the container, and a bind of a
/// read-only host mount stays read-only: the container cannot clear the
/// flag, which the kernel locked when it copied the mount for the
/// namespace.
#[test]
fn a_user_namespace_needs_no_host_path_and_leaks_no_mount() {
    let env = Env::new("hs-userns-paths");
    let mut b = env.bundle("b");
    b.user_namespace(200000);
    // The source: a shared mount of our own, under a directory closed to
    // the container's root.
    let closed = env.dir.join("closed");
    let shared = closed.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("file"), "through the bind").unwrap();
    let sh = |script: &str| {
        let o = Command::new("sh").arg("-c").arg(script).output().unwrap();
        assert!(o.status.success(), "{script}: {}", stderr(&o));
    };
    let s = shared.display();
    sh(&format!("mount --bind {s} {s} && mount --make-shared {s}"));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-R").arg(&self.0).status();
        }
    }
    let _guard = Unmount(shared.clone());
    // And a read-only host mount of a directory the container's root owns.
    let ro = closed.join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    std::os::unix::fs::chown(&ro, Some(200000), Some(200000)).unwrap();
    let r = ro.display();
    sh(&format!(
        "mount --bind {r} {r} && mount -o remount,bind,ro {r}"
    ));
    let _guard_ro = Unmount(ro.clone());
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&b.dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/tmp", "type": "bind", "source": shared,
            "options": ["rbind", "rw"]
        }));
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/root", "type": "bind", "source": ro,
            "options": ["rbind"]
        }));
    // Root of its own user namespace, with the power to mount there.
    b.grant_cap("CAP_SYS_ADMIN");
    b.config["linux"]["seccomp"] = serde_json::Value::Null;
    b.args(&[
        "sh",
        "-c",
        "cat /tmp/file && mount -t tmpfs leak /tmp && touch /tmp/in-tmpfs && echo mounted; \
         mount -o remount,bind,rw /root && echo remounted-rw; touch /root/x && echo wrote; true",
    ]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{out} {}", stderr(&o));
    assert!(
        out.contains("through the bind") && out.contains("mounted"),
        "{out}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.lines().any(|l| l.contains(" leak ")),
        "the container's tmpfs reached the host: {mounts}"
    );
    assert!(!shared.join("in-tmpfs").exists());
    assert!(
        !out.contains("remounted-rw") && !out.contains("wrote") && !ro.join("x").exists(),
        "the host's read-only mount was made writable: {out}"
    );
}

/// `capsa cp` of a container's huge sparse file once built the whole tar
/// in the host's memory. Now it streams: with 2 GiB of address space and a
/// 4 GiB sparse file, the copy runs until the destination (a 16 MiB
/// tmpfs) is full, and says so.
#[test]
fn cp_of_a_huge_sparse_file_streams_instead_of_filling_memory() {
    let (env, c, img) = setup("hs-cpsparse");
    run_box(&c, img, "truncate -s 4G /big");
    let small = env.dir.join("small");
    env.mount_tmpfs(&small, Some("16m"));
    let mut cmd = Command::new("prlimit");
    cmd.arg("--as=2147483648")
        .arg("--")
        .arg(c.cmd(&[]).get_program());
    let base = c.cmd(&["cp", "box:/big", small.to_str().unwrap()]);
    cmd.args(base.get_args());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let o = cmd.output().unwrap();
    let e = stderr(&o);
    // A clear error, not a death by signal (SIGKILL from the memory
    // limit, SIGABRT from a failed allocation), and said once.
    assert!(
        o.status.code().is_some_and(|c| c != 0),
        "{:?} {e}",
        o.status
    );
    assert_eq!(e.matches("No space left on device").count(), 1, "{e}");
    assert!(!e.contains("memory"), "{e}");
}

/// A spec naming a cgroup that already has processes (a host service's,
/// say) is refused with `--hardened`: the container's limits, `kill
/// --all` and `delete` would otherwise reach them. runc 1.1 warns and goes
/// on; so does capsa-runtime by default, and its `delete` then kills
/// nothing but the container. The process there is untouched either way.
#[test]
fn a_cgroup_with_processes_is_refused_hardened_and_a_warning_as_runc() {
    let env = Env::new("hs-busycg");
    // The process sits in a child: /system.slice has none of its own.
    let busy = Path::new("/sys/fs/cgroup/pids")
        .join(&env.cgroup_parent)
        .join("busy");
    let dir = busy.join("inner");
    std::fs::create_dir_all(&dir).unwrap();
    let mut sleeper = Command::new("sleep").arg("100").spawn().unwrap();
    struct Reap<'a>(&'a mut std::process::Child, std::path::PathBuf);
    impl Drop for Reap<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = std::fs::remove_dir(&self.1);
            let _ = std::fs::remove_dir(self.1.parent().unwrap());
        }
    }
    std::fs::write(dir.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    let pid = sleeper.id();
    let _reap = Reap(&mut sleeper, dir.clone());
    let mut b = env.bundle("b");
    b.config["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/busy", env.cgroup_parent));
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    let o = env.rt(&["--hardened", "create", "-b", b.path(), &id]);
    assert!(!o.status.success(), "created into a busy cgroup");
    assert!(
        stderr(&o).contains("already has 1 processes"),
        "{}",
        stderr(&o)
    );
    assert!(!env.root.join(&id).exists(), "state of {id} left");
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the sleeper was touched"
    );
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), pid.to_string());

    // runc's way: a warning, the container runs, and its delete kills
    // only what was its own (it has a pid namespace).
    let id = env.id("r");
    let o = env.rt(&["create", "-b", b.path(), &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("container's cgroup is not empty: 1 process(es) found"),
        "{}",
        stderr(&o)
    );
    env.rt_ok(&["start", &id]);
    env.rt_ok(&["delete", "-f", &id]);
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "delete killed a process that was not the container's"
    );
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), pid.to_string());
}
