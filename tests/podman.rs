//! podman drives capsa-runtime (`podman --runtime`): run, run -d, exec,
//! stats, stop, rm, with conmon as the container's parent.

use capsa_tests::engines::{busybox_oci_archive, Podman, BUSYBOX};
use capsa_tests::*;

#[test]
fn podman_runs_execs_stats_stops_and_removes_through_capsa() {
    let env = Env::new("podman");
    let Some(p) = Podman::new(&env) else { return };
    let archive = busybox_oci_archive(&env.dir);
    p.ok(&["load", "-i", archive.to_str().unwrap()]);
    let parent = format!("/{}", p.cgroup_parent);

    let o = p.run(&[
        "run",
        "--rm",
        "--cgroup-parent",
        &parent,
        BUSYBOX,
        "sh",
        "-c",
        "echo hello-podman; grep Seccomp: /proc/self/status; exit 3",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // podman's default seccomp profile is in force.
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello-podman\nSeccomp:\t2\n"
    );

    let id = p.ok(&[
        "run",
        "-d",
        "--name",
        "p1",
        "--cgroup-parent",
        &parent,
        "--memory",
        "64m",
        BUSYBOX,
        "sleep",
        "100",
    ]);
    let id = id.trim();
    assert!(p
        .ok(&["ps", "--format", "{{.Names}} {{.Status}}"])
        .contains("p1 Up"));
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/{}/libpod-{id}/memory.limit_in_bytes",
        p.cgroup_parent
    ))
    .unwrap();
    assert_eq!(limit.trim(), (64 << 20).to_string());

    let o = p.run(&["exec", "p1", "sh", "-c", "echo exec-ok; exit 4"]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "exec-ok\n");

    let stats = p.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}}",
        "p1",
    ]);
    assert!(
        stats.starts_with("p1 ") && stats.contains("67.11MB"),
        "{stats}"
    );

    p.ok(&["stop", "-t", "1", "p1"]);
    assert!(p
        .ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        .contains("p1 Exited"));
    p.ok(&["rm", "p1"]);
    assert_eq!(p.ok(&["ps", "-a", "-q"]).trim(), "");
    // The container's cgroup is gone; podman keeps the parent it made for
    // its containers (and conmon), which the test's Env removes.
    for parent in env.cgroup_leftovers() {
        let left: Vec<_> = std::fs::read_dir(&parent)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name())
            .collect();
        assert!(
            left.iter()
                .all(|n| !n.to_string_lossy().starts_with("libpod-")),
            "{} still holds {left:?}",
            parent.display()
        );
    }
}
