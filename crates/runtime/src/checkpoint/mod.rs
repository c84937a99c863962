//! `checkpoint` and `restore`: a running container's process tree saved
//! to image files by CRIU, and a new container made from them (runc's
//! commands and flags). See `criu` for the RPC.
//!
//! What CRIU cannot see for itself is told as external mounts: each bind
//! mount, each masked file (a bind of /dev/null), each device node, and on
//! cgroup v1 without a cgroup namespace each hierarchy's bind. A dump
//! names them by their mount point; a restore maps each name to what it is
//! on this host now.

mod dump;
mod restore;

pub use dump::checkpoint;
pub use restore::{restore, Restored};

use crate::criu::{Opts, ReqType, Swrk};
use crate::error::{Error, Result};
use crate::lifecycle::status_of;
use crate::state::{self, ContainerState, Status, Store};
use capsa_cgroups::{Cgroup, Hierarchy};
use capsa_spec::Plan;
use capsa_sys::root::Root;
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The stdio of the init at dump time, for a restore to reconnect pipes.
const DESCRIPTORS: &str = "descriptors.json";

/// Flags `checkpoint` and `restore` share (runc's).
#[derive(Debug, Clone, Default)]
pub struct CriuFlags {
    /// The CRIU binary (a name is looked up in `PATH`).
    pub criu: PathBuf,
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    /// `soft`, `full`, `strict` or `ignore`.
    pub manage_cgroups_mode: Option<String>,
    /// Namespaces made empty rather than restored: only `network`.
    pub empty_ns: Vec<String>,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
    /// An fd the process inherited for `--status-fd` (the caller checks
    /// it was open before the process opened anything: see
    /// `capsa-runtime`'s main); the checkpoint takes it over.
    pub status_fd: Option<i32>,
    /// `ADDRESS:PORT` of a page server for the memory pages (checkpoint).
    pub page_server: Option<String>,
}

/// Options of `checkpoint`.
#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    pub id: String,
    pub flags: CriuFlags,
    pub leave_running: bool,
    pub pre_dump: bool,
    /// A previous (pre-)dump, relative to the image path.
    pub parent_path: Option<PathBuf>,
}

/// Options of `restore`.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    /// Where a terminal's new master goes.
    pub console_socket: Option<PathBuf>,
    pub flags: CriuFlags,
    pub systemd_cgroup: bool,
    /// How the config is read (see [`capsa_spec::Mode`]).
    pub mode: capsa_spec::Mode,
}

impl CriuFlags {
    fn opts(&self, images: &OwnedFd, work: Option<&OwnedFd>, log: &str) -> Result<Opts> {
        let manage_cgroups_mode = match self.manage_cgroups_mode.as_deref() {
            None => None,
            Some("ignore") => Some(0),
            Some("soft") => Some(3),
            Some("full") => Some(4),
            Some("strict") => Some(5),
            Some(m) => {
                return Err(Error::Invalid(format!(
                    "--manage-cgroups-mode: invalid mode {m:?} (soft, full, strict or ignore)"
                )))
            }
        };
        let mut empty_ns = 0;
        for ns in &self.empty_ns {
            match ns.as_str() {
                "network" => empty_ns |= libc::CLONE_NEWNET as u32,
                other => {
                    return Err(Error::Invalid(format!(
                        "--empty-ns: namespace {other:?} is not supported (only network)"
                    )))
                }
            }
        }
        Ok(Opts {
            images_dir_fd: images.as_raw_fd(),
            work_dir_fd: work.map(|w| w.as_raw_fd()),
            log_file: log.into(),
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            manage_cgroups_mode,
            empty_ns,
            auto_dedup: self.auto_dedup,
            lazy_pages: self.lazy_pages,
            // Told through CRIU's status-ready notification instead (the
            // fd stays ours): CRIU 3.15 and later, as runc does.
            status_fd: None,
            orphan_pts_master: true,
            ..Opts::default()
        })
    }

    /// The image directory and the work directory (made 0700 if missing,
    /// as a container may be checkpointed again), and CRIU's log path.
    /// The image directory is made only for a dump (a restore reads one).
    fn dirs(&self, log: &str, dump: bool) -> Result<(OwnedFd, Option<OwnedFd>, PathBuf)> {
        let images = open_dir(&self.image_path, "--image-path", dump)?;
        let work = match &self.work_path {
            Some(w) => Some(open_dir(w, "--work-path", true)?),
            None => None,
        };
        let log = self
            .work_path
            .as_ref()
            .unwrap_or(&self.image_path)
            .join(log);
        Ok((images, work, log))
    }

    fn keep(images: &OwnedFd, work: Option<&OwnedFd>) -> Vec<i32> {
        let mut keep = vec![images.as_raw_fd()];
        keep.extend(work.map(|w| w.as_raw_fd()));
        keep
    }
}

fn open_dir(p: &Path, flag: &str, create: bool) -> Result<OwnedFd> {
    if create {
        match std::fs::create_dir(p) {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| Error::io("chmod", p.display(), e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("mkdir", format!("{flag} {}", p.display()), e)),
        }
    }
    let dir = std::fs::File::open(p)
        .map_err(|e| Error::io("open", format!("{flag} {}", p.display()), e))?;
    let meta = dir
        .metadata()
        .map_err(|e| Error::io("stat", format!("{flag} {}", p.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "{flag} {} is not a directory",
            p.display()
        )));
    }
    // Security: CRIU, as root, creates its log in this directory by name
    // (O_CREAT|O_TRUNC, links followed): a link planted there by another
    // user would have it truncate a host file. Only a directory that no
    // one else can write to is taken (checked on the fd CRIU gets).
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(Error::Invalid(format!(
            "{flag} {}: must be owned by uid {me} and not writable by group or others (CRIU writes its log there as root)",
            p.display()
        )));
    }
    Ok(dir.into())
}

/// `--parent-path`: relative to the image path (CRIU opens it from the
/// image directory), and there.
fn check_parent(images: &Path, parent: &Path) -> Result<()> {
    if parent.is_absolute() {
        return Err(Error::Invalid(format!(
            "--parent-path {} must be relative to --image-path",
            parent.display()
        )));
    }
    let real = images.join(parent);
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Invalid(format!(
            "--parent-path {} is not a directory",
            real.display()
        ))),
        Err(e) => Err(Error::Invalid(format!(
            "invalid --parent-path {}: {e}",
            real.display()
        ))),
    }
}

/// The container's mounts CRIU must be told about, as (mount point, what
/// it is on the host) for a restore; a dump names each by its mount point.
/// `cgroup` is the container's cgroup (the new one, for a restore). A
/// mount point is where its destination leads inside `root` (a link such
/// as `/conf -> /real/conf` is followed there, never out of it), as the
/// mount was made.
fn externals(plan: &Plan, cgroup: &Cgroup, hier: &Hierarchy, root: &Root) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let cgns = plan.namespaces.has(libc::CLONE_NEWCGROUP);
    for m in &plan.mounts {
        let dest = root
            .resolve(&m.destination)
            .unwrap_or_else(|_| m.destination.clone())
            .display()
            .to_string();
        if m.bind {
            let src = m.source.as_ref().map(|s| s.display().to_string());
            out.push((dest, src.unwrap_or_default()));
        } else if (m.fstype == "cgroup" || m.fstype == "cgroup2") && !cgns {
            // Without a cgroup namespace the container's cgroup directories
            // are bound in (`mounts::mount_cgroup`): on v2 alone at the
            // mount point, else one per hierarchy under a tmpfs there.
            if hier.v1.is_empty() {
                if let Some(v2) = &cgroup.v2 {
                    out.push((dest.clone(), v2.display().to_string()));
                }
                continue;
            }
            for (name, _, dir) in crate::mounts::cgroup_submounts(cgroup, hier) {
                out.push((format!("{dest}/{name}"), dir.display().to_string()));
            }
        }
    }
    for d in plan.devices.iter().map(|d| d.path().display().to_string()) {
        out.push((d.clone(), d));
    }
    out
}

/// CRIU 3.0 or later (its RPC has the version call), asked before anything
/// is changed: a missing or old CRIU fails clearly.
fn require_criu(criu: &Path) -> Result<()> {
    let (major, minor, sub) = crate::criu::version(criu)?;
    if major < 3 {
        return Err(Error::Unsupported(format!(
            "CRIU {major}.{minor}.{sub} at {} is too old: 3.0 or later is needed",
            criu.display()
        )));
    }
    Ok(())
}

/// The container's plan again, from the spec it was created with.
fn plan_of(st: &ContainerState) -> Result<Plan> {
    Ok(Plan::new(&st.bundle, st.config.clone())?)
}

/// The masked paths that are files in the container (binds of /dev/null;
/// a masked directory is a tmpfs CRIU dumps itself). Looked up in the
/// running container's root (its mounts are there), resolved inside it:
/// no link of the container's leads the lookup out.
fn masked_files(st: &ContainerState, plan: &Plan) -> Vec<String> {
    let Ok(root) = container_root(st) else {
        return Vec::new();
    };
    plan.masked_paths
        .iter()
        .filter(|p| {
            root.open_at(p, libc::O_PATH, capsa_sys::resolve::Symlinks::InRoot)
                .ok()
                .and_then(|fd| nix::sys::stat::fstat(fd.as_raw_fd()).ok())
                .is_some_and(|s| s.st_mode & libc::S_IFMT != libc::S_IFDIR)
        })
        .map(|p| p.display().to_string())
        .collect()
}

/// The network and pid namespaces the container joined by path: CRIU
/// treats each as external (`net[INODE]:extRootNetNS`), dumping none of it
/// and, at restore, joining the one it is handed under that key.
fn joined_namespaces(plan: &Plan) -> Vec<(&'static str, &'static str, PathBuf)> {
    plan.namespaces
        .join
        .iter()
        .filter_map(|(flag, path)| match *flag {
            libc::CLONE_NEWNET => Some(("net", "extRootNetNS", path.clone())),
            libc::CLONE_NEWPID => Some(("pid", "extRootPidNS", path.clone())),
            _ => None,
        })
        .collect()
}

/// CRIU's configuration file for this container: the annotation
/// `org.criu.config` (empty: none), else capsa's own default (CRIU skips a
/// missing file). Its settings win over the RPC's, as in runc.
///
/// Security: a CRIU configuration can name scripts CRIU runs as root
/// (`action-script`). Only a file root owns and no one else can write, in
/// directories the same, outside the container's rootfs, is handed over;
/// anything else is refused (a missing one is skipped, as CRIU would).
fn criu_config(plan: &Plan) -> Result<Option<PathBuf>> {
    let f = match plan.annotations.get("org.criu.config") {
        Some(f) if f.is_empty() => return Ok(None),
        Some(f) => PathBuf::from(f),
        None => PathBuf::from("/etc/criu/capsa-runtime.conf"),
    };
    let Ok(real) = std::fs::canonicalize(&f) else {
        return Ok(None);
    };
    let rootfs = std::fs::canonicalize(&plan.rootfs).unwrap_or_else(|_| plan.rootfs.clone());
    let bad = |why: &str| {
        Error::Invalid(format!(
            "org.criu.config {}: {why} (CRIU runs what its configuration names, as root)",
            f.display()
        ))
    };
    if real.starts_with(&rootfs) {
        return Err(bad("inside the container's rootfs"));
    }
    use std::os::unix::fs::MetadataExt;
    for p in real.ancestors() {
        let m = std::fs::metadata(p).map_err(|e| bad(&e.to_string()))?;
        if m.uid() != 0
            || m.mode() & 0o022 != 0 && !(m.is_dir() && m.mode() & 0o1000 != 0 && p != real)
        {
            return Err(bad(&format!("{} is not root's alone", p.display())));
        }
    }
    Ok(Some(real))
}

/// Security: a container with CAP_SYS_ADMIN in its own user namespace can
/// mount over one of its external mounts (a tmpfs over a read-only bind):
/// CRIU, which knows external mounts by mount point, would restore both
/// as the host source, the top one with the writable flags of the
/// container's own. A dump is refused while anything is stacked there.
fn refuse_stacked(
    proc: &capsa_sys::procfs::ProcFs,
    pid: i32,
    ext: &[(String, String)],
) -> Result<()> {
    let path = format!("{pid}/mountinfo");
    let text = proc
        .read(Path::new(&path), 16 << 20)
        .map_err(|e| Error::sys("read", &path, e))?;
    let points: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(capsa_sys::mount::unescape)
        .collect();
    for (key, _) in ext {
        if points.iter().filter(|p| *p == key).count() > 1 {
            return Err(Error::State(format!(
                "cannot checkpoint: {key} has mounts stacked on it (CRIU would restore them as its source)"
            )));
        }
    }
    Ok(())
}

/// The running container's root, with its mounts, as its init sees it.
fn container_root(st: &ContainerState) -> Result<Root> {
    crate::lifecycle::open_init_root(st).map(Root::from_fd)
}

/// What the init's fds 0, 1 and 2 are (`pipe:[INODE]`, a path), read
/// through our own procfs.
fn stdio_of(proc: &capsa_sys::procfs::ProcFs, pid: i32) -> Result<Vec<String>> {
    Ok((0..3)
        .map(|i| {
            proc.readlink(Path::new(&format!("{pid}/fd/{i}")))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "/dev/null".into())
        })
        .collect())
}
