//! The door (runtime/src/door.rs), attacked through every entry path that
//! puts a process into a container: `capsa-runtime run`, `create`+`start`
//! and `exec`; `capsa run` and `capsa exec`. (The CRI path is in cri.rs.)

use capsa_tests::images::load_busybox_probe;
use capsa_tests::registry::Capsa;
use capsa_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Copies of the named binaries in a directory of the test's own, so that
/// an attack that works never breaks the build's binaries.
fn copies(env: &Env, names: &[&str]) -> PathBuf {
    let dir = env.dir.join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    for n in names {
        std::fs::copy(bin_dir().join(n), dir.join(n)).unwrap();
    }
    dir
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_default()).unwrap_or_default()
}

/// The attacker's verdict: it caught at least one host binary running in
/// the container, and could not write to it because the file refuses
/// writes (EROFS through the sealed overlay, EPERM on a sealed memfd).
fn assert_attack_failed(r: &Value, binary: &Path, original: &[u8]) {
    // A binary the attacker wrote is put back first, so that the test's
    // clean-up can still run it.
    let changed = std::fs::read(binary).unwrap() != original;
    if changed {
        std::fs::write(binary, original).unwrap();
    }
    assert!(
        r["caught"].as_u64().unwrap_or(0) >= 1,
        "the attacker never caught the host binary: {r}"
    );
    assert_eq!(r["wrote"], false, "the attacker wrote to the binary: {r}");
    let why = r["last_error"].as_str().unwrap_or("");
    assert!(
        why.contains("Read-only file system") || why.contains("Operation not permitted"),
        "refused for another reason than a sealed file: {r}"
    );
    assert!(!changed, "{} changed on the host", binary.display());
}

const SHEBANG: &str = "#!/proc/self/exe\n";

/// CVE-2019-5736 through `capsa-runtime exec`: the container makes a
/// program whose interpreter is `#!/proc/self/exe`; when the host execs
/// it, the kernel runs the runtime's own binary inside the container. The
/// attacker stops it, holds its exe, kills it and writes through the
/// handle.
#[test]
fn shebang_swap_through_runtime_exec_cannot_write_the_runtime() {
    let mut env = Env::new("door-rtexec");
    let bins = copies(&env, &["capsa-runtime"]);
    env.runtime = bins.join("capsa-runtime");
    let original = std::fs::read(&env.runtime).unwrap();
    let mut b = env.bundle("b");
    b.args(&["/probe", "attack-shebang", "/tmp/a.json", "120"]);
    let evil = b.rootfs().join("evil");
    std::fs::write(&evil, SHEBANG).unwrap();
    std::fs::set_permissions(&evil, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let result = b.rootfs().join("tmp/a.json");
    assert!(wait_for(10, || read_json(&result)["phase"] == "waiting"));
    for _ in 0..100 {
        // Not env.rt: a binary the attack broke must not panic here.
        let Ok(o) = env.cmd(&["exec", &id, "/evil"]).output() else {
            break;
        };
        assert!(!o.status.success(), "the runtime ran /evil as a runtime");
        if read_json(&result)["caught"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
    }
    assert!(wait_for(10, || read_json(&result)["phase"] != "waiting"));
    assert_attack_failed(&read_json(&result), &env.runtime, &original);
}

/// The same swap as a container's entrypoint (`create` + `start`): the
/// init execs the script, so the kernel runs the runtime's binary as the
/// container's first program. No pid namespace, so that the attacker (an
/// exec'd process of the same container) outlives it.
#[test]
fn shebang_entrypoint_cannot_write_the_runtime() {
    let mut env = Env::new("door-rtentry");
    let bins = copies(&env, &["capsa-runtime"]);
    env.runtime = bins.join("capsa-runtime");
    let original = std::fs::read(&env.runtime).unwrap();
    let mut b = env.bundle("b");
    b.without_namespace("pid");
    b.args(&["/evil"]);
    let evil = b.rootfs().join("evil");
    std::fs::write(&evil, SHEBANG).unwrap();
    std::fs::set_permissions(&evil, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let result = b.rootfs().join("tmp/a.json");
    for n in 0..20 {
        let _ = std::fs::remove_file(&result);
        let id = env.id(&format!("c{n}"));
        env.rt_ok(&["create", "-b", b.path(), &id]);
        env.rt_ok(&[
            "exec",
            "--detach",
            &id,
            "/probe",
            "attack-shebang",
            "/tmp/a.json",
            "5",
        ]);
        assert!(wait_for(10, || read_json(&result)["phase"] == "waiting"));
        env.rt_ok(&["start", &id]);
        assert!(wait_for(10, || read_json(&result)["phase"] != "waiting"));
        if read_json(&result)["wrote"] == true {
            break;
        }
        env.rt_ok(&["delete", "--force", &id]);
        if read_json(&result)["caught"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
    }
    assert_attack_failed(&read_json(&result), &env.runtime, &original);
}

/// A capsa whose binaries are copies of the test's own.
fn capsa_copy(env: &Env) -> (Capsa, &'static str, PathBuf) {
    let bins = copies(env, &["capsa", "capsa-monitor", "capsa-probe"]);
    let mut c = Capsa::new(env, "c");
    c.bin = bins.join("capsa");
    let img = load_busybox_probe(env, &c);
    (c, img, bins)
}

/// CVE-2019-5736 through `capsa exec`: the kernel runs the `capsa` command
/// line inside the container.
#[test]
fn shebang_swap_through_capsa_exec_cannot_write_capsa() {
    let env = Env::new("door-capsaexec");
    let (c, img, bins) = capsa_copy(&env);
    let original = std::fs::read(bins.join("capsa")).unwrap();
    let script = format!(
        "printf '{}' > /evil && chmod 755 /evil && exec /probe attack-shebang /out/a.json 120",
        SHEBANG.replace('\n', "\\n")
    );
    // The verdict comes out through a bind mount: capsa may be broken.
    let out = env.dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let vol = format!("{}:/out", out.display());
    c.ok(&[
        "run", "-d", "--name", "victim", "-v", &vol, img, "sh", "-c", &script,
    ]);
    let result = || read_json(&out.join("a.json"));
    assert!(wait_for(10, || result()["phase"] == "waiting"));
    let mut last = Value::Null;
    for _ in 0..100 {
        // Not c.run: a binary the attack broke must not panic here.
        let Ok(o) = c.cmd(&["exec", "victim", "/evil"]).output() else {
            break;
        };
        assert!(!o.status.success(), "capsa ran /evil as capsa");
        last = result();
        if last["caught"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
    }
    if last["wrote"] != true {
        assert!(wait_for(10, || result()["phase"] != "waiting"));
        last = result();
    }
    assert_attack_failed(&last, &bins.join("capsa"), &original);
}

/// The monitor forks every container's init: it runs from a sealed image,
/// so the init's `/proc/PID/exe`, and a `#!/proc/self/exe` entrypoint, are
/// sealed too. Checked on the running monitor and init from the host.
#[test]
fn capsa_run_monitor_and_init_run_sealed() {
    let env = Env::new("door-monitor");
    let (c, img, _bins) = capsa_copy(&env);
    c.ok(&["run", "-d", "--name", "s", img, "sleep", "100"]);
    let v: Value = serde_json::from_str(&c.ok(&["inspect", "s"])).unwrap();
    let monitor = v[0]["State"]["MonitorPid"]
        .as_i64()
        .or_else(|| v[0]["MonitorPid"].as_i64())
        .expect("inspect shows the monitor's pid");
    let exe = std::fs::File::open(format!("/proc/{monitor}/exe")).unwrap();
    assert!(
        capsa_sys::exe::is_sealed(std::os::fd::AsRawFd::as_raw_fd(&exe)),
        "the monitor runs from an unsealed binary"
    );
}

/// A host directory fd open in the container's first process while it
/// looks up its program (CVE-2024-21626): `args[0]` as
/// `/proc/self/fd/N/../../..<host path>` for every N from 3 to 64 must
/// not find a program that exists only on the host.
fn host_only_program(env: &Env) -> String {
    let dir = env.dir.join("hostonly");
    std::fs::create_dir_all(&dir).unwrap();
    // busybox is static: it runs without anything from the image. Named
    // `echo`, it echoes.
    std::fs::copy("/bin/busybox", dir.join("echo")).unwrap();
    dir.join("echo").display().to_string()
}

fn through_fd(n: u32, host: &str) -> String {
    format!("/proc/self/fd/{n}{}{host}", "/..".repeat(20))
}

#[test]
fn args0_through_a_host_fd_is_not_found_by_runtime_run_and_exec() {
    let env = Env::new("door-fdargs");
    let host = host_only_program(&env);
    let mut b = env.bundle("b");
    for n in 3..=64 {
        let prog = through_fd(n, &host);
        b.args(&[&prog, "ESCAPED"]);
        let id = env.id(&format!("r{n}"));
        let o = env.rt(&["run", "-b", b.path(), &id]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            !o.status.success() && !out.contains("ESCAPED"),
            "run: fd {n} reached the host: {out}"
        );
        assert!(
            stderr(&o).contains("no such file"),
            "fd {n}: {}",
            stderr(&o)
        );
    }
    b.args(&["sleep", "100"]);
    let id = env.id("x");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    for n in 3..=64 {
        let prog = through_fd(n, &host);
        let o = env.rt(&["exec", &id, &prog, "ESCAPED"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            !o.status.success() && !out.contains("ESCAPED"),
            "exec: fd {n} reached the host: {out}"
        );
    }
    // And what the exec'd process holds: stdio, and the directory its own
    // ls opens.
    let fds = env.rt_ok(&["exec", &id, "ls", "/proc/self/fd"]);
    let fds: Vec<&str> = fds.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "exec'd process holds more fds");
}

#[test]
fn args0_through_a_host_fd_is_not_found_by_capsa_run_and_exec() {
    let env = Env::new("door-fdcapsa");
    let host = host_only_program(&env);
    let c = Capsa::new(&env, "c");
    let img = load_busybox_probe(&env, &c);
    c.ok(&["run", "-d", "--name", "x", img, "sleep", "100"]);
    for n in 3..=64 {
        let prog = through_fd(n, &host);
        let o = c.run(&["run", "--rm", img, &prog, "ESCAPED"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.code() == Some(127) && !out.contains("ESCAPED"),
            "run: fd {n} reached the host ({}): {out} {}",
            o.status,
            stderr(&o)
        );
        let o = c.run(&["exec", "x", &prog, "ESCAPED"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            !o.status.success() && !out.contains("ESCAPED"),
            "exec: fd {n} reached the host: {out}"
        );
    }
    let fds = c.ok(&["exec", "x", "ls", "/proc/self/fd"]);
    let fds: Vec<&str> = fds.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "exec'd process holds more fds");
    let fds = c.ok(&["run", "--rm", img, "ls", "/proc/self/fd"]);
    let fds: Vec<&str> = fds.split_whitespace().collect();
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "a container's init holds more fds"
    );
}

/// `exec --cap` adds the capability to the bounding, effective and
/// permitted sets only (CVE-2022-29162): an unprivileged user keeps no
/// inheritable or ambient capability across execve.
#[test]
fn exec_cap_never_reaches_inheritable_or_ambient() {
    let env = Env::new("door-execcap");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let status = env.rt_ok(&[
        "exec",
        "--user",
        "1000:1000",
        "--cap",
        "CAP_NET_RAW",
        &id,
        "cat",
        "/proc/self/status",
    ]);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap()
    };
    assert_eq!(field("CapInh:"), 0, "{status}");
    assert_eq!(field("CapAmb:"), 0, "{status}");
    assert_ne!(field("CapBnd:") & (1 << 13), 0, "NET_RAW not in bounding");
}

/// What counts as sealed: the door's own image (a detached lower-only
/// overlay), not a file of a read-only overlay that is mounted somewhere
/// (host root could remount that one read-write).
#[test]
fn only_a_detached_overlay_or_a_sealed_memfd_counts_as_sealed() {
    use std::os::fd::AsRawFd;
    let env = Env::new("door-sealed");
    let (lower, empty, mnt) = (
        env.dir.join("lower"),
        env.dir.join("empty"),
        env.dir.join("mnt"),
    );
    for d in [&lower, &empty, &mnt] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy("/bin/busybox", lower.join("prog")).unwrap();
    let opts = format!("lowerdir={}:{}", lower.display(), empty.display());
    nix::mount::mount(
        Some("overlay"),
        &mnt,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )
    .unwrap();
    // Env's drop unmounts what is left under its directory.
    let attached = std::fs::File::open(mnt.join("prog")).unwrap();
    assert!(
        !capsa_sys::exe::is_sealed(attached.as_raw_fd()),
        "a file of a mounted read-only overlay counted as sealed"
    );
    drop(attached);
    nix::mount::umount(&mnt).unwrap();
    let plain = std::fs::File::open(lower.join("prog")).unwrap();
    assert!(!capsa_sys::exe::is_sealed(plain.as_raw_fd()));
    let (image, how) = capsa_sys::exe::sealed(&lower.join("prog")).unwrap();
    assert_eq!(
        how,
        capsa_sys::exe::Seal::Overlay,
        "root gets the zero-copy image"
    );
    assert!(capsa_sys::exe::is_sealed(image.as_raw_fd()));
}
