//! `capsa build` end to end, on the real kernel: a base pulled from the
//! test's own registry, RUN steps as real containers, layers with
//! whiteouts, the cache, what skopeo and umoci make of the result, podman
//! build's tree for the same file, and the attacks a build invites.

use capsa_tests::engines::busybox_rootfs_tar;
use capsa_tests::registry::{Capsa, Registry};
use capsa_tests::{skopeo, Env};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A context directory of `files` (path, content).
fn context(env: &Env, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.dir.join(name);
    for (p, data) in files {
        let p = dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Busybox imported into `c` as `name`.
fn base(env: &Env, c: &Capsa, name: &str) {
    let p = env.dir.join("busybox.tar");
    std::fs::write(&p, busybox_rootfs_tar()).unwrap();
    c.ok(&["import", p.to_str().unwrap(), name]);
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// `capsa build` of `ctx`; the output (stdout then stderr) and success.
fn build(c: &Capsa, args: &[&str]) -> (bool, String, String) {
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    let o = c.run(&a);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn built(c: &Capsa, args: &[&str]) -> (String, String) {
    let (ok, id, err) = build(c, args);
    assert!(ok, "capsa build {args:?} failed:\n{err}");
    (id, err)
}

/// What a container of `image` prints for `sh -c script`.
fn sh(c: &Capsa, image: &str, script: &str) -> String {
    c.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        script,
    ])
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Nothing a build step makes is left: containers, work directories.
fn assert_nothing_left(c: &Capsa) {
    assert_eq!(entries(&c.store.join("containers")), Vec::<String>::new());
    let work: Vec<String> = entries(&c.store.join("build-work"))
        .into_iter()
        .filter(|e| e != ".sweep")
        .collect();
    assert_eq!(work, Vec::<String>::new());
    assert_eq!(c.ok(&["ps", "-aq"]).trim(), "");
}

const MULTI: &str = r#"# a two-stage build
ARG BASE
FROM ${BASE} AS build
ARG GREETING=hello
ENV OUT=/out \
    MODE=0750
RUN echo "app:x:1000:1000::/home/app:/bin/sh" >> /etc/passwd \
 && echo "app:x:1000:" >> /etc/group \
 && mkdir -p $OUT/bin /home/app \
 && echo "$GREETING from the build stage" > $OUT/greeting \
 && chmod $MODE $OUT/bin && chown 1000:1000 $OUT/bin
COPY src/ /src/
WORKDIR /src
RUN cat a.txt b.txt > /out/joined && rm -rf /etc/motd

FROM ${BASE}
LABEL org.example.kind=test
COPY --from=build /etc/passwd /etc/group /etc/
COPY --from=build /out /opt/out
RUN rm /etc/motd && touch /made-by-run
ENV WHO=world
USER app
WORKDIR /home/app
ENTRYPOINT ["/bin/sh", "-c", "echo $WHO; id -u; pwd; cat /opt/out/greeting", "--"]
CMD ["ignored"]
EXPOSE 8080
VOLUME /data
HEALTHCHECK --interval=5s --retries=2 CMD test -f /made-by-run
STOPSIGNAL SIGUSR1
"#;

#[test]
fn a_multi_stage_build_from_a_registry_base_runs_pushes_and_round_trips() {
    let env = Env::new("build-multi");
    let Some(reg) = Registry::plain(&env, "buildbase") else {
        return;
    };
    // The base goes to the registry from one store; the build pulls it
    // into another.
    let pusher = Capsa::new(&env, "push");
    let base_name = format!("{}/lib/busybox:1", reg.addr);
    let with_motd = env.dir.join("motd.tar");
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    tar.append_data(&mut h, "etc/motd", &b"hi!\n"[..]).unwrap();
    std::fs::write(&with_motd, tar.into_inner().unwrap()).unwrap();
    base(&env, &pusher, "localhost/bb:1");
    // Two layers: busybox, then /etc/motd that the build deletes.
    let ctx0 = context(
        &env,
        "ctx0",
        &[("Containerfile", "FROM localhost/bb:1\nADD motd.tar /\n")],
    );
    std::fs::copy(&with_motd, ctx0.join("motd.tar")).unwrap();
    built(&pusher, &["-q", "-t", &base_name, ctx0.to_str().unwrap()]);
    pusher.ok(&["push", "-q", &base_name]);

    let c = Capsa::new(&env, "multi");
    let ctx = context(
        &env,
        "ctx",
        &[
            ("Containerfile", MULTI),
            ("src/a.txt", "A\n"),
            ("src/b.txt", "B\n"),
            ("src/skip.log", "not copied\n"),
            (".dockerignore", "**/*.log\n"),
        ],
    );
    let (id, out) = built(
        &c,
        &[
            "-t",
            "localhost/multi:1",
            "--build-arg",
            &format!("BASE={base_name}"),
            "--label",
            "by=flag",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(id.starts_with("sha256:"), "{id}");
    assert!(
        out.contains("[1/2] STEP 1/7: FROM ${BASE} AS build"),
        "{out}"
    );
    assert!(out.contains("[2/2] STEP 7/14: USER app"), "{out}");
    // The entrypoint, cmd, env, user and workdir as the file says.
    let o = c.ok(&["run", "--rm", "localhost/multi:1"]);
    assert_eq!(
        o, "world\n1000\n/home/app\nhello from the build stage\n",
        "{o}"
    );
    // RUN's deletions are whiteouts in the layer; modes and owners kept;
    // the ignored file is not there.
    let o = sh(
        &c,
        "localhost/multi:1",
        "test -e /etc/motd && echo motd; stat -c '%a %u:%g' /opt/out/bin; cat /opt/out/joined; ls /src 2>&1; test -f /made-by-run && echo run",
    );
    assert_eq!(
        o, "750 1000:1000\nA\nB\nls: /src: No such file or directory\nrun\n",
        "{o}"
    );
    let stage = built(
        &c,
        &[
            "-q",
            "--target",
            "build",
            "--build-arg",
            &format!("BASE={base_name}"),
            ctx.to_str().unwrap(),
        ],
    )
    .0;
    assert_eq!(sh(&c, &stage, "ls /src"), "a.txt\nb.txt\n");
    // The config, as docker's fields.
    let inspect = json(&c.ok(&["image", "inspect", "localhost/multi:1"]));
    let cfg = &inspect[0]["Config"];
    assert_eq!(cfg["User"], "app");
    assert_eq!(cfg["WorkingDir"], "/home/app");
    assert_eq!(cfg["Cmd"], serde_json::json!(["ignored"]));
    assert_eq!(cfg["Labels"]["org.example.kind"], "test");
    assert_eq!(cfg["Labels"]["by"], "flag");
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object(), "{cfg}");
    assert!(cfg["Volumes"]["/data"].is_object(), "{cfg}");
    assert_eq!(cfg["StopSignal"], "SIGUSR1");
    assert_eq!(
        cfg["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "test -f /made-by-run"], "Interval": 5_000_000_000u64, "Retries": 2})
    );
    assert!(cfg["Env"]
        .as_array()
        .unwrap()
        .contains(&Value::from("WHO=world")));
    // The build arg is not in the image.
    assert!(!cfg["Env"].to_string().contains("GREETING"), "{cfg}");
    // Pushed, skopeo reads it; saved, umoci unpacks it.
    let pushed = format!("{}/lib/multi:1", reg.addr);
    c.ok(&["tag", "localhost/multi:1", &pushed]);
    c.ok(&["push", "-q", &pushed]);
    let sk = json(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{pushed}"),
    ]));
    assert_eq!(sk["Labels"]["by"], "flag");
    let archive = env.dir.join("multi.tar");
    c.ok(&["save", "-o", archive.to_str().unwrap(), "localhost/multi:1"]);
    let layout = env.dir.join("layout");
    c.ok(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        layout.to_str().unwrap(),
        "localhost/multi:1",
    ]);
    let bundle = env.dir.join("umoci-bundle");
    let o = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:1", layout.display()))
        .arg(&bundle)
        .output()
        .expect("umoci (scripts/deps.sh installs it)");
    assert!(
        o.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/opt/out/joined")).unwrap(),
        "A\nB\n"
    );
    assert!(
        !bundle.join("rootfs/etc/motd").exists(),
        "the whiteout hides /etc/motd"
    );
    // Loaded into a store of its own, it is the same image.
    let d = Capsa::new(&env, "loaded");
    d.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
    let again = json(&d.ok(&["image", "inspect", "localhost/multi:1"]));
    assert_eq!(again[0]["Id"], inspect[0]["Id"]);
    assert_nothing_left(&c);
}

const CACHED: &str = "FROM localhost/bb:1\nRUN echo one > /one\nCOPY app.txt /app/\nRUN cat /app/app.txt > /two\nENV X=1\n";

#[test]
fn a_rebuild_with_nothing_changed_makes_no_container_and_a_change_reruns_only_what_follows() {
    let env = Env::new("build-cache");
    let c = Capsa::new(&env, "cache");
    base(&env, &c, "localhost/bb:1");
    let ctx = context(
        &env,
        "ctx",
        &[("Containerfile", CACHED), ("app.txt", "v1\n")],
    );
    let (first, out) = built(&c, &["-t", "localhost/c:1", ctx.to_str().unwrap()]);
    assert!(!out.contains("Using cache"), "{out}");
    let containers = c.store.join("containers");
    let stamp = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let before = (
        stamp(&containers),
        entries(&c.store.join("blobs/sha256")).len(),
    );
    // Times change, content does not: still all cached.
    let f = std::fs::File::options()
        .write(true)
        .open(ctx.join("app.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    drop(f);
    let (second, out) = built(&c, &["-t", "localhost/c:1", ctx.to_str().unwrap()]);
    assert_eq!(second, first, "the same image");
    assert_eq!(out.matches("Using cache").count(), 4, "{out}");
    assert!(out.contains("0 steps ran, 4 from the cache"), "{out}");
    // No container was made (its directory was not touched) and no blob
    // was written.
    let after = (
        stamp(&containers),
        entries(&c.store.join("blobs/sha256")).len(),
    );
    assert_eq!(after, before, "a cached build made a container or a blob");
    // One file changes: the steps before its COPY stay cached.
    std::fs::write(ctx.join("app.txt"), "v2\n").unwrap();
    let (third, out) = built(&c, &["-t", "localhost/c:1", ctx.to_str().unwrap()]);
    assert_ne!(third, first);
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("] -->")).collect();
    assert!(lines[1].contains("Using cache"), "{out}");
    assert!(
        !lines[2].contains("Using cache") && !lines[3].contains("Using cache"),
        "{out}"
    );
    assert_eq!(sh(&c, "localhost/c:1", "cat /two"), "v2\n");
    // --no-cache runs everything.
    let (_, out) = built(&c, &["--no-cache", ctx.to_str().unwrap()]);
    assert!(!out.contains("Using cache"), "{out}");
    // Pruning drops the entries no image uses; the image's stay.
    c.ok(&["builder", "prune"]);
    let (_, out) = built(&c, &["-t", "localhost/c:1", ctx.to_str().unwrap()]);
    assert!(
        out.contains("from the cache") && out.matches("Using cache").count() == 4,
        "{out}"
    );
    c.ok(&["builder", "prune", "-a"]);
    assert_eq!(entries(&c.store.join("build-cache")), Vec::<String>::new());
    assert_nothing_left(&c);
}

#[test]
fn bad_input_names_the_file_line_and_instruction_and_leaves_nothing() {
    let env = Env::new("build-bad");
    let c = Capsa::new(&env, "bad");
    base(&env, &c, "localhost/bb:1");
    let images = c.ok(&["images", "-q"]);
    let secret = env.dir.join("secret");
    std::fs::write(&secret, "host secret").unwrap();
    let cases: &[(&str, &str)] = &[
        ("FROM localhost/bb:1\nFROBNICATE x\n", "Containerfile:2: FROBNICATE: unknown instruction"),
        ("FROM localhost/bb:1\nCOPY ../secret /s\n", "Containerfile:2: COPY: ../secret: outside the context"),
        ("FROM localhost/bb:1\nCOPY link /s\n", "Containerfile:2: COPY: link: leads out of the context"),
        ("FROM localhost/bb:1\nCOPY nothere /s\n", "Containerfile:2: COPY: nothere: no such file"),
        ("FROM localhost/bb:1\nCOPY fifo /s\n", "not a regular file or a directory"),
        ("FROM localhost/bb:1\nRUN echo to-stdout; echo to-stderr >&2; exit 7\n", "Containerfile:2: RUN echo to-stdout; echo to-stderr >&2; exit 7: the command exited with code 7"),
        ("FROM localhost/bb:1\nCOPY --from=nostage /x /x\n", "--from=nostage"),
    ];
    for (i, (file, want)) in cases.iter().enumerate() {
        let ctx = context(&env, &format!("ctx{i}"), &[("Containerfile", file)]);
        std::os::unix::fs::symlink(&secret, ctx.join("link")).unwrap();
        nix::unistd::mkfifo(
            &ctx.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let o = c.run(&["build", ctx.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{file}: {err}");
        assert!(err.contains(want), "{file}: wanted {want:?} in:\n{err}");
        if file.contains("exit 7") {
            // The failing step's output is shown, on stderr: stdout is
            // for the image id alone.
            assert!(
                err.contains("to-stdout") && err.contains("to-stderr"),
                "{err}"
            );
            assert_eq!(String::from_utf8_lossy(&o.stdout), "");
        }
    }
    let ctx = context(
        &env,
        "target",
        &[("Containerfile", "FROM localhost/bb:1 AS a\n")],
    );
    let (ok, _, err) = build(&c, &["--target", "nope", ctx.to_str().unwrap()]);
    assert!(
        !ok && err.contains("--target: no stage named \"nope\""),
        "{err}"
    );
    assert_eq!(c.ok(&["images", "-q"]), images, "no image was made");
    assert_nothing_left(&c);
}

#[test]
fn add_unpacks_local_archives_and_fetches_urls_from_a_local_server() {
    let env = Env::new("build-add");
    let c = Capsa::new(&env, "add");
    base(&env, &c, "localhost/bb:1");
    // A tiny HTTP server on 127.0.0.1 of the test's own.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).unwrap();
        let body = b"fetched over http\n";
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
    });
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o640);
    h.set_uid(7);
    h.set_gid(8);
    tar.append_data(&mut h, "inner/x.txt", &b"xyz"[..]).unwrap();
    let gz = tar.into_inner().unwrap().finish().unwrap();
    let file = format!(
        "FROM localhost/bb:1\nADD a.tar.gz /unpacked/\nADD http://127.0.0.1:{port}/files/page.txt /web/\nCOPY a.tar.gz /copied/\nADD --chown=5:6 <<EOF /doc.txt\nhere\nEOF\n"
    );
    let ctx = context(&env, "ctx", &[("Containerfile", &file)]);
    std::fs::write(ctx.join("a.tar.gz"), gz).unwrap();
    // No network for the build (the tests' CAPSA_NETWORK=none): no fetch.
    let (ok, _, err) = build(&c, &[ctx.to_str().unwrap()]);
    assert!(!ok && err.contains("the build has --network none"), "{err}");
    let (id, _) = built(&c, &["-q", "--network", "host", ctx.to_str().unwrap()]);
    server.join().unwrap();
    let o = sh(
        &c,
        &id,
        "stat -c '%a %u:%g %s' /unpacked/inner/x.txt; cat /web/page.txt; stat -c %a /web/page.txt; ls /copied; stat -c '%u:%g' /doc.txt; cat /doc.txt",
    );
    assert_eq!(
        o, "640 7:8 3\nfetched over http\n600\na.tar.gz\n5:6\nhere\n",
        "{o}"
    );
    assert_nothing_left(&c);
}

#[test]
fn onbuild_triggers_run_in_the_child_and_health_checks_are_stored() {
    let env = Env::new("build-onbuild");
    let c = Capsa::new(&env, "onbuild");
    base(&env, &c, "localhost/bb:1");
    let parent = context(
        &env,
        "parent",
        &[(
            "Containerfile",
            "FROM localhost/bb:1\nONBUILD COPY marker.txt /from-child-context\nONBUILD RUN echo triggered > /triggered\nHEALTHCHECK NONE\n",
        )],
    );
    built(
        &c,
        &["-q", "-t", "localhost/parent:1", parent.to_str().unwrap()],
    );
    let cfg = json(&c.ok(&["image", "inspect", "localhost/parent:1"]));
    assert_eq!(cfg[0]["Config"]["OnBuild"].as_array().unwrap().len(), 2);
    assert_eq!(
        cfg[0]["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    let child = context(
        &env,
        "child",
        &[
            (
                "Containerfile",
                "FROM localhost/parent:1\nRUN cat /triggered /from-child-context\n",
            ),
            ("marker.txt", "child's\n"),
        ],
    );
    let o = c.run(&["build", "-t", "localhost/child:1", child.to_str().unwrap()]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    // The triggers run first, numbered as steps after the FROM.
    assert!(
        err.contains("STEP 1/4: FROM localhost/parent:1")
            && err.contains("STEP 3/4: ONBUILD RUN echo triggered"),
        "{err}"
    );
    assert!(err.contains("triggered\nchild's\n"), "{err}");
    assert!(
        out.trim().starts_with("sha256:") && out.lines().count() == 1,
        "{out}"
    );
    assert_eq!(sh(&c, "localhost/child:1", "cat /triggered"), "triggered\n");
    let cfg = json(&c.ok(&["image", "inspect", "localhost/child:1"]));
    assert!(
        cfg[0]["Config"]["OnBuild"].is_null(),
        "triggers are not inherited twice"
    );
    assert_nothing_left(&c);
}

/// Security (CVE-2018-15664 class, through a build): an image's link
/// cannot send a COPY's files to the host; a RUN cannot forge a
/// whiteout; a FIFO or device a RUN makes is never opened by the diff.
#[test]
fn a_build_cannot_write_to_the_host_forge_whiteouts_or_hang_the_diff() {
    let env = Env::new("build-attack");
    let c = Capsa::new(&env, "attack");
    base(&env, &c, "localhost/bb:1");
    let host_dir = env.dir.join("host-target");
    std::fs::create_dir_all(&host_dir).unwrap();
    let file = format!(
        "FROM localhost/bb:1\nRUN ln -s {} /out && mkfifo /fifo && mknod /null2 c 1 3\nCOPY payload.txt /out/\n",
        host_dir.display()
    );
    let ctx = context(
        &env,
        "ctx",
        &[("Containerfile", &file), ("payload.txt", "payload\n")],
    );
    let (id, _) = built(&c, &["-q", ctx.to_str().unwrap()]);
    assert!(
        !host_dir.join("payload.txt").exists(),
        "COPY followed the image's link to the host"
    );
    // The link led inside the image's own root.
    assert_eq!(
        sh(
            &c,
            &id,
            &format!(
                "cat {}/payload.txt; test -p /fifo && echo fifo; test -c /null2 && echo dev",
                host_dir.display()
            )
        ),
        "payload\nfifo\ndev\n"
    );
    let forge = context(
        &env,
        "forge",
        &[(
            "Containerfile",
            "FROM localhost/bb:1\nRUN touch /etc/.wh.passwd\n",
        )],
    );
    let (ok, _, err) = build(&c, &[forge.to_str().unwrap()]);
    assert!(
        !ok && err.contains("etc/.wh.passwd") && err.contains("whiteout"),
        "{err}"
    );
    assert_nothing_left(&c);
}

const PARITY: &str = r#"FROM docker.io/library/busybox:capsa-test
ARG V=1.0
ENV APP=/app VERSION=$V
RUN mkdir -p /app/data /var/cache/x \
 && echo "app:x:1000:1000::/app:/bin/sh" >> /etc/passwd \
 && echo "app:x:1000:" >> /etc/group \
 && echo cache > /var/cache/x/f && chmod 0604 /var/cache/x/f \
 && chown -R 1000:1000 /app/data && rm /bin/vi \
 && ln -s /app/data /data && ln /var/cache/x/f /var/cache/x/hard
COPY --chown=app:app conf/ /app/conf/
COPY --chmod=0755 run.sh /app/
COPY top.txt .
WORKDIR /app/data
RUN echo "$VERSION" > version && touch -d 2001-01-01 version
USER app
EXPOSE 8080/tcp 53/udp
LABEL a=b c="d e"
ENTRYPOINT ["/app/run.sh"]
CMD ["serve"]
"#;

/// Every entry of an unpacked root: type, mode, owner, size, link target
/// and content digest (times left out).
fn tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                todo.push(p.clone());
                "dir".into()
            } else {
                let data = std::fs::read(&p).unwrap();
                format!("file {} {}", data.len(), capsa_image::Digest::of(&data))
            };
            out.insert(
                rel,
                format!("{what} {:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid()),
            );
        }
    }
    out
}

/// `umoci unpack` of an OCI layout's only image; the rootfs tree.
fn unpacked(layout: &Path, bundle: &Path) -> std::collections::BTreeMap<String, String> {
    let tags = Command::new("umoci")
        .args(["ls", "--layout"])
        .arg(layout)
        .output()
        .unwrap();
    let tag = String::from_utf8_lossy(&tags.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let o = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(bundle)
        .output()
        .expect("umoci (scripts/deps.sh installs it)");
    assert!(
        o.status.success(),
        "umoci {}: {}",
        layout.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    tree(&bundle.join("rootfs"))
}

/// The same Containerfile through `podman build` (buildah) and `capsa
/// build`: the same files (paths, types, modes, owners, contents) and the
/// same config fields.
#[test]
fn podman_build_and_capsa_build_make_the_same_image() {
    let env = Env::new("bpar");
    let Some(p) = capsa_tests::engines::Podman::new(&env) else {
        return;
    };
    let archive = capsa_tests::engines::busybox_oci_archive(&env.dir);
    p.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
    let c = Capsa::new(&env, "parity");
    c.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
    let ctx = context(
        &env,
        "ctx",
        &[
            ("Containerfile", PARITY),
            ("conf/a.conf", "a=1\n"),
            ("conf/sub/b.conf", "b=2\n"),
            ("conf/skip.tmp", "left out\n"),
            ("run.sh", "#!/bin/sh\necho run\n"),
            ("top.txt", "top\n"),
            (".dockerignore", "**/*.tmp\n"),
        ],
    );
    let ctx_s = ctx.to_str().unwrap();
    p.ok(&[
        "build",
        "--network",
        "none",
        "--build-arg",
        "V=2.5",
        "-t",
        "localhost/parity:1",
        ctx_s,
    ]);
    built(
        &c,
        &[
            "-q",
            "--build-arg",
            "V=2.5",
            "-t",
            "localhost/parity:1",
            ctx_s,
        ],
    );
    let (pl, cl) = (env.dir.join("podman-layout"), env.dir.join("capsa-layout"));
    p.ok(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        pl.to_str().unwrap(),
        "localhost/parity:1",
    ]);
    c.ok(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        cl.to_str().unwrap(),
        "localhost/parity:1",
    ]);
    let (pt, ct) = (
        unpacked(&pl, &env.dir.join("pb")),
        unpacked(&cl, &env.dir.join("cb")),
    );
    let keys: std::collections::BTreeSet<&String> = pt.keys().chain(ct.keys()).collect();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| pt.get(*k) != ct.get(*k))
        // buildah leaves the mount points its RUN made (an empty
        // /etc/hostname, /run) in the layer; BuildKit and capsa do not.
        .filter(|k| {
            let empty = pt
                .get(*k)
                .is_some_and(|v| v.starts_with("dir ") || v.starts_with("file 0 "));
            !(["etc/hostname", "etc/hosts", "etc/resolv.conf", "run"].contains(&k.as_str())
                && empty
                && !ct.contains_key(*k))
        })
        .map(|k| format!("{k}: podman {:?}, capsa {:?}", pt.get(k), ct.get(k)))
        .collect();
    assert!(diffs.is_empty(), "the trees differ:\n{}", diffs.join("\n"));
    assert!(ct.contains_key("app/conf/sub/b.conf") && !ct.contains_key("app/conf/skip.tmp"));
    let mut pc = json(&p.ok(&["image", "inspect", "localhost/parity:1"]));
    // buildah signs its images with its version.
    pc[0]["Config"]["Labels"]
        .as_object_mut()
        .unwrap()
        .remove("io.buildah.version");
    let cc = json(&c.ok(&["image", "inspect", "localhost/parity:1"]));
    for f in [
        "Env",
        "Entrypoint",
        "Cmd",
        "User",
        "WorkingDir",
        "Labels",
        "ExposedPorts",
    ] {
        assert_eq!(pc[0]["Config"][f], cc[0]["Config"][f], "Config.{f}");
    }
    assert_nothing_left(&c);
}

/// Security ("trust nothing that came out of" a context, or an image):
/// the Containerfile and ignore file are read through the context's
/// handle as regular files; an ignored directory is not taken in through
/// a link; a step cannot pick the host's network, nor a base image's
/// trigger any network; a step's output never reaches stdout.
#[test]
fn a_hostile_context_or_base_cannot_read_host_files_hang_the_build_or_pick_the_network() {
    let env = Env::new("build-hostile");
    let c = Capsa::new(&env, "hostile");
    base(&env, &c, "localhost/bb:1");
    let secret = env.dir.join("host-secret");
    std::fs::write(&secret, "FROM-HOST-SECRET\n").unwrap();
    // A Containerfile that is a link to a host file reads the context's
    // own path (absent here), never the host's.
    let ctx = context(&env, "link", &[]);
    std::os::unix::fs::symlink(&secret, ctx.join("Containerfile")).unwrap();
    let (ok, _, err) = build(&c, &[ctx.to_str().unwrap()]);
    assert!(!ok && !err.contains("SECRET"), "{err}");
    assert!(err.contains("no Containerfile or Dockerfile"), "{err}");
    // Named with -f, the same: read through the context's handle.
    let f = ctx.join("Containerfile");
    let (ok, _, err) = build(&c, &["-f", f.to_str().unwrap(), ctx.to_str().unwrap()]);
    assert!(!ok && !err.contains("SECRET"), "{err}");
    // A FIFO as the ignore file, or as the Containerfile: refused, not
    // waited on.
    let ctx = context(&env, "fifo", &[("Containerfile", "FROM localhost/bb:1\n")]);
    nix::unistd::mkfifo(
        &ctx.join(".dockerignore"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let (ok, _, err) = build(&c, &[ctx.to_str().unwrap()]);
    assert!(!ok && err.contains(".dockerignore"), "{err}");
    let ctx = context(&env, "fifo2", &[]);
    nix::unistd::mkfifo(
        &ctx.join("Containerfile"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let (ok, _, err) = build(&c, &[ctx.to_str().unwrap()]);
    assert!(!ok && err.contains("Containerfile"), "{err}");
    // An ignored directory, taken in through a link: refused.
    let ctx = context(
        &env,
        "ign",
        &[
            ("Containerfile", "FROM localhost/bb:1\nCOPY assets /x\n"),
            ("secrets/key", "k\n"),
            (".dockerignore", "secrets\n"),
        ],
    );
    std::os::unix::fs::symlink("secrets", ctx.join("assets")).unwrap();
    let (ok, _, err) = build(&c, &[ctx.to_str().unwrap()]);
    assert!(!ok && err.contains("left out of the context"), "{err}");
    // The host's network: not on a step's own say, nor a trigger's.
    let ctx = context(
        &env,
        "net",
        &[(
            "Containerfile",
            "FROM localhost/bb:1\nRUN --network=host true\n",
        )],
    );
    let (ok, _, err) = build(&c, &[ctx.to_str().unwrap()]);
    assert!(!ok && err.contains("--network=host"), "{err}");
    let parent = context(
        &env,
        "trig",
        &[(
            "Containerfile",
            "FROM localhost/bb:1\nONBUILD RUN --network=none true\n",
        )],
    );
    built(
        &c,
        &["-q", "-t", "localhost/trig:1", parent.to_str().unwrap()],
    );
    let child = context(
        &env,
        "child",
        &[("Containerfile", "FROM localhost/trig:1\n")],
    );
    let (ok, _, err) = build(&c, &[child.to_str().unwrap()]);
    assert!(
        !ok && err.contains("trigger cannot choose the network"),
        "{err}"
    );
    // A step that prints flags cannot feed them to $(capsa build -q).
    let ctx = context(
        &env,
        "out",
        &[(
            "Containerfile",
            "FROM localhost/bb:1\nRUN echo --privileged\n",
        )],
    );
    let (id, _) = built(&c, &["-q", ctx.to_str().unwrap()]);
    assert!(
        id.starts_with("sha256:") && !id.contains("privileged"),
        "{id}"
    );
    assert_nothing_left(&c);
}

/// Independent stages run at once, as BuildKit runs them: one stage's
/// step listens on a port, the other's connects to it. Built one after
/// the other, the listener would wait for a client that never comes and
/// fail at its timeout. (The listener's stdin stays open a while: busybox
/// nc, at the end of its stdin, may close a connection before its data
/// came.)
#[test]
fn independent_stages_build_at_once() {
    let env = Env::new("build-parallel");
    let c = Capsa::new(&env, "parallel");
    base(&env, &c, "localhost/bb:1");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = format!(
        "FROM localhost/bb:1 AS listener\n\
         RUN timeout 30 sh -c 'sleep 2 | nc -l -p {port} > /got' && test -s /got\n\
         FROM localhost/bb:1 AS client\n\
         RUN i=0; until echo hello | nc 127.0.0.1 {port}; do i=$((i+1)); [ $i -lt 300 ] || exit 1; usleep 100000; done\n\
         FROM localhost/bb:1\n\
         COPY --from=listener /got /got\n\
         COPY --from=client /etc/passwd /client-passwd\n"
    );
    let ctx = context(&env, "ctx", &[("Containerfile", &file)]);
    let o = c.run(&[
        "build",
        "--network",
        "host",
        "--trace",
        ctx.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(sh(&c, &id, "cat /got"), "hello\n");
    // The trace has every stage's steps, the fork's too.
    assert!(
        err.contains("[1] RUN timeout 30 sh -c") && err.contains("[2] RUN i=0; until"),
        "{err}"
    );
    assert_nothing_left(&c);
}

/// Globs as sources, SHELL for RUN and the shell form of CMD, and COPY
/// --from an image (not a stage), pulled from the store.
#[test]
fn globs_shell_and_copy_from_an_image() {
    let env = Env::new("build-glob");
    let c = Capsa::new(&env, "glob");
    base(&env, &c, "localhost/bb:1");
    let other = context(
        &env,
        "other",
        &[(
            "Containerfile",
            "FROM localhost/bb:1\nRUN echo from-image > /marker\n",
        )],
    );
    built(
        &c,
        &["-q", "-t", "localhost/other:1", other.to_str().unwrap()],
    );
    let ctx = context(
        &env,
        "ctx",
        &[
            (
                "Containerfile",
                "FROM localhost/bb:1\nSHELL [\"/bin/env\", \"MARK=1\", \"/bin/sh\", \"-c\"]\nCOPY *.txt d?/[a-b].md /t/\nCOPY --from=localhost/other:1 /marker /from-image\nRUN echo \"$MARK\" > /mark\nCMD echo hi\n",
            ),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("c.log", "c\n"),
            ("d1/a.md", "d1a\n"),
            ("d1/c.md", "d1c\n"),
        ],
    );
    let (id, _) = built(&c, &["-q", ctx.to_str().unwrap()]);
    assert_eq!(
        sh(&c, &id, "ls /t; cat /from-image /mark"),
        "a.md\na.txt\nb.txt\nfrom-image\n1\n"
    );
    let cfg = json(&c.ok(&["image", "inspect", &id]));
    assert_eq!(
        cfg[0]["Config"]["Cmd"],
        serde_json::json!(["/bin/env", "MARK=1", "/bin/sh", "-c", "echo hi"])
    );
    let none = context(
        &env,
        "none",
        &[("Containerfile", "FROM localhost/bb:1\nCOPY *.nothing /x/\n")],
    );
    let (ok, _, err) = build(&c, &[none.to_str().unwrap()]);
    assert!(
        !ok && err.contains("*.nothing: no file in the context matches"),
        "{err}"
    );
    assert_nothing_left(&c);
}
