//! The systemd cgroup driver: the container's cgroup is a transient scope
//! unit that systemd makes (`StartTransientUnit` over D-Bus, as runc and
//! crun do), with `Delegate=yes` so that capsa may write in it what systemd
//! has no property for. systemd then knows the cgroup: it neither moves
//! its processes nor resets its limits on a reload.

use crate::CgroupError;
use oci_spec::runtime::LinuxResources;
use std::time::{Duration, Instant};
use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::{OwnedObjectPath, Value};

type Result<T> = std::result::Result<T, CgroupError>;

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

fn err(op: &str, unit: &str, e: impl std::fmt::Display) -> CgroupError {
    CgroupError::Systemd {
        op: op.to_string(),
        unit: unit.to_string(),
        message: e.to_string(),
    }
}

fn bus(unit: &str) -> Result<Connection> {
    Connection::system().map_err(|e| err("connect to the system bus", unit, e))
}

fn proxy<'a>(c: &'a Connection, unit: &str) -> Result<Proxy<'a>> {
    Proxy::new(c, DEST, PATH, MANAGER).map_err(|e| err("reach systemd's manager", unit, e))
}

/// A container's scope under the systemd driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `prefix-name.scope`.
    pub unit: String,
    pub slice: String,
    /// Its cgroup, as systemd nests it (`/system.slice/capsa-ID.scope`).
    pub path: std::path::PathBuf,
}

impl Scope {
    /// From the spec's `linux.cgroupsPath` in runc's systemd form
    /// `slice:prefix:name`; with none, `system.slice:capsa:ID`.
    pub fn of(spec_path: Option<&std::path::Path>, id: &str) -> Result<Scope> {
        let form = match spec_path {
            Some(p) if !p.as_os_str().is_empty() => p.to_string_lossy().into_owned(),
            _ => format!("system.slice:capsa:{id}"),
        };
        let bad = || CgroupError::Unsupported {
            field: "linux.cgroupsPath".into(),
            message: format!(
                "{form:?}: with the systemd cgroup driver it must be slice:prefix:name (as runc's)"
            ),
        };
        let path = crate::systemd_form(std::path::Path::new(&form)).ok_or_else(bad)?;
        let parts: Vec<&str> = form.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(bad());
        };
        let unit = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        let slice = if slice.is_empty() {
            "system.slice"
        } else {
            slice
        };
        Ok(Scope {
            unit,
            slice: slice.to_string(),
            path,
        })
    }
}

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

/// Start `unit` (a `.scope`) in `slice` holding `pid`, with `props`, and
/// wait until systemd has it active. Returns the unit's invocation id,
/// which later proves that a unit of this name is still the one we made.
pub fn start_scope(
    unit: &str,
    slice: &str,
    pid: u32,
    props: Vec<(&'static str, Value<'static>)>,
) -> Result<String> {
    let c = bus(unit)?;
    let m = proxy(&c, unit)?;
    let mut all: Vec<(&str, Value)> = vec![
        (
            "Description",
            Value::from(format!("capsa container {unit}")),
        ),
        ("Slice", Value::from(slice.to_string())),
        ("Delegate", Value::from(true)),
        ("PIDs", Value::from(vec![pid])),
        ("DefaultDependencies", Value::from(false)),
    ];
    all.extend(props);
    let aux: Vec<(&str, Vec<(&str, Value)>)> = Vec::new();
    let _job: OwnedObjectPath = match m.call("StartTransientUnit", &(unit, "fail", all, aux)) {
        Ok(j) => j,
        Err(zbus::Error::MethodError(name, _, _)) if name.as_str().ends_with("UnitExists") => {
            return Err(err(
                "StartTransientUnit",
                unit,
                "already exists: it is not this container's (name a new slice:prefix:name in linux.cgroupsPath)",
            ))
        }
        Err(e) => return Err(err("StartTransientUnit", unit, e)),
    };
    // A scope's job is done once its processes are in: wait for that.
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        match active_state(&c, unit)? {
            Some(s) if s == "active" => match invocation(&c, unit)? {
                Some(id) => return Ok(id),
                None => break "gone right after it started",
            },
            Some(s) if s == "failed" => break "systemd says the unit failed",
            _ if Instant::now() > deadline => break "not active after 10 s",
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    // Made by this call, so ours to take away.
    let _ = m.call::<_, _, OwnedObjectPath>("StopUnit", &(unit, "replace"));
    let _ = m.call::<_, _, ()>("ResetFailedUnit", &(unit,));
    Err(err("start", unit, failed))
}

/// The unit's object, or none when systemd does not know it.
fn unit_object<'a>(c: &'a Connection, unit: &str) -> Result<Option<Proxy<'a>>> {
    let m = proxy(c, unit)?;
    let path: OwnedObjectPath = match m.call("GetUnit", &(unit,)) {
        Ok(p) => p,
        Err(zbus::Error::MethodError(name, _, _)) if name.as_str().ends_with("NoSuchUnit") => {
            return Ok(None)
        }
        Err(e) => return Err(err("GetUnit", unit, e)),
    };
    Proxy::new(c, DEST, path, "org.freedesktop.systemd1.Unit")
        .map(Some)
        .map_err(|e| err("reach the unit", unit, e))
}

/// The unit's `InvocationID` (new each time a unit of that name starts),
/// in hex; none when systemd does not know the unit.
fn invocation(c: &Connection, unit: &str) -> Result<Option<String>> {
    let Some(u) = unit_object(c, unit)? else {
        return Ok(None);
    };
    let id: Vec<u8> = u
        .get_property("InvocationID")
        .map_err(|e| err("read InvocationID", unit, e))?;
    Ok(Some(id.iter().map(|b| format!("{b:02x}")).collect()))
}

/// Whether `unit` is still the one that started with `invocation_id`.
pub fn is_ours(unit: &str, invocation_id: &str) -> Result<bool> {
    let c = bus(unit)?;
    Ok(invocation(&c, unit)?.as_deref() == Some(invocation_id))
}

/// The unit's ActiveState, or none when systemd does not know it.
fn active_state(c: &Connection, unit: &str) -> Result<Option<String>> {
    let Some(u) = unit_object(c, unit)? else {
        return Ok(None);
    };
    let s: String = u
        .get_property("ActiveState")
        .map_err(|e| err("read ActiveState", unit, e))?;
    Ok(Some(s))
}

/// Change the running unit's properties (`update`).
/// Security: as [`stop`], only on the unit this container started.
pub fn set_properties(
    unit: &str,
    invocation_id: &str,
    props: Vec<(&'static str, Value<'static>)>,
) -> Result<()> {
    if props.is_empty() {
        return Ok(());
    }
    let c = bus(unit)?;
    if invocation(&c, unit)?.as_deref() != Some(invocation_id) {
        return Err(err(
            "SetUnitProperties",
            unit,
            "not the unit this container started (it has stopped)",
        ));
    }
    let m = proxy(&c, unit)?;
    m.call::<_, _, ()>("SetUnitProperties", &(unit, true, props))
        .map_err(|e| err("SetUnitProperties", unit, e))
}

/// Stop the unit (its processes are killed) and wait until systemd has
/// let it go; a unit systemd no longer knows is as good.
///
/// Security (a runtime turned against the host's units): only the unit
/// this container started, proven by its invocation id. A unit of the same
/// name that is not, say a session or another store's container named by
/// a hostile `linux.cgroupsPath`, is left alone, and so is its cgroup.
/// Returns whether it was ours (and is now stopped).
pub fn stop(unit: &str, invocation_id: &str) -> Result<bool> {
    let c = bus(unit)?;
    if invocation(&c, unit)?.as_deref() != Some(invocation_id) {
        return Ok(false);
    }
    let m = proxy(&c, unit)?;
    match m.call::<_, _, OwnedObjectPath>("StopUnit", &(unit, "replace")) {
        Ok(_) => {}
        Err(zbus::Error::MethodError(name, _, _)) if name.as_str().ends_with("NoSuchUnit") => {
            return Ok(true)
        }
        Err(e) => return Err(err("StopUnit", unit, e)),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match active_state(&c, unit)? {
            None => return Ok(true),
            Some(s) if s == "inactive" || s == "failed" => {
                // A failed transient unit stays until reset.
                let _ = m.call::<_, _, ()>("ResetFailedUnit", &(unit,));
                return Ok(true);
            }
            _ if Instant::now() > deadline => {
                return Err(err("stop", unit, "still there after 10 s"))
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_named_as_runc_names_them() {
        let s = Scope::of(None, "abc").unwrap();
        assert_eq!(s.unit, "capsa-abc.scope");
        assert_eq!(s.slice, "system.slice");
        assert_eq!(
            s.path,
            std::path::Path::new("/system.slice/capsa-abc.scope")
        );
        let s = Scope::of(
            Some(std::path::Path::new("machine-app.slice:pod:x1")),
            "abc",
        )
        .unwrap();
        assert_eq!(s.unit, "pod-x1.scope");
        assert_eq!(
            s.path,
            std::path::Path::new("/machine.slice/machine-app.slice/pod-x1.scope")
        );
        assert!(Scope::of(Some(std::path::Path::new("/capsa/abc")), "abc").is_err());
    }

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
