//! Issue 15: a pure cgroup v2 host with systemd as PID 1, for real. Boots
//! the Debian 12 guest (`scripts/guest-image.sh`, `tests/src/guest.rs`)
//! once and runs the v2 suite (`tests/v2.rs`) inside it, with the binaries
//! of this build shared over 9p.

use capsa_tests::guest::Guest;
use std::path::{Path, PathBuf};
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
    let in_guest = |p: &Path| Path::new("/capsa").join(p.strip_prefix(&target).unwrap());
    let mut g = match Guest::boot(&env.dir.join("vm"), &target) {
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
    let bins = in_guest(&std::fs::canonicalize(capsa_tests::bin_dir()).unwrap());
    // The suite's output also goes to a file in the share, so that a run
    // that hangs still shows how far it got.
    let log = target.join(".guest-v2.log");
    let script = format!(
        "cd /tmp && CI=1 CAPSA_BIN_DIR={} RUST_BACKTRACE=1 {} --ignored --test-threads=2 2>&1 | tee {}; exit ${{PIPESTATUS[0]}}",
        bins.display(),
        in_guest(&suite).display(),
        in_guest(&log).display()
    );
    let o = match g.exec(
        &format!("bash -c {}", shell_quote(&script)),
        Duration::from_secs(900),
    ) {
        Ok(o) => o,
        Err(e) => panic!(
            "{e}; the suite so far:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
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
}
