//! docker drives capsa-runtime (`docker run --runtime capsa`), through its
//! own containerd and the runc shim: run, exec, stats.

use capsa_tests::engines::Dockerd;
use capsa_tests::*;

#[test]
fn docker_runs_execs_and_stats_through_capsa() {
    let env = Env::new("docker");
    let Some(d) = Dockerd::start(&env) else {
        return;
    };
    d.import_busybox();

    let o = d.docker(&[
        "run",
        "--rm",
        "--runtime",
        "capsa",
        "--network",
        "none",
        "busybox:capsa-test",
        "sh",
        "-c",
        "echo hello-docker; grep Seccomp: /proc/self/status; exit 3",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        d.log()
    );
    // docker's default seccomp profile is in force.
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello-docker\nSeccomp:\t2\n"
    );

    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "d1",
        "--runtime",
        "capsa",
        "--network",
        "none",
        "--memory",
        "64m",
        "busybox:capsa-test",
        "sleep",
        "100",
    ]);
    let id = id.trim();
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/{}/{id}/memory.limit_in_bytes",
        env.cgroup_parent
    ))
    .unwrap();
    assert_eq!(limit.trim(), (64 << 20).to_string());

    let o = d.docker(&["exec", "d1", "sh", "-c", "echo exec-ok; exit 4"]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "exec-ok\n");

    let stats = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}}",
        "d1",
    ]);
    assert!(
        stats.starts_with("d1 ") && stats.contains("/ 64MiB"),
        "{stats}"
    );

    d.ok(&["rm", "-f", "d1"]);
    assert_eq!(d.ok(&["ps", "-aq"]).trim(), "");
    assert!(
        !std::path::Path::new(&format!("/sys/fs/cgroup/memory/{}/{id}", env.cgroup_parent))
            .exists()
    );
}

/// The same containers, made by dockerd (through capsa-runtime) and by
/// capsa: `ps` templates and filters print the same, field for field
/// (times aside), and `inspect -f` too.
#[test]
fn ps_templates_and_filters_print_what_dockers_print() {
    let env = Env::new("docker-fmt");
    let Some(d) = Dockerd::start(&env) else {
        return;
    };
    d.import_busybox();
    let c = capsa_tests::registry::Capsa::new(&env, "cmp");
    let tar = env.dir.join("busybox.tar");
    std::fs::write(&tar, capsa_tests::engines::busybox_rootfs_tar()).unwrap();
    c.ok(&["import", tar.to_str().unwrap(), "busybox:capsa-test"]);
    let docker = |args: &[&str]| d.docker(args);
    let capsa = |args: &[&str]| c.run(args);
    type Cli<'a> = &'a dyn Fn(&[&str]) -> std::process::Output;
    let engines: [(Cli, &[&str]); 2] = [
        (&docker, &["--runtime", "capsa", "--network", "none"]),
        (&capsa, &[]),
    ];
    for (run, extra) in &engines {
        // Each verb with the engine's own flags; its exit code.
        let with = |verb: &str, rest: &[&str]| {
            let mut a = vec![verb];
            a.extend_from_slice(extra);
            a.extend_from_slice(rest);
            let o = run(&a);
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        };
        let (code, err) = with(
            "run",
            &[
                "-d",
                "--name",
                "up",
                "-l",
                "cmp=1",
                "busybox:capsa-test",
                "sleep",
                "100",
            ],
        );
        assert_eq!(code, Some(0), "{err}");
        let (code, err) = with(
            "create",
            &[
                "--name",
                "made",
                "-l",
                "cmp=1",
                "-l",
                "two=2",
                "busybox:capsa-test",
                "sh",
                "-c",
                "echo a rather long command line",
            ],
        );
        assert_eq!(code, Some(0), "{err}");
        // An exited one.
        let (code, err) = with(
            "run",
            &[
                "--name",
                "down",
                "-l",
                "cmp=1",
                "busybox:capsa-test",
                "sh",
                "-c",
                "exit 3",
            ],
        );
        assert_eq!(code, Some(3), "{err}");
    }
    let docker = |args: &[&str]| d.ok(args);
    let capsa = |args: &[&str]| c.ok(args);
    let both = |args: &[&str]| -> (String, String) { (docker(args), capsa(args)) };
    for args in [
        &["ps", "-a", "-f", "label=cmp=1", "--format", "{{.Names}}|{{.Image}}|{{.Command}}|{{.State}}|{{.Networks}}|{{.Mounts}}|{{.Ports}}|{{.LocalVolumes}}"][..],
        &["ps", "-f", "label=cmp=1", "--format", "{{.Names}}"],
        &["ps", "-f", "status=exited", "-f", "label=cmp=1", "--format", "{{.Names}} {{.State}}"],
        &["ps", "-f", "exited=3", "--format", "{{.Names}}"],
        &["ps", "-a", "-f", "name=do", "-f", "name=ma", "--format", "{{.Names}}"],
        &["ps", "-a", "-f", "label=two", "--format", "{{.Names}}"],
        &["ps", "-a", "-f", "since=up", "--format", "{{.Names}}"],
        &["ps", "-a", "-f", "before=down", "--format", "{{.Names}}"],
        &["ps", "-a", "-f", "label=cmp=1", "--format", r"table {{.Names}}\t{{.State}}"],
        &["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}} {{.Config.Labels.cmp}}", "up", "made", "down"],
    ] {
        let (want, got) = both(args);
        assert_eq!(got, want, "{args:?}\n{}", capsa(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]));
    }
    // Labels: docker joins them in map order; the same set.
    let set = |s: String| {
        let mut v: Vec<String> = s.trim().split(',').map(str::to_string).collect();
        v.sort();
        v
    };
    let (want, got) = both(&["ps", "-a", "-f", "name=made", "--format", "{{.Labels}}"]);
    assert_eq!(set(got), set(want));
    // {{json .}}: the same fields.
    let keys = |s: String| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
        v.as_object().unwrap().keys().cloned().collect()
    };
    let (want, got) = both(&["ps", "-a", "-f", "name=made", "--format", "{{json .}}"]);
    assert_eq!(keys(got.clone()), keys(want.clone()), "{want}\n{got}");
}
