//! Hostile and ordinary layer tars, unpacked for real into temp dirs.

use super::*;
use crate::error::Error;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;

struct Dirs {
    top: PathBuf,
    layer: PathBuf,
    outside: PathBuf,
}

impl Dirs {
    fn new(name: &str) -> Dirs {
        let top =
            std::env::temp_dir().join(crate::store::unique_name(&format!("capsa-unpack-{name}-")));
        let layer = top.join("layer");
        let outside = top.join("outside");
        fs::create_dir_all(&layer).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), b"host data").unwrap();
        Dirs {
            top,
            layer,
            outside,
        }
    }
    /// Nothing but the planted secret, unchanged.
    fn assert_outside_untouched(&self) {
        let names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["secret".to_string()],
            "something was written outside the layer"
        );
        let m = fs::metadata(self.outside.join("secret")).unwrap();
        assert_eq!(m.nlink(), 1, "the host file gained a hard link");
        assert_eq!(fs::read(self.outside.join("secret")).unwrap(), b"host data");
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.top);
    }
}

/// A tar built entry by entry with raw names, which tar::Builder would
/// refuse to write (that is the point: attackers use other tools).
#[derive(Default)]
struct Tar {
    b: Vec<u8>,
}

impl Tar {
    fn raw(mut self, name: &str, kind: tar::EntryType, link: &str, data: &[u8], mode: u32) -> Tar {
        let mut h = tar::Header::new_ustar();
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&h, data).unwrap();
        let mut bytes = builder.into_inner().unwrap();
        bytes.truncate(bytes.len() - 1024); // drop the end-of-archive blocks
        self.b.extend(bytes);
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Tar {
        self.raw(name, tar::EntryType::Regular, "", data, 0o644)
    }
    fn symlink(self, name: &str, target: &str) -> Tar {
        self.raw(name, tar::EntryType::Symlink, target, b"", 0o777)
    }
    fn hardlink(self, name: &str, target: &str) -> Tar {
        self.raw(name, tar::EntryType::Link, target, b"", 0o644)
    }
    fn dir(self, name: &str) -> Tar {
        self.raw(name, tar::EntryType::Directory, "", b"", 0o755)
    }
    fn bytes(mut self) -> Vec<u8> {
        self.b.extend([0u8; 1024]);
        self.b
    }
}

fn unpack(d: &Dirs, tar: Vec<u8>) -> Result<Unpacked> {
    unpack_layer(&tar[..], &d.layer)
}

#[test]
fn dot_dot_names_stay_inside_the_layer() {
    let d = Dirs::new("dotdot");
    let rel = "../outside/pwned";
    unpack(
        &d,
        Tar::default()
            .file(rel, b"x")
            .file("../../../../x2", b"y")
            .bytes(),
    )
    .unwrap();
    d.assert_outside_untouched();
    assert_eq!(fs::read(d.layer.join("outside/pwned")).unwrap(), b"x");
    assert_eq!(fs::read(d.layer.join("x2")).unwrap(), b"y");
}

#[test]
fn absolute_names_are_relative_to_the_layer() {
    let d = Dirs::new("abs");
    let abs = format!("{}/pwned", d.outside.display());
    unpack(&d, Tar::default().file(&abs, b"x").bytes()).unwrap();
    d.assert_outside_untouched();
    assert!(d.layer.join(abs.trim_start_matches('/')).is_file());
}

#[test]
fn a_symlink_to_the_host_cannot_be_written_through() {
    let d = Dirs::new("symlink");
    let target = d.outside.display().to_string();
    let tar = Tar::default()
        .symlink("link", &target)
        .file("link/pwned", b"x")
        .bytes();
    let err = unpack(&d, tar).unwrap_err();
    assert!(matches!(err, Error::UnsafeEntry { .. }), "{err}");
    d.assert_outside_untouched();
    assert_eq!(fs::read_link(d.layer.join("link")).unwrap(), d.outside);
}

#[test]
fn a_symlink_climbing_out_resolves_to_the_layer_root() {
    let d = Dirs::new("climb");
    let target = d.outside.display().to_string();
    let tar = Tar::default()
        .symlink("rel", "../../../../../../../../")
        .file(&format!("rel{target}/pwned"), b"y")
        .bytes();
    unpack(&d, tar).unwrap();
    d.assert_outside_untouched();
    assert!(d
        .layer
        .join(target.trim_start_matches('/'))
        .join("pwned")
        .is_file());
}

#[test]
fn a_symlink_chain_cannot_lead_out() {
    let d = Dirs::new("chain");
    let tar = Tar::default()
        .symlink("a", "b")
        .symlink("b", "c/../../..")
        .dir("c")
        .file(&format!("a{}/pwned", d.outside.display()), b"x")
        .bytes();
    unpack(&d, tar).unwrap();
    d.assert_outside_untouched();
}

#[test]
fn hard_links_to_outside_files_are_refused() {
    let d = Dirs::new("hardlink");
    let target = format!("../../{}/secret", d.outside.display());
    let err = unpack(&d, Tar::default().hardlink("hl", &target).bytes()).unwrap_err();
    assert!(matches!(err, Error::UnsafeEntry { .. }), "{err}");
    assert!(err.to_string().contains("not in this layer"), "{err}");
    d.assert_outside_untouched();
}

#[test]
fn a_hard_link_to_a_symlink_links_the_symlink_not_its_target() {
    let d = Dirs::new("hl-symlink");
    let secret = d.outside.join("secret").display().to_string();
    let tar = Tar::default()
        .symlink("sl", &secret)
        .hardlink("hl", "sl")
        .file("hl", b"overwrite")
        .bytes();
    unpack(&d, tar).unwrap();
    d.assert_outside_untouched();
    assert_eq!(fs::read(d.layer.join("hl")).unwrap(), b"overwrite");
}

#[test]
fn a_symlink_replaced_by_a_directory_is_a_real_directory() {
    let d = Dirs::new("replace");
    let tar = Tar::default()
        .symlink("d", &d.outside.display().to_string())
        .dir("d")
        .file("d/pwned", b"x")
        .bytes();
    unpack(&d, tar).unwrap();
    d.assert_outside_untouched();
    let m = fs::symlink_metadata(d.layer.join("d")).unwrap();
    assert!(m.is_dir());
    assert!(d.layer.join("d/pwned").is_file());
}

#[test]
fn a_file_replaced_by_a_symlink_and_written_again_stays_inside() {
    let d = Dirs::new("file-then-link");
    let tar = Tar::default()
        .file("f", b"1")
        .symlink("f", &d.outside.join("secret").display().to_string())
        .file("f", b"2")
        .bytes();
    unpack(&d, tar).unwrap();
    d.assert_outside_untouched();
    assert_eq!(fs::read(d.layer.join("f")).unwrap(), b"2");
}

/// Both of overlay's namespaces: `trusted.` (root) and `user.` (the
/// rootless overlay, mounted with `userxattr`).
#[test]
fn overlay_attributes_in_a_tar_are_refused() {
    for attr in [
        "trusted.overlay.redirect",
        "user.overlay.redirect",
        "user.overlay.metacopy",
    ] {
        let d = Dirs::new("xattr");
        let mut b = tar::Builder::new(Vec::new());
        let key = format!("SCHILY.xattr.{attr}");
        b.append_pax_extensions([(key.as_str(), &b"/etc"[..])])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_path("dir/").unwrap();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
        let err = unpack(&d, b.into_inner().unwrap()).unwrap_err();
        assert!(err.to_string().contains(attr), "{err}");
    }
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let d = Dirs::new("whiteout");
    let tar = Tar::default()
        .dir("etc")
        .file("etc/.wh.gone", b"")
        .dir("opaque")
        .file("opaque/.wh..wh..opq", b"")
        .file("opaque/kept", b"k")
        .bytes();
    unpack(&d, tar).unwrap();
    let m = fs::symlink_metadata(d.layer.join("etc/gone")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
    assert!(!d.layer.join("etc/.wh.gone").exists());
    let mut v = [0u8; 4];
    let n = rustix::fs::getxattr(d.layer.join("opaque").as_path(), opaque_xattr(), &mut v).unwrap();
    assert_eq!(&v[..n], b"y");
    assert!(d.layer.join("opaque/kept").is_file());
}

#[test]
fn ownership_modes_times_links_nodes_and_xattrs_are_kept() {
    let d = Dirs::new("meta");
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>,
               path: &str,
               kind: tar::EntryType,
               mode: u32,
               uid: u64,
               link: Option<&str>,
               data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid + 1);
        h.set_mtime(1_500_000_000);
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        if kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add(
        &mut b,
        "bin/",
        tar::EntryType::Directory,
        0o750,
        0,
        None,
        b"",
    );
    add(
        &mut b,
        "bin/su",
        tar::EntryType::Regular,
        0o4755,
        1000,
        None,
        b"binary",
    );
    add(
        &mut b,
        "bin/su-link",
        tar::EntryType::Link,
        0o4755,
        1000,
        Some("bin/su"),
        b"",
    );
    add(
        &mut b,
        "bin/sh",
        tar::EntryType::Symlink,
        0o777,
        7,
        Some("busybox"),
        b"",
    );
    add(
        &mut b,
        "dev/null",
        tar::EntryType::Char,
        0o666,
        0,
        None,
        b"",
    );
    add(
        &mut b,
        "run/fifo",
        tar::EntryType::Fifo,
        0o600,
        0,
        None,
        b"",
    );
    b.append_pax_extensions([("SCHILY.xattr.user.capsa", &b"kept"[..])])
        .unwrap();
    add(
        &mut b,
        "bin/x",
        tar::EntryType::Regular,
        0o644,
        0,
        None,
        b"",
    );
    let tar = b.into_inner().unwrap();
    let u = unpack(&d, tar.clone()).unwrap();
    assert_eq!(u.diff_id, Some(crate::digest::Digest::of(&tar)));
    let su = fs::metadata(d.layer.join("bin/su")).unwrap();
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755);
    assert_eq!((su.uid(), su.gid()), (1000, 1001));
    assert_eq!(su.mtime(), 1_500_000_000);
    assert_eq!(su.nlink(), 2);
    assert_eq!(
        fs::metadata(d.layer.join("bin")).unwrap().mtime(),
        1_500_000_000
    );
    assert_eq!(
        fs::metadata(d.layer.join("bin"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o750
    );
    let sh = fs::symlink_metadata(d.layer.join("bin/sh")).unwrap();
    assert_eq!(sh.uid(), 7);
    assert_eq!(
        fs::read_link(d.layer.join("bin/sh")).unwrap(),
        PathBuf::from("busybox")
    );
    let null = fs::metadata(d.layer.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.permissions().mode() & 0o777, 0o666);
    assert!(fs::metadata(d.layer.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let mut v = [0u8; 8];
    let n = rustix::fs::getxattr(d.layer.join("bin/x").as_path(), "user.capsa", &mut v).unwrap();
    assert_eq!(&v[..n], b"kept");
}

#[test]
fn gzip_and_zstd_layers_unpack_to_the_same_diff_id() {
    use std::io::Write;
    let tar = Tar::default()
        .dir("a")
        .file("a/b", &vec![42u8; 100_000])
        .bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let want = crate::digest::Digest::of(&tar);
    for (name, blob) in [("plain", tar.clone()), ("gzip", gz), ("zstd", zst)] {
        let d = Dirs::new(name);
        let u = unpack_layer(&blob[..], &d.layer).unwrap();
        assert_eq!(u.diff_id.as_ref(), Some(&want), "{name}");
        assert_eq!(fs::read(d.layer.join("a/b")).unwrap().len(), 100_000);
    }
}

#[test]
fn a_truncated_layer_is_an_error() {
    use std::io::Write;
    let tar = Tar::default().file("big", &vec![1u8; 300_000]).bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let d = Dirs::new("truncated");
    assert!(unpack_layer(&gz[..gz.len() / 2], &d.layer).is_err());
}
