//! A container root, opened once: the only way capsa touches a path inside
//! a container's (or an image's) root filesystem from the host side.
//!
//! Security: CVE-2021-30465, CVE-2025-52565 and the whole class of "a
//! symlink in the rootfs leads the runtime out of it". Every operation
//! resolves its path with `openat2(RESOLVE_IN_ROOT)` from the root's fd and
//! then acts on an fd (`mknodat`, `symlinkat`, a mount onto
//! `/proc/self/fd/N`): an absolute or `..`-laden link in the image stops at
//! the root, and no component is ever resolved by the host's own `/`. No
//! code joins a root's path with a path inside it and hands the result to
//! a syscall (`scripts/check-in-root.sh` keeps it so).

use crate::resolve::{fd_path, open_in_root, Symlinks};
use crate::Result;
use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag};
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Make {
    Nothing,
    Dirs,
    File,
}

/// An open container root (an `O_PATH` directory fd).
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
}

/// What [`Root::read`] refuses to read: anything but a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    Other,
}

fn kind_of(mode: u32) -> FileKind {
    match mode & libc::S_IFMT {
        libc::S_IFREG => FileKind::Regular,
        libc::S_IFDIR => FileKind::Directory,
        libc::S_IFLNK => FileKind::Symlink,
        _ => FileKind::Other,
    }
}

fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

impl Root {
    /// Open the directory at `path` (a host path chosen by capsa, never one
    /// read from inside a container) as a root.
    pub fn open(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd: crate::fd::own_raw(fd),
        })
    }

    /// A root from a directory fd already open (such as a detached tree
    /// from `open_tree`).
    pub fn from_fd(fd: OwnedFd) -> Root {
        Root { fd }
    }

    /// The root's fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `openat2` of `path` inside the root.
    pub fn open_at(&self, path: &Path, flags: libc::c_int, links: Symlinks) -> Result<OwnedFd> {
        open_in_root(self.fd.as_fd(), path, flags, 0, links)
    }

    /// `O_PATH` fd of `path` inside the root.
    pub fn path_fd(&self, path: &Path, links: Symlinks) -> Result<OwnedFd> {
        self.open_at(path, libc::O_PATH, links)
    }

    /// The parent directory of `path` (made when missing) and the last
    /// component's name. `..` as the last component is refused.
    pub fn parent_of(&self, path: &Path) -> Result<(OwnedFd, OsString)> {
        let name = match path.file_name() {
            Some(n) => n.to_os_string(),
            None => return Err(Errno::EINVAL),
        };
        let parent = path.parent().unwrap_or(Path::new("/"));
        Ok((self.mkdir_all(parent)?, name))
    }

    /// Make `path` and every missing directory above it, inside the root;
    /// returns an `O_PATH` fd of it. Each component is looked at without
    /// following; a symlink is replaced by its target read as if the root
    /// were `/` (so `/evil -> /etc` means the root's `/etc`, and the target
    /// of a dangling link is made inside the root).
    pub fn mkdir_all(&self, path: &Path) -> Result<OwnedFd> {
        self.walk(path, Make::Dirs)?.0.ok_or(Errno::ENOENT)
    }

    /// Where `path` leads inside the root, links followed as the kernel
    /// would inside it (a missing tail is kept as written): to check a
    /// destination by what it is, not by how it is spelled.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf> {
        self.walk(path, Make::Nothing).map(|(_, p)| p)
    }

    /// As [`Root::mkdir_all`], with the last component made an empty
    /// regular file when missing (a mount point for a file).
    pub fn create_file(&self, path: &Path) -> Result<OwnedFd> {
        self.walk(path, Make::File)?.0.ok_or(Errno::ENOENT)
    }

    /// Walk `path` inside the root, making what `make` says; returns the
    /// `O_PATH` fd of the end (unless nothing is made) and where it is.
    fn walk(&self, path: &Path, make: Make) -> Result<(Option<OwnedFd>, PathBuf)> {
        let file = make == Make::File;
        use nix::fcntl::AtFlags;
        use std::collections::VecDeque;
        let mut pending: VecDeque<OsString> = components(path).into();
        let mut cur = PathBuf::from("/");
        let mut hops = 0;
        while let Some(c) = pending.pop_front() {
            if c == ".." {
                cur.pop();
                continue;
            }
            let parent = self.open_at(&cur, libc::O_PATH | libc::O_DIRECTORY, Symlinks::InRoot)?;
            let next = cur.join(&c);
            match nix::sys::stat::fstatat(
                Some(parent.as_raw_fd()),
                c.as_os_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                    hops += 1;
                    if hops > 40 {
                        return Err(Errno::ELOOP);
                    }
                    let target = PathBuf::from(nix::fcntl::readlinkat(
                        Some(parent.as_raw_fd()),
                        c.as_os_str(),
                    )?);
                    if target.is_absolute() {
                        cur = PathBuf::from("/");
                    }
                    for t in components(&target).into_iter().rev() {
                        pending.push_front(t);
                    }
                }
                Ok(_) => cur = next,
                Err(Errno::ENOENT) if make == Make::Nothing => {
                    cur = next;
                    for rest in pending.drain(..) {
                        if rest == ".." {
                            cur.pop();
                        } else {
                            cur.push(rest);
                        }
                    }
                    return Ok((None, cur));
                }
                Err(Errno::ENOENT) => {
                    if pending.is_empty() && file {
                        let fd = nix::fcntl::openat(
                            Some(parent.as_raw_fd()),
                            c.as_os_str(),
                            nix::fcntl::OFlag::O_CREAT
                                | nix::fcntl::OFlag::O_WRONLY
                                | nix::fcntl::OFlag::O_NOFOLLOW
                                | nix::fcntl::OFlag::O_CLOEXEC,
                            Mode::from_bits_truncate(0o644),
                        )?;
                        drop(crate::fd::own_raw(fd));
                    } else {
                        match nix::sys::stat::mkdirat(
                            Some(parent.as_raw_fd()),
                            c.as_os_str(),
                            Mode::from_bits_truncate(0o755),
                        ) {
                            Ok(()) | Err(Errno::EEXIST) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    cur = next;
                }
                Err(e) => return Err(e),
            }
        }
        if make == Make::Nothing {
            return Ok((None, cur));
        }
        Ok((Some(self.path_fd(&cur, Symlinks::InRoot)?), cur))
    }

    /// `mknodat` of a device node (or FIFO) at `path`, with exactly `mode`
    /// (the umask does not apply) and owned by `uid`:`gid`. An existing
    /// entry of that name is an error (EEXIST), never followed.
    pub fn mknod(
        &self,
        path: &Path,
        kind: SFlag,
        mode: u32,
        dev: u64,
        uid: u32,
        gid: u32,
    ) -> Result<()> {
        let (parent, name) = self.parent_of(path)?;
        let old = nix::sys::stat::umask(Mode::empty());
        let made = nix::sys::stat::mknodat(
            Some(parent.as_raw_fd()),
            name.as_os_str(),
            kind,
            Mode::from_bits_truncate(mode & 0o7777),
            dev,
        );
        nix::sys::stat::umask(old);
        made?;
        nix::unistd::fchownat(
            Some(parent.as_raw_fd()),
            name.as_os_str(),
            Some(uid.into()),
            Some(gid.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
    }

    /// `symlinkat(target, path)`; an existing entry is left as it is when
    /// `replace` is false, removed first (never followed) when true.
    pub fn symlink(&self, target: &str, path: &Path, replace: bool) -> Result<()> {
        let (parent, name) = self.parent_of(path)?;
        if replace {
            match nix::unistd::unlinkat(
                Some(parent.as_raw_fd()),
                name.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            ) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        match nix::unistd::symlinkat(target, Some(parent.as_raw_fd()), name.as_os_str()) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Read the regular file at `path` (at most `limit` bytes). Anything
    /// else (a FIFO that would hang the host, a device host root would
    /// open, a directory) is refused with its kind.
    pub fn read(&self, path: &Path, limit: u64) -> std::result::Result<Vec<u8>, ReadError> {
        use std::io::Read;
        let fd = self
            .path_fd(path, Symlinks::InRoot)
            .map_err(ReadError::Sys)?;
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(ReadError::Sys)?;
        let kind = kind_of(st.st_mode);
        if kind != FileKind::Regular {
            return Err(ReadError::NotRegular(kind));
        }
        let file = reopen(&fd, libc::O_RDONLY).map_err(ReadError::Sys)?;
        let mut out = Vec::new();
        std::fs::File::from(file)
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| ReadError::Sys(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
        Ok(out)
    }
}

/// Why [`Root::read`] read nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    Sys(Errno),
    NotRegular(FileKind),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Sys(e) => write!(f, "{}", e.desc()),
            ReadError::NotRegular(k) => write!(f, "not a regular file ({k:?})"),
        }
    }
}

/// Open the file an `O_PATH` fd refers to, with `flags`, through its
/// `/proc/self/fd` link (the kernel's way to upgrade an `O_PATH` fd): the
/// same inode, whatever happened to its path since.
pub fn reopen(fd: &OwnedFd, flags: libc::c_int) -> Result<OwnedFd> {
    let p = fd_path(fd.as_raw_fd());
    let raw = nix::fcntl::open(
        p.as_str(),
        nix::fcntl::OFlag::from_bits_truncate(flags | libc::O_CLOEXEC | libc::O_NOCTTY),
        Mode::empty(),
    )?;
    Ok(crate::fd::own_raw(raw))
}

/// mount(2) onto an fd (through its `/proc/self/fd` path): the target was
/// resolved inside the root, and the mount lands exactly there.
pub fn mount_on(
    source: Option<&str>,
    target: &OwnedFd,
    fstype: Option<&str>,
    flags: nix::mount::MsFlags,
    data: Option<&str>,
) -> Result<()> {
    nix::mount::mount(
        source,
        fd_path(target.as_raw_fd()).as_str(),
        fstype,
        flags,
        data,
    )
}

/// Bind the file or directory `source` (an fd already resolved and
/// checked by the caller) onto `target`.
pub fn bind_fd(source: &OwnedFd, target: &OwnedFd, recursive: bool) -> Result<()> {
    let mut f = nix::mount::MsFlags::MS_BIND;
    if recursive {
        f |= nix::mount::MsFlags::MS_REC;
    }
    nix::mount::mount(
        Some(fd_path(source.as_raw_fd()).as_str()),
        fd_path(target.as_raw_fd()).as_str(),
        None::<&str>,
        f,
        None::<&str>,
    )
}
