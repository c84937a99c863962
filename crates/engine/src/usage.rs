//! Disk usage of what containers write (their upper layers, volumes), for
//! `system df`.
//!
//! Security: a running container rewrites these trees while they are
//! measured; a directory swapped for a link to `/` must not have the host
//! walked. The walk is by fd: each directory opened `O_NOFOLLOW` beneath
//! its parent's fd, entries looked at without following links, and the
//! depth bounded.

use rustix::fs::{AtFlags, Mode, OFlags};
use std::os::fd::{AsFd, OwnedFd};

/// Deeper than this is not measured.
const DEPTH: usize = 128;

/// Bytes allocated under `path` (blocks, as `du`), its own links not
/// followed; 0 where it cannot be read.
pub fn tree_size(path: &std::path::Path) -> u64 {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => walk(fd, 0),
        Err(_) => 0,
    }
}

fn walk(dir: OwnedFd, depth: usize) -> u64 {
    let Ok(list) = rustix::fs::Dir::read_from(&dir) else {
        return 0;
    };
    let names: Vec<std::ffi::CString> = list
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    let mut total = 0;
    for n in names {
        let Ok(st) = rustix::fs::statat(dir.as_fd(), n.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
        else {
            continue;
        };
        total += st.st_blocks as u64 * 512;
        let is_dir =
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
        if is_dir && depth < DEPTH {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            if let Ok(sub) = rustix::fs::openat(dir.as_fd(), n.as_c_str(), flags, Mode::empty()) {
                total += walk(sub, depth + 1);
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_link_to_elsewhere_is_not_walked() {
        let d = std::env::temp_dir().join(format!("capsa-usage-{}", std::process::id()));
        std::fs::create_dir_all(d.join("a")).unwrap();
        std::fs::write(d.join("a/f"), vec![1u8; 64 * 1024]).unwrap();
        std::os::unix::fs::symlink("/usr", d.join("host")).unwrap();
        let n = super::tree_size(&d);
        assert!((64 * 1024..1 << 20).contains(&n), "{n}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
