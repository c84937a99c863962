//! The command line: docker's and podman's verbs and flags.

mod containers;
mod images;
mod network;
mod volume;

pub use containers::*;
pub use images::*;
pub use network::*;
pub use volume::*;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "capsa",
    version,
    about = "Containers without a daemon, with the kernel in view"
)]
pub struct Cli {
    /// Where images, layers and containers live [default: /var/lib/capsa;
    /// rootless: $XDG_DATA_HOME/capsa]
    #[arg(long, global = true, env = "CAPSA_ROOT")]
    pub root: Option<PathBuf>,
    /// Where runtime state, monitor sockets and locks live [default:
    /// /run/capsa; rootless: $XDG_RUNTIME_DIR/capsa]
    #[arg(long, global = true, env = "CAPSA_RUN")]
    pub run_root: Option<PathBuf>,
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
    /// What happens to containers, images, volumes and networks, as it
    /// happens (from the event log every command and monitor appends to).
    Events(EventsArgs),
    /// Print a shell's completion script (bash, zsh, fish, elvish,
    /// powershell): `source <(capsa completion bash)`.
    Completion(CompletionArgs),
    /// Write the man pages (capsa.1, capsa-run.1, ...) into a directory.
    #[command(hide = true)]
    Man(ManArgs),
    /// Run a container's health check now.
    #[command(subcommand)]
    Healthcheck(HealthcheckCommand),
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
    /// Volumes: create, ls, inspect, rm, prune.
    #[command(subcommand)]
    Volume(VolumeCommand),
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
    /// Build an image from a Containerfile (or Dockerfile).
    Build(BuildArgs),
    /// The build cache.
    #[command(subcommand)]
    Builder(BuilderCommand),
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
    Build(BuildArgs),
    /// Mount an image's layers read-only at a directory.
    Mount(MountArgs),
    /// Unmount what `image mount` mounted.
    Unmount(UnmountArgs),
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Events from this time on (RFC 3339, seconds, or a duration ago).
    #[arg(long)]
    pub since: Option<String>,
    /// Events up to this time, then exit (else follow).
    #[arg(long)]
    pub until: Option<String>,
    /// KEY=VALUE: container, image, volume, network, event, type, label.
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// table (docker's lines), json, or a Go template (`{{.Action}}`).
    #[arg(long, default_value = "table")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    pub dir: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum HealthcheckCommand {
    /// Run the check once, record its result; exit 0 when healthy, 1 when
    /// not.
    Run(HealthcheckArgs),
}

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    pub container: String,
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Disk space used by images, containers, volumes and the build cache.
    Df(SystemDfArgs),
    /// Remove stopped containers, unused networks, dangling images and the
    /// build cache (with -a every unused image, with --volumes unused
    /// anonymous volumes).
    Prune(SystemPruneArgs),
}

#[derive(Args, Debug)]
pub struct SystemDfArgs {
    /// Each image, container and volume on a line of its own.
    #[arg(short, long)]
    pub verbose: bool,
    /// table, json, or a Go template (`{{.Type}}\t{{.Size}}`).
    #[arg(long, default_value = "table")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct SystemPruneArgs {
    /// Every image no container uses, not only dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Unused anonymous volumes too.
    #[arg(long)]
    pub volumes: bool,
    /// Do not ask.
    #[arg(short, long)]
    pub force: bool,
}

pub use crate::format::Format;

#[derive(Args, Debug)]
pub struct FormatArgs {
    /// table, json, or a Go template (`{{.Field}}`, `table {{.A}}\t{{.B}}`).
    #[arg(long, short = 'f', default_value = "table")]
    pub format: Format,
}
