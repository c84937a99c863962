//! Files written whole: the one atomic-write helper of the workspace.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// Whether a write must survive a crash of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync of the file and its directory: records and stores that
    /// outlive a reboot.
    Synced,
    /// No fsync: state that describes processes, which a reboot ends
    /// anyway (the runtime's, kept on tmpfs in /run), where a sync would
    /// cost the start path milliseconds for nothing.
    Volatile,
}

/// Write `bytes` to `path` so that readers see the old content or the
/// new, never half of one, and (`Synced`) a crash after the return keeps
/// the new: a temp file beside it (created new, `mode`), fsync, rename
/// over `path`, fsync of the directory. The temp file is removed on
/// failure.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durability: Durability,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        if durability == Durability::Synced {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durability == Durability::Synced {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Wait for `flock` on `fd`, shared or exclusive; it is released when
/// the file is closed. The one lock helper of the workspace.
pub fn lock(fd: impl std::os::fd::AsFd, exclusive: bool) -> std::io::Result<()> {
    let how = if exclusive {
        nix::fcntl::FlockArg::LockExclusive
    } else {
        nix::fcntl::FlockArg::LockShared
    };
    loop {
        #[allow(deprecated)] // nix's Flock type owns the fd; we borrow it.
        match nix::fcntl::flock(fd.as_fd().as_raw_fd(), how) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map_err(std::io::Error::from),
        }
    }
}

/// Open (creating, mode 0600) the lock file at `path` and wait for its
/// lock; held until the returned file drops.
pub fn lock_path(path: &Path, exclusive: bool) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)?;
    lock(&f, exclusive)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_with_the_mode_asked_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("capsa-sys-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("state.json");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, b"new", 0o600, Durability::Synced).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("state.json")]);
        // Into a directory that does not exist: an error, nothing made.
        assert!(write_atomic(&dir.join("no/such"), b"x", 0o600, Durability::Volatile).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
