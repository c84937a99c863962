//! CRIU driven through its RPC interface (`criu swrk FD`): one request over
//! a `SOCK_SEQPACKET` socket, then notifications answered until the reply
//! of the request's own type. The messages are CRIU's `rpc.proto` (proto2),
//! encoded here for the few fields capsa uses: a protobuf library for a
//! dozen fields would outweigh them.

use crate::error::{Error, Result};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

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

/// The protobuf wire format, writing side.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }
    /// int32, uint32, bool and enums: a varint (a negative int32 as its
    /// 64-bit two's complement, as protobuf says).
    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }
    fn flag(&mut self, field: u32, on: bool) {
        if on {
            self.int(field, 1);
        }
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }
}

impl Opts {
    fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.int(1, i64::from(self.images_dir_fd));
        if let Some(p) = self.pid {
            e.int(2, i64::from(p));
        }
        e.flag(3, self.leave_running);
        e.flag(4, self.ext_unix_sk);
        e.flag(5, self.tcp_established);
        e.flag(6, self.evasive_devices);
        e.flag(7, self.shell_job);
        e.flag(8, self.file_locks);
        e.int(9, 4);
        e.string(10, &self.log_file);
        if let Some((addr, port)) = &self.page_server {
            let mut ps = Enc::default();
            ps.string(1, addr);
            ps.int(2, i64::from(*port));
            e.bytes(11, &ps.0);
        }
        e.flag(12, true); // notify_scripts
        if let Some(r) = &self.root {
            e.string(13, &r.to_string_lossy());
        }
        if let Some(p) = &self.parent_img {
            e.string(14, p);
        }
        e.flag(15, self.track_mem);
        e.flag(16, self.auto_dedup);
        if let Some(fd) = self.work_dir_fd {
            e.int(17, i64::from(fd));
        }
        for (k, v) in &self.ext_mnt {
            let mut m = Enc::default();
            m.string(1, k);
            m.string(2, v);
            e.bytes(23, &m.0);
        }
        e.flag(24, true); // manage_cgroups
        for (ctrl, path) in &self.cg_root {
            let mut m = Enc::default();
            if let Some(c) = ctrl {
                m.string(1, c);
            }
            m.string(2, path);
            e.bytes(25, &m.0);
        }
        e.flag(26, self.rst_sibling);
        for (key, fd) in &self.inherit_fd {
            let mut m = Enc::default();
            m.string(1, key);
            m.int(2, i64::from(*fd));
            e.bytes(27, &m.0);
        }
        for x in &self.external {
            e.string(37, x);
        }
        if let Some(mode) = self.manage_cgroups_mode {
            e.int(34, i64::from(mode));
        }
        if self.empty_ns != 0 {
            e.int(38, i64::from(self.empty_ns));
        }
        if let Some(f) = &self.freeze_cgroup {
            e.string(44, &f.to_string_lossy());
        }
        e.flag(48, self.lazy_pages);
        if let Some(fd) = self.status_fd {
            e.int(49, i64::from(fd));
        }
        e.flag(50, self.orphan_pts_master);
        if let Some(c) = &self.config_file {
            e.string(51, &c.to_string_lossy());
        }
        e.0
    }
}

/// `criu_req`: its type, and the options or the answer to a notification.
fn request(typ: ReqType, opts: Option<&Opts>) -> Vec<u8> {
    let mut e = Enc::default();
    e.int(1, typ as i64);
    if let Some(o) = opts {
        e.bytes(2, &o.encode());
    }
    if typ == ReqType::Notify {
        e.flag(3, true); // notify_success
    }
    if typ == ReqType::FeatureCheck {
        let mut f = Enc::default();
        f.flag(1, true); // mem_track
        e.bytes(5, &f.0);
    }
    e.0
}

/// The protobuf wire format, reading side: (field, value) pairs, a
/// length-delimited value as its bytes. Anything malformed is an error,
/// never a panic: the bytes come from another program.
fn fields(mut b: &[u8]) -> Option<Vec<(u32, Field<'_>)>> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let field = u32::try_from(key >> 3).ok()?;
        let value = match key & 7 {
            0 => Field::Int(varint(&mut b)?),
            1 => {
                let (v, rest) = b.split_at_checked(8)?;
                b = rest;
                Field::Int(u64::from_le_bytes(v.try_into().ok()?))
            }
            2 => {
                let n = usize::try_from(varint(&mut b)?).ok()?;
                let (v, rest) = b.split_at_checked(n)?;
                b = rest;
                Field::Bytes(v)
            }
            5 => {
                let (v, rest) = b.split_at_checked(4)?;
                b = rest;
                Field::Int(u64::from(u32::from_le_bytes(v.try_into().ok()?)))
            }
            _ => return None,
        };
        out.push((field, value));
    }
    Some(out)
}

#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

impl<'a> Field<'a> {
    fn int(self) -> i64 {
        match self {
            Field::Int(v) => v as i64,
            Field::Bytes(_) => 0,
        }
    }
    fn text(self) -> String {
        match self {
            Field::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Field::Int(_) => String::new(),
        }
    }
    fn message(self) -> Vec<(u32, Field<'a>)> {
        match self {
            Field::Bytes(b) => fields(b).unwrap_or_default(),
            Field::Int(_) => Vec::new(),
        }
    }
}

fn decode(b: &[u8]) -> Option<Resp> {
    let mut r = Resp::default();
    for (n, f) in fields(b)? {
        match n {
            1 => r.typ = f.int() as u64,
            2 => r.success = f.int() != 0,
            4 => {
                for (m, g) in f.message() {
                    if m == 1 {
                        r.restored_pid = Some(g.int() as i32);
                    }
                }
            }
            5 => {
                let (mut script, mut pid) = (String::new(), 0);
                for (m, g) in f.message() {
                    match m {
                        1 => script = g.text(),
                        2 => pid = g.int() as i32,
                        _ => {}
                    }
                }
                r.notify = Some((script, pid));
            }
            7 => r.cr_errno = f.int() as i32,
            8 => {
                for (m, g) in f.message() {
                    if m == 1 {
                        r.mem_track = Some(g.int() != 0);
                    }
                }
            }
            9 => r.cr_errmsg = f.text(),
            10 => {
                let (mut major, mut minor, mut sub) = (0, 0, 0);
                for (m, g) in f.message() {
                    match m {
                        1 => major = g.int(),
                        2 => minor = g.int(),
                        4 => sub = g.int(),
                        _ => {}
                    }
                }
                r.version = Some((major, minor, sub));
            }
            _ => {}
        }
    }
    Some(r)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_protobuf_with_criu_field_numbers() {
        let o = Opts {
            images_dir_fd: 5,
            pid: Some(300),
            log_file: "dump.log".into(),
            ext_mnt: vec![("/a".into(), "/b".into())],
            ..Opts::default()
        };
        let req = request(ReqType::Dump, Some(&o));
        // type = DUMP, then opts as a length-delimited field 2.
        assert_eq!(&req[..3], &[0x08, 0x01, 0x12]);
        let f = fields(&req).unwrap();
        let opts = f[1].1.message();
        assert_eq!(opts[0].0, 1);
        assert_eq!(opts[0].1.int(), 5);
        assert_eq!((opts[1].0, opts[1].1.int()), (2, 300));
        let ext = opts.iter().find(|(n, _)| *n == 23).unwrap().1.message();
        assert_eq!(
            (ext[0].1.text(), ext[1].1.text()),
            ("/a".into(), "/b".into())
        );
    }

    #[test]
    fn negative_ints_are_ten_byte_varints() {
        let mut e = Enc::default();
        e.int(1, -1);
        assert_eq!(e.0.len(), 11);
        assert_eq!(fields(&e.0).unwrap()[0].1.int(), -1);
    }

    #[test]
    fn replies_decode_and_garbage_does_not_panic() {
        let mut notify = Enc::default();
        notify.string(1, "post-restore");
        notify.int(2, 4242);
        let mut r = Enc::default();
        r.int(1, ReqType::Notify as i64);
        r.int(2, 1);
        r.bytes(5, &notify.0);
        r.int(7, 0);
        let d = decode(&r.0).unwrap();
        assert!(d.success);
        assert_eq!(d.notify, Some(("post-restore".into(), 4242)));
        for junk in [
            &[0x0a, 0xff][..],
            &[0xff; 11][..],
            &[0x0b][..],
            &[0x12, 0x05, 0x01][..],
        ] {
            assert!(decode(junk).is_none(), "{junk:?}");
        }
    }
}
