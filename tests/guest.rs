//! Issue 15: a pure cgroup v2 host with systemd as PID 1, for real. Boots
//! the Debian 12 guest (`scripts/guest-image.sh`, `tests/src/guest.rs`)
//! once and runs the v2 suite (`tests/v2.rs`) inside it, with the binaries
//! of this build shared over 9p.

use capsa_tests::guest::Guest;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The newest built test binary named `name` (`deps/NAME-HASH`).
fn test_binary(deps: &Path, name: &str) -> PathBuf {
    let prefix = format!("{name}-");
    std::fs::read_dir(deps)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && !n.contains('.') && e.path().is_file()
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .unwrap_or_else(|| panic!("no {name} test binary in {}", deps.display()))
}

/// `src` without its debug information, at `dst`.
fn strip_into(src: &Path, dst: &Path) {
    let o = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(dst)
        .arg(src)
        .output()
        .expect("strip (binutils)");
    assert!(
        o.status.success(),
        "strip {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `s` as one word for sh.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn the_v2_suite_passes_in_a_pure_v2_systemd_guest() {
    let env = capsa_tests::Env::new("guest");
    // The target directory holds the binaries and the test binaries.
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let target = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let suite = test_binary(&deps, "v2");
    // Under TCG the emulated guest has been seen to stop answering, now
    // and then, in the middle of a suite that passes when run again: one
    // more try in a freshly booted guest, said loudly. A second hang, or
    // any failure of the suite itself, fails the test.
    if let Err(hang) = suite_in_guest(&env.dir.join("vm"), &target, &suite) {
        eprintln!("GUEST HUNG, trying once more in a new guest: {hang}");
        if let Err(again) = suite_in_guest(&env.dir.join("vm2"), &target, &suite) {
            panic!("the guest hung twice:\n{hang}\n---\n{again}");
        }
    }
}

/// Boot a guest at `vm` and run the v2 suite in it. An `Err` is a guest
/// that stopped answering (its words and console); everything else that
/// goes wrong panics.
fn suite_in_guest(vm: &Path, target: &Path, suite: &Path) -> Result<(), String> {
    let target = target.to_path_buf();
    let in_guest = |p: &Path| Path::new("/capsa").join(p.strip_prefix(&target).unwrap());
    let mut g = match Guest::boot(vm, &target) {
        Ok(g) => g,
        Err(e) => panic!("the guest did not boot: {e}"),
    };
    eprintln!("guest booted ({})", g.accel);
    let facts = g
        .exec(
            "stat -fc %T /sys/fs/cgroup; cat /proc/1/comm; uname -r",
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(
        facts.stdout.lines().take(2).collect::<Vec<_>>(),
        ["cgroup2fs", "systemd"],
        "{facts:?}"
    );
    // The guest runs stripped copies on its own disk, not the debug
    // binaries over 9p: each capsa-runtime call re-executes itself from a
    // sealed copy, and a 100 MB image read over emulated 9p per call, times
    // containerd's calls, is what two hung runs had in common.
    let stage = target.join("guest-bin");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).unwrap();
    let mut names = vec![];
    for e in std::fs::read_dir(capsa_tests::bin_dir()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let exec = e
            .metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if exec && name.starts_with("capsa") {
            strip_into(&e.path(), &stage.join(&name));
            names.push(name);
        }
    }
    strip_into(suite, &stage.join("v2-suite"));
    assert!(names.iter().any(|n| n == "capsa-runtime"), "{names:?}");
    let log = "/var/tmp/capsa-v2.log";
    let script = format!(
        "set -e; rm -rf /opt/capsa; mkdir -p /opt/capsa; cp {stage}/* /opt/capsa/; cd /tmp; \
         set +e; CI=1 CAPSA_BIN_DIR=/opt/capsa RUST_BACKTRACE=1 /opt/capsa/v2-suite --ignored --test-threads=2 2>&1 | tee {log}; exit ${{PIPESTATUS[0]}}",
        stage = in_guest(&stage).display(),
    );
    let o = g.exec(
        &format!("bash -c {}", shell_quote(&script)),
        Duration::from_secs(900),
    );
    let _ = std::fs::remove_dir_all(&stage);
    let o = match o {
        Ok(o) => o,
        Err(e) => {
            let so_far = g
                .exec(&format!("cat {log}"), Duration::from_secs(30))
                .map(|o| o.stdout)
                .unwrap_or_else(|e| format!("(the guest does not answer: {e})"));
            let what = format!(
                "{e}; the suite so far:\n{so_far}\nthe console's end:\n{}",
                tail(&g.console(), 40)
            );
            if e.contains("did not answer in time") {
                return Err(what);
            }
            panic!("{what}")
        }
    };
    eprintln!("{}", o.stdout);
    assert_eq!(
        o.code, 0,
        "the v2 suite failed in the guest:\n{}{}",
        o.stdout, o.stderr
    );
    assert!(o.stdout.contains("test result: ok"), "{}", o.stdout);
    assert!(!o.stdout.contains(" 0 passed"), "nothing ran: {}", o.stdout);
    // Nothing left behind in the guest: no cgroup of ours, no unit.
    let left = g
        .exec(
            "ls -d /sys/fs/cgroup/capsa-test-* /sys/fs/cgroup/capsa 2>/dev/null; systemctl list-units --all --plain --no-legend 'capsa-*' 'runc-*' 'crun-*' '*.scope' | grep -v -e '^session-' -e '^init.scope' -e '^-.slice' || true",
            Duration::from_secs(30),
        )
        .unwrap();
    assert!(
        left.stdout.trim().is_empty(),
        "left in the guest: {}",
        left.stdout
    );
    Ok(())
}
