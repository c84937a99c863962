//! CRIU's `rpc.proto` messages on the wire: the few request fields capsa
//! sets, encoded by hand, and the reply fields it reads.

use super::{Opts, ReqType, Resp};

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
pub(super) fn request(typ: ReqType, opts: Option<&Opts>) -> Vec<u8> {
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

pub(super) fn decode(b: &[u8]) -> Option<Resp> {
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
