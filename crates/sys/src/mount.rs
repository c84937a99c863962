//! The new mount API pieces capsa needs: detached clones of a tree,
//! id-mapped attributes, and attaching a detached tree.

use crate::Result;
use nix::errno::Errno;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `open_tree(path, OPEN_TREE_CLONE)`: a detached bind mount of `path`
/// (with its submounts when `recursive`).
pub fn clone_tree(path: &std::path::Path, recursive: bool) -> Result<OwnedFd> {
    let c =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: a valid C string and flags; the returned fd is ours.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    let fd = Errno::result(fd)? as RawFd;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;

/// `mount_setattr` on a detached tree: set the attributes in `attr_set`
/// (with the user namespace for an id-mapping), on submounts too when
/// `recursive`.
fn set_attr(tree: &OwnedFd, attr_set: u64, userns: Option<RawFd>, recursive: bool) -> Result<()> {
    mount_setattr(tree.as_raw_fd(), attr_set, 0, userns, recursive)
}

fn mount_setattr(
    fd: RawFd,
    attr_set: u64,
    attr_clr: u64,
    userns: Option<RawFd>,
    recursive: bool,
) -> Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: userns.map(|fd| fd as u64).unwrap_or(0),
    };
    setattr_raw(fd, &attr, recursive)
}

/// Change the propagation of the mount at `fd` (a detached tree or an
/// attached mount's root) to `propagation` (`MS_SLAVE`, `MS_PRIVATE`,
/// `MS_SHARED` or `MS_UNBINDABLE`), on submounts too when `recursive`.
/// Unlike mount(2), this works on a detached tree.
pub fn set_propagation(fd: RawFd, propagation: u64, recursive: bool) -> Result<()> {
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation,
        userns_fd: 0,
    };
    setattr_raw(fd, &attr, recursive)
}

fn setattr_raw(fd: RawFd, attr: &MountAttr, recursive: bool) -> Result<()> {
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 };
    let empty = c"";
    // SAFETY: `attr` is a valid mount_attr of the size passed; the empty
    // path with AT_EMPTY_PATH names the fd itself.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            empty.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}

/// Make a detached tree read-only.
pub fn set_readonly(tree: &OwnedFd) -> Result<()> {
    set_attr(tree, MOUNT_ATTR_RDONLY, None, false)
}

/// `mount_setattr` on the mount at `fd` (a detached tree or an attached
/// mount's root): set `set`, clear `clear` (`ATTR_*`), on submounts too
/// when `recursive`.
pub fn set_attrs(fd: RawFd, set: u64, clear: u64, recursive: bool) -> Result<()> {
    mount_setattr(fd, set, clear, None, recursive)
}

/// Make the mount at `fd` and every mount under it read-only.
pub fn set_readonly_recursive(fd: &OwnedFd) -> Result<()> {
    set_attr(fd, MOUNT_ATTR_RDONLY, None, true)
}

/// Make a detached tree id-mapped by the user namespace `userns`.
pub fn set_idmap(tree: &OwnedFd, userns: RawFd, recursive: bool) -> Result<()> {
    set_attr(tree, MOUNT_ATTR_IDMAP, Some(userns), recursive)
}

/// Attach the detached tree `from` onto the directory (or file) `to`.
pub fn attach(from: RawFd, to: RawFd) -> Result<()> {
    let empty = c"";
    // SAFETY: both fds are valid for the call; empty paths with the
    // EMPTY_PATH flags name the fds themselves.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            empty.as_ptr(),
            to,
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

/// mount(2) with relative paths in `data` resolved from `dir`: a child
/// process changes directory and mounts, so the caller's working directory
/// (shared by its threads) never moves. The mount lands in the caller's
/// mount namespace. Used for overlay options that only fit a page when
/// layers are named relative to the store (as docker's overlay2 does).
pub fn mount_from_dir(
    dir: &std::ffi::CStr,
    source: &std::ffi::CStr,
    target: &std::ffi::CStr,
    fstype: &std::ffi::CStr,
    data: &std::ffi::CStr,
) -> Result<()> {
    // SAFETY: the child only makes async-signal-safe syscalls (chdir,
    // mount, _exit) on memory prepared before the fork, so forking from a
    // multi-threaded process is sound.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Errno::last()),
        0 => {
            // SAFETY: valid C strings; _exit never returns.
            unsafe {
                if libc::chdir(dir.as_ptr()) != 0 {
                    libc::_exit(*libc::__errno_location());
                }
                let r = libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    fstype.as_ptr(),
                    0,
                    data.as_ptr() as *const libc::c_void,
                );
                libc::_exit(if r == 0 { 0 } else { *libc::__errno_location() })
            }
        }
        pid => {
            let (status, _) = crate::process::wait4(nix::unistd::Pid::from_raw(pid))?;
            match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
                Some(0) => Ok(()),
                Some(e) => Err(Errno::from_raw(e)),
                None => Err(Errno::EINTR),
            }
        }
    }
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
/// `MOUNT_ATTR_*` for [`fsmount`].
pub const ATTR_RDONLY: u64 = 0x1;
pub const ATTR_NOSUID: u64 = 0x2;
pub const ATTR_NODEV: u64 = 0x4;
pub const ATTR_NOEXEC: u64 = 0x8;
pub const ATTR_ATIME_MASK: u64 = 0x70;
pub const ATTR_RELATIME: u64 = 0x0;
pub const ATTR_NOATIME: u64 = 0x10;
pub const ATTR_STRICTATIME: u64 = 0x20;
pub const ATTR_NODIRATIME: u64 = 0x80;
pub const ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// A filesystem context of the new mount API (`fsopen`): configured with
/// [`FsContext::set`], turned into a detached mount with
/// [`FsContext::mount`]. Nothing is attached anywhere, so nothing is left
/// behind when the fds close.
pub struct FsContext(OwnedFd);

impl FsContext {
    /// `fsopen(fstype, FSOPEN_CLOEXEC)`.
    pub fn open(fstype: &std::ffi::CStr) -> Result<FsContext> {
        // SAFETY: a valid C string and flags; the returned fd is ours.
        let fd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
        let fd = Errno::result(fd)? as RawFd;
        // SAFETY: the kernel returned a new fd that nothing else owns.
        Ok(FsContext(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// `fsconfig(FSCONFIG_SET_STRING, key, value)`.
    pub fn set(&self, key: &std::ffi::CStr, value: &std::ffi::CStr) -> Result<()> {
        // SAFETY: valid C strings and an fd we own; aux is unused (0).
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.0.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        };
        Errno::result(r).map(drop)
    }

    /// `fsconfig(FSCONFIG_SET_FLAG, key)`: an option without a value.
    pub fn set_flag(&self, key: &std::ffi::CStr) -> Result<()> {
        // SAFETY: a valid C string and an fd we own; value and aux unused.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.0.as_raw_fd(),
                0, // FSCONFIG_SET_FLAG
                key.as_ptr(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        };
        Errno::result(r).map(drop)
    }

    /// Create the superblock and return a detached mount of it with the
    /// `ATTR_*` attributes.
    pub fn mount(&self, attrs: u64) -> Result<OwnedFd> {
        // SAFETY: the command takes no key, value or aux.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.0.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        };
        Errno::result(r)?;
        // SAFETY: an fd we own and integer flags; the returned fd is ours.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                self.0.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                attrs as libc::c_uint,
            )
        };
        let fd = Errno::result(fd)? as RawFd;
        // SAFETY: the kernel returned a new fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// A path as `/proc/*/mountinfo` writes it, unescaped: it escapes space,
/// tab, newline and backslash as `\ooo`.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
