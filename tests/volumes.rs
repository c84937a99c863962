//! `capsa volume`: named volumes made, listed with filters, inspected,
//! kept across containers, refused to `rm` while a container mounts them,
//! and pruned (anonymous ones; all with -a).

use capsa_tests::images::load_busybox_probe;
use capsa_tests::registry::Capsa;
use capsa_tests::Env;
use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn names(c: &Capsa, args: &[&str]) -> Vec<String> {
    let mut a = vec!["volume", "ls", "-q"];
    a.extend_from_slice(args);
    c.ok(&a).lines().map(str::to_string).collect()
}

#[test]
fn volumes_are_made_listed_kept_reused_refused_while_in_use_and_pruned() {
    let env = Env::new("volumes");
    let c = Capsa::new(&env, "vol");
    let image = load_busybox_probe(&env, &c);
    assert_eq!(
        c.ok(&["volume", "create", "-l", "team=a", "-l", "tier=db", "data"])
            .trim(),
        "data"
    );
    c.ok(&["volume", "create", "--label", "team=b", "other"]);
    let err = c.fails(&["volume", "create", "data"]);
    assert!(err.contains("volume data exists already"), "{err}");
    let err = c.fails(&["volume", "create", ".."]);
    assert!(err.contains("volume name"), "{err}");
    assert_eq!(names(&c, &[]), ["data", "other"]);
    assert_eq!(names(&c, &["--filter", "label=team=a"]), ["data"]);
    assert_eq!(names(&c, &["--filter", "label=team"]), ["data", "other"]);
    assert_eq!(names(&c, &["--filter", "name=oth"]), ["other"]);
    let v = json(&c.ok(&["volume", "inspect", "data"]));
    assert_eq!(v[0]["Labels"]["tier"], "db");
    assert_eq!(v[0]["Driver"], "local");
    let mountpoint = v[0]["Mountpoint"].as_str().unwrap().to_string();
    assert!(mountpoint.ends_with("/volumes/data/_data"), "{mountpoint}");
    // Written by one container, read by the next: the volume outlives it.
    c.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        image,
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        std::fs::read_to_string(format!("{mountpoint}/f")).unwrap(),
        "kept\n"
    );
    c.ok(&[
        "create",
        "--name",
        "holder",
        "-v",
        "data:/data",
        image,
        "cat",
        "/data/f",
    ]);
    assert_eq!(names(&c, &["--filter", "dangling=false"]), ["data"]);
    // A container mounting it (created, not running) keeps it.
    let err = c.fails(&["volume", "rm", "data"]);
    assert!(
        err.contains("volume data is in use by container holder"),
        "{err}"
    );
    assert_eq!(c.ok(&["start", "-a", "holder"]), "kept\n");
    assert_eq!(c.ok(&["volume", "prune", "-a"]).trim(), "Deleted: other");
    c.ok(&["rm", "holder"]);
    // An anonymous volume (-v /path) of a container not removed with --rm
    // is pruned once the container is gone; named ones only with -a.
    let id = c
        .ok(&["create", "-v", "/anon", image, "true"])
        .trim()
        .to_string();
    let anon: Vec<String> = names(&c, &[])
        .into_iter()
        .filter(|n| n.starts_with(&id[..12]))
        .collect();
    assert_eq!(anon.len(), 1, "{anon:?}");
    c.ok(&["rm", &id]);
    assert_eq!(
        c.ok(&["volume", "prune"]).trim(),
        format!("Deleted: {}", anon[0])
    );
    assert_eq!(names(&c, &[]), ["data"]);
    assert_eq!(c.ok(&["volume", "rm", "data"]).trim(), "data");
    assert!(names(&c, &[]).is_empty());
    let err = c.fails(&["volume", "inspect", "data"]);
    assert!(err.contains("volume data"), "{err}");
}

#[test]
fn mount_flag_binds_volumes_and_tmpfs_as_docker_does() {
    let env = Env::new("mounts");
    let c = Capsa::new(&env, "mnt");
    let image = load_busybox_probe(&env, &c);
    let host = env.dir.join("host-data");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "from the host\n").unwrap();
    let bind = format!(
        "type=bind,source={},target=/h,readonly,bind-propagation=rshared",
        host.display()
    );
    let out = c.ok(&[
        "run", "--rm", "--mount", &bind, "--mount",
        "type=tmpfs,destination=/scratch,tmpfs-size=1m,tmpfs-mode=1770", image, "sh", "-c",
        "cat /h/f; touch /h/g 2>/dev/null && echo wrote; stat -c %a /scratch; grep ' /scratch ' /proc/self/mountinfo; grep ' /h ' /proc/self/mountinfo",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "from the host", "{out}");
    assert!(!out.contains("wrote"), "a readonly bind was written: {out}");
    assert_eq!(lines[1], "1770", "{out}");
    assert!(lines[2].contains("size=1024k"), "{out}");
    assert!(
        lines[3].contains(" ro,") && lines[3].contains(" shared:"),
        "{out}"
    );
    assert!(!host.join("g").exists());

    // Volumes: a new one gets the image's content at its target, unless
    // volume-nocopy; a named one is refused by `volume rm` while mounted.
    c.ok(&[
        "create",
        "--name",
        "vols",
        "--mount",
        "source=seeded,target=/bin",
        "--mount",
        "type=volume,src=bare,dst=/etc,volume-nocopy",
        "--mount",
        "type=volume,target=/root,readonly",
        image,
        "true",
    ]);
    let data = |v: &str| c.store.join("volumes").join(v).join("_data");
    assert!(data("seeded").join("busybox").exists());
    assert_eq!(std::fs::read_dir(data("bare")).unwrap().count(), 0);
    let e = c.fails(&["volume", "rm", "seeded"]);
    assert!(e.contains("in use") && e.contains("vols"), "{e}");
    let out = c.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=seeded,target=/bin,readonly",
        image,
        "sh",
        "-c",
        "ls /bin/busybox; touch /bin/x 2>/dev/null && echo wrote; true",
    ]);
    assert_eq!(out.trim(), "/bin/busybox", "{out}");

    // --volumes-from: the other's volumes (named, anonymous, the image's)
    // and binds at the same paths; :ro makes them all read-only.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "holder",
        "-v",
        "keep:/keep",
        "-v",
        "/anon",
        "--mount",
        &format!("type=bind,source={},target=/hostdir", host.display()),
        image,
        "sh",
        "-c",
        "echo one > /keep/f; echo two > /anon/f; exec sleep 1000",
    ]);
    capsa_tests::until(10, "holder wrote /anon/f", || {
        c.run(&["exec", "holder", "test", "-s", "/anon/f"])
            .status
            .success()
    });
    let out = c.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "holder",
        image,
        "sh",
        "-c",
        "cat /keep/f /anon/f /hostdir/f; echo more >> /keep/f && echo wrote",
    ]);
    assert_eq!(out, "one\ntwo\nfrom the host\nwrote\n", "{out}");
    let out = c.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "holder:ro",
        image,
        "sh",
        "-c",
        "touch /keep/g 2>/dev/null || echo ro",
    ]);
    assert_eq!(out.trim(), "ro");
    c.ok(&["rm", "-f", "holder"]);

    // Bad values name the flag and make nothing.
    let before = c.ok(&["ps", "-aq"]);
    let e = c.fails(&[
        "run",
        "--mount",
        "type=bind,source=/no/such/dir,target=/x",
        image,
        "true",
    ]);
    assert!(e.contains("--mount") && e.contains("/no/such/dir"), "{e}");
    let e = c.fails(&["run", "--mount", "type=volume,src=..,dst=/x", image, "true"]);
    assert!(e.contains("--mount") && e.contains("volume name"), "{e}");
    assert_eq!(c.ok(&["ps", "-aq"]), before);
}

#[test]
fn system_df_counts_and_prune_removes_what_docker_would() {
    let env = Env::new("sysprune");
    let c = Capsa::new(&env, "sp");
    let image = load_busybox_probe(&env, &c);
    c.ok(&["run", "-d", "--name", "kept", image, "sleep", "1000"]);
    c.ok(&[
        "run",
        "--name",
        "done",
        "-v",
        "/anon",
        image,
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /anon/f",
    ]);
    c.ok(&["volume", "create", "named"]);
    let net = format!("sp{}", std::process::id());
    c.ok(&["network", "create", &net]);
    let df = c.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}|{{.TotalCount}}|{{.Active}}",
    ]);
    assert!(df.contains("Containers|2|1"), "{df}");
    // A volume a stopped container mounts is in use, as docker counts it.
    assert!(df.contains("Local Volumes|2|1"), "{df}");
    let size = c.ok(&["system", "df", "--format", "{{.Type}} {{.Size}}"]);
    assert!(
        size.lines()
            .any(|l| l.starts_with("Local Volumes ") && !l.ends_with(" 0B")),
        "{size}"
    );

    // Without -f and no answer: nothing goes.
    let o = c.run(&["system", "prune", "--volumes"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Nothing removed"));
    assert_eq!(names(&c, &[]).len(), 2);

    let out = c.ok(&["system", "prune", "-f", "--volumes"]);
    assert!(out.contains("Deleted Containers:\ndone\n"), "{out}");
    assert!(
        out.contains(&format!("Deleted Networks:\n{net}\n")),
        "{out}"
    );
    assert!(out.contains("Total reclaimed space:"), "{out}");
    // The running container and its image stay; the named volume stays,
    // the anonymous one of the removed container goes.
    assert_eq!(c.ok(&["ps", "-a", "--format", "{{.Names}}"]).trim(), "kept");
    assert_eq!(names(&c, &[]), ["named"]);
    assert!(c.ok(&["images", "-q"]).lines().count() >= 1);
    c.ok(&["run", "--rm", image, "true"]);
}
