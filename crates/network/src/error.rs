//! The network crate's errors: each names what was being done and to what.

/// A networking failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {target}: {source}")]
    Io {
        op: &'static str,
        target: String,
        source: std::io::Error,
    },
    #[error("netlink: {what}: {source}")]
    Netlink {
        what: String,
        source: std::io::Error,
    },
    #[error("nftables: {0}")]
    Nft(String),
    /// Bad input: a subnet, an address, a port mapping.
    #[error("{field}: {msg}")]
    Invalid { field: String, msg: String },
    /// Something is taken: an address range, a port, a name.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(op: &'static str, target: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            target: target.into(),
            source,
        }
    }
    pub(crate) fn sys(op: &'static str, target: impl Into<String>, e: capsa_sys::Errno) -> Error {
        Error::io(op, target, std::io::Error::from_raw_os_error(e as i32))
    }
    pub(crate) fn invalid(field: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.into(),
            msg: msg.into(),
        }
    }
}
