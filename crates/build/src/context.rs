//! The build's context and Containerfile, read through one handle.

use crate::{containerfile, invalid, Options, Result};
use capsa_sys::root::Root;

/// Read a small file of the context through its handle: a regular file
/// only (a FIFO would hang the build, a device be opened by root), links
/// scoped to the context, at most `limit` bytes.
///
/// Security: "trust nothing that came out of" a context someone else may
/// have written: `Containerfile -> /etc/shadow` reads the context's own
/// `etc/shadow` (or nothing), never the host's.
pub(crate) fn read_in(ctx: &Root, name: &str, limit: usize) -> Result<Option<String>> {
    use capsa_sys::root::ReadError;
    match ctx.read(std::path::Path::new(name), limit as u64 + 1) {
        Ok(b) if b.len() > limit => Err(invalid(name, format!("larger than {limit} bytes"))),
        Ok(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| invalid(name, "not UTF-8 text")),
        Err(ReadError::Sys(capsa_sys::Errno::ENOENT)) => Ok(None),
        Err(e) => Err(invalid(name, e)),
    }
}

/// The Containerfile, as `-f` names it or podman finds it in the context,
/// and the name errors give it.
pub(crate) fn containerfile(
    opts: &Options,
    given: &std::path::Path,
    context: &std::path::Path,
    ctx: &Root,
) -> Result<(String, String)> {
    let limit = containerfile::MAX_SIZE;
    let Some(f) = &opts.file else {
        for n in ["Containerfile", "Dockerfile"] {
            if let Some(t) = read_in(ctx, n, limit)? {
                return Ok((t, n.to_string()));
            }
        }
        return Err(invalid(
            context.display().to_string(),
            "no Containerfile or Dockerfile in the context (or give -f)",
        ));
    };
    let shown = f.display().to_string();
    // Where -f names, its links not followed: a file in the context (by
    // the context's path as given or as resolved) is read through the
    // context's handle, whatever it links to.
    let lexical = |p: &std::path::Path| {
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        format!(
            "/{}",
            crate::ignore::clean(&abs.to_string_lossy()).join("/")
        )
    };
    let path = lexical(f);
    for base in [lexical(given), context.display().to_string()] {
        if let Some(rel) = std::path::Path::new(&path)
            .strip_prefix(&base)
            .ok()
            .filter(|r| !r.as_os_str().is_empty())
        {
            let rel = rel.display().to_string();
            return read_in(ctx, &rel, limit)?
                .map(|t| (t, rel.clone()))
                .ok_or_else(|| invalid(&shown, "not found"));
        }
    }
    // Outside the context: the user's own path; a link in its last part
    // stays in its directory.
    let p = std::path::Path::new(&path);
    let dir = p.parent().unwrap_or(std::path::Path::new("/"));
    let root = Root::open(dir).map_err(|e| invalid(&shown, e.desc()))?;
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    read_in(&root, &name, limit)?
        .map(|t| (t, shown.clone()))
        .ok_or_else(|| invalid(&shown, "not found"))
}

/// The context directory, opened once: every later look into it goes
/// through this handle, so renaming the directory (or putting a link in
/// its place) mid-build changes nothing.
pub(crate) fn open_context(context: &std::path::Path) -> Result<Root> {
    let fd = rustix::fs::open(
        context,
        rustix::fs::OFlags::PATH
            | rustix::fs::OFlags::DIRECTORY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| {
        invalid(
            context.display().to_string(),
            format!("the context must be a directory: {e}"),
        )
    })?;
    Ok(Root::from_fd(fd))
}
