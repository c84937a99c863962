//! CRIU driven through its RPC interface (`criu swrk FD`): one request over
//! a `SOCK_SEQPACKET` socket, then notifications answered until the reply
//! of the request's own type. The messages are CRIU's `rpc.proto` (proto2),
//! encoded here for the few fields capsa uses: a protobuf library for a
//! dozen fields would outweigh them.

use crate::error::{Error, Result};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use wire::{decode, request};

mod wire;

/// `criu_req_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqType {
    Dump = 1,
    Restore = 2,
    PreDump = 4,
    Notify = 6,
    FeatureCheck = 9,
    Version = 10,
}

impl ReqType {
    fn name(self) -> &'static str {
        match self {
            ReqType::Dump => "DUMP",
            ReqType::Restore => "RESTORE",
            ReqType::PreDump => "PRE_DUMP",
            ReqType::Notify => "NOTIFY",
            ReqType::FeatureCheck => "FEATURE_CHECK",
            ReqType::Version => "VERSION",
        }
    }
}

/// The `criu_opts` capsa sets (field numbers from CRIU's rpc.proto).
#[derive(Debug, Clone, Default)]
pub struct Opts {
    pub images_dir_fd: RawFd,
    pub pid: Option<i32>,
    pub leave_running: bool,
    pub ext_unix_sk: bool,
    pub tcp_established: bool,
    pub evasive_devices: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub log_file: String,
    pub root: Option<PathBuf>,
    pub parent_img: Option<String>,
    pub track_mem: bool,
    pub auto_dedup: bool,
    pub work_dir_fd: Option<RawFd>,
    /// (mount point in the container, what it is outside).
    pub ext_mnt: Vec<(String, String)>,
    /// (controllers, path) for restoring into the container's cgroups.
    pub cg_root: Vec<(Option<String>, String)>,
    pub rst_sibling: bool,
    /// (the fd's name in the image, as `pipe:[INODE]`; the fd to use).
    pub inherit_fd: Vec<(String, i32)>,
    pub manage_cgroups_mode: Option<u32>,
    pub empty_ns: u32,
    pub freeze_cgroup: Option<PathBuf>,
    pub lazy_pages: bool,
    pub status_fd: Option<RawFd>,
    pub orphan_pts_master: bool,
    /// A CRIU configuration file, whose settings win over these.
    pub config_file: Option<PathBuf>,
    /// External resources, as `net[INODE]:KEY` (a namespace joined by
    /// path, which CRIU leaves alone).
    pub external: Vec<String>,
    /// A page server to send the memory pages to (address, port).
    pub page_server: Option<(String, i32)>,
}

/// A reply from CRIU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resp {
    pub typ: u64,
    pub success: bool,
    /// `notify.script` and `notify.pid`.
    pub notify: Option<(String, i32)>,
    pub restored_pid: Option<i32>,
    pub cr_errno: i32,
    pub cr_errmsg: String,
    /// (major, minor, sublevel) for a VERSION request.
    pub version: Option<(i64, i64, i64)>,
    /// `features.mem_track` for a FEATURE_CHECK request.
    pub mem_track: Option<bool>,
}

/// A running `criu swrk`.
pub struct Swrk {
    child: std::process::Child,
    sock: OwnedFd,
    log: PathBuf,
}

impl Swrk {
    /// Start `criu swrk` at `criu` (a name is looked up in `PATH`), with
    /// `keep` (the image and work directory fds, which CRIU takes by
    /// number) open in it. With `inherit_stdio` it gets our stdin, stdout
    /// and stderr (a restore hands them to the restored process); else
    /// /dev/null. `log` is where CRIU's log will be, for error messages.
    pub fn spawn(criu: &Path, keep: &[RawFd], inherit_stdio: bool, log: PathBuf) -> Result<Swrk> {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| Error::sys("socketpair", "criu", e))?;
        // CRIU takes these by number: they must survive its execve. This
        // process forks nothing else meanwhile (single-threaded).
        for fd in keep.iter().copied().chain([theirs.as_raw_fd()]) {
            capsa_sys::fd::set_cloexec(fd, false).map_err(|e| Error::sys("fcntl", fd, e))?;
        }
        let stdio = || {
            if inherit_stdio {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            }
        };
        let spawned = std::process::Command::new(criu)
            .arg("swrk")
            .arg(theirs.as_raw_fd().to_string())
            .stdin(stdio())
            .stdout(stdio())
            .stderr(stdio())
            .spawn();
        for fd in keep.iter().copied() {
            let _ = capsa_sys::fd::set_cloexec(fd, true);
        }
        drop(theirs);
        let child = spawned.map_err(|e| {
            Error::Unsupported(format!(
                "cannot run CRIU {} (install CRIU 3.x or later, or name it with --criu): {e}",
                criu.display()
            ))
        })?;
        Ok(Swrk {
            child,
            sock: ours,
            log,
        })
    }

    /// The pid of the CRIU process (which a restore puts into the
    /// container's cgroups before asking).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Send one request and answer CRIU's notifications with `notify`
    /// (script, pid, an fd sent along) until the reply to it comes.
    pub fn call(
        &mut self,
        typ: ReqType,
        opts: Option<&Opts>,
        mut notify: impl FnMut(&str, i32, Option<OwnedFd>) -> Result<()>,
    ) -> Result<Resp> {
        self.send(&request(typ, opts))?;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let (n, fd) = capsa_sys::fd::recv_with_fd(self.sock.as_fd(), &mut buf)
                .map_err(|e| Error::sys("recv", "criu", e))?;
            if n == 0 {
                return Err(Error::State(format!(
                    "criu failed: it exited before answering {}\nlog file: {}",
                    typ.name(),
                    self.log.display()
                )));
            }
            let resp = decode(&buf[..n]).ok_or_else(|| {
                Error::State(format!("criu sent a malformed reply to {}", typ.name()))
            })?;
            if !resp.success {
                // CRIU's message is its first error, often not the one
                // that failed the dump: its log's last error says more.
                let why = match last_error(&self.log) {
                    Some(e) => format!(": {e}"),
                    None if !resp.cr_errmsg.is_empty() => format!(": {}", resp.cr_errmsg.trim()),
                    None => String::new(),
                };
                return Err(Error::State(format!(
                    "criu failed: type {} errno {}{why}\nlog file: {}",
                    typ.name(),
                    resp.cr_errno,
                    self.log.display()
                )));
            }
            if resp.typ == ReqType::Notify as u64 {
                let (script, pid) = resp.notify.clone().unwrap_or_default();
                notify(&script, pid, fd)?;
                self.send(&request(ReqType::Notify, None))?;
                continue;
            }
            if resp.typ != typ as u64 {
                return Err(Error::State(format!(
                    "criu answered {} with type {}",
                    typ.name(),
                    resp.typ
                )));
            }
            return Ok(resp);
        }
    }

    fn send(&self, msg: &[u8]) -> Result<()> {
        capsa_sys::fd::send_with_fd(self.sock.as_fd(), msg, None)
            .map_err(|e| Error::sys("send", "criu", e))
    }

    /// Close the socket and wait for CRIU. A pre-dump's CRIU waits for a
    /// next request and exits unhappy when none comes: `strict` false.
    pub fn finish(mut self, strict: bool) -> Result<()> {
        drop(self.sock);
        let status = self
            .child
            .wait()
            .map_err(|e| Error::io("wait", "criu", e))?;
        if strict && !status.success() {
            return Err(Error::State(format!(
                "criu failed: {status}\nlog file: {}",
                self.log.display()
            )));
        }
        Ok(())
    }
}

/// The last `Error (...)` line of a CRIU log, read with a bound.
fn last_error(log: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(64 << 10))).ok()?;
    let mut tail = Vec::new();
    f.take(64 << 10).read_to_end(&mut tail).ok()?;
    String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find(|l| l.contains("Error (") && !l.contains("FAILED"))
        .map(|l| {
            l.split_once(") Error")
                .map_or(l, |(_, e)| e)
                .trim()
                .to_string()
        })
}

/// Whether CRIU can track memory changes here (soft-dirty bits), which a
/// pre-dump needs.
pub fn can_track_memory(criu: &Path) -> Result<bool> {
    let mut s = Swrk::spawn(criu, &[], false, PathBuf::new())?;
    let r = s.call(ReqType::FeatureCheck, None, |_, _, _| Ok(()));
    let _ = s.finish(false);
    Ok(r?.mem_track.unwrap_or(false))
}

/// CRIU's version, asked over RPC (CRIU 3.0 and later answer).
pub fn version(criu: &Path) -> Result<(i64, i64, i64)> {
    let mut s = Swrk::spawn(criu, &[], false, PathBuf::new())?;
    let r = s.call(ReqType::Version, None, |_, _, _| Ok(()));
    let _ = s.finish(false);
    r?.version
        .ok_or_else(|| Error::State("criu did not say its version".into()))
}
