//! `checkpoint` and `restore`: a running container's process tree saved
//! to image files by CRIU, and a new container made from them (runc's
//! commands and flags). See `criu` for the RPC.
//!
//! What CRIU cannot see for itself is told as external mounts: each bind
//! mount, each masked file (a bind of /dev/null), each device node, and on
//! cgroup v1 without a cgroup namespace each hierarchy's bind. A dump
//! names them by their mount point; a restore maps each name to what it is
//! on this host now.

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

/// `checkpoint`: dump the container with CRIU into the image path; unless
/// `leave_running` (or a pre-dump), the container is then gone, as runc's.
/// Returns the warnings of its deletion (failed poststop hooks).
pub fn checkpoint(store: &Store, opts: &CheckpointOptions) -> Result<Vec<String>> {
    require_criu(&opts.flags.criu)?;
    let lock = store.lock(&opts.id)?;
    let st = store.load(&opts.id)?;
    match status_of(&st) {
        Status::Running | Status::Paused => {}
        _ => return Err(Error::State("container not running".into())),
    }
    // Its mounts are the host's: CRIU would dump (and restore) those.
    if crate::hostmounts::in_host_namespace(&st) {
        return Err(Error::Unsupported(
            "checkpoint of a container without a mount namespace of its own".into(),
        ));
    }
    if let Some(p) = &opts.parent_path {
        check_parent(&opts.flags.image_path, p)?;
    }
    if opts.pre_dump && !crate::criu::can_track_memory(&opts.flags.criu)? {
        return Err(Error::Unsupported(
            "--pre-dump: CRIU cannot track memory changes on this kernel (no soft-dirty bits, CONFIG_MEM_SOFT_DIRTY)".into(),
        ));
    }
    let plan = plan_of(&st)?;
    let (images, work, log) = opts.flags.dirs("dump.log", true)?;
    let mut o = opts.flags.opts(&images, work.as_ref(), "dump.log")?;
    o.pid = Some(st.pid);
    o.root = Some(st.rootfs.clone());
    o.config_file = criu_config(&plan)?;
    for (kind, key, path) in joined_namespaces(&plan) {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(&path)
            .map_err(|e| Error::io("stat", path.display(), e))?
            .ino();
        o.external.push(format!("{kind}[{ino}]:{key}"));
    }
    o.leave_running = opts.leave_running;
    o.parent_img = opts.parent_path.as_ref().map(|p| p.display().to_string());
    o.track_mem = opts.parent_path.is_some() || opts.pre_dump;
    // CRIU freezes the tree with the container's freezer rather than
    // ptrace where it can.
    o.freeze_cgroup = st
        .cgroup
        .v1_dir("freezer")
        .map(Path::to_path_buf)
        .or_else(|| st.cgroup.v2.clone());
    if !opts.pre_dump {
        let hier = Hierarchy::detect().map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
        // Named by their mount points; a masked file is a /dev/null.
        let root = container_root(&st)?;
        o.ext_mnt = externals(&plan, &st.cgroup, &hier, &root)
            .into_iter()
            .map(|(dest, _)| (dest.clone(), dest))
            .collect();
        o.ext_mnt.extend(
            masked_files(&st, &plan)
                .into_iter()
                .map(|p| (p, "/dev/null".into())),
        );
        // One procfs of our own for both reads of the container's process.
        let proc = capsa_sys::procfs::ProcFs::new().map_err(|e| Error::sys("open", "procfs", e))?;
        refuse_stacked(&proc, st.pid, &o.ext_mnt)?;
        let fds = stdio_of(&proc, st.pid)?;
        let json = serde_json::to_vec(&fds).map_err(|e| Error::State(e.to_string()))?;
        state::write_atomic(&opts.flags.image_path.join(DESCRIPTORS), &json, 0o600)?;
    }
    let keep = CriuFlags::keep(&images, work.as_ref());
    let mut swrk = Swrk::spawn(&opts.flags.criu, &keep, false, log)?;
    let typ = if opts.pre_dump {
        ReqType::PreDump
    } else {
        ReqType::Dump
    };
    // The caller handed us the fd by number: ours from here on (closed
    // once written, or on the way out).
    let mut status_fd = match opts.flags.status_fd {
        Some(fd) => {
            let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)
                .map_err(|e| Error::Invalid(format!("invalid --status-fd argument {fd}: {e}")))?;
            if flags & libc::O_ACCMODE == libc::O_RDONLY {
                return Err(Error::Invalid(format!(
                    "invalid --status-fd argument {fd}: not writable"
                )));
            }
            // SAFETY: the fd was inherited as this number (the caller's
            // contract, see `CriuFlags::status_fd`); nothing here owns it.
            #[allow(unsafe_code)]
            let owned = unsafe { capsa_sys::fd::inherited(fd) };
            Some(
                owned.map_err(|e| {
                    Error::Invalid(format!("invalid --status-fd argument {fd}: {e}"))
                })?,
            )
        }
        None => None,
    };
    let res = swrk.call(typ, Some(&o), |script, _, _| {
        // The lazy page server is up: `--status-fd` gets a \0, once.
        if script == "status-ready" {
            if let Some(fd) = status_fd.take() {
                let _ = nix::unistd::write(&fd, &[0]);
            }
        }
        Ok(())
    });
    let finished = swrk.finish(!opts.pre_dump);
    res?;
    finished?;
    drop(lock);
    if !opts.pre_dump && !opts.leave_running {
        // CRIU killed the tree: what is left is the state and the cgroup.
        return crate::lifecycle::delete(store, &opts.id, true);
    }
    Ok(Vec::new())
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

/// A restored container.
#[derive(Debug)]
pub struct Restored {
    pub state: ContainerState,
}

/// Undoes a restore that failed: the cgroup this restore made and the
/// state directory.
struct Undo<'a> {
    store: &'a Store,
    id: String,
    cgroup: Option<Cgroup>,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.signal_all(libc::SIGKILL);
            let _ = cg.remove_created();
        }
        let _ = self.store.remove(&self.id);
    }
}

/// The container's rootfs bound at a directory of its state: CRIU wants
/// its root to be a mount point whose parent is not covered. Private, so
/// that nothing of it reaches another mount namespace; gone on drop.
struct CriuRoot {
    path: PathBuf,
}

impl CriuRoot {
    /// Each bind's mount point made again (in order, each bound while the
    /// next is made, so that a nested one is made in its parent's source),
    /// resolved inside the root; then the binds undone, CRIU makes its own.
    /// Returns the root, for where each destination leads.
    fn make_mount_points(&self, plan: &Plan) -> Result<Root> {
        use nix::mount::{MntFlags, MsFlags};
        let root =
            Root::open(&self.path).map_err(|e| Error::sys("open", self.path.display(), e))?;
        let mut bound = Vec::new();
        let res = (|| {
            for m in plan.mounts.iter().filter(|m| m.bind) {
                let Some(src) = &m.source else { continue };
                let dir = std::fs::metadata(src)
                    .map_err(|e| Error::io("stat", src.display(), e))?
                    .is_dir();
                let made = if dir {
                    root.mkdir_all(&m.destination)
                } else {
                    root.create_file(&m.destination)
                };
                let target = made.map_err(|e| Error::sys("make", m.destination.display(), e))?;
                capsa_sys::root::mount_on(
                    Some(&src.display().to_string()),
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .map_err(|e| Error::sys("bind mount", src.display(), e))?;
                // A read-only source stays so while mount points are made
                // through it (a link in a writable volume could aim there).
                if m.readonly() {
                    capsa_sys::root::mount_on(
                        None,
                        &target,
                        None,
                        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
                        None,
                    )
                    .map_err(|e| Error::sys("make read-only", m.destination.display(), e))?;
                }
                bound.push(target);
            }
            Ok(())
        })();
        for t in bound.iter().rev() {
            let _ = nix::mount::umount2(
                capsa_sys::resolve::fd_path(t.as_raw_fd()).as_str(),
                MntFlags::MNT_DETACH,
            );
        }
        res.map(|()| root)
    }

    fn mount(dir: &Path, rootfs: &Path) -> Result<CriuRoot> {
        use nix::mount::{mount, MsFlags};
        let path = dir.join("criu-root");
        std::fs::create_dir(&path).map_err(|e| Error::io("mkdir", path.display(), e))?;
        let root = CriuRoot { path };
        mount(
            Some(rootfs),
            &root.path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| Error::sys("bind mount", rootfs.display(), e))?;
        mount(
            None::<&str>,
            &root.path,
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| Error::sys("make private", root.path.display(), e))?;
        Ok(root)
    }
}

impl Drop for CriuRoot {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// That `pid` is at `path` (or below it) in each of its cgroup hierarchies,
/// as `/proc/PID/cgroup` says (read as untrusted text: an image's process).
fn in_cgroup(pid: i32, path: &Path) -> Result<()> {
    let f = format!("/proc/{pid}/cgroup");
    let text = std::fs::read_to_string(&f).map_err(|e| Error::io("read", &f, e))?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctl), Some(at)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        // Hierarchies with no controller of ours (name=systemd, an empty
        // v1 entry on a hybrid host) are not the container's business.
        if ctl.starts_with("name=") || ctl.is_empty() && !at.starts_with('/') {
            continue;
        }
        if !Path::new(at).starts_with(path) {
            return Err(Error::State(format!(
                "the restored process {pid} is in cgroup {at} ({ctl}), not in the container's {}",
                path.display()
            )));
        }
    }
    Ok(())
}

/// `descriptors.json` of an image: at most the three stdio entries, read
/// with a bound (an image directory may come from anywhere).
fn read_descriptors(images: &OwnedFd, path: &Path) -> Result<Vec<String>> {
    use std::io::Read;
    let path = path.join(DESCRIPTORS);
    // Not a link, not a FIFO that would block the open: a regular file.
    let fd = capsa_sys::fd::openat(
        images.as_fd(),
        DESCRIPTORS,
        nix::fcntl::OFlag::O_RDONLY
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_NONBLOCK
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open", path.display(), e))?;
    let f = std::fs::File::from(fd);
    if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(Error::Invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    f.take(64 << 10)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path.display(), e))?;
    let fds: Vec<String> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    Ok(fds.into_iter().take(3).collect())
}

/// `restore`: a new container `id` from the bundle and the images CRIU
/// made. The calling process moves to a mount namespace of its own (the
/// command line's is short-lived). Its process is restored as our child (CRIU's `rst_sibling`), in
/// the container's new cgroup, with the stdio pipes of the dump replaced
/// by our own stdio.
pub fn restore(store: &Store, opts: &RestoreOptions) -> Result<Restored> {
    state::check_id(&opts.id)?;
    let plan = capsa_spec::load(&opts.bundle, opts.mode)?;
    if !crate::create::has_mount_namespace(&plan) {
        return Err(Error::Unsupported(
            "restore of a container without a mount namespace of its own".into(),
        ));
    }
    require_criu(&opts.flags.criu)?;
    if opts.systemd_cgroup {
        return Err(Error::Unsupported(
            "restore with --systemd-cgroup is not supported".into(),
        ));
    }
    // A terminal's slave is restored with a new master (CRIU's orphan pts
    // master), which goes to the console socket as at create.
    if plan.process.terminal && opts.console_socket.is_none() {
        return Err(Error::Invalid(
            "restore of a container with a terminal needs --console-socket".into(),
        ));
    }
    let console = crate::console::ConsoleSocket::connect(opts.console_socket.as_deref())?;
    // Security: the rootfs bind CRIU needs, and the temporary binds that
    // make mount points, are made in a mount namespace of this process's
    // own, a slave of the host's: none of them reaches the host or its
    // peers, and none outlives this process (a delete meanwhile cannot
    // walk into the rootfs through one). First of all: every directory
    // CRIU is handed (by fd) must be of this namespace, or CRIU cannot
    // mount in it.
    capsa_sys::process::unshare(libc::CLONE_NEWNS)
        .map_err(|e| Error::sys("unshare", "mount namespace", e))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_SLAVE | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| Error::sys("make slave", "/", e))?;
    let (images, work, log) = opts.flags.dirs("restore.log", false)?;
    let descriptors = read_descriptors(&images, &opts.flags.image_path)?;
    let dir = store.create_dir(&opts.id)?;
    let mut undo = Undo {
        store,
        id: opts.id.clone(),
        cgroup: None,
        armed: true,
    };
    let hier = Hierarchy::detect().map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
    let cg_path = capsa_cgroups::container_path(plan.cgroups_path.as_deref(), &opts.id)?;
    let mut cgroup = Cgroup::new(&hier, &cg_path);
    cgroup.create()?;
    // Security: a cgroup refused as not ours (a host service's, named in
    // linux.cgroupsPath) is never killed on the way out: only what this
    // restore made is removed, until it is known to be the container's.
    // A restore is never into a populated cgroup, whatever the mode.
    if let Err(e) = crate::create::refuse_busy_cgroup(&cgroup, capsa_spec::Mode::Hardened) {
        let _ = cgroup.remove_created();
        return Err(e);
    }
    undo.cgroup = Some(cgroup.clone());
    let resources = plan
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    cgroup.apply(&resources)?;

    let mut o = opts.flags.opts(&images, work.as_ref(), "restore.log")?;
    o.evasive_devices = true;
    o.rst_sibling = true;
    o.config_file = criu_config(&plan)?;
    let root = CriuRoot::mount(&dir, &plan.rootfs)?;
    o.root = Some(root.path.clone());
    let inside = root.make_mount_points(&plan)?;
    o.ext_mnt = externals(&plan, &cgroup, &hier, &inside);
    drop(inside);
    if !plan.masked_paths.is_empty() {
        o.ext_mnt.push(("/dev/null".into(), "/dev/null".into()));
    }
    // A pipe of the dumped init's stdio becomes ours (CRIU's fds 0-2).
    o.inherit_fd = descriptors
        .iter()
        .enumerate()
        .filter(|(_, d)| d.starts_with("pipe:"))
        .map(|(i, d)| (d.clone(), i as i32))
        .collect();
    // A namespace joined by path is handed to CRIU to join (by fd).
    let mut joined = Vec::new();
    for (_, key, path) in joined_namespaces(&plan) {
        let f = std::fs::File::open(&path).map_err(|e| Error::io("open", path.display(), e))?;
        let fd: OwnedFd = f.into();
        o.inherit_fd.push((key.to_string(), fd.as_raw_fd()));
        joined.push(fd);
    }
    let mut keep = CriuFlags::keep(&images, work.as_ref());
    keep.extend(joined.iter().map(|f| f.as_raw_fd()));
    let mut swrk = Swrk::spawn(&opts.flags.criu, &keep, true, log)?;
    drop(joined);
    // The restored tree is born where CRIU is: in the container's cgroups,
    // at the container's path in each v1 hierarchy.
    cgroup.add(swrk.pid())?;
    o.cg_root = cgroup
        .v1
        .iter()
        .map(|(c, _)| (Some(c.join(",")), cg_path.display().to_string()))
        .collect();
    // And a root with no controller, CRIU's default for every hierarchy
    // not named (v2's among them): what the image recorded is the old
    // container's path, or any path a crafted image names.
    o.cg_root.push((None, cg_path.display().to_string()));
    let mut st = ContainerState {
        id: opts.id.clone(),
        pid: 0,
        start_time: 0,
        bundle: plan.bundle.clone(),
        rootfs: plan.rootfs.clone(),
        created: state::now_rfc3339(),
        owner: String::new(),
        cgroup: cgroup.clone(),
        config: plan.spec.clone(),
        host_root_mount: None,
    };
    let res = swrk.call(ReqType::Restore, Some(&o), |script, pid, fd| {
        match script {
            "orphan-pts-master" => {
                console.forward(fd)?;
            }
            // The namespaces exist, the process does not run yet: the
            // runtime's hooks, as at create.
            "setup-namespaces" => {
                st.pid = pid;
                let json = st.oci_state(Status::Creating).to_string();
                crate::create::run_hooks("prestart", &plan.hooks.prestart, &json)?;
                crate::create::run_hooks("createRuntime", &plan.hooks.create_runtime, &json)?;
            }
            "post-restore" => {
                st.pid = pid;
                st.start_time = state::proc_stat(pid).map(|(_, t)| t).unwrap_or(0);
                store.save(&st)?;
            }
            _ => {}
        }
        Ok(())
    });
    let finished = swrk.finish(true);
    drop(root);
    let resp = res?;
    finished?;
    if st.pid == 0 {
        st.pid = resp.restored_pid.unwrap_or(0);
        st.start_time = state::proc_stat(st.pid).map(|(_, t)| t).unwrap_or(0);
        store.save(&st)?;
    }
    // Security: its limits and device filter hold only if the restored
    // process is in the container's cgroup in every hierarchy, wherever
    // the image said it was: checked, else it is killed (the undo).
    in_cgroup(st.pid, &cg_path)?;
    state::write_pid_file(opts.pid_file.as_deref(), st.pid)?;
    undo.armed = false;
    Ok(Restored { state: st })
}
