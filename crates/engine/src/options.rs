//! The flags of `capsa run`, parsed and checked before anything is made:
//! sizes (`512m`), CPU counts (`0.5`), volumes, ulimits, devices, sysctls.

use crate::error::{flag, Result};
use crate::flags::{
    AddHost, Cpus, Device, Dns, Flag, Memory, Publish, ResolvWord, Swap, Sysctl, Tmpfs, Ulimit,
    Volume,
};
use serde::{Deserialize, Serialize};

/// Everything `capsa run`/`create` accepts, as docker spells it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunOptions {
    pub name: Option<String>,
    pub detach: bool,
    pub interactive: bool,
    pub tty: bool,
    pub rm: bool,
    pub env: Vec<String>,
    pub env_files: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub entrypoint: Option<String>,
    pub volumes: Vec<Flag<Volume>>,
    pub tmpfs: Vec<Flag<Tmpfs>>,
    /// `--mount type=bind|volume|tmpfs,...`.
    #[serde(default)]
    pub mounts: Vec<Flag<crate::flags::Mount>>,
    pub read_only: bool,
    pub cpus: Option<Flag<Cpus>>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub memory: Option<Flag<Memory>>,
    pub memory_swap: Option<Flag<Swap>>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub devices: Vec<Flag<Device>>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub security_opt: Vec<String>,
    pub ulimits: Vec<Flag<Ulimit>>,
    pub sysctls: Vec<Flag<Sysctl>>,
    pub init: bool,
    pub network: Option<String>,
    /// `--network-alias`: more names on its (user) network.
    #[serde(default)]
    pub network_aliases: Vec<String>,
    /// `-p [IP:][HOST:]CONTAINER[/proto]`.
    #[serde(default)]
    pub publish: Vec<Flag<Publish>>,
    /// `-P`: every port the image exposes, on free host ports.
    #[serde(default)]
    pub publish_all: bool,
    /// `--add-host NAME:IP`: lines of /etc/hosts.
    #[serde(default)]
    pub add_hosts: Vec<Flag<AddHost>>,
    /// `--dns`: the nameservers of /etc/resolv.conf, in place of the host's.
    #[serde(default)]
    pub dns: Vec<Flag<Dns>>,
    /// `--dns-search`: resolv.conf's search domains.
    #[serde(default)]
    pub dns_search: Vec<Flag<ResolvWord>>,
    /// `--dns-option`: resolv.conf's options.
    #[serde(default)]
    pub dns_options: Vec<Flag<ResolvWord>>,
    /// `--pid`, `--ipc`, `--uts`: host, private or container:NAME.
    #[serde(default)]
    pub pid: Option<Flag<crate::flags::Ns<{ crate::flags::PID }>>>,
    #[serde(default)]
    pub ipc: Option<Flag<crate::flags::Ns<{ crate::flags::IPC }>>>,
    #[serde(default)]
    pub uts: Option<Flag<crate::flags::Ns<{ crate::flags::UTS }>>>,
    /// `--cpu-period` and `--cpu-quota`, in microseconds.
    #[serde(default)]
    pub cpu_period: Option<u64>,
    #[serde(default)]
    pub cpu_quota: Option<i64>,
    /// `--cpuset-mems`.
    #[serde(default)]
    pub cpuset_mems: Option<String>,
    /// `--memory-swappiness`: 0 to 100.
    #[serde(default)]
    pub memory_swappiness: Option<u64>,
    /// `--domainname`.
    #[serde(default)]
    pub domainname: Option<String>,
    /// `--cgroupns host`: the host's cgroup namespace.
    #[serde(default)]
    pub cgroupns_host: bool,
    /// `--expose PORT[/PROTO]`: more ports `-P` publishes.
    #[serde(default)]
    pub expose: Vec<String>,
    /// `--volumes-from CONTAINER[:ro|rw]`.
    #[serde(default)]
    pub volumes_from: Vec<String>,
    /// `--shm-size`: bytes of /dev/shm (docker's default 64 MiB).
    #[serde(default)]
    pub shm_size: Option<i64>,
    /// `--group-add`: more groups for the process (names from the image).
    #[serde(default)]
    pub group_add: Vec<String>,
    /// `--memory-reservation`: the soft limit, in bytes.
    #[serde(default)]
    pub memory_reservation: Option<i64>,
    /// `--oom-kill-disable`.
    #[serde(default)]
    pub oom_kill_disable: bool,
    /// `--oom-score-adj`: -1000..1000.
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// `--detach-keys`: what detaches a client (docker's `ctrl-p,ctrl-q`).
    #[serde(default)]
    pub detach_keys: Option<String>,
    /// The user namespace: `host` or `auto[:size=N]`.
    #[serde(default)]
    pub userns: Option<String>,
    pub runtime: Option<String>,
    pub cgroup_parent: Option<String>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<u64>,
    /// `--restart`: what the monitor does when the container exits.
    #[serde(default)]
    pub restart: Option<Flag<crate::restart::Policy>>,
    /// `-l/--label KEY=VALUE` and `--label-file`'s lines, in order.
    #[serde(default)]
    pub labels: Vec<String>,
    /// `--annotation KEY=VALUE`: the OCI spec's annotations.
    #[serde(default)]
    pub annotations: Vec<String>,
    /// `--health-*` and `--no-healthcheck`.
    #[serde(default)]
    pub health: crate::health::HealthFlags,
    pub trace: bool,
    /// The command (after the image).
    pub args: Vec<String>,
}

/// A namespace flag as given: the flag, what it asks for, the namespace's
/// name under `/proc/PID/ns`, and its OCI type.
pub type NamespaceMode = (
    &'static str,
    crate::flags::NsMode,
    &'static str,
    capsa_spec::oci::LinuxNamespaceType,
);

impl RunOptions {
    /// `--restart`'s policy (docker's `no` without one).
    pub fn restart_policy(&self) -> crate::restart::Policy {
        self.restart.as_ref().map(|p| *p.get()).unwrap_or_default()
    }

    /// `--pid`, `--ipc` and `--uts`, those given.
    pub fn namespace_modes(&self) -> Vec<NamespaceMode> {
        use capsa_spec::oci::LinuxNamespaceType as T;
        fn one<const K: u8>(
            f: &Option<Flag<crate::flags::Ns<K>>>,
            kind: &'static str,
            typ: T,
        ) -> Option<NamespaceMode> {
            f.as_ref()
                .map(|f| (f.get().flag(), f.get().0.clone(), kind, typ))
        }
        [
            one(&self.pid, "pid", T::Pid),
            one(&self.ipc, "ipc", T::Ipc),
            one(&self.uts, "uts", T::Uts),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Whether it joins another container's namespaces (`container:`).
    pub fn joins_another(&self) -> bool {
        matches!(mode(self.network.as_deref()), NetworkMode::Container(_))
            || self
                .namespace_modes()
                .iter()
                .any(|(_, m, _, _)| matches!(m, crate::flags::NsMode::Container(_)))
    }
}

/// `--cpus 0.5` as a CFS quota over a 100 ms period, on this host (which
/// must have that many CPUs).
pub fn cpu_quota(v: f64) -> Result<(i64, u64)> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    if v > cores {
        return Err(flag(
            "--cpus",
            format!("{v} is more than the {cores} CPUs this host has"),
        ));
    }
    let period = 100_000u64;
    Ok(((v * period as f64).round() as i64, period))
}

/// What `capsa exec` runs, as docker's flags say it.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub detach: bool,
    pub privileged: bool,
}

/// The network `capsa run` uses unless told otherwise.
pub const DEFAULT_NETWORK: &str = "bridge";

/// What `--network` asks for, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    None,
    Host,
    /// Another container's namespace.
    Container(String),
    /// A bridge network by name (`bridge` or a user network).
    Bridge(String),
    /// A namespace of its own, joined to the host's network by `pasta`
    /// (passt's user-mode TCP/IP): rootless capsa's default, since making
    /// bridges and veths takes the host's root.
    Pasta,
}

/// `--network VALUE`; the default network without one.
pub fn mode(value: Option<&str>) -> NetworkMode {
    let rootless = crate::rootless::active();
    match value.unwrap_or("default") {
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        "pasta" => NetworkMode::Pasta,
        "default" if rootless => NetworkMode::Pasta,
        "default" => NetworkMode::Bridge(DEFAULT_NETWORK.into()),
        c if c.starts_with("container:") => {
            NetworkMode::Container(c["container:".len()..].to_string())
        }
        n => NetworkMode::Bridge(n.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(parse_bytes("--memory", "512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("--memory", "1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("--memory", "1.5k").unwrap(), 1536);
        assert_eq!(parse_bytes("--memory", "100mb").unwrap(), 100 << 20);
        for bad in ["12zz", "", "-1", "m", "0"] {
            let e = parse_bytes("--memory", bad).unwrap_err().to_string();
            assert!(e.starts_with("--memory"), "{e}");
        }
    }

    #[test]
    fn cpus_become_quota_over_period() {
        assert_eq!(cpu_quota(0.5).unwrap(), (50_000, 100_000));
        assert!(cpu_quota(100000.0)
            .unwrap_err()
            .to_string()
            .contains("CPUs this host has"));
    }

    #[test]
    fn volumes_binds_and_names() {
        let v = parse_volume("/srv/data:/data:ro").unwrap();
        assert_eq!(
            (
                v.source.as_str(),
                v.target.as_str(),
                v.readonly,
                v.is_named()
            ),
            ("/srv/data", "/data", true, false)
        );
        assert!(parse_volume("cache:/cache").unwrap().is_named());
        assert!(parse_volume("/a:relative").is_err());
        assert!(parse_volume("/a:/b:xx").is_err());
        assert!(parse_volume("bad name!:/b").is_err());
        // A name is a directory of the store's: `..` is not one.
        assert!(parse_volume("..:/b").is_err());
        assert!(parse_volume(".:/b").is_err());
    }

    #[test]
    fn ulimits_and_devices() {
        assert_eq!(
            parse_ulimit("nofile=1024:2048").unwrap(),
            ("RLIMIT_NOFILE".into(), 1024, 2048)
        );
        assert!(parse_ulimit("nofile=2:1").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
        assert_eq!(
            parse_device("/dev/fuse").unwrap(),
            ("/dev/fuse".into(), "/dev/fuse".into(), "rwm".into())
        );
        assert_eq!(parse_device("/dev/a:/dev/b:r").unwrap().2, "r");
        assert!(parse_device("/dev/a:xyz").is_err());
    }
}
