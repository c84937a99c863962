//! The systemd cgroup driver: the container's cgroup is a transient scope
//! unit that systemd makes (`StartTransientUnit` over D-Bus, as runc and
//! crun do), with `Delegate=yes` so that capsa may write in it what systemd
//! has no property for. systemd then knows the cgroup: it neither moves
//! its processes nor resets its limits on a reload.

use crate::CgroupError;
use std::time::{Duration, Instant};
use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::{OwnedObjectPath, Value};

mod properties;
pub use properties::{bitmask, properties};

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
}
