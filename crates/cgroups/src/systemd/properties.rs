//! What systemd can hold of a container's resources: the unit properties
//! runc maps `linux.resources` to, device rules as systemd's allow list,
//! and cpu lists as its byte masks.

use oci_spec::runtime::LinuxResources;
use zbus::zvariant::Value;

/// The unit properties for `r` that systemd has (runc's mapping), the
/// device rules among them `with_devices`; the rest is written into the
/// delegated cgroup directly.
pub fn properties(r: &LinuxResources, with_devices: bool) -> Vec<(&'static str, Value<'static>)> {
    let mut p = resource_properties(r);
    // `unified` wins over the fields, as its file writes come last.
    for (name, v) in unified_properties(r) {
        p.retain(|(n, _)| *n != name);
        p.push((name, v));
    }
    if with_devices {
        let rules = crate::devices::rules(r.devices().as_deref().unwrap_or(&[]));
        let proc_devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
        p.extend(device_properties(&rules, &proc_devices));
    }
    p
}

fn resource_properties(r: &LinuxResources) -> Vec<(&'static str, Value<'static>)> {
    let mut p: Vec<(&'static str, Value<'static>)> = Vec::new();
    let max = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|&l| l != 0) {
            p.push(("MemoryMax", Value::from(max(l))));
            if let Some(s) = m.swap().filter(|&s| s != 0) {
                // v2 counts swap alone: the spec's memory+swap less memory.
                let swap = if s < 0 || l < 0 {
                    u64::MAX
                } else {
                    (s - l).max(0) as u64
                };
                p.push(("MemorySwapMax", Value::from(swap)));
            }
        }
        if let Some(low) = m.reservation().filter(|&v| v != 0) {
            p.push(("MemoryLow", Value::from(max(low))));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|&s| s != 0) {
            p.push((
                "CPUWeight",
                Value::from(crate::resources::shares_to_weight(s)),
            ));
        }
        // An idle group is CPUWeight=idle, which is 0 on the bus
        // (systemd 252 and later); else a reload would clear cpu.idle.
        // Leaving idle (idle 0) tells systemd nothing unless shares come
        // too: it does not know the weight the kernel kept.
        if c.idle() == Some(1) {
            p.retain(|(n, _)| *n != "CPUWeight");
            p.push(("CPUWeight", Value::from(0u64)));
        }
        let period = c.period().filter(|&p| p != 0).unwrap_or(100_000);
        if let Some(q) = c.quota().filter(|&q| q != 0) {
            let per_sec = if q < 0 {
                u64::MAX
            } else {
                // systemd counts in 10 ms steps of a second: round up, as
                // runc does, so that the limit is never below the spec's.
                let us = (q as u64).saturating_mul(1_000_000) / period;
                us.div_ceil(10_000) * 10_000
            };
            p.push(("CPUQuotaPerSecUSec", Value::from(per_sec)));
            p.push(("CPUQuotaPeriodUSec", Value::from(period)));
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            if let Some(mask) = bitmask(cpus) {
                p.push(("AllowedCPUs", Value::from(mask)));
            }
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            if let Some(mask) = bitmask(mems) {
                p.push(("AllowedMemoryNodes", Value::from(mask)));
            }
        }
    }
    if let Some(pids) = r.pids() {
        let l = pids.limit();
        p.push((
            "TasksMax",
            Value::from(if l <= 0 { u64::MAX } else { l as u64 }),
        ));
    }
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|&w| w != 0)
    {
        p.push((
            "IOWeight",
            Value::from(crate::resources::blkio_to_io_weight(w)),
        ));
    }
    p
}

/// A byte count or "max", as systemd's number.
fn bytes_or_max(v: &str) -> Option<u64> {
    match v.trim() {
        "max" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// The `unified` keys systemd has a property for (runc's mapping), so that
/// a reload does not put systemd's defaults back over them.
fn unified_properties(r: &LinuxResources) -> Vec<(&'static str, Value<'static>)> {
    let mut p: Vec<(&'static str, Value<'static>)> = Vec::new();
    let Some(u) = r.unified() else { return p };
    for (key, v) in u {
        match key.as_str() {
            "memory.min" | "memory.low" | "memory.high" | "memory.max" | "memory.swap.max" => {
                let name = match key.as_str() {
                    "memory.min" => "MemoryMin",
                    "memory.low" => "MemoryLow",
                    "memory.high" => "MemoryHigh",
                    "memory.max" => "MemoryMax",
                    _ => "MemorySwapMax",
                };
                if let Some(n) = bytes_or_max(v) {
                    p.push((name, Value::from(n)));
                }
            }
            "pids.max" => {
                if let Some(n) = bytes_or_max(v) {
                    p.push(("TasksMax", Value::from(n)));
                }
            }
            "cpu.weight" => {
                if let Ok(n) = v.trim().parse::<u64>() {
                    p.push(("CPUWeight", Value::from(n)));
                }
            }
            "io.weight" => {
                let n = v.trim().strip_prefix("default ").unwrap_or(v.trim());
                if let Ok(n) = n.parse::<u64>() {
                    p.push(("IOWeight", Value::from(n)));
                }
            }
            "cpu.max" => {
                let mut f = v.split_whitespace();
                let quota = f.next().and_then(bytes_or_max);
                let period = f.next().map_or(Some(100_000), |s| s.parse::<u64>().ok());
                if let (Some(q), Some(period)) = (quota, period.filter(|&p| p > 0)) {
                    let per_sec = if q == u64::MAX {
                        q
                    } else {
                        (q.saturating_mul(1_000_000) / period).div_ceil(10_000) * 10_000
                    };
                    p.push(("CPUQuotaPerSecUSec", Value::from(per_sec)));
                    p.push(("CPUQuotaPeriodUSec", Value::from(period)));
                }
            }
            "cpuset.cpus" | "cpuset.mems" => {
                if let Some(mask) = bitmask(v) {
                    let name = if key == "cpuset.cpus" {
                        "AllowedCPUs"
                    } else {
                        "AllowedMemoryNodes"
                    };
                    p.push((name, Value::from(mask)));
                }
            }
            _ => {}
        }
    }
    p
}

/// `DevicePolicy` and `DeviceAllow` for the device rules (runc's mapping).
/// capsa's own eBPF filter stays attached in the delegated cgroup and is
/// the exact one; systemd's is a second that must never be narrower than
/// the spec. systemd can only allow, and names a whole major only through
/// `/proc/devices`: rules it cannot say leave its filter off
/// (`DevicePolicy=auto`, no list) instead.
fn device_properties(
    rules: &[crate::devices::Rule],
    proc_devices: &str,
) -> Vec<(&'static str, Value<'static>)> {
    let off = || {
        vec![
            ("DevicePolicy", Value::from("auto")),
            ("DeviceAllow", Value::from(Vec::<(String, String)>::new())),
        ]
    };
    // Rules are decided last to first: what precedes the last deny-all
    // never decides anything.
    let start = rules
        .iter()
        .rposition(|r| !r.allow && r.kind.is_none() && r.access == 7)
        .map_or(0, |i| i + 1);
    let mut allow: Vec<(String, String)> = Vec::new();
    for r in &rules[start..] {
        if !r.allow {
            return off();
        }
        let access: String = [(2, 'r'), (4, 'w'), (1, 'm')]
            .iter()
            .filter(|(bit, _)| r.access & bit != 0)
            .map(|(_, c)| *c)
            .collect();
        let kinds: &[char] = match r.kind {
            Some(ref k) => std::slice::from_ref(k),
            None => &['c', 'b'],
        };
        for &k in kinds {
            let class = if k == 'b' { "block" } else { "char" };
            let path = match (r.major, r.minor) {
                (Some(ma), Some(mi)) => format!("/dev/{class}/{ma}:{mi}"),
                (Some(ma), None) => match major_name(proc_devices, k, ma) {
                    Some(name) => format!("{class}-{name}"),
                    None => return off(),
                },
                (None, None) => format!("{class}-*"),
                (None, Some(_)) => return off(),
            };
            allow.push((path, access.clone()));
        }
    }
    vec![
        ("DevicePolicy", Value::from("strict")),
        // An empty list first: on update, DeviceAllow adds to what is set.
        ("DeviceAllow", Value::from(Vec::<(String, String)>::new())),
        ("DeviceAllow", Value::from(allow)),
    ]
}

/// The name `/proc/devices` gives major `major` of kind `c` or `b`.
fn major_name(proc_devices: &str, kind: char, major: u32) -> Option<String> {
    let section = if kind == 'b' {
        "Block devices:"
    } else {
        "Character devices:"
    };
    proc_devices
        .lines()
        .skip_while(|l| l.trim() != section)
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            let (n, name) = l.trim().split_once(' ')?;
            (n.parse::<u32>().ok()? == major).then(|| name.trim().to_string())
        })
}

/// A cpuset list ("0-2,4") as systemd's byte mask, lowest cpu in the first
/// byte's lowest bit; none if the list does not parse.
pub fn bitmask(list: &str) -> Option<Vec<u8>> {
    let mut bits: Vec<u8> = Vec::new();
    for part in list.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().ok()?,
                b.trim().parse::<usize>().ok()?,
            ),
            None => {
                let n = part.trim().parse::<usize>().ok()?;
                (n, n)
            }
        };
        if a > b || b > 8191 {
            return None;
        }
        for n in a..=b {
            if bits.len() <= n / 8 {
                bits.resize(n / 8 + 1, 0);
            }
            bits[n / 8] |= 1 << (n % 8);
        }
    }
    Some(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_become_systemd_byte_masks() {
        assert_eq!(bitmask("0"), Some(vec![1]));
        assert_eq!(bitmask("0-2,4"), Some(vec![0b1_0111]));
        assert_eq!(bitmask("9"), Some(vec![0, 2]));
        assert_eq!(bitmask("3-1"), None);
        assert_eq!(bitmask("x"), None);
    }

    #[test]
    fn quotas_round_up_to_systemds_ten_millisecond_steps() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "cpu": {"quota": 50001, "period": 100000, "shares": 512},
            "memory": {"limit": 1048576, "swap": 3145728},
            "pids": {"limit": 0}
        }))
        .unwrap();
        let p = properties(&r, false);
        let get = |k: &str| p.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        assert_eq!(get("CPUQuotaPerSecUSec").as_deref(), Some("uint64 510000"));
        assert_eq!(get("MemoryMax").as_deref(), Some("uint64 1048576"));
        assert_eq!(get("MemorySwapMax").as_deref(), Some("uint64 2097152"));
        assert_eq!(
            get("TasksMax").as_deref(),
            Some(&*format!("uint64 {}", u64::MAX))
        );
    }

    #[test]
    fn unified_keys_become_the_properties_systemd_has() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1048576},
            "unified": {"memory.high": "524288", "memory.max": "max", "cpu.max": "25000 50000",
                        "io.weight": "default 300", "misc.max": "x 1"}
        }))
        .unwrap();
        let p = properties(&r, false);
        let get = |k: &str| {
            let all: Vec<String> = p
                .iter()
                .filter(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
                .collect();
            all.join(",")
        };
        assert_eq!(get("MemoryHigh"), "uint64 524288");
        // unified's memory.max replaces the field's.
        assert_eq!(get("MemoryMax"), format!("uint64 {}", u64::MAX));
        assert_eq!(get("CPUQuotaPerSecUSec"), "uint64 500000");
        assert_eq!(get("CPUQuotaPeriodUSec"), "uint64 50000");
        assert_eq!(get("IOWeight"), "uint64 300");
        assert_eq!(p.len(), 5, "{p:?}");
    }

    const PROC_DEVICES: &str = "Character devices:\n  1 mem\n  5 /dev/tty\n136 pts\n\nBlock devices:\n  8 sd\n254 virtblk\n";

    fn allow_list(rules: &[&str]) -> Vec<(&'static str, String)> {
        let rules: Vec<_> = rules
            .iter()
            .map(|r| {
                let (allow, r) = r.split_at(1);
                crate::devices::parse_rule(r, allow == "+").unwrap()
            })
            .collect();
        device_properties(&rules, PROC_DEVICES)
            .into_iter()
            .map(|(n, v)| (n, v.to_string()))
            .collect()
    }

    #[test]
    fn device_rules_become_systemds_allow_list() {
        let p = allow_list(&["-a", "+c 1:3 rwm", "+c 136:* rw", "+b *:* m", "+c 5:0 r"]);
        assert_eq!(p[0], ("DevicePolicy", "\"strict\"".to_string()));
        assert_eq!(p[1].0, "DeviceAllow");
        assert_eq!(p[2].0, "DeviceAllow");
        for want in [
            "/dev/char/1:3\", \"rwm",
            "char-pts\", \"rw\"",
            "block-*\", \"m\"",
            "/dev/char/5:0\", \"r\"",
        ] {
            assert!(p[2].1.contains(want), "{want} not in {}", p[2].1);
        }
    }

    #[test]
    fn device_rules_systemd_cannot_say_turn_its_filter_off() {
        for rules in [
            // A deny after an allow.
            &["-a", "+c 1:3 rwm", "-c 1:3 w"][..],
            // A major /proc/devices does not name.
            &["-a", "+c 77:* rwm"][..],
            // Any major, one minor.
            &["-a", "+c *:3 rwm"][..],
        ] {
            let p = allow_list(rules);
            assert_eq!(p[0], ("DevicePolicy", "\"auto\"".to_string()), "{rules:?}");
            assert_eq!(p.len(), 2, "{rules:?}");
        }
        // An allow-all after the deny-all: systemd allows all too.
        let p = allow_list(&["-a", "+a"]);
        assert!(
            p[2].1.contains("char-*") && p[2].1.contains("block-*"),
            "{p:?}"
        );
    }
}
