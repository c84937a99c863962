//! `capsa-guest`: boot the pure cgroup v2 guest of issue 15 (the one
//! `tests/guest.rs` runs the v2 suite in), run one shell script in it as
//! root, print its output and exit with its code. For trying things on a
//! systemd + pure v2 host by hand, and for `bench/guest.sh`.
//!
//! Usage: capsa-guest [--share DIR] [--timeout SECS] SCRIPT
//!
//! DIR (default: the workspace's target directory) is shared read-write at
//! `/capsa`; the guest's disk is a snapshot, so nothing it does survives.

use capsa_tests::guest::Guest;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

fn usage() -> ! {
    eprintln!("usage: capsa-guest [--share DIR] [--timeout SECS] SCRIPT");
    std::process::exit(2)
}

fn main() {
    let mut share = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"));
    let mut timeout = 1800u64;
    let mut script = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--share" => share = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--timeout" => {
                timeout = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            _ if a.starts_with('-') => usage(),
            _ if script.is_none() => script = Some(a),
            _ => usage(),
        }
    }
    let Some(script) = script else { usage() };
    let share = match std::fs::canonicalize(&share) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("capsa-guest: {}: {e}", share.display());
            std::process::exit(1)
        }
    };
    let dir = std::env::temp_dir().join(format!("capsa-guest-{}", std::process::id()));
    let code = {
        let mut g = match Guest::boot(&dir, &share) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("capsa-guest: the guest did not boot: {e}");
                let _ = std::fs::remove_dir_all(&dir);
                std::process::exit(1)
            }
        };
        eprintln!("capsa-guest: booted ({})", g.accel);
        match g.exec(&script, Duration::from_secs(timeout)) {
            Ok(o) => {
                let _ = std::io::stdout().write_all(o.stdout.as_bytes());
                let _ = std::io::stderr().write_all(o.stderr.as_bytes());
                i32::try_from(o.code).unwrap_or(1)
            }
            Err(e) => {
                eprintln!("capsa-guest: {e}");
                1
            }
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::process::exit(code)
}
