//! capsa's images: a content store of blobs by digest, manifests and
//! configs (OCI and Docker schema 2), layers unpacked once by chain id and
//! shared, container roots as overlays of them, the OCI layout and
//! docker-archive formats, and a registry client (OCI distribution spec).
//!
//! The library never prints: long operations report through a
//! [`Progress`] callback, and the binary draws it.

// Library code returns errors; tests may unwrap.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod archive;
pub mod auth;
pub mod cache;
pub mod commit;
pub mod config;
pub mod diff;
pub mod digest;
pub mod error;
pub mod layers;
pub mod local;
pub mod manifest;
pub mod pack;
mod parallel;
pub mod reference;
pub mod registry;
pub mod snapshot;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::Reference;
pub use store::{ImageRecord, Store};

/// What a long operation is doing, for a progress display.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A manifest was resolved; `layers` blobs follow.
    Resolved {
        reference: String,
        digest: Digest,
        layers: usize,
    },
    /// A blob is being transferred (`done` of `total` bytes).
    Bytes {
        digest: Digest,
        done: u64,
        total: u64,
    },
    /// The store already had the blob (or the registry already had it).
    Exists { digest: Digest },
    /// A blob was mounted from another repository of the registry.
    Mounted { digest: Digest, from: String },
    /// A blob is complete and verified.
    Done { digest: Digest },
    /// A layer is being unpacked.
    Unpacking { digest: Digest },
    /// A layer is unpacked.
    Unpacked { digest: Digest },
    /// A transfer failed and is retried from byte `from`.
    Retry {
        digest: Digest,
        from: u64,
        reason: String,
    },
}

/// A progress sink; `&|_| {}` for none.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Sync);
