//! The verified procfs (sys/src/procfs.rs) and the refusal of mounts that
//! land on /proc, attacked through `capsa-runtime run` and `capsa run`.

use capsa_tests::engines::busybox_rootfs_tar;
use capsa_tests::images::{oci_layout_with, LayerTar};
use capsa_tests::registry::Capsa;
use capsa_tests::*;
use serde_json::json;

fn host_sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/"))).unwrap()
}

/// A bind over `/proc/sys/net/ipv4`, and a sysctl asked for through it:
/// refused before anything is written, and the host's value unchanged.
#[test]
fn a_bind_over_proc_sys_is_refused_and_the_host_sysctl_unchanged() {
    let env = Env::new("procfs-bind");
    let fake = env.dir.join("fake-ipv4");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("ip_forward"), "0\n").unwrap();
    let before = host_sysctl("net.ipv4.ip_unprivileged_port_start");
    let mut b = env.bundle("b");
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/proc/sys/net/ipv4", "type": "bind",
                     "source": fake, "options": ["rbind"]}));
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": "77"});
    b.args(&["true"]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    assert!(!o.status.success(), "a bind over /proc/sys was accepted");
    let e = stderr(&o);
    assert!(
        e.contains("/proc/sys/net/ipv4") && e.contains("lands on /proc"),
        "{e}"
    );
    assert_eq!(host_sysctl("net.ipv4.ip_unprivileged_port_start"), before);
    env.assert_gone(&id);
}

/// A mount named `/foo` where the image has `/foo -> /proc/sys`: the
/// target is checked where it resolves, not by its name.
#[test]
fn a_mount_led_onto_proc_by_an_image_link_is_refused() {
    let env = Env::new("procfs-link");
    let mut b = env.bundle("b");
    std::os::unix::fs::symlink("/proc/sys", b.rootfs().join("foo")).unwrap();
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/foo", "type": "tmpfs", "source": "tmpfs"}));
    b.args(&["true"]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    assert!(!o.status.success(), "a tmpfs over /proc/sys was accepted");
    assert!(stderr(&o).contains("lands on /proc"), "{}", stderr(&o));
}

/// Only proc itself at /proc.
#[test]
fn something_else_than_proc_at_proc_is_refused() {
    let env = Env::new("procfs-tmpfs");
    let mut b = env.bundle("b");
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/proc" {
            *m = json!({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"});
        }
    }
    b.args(&["true"]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("only proc may be mounted at /proc"),
        "{}",
        stderr(&o)
    );
}

/// Sysctls are written through our own procfs, after /proc/sys turned
/// read-only: they take effect in the container, and the container still
/// sees /proc/sys read-only.
#[test]
fn sysctls_are_written_although_proc_sys_is_read_only() {
    let env = Env::new("procfs-sysctl");
    let before = host_sysctl("net.ipv4.ip_unprivileged_port_start");
    let mut b = env.bundle("b");
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": "77"});
    b.args(&[
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; echo 1 > /proc/sys/net/ipv4/ip_unprivileged_port_start || echo read-only",
    ]);
    let id = env.id("c");
    let out = env.rt_ok(&["run", "-b", b.path(), &id]);
    assert!(out.starts_with("77"), "{out}");
    assert!(out.contains("read-only"), "{out}");
    assert_eq!(host_sysctl("net.ipv4.ip_unprivileged_port_start"), before);
}

/// A sysctl name that walks out of /proc/sys is refused.
#[test]
fn a_sysctl_name_cannot_leave_proc_sys() {
    let env = Env::new("procfs-name");
    let mut b = env.bundle("b");
    b.config["linux"]["sysctl"] = json!({"kernel....self.attr.exec": "x"});
    b.args(&["true"]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("sysctl"), "{}", stderr(&o));
}

/// An image that declares `VOLUME /proc` (or under /sys, /dev) is
/// refused by `capsa run`, naming the field.
#[test]
fn an_image_volume_over_proc_sys_or_dev_is_refused() {
    let env = Env::new("procfs-volume");
    let c = Capsa::new(&env, "c");
    // Spelled plainly, spelled around, and through the image's own link.
    let link = LayerTar::default().symlink("vol", "/dev").bytes();
    for (i, v) in ["/proc", "/sys/kernel", "/dev", "/./dev", "/vol"]
        .iter()
        .enumerate()
    {
        let layout = env.dir.join(format!("layout{i}"));
        let tag = format!("vol{i}");
        oci_layout_with(
            &layout,
            &tag,
            &[("amd64", vec![busybox_rootfs_tar(), link.clone()])],
            json!({"Volumes": {*v: {}}}),
        );
        c.ok(&["load", "-q", "-i", layout.to_str().unwrap()]);
        let e = c.fails(&["run", "--rm", &format!("localhost/imported:{tag}"), "true"]);
        assert!(e.contains("config.Volumes") && e.contains(v), "{v}: {e}");
    }
}
