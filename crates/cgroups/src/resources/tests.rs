use super::*;
use crate::hierarchy::{Hierarchy, V1Mount};

#[test]
fn an_empty_cpuset_parent_is_filled_before_its_child() {
    // As a concurrent create leaves it: the parent made, not yet filled.
    let root = std::env::temp_dir().join(format!("capsa-cpuset-{}", std::process::id()));
    let (parent, child) = (root.join("p"), root.join("p/c"));
    std::fs::create_dir_all(&child).unwrap();
    for (d, cpus, mems) in [(&root, "0-1", "0"), (&parent, "", ""), (&child, "", "")] {
        std::fs::write(d.join("cpuset.cpus"), cpus).unwrap();
        std::fs::write(d.join("cpuset.mems"), mems).unwrap();
    }
    inherit_cpuset(&child).unwrap();
    for d in [&parent, &child] {
        assert_eq!(
            std::fs::read_to_string(d.join("cpuset.cpus")).unwrap(),
            "0-1"
        );
        assert_eq!(std::fs::read_to_string(d.join("cpuset.mems")).unwrap(), "0");
    }
    // One already set is left alone.
    std::fs::write(child.join("cpuset.cpus"), "1").unwrap();
    inherit_cpuset(&child).unwrap();
    assert_eq!(
        std::fs::read_to_string(child.join("cpuset.cpus")).unwrap(),
        "1"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn shares_convert_to_weight_at_the_ends_and_default() {
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(blkio_to_io_weight(10), 1);
    assert_eq!(blkio_to_io_weight(1000), 10_000);
    assert_eq!(blkio_to_io_weight(500), 4950);
}

#[test]
fn device_rules_render_as_the_kernel_reads_them() {
    let r: LinuxDeviceCgroup =
        serde_json::from_str(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}"#)
            .unwrap();
    assert_eq!(device_rule(&r).as_deref(), Some("c 1:3 rw"));
    let all: LinuxDeviceCgroup = serde_json::from_str(r#"{"allow":false,"access":"rwm"}"#).unwrap();
    assert_eq!(device_rule(&all).as_deref(), Some("a *:* rwm"));
}

/// A fake pure-v2 cgroup with the given controllers and files.
fn fake_v2(name: &str, controllers: &str, files: &[&str]) -> (PathBuf, Cgroup) {
    let root = std::env::temp_dir().join(format!("capsa-cg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("c");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
    for f in files {
        std::fs::write(dir.join(f), "").unwrap();
    }
    let h = Hierarchy {
        v1: vec![],
        v2: Some(root.clone()),
    };
    (root, Cgroup::new(&h, Path::new("/c")))
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

fn values(plan: &[FileWrite]) -> Vec<(String, String)> {
    plan.iter()
        .map(|w| {
            (
                w.path.file_name().unwrap().to_string_lossy().into_owned(),
                w.value.clone(),
            )
        })
        .collect()
}

#[test]
fn v2_values_follow_runc_conversions() {
    let (root, cg) = fake_v2(
        "v2",
        "cpu cpuset memory pids io hugetlb",
        &[
            "memory.swap.max",
            "io.weight",
            "hugetlb.2MB.max",
            "cpu.max.burst",
        ],
    );
    let r = res(r#"{
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "cpus": "0"},
        "memory": {"limit": 1048576, "swap": 3145728, "reservation": 524288},
        "pids": {"limit": 0},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]
    }"#);
    let v = values(&cg.plan(&r).unwrap());
    let want: Vec<(String, String)> = [
        ("cpu.weight", "39"),
        ("cpu.max", "50000 100000"),
        ("cpu.max.burst", "1000"),
        ("cpuset.cpus", "0"),
        ("memory.max", "1048576"),
        ("memory.swap.max", "2097152"),
        ("memory.low", "524288"),
        ("pids.max", "max"),
        ("io.weight", "default 4950"),
        ("io.max", "8:0 rbps=1000"),
        ("hugetlb.2MB.max", "4194304"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(v, want);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn device_weights_go_to_bfq_on_its_scale_where_bfq_is() {
    let json = r#"{"blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}]}}"#;
    let (root, cg) = fake_v2("bfq", "io", &["io.weight", "io.bfq.weight"]);
    assert_eq!(
        values(&cg.plan(&res(json)).unwrap()),
        [
            ("io.bfq.weight".to_string(), "300".to_string()),
            ("io.bfq.weight".to_string(), "8:0 200".to_string())
        ]
    );
    std::fs::remove_dir_all(root).unwrap();
    let (root, cg) = fake_v2("iocost", "io", &["io.weight"]);
    assert_eq!(
        values(&cg.plan(&res(json)).unwrap()),
        [
            ("io.weight".to_string(), "default 2930".to_string()),
            ("io.weight".to_string(), "8:0 1920".to_string())
        ]
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn zero_means_unset_as_docker_sends_it() {
    let (root, cg) = fake_v2("zeros", "cpu memory io", &[]);
    let plan = cg.plan(&res(r#"{"cpu": {"shares": 0, "quota": 0, "period": 0}, "memory": {"limit": 0, "swap": 0}, "blockIO": {"weight": 0}}"#)).unwrap();
    assert_eq!(plan, vec![]);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn v2_refuses_what_it_cannot_honour_naming_the_field() {
    let (root, cg) = fake_v2("v2refuse", "cpu memory", &[]);
    for (json, field) in [
        (
            r#"{"memory": {"kernel": 1000}}"#,
            "linux.resources.memory.kernel",
        ),
        (
            r#"{"memory": {"swappiness": 10}}"#,
            "linux.resources.memory.swappiness",
        ),
        (
            r#"{"cpu": {"realtimeRuntime": 10}}"#,
            "linux.resources.cpu.realtimeRuntime",
        ),
        (r#"{"pids": {"limit": 10}}"#, "linux.resources.pids"),
        (
            r#"{"network": {"classID": 1}}"#,
            "linux.resources.network.classID",
        ),
        (
            r#"{"unified": {"memory.high": "1"}}"#,
            "linux.resources.unified.memory.high",
        ),
        (
            r#"{"unified": {"cgroup.procs": "1"}}"#,
            "linux.resources.unified.cgroup.procs",
        ),
        (
            r#"{"unified": {"cgroup.threads": "1"}}"#,
            "linux.resources.unified.cgroup.threads",
        ),
    ] {
        let e = cg.plan(&res(json)).unwrap_err().to_string();
        assert!(e.starts_with(field), "{json}: {e}");
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn v1_memory_orders_limit_and_swap_so_memsw_never_drops_below() {
    let root = std::env::temp_dir().join(format!("capsa-cg-v1mem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("memory/c");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("memory.limit_in_bytes"), "1000\n").unwrap();
    std::fs::write(dir.join("memory.memsw.limit_in_bytes"), "2000\n").unwrap();
    let h = Hierarchy {
        v1: vec![V1Mount {
            controllers: vec!["memory".into()],
            mountpoint: root.join("memory"),
        }],
        v2: None,
    };
    let cg = Cgroup::new(&h, Path::new("/c"));
    let grow = values(
        &cg.plan(&res(r#"{"memory": {"limit": 5000, "swap": 8000}}"#))
            .unwrap(),
    );
    assert_eq!(grow[0].0, "memory.memsw.limit_in_bytes");
    let shrink = values(
        &cg.plan(&res(r#"{"memory": {"limit": 500, "swap": 800}}"#))
            .unwrap(),
    );
    assert_eq!(shrink[0].0, "memory.limit_in_bytes");
    // Unlimited memory lifts swap too, swap first.
    let unlimited = values(&cg.plan(&res(r#"{"memory": {"limit": -1}}"#)).unwrap());
    assert_eq!(
        unlimited[..2],
        [
            ("memory.memsw.limit_in_bytes".to_string(), "-1".to_string()),
            ("memory.limit_in_bytes".to_string(), "-1".to_string())
        ]
    );
    std::fs::write(dir.join("memory.usage_in_bytes"), "900\n").unwrap();
    let e = cg
        .plan(&res(
            r#"{"memory": {"limit": 800, "checkBeforeUpdate": true}}"#,
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("below the current usage"), "{e}");
    std::fs::remove_dir_all(root).unwrap();
}
