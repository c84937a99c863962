//! The flags of the container verbs (`run` and the rest).

use super::*;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Remove every stopped container.
    Prune,
    #[command(alias = "list")]
    Ls(PsArgs),
    Rm(RmArgs),
    Inspect(InspectAnyArgs),
}

#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help (-h is --hostname, as in docker).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    #[arg(long)]
    pub name: Option<String>,
    /// KEY=VALUE (or KEY, taken from our environment).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    #[arg(long)]
    pub env_file: Vec<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// USER[:GROUP], by name or number.
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(long, short = 'h')]
    pub hostname: Option<String>,
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// HOST:CONTAINER[:ro], or NAME:CONTAINER for a named volume.
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// PATH[:OPTIONS] for a tmpfs.
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// type=bind|volume|tmpfs,source=..,target=..[,readonly][,bind-propagation=..]
    /// [,volume-nocopy][,tmpfs-size=..][,tmpfs-mode=..]
    #[arg(long)]
    pub mount: Vec<String>,
    #[arg(long)]
    pub read_only: bool,
    /// CPUs, e.g. 0.5.
    #[arg(long, allow_hyphen_values = true)]
    pub cpus: Option<String>,
    #[arg(long, short = 'c')]
    pub cpu_shares: Option<u64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// e.g. 512m.
    #[arg(long, short = 'm')]
    pub memory: Option<String>,
    /// Memory plus swap (-1: unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    #[arg(long)]
    pub device: Vec<String>,
    #[arg(long)]
    pub cap_add: Vec<String>,
    #[arg(long)]
    pub cap_drop: Vec<String>,
    #[arg(long)]
    pub privileged: bool,
    /// seccomp=FILE|unconfined, no-new-privileges, apparmor=PROFILE.
    #[arg(long)]
    pub security_opt: Vec<String>,
    /// NAME=SOFT[:HARD].
    #[arg(long)]
    pub ulimit: Vec<String>,
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Run an init (catatonit) as PID 1 that reaps zombies and forwards signals.
    #[arg(long)]
    pub init: bool,
    /// bridge (the default; or CAPSA_NETWORK), a network's name, none,
    /// host, or container:NAME.
    #[arg(long, alias = "net", env = "CAPSA_NETWORK")]
    pub network: Option<String>,
    /// Another name for the container on its user network (repeatable).
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// A line of /etc/hosts, NAME:IP (repeatable).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// A nameserver for /etc/resolv.conf, in place of the host's (repeatable).
    #[arg(long)]
    pub dns: Vec<String>,
    /// A search domain for /etc/resolv.conf (repeatable).
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// An option for /etc/resolv.conf, as `ndots:2` (repeatable).
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Publish a port: [IP:][HOST:]CONTAINER[/tcp|/udp].
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// The user namespace: host (the default), or auto[:size=N] for a
    /// private range of host ids (the container's root is not the host's).
    #[arg(long)]
    pub userns: Option<String>,
    /// An OCI runtime binary (runc, crun) instead of capsa's own.
    #[arg(long)]
    pub runtime: Option<String>,
    /// The cgroup under which the container's cgroup is made (default /capsa).
    #[arg(long, env = "CAPSA_CGROUP_PARENT")]
    pub cgroup_parent: Option<String>,
    #[arg(long)]
    pub stop_signal: Option<String>,
    #[arg(long)]
    pub stop_timeout: Option<u64>,
    /// A port (or range) -P publishes too: PORT[/PROTO].
    #[arg(long)]
    pub expose: Vec<String>,
    /// Mount the volumes of another container: NAME[:ro|rw].
    #[arg(long)]
    pub volumes_from: Vec<String>,
    /// The CFS period, in microseconds (with --cpu-quota).
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// The CFS quota, in microseconds a period (-1: none).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Memory nodes the container may use (0-3, 0,1).
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// How readily its anonymous pages swap, 0 to 100.
    #[arg(long)]
    pub memory_swappiness: Option<u64>,
    /// The NIS domain name.
    #[arg(long)]
    pub domainname: Option<String>,
    /// The cgroup namespace: private (the default) or host.
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// The image's platform: this host's only (no emulation).
    #[arg(long)]
    pub platform: Option<String>,
    /// No pull progress.
    #[arg(short, long)]
    pub quiet: bool,
    /// Pass the signals the command gets to the container (docker's
    /// default; false is not supported).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: Option<bool>,
    /// Take images without Notary signatures (docker's default; capsa has
    /// no content trust, so false is refused).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub disable_content_trust: Option<bool>,
    #[command(flatten)]
    pub refused: RefusedRunArgs,
    /// The PID namespace: host, private or container:NAME.
    #[arg(long)]
    pub pid: Option<String>,
    /// The IPC namespace: host, private, shareable, none or container:NAME.
    #[arg(long)]
    pub ipc: Option<String>,
    /// The UTS namespace (hostname): host, private or container:NAME.
    #[arg(long)]
    pub uts: Option<String>,
    /// The size of /dev/shm (default 64m).
    #[arg(long)]
    pub shm_size: Option<String>,
    /// More groups for the process: a gid or a group of the image.
    #[arg(long)]
    pub group_add: Vec<String>,
    /// The memory soft limit, e.g. 256m.
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Never OOM-kill the container's processes (cgroup v1 only).
    #[arg(long)]
    pub oom_kill_disable: bool,
    /// The processes' OOM score adjustment, -1000 to 1000.
    #[arg(long, allow_hyphen_values = true)]
    pub oom_score_adj: Option<i32>,
    /// Write the container's id to this file (which must not exist).
    #[arg(long)]
    pub cidfile: Option<String>,
    /// The keys that detach from its tty (default ctrl-p,ctrl-q).
    #[arg(long)]
    pub detach_keys: Option<String>,
    /// KEY=VALUE: a label of the container.
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// A file of labels, KEY=VALUE a line.
    #[arg(long)]
    pub label_file: Vec<String>,
    /// KEY=VALUE: an annotation of the OCI spec.
    #[arg(long)]
    pub annotation: Vec<String>,
    /// What to do when it exits: no, on-failure[:max-retries], always,
    /// unless-stopped.
    #[arg(long)]
    pub restart: Option<String>,
    /// A command whose success means healthy (run by /bin/sh -c).
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between health checks (30s, 1m30s, 500ms).
    #[arg(long)]
    pub health_interval: Option<String>,
    /// The most a health check may take.
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Failures in a row that make it unhealthy.
    #[arg(long)]
    pub health_retries: Option<u32>,
    /// Time after the start when failures do not count.
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Time between health checks during the start period.
    #[arg(long)]
    pub health_start_interval: Option<String>,
    /// No health check, whatever the image says.
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Pull the image: missing (default), always, never.
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Print each kernel-level step of the start and what it cost.
    #[arg(long)]
    pub trace: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The image, then the command and its arguments (default: the
    /// image's). Everything after the image is the command's, even what
    /// looks like a flag (`--entrypoint sh IMAGE -c 'cmd'`), as in docker.
    #[arg(
        value_name = "IMAGE [COMMAND [ARG...]]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub argv: Vec<String>,
}

impl RunArgs {
    /// The image.
    pub fn image(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }

    /// The command after the image.
    pub fn command(&self) -> &[String] {
        self.argv.get(1..).unwrap_or(&[])
    }
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach to the output and wait for the exit.
    #[arg(short, long)]
    pub attach: bool,
    #[arg(short, long)]
    pub interactive: bool,
    /// Start every stopped container its restart policy would start (after
    /// a reboot: always, unless-stopped unless stopped by hand,
    /// on-failure after a failed exit).
    #[arg(long, conflicts_with_all = ["containers", "attach", "interactive"])]
    pub all_restartable: bool,
    #[arg(required_unless_present = "all_restartable")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// All containers, not only running ones.
    #[arg(short, long)]
    pub all: bool,
    /// Only ids.
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(long)]
    pub no_trunc: bool,
    /// KEY=VALUE: id, name, label, exited, status, ancestor, before,
    /// since, volume, network, health (docker's).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// The last N containers made (any state).
    #[arg(short = 'n', long)]
    pub last: Option<usize>,
    /// The last container made (any state).
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// table, json, or a Go template (`{{.Field}}`, `table {{.A}}\t{{.B}}`).
    #[arg(long, default_value = "table")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    pub container: String,
    /// Keep following the output.
    #[arg(short, long)]
    pub follow: bool,
    /// Only entries since this time (RFC 3339) or duration ago (10s, 5m, 2h).
    #[arg(long)]
    pub since: Option<String>,
    /// The last N lines (or "all").
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Prefix each line with its time.
    #[arg(short, long)]
    pub timestamps: bool,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    #[arg(long)]
    pub privileged: bool,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    pub container: String,
    /// Do not forward stdin.
    #[arg(long)]
    pub no_stdin: bool,
    /// The keys that detach (default ctrl-p,ctrl-q, or the container's).
    #[arg(long)]
    pub detach_keys: Option<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL.
    #[arg(short, long)]
    pub time: Option<u64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Kill a running container first.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct IdsArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub name: String,
}

#[derive(Args, Debug)]
pub struct InspectAnyArgs {
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// container or image (default: whichever the name finds).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// json (the default), or a Go template over each (`{{.State.Pid}}`).
    #[arg(short, long, default_value = "json")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// One sample, then exit.
    #[arg(long)]
    pub no_stream: bool,
    /// table, json, or a Go template (`{{.Field}}`, `table {{.A}}\t{{.B}}`).
    #[arg(long, default_value = "table")]
    pub format: Format,
    /// Containers (default: all running).
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    pub container: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    pub container: String,
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode: keep the uid, gid and set-id bits of what is copied
    /// (otherwise the destination's user owns the copy).
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// CONTAINER:PATH or a host path.
    pub source: String,
    /// CONTAINER:PATH or a host path.
    pub destination: String,
}

/// docker's `run` flags capsa does not take: each is accepted by the
/// parser so that it is refused with its reason, never with "unexpected
/// argument" (docs/engine.md lists them).
#[derive(Args, Debug, Clone, Default)]
pub struct RefusedRunArgs {
    #[arg(short = 'a', long, hide = true)]
    pub attach: Vec<String>,
    #[arg(long, hide = true)]
    pub blkio_weight_device: Vec<String>,
    #[arg(long, hide = true)]
    pub device_read_bps: Vec<String>,
    #[arg(long, hide = true)]
    pub device_read_iops: Vec<String>,
    #[arg(long, hide = true)]
    pub device_write_bps: Vec<String>,
    #[arg(long, hide = true)]
    pub device_write_iops: Vec<String>,
    #[arg(long, hide = true)]
    pub cpu_count: Vec<String>,
    #[arg(long, hide = true)]
    pub cpu_percent: Vec<String>,
    #[arg(long, hide = true)]
    pub io_maxbandwidth: Vec<String>,
    #[arg(long, hide = true)]
    pub io_maxiops: Vec<String>,
    #[arg(long, hide = true)]
    pub isolation: Vec<String>,
    #[arg(long, hide = true)]
    pub cpu_rt_period: Vec<String>,
    #[arg(long, hide = true)]
    pub cpu_rt_runtime: Vec<String>,
    #[arg(long, hide = true)]
    pub device_cgroup_rule: Vec<String>,
    #[arg(long, hide = true)]
    pub gpus: Vec<String>,
    #[arg(long, hide = true)]
    pub ip: Vec<String>,
    #[arg(long, hide = true)]
    pub ip6: Vec<String>,
    #[arg(long, hide = true)]
    pub kernel_memory: Vec<String>,
    #[arg(long, hide = true)]
    pub link: Vec<String>,
    #[arg(long, hide = true)]
    pub link_local_ip: Vec<String>,
    #[arg(long, hide = true)]
    pub log_driver: Vec<String>,
    #[arg(long, hide = true)]
    pub log_opt: Vec<String>,
    #[arg(long, hide = true)]
    pub mac_address: Vec<String>,
    #[arg(long, hide = true)]
    pub storage_opt: Vec<String>,
    #[arg(long, hide = true)]
    pub volume_driver: Vec<String>,
}

impl RefusedRunArgs {
    /// The first flag given, with why capsa does not take it.
    pub fn first(&self) -> Option<(&'static str, &'static str)> {
        let io = "per-device I/O limits are not built yet";
        let win = "Windows only";
        [
            (
                &self.attach,
                "--attach",
                "run attaches stdin (with -i), stdout and stderr, or none with -d",
            ),
            (&self.blkio_weight_device, "--blkio-weight-device", io),
            (&self.device_read_bps, "--device-read-bps", io),
            (&self.device_read_iops, "--device-read-iops", io),
            (&self.device_write_bps, "--device-write-bps", io),
            (&self.device_write_iops, "--device-write-iops", io),
            (&self.cpu_count, "--cpu-count", win),
            (&self.cpu_percent, "--cpu-percent", win),
            (&self.io_maxbandwidth, "--io-maxbandwidth", win),
            (&self.io_maxiops, "--io-maxiops", win),
            (&self.isolation, "--isolation", win),
            (
                &self.cpu_rt_period,
                "--cpu-rt-period",
                "real-time CPU scheduling is not built",
            ),
            (
                &self.cpu_rt_runtime,
                "--cpu-rt-runtime",
                "real-time CPU scheduling is not built",
            ),
            (
                &self.device_cgroup_rule,
                "--device-cgroup-rule",
                "not built yet (--device adds a device and its rule)",
            ),
            (&self.gpus, "--gpus", "no GPU support"),
            (
                &self.ip,
                "--ip",
                "addresses are leased; a fixed one is not built yet",
            ),
            (
                &self.ip6,
                "--ip6",
                "addresses are leased; a fixed one is not built yet",
            ),
            (
                &self.kernel_memory,
                "--kernel-memory",
                "deprecated by the kernel and by docker",
            ),
            (
                &self.link,
                "--link",
                "legacy links: use a user network, whose names resolve",
            ),
            (&self.link_local_ip, "--link-local-ip", "not built"),
            (
                &self.log_driver,
                "--log-driver",
                "the monitor writes docker's json-file log only",
            ),
            (
                &self.log_opt,
                "--log-opt",
                "the monitor writes docker's json-file log only",
            ),
            (&self.mac_address, "--mac-address", "not built yet"),
            (
                &self.storage_opt,
                "--storage-opt",
                "the overlay has no per-container size",
            ),
            (&self.volume_driver, "--volume-driver", "local volumes only"),
        ]
        .into_iter()
        .find(|(v, _, _)| !v.is_empty())
        .map(|(_, f, why)| (f, why))
    }
}
