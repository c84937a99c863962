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

/// The unit properties for `r` that systemd has (runc's mapping); the rest
/// is written into the delegated cgroup directly.
pub fn properties(r: &LinuxResources) -> Vec<(&'static str, Value<'static>)> {
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
/// wait until systemd has it active.
pub fn start_scope(
    unit: &str,
    slice: &str,
    pid: u32,
    props: Vec<(&'static str, Value<'static>)>,
) -> Result<()> {
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
    let _job: OwnedObjectPath = m
        .call("StartTransientUnit", &(unit, "fail", all, aux))
        .map_err(|e| err("StartTransientUnit", unit, e))?;
    // A scope's job is done once its processes are in: wait for that.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match active_state(&c, unit)? {
            Some(s) if s == "active" => return Ok(()),
            Some(s) if s == "failed" => {
                return Err(err("start", unit, "systemd says the unit failed"))
            }
            _ if Instant::now() > deadline => {
                return Err(err("start", unit, "not active after 10 s"))
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// The unit's ActiveState, or none when systemd does not know it.
fn active_state(c: &Connection, unit: &str) -> Result<Option<String>> {
    let m = proxy(c, unit)?;
    let path: OwnedObjectPath = match m.call("GetUnit", &(unit,)) {
        Ok(p) => p,
        Err(zbus::Error::MethodError(name, _, _)) if name.as_str().ends_with("NoSuchUnit") => {
            return Ok(None)
        }
        Err(e) => return Err(err("GetUnit", unit, e)),
    };
    let u = Proxy::new(c, DEST, path, "org.freedesktop.systemd1.Unit")
        .map_err(|e| err("reach the unit", unit, e))?;
    let s: String = u
        .get_property("ActiveState")
        .map_err(|e| err("read ActiveState", unit, e))?;
    Ok(Some(s))
}

/// Change the running unit's properties (`update`).
pub fn set_properties(unit: &str, props: Vec<(&'static str, Value<'static>)>) -> Result<()> {
    if props.is_empty() {
        return Ok(());
    }
    let c = bus(unit)?;
    let m = proxy(&c, unit)?;
    m.call::<_, _, ()>("SetUnitProperties", &(unit, true, props))
        .map_err(|e| err("SetUnitProperties", unit, e))
}

/// Stop the unit (its processes are killed) and wait until systemd has
/// let it go; a unit systemd no longer knows is as good.
pub fn stop(unit: &str) -> Result<()> {
    let c = bus(unit)?;
    let m = proxy(&c, unit)?;
    match m.call::<_, _, OwnedObjectPath>("StopUnit", &(unit, "replace")) {
        Ok(_) => {}
        Err(zbus::Error::MethodError(name, _, _)) if name.as_str().ends_with("NoSuchUnit") => {
            return Ok(())
        }
        Err(e) => return Err(err("StopUnit", unit, e)),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match active_state(&c, unit)? {
            None => return Ok(()),
            Some(s) if s == "inactive" || s == "failed" => {
                // A failed transient unit stays until reset.
                let _ = m.call::<_, _, ()>("ResetFailedUnit", &(unit,));
                return Ok(());
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
        let p = properties(&r);
        let get = |k: &str| p.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        assert_eq!(get("CPUQuotaPerSecUSec").as_deref(), Some("uint64 510000"));
        assert_eq!(get("MemoryMax").as_deref(), Some("uint64 1048576"));
        assert_eq!(get("MemorySwapMax").as_deref(), Some("uint64 2097152"));
        assert_eq!(
            get("TasksMax").as_deref(),
            Some(&*format!("uint64 {}", u64::MAX))
        );
    }
}
