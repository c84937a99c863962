//! The image crate's errors: each names what it was doing and the path,
//! reference, digest or registry at fault.

use std::path::PathBuf;

/// Everything the image library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An image reference does not parse.
    #[error("invalid reference {reference:?}: {reason}")]
    Reference { reference: String, reason: String },
    /// Content did not hash to the digest that named it.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// A manifest, config, archive or layout is malformed.
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    /// A tar entry tried to leave its layer or is otherwise refused.
    #[error("refused tar entry {entry:?}: {reason}")]
    UnsafeEntry { entry: String, reason: String },
    /// No such image (or blob) in the store.
    #[error("{0}: image not known")]
    NotFound(String),
    /// The operation conflicts with what the store holds.
    #[error("{0}")]
    Conflict(String),
    /// A registry refused or failed a request.
    #[error("{registry}: {reason}")]
    Registry { registry: String, reason: String },
    /// The host cannot do what was asked (e.g. no overlay support).
    #[error("{0}")]
    Unsupported(String),
}

/// Result with the image crate's error.
pub type Result<T> = std::result::Result<T, Error>;

/// Attach the operation and path to an io::Error.
pub(crate) trait IoContext<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.into(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::Io {
            op,
            path: path.into(),
            source: e.into(),
        })
    }
}

pub(crate) fn invalid(what: impl Into<String>, reason: impl std::fmt::Display) -> Error {
    Error::Invalid {
        what: what.into(),
        reason: reason.to_string(),
    }
}
