//! The engine's errors, each naming the container, flag or path at fault,
//! each with a [`Kind`] that picks the command line's exit code.

use serde::{Deserialize, Serialize};

/// What kind of failure: the command line's exit code comes from it
/// alone (docker's 125, 126 and 127), never from the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A flag, a config or a name that makes no sense.
    Invalid,
    NotFound,
    /// The wrong state, or a name taken.
    Conflict,
    Permission,
    Unsupported,
    /// The container's own program does not exist (ENOENT).
    ProgramNotFound,
    /// The container's own program exists but cannot be run.
    ProgramCannotRun,
    /// Images: the store, a registry, an archive.
    Image,
    Network,
    /// Setting the container up (runtime, kernel).
    Runtime,
    /// Everything else the host refused or lacked.
    System,
}

impl Kind {
    /// Docker's exit code for a container command that failed this way:
    /// 127 when the container's command is not found, 126 when it cannot
    /// run, 125 otherwise.
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::ProgramNotFound => 127,
            Kind::ProgramCannotRun => 126,
            _ => 125,
        }
    }

    /// The kind for the container's program failing with `errno`.
    pub fn of_program(errno: i32) -> Kind {
        if errno == libc::ENOENT {
            Kind::ProgramNotFound
        } else {
            Kind::ProgramCannotRun
        }
    }
}

/// A failure as it crosses a process boundary: its kind (which picks the
/// exit code), the errno and the path at fault when there are ones, and
/// the words for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: Kind,
    pub errno: Option<i32>,
    pub message: String,
    pub path: Option<String>,
}

/// What the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag's value does not parse or makes no sense.
    #[error("{flag}: {reason}")]
    Flag { flag: String, reason: String },
    /// No such container, network or volume: the words say which.
    #[error("{0}")]
    NotFound(String),
    /// The container is in the wrong state, or a name is taken.
    #[error("{0}")]
    Conflict(String),
    /// What the image or container asks for is refused (a volume over
    /// /proc, a path that is not a file).
    #[error("{what}: {reason}")]
    Refused { what: String, reason: String },
    /// A filesystem operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A syscall failed.
    #[error("{op} {target}: {}", nix::errno::Errno::from_raw(*errno).desc())]
    Sys {
        op: &'static str,
        target: String,
        errno: i32,
    },
    /// A record or message that does not (de)serialize.
    #[error("{what}: {message}")]
    Data { what: String, message: String },
    #[error(transparent)]
    Image(#[from] capsa_image::Error),
    #[error(transparent)]
    Network(#[from] capsa_network::Error),
    #[error(transparent)]
    Runtime(#[from] capsa_runtime::Error),
    #[error(transparent)]
    Spec(#[from] capsa_spec::SpecError),
    /// Another OCI runtime binary (`--runtime`) failed; its words were
    /// read once, here, into a kind.
    #[error("{bin} {verb}: {message}")]
    ExternalRuntime {
        bin: String,
        verb: String,
        kind: Kind,
        message: String,
    },
    /// The container's own program could not be found (ENOENT) or run
    /// (EACCES, ...): the container was set up, the command is at fault.
    #[error("{message}")]
    Program { message: String, errno: i32 },
    /// A failure another process of ours (a monitor, a create child)
    /// reported, with its kind.
    #[error("{}", .0.message)]
    Reported(Failure),
    /// A process of ours went away or spoke out of turn.
    #[error("{0}")]
    Protocol(String),
}

impl Error {
    /// A failed syscall: `op` on `target`.
    pub(crate) fn sys(op: &'static str, target: impl std::fmt::Display, e: impl RawErrno) -> Error {
        Error::Sys {
            op,
            target: target.to_string(),
            errno: e.raw(),
        }
    }

    /// A (de)serialization failure of `what`.
    pub(crate) fn data(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
        Error::Data {
            what: what.to_string(),
            message: e.to_string(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> Kind {
        if let Some(errno) = self.program_errno() {
            return Kind::of_program(errno);
        }
        match self {
            Error::Flag { .. } | Error::Refused { .. } | Error::Spec(_) => Kind::Invalid,
            Error::NotFound(_) => Kind::NotFound,
            Error::Conflict(_) => Kind::Conflict,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                Kind::Permission
            }
            Error::Sys { errno, .. } if *errno == libc::EPERM || *errno == libc::EACCES => {
                Kind::Permission
            }
            Error::Io { .. } | Error::Sys { .. } | Error::Data { .. } | Error::Protocol(_) => {
                Kind::System
            }
            Error::Image(_) => Kind::Image,
            Error::Network(capsa_network::Error::Conflict(_)) => Kind::Conflict,
            Error::Network(_) => Kind::Network,
            Error::Runtime(r) => match r.kind() {
                capsa_runtime::Kind::InvalidSpec => Kind::Invalid,
                capsa_runtime::Kind::NotFound => Kind::NotFound,
                capsa_runtime::Kind::Conflict => Kind::Conflict,
                capsa_runtime::Kind::Permission => Kind::Permission,
                capsa_runtime::Kind::Unsupported => Kind::Unsupported,
                capsa_runtime::Kind::System => Kind::Runtime,
            },
            Error::ExternalRuntime { kind, .. } => *kind,
            Error::Program { errno, .. } => Kind::of_program(*errno),
            Error::Reported(f) => f.kind,
        }
    }

    /// The errno when the container's own program could not be found or
    /// run (see [`Error::Program`]).
    pub fn program_errno(&self) -> Option<i32> {
        match self {
            Error::Program { errno, .. } => Some(*errno),
            Error::Runtime(r) => r.program_errno(),
            Error::Reported(f)
                if matches!(f.kind, Kind::ProgramNotFound | Kind::ProgramCannotRun) =>
            {
                f.errno
            }
            _ => None,
        }
    }

    /// This error as it crosses to another process.
    pub fn failure(&self) -> Failure {
        let (errno, path) = match self {
            Error::Io { path, source, .. } => {
                (source.raw_os_error(), Some(path.display().to_string()))
            }
            Error::Sys { target, errno, .. } => (Some(*errno), Some(target.clone())),
            Error::Reported(f) => return f.clone(),
            _ => (self.program_errno(), None),
        };
        Failure {
            kind: self.kind(),
            errno,
            message: self.to_string(),
            path,
        }
    }
}

/// An errno, whichever syscall crate or std type carries it.
pub(crate) trait RawErrno {
    fn raw(&self) -> i32;
}

impl RawErrno for nix::errno::Errno {
    fn raw(&self) -> i32 {
        *self as i32
    }
}

impl RawErrno for rustix::io::Errno {
    fn raw(&self) -> i32 {
        self.raw_os_error()
    }
}

impl RawErrno for std::io::Error {
    fn raw(&self) -> i32 {
        self.raw_os_error().unwrap_or(libc::EIO)
    }
}

impl RawErrno for i32 {
    fn raw(&self) -> i32 {
        *self
    }
}

impl From<oci_spec::OciSpecError> for Error {
    fn from(e: oci_spec::OciSpecError) -> Error {
        Error::data("the spec", e)
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        Error::Reported(f)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub fn flag(flag: &str, reason: impl std::fmt::Display) -> Error {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_come_from_kinds() {
        let program = |errno| Error::Program {
            message: "exec".into(),
            errno,
        };
        assert_eq!(program(libc::ENOENT).kind().exit_code(), 127);
        assert_eq!(program(libc::EACCES).kind().exit_code(), 126);
        assert_eq!(Error::NotFound("x".into()).kind().exit_code(), 125);
        // Across a process boundary the kind, and so the code, survives.
        let back = Error::from(program(libc::ENOENT).failure());
        assert_eq!(back.kind(), Kind::ProgramNotFound);
        assert_eq!(back.program_errno(), Some(libc::ENOENT));
        assert_eq!(back.to_string(), "exec");
        let e = Error::sys("fork", "monitor", libc::EAGAIN);
        assert_eq!(e.failure().errno, Some(libc::EAGAIN));
        assert_eq!(e.kind(), Kind::System);
    }
}
