use super::*;

fn process(extra: serde_json::Value) -> Result<ProcessPlan, SpecError> {
    let mut p = serde_json::json!({"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}});
    if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(extra.clone());
    }
    let p: oci::Process = serde_json::from_value(p).unwrap();
    ProcessPlan::from_oci(&p, "process")
}

fn field_of(e: SpecError) -> String {
    match e {
        SpecError::Invalid { field, .. } => field,
        other => panic!("not an invalid-value error: {other}"),
    }
}

#[test]
fn cpu_lists_expand_ranges_and_refuse_what_the_kernel_would() {
    let l = |s: &str| cpu_list(&Some(s.to_string()), "f");
    assert_eq!(l("0-3,7").unwrap(), Some(vec![0, 1, 2, 3, 7]));
    assert_eq!(l("5,1,1").unwrap(), Some(vec![1, 5]));
    assert_eq!(l(" ").unwrap(), None);
    assert!(l("3-1").is_err());
    assert!(l("a").is_err());
    assert!(l("0-99999").is_err());
}

#[test]
fn scheduler_maps_to_sched_attr_and_checks_what_goes_with_each_policy() {
    let p = process(serde_json::json!({"scheduler": {
        "policy": "SCHED_FIFO", "priority": 10, "flags": ["SCHED_FLAG_RECLAIM"]}}))
    .unwrap();
    let s = p.scheduler.unwrap();
    assert_eq!((s.policy, s.priority, s.flags), (1, 10, 0x02));
    let p =
        process(serde_json::json!({"scheduler": {"policy": "SCHED_BATCH", "nice": -5}})).unwrap();
    assert_eq!(
        (p.scheduler.unwrap().policy, p.scheduler.unwrap().nice),
        (3, -5)
    );
    for (bad, field) in [
        (
            serde_json::json!({"policy": "SCHED_OTHER", "priority": 5}),
            "priority",
        ),
        (serde_json::json!({"policy": "SCHED_RR"}), "priority"),
        (
            serde_json::json!({"policy": "SCHED_OTHER", "nice": 20}),
            "nice",
        ),
        (
            serde_json::json!({"policy": "SCHED_BATCH", "runtime": 5}),
            "runtime",
        ),
    ] {
        let e = process(serde_json::json!({ "scheduler": bad })).unwrap_err();
        assert_eq!(field_of(e), format!("process.scheduler.{field}"));
    }
}

#[test]
fn exec_cpu_affinity_is_resolved_to_cpu_numbers() {
    let p =
        process(serde_json::json!({"execCPUAffinity": {"initial": "0", "final": "1-2"}})).unwrap();
    assert_eq!(p.exec_cpu_affinity, (Some(vec![0]), Some(vec![1, 2])));
}

#[test]
fn memory_policy_builds_the_node_mask_and_mode_flags() {
    let linux: oci::Linux = serde_json::from_value(serde_json::json!({"memoryPolicy": {
        "mode": "MPOL_BIND", "nodes": "0,65", "flags": ["MPOL_F_STATIC_NODES"]}}))
    .unwrap();
    assert_eq!(
        memory_policy(&linux).unwrap(),
        Some((2 | 1 << 15, vec![1, 2]))
    );
    let linux: oci::Linux =
        serde_json::from_value(serde_json::json!({"memoryPolicy": {"mode": "MPOL_BIND"}})).unwrap();
    assert_eq!(
        field_of(memory_policy(&linux).unwrap_err()),
        "linux.memoryPolicy.nodes"
    );
    let linux: oci::Linux = serde_json::from_value(
        serde_json::json!({"memoryPolicy": {"mode": "MPOL_LOCAL", "nodes": "0"}}),
    )
    .unwrap();
    assert!(memory_policy(&linux).is_err());
}

#[test]
fn personality_domains_are_the_kernel_numbers_and_flags_are_refused() {
    let l = |v: serde_json::Value| -> oci::Linux { serde_json::from_value(v).unwrap() };
    let p = personality(&l(
        serde_json::json!({"personality": {"domain": "LINUX32"}}),
    ));
    assert_eq!(p.unwrap(), Some(8));
    let p = personality(&l(
        serde_json::json!({"personality": {"domain": "LINUX", "flags": ["X"]}}),
    ));
    assert_eq!(field_of(p.unwrap_err()), "linux.personality.flags");
}

#[test]
fn hardening_makes_ro_on_an_rbind_recursive_unless_rrw_is_named() {
    let mount = |opts: &[&str]| {
        let m: oci::Mount = serde_json::from_value(serde_json::json!({
            "destination": "/m", "type": "bind", "source": "/src", "options": opts
        }))
        .unwrap();
        crate::mounts::plan(0, &m, Path::new("/b")).unwrap()
    };
    let spec: oci::Spec = serde_json::from_value(serde_json::json!({
        "ociVersion": "1.2.0", "root": {"path": "tmp"},
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}}
    }))
    .unwrap();
    let mut p = Plan::new(Path::new("/"), spec).unwrap();
    p.mounts = vec![
        mount(&["rbind", "ro"]),
        mount(&["bind", "ro"]),
        mount(&["rbind", "rw"]),
        mount(&["rbind", "ro", "rrw"]),
    ];
    p.harden();
    let rec: Vec<bool> = p
        .mounts
        .iter()
        .map(|m| m.recursive_set & libc::MS_RDONLY != 0)
        .collect();
    assert_eq!(rec, [true, false, false, false]);
}

#[test]
fn a_process_changed_after_it_was_read_is_checked_again() {
    let ok = process(serde_json::json!({})).unwrap();
    assert!(ok.check("process").is_ok());
    let mut p = ok.clone();
    p.cwd = "relative".into();
    assert_eq!(field_of(p.check("process").unwrap_err()), "process.cwd");
    let mut p = ok.clone();
    p.env.push("NOEQUALS".into());
    assert_eq!(field_of(p.check("process").unwrap_err()), "process.env");
    let mut p = ok.clone();
    p.args.clear();
    assert_eq!(field_of(p.check("process").unwrap_err()), "process.args");
    let mut p = ok;
    p.rlimits.push((7, 10, 5));
    assert_eq!(field_of(p.check("process").unwrap_err()), "process.rlimits");
}
