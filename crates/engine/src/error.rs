//! The engine's errors, each naming the container, flag or path at fault.

/// What the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag's value does not parse or makes no sense.
    #[error("{flag}: {reason}")]
    Flag { flag: String, reason: String },
    /// No such container.
    #[error("no such container: {0}")]
    NotFound(String),
    /// The container is in the wrong state, or a name is taken.
    #[error("{0}")]
    Conflict(String),
    /// A filesystem operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Image(#[from] capsa_image::Error),
    #[error(transparent)]
    Runtime(#[from] capsa_runtime::Error),
    /// Something else went wrong, in words.
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn flag(flag: &str, reason: impl std::fmt::Display) -> Error {
    Error::Flag {
        flag: flag.to_string(),
        reason: reason.to_string(),
    }
}

pub(crate) trait IoContext<T> {
    fn at(self, op: &'static str, path: impl Into<std::path::PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, op: &'static str, path: impl Into<std::path::PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.into(),
            source,
        })
    }
}
