//! Containers as records: `<root>/containers/<id>/container.json`, written
//! atomically under a per-container lock, with names kept unique under a
//! store-wide lock.

use crate::error::{Error, IoContext, Result};
use crate::options::RunOptions;
use crate::Engine;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made (record, root, spec), not started.
    Created,
    Running,
    Paused,
    /// Exited, and its monitor waits to start it again (`--restart`).
    Restarting,
    Exited,
}

/// The record's state part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// The container's init, as the host sees it (0 when not running).
    pub pid: i32,
    /// Its start time in clock ticks: a recycled pid is not ours.
    pub pid_start: u64,
    /// The monitor process (0 when none).
    pub monitor_pid: i32,
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub finished_secs: Option<u64>,
    /// Why a start failed, or what repaired the record.
    pub error: Option<String>,
    /// Restarts by its policy since it was last started by hand.
    #[serde(default)]
    pub restart_count: u32,
    /// Stopped by `stop`, `kill` (a fatal signal) or `rm -f`: its restart
    /// policy is set aside until the next `start`.
    #[serde(default)]
    pub stopped_by_hand: bool,
    /// The boot it last started in (`/proc/sys/kernel/random/boot_id`):
    /// after a reboot its pids name other processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// Its health, when it has a check (see [`crate::health`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::Health>,
}

/// A container the engine knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    /// The image id (config digest) and the name it was run by.
    pub image_id: String,
    pub image: String,
    pub created: String,
    pub created_secs: u64,
    /// The same in nanoseconds: the order of containers made in one
    /// second (`ps -l`, `--filter before=`/`since=`).
    #[serde(default)]
    pub created_ns: u64,
    /// The process: args, env, cwd, user, as the spec has them.
    pub args: Vec<String>,
    pub options: RunOptions,
    /// The container's cgroup path (under every hierarchy's root).
    pub cgroup_path: String,
    /// With the systemd driver: the `slice:prefix:name` the runtime was
    /// given, whose scope holds `cgroup_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_scope: Option<String>,
    /// The private id range of `--userns auto` (none: the host's ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idmap: Option<crate::userns::IdRange>,
    /// Its labels: the image's, then `--label`'s over them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The health check it runs: the image's HEALTHCHECK with the
    /// `--health-*` flags over it (docker's `Config.Healthcheck`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<capsa_image::config::Healthcheck>,
    /// Published ports, with the host ports chosen at start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<capsa_network::Published>,
    /// The overlay's lower dirs, top first.
    pub lowers: Vec<String>,
    /// Each step of the start and what it cost (the `--trace` record).
    pub trace: Vec<String>,
    pub state: State,
}

impl Container {
    /// The container's directory (bundle, snapshot, logs).
    pub fn dir(&self, engine: &Engine) -> PathBuf {
        engine.containers().join(&self.id)
    }
    /// Whether the recorded init is still that process (not a recycled pid).
    ///
    /// Security: a pid and its start time (in clock ticks since boot) name
    /// a process in one boot only; after a reboot another may have both.
    /// A record from another boot names no live process.
    pub fn init_alive(&self) -> bool {
        self.same_boot()
            && self.state.pid > 0
            && matches!(capsa_runtime::state::proc_stat(self.state.pid), Some((s, start)) if start == self.state.pid_start && s != 'Z' && s != 'X')
    }

    /// Whether the record's processes are of this boot (a record without
    /// a boot id is an older capsa's: taken as this boot's).
    pub fn same_boot(&self) -> bool {
        match (&self.state.boot_id, boot_id()) {
            (Some(then), Some(now)) => then == now,
            _ => true,
        }
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
    /// The hostname it was given (docker's default: the short id).
    pub fn hostname(&self) -> String {
        self.options
            .hostname
            .clone()
            .unwrap_or_else(|| self.short_id().to_string())
    }
}

/// This boot's id, read once.
pub fn boot_id() -> Option<&'static str> {
    static ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
    })
    .as_deref()
}

/// 64 random hex digits.
/// Whether `id` is one [`new_id`] makes: 64 lowercase hex digits.
pub fn is_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn new_id() -> Result<String> {
    let mut b = [0u8; 32];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| Error::sys("getrandom", "a container id", e))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

const ADJECTIVES: [&str; 24] = [
    "brave", "calm", "clever", "eager", "fervent", "gentle", "happy", "jolly", "keen", "lucid",
    "merry", "nimble", "patient", "quiet", "quirky", "sharp", "silent", "steady", "sturdy",
    "swift", "tender", "upbeat", "vivid", "witty",
];
const SCIENTISTS: [&str; 24] = [
    "babbage", "bell", "curie", "darwin", "dijkstra", "einstein", "euler", "faraday", "fermi",
    "galois", "gauss", "hopper", "kepler", "knuth", "lamarr", "lovelace", "maxwell", "meitner",
    "noether", "pascal", "ritchie", "shannon", "thompson", "turing",
];

/// A docker-style name (`gentle_noether`) derived from the id.
pub fn generated_name(id: &str) -> String {
    let b = |i: usize| usize::from_str_radix(&id[i..i + 2], 16).unwrap_or(0);
    format!("{}_{}", ADJECTIVES[b(0) % 24], SCIENTISTS[b(2) % 24])
}

/// Docker's rule for the names of containers and volumes:
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn is_docker_name(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Names as docker allows them.
pub fn check_name(name: &str) -> Result<()> {
    if is_docker_name(name) {
        Ok(())
    } else {
        Err(crate::error::flag(
            "--name",
            format!("{name:?}: use letters, digits, _ . - (starting with a letter or digit)"),
        ))
    }
}

impl Engine {
    /// `<root>/containers`.
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.containers().join(id).join("container.json")
    }

    /// Every container record (unreadable ones are skipped).
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        let dir = self.containers();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).at("read", dir),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !is_id(&name) {
                continue;
            }
            if let Ok(b) = fs::read(e.path().join("container.json")) {
                if let Ok(c) = serde_json::from_slice::<Container>(&b) {
                    // A record whose id is not its directory's is skipped.
                    if c.id == name {
                        out.push(c);
                    }
                } else {
                    self.sweep_if_abandoned(&e.path(), &b);
                }
            }
        }
        out.sort_by(|a, b| {
            (b.created_secs, b.created_ns)
                .cmp(&(a.created_secs, a.created_ns))
                .then(a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// A reservation whose creating command died (kill -9 between
    /// `reserve` and the record) holds a name, maybe a mounted root and a
    /// network lease, and no command would ever show it: remove it.
    fn sweep_if_abandoned(&self, dir: &Path, placeholder: &[u8]) {
        let Ok(Reservation {
            id,
            creating: Some(Creating { pid, start }),
            ..
        }) = serde_json::from_slice::<Reservation>(placeholder)
        else {
            return;
        };
        let alive = capsa_runtime::state::proc_stat(pid).is_some_and(|(_, t)| t == start);
        if alive {
            return;
        }
        // (No lock: the id is this reservation's alone, and a caller of
        // `list` may already hold the names lock.)
        let _ = rustix::mount::unmount(
            dir.join("rootfs").as_path(),
            rustix::mount::UnmountFlags::DETACH,
        );
        // Its network leases are files in `dir`, and go with it: links
        // are made by the monitor, which a reservation never had.
        if is_id(&id) && dir.file_name().is_some_and(|n| n.to_string_lossy() == id) {
            let _ = fs::remove_dir_all(self.run.join("files").join(&id));
        }
        let _ = fs::remove_dir_all(dir);
    }

    /// A container by name, id or unique id prefix.
    pub fn find(&self, what: &str) -> Result<Container> {
        let all = self.list()?;
        if let Some(c) = all.iter().find(|c| c.name == what || c.id == what) {
            return Ok(c.clone());
        }
        let hits: Vec<_> = all
            .iter()
            .filter(|c| what.len() >= 3 && c.id.starts_with(what))
            .collect();
        match hits.len() {
            1 => Ok(hits[0].clone()),
            0 => Err(Error::NotFound(format!("no such container: {what}"))),
            n => Err(Error::Conflict(format!(
                "{what}: id prefix matches {n} containers"
            ))),
        }
    }

    /// Write a record atomically.
    pub fn save(&self, c: &Container) -> Result<()> {
        self.write_record(c, capsa_sys::file::Durability::Synced)
    }

    fn write_record(&self, c: &Container, durability: capsa_sys::file::Durability) -> Result<()> {
        let path = self.record_path(&c.id);
        let bytes = serde_json::to_vec_pretty(c).map_err(|e| Error::data(path.display(), e))?;
        // A record holds the container's environment: its owner only.
        capsa_sys::file::write_atomic(&path, &bytes, 0o600, durability).at("write", &path)
    }

    /// Re-read a record.
    pub fn load(&self, id: &str) -> Result<Container> {
        if !is_id(id) {
            return Err(Error::NotFound(format!("no such container: {id}")));
        }
        let path = self.record_path(id);
        let b = fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(format!("no such container: {id}")),
            _ => Error::Io {
                op: "read",
                path: path.clone(),
                source: e,
            },
        })?;
        let c: Container =
            serde_json::from_slice(&b).map_err(|e| Error::data(path.display(), e))?;
        // Security: a record's id names its paths (its directory, its run
        // files): one that is not the directory's own is not trusted.
        if c.id != id {
            return Err(Error::data(path.display(), "its id is not its directory's"));
        }
        Ok(c)
    }

    /// Change a record under its lock (re-read, change, write).
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Container)) -> Result<Container> {
        let _l = self.lock(&format!("ctr-{id}"))?;
        let mut c = self.load(id)?;
        f(&mut c);
        // The record was made durable when it was created; a change of
        // state (running, exited) is not synced: a reboot ends the
        // process it describes, and the next command finds it exited
        // (`manage::refresh`). The rename still replaces it whole.
        self.write_record(&c, capsa_sys::file::Durability::Volatile)?;
        Ok(c)
    }

    /// Take `<run>/locks/<name>.lock` exclusively until the fd drops.
    pub fn lock(&self, name: &str) -> Result<fs::File> {
        let path = self.run.join("locks").join(format!("{name}.lock"));
        capsa_sys::file::lock_path(&path, true).at("lock", &path)
    }

    /// Reserve a name and a directory for a new container; the caller
    /// fills the record. Unique names are checked under the names lock.
    pub fn reserve(&self, name: Option<&str>) -> Result<(String, String)> {
        let id = new_id()?;
        if let Some(n) = name {
            check_name(n)?;
        }
        let _l = self.lock("names")?;
        let in_use = self.names_in_use()?;
        let name = match name {
            Some(n) => {
                if let Some(holder) = in_use.iter().find(|(x, _)| x == n) {
                    return Err(Error::Conflict(format!(
                        "the name {n:?} is already in use by container {}; remove or rename it first",
                        &holder.1[..12]
                    )));
                }
                n.to_string()
            }
            // A generated name that is taken gets more of the id.
            None => {
                let base = generated_name(&id);
                std::iter::once(base.clone())
                    .chain(
                        (4..id.len())
                            .step_by(4)
                            .map(|i| format!("{base}_{}", &id[i..i + 4])),
                    )
                    .find(|n| !in_use.iter().any(|(x, _)| x == n))
                    .unwrap_or_else(|| id.clone())
            }
        };
        let dir = self.containers().join(&id);
        fs::create_dir_all(&dir).at("create", &dir)?;
        // A placeholder record holds the name until the real one replaces
        // it (readers of records skip what does not parse as one).
        // With the creating command's pid and start time: if it dies
        // before the record replaces this, the next listing removes what
        // it left (see `sweep_if_abandoned`).
        let me = std::process::id() as i32;
        let start = capsa_runtime::state::proc_stat(me)
            .map(|(_, t)| t)
            .unwrap_or(0);
        let placeholder = Reservation {
            id: id.clone(),
            name: name.clone(),
            creating: Some(Creating { pid: me, start }),
        };
        let path = dir.join("container.json");
        let bytes = serde_json::to_vec(&placeholder).map_err(|e| Error::data(path.display(), e))?;
        fs::write(&path, bytes).at("write", &path)?;
        Ok((id, name))
    }

    /// (name, id) of every container, reservations included.
    fn names_in_use(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(self.containers()) else {
            return Ok(out);
        };
        for e in rd.flatten() {
            // A record or a reservation: both have an id and a name.
            let r = fs::read(e.path().join("container.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Reservation>(&b).ok());
            if let Some(r) = r {
                out.push((r.name, r.id));
            }
        }
        Ok(out)
    }

    /// Give a container another name.
    pub fn rename(&self, what: &str, new: &str) -> Result<()> {
        check_name(new)?;
        let _l = self.lock("names")?;
        if self.names_in_use()?.iter().any(|(n, _)| n == new) {
            return Err(Error::Conflict(format!(
                "the name {new:?} is already in use"
            )));
        }
        let c = self.find(what)?;
        let c2 = self.update(&c.id, |c| c.name = new.to_string())?;
        crate::events::emit(
            self,
            &crate::events::Event::container(&c2, "rename", &[("oldName", &c.name)]),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_look_like_docker_names() {
        let n = generated_name(&"ab".repeat(32));
        assert!(n.contains('_'));
        assert!(check_name(&n).is_ok());
        assert!(check_name("-x").is_err());
        assert!(check_name("a b").is_err());
    }
}

/// What every `container.json` has: a record's id and name, or a
/// reservation's, which also names the command making it (its pid and
/// start time) until the record replaces it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Reservation {
    id: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    creating: Option<Creating>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Creating {
    pid: i32,
    start: u64,
}
