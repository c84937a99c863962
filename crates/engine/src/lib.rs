//! The capsa engine: containers as records over the image store and the
//! runtime library. An image's config and the flags of `capsa run` become
//! an OCI spec; a container's root is an overlay snapshot of its image; a
//! monitor process per container (no daemon) is its parent, keeps its
//! logs and exit code, and serves `attach`.
//!
//! ```text
//! <root>/containers/<id>/   container.json, config.json (the bundle),
//!                           upper/ work/ rootfs/ (the snapshot), ctr.log
//!                           userns (the id range of --userns auto),
//!                           net-<network>.json (its address there)
//! <root>/networks/<name>.json
//! <root>/volumes/<name>/_data
//! <run>/runtime/            the runtime library's state
//! <run>/files/<id>/         hostname, hosts, resolv.conf (bind-mounted)
//! <root>/trash/             removed containers' directories, being deleted
//! <run>/sock/<id12>.sock    each monitor's attach socket
//! <run>/locks/              names.lock, ctr-<id>.lock
//! ```

// Library code returns errors; tests may unwrap.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod client;
pub mod container;
pub mod copy;
pub mod create;
pub mod error;
pub mod events;
pub mod exec;
pub mod filter;
pub mod flags;
pub mod health;
pub mod images;
pub mod inspect;
pub mod joins;
pub mod logs;
pub mod manage;
pub mod monitor;
pub mod network;
pub mod options;
pub mod protocol;
pub mod restart;
pub mod revive;
pub mod rootless;
pub mod runtime;
pub mod spec;
pub mod stats;
pub mod userns;
pub mod volume;

pub use container::{Container, Status};
pub use error::{Error, Result};
pub use options::RunOptions;

use std::path::{Path, PathBuf};

/// One engine: a store root and a run directory.
#[derive(Debug, Clone)]
pub struct Engine {
    pub root: PathBuf,
    pub run: PathBuf,
    pub images: capsa_image::Store,
}

/// Make `d` (and its missing parents) with mode 0700 when it is missing.
pub(crate) fn private_dir(d: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if d.exists() {
        return Ok(());
    }
    if let Some(p) = d.parent() {
        std::fs::create_dir_all(p).map_err(|e| Error::Io {
            op: "create",
            path: p.to_path_buf(),
            source: e,
        })?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(d) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => {
            return Err(Error::Io {
                op: "create",
                path: d.to_path_buf(),
                source: e,
            })
        }
    }
    // The umask may have taken bits away; never added any.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::Io {
        op: "chmod",
        path: d.to_path_buf(),
        source: e,
    })
}

impl Engine {
    /// Open (creating as needed) the engine's directories.
    pub fn open(root: impl Into<PathBuf>, run: impl Into<PathBuf>) -> Result<Engine> {
        let (root, run) = (root.into(), run.into());
        // Security: the store holds every container's config (with its
        // `-e` secrets) and the run directory its sockets: made 0700, so
        // that no other user may list or traverse them. (Containers in a
        // user namespace never walk these paths: the runtime hands them
        // their rootfs as the working directory, and the init clones bind
        // sources before it takes the namespace's ids.) Only directories
        // made here: one the user named that exists already (`--run /run`)
        // keeps its mode.
        for d in [&root, &run] {
            private_dir(d)?;
        }
        let images = capsa_image::Store::open(&root)?;
        // Ours by construction, wherever the user put the store: 0700
        // always, so that a store an older capsa opened (0711 for
        // `--userns auto`) is closed again where the secrets are.
        for d in [
            root.join("containers"),
            root.join("volumes"),
            root.join("trash"),
            run.join("locks"),
            run.join("sock"),
            run.join("runtime"),
            run.join("files"),
        ] {
            std::fs::create_dir_all(&d).map_err(|e| Error::Io {
                op: "create",
                path: d.clone(),
                source: e,
            })?;
            if nix::unistd::geteuid().is_root() {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).map_err(
                    |e| Error::Io {
                        op: "chmod",
                        path: d.clone(),
                        source: e,
                    },
                )?;
            }
        }
        Ok(Engine { root, run, images })
    }

    /// The runtime library's state store.
    pub fn runtime_store(&self) -> capsa_runtime::Store {
        capsa_runtime::Store::new(self.run.join("runtime"))
    }

    /// A container's attach socket.
    pub fn socket(&self, c: &Container) -> PathBuf {
        self.run.join("sock").join(format!("{}.sock", c.short_id()))
    }

    /// `<run>/files/<id>`: the container's hostname, hosts and
    /// resolv.conf (made if missing).
    pub fn files_dir(&self, id: &str) -> Result<PathBuf> {
        let d = self.run.join("files").join(id);
        std::fs::create_dir_all(&d).map_err(|e| Error::Io {
            op: "create",
            path: d.clone(),
            source: e,
        })?;
        Ok(d)
    }

    /// Where removed containers' directories go to be deleted after the
    /// removal is visible (one rename instead of a tree walk on the way).
    pub fn trash(&self) -> PathBuf {
        self.root.join("trash")
    }

    /// `<root>/volumes`.
    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }
}
