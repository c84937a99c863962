//! `--pid`, `--ipc` and `--uts`: a namespace of the container's own, the
//! host's, or another container's.

use super::FromFlag;
use crate::error::{flag, Result};

/// Which flag: the const parameter of [`Ns`].
pub const PID: u8 = 0;
pub const IPC: u8 = 1;
pub const UTS: u8 = 2;

const NAMES: [&str; 3] = ["--pid", "--ipc", "--uts"];

/// What a namespace flag asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsMode {
    /// A new one (the default; `private`, and `shareable` for `--ipc`).
    Private,
    Host,
    /// `container:NAME`: that running container's.
    Container(String),
    /// `--ipc none`: a new one with no /dev/shm.
    NoShm,
}

/// The value of `--pid` (K = [`PID`]), `--ipc` or `--uts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ns<const K: u8>(pub NsMode);

impl<const K: u8> FromFlag for Ns<K> {
    fn from_flag(text: &str) -> Result<Self> {
        let name = NAMES[K as usize];
        Ok(Ns(match text {
            "" | "private" => NsMode::Private,
            "shareable" if K == IPC => NsMode::Private,
            "none" if K == IPC => NsMode::NoShm,
            "host" => NsMode::Host,
            t => match t.strip_prefix("container:") {
                Some(c) if !c.is_empty() => NsMode::Container(c.to_string()),
                _ => {
                    return Err(flag(
                        name,
                        format!(
                            "{text:?}: host, private or container:NAME{}",
                            if K == IPC { ", shareable or none" } else { "" }
                        ),
                    ))
                }
            },
        }))
    }
}

impl<const K: u8> Ns<K> {
    pub fn flag(&self) -> &'static str {
        NAMES[K as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_docker_writes_them() {
        assert_eq!(Ns::<PID>::from_flag("host").unwrap().0, NsMode::Host);
        assert_eq!(
            Ns::<UTS>::from_flag("container:web").unwrap().0,
            NsMode::Container("web".into())
        );
        assert_eq!(Ns::<IPC>::from_flag("none").unwrap().0, NsMode::NoShm);
        assert_eq!(
            Ns::<IPC>::from_flag("shareable").unwrap().0,
            NsMode::Private
        );
        for bad in ["none", "container:", "sometimes"] {
            let e = Ns::<PID>::from_flag(bad).unwrap_err().to_string();
            assert!(e.starts_with("--pid"), "{bad}: {e}");
        }
    }
}
