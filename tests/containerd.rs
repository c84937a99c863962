//! containerd drives capsa-runtime in place of runc (`ctr run
//! --runc-binary`): the same shim, flags and files it gives runc.

use capsa_tests::engines::{busybox_oci_archive, Containerd, BUSYBOX};
use capsa_tests::*;

fn setup(env: &Env) -> Option<Containerd> {
    let c = Containerd::start(env)?;
    let archive = busybox_oci_archive(&env.dir);
    c.ctr_ok(&["images", "import", archive.to_str().unwrap()]);
    Some(c)
}

#[test]
fn ctr_run_rm_returns_output_and_exit_code() {
    let env = Env::new("ctrrun");
    let Some(c) = setup(&env) else { return };
    let rt = env.runtime.display().to_string();
    let o = c.ctr(&[
        "run",
        "--runc-binary",
        &rt,
        "--rm",
        BUSYBOX,
        "t1",
        "sh",
        "-c",
        "echo hello-from-capsa; exit 3",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        c.log()
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello-from-capsa\n");
    // --rm: nothing of the container is left.
    assert_eq!(c.ctr_ok(&["container", "ls", "-q"]).trim(), "");
    assert!(
        env.cgroup_leftovers().is_empty(),
        "{:?}",
        env.cgroup_leftovers()
    );
}

#[test]
fn ctr_detached_task_with_limits_exec_pause_metrics_kill_delete() {
    let env = Env::new("ctrtask");
    let Some(c) = setup(&env) else { return };
    let rt = env.runtime.display().to_string();
    c.ctr_ok(&[
        "run",
        "-d",
        "--runc-binary",
        &rt,
        "--memory-limit",
        "67108864",
        "--cpus",
        "0.5",
        BUSYBOX,
        "t2",
        "sleep",
        "100",
    ]);
    let ns = &c.namespace;
    let file = |ctl: &str, f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctl}/{ns}/t2/{f}"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(file("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(file("cpu", "cpu.cfs_quota_us"), "50000");
    assert!(c.ctr_ok(&["task", "ls"]).contains("RUNNING"));

    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "t2",
        "sh",
        "-c",
        "echo exec-ok; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "exec-ok\n");

    c.ctr_ok(&["task", "pause", "t2"]);
    assert!(c.ctr_ok(&["task", "ls"]).contains("PAUSED"));
    assert_eq!(file("freezer", "freezer.state"), "FROZEN");
    c.ctr_ok(&["task", "resume", "t2"]);
    assert!(c.ctr_ok(&["task", "ls"]).contains("RUNNING"));

    let m = c.ctr_ok(&["task", "metrics", "t2"]);
    assert!(
        m.contains("memory.limit_in_bytes") && m.contains("67108864"),
        "{m}"
    );

    c.ctr_ok(&["task", "kill", "-s", "KILL", "t2"]);
    assert!(
        wait_for(10, || c.ctr_ok(&["task", "ls"]).contains("STOPPED")),
        "{}",
        c.ctr_ok(&["task", "ls"])
    );
    c.ctr_ok(&["task", "delete", "t2"]);
    c.ctr_ok(&["container", "delete", "t2"]);
    assert!(
        env.cgroup_leftovers().is_empty(),
        "{:?}",
        env.cgroup_leftovers()
    );
}
