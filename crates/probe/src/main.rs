//! `capsa-probe`: what a process inside a container sees, as JSON on
//! stdout. Tests assert on it from inside; the demo image is built around it.
//!
//! Usage:
//!   capsa-probe                 report (the default)
//!   capsa-probe exit N          exit with status N
//!   capsa-probe sleep SECS      sleep, then report
//!   capsa-probe spawn N OUT    start N sleeping children, write how many
//!                               the kernel allowed to OUT, then wait
//!   capsa-probe attack-shebang OUT SECS
//!                               CVE-2019-5736 through `#!/proc/self/exe`:
//!                               for SECS seconds, catch a process of our
//!                               cgroup whose argv[0] is /proc/self/exe (a
//!                               host binary the kernel ran for such a
//!                               script), stop it, hold its exe, kill it
//!                               and write through the handle; JSON to OUT
//!   capsa-probe attack-exe PID OUT
//!                               CVE-2019-5736: hold /proc/PID/exe, then try
//!                               to write through it once PID has exec'd;
//!                               the outcome goes to OUT as JSON

mod attack;
mod explain;

use attack::{attack_exe, attack_shebang, forge_udp, write_result};
use explain::explain;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        None | Some("report") => print(&report()),
        Some("explain") => explain(&report()),
        Some("exit") => std::process::exit(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0)),
        Some("sleep") => {
            let secs: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1.0);
            std::thread::sleep(std::time::Duration::from_secs_f64(secs));
            print(&report());
        }
        Some("spawn") => spawn(
            args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1),
            args.get(3).map(String::as_str).unwrap_or("/spawn.json"),
        ),
        Some("attack-exe") => attack_exe(
            args.get(2).map(String::as_str).unwrap_or("1"),
            args.get(3).map(String::as_str).unwrap_or("/attack.json"),
        ),
        Some("attack-shebang") => attack_shebang(
            args.get(2).map(String::as_str).unwrap_or("/attack.json"),
            args.get(3).and_then(|a| a.parse().ok()).unwrap_or(30),
        ),
        Some("forge-udp") => forge_udp(
            args.get(2).map(String::as_str).unwrap_or("127.0.0.1"),
            args.get(3).and_then(|a| a.parse().ok()).unwrap_or(9),
            args.get(4).map(String::as_str).unwrap_or("capsa"),
        ),
        Some("syscall") => raw_syscall(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(-1)),
        Some(other) => {
            eprintln!("capsa-probe: unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}

fn print(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn status_field(status: &str, key: &str) -> Option<String> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

fn report() -> Value {
    let status = read("/proc/self/status").unwrap_or_default();
    let mut ns = Map::new();
    for n in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        if let Ok(link) = std::fs::read_link(format!("/proc/self/ns/{n}")) {
            let s = link.to_string_lossy().into_owned();
            let ino = s
                .split('[')
                .nth(1)
                .and_then(|x| x.trim_end_matches(']').parse::<u64>().ok());
            ns.insert(n.into(), json!(ino));
        }
    }
    let network = network();
    let caps: Map<String, Value> = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .iter()
        .map(|k| (k.to_string(), json!(status_field(&status, k))))
        .collect();
    let mut fds = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let target = std::fs::read_link(e.path())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            fds.insert(name, target);
        }
    }
    let mounts: Vec<Value> = read("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(json!({
                "target": pre.get(4)?, "options": pre.get(5)?,
                "fstype": post.first()?, "source": post.get(1)?, "super": post.get(2).copied().unwrap_or(""),
            }))
        })
        .collect();
    let uname = nix::sys::utsname::uname().ok();
    let mut rlimits = Map::new();
    if let Some(limits) = read("/proc/self/limits") {
        for l in limits.lines().skip(1) {
            // "Max open files            1024                 1024                 files"
            let cols: Vec<&str> = l
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            if cols.len() >= 3 {
                rlimits.insert(cols[0].to_string(), json!([cols[1], cols[2]]));
            }
        }
    }
    json!({
        "pid": std::process::id(),
        "ppid": nix::unistd::getppid().as_raw(),
        "uid": nix::unistd::getuid().as_raw(),
        "euid": nix::unistd::geteuid().as_raw(),
        "gid": nix::unistd::getgid().as_raw(),
        "groups": status_field(&status, "Groups"),
        "hostname": uname.as_ref().map(|u| u.nodename().to_string_lossy().into_owned()),
        "domainname": uname.as_ref().map(|u| u.domainname().to_string_lossy().into_owned()),
        "cwd": std::env::current_dir().ok().map(|p| p.display().to_string()),
        "args": std::env::args().collect::<Vec<_>>(),
        "env": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "namespaces": ns,
        "uid_map": read("/proc/self/uid_map"),
        "gid_map": read("/proc/self/gid_map"),
        "caps": caps,
        "no_new_privs": status_field(&status, "NoNewPrivs"),
        "seccomp": status_field(&status, "Seccomp"),
        "umask": status_field(&status, "Umask"),
        "rlimits": rlimits,
        "oom_score_adj": read("/proc/self/oom_score_adj").map(|s| s.trim().to_string()),
        "fds": fds,
        "mounts": mounts,
        "network": network,
        "cgroup": read("/proc/self/cgroup"),
        "exe": std::fs::read_link("/proc/self/exe").ok().map(|p| p.display().to_string()),
    })
}

/// Start `n` children that sleep; count how many the kernel let us start
/// (a pids limit makes the rest fail with EAGAIN), report, then wait.
fn spawn(n: usize, out: &str) {
    let me = std::env::current_exe().unwrap_or_else(|_| "/probe".into());
    let mut children = Vec::new();
    let mut errors = Vec::new();
    for _ in 0..n {
        match std::process::Command::new(&me)
            .args(["sleep", "100"])
            .stdout(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => children.push(c),
            Err(e) => errors.push(e.to_string()),
        }
    }
    errors.dedup();
    write_result(
        out,
        json!({ "spawned": children.len(), "failed": n - children.len(), "errors": errors }),
    );
    for mut c in children {
        let _ = c.wait();
    }
}

/// Interfaces, IPv4 addresses (but loopback's) and the default gateway of
/// this network namespace, from /sys/class/net and /proc/net.
fn network() -> Value {
    let mut interfaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    interfaces.sort();
    // fib_trie lists each local address as "|-- A.B.C.D" then "/32 host LOCAL".
    let mut addresses = Vec::new();
    let mut last = "";
    let trie = read("/proc/net/fib_trie").unwrap_or_default();
    for l in trie.lines() {
        let t = l.trim_start_matches([' ', '|', '+', '-']).trim();
        if l.contains("/32 host LOCAL") {
            if !last.starts_with("127.") && !addresses.contains(&last.to_string()) {
                addresses.push(last.to_string());
            }
        } else if t.parse::<std::net::Ipv4Addr>().is_ok() {
            last = t;
        }
    }
    // /proc/net/route: the default route's gateway, little-endian hex.
    let gateway = read("/proc/net/route").and_then(|r| {
        r.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"00000000"))
                .then(|| u32::from_str_radix(f.get(2)?, 16).ok())
                .flatten()
                .map(|g| std::net::Ipv4Addr::from(g.to_le_bytes()).to_string())
        })
    });
    json!({"interfaces": interfaces, "addresses": addresses, "gateway": gateway})
}

/// `syscall NR`: make unassigned system call NR (1000 and up) and print
/// what came back (`ret N` or `errno N`): how seccomp treats a number it
/// does not know.
fn raw_syscall(nr: i64) {
    match capsa_sys::process::syscall_unassigned(nr) {
        Ok(r) => println!("ret {r}"),
        Err(e) => println!("errno {}", e as i32),
    }
}
