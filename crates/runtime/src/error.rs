//! Runtime errors: each knows its kind (so the command line can answer as
//! runc does) and carries the operation, the target and the errno.

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

/// What kind of failure, for exit codes and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    InvalidSpec,
    NotFound,
    Conflict,
    Permission,
    Unsupported,
    System,
}

/// A failure inside the container's init or exec'd process before it ran
/// the user's program, sent back to the runtime over the channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChildError {
    /// Which part of the set-up (`rootfs`, `process`, `hooks`, ...).
    pub stage: String,
    /// The operation (`mount`, `pivot_root`, `execve`, ...).
    pub op: String,
    /// What it was applied to (a path, a capability, a key).
    pub target: String,
    /// The errno, 0 when the failure was not a syscall's.
    pub errno: i32,
    /// Extra words, when errno alone does not say it.
    pub detail: String,
}

impl std::fmt::Display for ChildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} {}", self.stage, self.op, self.target)?;
        // A program not found or not executable: the words (as runc's)
        // already say what the errno would.
        let worded = self.op == "exec" && !self.detail.is_empty();
        if self.errno != 0 && !worded {
            write!(f, ": {}", Errno::from_raw(self.errno).desc())?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl ChildError {
    pub(crate) fn sys(stage: &str, op: &str, target: impl std::fmt::Display, e: Errno) -> Self {
        ChildError {
            stage: stage.into(),
            op: op.into(),
            target: target.to_string(),
            errno: e as i32,
            detail: String::new(),
        }
    }
    pub(crate) fn msg(
        stage: &str,
        op: &str,
        target: impl std::fmt::Display,
        detail: impl Into<String>,
    ) -> Self {
        ChildError {
            stage: stage.into(),
            op: op.into(),
            target: target.to_string(),
            errno: 0,
            detail: detail.into(),
        }
    }
}

/// Errors of the runtime library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] capsa_spec::SpecError),
    #[error(transparent)]
    Cgroup(#[from] capsa_cgroups::CgroupError),
    #[error("container with id exists: {0}")]
    Exists(String),
    #[error("container does not exist: {0}")]
    NotFound(String),
    #[error("invalid container id {id:?}: {why}")]
    InvalidId { id: String, why: &'static str },
    #[error("{0}")]
    State(String),
    #[error("{op} {target}: {errno}")]
    Sys {
        op: &'static str,
        target: String,
        errno: Errno,
    },
    #[error("container init failed: {0}")]
    Child(ChildError),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("hook {stage}[{index}] {path}: {why}")]
    Hook {
        stage: &'static str,
        index: usize,
        path: String,
        why: String,
    },
}

impl Error {
    /// The errno (ENOENT, EACCES, ...) when what failed is finding or
    /// executing the container's own program, as opposed to setting the
    /// container up: engines answer the first with 127 or 126.
    pub fn program_errno(&self) -> Option<i32> {
        match self {
            Error::Child(c)
                if c.stage == "process" && matches!(c.op.as_str(), "exec" | "execve") =>
            {
                Some(c.errno).filter(|e| *e != 0)
            }
            _ => None,
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> Kind {
        match self {
            Error::Spec(_) | Error::InvalidId { .. } | Error::Invalid(_) => Kind::InvalidSpec,
            Error::NotFound(_) => Kind::NotFound,
            Error::Exists(_) | Error::State(_) => Kind::Conflict,
            Error::Unsupported(_) => Kind::Unsupported,
            Error::Cgroup(capsa_cgroups::CgroupError::Unsupported { .. }) => Kind::Unsupported,
            Error::Sys {
                errno: Errno::EPERM | Errno::EACCES,
                ..
            } => Kind::Permission,
            Error::Child(c) if c.errno == libc::EPERM || c.errno == libc::EACCES => {
                Kind::Permission
            }
            _ => Kind::System,
        }
    }

    pub(crate) fn sys(op: &'static str, target: impl std::fmt::Display, errno: Errno) -> Self {
        Error::Sys {
            op,
            target: target.to_string(),
            errno,
        }
    }

    pub(crate) fn io(op: &'static str, target: impl std::fmt::Display, e: std::io::Error) -> Self {
        Error::Sys {
            op,
            target: target.to_string(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// `e` and its causes as one line, each cause once: an error whose message
/// already quotes its source (as ours do, "open /x: No such file") does
/// not have it repeated.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod describe_tests {
    use super::describe;

    /// "write /x: <source>", with the source kept as the cause too.
    #[derive(Debug)]
    struct Quoting(std::io::Error);
    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "write /x: {}", self.0)
        }
    }
    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_quoted_is_not_repeated() {
        let e = Quoting(std::io::Error::from_raw_os_error(libc::ENOSPC));
        let text = describe(&e);
        assert_eq!(text.matches("No space left on device").count(), 1, "{text}");
        // A cause the message does not quote is added.
        let outer = std::io::Error::other(Quoting(std::io::Error::other("disk gone")));
        assert_eq!(describe(&outer), "write /x: disk gone");
    }
}
