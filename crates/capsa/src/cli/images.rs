//! The flags of the image and registry verbs.

use super::*;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

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
    /// KEY=VALUE: dangling, label, reference, before, since (docker's).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// table, json, or a Go template (`{{.Field}}`, `table {{.A}}\t{{.B}}`).
    #[arg(long, default_value = "table")]
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
    /// json (the default), or a Go template over each.
    #[arg(short, long, default_value = "json")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove every image, not only those without a name.
    #[arg(short, long)]
    pub all: bool,
    /// table, json, or a Go template (`{{.Field}}`, `table {{.A}}\t{{.B}}`).
    #[arg(long, default_value = "table")]
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

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BuildProgress {
    /// One line per step and its result, as BuildKit's plain mode.
    #[default]
    Plain,
    /// The same lines, for a terminal.
    Tty,
    /// Pick by whether stderr is a terminal.
    Auto,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name the image (NAME[:TAG]); may be given more than once.
    #[arg(short, long)]
    pub tag: Vec<String>,
    /// The Containerfile (default: Containerfile, else Dockerfile, in the
    /// context).
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// A build arg, KEY=VALUE (or KEY, from the environment).
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    /// Build up to this stage.
    #[arg(long)]
    pub target: Option<String>,
    /// Run every step, ignoring the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Pull base images even when the store has them.
    #[arg(long)]
    pub pull: bool,
    /// The network of RUN steps: bridge (the default; or CAPSA_NETWORK),
    /// a network's name, none or host.
    #[arg(long, env = "CAPSA_NETWORK")]
    pub network: Option<String>,
    /// The cgroup under which RUN steps' cgroups are made (default /capsa).
    #[arg(long, env = "CAPSA_CGROUP_PARENT")]
    pub cgroup_parent: Option<String>,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = BuildProgress::Auto)]
    pub progress: BuildProgress,
    /// Write the image's id to this file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// A label on the image, KEY=VALUE.
    #[arg(long)]
    pub label: Vec<String>,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// After the build, each step's time and the layer it made.
    #[arg(long)]
    pub trace: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The context directory.
    pub context: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum BuilderCommand {
    /// Remove build cache entries no image uses (all with -a).
    Prune(BuilderPruneArgs),
}

#[derive(Args, Debug)]
pub struct BuilderPruneArgs {
    /// Remove every cache entry.
    #[arg(short, long)]
    pub all: bool,
}
