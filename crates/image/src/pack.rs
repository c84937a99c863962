//! Tar streams of a container's (or an image's) files, walked by fd from
//! the host side: `capsa cp` out, volume seeds and `capsa export`.
//!
//! Security:
//! - CVE-2018-15664 (the docker cp symlink-exchange race): directories are
//!   walked by fd, children opened `O_PATH|O_NOFOLLOW` relative to their
//!   directory, so nothing the container renames or swaps for a symlink
//!   meanwhile leads the walk out of its root.
//! - Device nodes and FIFOs are never opened (a watchdog opened and closed
//!   by host root reboots the host; a FIFO hangs the command): each entry
//!   is opened `O_PATH`, its type checked, and only a regular file or a
//!   directory is reopened for reading.
//! - A file is read for exactly the size its header announces: a
//!   container growing it meanwhile cannot append tar headers of its own
//!   to the stream.

use crate::error::{invalid, IoContext, Result};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

/// What to do with device nodes, FIFOs and sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Specials {
    /// Left out (`docker cp`).
    Skip,
    /// Device nodes and FIFOs as header-only entries, never opened
    /// (`docker export`); sockets left out.
    Headers,
}

/// Reads exactly `left` bytes: zeros (and `changed`) where the file ends
/// early, nothing past them.
struct Exact<R> {
    inner: R,
    left: u64,
    changed: bool,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                self.changed = true;
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// `fd` (an `O_PATH` handle) reopened for reading when it is a regular
/// file or a directory; `None` for anything else.
pub fn reopen_plain(fd: &OwnedFd) -> Result<Option<OwnedFd>> {
    use rustix::fs::FileType;
    let st = rustix::fs::fstat(fd).at("stat", "an entry")?;
    let flags = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => libc::O_RDONLY | libc::O_DIRECTORY,
        FileType::RegularFile => libc::O_RDONLY,
        _ => return Ok(None),
    };
    capsa_sys::root::reopen(fd, flags)
        .map(Some)
        .map_err(|e| invalid("reopen", e.desc()))
}

fn header_of(st: &rustix::fs::Stat) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h
}

/// Add what `fd` (a regular file or a directory, open for reading) is to
/// the tar as `name`, walking directories by fd.
pub fn add_fd<W: Write>(
    b: &mut tar::Builder<W>,
    fd: &OwnedFd,
    name: &str,
    specials: Specials,
) -> Result<()> {
    add_fd_with(b, fd, name, specials, &|_, _| Keep::Yes)
}

/// What an edit says of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Yes,
    /// Left out (a directory: with everything under it).
    No,
    /// A directory left out whose children are still asked about (a
    /// `!pattern` may take some back).
    Children,
}

/// As [`add_fd`], each entry's header first shown to `edit` (with its
/// name), which may change it (owners, modes, times) or leave it out.
pub fn add_fd_with<W: Write>(
    b: &mut tar::Builder<W>,
    fd: &OwnedFd,
    name: &str,
    specials: Specials,
    edit: &dyn Fn(&str, &mut tar::Header) -> Keep,
) -> Result<()> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    let st = rustix::fs::fstat(fd).at("stat", name)?;
    let mut h = header_of(&st);
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            match edit(name, &mut h) {
                Keep::No => return Ok(()),
                Keep::Yes => b
                    .append_data(&mut h, format!("{name}/"), std::io::empty())
                    .at("archive", name)?,
                Keep::Children => {}
            }
            let mut names = Vec::new();
            for e in rustix::fs::Dir::read_from(fd).at("read directory", name)? {
                let e = e.at("read directory", name)?;
                let n = e.file_name().to_string_lossy().into_owned();
                if n != "." && n != ".." {
                    names.push(n);
                }
            }
            for n in names {
                let child = format!("{name}/{n}");
                let Ok(cst) = rustix::fs::statat(fd, n.as_str(), AtFlags::SYMLINK_NOFOLLOW) else {
                    continue; // gone meanwhile
                };
                match FileType::from_raw_mode(cst.st_mode) {
                    FileType::Symlink => {
                        let target = rustix::fs::readlinkat(fd, n.as_str(), Vec::new())
                            .at("read link", child.as_str())?;
                        let mut lh = header_of(&cst);
                        lh.set_entry_type(tar::EntryType::Symlink);
                        lh.set_mode(0o777);
                        lh.set_size(0);
                        if edit(&child, &mut lh) != Keep::Yes {
                            continue;
                        }
                        b.append_link(&mut lh, &child, target.to_string_lossy().as_ref())
                            .at("archive", child.as_str())?;
                        continue;
                    }
                    t @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo)
                        if specials == Specials::Headers =>
                    {
                        let mut sh = header_of(&cst);
                        sh.set_entry_type(match t {
                            FileType::CharacterDevice => tar::EntryType::Char,
                            FileType::BlockDevice => tar::EntryType::Block,
                            _ => tar::EntryType::Fifo,
                        });
                        sh.set_size(0);
                        let _ = sh.set_device_major(rustix::fs::major(cst.st_rdev));
                        let _ = sh.set_device_minor(rustix::fs::minor(cst.st_rdev));
                        if edit(&child, &mut sh) != Keep::Yes {
                            continue;
                        }
                        b.append_data(&mut sh, &child, std::io::empty())
                            .at("archive", child.as_str())?;
                        continue;
                    }
                    _ => {}
                }
                let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                if let Ok(pfd) = rustix::fs::openat(fd, n.as_str(), flags, Mode::empty()) {
                    if let Some(cfd) = reopen_plain(&pfd)? {
                        add_fd_with(b, &cfd, &child, specials, edit)?;
                    }
                }
            }
        }
        FileType::RegularFile => {
            let size = st.st_size as u64;
            h.set_entry_type(tar::EntryType::Regular);
            if edit(name, &mut h) != Keep::Yes {
                return Ok(());
            }
            h.set_size(size);
            let mut exact = Exact {
                inner: std::fs::File::from(fd.try_clone().at("dup", name)?),
                left: size,
                changed: false,
            };
            b.append_data(&mut h, name, &mut exact)
                .at("archive", name)?;
            let mut one = [0u8; 1];
            if exact.changed || exact.inner.read(&mut one).unwrap_or(0) > 0 {
                return Err(invalid(
                    name,
                    "the file changed size while it was copied; copy it again",
                ));
            }
        }
        // Devices, fifos and sockets at the top are left out.
        _ => {}
    }
    Ok(())
}
