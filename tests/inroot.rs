//! The in-root handle (sys/src/root.rs), attacked: an image whose `/dev`
//! or `/dev/pts` leads to a host directory, and a `/dev/null` replaced
//! before masking. Through `capsa-runtime run` and `capsa run`.

use capsa_tests::engines::busybox_rootfs_tar;
use capsa_tests::images::{oci_layout, LayerTar};
use capsa_tests::registry::Capsa;
use capsa_tests::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A host directory the image will point at, and a check that nothing of
/// the container's set-up landed in it.
fn bait(env: &Env, name: &str) -> PathBuf {
    let d = env.dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn assert_untouched(d: &Path) {
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{} got {left:?}", d.display());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !info.contains(d.to_str().unwrap()),
        "something is mounted on {}",
        d.display()
    );
}

/// Relative links that climb out of the rootfs when the host resolves
/// them: enough `..` to reach `/` from anywhere.
fn climbing(to: &Path) -> String {
    format!("{}{}", "../".repeat(30), to.display())
}

#[test]
fn dev_as_a_link_to_a_host_directory_stays_inside_with_runtime_run() {
    let env = Env::new("inroot-dev");
    let absolute = bait(&env, "abs");
    let chained = bait(&env, "chained");
    for (i, how) in ["absolute", "chained"].iter().enumerate() {
        let b = env.bundle(&format!("b{i}"));
        let dev = b.rootfs().join("dev");
        std::fs::remove_dir(&dev).unwrap();
        if *how == "absolute" {
            std::os::unix::fs::symlink(&absolute, &dev).unwrap();
        } else {
            // dev -> step, step -> ../../..<host dir>
            std::os::unix::fs::symlink("step", &dev).unwrap();
            std::os::unix::fs::symlink(climbing(&chained), b.rootfs().join("step")).unwrap();
        }
        let mut b = b;
        b.args(&["sh", "-c", "test -c /dev/null && echo null-is-there"]);
        let id = env.id(&format!("c{i}"));
        let out = env.rt_ok(&["run", "-b", b.path(), &id]);
        assert!(out.contains("null-is-there"), "{how}: {out}");
    }
    assert_untouched(&absolute);
    assert_untouched(&chained);
}

/// The spec without its `/dev` tmpfs: the image's own `/dev` is used.
fn without_dev_tmpfs(b: &mut Bundle) {
    let mounts: Vec<Value> = b.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"] != "/dev")
        .cloned()
        .collect();
    b.config["mounts"] = json!(mounts);
}

#[test]
fn dev_pts_as_a_link_to_a_host_directory_stays_inside() {
    let env = Env::new("inroot-pts");
    let host = bait(&env, "pts");
    let mut b = env.bundle("b");
    // No /dev tmpfs: the image's own /dev, with a planted pts link.
    without_dev_tmpfs(&mut b);
    std::os::unix::fs::symlink(&host, b.rootfs().join("dev/pts")).unwrap();
    b.args(&["true"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-b", b.path(), &id]);
    assert_untouched(&host);
}

/// A `/dev/null` replaced with a file or a link before masking: the masked
/// file still reads as empty (the mask comes from the host's 1:3 device).
#[test]
fn masked_paths_stay_masked_whatever_the_image_dev_null_is() {
    let env = Env::new("inroot-null");
    for (i, kind) in ["file", "link"].iter().enumerate() {
        let mut b = env.bundle(&format!("b{i}"));
        without_dev_tmpfs(&mut b);
        std::fs::write(b.rootfs().join("etc/secret"), "SECRET").unwrap();
        let null = b.rootfs().join("dev/null");
        if *kind == "file" {
            std::fs::write(&null, "SECRET").unwrap();
        } else {
            std::os::unix::fs::symlink("/etc/secret", &null).unwrap();
        }
        b.args(&["sh", "-c", "head -c 16 /proc/keys; echo; echo end"]);
        let id = env.id(&format!("c{i}"));
        let out = env.rt_ok(&["run", "-b", b.path(), &id]);
        assert!(!out.contains("SECRET"), "{kind}: {out}");
        assert_eq!(out.trim(), "end", "{kind}: /proc/keys is not empty");
    }
}

#[test]
fn an_image_dev_link_to_a_host_directory_stays_inside_with_capsa_run() {
    let env = Env::new("inroot-capsa");
    let host = bait(&env, "host");
    let c = Capsa::new(&env, "c");
    let layout = env.dir.join("layout");
    let evil = LayerTar::default()
        .symlink("dev", host.to_str().unwrap())
        .bytes();
    oci_layout(
        &layout,
        "devlink",
        &[("amd64", vec![busybox_rootfs_tar(), evil])],
    );
    c.ok(&["load", "-q", "-i", layout.to_str().unwrap()]);
    let out = c.ok(&[
        "run",
        "--rm",
        "localhost/imported:devlink",
        "sh",
        "-c",
        "test -c /dev/null && echo null-is-there",
    ]);
    assert!(out.contains("null-is-there"), "{out}");
    assert_untouched(&host);
}
