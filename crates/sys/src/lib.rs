//! Safe wrappers over the syscalls capsa needs and that `nix` does not cover
//! (or covers in a way that hides what the kernel does).
//!
//! This is the only crate of the workspace allowed to contain `unsafe`; every
//! block carries a `// SAFETY:` line. Functions return owned fds and
//! `nix::Error` (an errno) so that callers attach the operation and target.

// Library code returns errors; tests may unwrap.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
// The one crate allowed `unsafe` (the workspace denies it elsewhere):
// every block carries a `// SAFETY:` line, which clippy checks.
#![allow(unsafe_code)]

pub mod bpf;
pub mod caps;
pub mod exe;
pub mod fd;
pub mod file;
pub mod mount;
pub mod net;
pub mod process;
pub mod procfs;
pub mod resolve;
pub mod root;
pub mod seccomp;
pub mod time;

pub use nix::errno::Errno;

/// Result of a raw syscall wrapper: the errno on failure.
pub type Result<T> = std::result::Result<T, Errno>;
