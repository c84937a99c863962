//! What comes out of a container or an image, on the host (issue 14):
//! `capsa cp` without image rules, files of the image read only when they
//! are regular files, layers whose whiteouts would climb out.

use capsa_tests::engines::busybox_rootfs_tar;
use capsa_tests::images::{load_busybox_probe, oci_layout, oci_layout_with, LayerTar};
use capsa_tests::registry::Capsa;
use capsa_tests::*;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

fn setup(name: &str) -> (Env, Capsa, &'static str) {
    let env = Env::new(name);
    let c = Capsa::new(&env, "c");
    let img = load_busybox_probe(&env, &c);
    (env, c, img)
}

/// A container's file named `.wh...` once made `capsa cp` apply a whiteout
/// of `..`, emptying the host's destination. A copy has no whiteouts: the
/// names are plain files and the destination keeps what it had.
#[test]
fn cp_applies_no_whiteout_rules_and_keeps_the_destination() {
    let (env, c, img) = setup("hs-cpwh");
    c.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        img,
        "sh",
        "-c",
        "mkdir /d && touch /d/.wh... /d/.wh..wh..opq /d/.wh.a && echo a > /d/a && touch /ready && sleep 100",
    ]);
    assert!(wait_for(10, || c
        .run(&["exec", "box", "test", "-e", "/ready"])
        .status
        .success()));
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
    // The first layer, unpacked before, is still whole.
    let layers = c.store.join("layers");
    if layers.exists() {
        for l in std::fs::read_dir(&layers).unwrap().flatten() {
            assert!(l.path().exists());
        }
    }
}

/// `cp` gives the copy the destination user's ids and drops set-id bits,
/// as `docker cp` does; `-a` keeps both.
#[test]
fn cp_keeps_owners_and_set_id_bits_only_in_archive_mode() {
    let (env, c, img) = setup("hs-cpown");
    c.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        img,
        "sh",
        "-c",
        "echo x > /f && chown 1234:5678 /f && chmod 4755 /f && touch /ready && sleep 100",
    ]);
    assert!(wait_for(10, || c
        .run(&["exec", "box", "test", "-e", "/ready"])
        .status
        .success()));
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
