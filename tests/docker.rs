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
