//! The flags of `volume`.

use super::*;
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Make a volume (a random name without one).
    Create(VolumeCreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(VolumeLsArgs),
    /// Show volumes as JSON, with the containers that mount them.
    Inspect(VolumeInspectArgs),
    /// Remove volumes no container mounts.
    #[command(alias = "remove")]
    Rm(VolumeRmArgs),
    /// Remove the volumes no container mounts: anonymous ones, or all
    /// with -a.
    Prune(VolumePruneArgs),
}

#[derive(Args, Debug, Clone)]
pub struct VolumeCreateArgs {
    /// Only local volumes exist; accepted for docker's command lines.
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// A label, KEY=VALUE (repeatable).
    #[arg(short = 'l', long)]
    pub label: Vec<String>,
    pub name: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct VolumeLsArgs {
    /// name=TEXT, label=KEY[=VALUE], dangling=true|false, driver=local.
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Names only.
    #[arg(short, long)]
    pub quiet: bool,
    /// table, json, or a Go template (`{{.Field}}`, `table {{.A}}\t{{.B}}`).
    #[arg(long, default_value = "table")]
    pub format: Format,
}

#[derive(Args, Debug, Clone)]
pub struct VolumeNamesArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct VolumeInspectArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// json (the default), or a Go template over each.
    #[arg(short, long, default_value = "json")]
    pub format: Format,
}

#[derive(Args, Debug, Clone)]
pub struct VolumeRmArgs {
    /// Accepted for docker's command lines: a volume in use is still kept.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct VolumePruneArgs {
    /// Named volumes too, not only anonymous ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask (capsa never asks; accepted for docker's command lines).
    #[arg(short, long)]
    pub force: bool,
    /// label=KEY[=VALUE] and the other filters of `volume ls`.
    #[arg(long)]
    pub filter: Vec<String>,
}
