//! The capsa OCI runtime library.
//!
//! `create` turns a bundle into a container whose init waits on the exec
//! FIFO; `start` releases it; `exec` joins a running container; `kill`,
//! `delete`, `state` and `list` manage the state kept under the root
//! directory. The flows are single-threaded where they fork.
//! See `docs/create-flow.md` for the sequence.

// Library code returns errors; tests may unwrap.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod channel;
mod checkpoint;
mod console;
mod copyup;
mod create;
mod criu;
pub mod door;
mod error;
mod exec;
pub mod foreground;
mod hooks;
mod hostmounts;
mod init;
mod lifecycle;
pub mod lsm;
mod mounts;
mod namespaces;
mod process;
mod procfs;
pub mod rootless;
pub mod signals;
pub mod state;
pub mod trace;

pub use checkpoint::{checkpoint, restore, CheckpointOptions, CriuFlags, RestoreOptions, Restored};
pub use create::Created;
pub use create::{create, CreateOptions};
pub use error::{describe, ChildError, Error, Kind, Result};
pub use exec::Execed;
pub use exec::{exec, process_with, ExecOptions, Overrides};
pub use lifecycle::{
    delete, kill, list, oom_kills, pause, pids, resume, start, state, stats, status_of, update,
};
pub use namespaces::userns_fd;
pub use state::{ContainerState, Status, Store};
