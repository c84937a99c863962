//! runc's behaviour by default, capsa's hardened one behind the global
//! `--hardened` (docs/runc-parity.md): `ro` on an rbind, unknown
//! capabilities, a container without a mount namespace of its own. (A
//! populated cgroup: tests/hostside.rs.)

use capsa_tests::*;
use serde_json::json;
use std::path::{Path, PathBuf};

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn ro_on_an_rbind_covers_its_top_as_runc_and_all_of_it_hardened() {
    let env = Env::new("rbindro");
    let host = env.dir.join("hostdir");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    env.mount_tmpfs(&host.join("sub"), None);
    let mut b = env.bundle("b");
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "destination": "/mnt", "type": "bind", "source": host, "options": ["rbind", "ro"] }));
    b.args(&[
        "sh",
        "-c",
        "touch /mnt/x 2>/dev/null && echo top-rw || echo top-ro; touch /mnt/sub/y 2>/dev/null && echo sub-rw || echo sub-ro",
    ]);
    let runc = env.rt_ok(&["run", "-b", b.path(), &env.id("r")]);
    assert_eq!(runc, "top-ro\nsub-rw\n");
    let hardened = env.rt_ok(&["--hardened", "run", "-b", b.path(), &env.id("h")]);
    assert_eq!(hardened, "top-ro\nsub-ro\n");
}

#[test]
fn an_unknown_capability_is_ignored_with_a_warning_as_runc_and_refused_hardened() {
    let env = Env::new("unknowncap");
    let mut b = env.bundle("b");
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = json!(["CAP_CHOWN", "CAP_KILL", "CAP_FOO"]);
    }
    b.args(&["grep", "CapBnd", "/proc/self/status"]);
    let o = env.rt(&["run", "-b", b.path(), &env.id("r")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ignoring unknown or unavailable capabilities: [CAP_FOO]"),
        "{}",
        stderr(&o)
    );
    // CAP_CHOWN (0) and CAP_KILL (5), nothing else.
    assert_eq!(out(&o), "CapBnd:\t0000000000000021\n");

    let id = env.id("h");
    let o = env.rt(&["--hardened", "create", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        stderr(&o).contains("process.capabilities.bounding[2]: unknown capability \"CAP_FOO\""),
        "{}",
        stderr(&o)
    );
    env.assert_gone(&id);
}

/// Mounts of our mount namespace strictly under `dir`, from mountinfo.
fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|at| Path::new(at).starts_with(dir) && Path::new(at) != dir)
        .collect()
}

/// The propagation fields (`shared:N`, `master:N`) of the mount at `dir`.
fn propagation_of(dir: &Path) -> String {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = text
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap()))
        .expect("mount listed");
    let (pre, _) = line.split_once(" - ").unwrap();
    pre.split(' ').skip(6).collect::<Vec<_>>().join(" ")
}

fn no_mount_namespace_bundle(env: &Env) -> Bundle {
    let mut b = env.bundle("b");
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    std::fs::write(b.rootfs().join("marker"), "inside").unwrap();
    b.without_namespace("mount");
    b
}

/// As runc: a spec without a mount namespace runs in the host's, its
/// mounts made there under its rootfs and its root a chroot; `exec` joins
/// that root. Unlike runc, the host's propagation is left alone (runc
/// makes `/` a slave, all the way down) and `delete` unmounts what the
/// container made (runc leaves it).
#[test]
fn without_a_mount_namespace_the_root_is_a_chroot_and_delete_unmounts_its_mounts() {
    let env = Env::new("nomntns");
    // A shared mount of the host's must stay shared.
    let shared = env.dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    env.mount_tmpfs(&shared, None);
    let made = std::process::Command::new("mount")
        .args(["--make-shared", shared.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(made.success());
    let before = propagation_of(&shared);
    assert!(before.contains("shared:"), "{before}");

    let mut b = no_mount_namespace_bundle(&env);
    b.args(&["sleep", "100"]);
    let rootfs: PathBuf = std::fs::canonicalize(b.rootfs()).unwrap();
    // A mount of the host's under the rootfs, made before the container:
    // not the container's to take away.
    let premounted = rootfs.join("premounted");
    std::fs::create_dir_all(&premounted).unwrap();
    env.mount_tmpfs(&premounted, None);
    std::fs::write(premounted.join("kept"), "host").unwrap();
    let id = env.id("c");
    env.rt_ok(&["create", "-b", b.path(), &id]);
    env.rt_ok(&["start", &id]);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap(),
        std::fs::read_link("/proc/self/ns/mnt").unwrap(),
        "the container has a mount namespace of its own"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        rootfs
    );
    let made = mounts_under(&rootfs);
    assert!(
        made.iter().any(|m| Path::new(m) == rootfs.join("proc")),
        "{made:?}"
    );
    assert_eq!(propagation_of(&shared), before);
    // exec'd processes run in the container's root, not at the host's /.
    assert_eq!(env.rt_ok(&["exec", &id, "cat", "/marker"]), "inside");
    env.rt_ok(&["delete", "-f", &id]);
    assert_eq!(
        mounts_under(&rootfs),
        vec![premounted.display().to_string()]
    );
    assert_eq!(
        std::fs::read_to_string(premounted.join("kept")).unwrap(),
        "host"
    );
    // The rootfs's own bind went too.
    assert!(!mounts_under(rootfs.parent().unwrap()).contains(&rootfs.display().to_string()));
    assert_eq!(propagation_of(&shared), before);
}

/// A mount namespace "joined" that is the runtime's own would be the
/// host's: its propagation changed and pivot_root done in it. Refused.
#[test]
fn joining_the_runtimes_own_mount_namespace_is_refused() {
    let env = Env::new("ownmntns");
    let mut b = env.bundle("b");
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    for n in ns.iter_mut() {
        if n["type"] == "mount" {
            n["path"] = json!("/proc/self/ns/mnt");
        }
    }
    b.save();
    let id = env.id("c");
    let o = env.rt(&["create", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is the runtime's own"),
        "{}",
        stderr(&o)
    );
    env.assert_gone(&id);
}

#[test]
fn without_a_mount_namespace_hardened_refuses_and_a_failed_create_leaves_no_mount() {
    let env = Env::new("nomntns-refused");
    let mut b = no_mount_namespace_bundle(&env);
    let rootfs: PathBuf = std::fs::canonicalize(b.rootfs()).unwrap();
    let id = env.id("c");
    let o = env.rt(&["--hardened", "create", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("a mount namespace is required (--hardened)"),
        "{}",
        stderr(&o)
    );
    env.assert_gone(&id);

    // Masked paths would be the host's: refused in runc's words.
    b.config["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    b.save();
    let o = env.rt(&["create", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unable to restrict sys entries without a private MNT namespace"),
        "{}",
        stderr(&o)
    );
    env.assert_gone(&id);

    // A create that fails after the init mounted takes the mounts away,
    // the rootfs's own bind included.
    b.config["linux"]["maskedPaths"] = json!([]);
    b.args(&["/no/such/program"]);
    let o = env.rt(&["create", "-b", b.path(), &id]);
    assert!(!o.status.success());
    env.assert_gone(&id);
    assert_eq!(mounts_under(&rootfs), Vec::<String>::new());
    assert!(!mounts_under(rootfs.parent().unwrap()).contains(&rootfs.display().to_string()));

    // The host's / is no container's root without a mount namespace.
    b.config["root"]["path"] = json!("/");
    b.save();
    let o = env.rt(&["create", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the host's / cannot be a container's root"),
        "{}",
        stderr(&o)
    );
    env.assert_gone(&id);
}
