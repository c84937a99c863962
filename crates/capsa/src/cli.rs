//! The command line: docker's and podman's verbs and flags.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "capsa",
    version,
    about = "Containers without a daemon, with the kernel in view"
)]
pub struct Cli {
    /// Where images, layers and containers live.
    #[arg(
        long,
        global = true,
        env = "CAPSA_ROOT",
        default_value = "/var/lib/capsa"
    )]
    pub root: PathBuf,
    /// Where runtime state, monitor sockets and locks live.
    #[arg(long, global = true, env = "CAPSA_RUN", default_value = "/run/capsa")]
    pub run_root: PathBuf,
    /// The most an image layer may unpack to (bytes, or with k/m/g).
    #[arg(
        long,
        global = true,
        env = "CAPSA_MAX_LAYER_SIZE",
        default_value = "32g"
    )]
    pub max_layer_size: String,
    /// Past its first 64 MiB, the most a layer may inflate, as a multiple
    /// of its downloaded size (a decompression bomb inflates thousands of
    /// times).
    #[arg(
        long,
        global = true,
        env = "CAPSA_MAX_INFLATE_RATIO",
        default_value_t = 100
    )]
    pub max_inflate_ratio: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create and start a container from an image.
    Run(RunArgs),
    /// Create a container without starting it.
    Create(RunArgs),
    /// Start created or stopped containers.
    Start(StartArgs),
    /// List containers.
    Ps(PsArgs),
    /// Show a container's output.
    Logs(LogsArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Attach to a running container's output (and input).
    Attach(AttachArgs),
    /// Stop containers: the stop signal, then SIGKILL after a timeout.
    Stop(StopArgs),
    /// Send a signal to containers.
    Kill(KillArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Freeze every process of containers.
    Pause(IdsArgs),
    /// Thaw paused containers.
    Unpause(IdsArgs),
    /// Wait for containers to exit; print their exit codes.
    Wait(IdsArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// Show containers (or images) as JSON, with what the kernel sees.
    Inspect(InspectAnyArgs),
    /// Live resource usage (CPU, memory, network, block I/O, pids).
    Stats(StatsArgs),
    /// The processes of a container.
    Top(TopArgs),
    /// Write a container's filesystem as a tar to stdout or a file.
    Export(ExportArgs),
    /// Copy files between a container (CONTAINER:PATH) and the host.
    Cp(CpArgs),
    /// What this host offers containers.
    Info(FormatArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Bridge networks: create, ls, inspect, rm, connect, disconnect, prune.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// The published ports of a container.
    Port(PortArgs),
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Push an image to a registry.
    Push(PushArgs),
    /// Store credentials for a registry.
    Login(LoginArgs),
    /// Forget credentials for a registry.
    Logout(LogoutArgs),
    /// List images.
    Images(ImagesArgs),
    /// Remove images.
    Rmi(RmiArgs),
    /// Give an image another name.
    Tag(TagArgs),
    /// Load images from a docker-archive, oci-archive or OCI layout.
    Load(LoadArgs),
    /// Save images to an archive (docker-archive and OCI layout in one).
    Save(SaveArgs),
    /// Create an image from a rootfs tarball.
    Import(ImportArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Information about the store.
    #[command(subcommand)]
    System(SystemCommand),
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Show an image's config, manifest and layers as JSON.
    Inspect(InspectArgs),
    /// List images.
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Remove images.
    Rm(RmiArgs),
    /// Remove unused images, then blobs and layers nothing uses.
    Prune(PruneArgs),
    Pull(PullArgs),
    Push(PushArgs),
    Tag(TagArgs),
    Load(LoadArgs),
    Save(SaveArgs),
    Import(ImportArgs),
    /// Mount an image's layers read-only at a directory.
    Mount(MountArgs),
    /// Unmount what `image mount` mounted.
    Unmount(UnmountArgs),
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Disk space used by images, blobs and layers.
    Df(FormatArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct FormatArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Require HTTPS and verify certificates (default: true, except for
    /// registries on loopback addresses, which may use plain HTTP).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tls_verify: Option<bool>,
    /// An extra CA certificate bundle (PEM) to trust.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Credentials as USER:PASSWORD (instead of the auth file).
    #[arg(long, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// With --creds: a token realm on another host that may receive them.
    #[arg(long, value_name = "URL", requires = "creds")]
    pub realm: Vec<String>,
    /// The auth file (default $REGISTRY_AUTH_FILE or ~/.config/capsa/auth.json,
    /// then ~/.docker/config.json).
    #[arg(long)]
    pub authfile: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// The image, e.g. busybox, 127.0.0.1:5000/team/app:v1, name@sha256:...
    pub image: String,
    /// The platform to choose from a multi-platform image (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress progress output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Layers downloaded at once.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The local image.
    pub image: String,
    /// Where to push (default: the image's own name).
    pub destination: Option<String>,
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry host[:port].
    pub registry: String,
    #[arg(short, long)]
    pub username: Option<String>,
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tls_verify: Option<bool>,
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    #[arg(long)]
    pub authfile: Option<PathBuf>,
    /// A token realm on another host that may receive these credentials
    /// (kept in the auth file; without it they go only to the registry's
    /// own host:port).
    #[arg(long, value_name = "URL")]
    pub realm: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    pub registry: String,
    #[arg(long)]
    pub authfile: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Only image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Full ids.
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Remove an image with several names at once.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The archive (or OCI layout directory).
    #[arg(short, long)]
    pub input: PathBuf,
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveFormat {
    /// docker's `save` format (the file is an OCI layout too).
    DockerArchive,
    /// An OCI layout in a tar (the file is a docker-archive too).
    OciArchive,
    /// An OCI layout directory.
    OciDir,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// The file (or, with --format oci-dir, directory) to write.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long, value_enum, default_value_t = SaveFormat::DockerArchive)]
    pub format: SaveFormat,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A rootfs tarball (plain, gzip or zstd), or - for stdin.
    pub file: String,
    /// The name to give the image.
    pub reference: Option<String>,
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove every image, not only those without a name.
    #[arg(short, long)]
    pub all: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct MountArgs {
    pub image: String,
    pub directory: PathBuf,
}

#[derive(Args, Debug)]
pub struct UnmountArgs {
    pub directory: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Make a bridge network.
    Create(NetworkCreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(FormatArgs),
    /// Show networks as JSON, with their containers.
    Inspect(NetworkNamesArgs),
    /// Remove networks no container is on.
    #[command(alias = "remove")]
    Rm(NetworkNamesArgs),
    /// Put a container on a network (a running one at once).
    Connect(NetworkConnectArgs),
    /// Take a container off a network.
    Disconnect(NetworkConnectArgs),
    /// Remove every network no container is on (the default stays).
    Prune,
}

#[derive(Args, Debug, Clone)]
pub struct NetworkCreateArgs {
    /// A subnet, A.B.C.D/N (default: the first free 10.100.N.0/24), or an
    /// IPv6 one (ADDR/N); give both for a dual-stack network.
    #[arg(long)]
    pub subnet: Vec<String>,
    /// The bridge's IPv4 address (default: the subnet's first).
    #[arg(long)]
    pub gateway: Option<String>,
    /// IPv6 too: addresses from the given IPv6 subnet, else a unique local /64.
    #[arg(long)]
    pub ipv6: bool,
    /// Keep the network to itself: nothing routed in or out of it, no
    /// default route in its containers (they still reach each other).
    #[arg(long)]
    pub internal: bool,
    /// Only bridge networks exist; accepted for docker's command lines.
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    pub name: String,
}

#[derive(Args, Debug, Clone)]
pub struct NetworkNamesArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct NetworkConnectArgs {
    /// Another name for the container on this network (connect only;
    /// repeatable).
    #[arg(long)]
    pub alias: Vec<String>,
    pub network: String,
    pub container: String,
}

#[derive(Args, Debug, Clone)]
pub struct PortArgs {
    pub container: String,
    /// Only this container port (PORT[/PROTO]).
    pub port: Option<String>,
}

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
    /// Pull the image: missing (default), always, never.
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Print each kernel-level step of the start and what it cost.
    #[arg(long)]
    pub trace: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The image.
    pub image: String,
    /// The command and its arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach to the output and wait for the exit.
    #[arg(short, long)]
    pub attach: bool,
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(required = true)]
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
    #[arg(long, value_enum, default_value_t = Format::Table)]
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
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// One sample, then exit.
    #[arg(long)]
    pub no_stream: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
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
