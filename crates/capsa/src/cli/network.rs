//! The flags of `network` and `port`.

use super::*;
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Make a bridge network.
    Create(NetworkCreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(NetworkLsArgs),
    /// Show networks as JSON, with their containers.
    Inspect(NetworkInspectArgs),
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

#[derive(Args, Debug)]
pub struct NetworkLsArgs {
    /// Only ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// KEY=VALUE: name, id, driver (docker's).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// table, json, or a Go template (`{{.Field}}`, `table {{.A}}\t{{.B}}`).
    #[arg(long, default_value = "table")]
    pub format: Format,
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

#[derive(Args, Debug)]
pub struct NetworkInspectArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// json (the default), or a Go template over each.
    #[arg(short, long, default_value = "json")]
    pub format: Format,
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
