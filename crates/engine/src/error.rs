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
    /// The container's own program could not be found (ENOENT) or run
    /// (EACCES, ...): the container was set up, the command is at fault.
    #[error("{message}")]
    Program { message: String, errno: i32 },
    /// Something else went wrong, in words.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The errno when the container's own program could not be found or
    /// run (see [`Error::Program`]).
    pub fn program_errno(&self) -> Option<i32> {
        match self {
            Error::Program { errno, .. } => Some(*errno),
            Error::Runtime(r) => r.program_errno(),
            _ => None,
        }
    }

    /// Rebuild an error a monitor or create process reported as JSON
    /// (`error`, and `program_errno` when it is [`Error::Program`]).
    pub(crate) fn from_report(v: &serde_json::Value, default: &str) -> Error {
        let message = v["error"].as_str().unwrap_or(default).to_string();
        match v["program_errno"].as_i64() {
            Some(errno) => Error::Program {
                message,
                errno: errno as i32,
            },
            None => Error::Other(message),
        }
    }

    /// This error as a report (see [`Error::from_report`]).
    pub(crate) fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": false,
            "error": self.to_string(),
            "program_errno": self.program_errno(),
        })
    }
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
