//! The command line, flag for flag as runc's.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "capsa-runtime",
    about = "An OCI container runtime with runc's command line",
    after_help = "-v, --version  print the version (runc's three lines)"
)]
pub struct Cli {
    /// Directory for the state of containers (default /run/capsa-runtime,
    /// or $XDG_RUNTIME_DIR/capsa-runtime for an unprivileged user).
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Write log messages (and errors) to this file.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of the log file.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Manage cgroups through systemd (needs a running systemd).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility (rootless mode is detected).
    #[arg(long = "rootless", id = "global_rootless", hide = true)]
    pub rootless: Option<String>,
    /// The CRIU binary for checkpoint and restore.
    #[arg(long, global = true, default_value = "criu")]
    pub criu: PathBuf,
    /// capsa's hardened behaviour where it differs from runc's: a
    /// container needs a mount namespace and an empty cgroup, an unknown
    /// capability is an error, `ro` on an rbind is recursive; `spec`
    /// writes capsa's hardened default (docs/runc-parity.md).
    #[arg(long, global = true)]
    pub hardened: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// `-v`/`--version`, in runc's shape: engines and scripts parse it.
pub fn version_text() -> String {
    format!(
        "capsa-runtime version {}\ncommit: {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("CAPSA_COMMIT"),
        capsa_spec::OCI_VERSION
    )
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a default config.json into the bundle.
    Spec(SpecArgs),
    /// Create a container; its process waits for `start`.
    Create(CreateArgs),
    /// Start the process of a created container.
    Start(IdArg),
    /// Print the OCI state of a container as JSON.
    State(IdArg),
    /// Send a signal to a container's init (or to all its processes).
    Kill(KillArgs),
    /// Delete a container and everything it holds.
    Delete(DeleteArgs),
    /// Create and start a container, and wait for it in the foreground.
    Run(RunArgs),
    /// Run a new process inside a container.
    Exec(ExecArgs),
    /// List containers.
    List(ListArgs),
    /// List the processes of a container.
    Ps(PsArgs),
    /// Print the features this runtime supports, as JSON.
    Features,
    /// Freeze every process of a container.
    Pause(IdArg),
    /// Thaw a paused container.
    Resume(IdArg),
    /// Change the resource limits of a running container.
    Update(UpdateArgs),
    /// Container usage and OOM events, as JSON lines.
    Events(EventsArgs),
    /// Save a running container's processes to image files (CRIU).
    Checkpoint(CheckpointArgs),
    /// Make a container from a bundle and a checkpoint's images (CRIU).
    Restore(RestoreArgs),
}

/// Flags of `checkpoint` and `restore` (runc's).
#[derive(Args, Debug, Clone)]
pub struct CriuArgs {
    /// Directory of the image files (default: ./checkpoint).
    #[arg(long)]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's log and work files (default: the image path).
    #[arg(long)]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long)]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// Allow shell jobs (a terminal).
    #[arg(long)]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long)]
    pub file_locks: bool,
    /// cgroups mode: soft, full, strict or ignore.
    #[arg(long)]
    pub manage_cgroups_mode: Option<String>,
    /// Namespaces made empty instead of restored (network).
    #[arg(long)]
    pub empty_ns: Vec<String>,
    /// Deduplicate the parent's images as pages are dumped.
    #[arg(long)]
    pub auto_dedup: bool,
    /// Lazy migration of memory pages.
    #[arg(long)]
    pub lazy_pages: bool,
    /// An fd CRIU writes \0 to once the lazy page server is ready.
    #[arg(long)]
    pub status_fd: Option<i32>,
    /// ADDRESS:PORT of a CRIU page server for the memory pages.
    #[arg(long)]
    pub page_server: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// A previous dump, relative to the image path.
    #[arg(long)]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the dump.
    #[arg(long)]
    pub leave_running: bool,
    /// Dump memory only, for a later dump with --parent-path.
    #[arg(long)]
    pub pre_dump: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Bundle directory (holding config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Do not wait for the restored container.
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the restored init's pid to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket for a restored terminal's new master.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility (CRIU restores the root).
    #[arg(long, hide = true)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long, hide = true)]
    pub no_subreaper: bool,
    /// The global `--systemd-cgroup`, copied here by main.
    #[arg(skip)]
    pub systemd_cgroup: bool,
    /// The global `--hardened`, copied here by main.
    #[arg(skip)]
    pub hardened: bool,
}

#[derive(Args, Debug)]
pub struct IdArg {
    pub id: String,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Bundle directory to write config.json in.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// A spec for running as an unprivileged user.
    #[arg(long)]
    pub rootless: bool,
    /// The global `--hardened`, copied here by main: capsa's hardened
    /// default instead of runc's (docker's capabilities, the default
    /// seccomp profile and a cgroup namespace).
    #[arg(skip)]
    pub hardened: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    pub id: String,
    /// Bundle directory (holding config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// File to write the container's init pid to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Do not use pivot_root (move and chroot instead).
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many fds after stdio (3, 4, ...) to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    /// The global `--systemd-cgroup`, copied here by main.
    #[arg(skip)]
    pub systemd_cgroup: bool,
    /// The global `--hardened`, copied here by main.
    #[arg(skip)]
    pub hardened: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Do not wait for the container.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    pub id: String,
    /// Signal name or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
    /// Signal every process of the container.
    #[arg(short, long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    pub id: String,
    /// Kill the container first if it is running.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Print ids only.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    pub id: String,
    #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Options for ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    pub id: String,
    /// Command and arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A process.json describing the process.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Environment variables (KEY=VALUE), added to the container's.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// UID[:GID] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional gids.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the process's sets.
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Do not wait for the process.
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    /// Exec even into a paused container: the process starts frozen and
    /// runs once the container is resumed (runc's flag).
    #[arg(long)]
    pub ignore_paused: bool,
    /// Run in a sub-cgroup of the container's: `[CONTROLLER[,...]:]PATH`,
    /// repeatable (runc's flag).
    #[arg(long = "cgroup")]
    pub cgroups: Vec<String>,
    /// Unix socket to send a pidfd of the new process to.
    #[arg(long)]
    pub pidfd_socket: Option<PathBuf>,
    /// Accepted for runc compatibility; labels are issue 5's.
    #[arg(long, hide = true)]
    pub process_label: Option<String>,
    #[arg(long, hide = true)]
    pub apparmor: Option<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    pub id: String,
    /// A JSON file of linux.resources ("-" for stdin).
    #[arg(short, long)]
    pub resources: Option<std::path::PathBuf>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU time (microseconds) a period may borrow from earlier ones.
    #[arg(long)]
    pub cpu_burst: Option<u64>,
    #[arg(long)]
    pub cpu_share: Option<u64>,
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    #[arg(long)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    pub cpu_idle: Option<i64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Memory limit in bytes (suffixes k, m, g accepted; -1 unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT is not supported; accepted to refuse it clearly.
    #[arg(long)]
    pub l3_cache_schema: Option<String>,
    #[arg(long)]
    pub mem_bw_schema: Option<String>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    pub id: String,
    /// Stats interval of the stream (5s, 500ms, 1m).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Print the stats once and exit.
    #[arg(long)]
    pub stats: bool,
}
