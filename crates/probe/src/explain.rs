//! `capsa-probe explain`: the report in words, for the demo image.

use crate::read;
use serde_json::Value;
use std::io::Write;

/// What the container sees, in words: the demo image's command.
pub fn explain(r: &Value) {
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    let caps = u64::from_str_radix(r["caps"]["CapEff"].as_str().unwrap_or("0"), 16).unwrap_or(0);
    let names: Vec<String> = (0..64)
        .filter(|b| caps & (1u64 << b) != 0)
        .map(|b| {
            capsa_spec::caps::NAMES
                .get(b)
                .map(|n| n.trim_start_matches("CAP_").to_lowercase())
                .unwrap_or_else(|| format!("cap{b}"))
        })
        .collect();
    let seccomp = match r["seccomp"].as_str() {
        Some("2") => "mode 2: a filter checks every system call I make (docker's default profile unless told otherwise)",
        Some("1") => "mode 1: strict",
        _ => "off: every system call is allowed",
    };
    let root_mount = r["mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|x| x["target"] == "/"))
        .cloned()
        .unwrap_or(Value::Null);
    let limit = |paths: &[&str]| {
        paths
            .iter()
            .find_map(|p| read(p).map(|v| (p.to_string(), v.trim().to_string())))
    };
    let memory = limit(&[
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]);
    let cpu = limit(&[
        "/sys/fs/cgroup/cpu.max",
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us",
    ]);
    let pids = limit(&["/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"]);
    let mut out = String::new();
    let mut line = |t: String| {
        out.push_str(&t);
        out.push('\n');
    };
    line("Hello from inside a capsa container. This is what I can see:".into());
    line(String::new());
    line(format!("  I am process {} (my parent is {}): a PID namespace of my own, so the host's processes are invisible to me.", r["pid"], r["ppid"]));
    line(format!(
        "  My hostname is {}: the UTS namespace lets me have my own.",
        s(&r["hostname"])
    ));
    let ns: Vec<String> = r["namespaces"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}:{v}")).collect())
        .unwrap_or_default();
    line(format!(
        "  My namespaces (type:inode; the host's differ): {}",
        ns.join(" ")
    ));
    let net = &r["network"];
    let list = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().map(&s).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    if net["interfaces"].as_array().is_some_and(|a| a.len() <= 1) {
        line("  My network: only loopback (a network namespace with nothing else in it).".into());
    } else {
        let veth = list(&net["interfaces"]) == "eth0, lo";
        line(format!(
            "  My network: interfaces {}; address {}; default route via {}{}.",
            list(&net["interfaces"]),
            list(&net["addresses"]),
            net["gateway"].as_str().unwrap_or("none"),
            if veth {
                " (eth0 is one end of a veth pair; the other end is a port of a bridge on the host, which NATs my traffic)"
            } else {
                ""
            }
        ));
    }
    line(format!("  My root is a {} mount ({}): the image's read-only layers under a writable layer of my own.", s(&root_mount["fstype"]), s(&root_mount["source"])));
    line(format!(
        "  I run as uid {} gid {}, with {} of 41 capabilities: {}.",
        r["uid"],
        r["gid"],
        names.len(),
        names.join(", ")
    ));
    line(format!("  seccomp: {seccomp}."));
    line(format!(
        "  no_new_privs: {} (1: a setuid program cannot give me more privileges).",
        s(&r["no_new_privs"])
    ));
    let show = |name: &str, v: Option<(String, String)>| match v {
        Some((p, v))
            if v == "max"
                || v == "-1"
                || v.starts_with("max ")
                || v.parse::<u64>().is_ok_and(|n| n >= 1 << 62) =>
        {
            format!("  {name}: none  ({p} says {v})")
        }
        Some((p, v)) => format!("  {name}: {v}  (from {p})"),
        None => format!("  {name}: no cgroup file visible here"),
    };
    line(show("Memory limit", memory));
    line(show("CPU quota", cpu));
    line(show("Process limit", pids));
    let fds: Vec<String> = r["fds"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    line(format!(
        "  Open file descriptors: {} (nothing leaked from the host).",
        fds.join(", ")
    ));
    line(String::new());
    line("Try: capsa run --rm --memory 64m --cpus 0.5 --hostname box capsa-demo".into());
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
}
