//! The root filesystem: read-only root, bind mounts, tmpfs, devices,
//! masked and read-only paths, the cgroup mount, --no-pivot.

use capsa_tests::*;
use serde_json::json;

fn run(env: &Env, b: &capsa_tests::Bundle) -> std::process::Output {
    env.rt(&["run", "-b", b.path(), &env.id("c")])
}

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn readonly_root_refuses_writes() {
    let env = Env::new("roroot");
    let mut b = env.bundle("b");
    b.config["root"]["readonly"] = json!(true);
    b.args(&[
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo wrote || echo refused; touch /dev/shm/ok && echo tmpfs-ok",
    ]);
    let o = run(&env, &b);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(out(&o), "refused\ntmpfs-ok\n");
    assert!(!b.rootfs().join("x").exists());
}

#[test]
fn bind_mounts_with_options_and_tmpfs() {
    let env = Env::new("binds");
    let host = env.dir.join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("data"), "from-host").unwrap();
    let mut b = env.bundle("b");
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({ "destination": "/mnt/ro", "type": "bind", "source": host, "options": ["rbind", "ro"] }));
    mounts.push(
        json!({ "destination": "/mnt/rw", "type": "none", "source": host, "options": ["bind"] }),
    );
    mounts.push(json!({ "destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=1777"] }));
    b.args(&["sh", "-c", "cat /mnt/ro/data; echo; touch /mnt/ro/x 2>/dev/null || echo ro-refused; echo new > /mnt/rw/written; stat -c %a /scratch; grep ' /scratch ' /proc/self/mountinfo | grep -c tmpfs"]);
    let o = run(&env, &b);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(out(&o), "from-host\nro-refused\n1777\n1\n");
    assert_eq!(
        std::fs::read_to_string(host.join("written")).unwrap(),
        "new\n"
    );
}

#[test]
fn mount_destinations_cannot_escape_the_rootfs_through_symlinks() {
    let env = Env::new("symlinkdest");
    let mut b = env.bundle("b");
    // /evil -> /.. -> ... would be the host's / if followed naively.
    let outside = env.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, b.rootfs().join("evil")).unwrap();
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs" }));
    b.args(&[
        "sh",
        "-c",
        "grep -c ' /evil/sub \\| /.*outside/sub ' /proc/self/mountinfo; true",
    ]);
    let o = run(&env, &b);
    assert!(o.status.success(), "{}", stderr(&o));
    // The directory was made inside the rootfs, not in the host directory
    // the link names.
    assert!(
        !outside.join("sub").exists(),
        "mount target was created outside the rootfs"
    );
    assert!(b
        .rootfs()
        .join(outside.strip_prefix("/").unwrap())
        .join("sub")
        .exists());
}

#[test]
fn proc_refuses_to_land_on_a_symlink() {
    let env = Env::new("procsymlink");
    let mut b = env.bundle("b");
    std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
    std::os::unix::fs::symlink("/tmp", b.rootfs().join("proc")).unwrap();
    b.args(&["true"]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/proc must be mounted on ordinary directory"),
        "{}",
        stderr(&o)
    );
    env.assert_gone(&id);
}

#[test]
fn sysfs_refuses_to_land_on_a_symlink() {
    let env = Env::new("syssymlink");
    let mut b = env.bundle("b");
    std::fs::remove_dir(b.rootfs().join("sys")).unwrap();
    std::os::unix::fs::symlink("/tmp", b.rootfs().join("sys")).unwrap();
    b.args(&["true"]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/sys must be mounted on ordinary directory"),
        "{}",
        stderr(&o)
    );
    env.assert_gone(&id);
}

#[test]
fn default_devices_and_spec_devices_exist() {
    let env = Env::new("devices");
    let mut b = env.bundle("b");
    b.config["linux"]["devices"] = json!([{ "path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0 }]);
    b.args(&["sh", "-c", "for d in null zero full random urandom tty mynull; do stat -c '%n %F %t:%T' /dev/$d; done; readlink /dev/fd; readlink /dev/ptmx; echo x > /dev/mynull && echo writable"]);
    let o = run(&env, &b);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = out(&o);
    assert!(
        text.contains("/dev/null character special file 1:3"),
        "{text}"
    );
    assert!(
        text.contains("/dev/mynull character special file 1:3"),
        "{text}"
    );
    assert!(
        text.contains("/dev/tty character special file 5:0"),
        "{text}"
    );
    assert!(text.contains("/proc/self/fd\npts/ptmx\n"), "{text}");
    assert!(text.ends_with("writable\n"));
}

#[test]
fn device_cgroup_denies_devices_not_allowed() {
    let env = Env::new("devcgroup");
    let mut b = env.bundle("b");
    // Add CAP_MKNOD so only the device cgroup stands in the way.
    b.grant_cap("CAP_MKNOD");
    b.args(&["sh", "-c", "mknod /tmp/disk b 8 0 && (head -c1 /tmp/disk >/dev/null 2>&1 && echo read-disk || echo denied)"]);
    let o = run(&env, &b);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(out(&o), "denied\n");
}

#[test]
fn masked_and_readonly_paths_stay_so() {
    let env = Env::new("masked");
    let mut b = env.bundle("b");
    b.args(&["sh", "-c", "wc -c < /proc/keys; wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo ro; grep -E ' /proc/(keys|sys) ' /proc/self/mountinfo | wc -l"]);
    let o = run(&env, &b);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = out(&o).lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(lines, vec!["0", "0", "0", "ro", "2"]);
}

/// The masked directories are one read-only tmpfs, bound at each (as runc
/// 1.2): the same device everywhere, and nothing can be written there.
#[test]
fn masked_directories_share_one_read_only_tmpfs() {
    let env = Env::new("maskshare");
    let mut b = env.bundle("b");
    b.config["linux"]["maskedPaths"] =
        json!(["/proc/acpi", "/proc/scsi", "/sys/firmware", "/proc/kcore"]);
    b.args(&[
        "sh",
        "-c",
        "stat -c %d /proc/acpi /proc/scsi /sys/firmware | sort -u | wc -l; \
         stat -f -c %T /proc/acpi; touch /sys/firmware/x 2>/dev/null || echo ro",
    ]);
    let o = run(&env, &b);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(out(&o), "1\ntmpfs\nro\n");
}

#[test]
fn cgroup_mount_shows_the_container_cgroup() {
    let env = Env::new("cgmount");
    let mut b = env.bundle("b");
    b.config["linux"]["resources"]["pids"] = json!({ "limit": 77 });
    b.args(&["sh", "-c", "cat /sys/fs/cgroup/pids/pids.max; ls /sys/fs/cgroup/pids | grep -c '^capsa-test' ; touch /sys/fs/cgroup/pids/x 2>/dev/null || echo ro"]);
    let o = run(&env, &b);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(out(&o), "77\n0\nro\n");
}

#[test]
fn no_pivot_moves_and_chroots() {
    let env = Env::new("nopivot");
    let mut b = env.bundle("b");
    b.args(&["sh", "-c", "ls /; cat /proc/self/mountinfo | head -1"]);
    let id = env.id("c");
    let o = env.rt(&["run", "--no-pivot", "-b", b.path(), &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out(&o).contains("probe"), "{}", out(&o));
    env.assert_gone(&id);
}

#[test]
fn memory_cpu_and_pids_limits_land_in_the_cgroup_files() {
    let env = Env::new("limits");
    let mut b = env.bundle("b");
    b.config["linux"]["resources"]["memory"] = json!({ "limit": 67108864 });
    b.config["linux"]["resources"]["cpu"] =
        json!({ "shares": 512, "quota": 50000, "period": 100000 });
    b.config["linux"]["resources"]["pids"] = json!({ "limit": 32 });
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let base = |ctl: &str, f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctl}/{}/b/{f}", env.cgroup_parent))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(base("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(base("cpu", "cpu.shares"), "512");
    assert_eq!(base("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(base("pids", "pids.max"), "32");
    env.rt_ok(&["delete", "-f", &id]);
    env.assert_gone(&id);
}

/// A bind mount with uidMappings/gidMappings is id-mapped: files owned by
/// host root show as the mapped ids, where a plain bind shows them as they
/// are on disk.
#[test]
fn idmapped_bind_mounts_show_mapped_owners() {
    let env = Env::new("idmap");
    let host = env.dir.join("owned-by-root");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "x").unwrap();
    let mut b = env.bundle("b");
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({ "destination": "/plain", "type": "bind", "source": host, "options": ["bind"] }),
    );
    mounts.push(json!({
        "destination": "/mapped", "type": "bind", "source": host, "options": ["bind", "idmap"],
        "uidMappings": [{ "containerID": 0, "hostID": 1234, "size": 1 }],
        "gidMappings": [{ "containerID": 0, "hostID": 4321, "size": 1 }]
    }));
    b.args(&["sh", "-c", "stat -c '%u:%g' /plain/f /mapped/f"]);
    let o = env.rt(&["run", "-b", b.path(), &env.id("c")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0:0\n1234:4321\n");
    // The host file is unchanged.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(host.join("f")).unwrap().uid(), 0);

    // In a user namespace (0 -> 100000), mapping the mount the same way
    // makes host root's files the container root's.
    b.user_namespace(100000);
    let m = b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .last_mut()
        .unwrap();
    m["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    m["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    b.args(&["sh", "-c", "stat -c '%u:%g' /plain/f /mapped/f"]);
    let o = env.rt(&["run", "-b", b.path(), &env.id("userns")]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Unmapped host root shows as the overflow id; the mapped mount as 0.
    assert_eq!(String::from_utf8_lossy(&o.stdout), "65534:65534\n0:0\n");
}

#[test]
fn idmapped_mounts_need_both_maps_and_a_bind() {
    let env = Env::new("idmapbad");
    let mut b = env.bundle("b");
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/t", "type": "tmpfs", "source": "tmpfs",
        "uidMappings": [{ "containerID": 0, "hostID": 1234, "size": 1 }],
        "gidMappings": [{ "containerID": 0, "hostID": 1234, "size": 1 }]
    }));
    b.save();
    let id = env.id("c");
    let o = env.rt(&["create", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("mounts[7].uidMappings: id-mapped mounts are supported for bind mounts"),
        "{}",
        stderr(&o)
    );
    env.assert_gone(&id);
}

/// An id-mapped bind is cloned by the runtime on the host, where the
/// kernel locks none of the source mount's flags: a source on a read-only
/// (or nosuid, nodev, noexec) host mount is refused, or the container's
/// root could remount it writable and write there as the mapped host owner.
#[test]
fn an_idmapped_bind_of_a_read_only_host_mount_is_refused() {
    let env = Env::new("idmapro");
    let host = env.dir.join("ro");
    std::fs::create_dir_all(&host).unwrap();
    let h = host.display();
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mount --bind {h} {h} && mount -o remount,bind,ro {h}"
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Env's drop unmounts it, even when the test fails.
    let mut b = env.bundle("b");
    b.user_namespace(100000);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp", "type": "bind", "source": host, "options": ["bind", "idmap"],
        "uidMappings": [{ "containerID": 0, "hostID": 100000, "size": 65536 }],
        "gidMappings": [{ "containerID": 0, "hostID": 100000, "size": 65536 }]
    }));
    // The attacker: root of its user namespace with CAP_SYS_ADMIN there.
    b.grant_cap("CAP_SYS_ADMIN");
    b.config["linux"]["seccomp"] = serde_json::Value::Null;
    b.args(&[
        "sh",
        "-c",
        "mount -o remount,bind,rw /tmp; echo owned > /tmp/pwned",
    ]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    assert!(
        !host.join("pwned").exists(),
        "the container wrote through a read-only host mount"
    );
    assert!(
        !o.status.success(),
        "an id-mapped bind of a read-only mount ran"
    );
    let e = stderr(&o);
    assert!(
        e.contains("cannot keep those flags locked") && e.contains("RDONLY"),
        "{e}"
    );
    env.assert_gone(&id);
}

/// The recursive mount options (OCI 1.1: `rro`, `rnoexec`, ...) reach the
/// mounts under a bind too, through `mount_setattr(AT_RECURSIVE)`.
#[test]
fn recursive_mount_options_reach_submounts() {
    let env = Env::new("rro");
    let src = env.dir.join("src");
    env.mount_tmpfs(&src.join("sub"), Some("1m"));
    std::fs::write(src.join("sub/tool"), "#!/bin/sh\necho ran\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(src.join("sub/tool"))
            .unwrap()
            .permissions(),
        0o755,
    );
    std::fs::set_permissions(
        src.join("sub/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut b = env.bundle("b");
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/mnt", "type": "bind", "source": src,
                       "options": ["rbind", "rro", "rnoexec", "rnoatime"]}));
    b.args(&[
        "sh",
        "-c",
        "touch /mnt/a 2>&1; touch /mnt/sub/b 2>&1; /mnt/sub/tool 2>&1; grep ' /mnt/sub ' /proc/self/mountinfo; echo done",
    ]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &stderr(&o);
    assert_eq!(
        out.matches("Read-only file system").count(),
        2,
        "both levels read-only: {out}"
    );
    assert!(
        out.contains("Permission denied") && !out.contains("ran"),
        "noexec below: {out}"
    );
    assert!(out.contains("done"), "{out}");
    // An atime mode reaches the submount too.
    let sub = out
        .lines()
        .find(|l| l.contains(" /mnt/sub "))
        .unwrap_or_default();
    assert!(sub.contains("noatime"), "{out}");
    // The host's mounts keep their flags.
    std::fs::write(src.join("sub/host-write"), "ok").unwrap();
    env.assert_gone(&id);
}

#[test]
fn a_read_only_dev_is_read_only_with_its_devices_and_submounts_made() {
    let env = Env::new("rodev");
    let mut b = env.bundle("b");
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    let dev = mounts
        .iter_mut()
        .find(|m| m["destination"] == "/dev")
        .unwrap();
    dev["options"].as_array_mut().unwrap().push(json!("ro"));
    b.args(&[
        "sh",
        "-c",
        "grep '^tmpfs /dev ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; \
         test -c /dev/null && echo null; grep -c ' /dev/pts devpts rw' /proc/mounts; \
         touch /dev/x 2>/dev/null || echo refused",
    ]);
    let o = env.rt(&["run", "-b", b.path(), &env.id("c")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ro\nnull\n1\nrefused\n");
}

/// A read-only tmpfs whose mount point is reached through a link inside
/// the root (`/conf -> /real/conf`) is made read-only where it was
/// mounted, resolved the same way.
#[test]
fn a_read_only_tmpfs_under_an_in_root_link_is_mounted() {
    let env = Env::new("rotmpfslink");
    let mut b = env.bundle("b");
    std::fs::create_dir_all(b.rootfs().join("real/conf")).unwrap();
    std::os::unix::fs::symlink("/real/conf", b.rootfs().join("conf")).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "type": "tmpfs", "source": "tmpfs", "destination": "/conf/stack",
        "options": ["ro", "nodev", "nosuid"]
    }));
    b.args(&[
        "sh",
        "-c",
        "grep ' /real/conf/stack tmpfs ro,' /proc/mounts | wc -l",
    ]);
    let o = env.rt(&["run", "-b", b.path(), &env.id("c")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1");
}

/// A bind takes its source's mount flags; what the options clear by name
/// (`suid`, `dev`, `rw`) is cleared on it, as runc's remount does, and
/// what they do not name stays as the source has it.
#[test]
fn bind_options_clear_the_flags_they_name() {
    let env = Env::new("bindclear");
    let src = env.dir.join("src");
    env.mount_tmpfs(&src, None);
    // The source: nosuid, nodev, read-only (the mount's flags, not its
    // filesystem's).
    nix::mount::mount(
        None::<&str>,
        &src,
        None::<&str>,
        nix::mount::MsFlags::MS_REMOUNT
            | nix::mount::MsFlags::MS_BIND
            | nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .unwrap();
    let mut b = env.bundle("b");
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({ "destination": "/kept", "type": "bind", "source": src, "options": ["bind"] }),
    );
    mounts.push(json!({ "destination": "/cleared", "type": "bind", "source": src, "options": ["bind", "suid", "dev", "rw"] }));
    b.args(&[
        "sh",
        "-c",
        "grep -E ' /(kept|cleared) ' /proc/mounts | cut -d' ' -f2,4",
    ]);
    let o = env.rt(&["run", "-b", b.path(), &env.id("c")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let opts = |m: &str| -> Vec<String> {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{m} ")))
            .unwrap_or_else(|| panic!("{m} not mounted: {out}"))
            .split(',')
            .map(str::to_string)
            .collect()
    };
    let kept = opts("/kept");
    assert!(
        kept.contains(&"ro".into())
            && kept.contains(&"nosuid".into())
            && kept.contains(&"nodev".into()),
        "{out}"
    );
    let cleared = opts("/cleared");
    assert!(cleared.contains(&"rw".into()), "{out}");
    assert!(
        !cleared.contains(&"nosuid".into()) && !cleared.contains(&"nodev".into()),
        "{out}"
    );
}

/// A tmpfs without `mode=` takes the mode of the directory it covers, as
/// runc's does; with `mode=` it has that one.
#[test]
fn a_tmpfs_keeps_the_mode_of_its_mount_point() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("tmpfsmode");
    let mut b = env.bundle("b");
    for (d, mode) in [("kept", 0o750), ("given", 0o700)] {
        std::fs::create_dir(b.rootfs().join(d)).unwrap();
        std::fs::set_permissions(b.rootfs().join(d), std::fs::Permissions::from_mode(mode))
            .unwrap();
    }
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({ "destination": "/kept", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"] }));
    mounts.push(json!({ "destination": "/given", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"] }));
    b.args(&["stat", "-c", "%a", "/kept", "/given"]);
    let o = env.rt(&["run", "-b", b.path(), &env.id("c")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "750\n1777\n");
}

/// `tmpcopyup`: the tmpfs starts with a copy of what the directory it
/// covers held (files, directories, links, modes, owners); the image's
/// special files are not copied, and a link is copied as a link, never
/// followed out of the root.
#[test]
fn tmpcopyup_copies_the_covered_directory_into_the_tmpfs() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("copyup");
    let mut b = env.bundle("b");
    let etc = b.rootfs().join("data");
    std::fs::create_dir_all(etc.join("sub")).unwrap();
    std::fs::write(etc.join("sub/file"), "from the image").unwrap();
    std::fs::set_permissions(etc.join("sub/file"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(etc.join("sub/file"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", etc.join("link")).unwrap();
    // A set-id file keeps its bits when its owner is given (chown first).
    std::fs::write(etc.join("setid"), "x").unwrap();
    std::os::unix::fs::chown(etc.join("setid"), Some(0), Some(0)).unwrap();
    std::fs::set_permissions(etc.join("setid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    nix::unistd::mkfifo(
        &etc.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]
    }));
    b.args(&[
        "sh",
        "-c",
        "cat /data/sub/file; echo; stat -c '%a %u %g' /data/sub/file; readlink /data/link; \
         test -e /data/fifo || echo no-fifo; stat -f -c %T /data; stat -c %a /data/setid; \
         echo new > /data/sub/file",
    ]);
    let o = env.rt(&["run", "-b", b.path(), &env.id("c")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "from the image\n640 1234 5678\n/etc/shadow\nno-fifo\ntmpfs\n4755\n"
    );
    // Written on the tmpfs, not the image.
    assert_eq!(
        std::fs::read_to_string(etc.join("sub/file")).unwrap(),
        "from the image"
    );
}
