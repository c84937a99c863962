//! Images end to end: a real registry (docker-registry on 127.0.0.1, plain
//! and TLS with htpasswd), skopeo and umoci as independent clients, and
//! containers run from what was pulled.

use capsa_tests::engines::busybox_rootfs_tar;
use capsa_tests::images::{oci_layout, LayerTar};
use capsa_tests::registry::{Capsa, Registry};
use capsa_tests::{skopeo, wait_for, Env};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn busybox_tar(env: &Env) -> String {
    let p = env.dir.join("busybox.tar");
    std::fs::write(&p, busybox_rootfs_tar()).unwrap();
    p.display().to_string()
}

/// A plain registry, and busybox pushed to it as `REPO:v1` from store `a`
/// (store `b` is empty): the registry, a, b, the name, the image id and
/// the manifest digest pushed. None without docker-registry.
fn registry_with_busybox(
    env: &Env,
    repo: &str,
) -> Option<(Registry, Capsa, Capsa, String, String, String)> {
    let reg = Registry::plain(env, repo.rsplit('/').next().unwrap_or(repo))?;
    let (a, b) = (Capsa::new(env, "a"), Capsa::new(env, "b"));
    let name = format!("{}/{repo}:v1", reg.addr);
    let id = a
        .ok(&["import", &busybox_tar(env), &name])
        .trim()
        .to_string();
    let pushed = a.ok(&["push", "-q", &name]).trim().to_string();
    Some((reg, a, b, name, id, pushed))
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Nothing but complete layers, no partial blobs, no images.
fn assert_store_empty(c: &Capsa) {
    let images: Value = json(&c.ok(&["images", "--format", "json"]));
    assert_eq!(images.as_array().unwrap().len(), 0, "{images}");
    for sub in ["layers", "tmp"] {
        let left: Vec<_> = std::fs::read_dir(c.store.join(sub))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{sub}/ keeps {left:?}");
    }
}

/// Run `args` in a container whose root is an overlay snapshot of `image`
/// in `c`'s store; returns stdout and the snapshot's upper dir contents.
fn run_from_image(env: &Env, c: &Capsa, image: &str, name: &str, script: &str) -> String {
    use capsa_image::snapshot::{OverlayApi, Snapshot};
    let store = c.store();
    let rec = store.resolve(image).unwrap();
    let lowers = capsa_image::local::unpack(&store, &rec, &|_| {}).unwrap();
    let bundle = env.dir.join(name);
    let snap = Snapshot::create(
        &bundle,
        &lowers,
        OverlayApi::Auto,
        None,
        capsa_image::snapshot::Fuse::Never,
    )
    .unwrap();
    let mut config = serde_json::to_value(capsa_spec::defaults::hardened(None).unwrap()).unwrap();
    config["process"]["terminal"] = Value::Bool(false);
    config["process"]["args"] = serde_json::json!(["/bin/sh", "-c", script]);
    config["root"] = serde_json::json!({"path": snap.rootfs, "readonly": false});
    config["linux"]["cgroupsPath"] = Value::String(format!("/{}/{name}", env.cgroup_parent));
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let id = env.id(name);
    let o = env.rt(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "run from {image}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    snap.remove().unwrap();
    out
}

#[test]
fn an_image_pushed_by_capsa_is_pulled_by_capsa_and_runs() {
    let env = Env::new("img-roundtrip");
    let Some((reg, _a, b, name, id, pushed)) = registry_with_busybox(&env, "test/busybox") else {
        return;
    };
    let pulled = b.ok(&["pull", &name]).trim().to_string();
    assert_eq!(pulled, id, "the same config, so the same image id");
    let images = json(&b.ok(&["images", "--format", "json"]));
    assert_eq!(
        images[0]["Repository"],
        format!("{}/test/busybox", reg.addr)
    );
    assert_eq!(images[0]["Tag"], "v1");
    assert_eq!(
        images[0]["Digest"], pushed,
        "the manifest pulled is the one pushed"
    );
    let inspect = json(&b.ok(&["image", "inspect", &name]));
    let layer_dir = inspect[0]["Layers"][0]["Directory"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(Path::new(&layer_dir).join("bin/busybox").is_file());

    let out = run_from_image(
        &env,
        &b,
        &name,
        "ctr",
        "echo written > /tmp/x && cat /tmp/x && ls /bin/busybox",
    );
    assert_eq!(out, "written\n/bin/busybox\n");
    // The container wrote into its own upper layer, never the shared one.
    assert!(!Path::new(&layer_dir).join("tmp/x").exists());

    // Removing the image takes its blobs and layer with it.
    b.ok(&["rmi", &name]);
    assert_store_empty(&b);
}

#[test]
fn skopeo_and_capsa_read_each_others_pushes() {
    let env = Env::new("img-skopeo");
    let Some(reg) = Registry::plain(&env, "skopeo") else {
        return;
    };
    let c = Capsa::new(&env, "c");
    // Two layers: the second deletes a file and makes a directory opaque.
    let base = LayerTar::default()
        .dir("etc")
        .file("etc/a", b"a")
        .file("etc/b", b"b")
        .dir("d")
        .file("d/x", b"x")
        .bytes();
    let top = LayerTar::default()
        .dir("etc")
        .file("etc/.wh.a", b"")
        .dir("d")
        .file("d/.wh..wh..opq", b"")
        .file("d/y", b"y")
        .bytes();
    let layout = env.dir.join("layout");
    oci_layout(&layout, "v1", &[("amd64", vec![base, top])]);
    let by_skopeo = format!("{}/sk/layered:v1", reg.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{by_skopeo}"),
    ]);
    c.ok(&["pull", &by_skopeo]);
    let mnt = env.dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    c.ok(&["image", "mount", &by_skopeo, mnt.to_str().unwrap()]);
    let seen = (
        mnt.join("etc/a").exists(),
        mnt.join("etc/b").exists(),
        mnt.join("d/x").exists(),
        mnt.join("d/y").exists(),
    );
    c.ok(&["image", "unmount", mnt.to_str().unwrap()]);
    assert_eq!(
        seen,
        (false, true, false, true),
        "whiteout and opaque directory as the layers say"
    );

    // The other way: skopeo reads what capsa pushed, byte for byte.
    let by_capsa = format!("{}/capsa/busybox:v1", reg.addr);
    c.ok(&["import", &busybox_tar(&env), &by_capsa]);
    let digest = c.ok(&["push", &by_capsa]).trim().to_string();
    let info = json(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{by_capsa}"),
    ]));
    assert_eq!(info["Digest"], digest);
    let out = env.dir.join("skopeo-out");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{by_capsa}"),
        &format!("oci:{}:v1", out.display()),
    ]);
    let ours = json(&c.ok(&["image", "inspect", &by_capsa]));
    let blob = ours[0]["Layers"][0]["Blob"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    assert!(
        out.join("blobs/sha256").join(blob).is_file(),
        "skopeo fetched capsa's layer blob"
    );
}

#[test]
fn a_registry_with_tls_and_htpasswd_needs_the_ca_and_a_login() {
    let env = Env::new("img-tls");
    let Some(reg) = Registry::tls_auth(&env, "tls", "alice", "s3cret") else {
        return;
    };
    let ca = reg.cert.as_ref().unwrap().display().to_string();
    let (a, b) = (Capsa::new(&env, "a"), Capsa::new(&env, "b"));
    let name = format!("{}/secure/busybox:v1", reg.addr);
    a.ok(&["import", &busybox_tar(&env), &name]);

    // A certificate nobody vouches for is refused, and says so.
    let err = a.fails(&["push", &name]);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // With the CA: the registry wants credentials.
    let err = a.fails(&["push", "--ca-file", &ca, &name]);
    assert!(err.contains("capsa login"), "{err}");
    // A wrong password is refused and nothing is written.
    let err = a.fails(&[
        "login",
        "--ca-file",
        &ca,
        "-u",
        "alice",
        "-p",
        "wrong",
        &reg.addr,
    ]);
    assert!(err.contains("unauthorized") || err.contains("401"), "{err}");
    assert!(!a.auth.exists());
    a.ok(&[
        "login",
        "--ca-file",
        &ca,
        "-u",
        "alice",
        "-p",
        "s3cret",
        &reg.addr,
    ]);
    let auth = json(&std::fs::read_to_string(&a.auth).unwrap());
    assert!(auth["auths"][&reg.addr]["auth"].is_string(), "{auth}");
    a.ok(&["push", "--ca-file", &ca, &name]);

    // Another user of the machine without the login cannot pull; with
    // --creds, or without verification, it can.
    let err = b.fails(&["pull", "--ca-file", &ca, &name]);
    assert!(err.contains("capsa login"), "{err}");
    b.ok(&["pull", "--ca-file", &ca, "--creds", "alice:s3cret", &name]);
    b.ok(&["rmi", &name]);
    b.ok(&[
        "pull",
        "--tls-verify=false",
        "--creds",
        "alice:s3cret",
        &name,
    ]);

    a.ok(&["logout", &reg.addr]);
    let auth = json(&std::fs::read_to_string(&a.auth).unwrap());
    assert!(auth["auths"].get(&reg.addr).is_none(), "{auth}");
    a.fails(&["logout", &reg.addr]);
}

#[test]
fn a_registry_with_bearer_tokens_is_answered_from_its_challenge() {
    let env = Env::new("img-token");
    let Some(reg) = Registry::token_auth(&env, "token", "bob", "hunter2") else {
        return;
    };
    let (a, b) = (Capsa::new(&env, "a"), Capsa::new(&env, "b"));
    let name = format!("{}/team/app:v1", reg.addr);
    a.ok(&["import", &busybox_tar(&env), &name]);
    let err = a.fails(&["push", &name]);
    assert!(err.contains("401"), "{err}");
    // The realm is on another port: the credentials go there only once
    // the user names it.
    let realm = format!("http://{}/token", reg.token.as_ref().unwrap().addr);
    let err = a.fails(&["login", "-u", "bob", "-p", "hunter2", &reg.addr]);
    assert!(err.contains("withheld"), "{err}");
    {
        let seen = reg.token.as_ref().unwrap().requests.lock().unwrap();
        assert!(
            seen.iter().all(|(creds, _)| !creds),
            "credentials reached a realm nobody named: {seen:?}"
        );
    }
    a.ok(&[
        "login", "-u", "bob", "-p", "hunter2", "--realm", &realm, &reg.addr,
    ]);
    a.ok(&["push", &name]);
    // Pushing under another name mounts the blobs across repositories,
    // which needs a token for both.
    let other = format!("{}/team/copy:v1", reg.addr);
    a.ok(&["tag", &name, &other]);
    let out = a.run(&["push", &other]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mounted from team/app"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.ok(&["pull", "--creds", "bob:hunter2", "--realm", &realm, &other]);
    let requests = reg.token.as_ref().unwrap().requests.lock().unwrap().clone();
    assert!(
        requests.iter().any(|(creds, s)| *creds
            && s.contains(&"repository:team/app:pull".to_string())
            && s.contains(&"repository:team/copy:pull,push".to_string())),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|(creds, s)| *creds && s == &vec!["repository:team/copy:pull".to_string()]),
        "{requests:?}"
    );
}

#[test]
fn archives_round_trip_between_stores_and_tools() {
    let env = Env::new("img-archives");
    let (a, b) = (Capsa::new(&env, "a"), Capsa::new(&env, "b"));
    let id = a
        .ok(&["import", &busybox_tar(&env), "localhost/rt:v1"])
        .trim()
        .to_string();
    let docker = env.dir.join("docker.tar");
    a.ok(&["save", "-o", docker.to_str().unwrap(), "localhost/rt:v1"]);
    assert!(b
        .ok(&["load", "-i", docker.to_str().unwrap()])
        .contains("localhost/rt:v1"));
    let ia = json(&a.ok(&["image", "inspect", "localhost/rt:v1"]));
    let ib = json(&b.ok(&["image", "inspect", "localhost/rt:v1"]));
    assert_eq!(ib[0]["Id"], id);
    assert_eq!(
        ia[0]["Manifest"]["Digest"], ib[0]["Manifest"]["Digest"],
        "the manifest survives save and load"
    );

    // skopeo reads the file both as a docker-archive and an oci-archive.
    let da = json(&skopeo(&[
        "inspect",
        &format!("docker-archive:{}", docker.display()),
    ]));
    assert_eq!(da["Layers"].as_array().unwrap().len(), 1);
    skopeo(&["inspect", &format!("oci-archive:{}", docker.display())]);

    // An OCI layout directory that umoci unpacks into a bundle.
    let dir = env.dir.join("oci-dir");
    a.ok(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        dir.to_str().unwrap(),
        "localhost/rt:v1",
    ]);
    let bundle = env.dir.join("umoci-bundle");
    let o = Command::new("umoci")
        .args([
            "unpack",
            "--image",
            &format!("{}:v1", dir.display()),
            bundle.to_str().unwrap(),
        ])
        .output()
        .expect("umoci (scripts/deps.sh installs it)");
    assert!(
        o.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());

    // A docker-archive written by skopeo loads with its name.
    let sk = env.dir.join("skopeo.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:v1", dir.display()),
        &format!("docker-archive:{}:team/app:v2", sk.display()),
    ]);
    assert!(b
        .ok(&["load", "-i", sk.to_str().unwrap()])
        .contains("docker.io/team/app:v2"));
    assert_eq!(
        json(&b.ok(&["image", "inspect", "team/app:v2"]))[0]["Id"],
        id
    );

    // Tags: a second name, then remove one name at a time.
    b.ok(&["tag", "team/app:v2", "team/app:v3"]);
    let out = b.ok(&["rmi", "team/app:v3"]);
    assert!(
        out.contains("Untagged: docker.io/team/app:v3") && !out.contains("Deleted"),
        "{out}"
    );
    let err = b.fails(&["rmi", &id[7..19]]);
    assert!(err.contains("--force"), "{err}");
    b.ok(&["rmi", "--force", &id[7..19]]);
    assert_store_empty(&b);

    // Hostile input: not an archive at all.
    std::fs::write(env.dir.join("junk.tar"), b"not a tar").unwrap();
    let err = b.fails(&["load", "-i", env.dir.join("junk.tar").to_str().unwrap()]);
    assert!(err.contains("junk.tar"), "{err}");
    assert_store_empty(&b);
}

#[test]
fn a_corrupted_blob_in_the_registry_is_rejected_and_nothing_is_kept() {
    let env = Env::new("img-corrupt");
    let Some((reg, a, b, name, _, _)) = registry_with_busybox(&env, "test/corrupt") else {
        return;
    };
    let inspect = json(&a.ok(&["image", "inspect", &name]));
    let blob = inspect[0]["Layers"][0]["Blob"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let data = reg.blob_data(&blob);
    let mut bytes = std::fs::read(&data).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let err = b.fails(&["pull", &name]);
    assert!(err.contains("digest mismatch"), "{err}");
    assert_store_empty(&b);
    assert!(!b.store.join("blobs/sha256").join(&blob).exists());
}

#[test]
fn a_killed_pull_leaves_no_half_layer_and_the_next_pull_completes() {
    let env = Env::new("img-killed");
    let Some(reg) = Registry::plain(&env, "killed") else {
        return;
    };
    let (a, b) = (Capsa::new(&env, "a"), Capsa::new(&env, "b"));
    // Many files, so that the unpack takes long enough to be interrupted.
    let mut layer = LayerTar::default().dir("data");
    let chunk: Vec<u8> = (0..16_384u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for i in 0..3000 {
        layer = layer.file(&format!("data/f{i}"), &chunk);
    }
    let tar = env.dir.join("big.tar");
    std::fs::write(&tar, layer.bytes()).unwrap();
    let name = format!("{}/test/big:v1", reg.addr);
    a.ok(&["import", "-q", tar.to_str().unwrap(), &name]);
    a.ok(&["push", "-q", &name]);

    let err_path = env.dir.join("pull.err");
    let mut child = b
        .cmd(&["pull", &name])
        .stderr(std::fs::File::create(&err_path).unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = wait_for(60, || {
        std::fs::read_to_string(&err_path)
            .unwrap_or_default()
            .contains("unpacking")
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        started,
        "the pull never reached the unpack: {}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    // Whatever was in progress is a .tmp- directory, never a layer.
    for e in std::fs::read_dir(b.store.join("layers")).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if !n.starts_with(".tmp-") {
            let files = std::fs::read_dir(e.path().join("diff/data"))
                .unwrap()
                .count();
            assert_eq!(files, 3000, "layer {n} is visible but incomplete");
        }
    }
    let images = json(&b.ok(&["images", "--format", "json"]));
    assert_eq!(
        images.as_array().unwrap().len(),
        0,
        "a killed pull recorded an image"
    );
    b.ok(&["pull", "-q", &name]);
    let inspect = json(&b.ok(&["image", "inspect", &name]));
    let dir = inspect[0]["Layers"][0]["Directory"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::read_dir(Path::new(&dir).join("data"))
            .unwrap()
            .count(),
        3000
    );
    b.ok(&["image", "prune"]);
    let tmp: Vec<_> = std::fs::read_dir(b.store.join("layers"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(tmp.is_empty(), "prune left {tmp:?}");
}

#[test]
fn concurrent_pulls_share_one_copy_of_each_layer() {
    let env = Env::new("img-concurrent");
    let Some(reg) = Registry::plain(&env, "concurrent") else {
        return;
    };
    let (a, b) = (Capsa::new(&env, "a"), Capsa::new(&env, "b"));
    let layout = env.dir.join("layout");
    let layers: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            LayerTar::default()
                .file(&format!("l{i}"), &vec![i as u8; 300_000])
                .bytes()
        })
        .collect();
    oci_layout(&layout, "v1", &[("amd64", layers)]);
    let name = format!("{}/test/four:v1", reg.addr);
    a.ok(&["load", "-q", "-i", layout.to_str().unwrap()]);
    a.ok(&["tag", "localhost/imported:v1", &name]);
    a.ok(&["push", "-q", &name]);
    let mut handles = Vec::new();
    for _ in 0..3 {
        let mut cmd = b.cmd(&["pull", "-q", &name]);
        handles.push(std::thread::spawn(move || cmd.output().unwrap()));
    }
    for h in handles {
        let o = h.join().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let dirs = std::fs::read_dir(b.store.join("layers")).unwrap().count();
    assert_eq!(dirs, 4, "each layer unpacked once");
    let images = json(&b.ok(&["images", "--format", "json"]));
    assert_eq!(images.as_array().unwrap().len(), 1);
}

#[test]
fn a_multi_platform_index_yields_the_hosts_image_or_the_one_asked_for() {
    let env = Env::new("img-platform");
    let Some(reg) = Registry::plain(&env, "platform") else {
        return;
    };
    let c = Capsa::new(&env, "c");
    let layout = env.dir.join("layout");
    let configs = oci_layout(
        &layout,
        "v1",
        &[
            (
                "amd64",
                vec![LayerTar::default().file("arch", b"amd64").bytes()],
            ),
            (
                "arm64",
                vec![LayerTar::default().file("arch", b"arm64").bytes()],
            ),
        ],
    );
    let name = format!("{}/test/multi:v1", reg.addr);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{name}"),
    ]);
    assert_eq!(c.ok(&["pull", "-q", &name]).trim(), configs[0]);
    assert_eq!(
        c.ok(&["pull", "-q", "--platform", "linux/arm64", &name])
            .trim(),
        configs[1]
    );
    let err = c.fails(&["pull", "--platform", "linux/s390x", &name]);
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64, linux/arm64"),
        "{err}"
    );
}

#[test]
fn many_layers_fit_the_overlay_options_with_short_links() {
    use capsa_image::snapshot::{OverlayApi, Snapshot};
    let env = Env::new("img-many-layers");
    let c = Capsa::new(&env, "c");
    let layout = env.dir.join("layout");
    let layers: Vec<Vec<u8>> = (0..120)
        .map(|i| {
            LayerTar::default()
                .file(&format!("f{i}"), format!("{i}").as_bytes())
                .bytes()
        })
        .collect();
    oci_layout(&layout, "many", &[("amd64", layers)]);
    c.ok(&["load", "-q", "-i", layout.to_str().unwrap()]);
    let store = c.store();
    let rec = store.resolve("localhost/imported:many").unwrap();
    let lowers = capsa_image::local::unpack(&store, &rec, &|_| {}).unwrap();
    assert_eq!(lowers.len(), 120);
    let absolute: usize = lowers
        .iter()
        .map(|l| l.display().to_string().len() + 1)
        .sum();
    assert!(
        absolute > 4096,
        "the test must exceed a page with absolute paths ({absolute})"
    );
    for (api, name) in [(OverlayApi::Legacy, "legacy"), (OverlayApi::Auto, "auto")] {
        let snap = Snapshot::create(
            &env.dir.join(name),
            &lowers,
            api,
            None,
            capsa_image::snapshot::Fuse::Never,
        )
        .unwrap();
        let seen = (0..120).all(|i| {
            std::fs::read_to_string(snap.rootfs.join(format!("f{i}"))).unwrap() == format!("{i}")
        });
        snap.remove().unwrap();
        assert!(seen, "{name}: every layer's file is visible");
    }
}

/// A proxy to `upstream` that closes every connection after one answer and
/// cuts the body of the first blob download after `cut` bytes, as a
/// flaky network would. Returns its address and whether a ranged request
/// (a resumed download) came through.
fn cutting_proxy(
    upstream: String,
    cut: usize,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let saw_range = Arc::new(AtomicBool::new(false));
    let cut_done = Arc::new(AtomicBool::new(false));
    let saw = saw_range.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { continue };
            let (upstream, saw, cut_done) = (upstream.clone(), saw.clone(), cut_done.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if !line.to_ascii_lowercase().starts_with("connection:") {
                        head.push(line);
                    }
                }
                let ranged = head
                    .iter()
                    .any(|l| l.to_ascii_lowercase().starts_with("range:"));
                let blob = head[0].starts_with("GET") && head[0].contains("/blobs/sha256:");
                if ranged {
                    saw.store(true, Ordering::SeqCst);
                }
                let mut up = std::net::TcpStream::connect(&upstream).unwrap();
                let text: String = head.concat() + "Connection: close\r\n\r\n";
                up.write_all(text.as_bytes()).unwrap();
                // The first blob longer than `cut` is cut (the config, a
                // small blob, goes through).
                let limit = if blob && !ranged && !cut_done.load(Ordering::SeqCst) {
                    cut
                } else {
                    usize::MAX
                };
                let mut sent = 0;
                let mut buf = [0u8; 16384];
                while sent < limit {
                    let n = match up.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n.min(limit - sent),
                    };
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                }
                if sent >= limit {
                    cut_done.store(true, Ordering::SeqCst);
                }
                let _ = client.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (addr, saw_range)
}

#[test]
fn a_download_cut_short_resumes_where_it_stopped() {
    let env = Env::new("img-resume");
    let Some((reg, _a, b, _name, id, _)) = registry_with_busybox(&env, "test/resume") else {
        return;
    };
    let (proxy, saw_range) = cutting_proxy(reg.addr.clone(), 200_000);
    let o = b.run(&["pull", &format!("{proxy}/test/resume:v1")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id);
    assert!(err.contains("retrying from byte"), "{err}");
    assert!(
        saw_range.load(std::sync::atomic::Ordering::SeqCst),
        "the retry asked for the rest only"
    );
}
