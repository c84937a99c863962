//! `capsa-bench`: capsa-runtime beside runc, crun and the syscall floor, in
//! one run, on one busybox bundle running `true`.
//!
//! Every runtime runs in a private mount namespace where
//! `/sys/fs/cgroup/unified` is unmounted (crun 1.8 refuses this host's
//! hybrid layout otherwise), rounds are interleaved so that drift hits all
//! runtimes alike, and the table reports medians and ratios to crun.
//!
//! Usage: capsa-bench [--runs N] [--capsa PATH] [--floor PATH]

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

struct Runtime {
    name: &'static str,
    bin: PathBuf,
    root: PathBuf,
}

#[derive(Default)]
struct Samples {
    ms: Vec<f64>,
    rss_kib: Vec<i64>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len().is_multiple_of(2) {
        (s[m - 1] + s[m]) / 2.0
    } else {
        s[m]
    }
}

/// Spawn, wait with wait4; (milliseconds, peak RSS KiB, success).
// The child is reaped by wait4, which also gives its rusage.
#[allow(clippy::zombie_processes)]
fn timed(cmd: &mut Command) -> (f64, i64, bool) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let t = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (status, rss) = capsa_sys::process::wait4(pid).expect("wait4");
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    (
        ms,
        rss,
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    )
}

fn rt(r: &Runtime, args: &[&str]) -> Command {
    let mut c = Command::new(&r.bin);
    c.arg("--root").arg(&r.root).args(args);
    c
}

fn wait_exit(pid: i32) {
    if let Ok(fd) = capsa_sys::process::pidfd_open(nix::unistd::Pid::from_raw(pid)) {
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&fd),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(5000u16));
    }
}

/// create, start, wait for the process to exit, delete: (ms, peak RSS of
/// create in KiB, all succeeded).
fn lifecycle(r: &Runtime, bundle: &Path, id: &str, work: &Path) -> (f64, i64, bool) {
    let pidfile = work.join(format!("{id}.pid"));
    let t = Instant::now();
    let (_, rss, ok_c) = timed(&mut rt(
        r,
        &[
            "create",
            "-b",
            bundle.to_str().unwrap(),
            "--pid-file",
            pidfile.to_str().unwrap(),
            id,
        ],
    ));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let (_, _, ok_s) = timed(&mut rt(r, &["start", id]));
    wait_exit(pid);
    let (_, _, ok_d) = timed(&mut rt(r, &["delete", id]));
    (
        t.elapsed().as_secs_f64() * 1000.0,
        rss,
        ok_c && ok_s && ok_d,
    )
}

fn bundle(dir: &Path, args: &[&str]) {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("busybox-static is needed (/bin/busybox)");
    for a in ["sh", "true", "sleep"] {
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a));
    }
    let mut spec = capsa_spec::defaults::hardened(None).unwrap();
    // crun 1.8 knows spec versions up to 1.0.x only.
    spec.set_version("1.0.2".into());
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(false));
        p.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
    }
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .unwrap();
}

fn private_mounts() {
    capsa_sys::process::unshare(libc::CLONE_NEWNS).expect("unshare mount namespace (run as root)");
    let none = None::<&str>;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).expect("make / private");
    // crun 1.8 refuses a v1 host with a v2 mount beside it.
    let _ = umount2("/sys/fs/cgroup/unified", MntFlags::MNT_DETACH);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut runs = 20usize;
    let here = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut capsa = here.join("capsa-runtime");
    let mut floor = here.join("capsa-floor");
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--runs" => runs = args[i + 1].parse().expect("--runs N"),
            "--capsa" => capsa = PathBuf::from(&args[i + 1]),
            "--floor" => floor = PathBuf::from(&args[i + 1]),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    private_mounts();
    let work = std::env::temp_dir().join(format!("capsa-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let b_true = work.join("true");
    let b_sleep = work.join("sleep");
    bundle(&b_true, &["true"]);
    bundle(&b_sleep, &["sleep", "100"]);
    let b_plain = work.join("plain");
    bundle(&b_plain, &["true"]);
    let cfg = b_plain.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    spec["linux"].as_object_mut().unwrap().remove("seccomp");
    std::fs::write(&cfg, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let b_limits = work.join("limits");
    bundle(&b_limits, &["true"]);
    let cfg = b_limits.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    spec["linux"]["resources"]["memory"] = serde_json::json!({ "limit": 268435456 });
    spec["linux"]["resources"]["cpu"] =
        serde_json::json!({ "shares": 512, "quota": 50000, "period": 100000 });
    spec["linux"]["resources"]["pids"] = serde_json::json!({ "limit": 100 });
    std::fs::write(&cfg, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();

    let mut runtimes = vec![Runtime {
        name: "capsa",
        bin: capsa,
        root: work.join("root-capsa"),
    }];
    for (name, path) in [("crun", "/usr/bin/crun"), ("runc", "/usr/sbin/runc")] {
        if Path::new(path).exists() {
            runtimes.push(Runtime {
                name,
                bin: PathBuf::from(path),
                root: work.join(format!("root-{name}")),
            });
        }
    }
    let ops = [
        "run",
        "lifecycle",
        "lifecycle + limits",
        "delete -f",
        "run, no seccomp",
    ];
    let mut results: Vec<Vec<Samples>> = runtimes
        .iter()
        .map(|_| ops.iter().map(|_| Samples::default()).collect())
        .collect();
    let mut floor_s = Samples::default();
    let mut failures = Vec::new();

    for round in 0..runs + 2 {
        let warm = round < 2;
        for (ri, r) in runtimes.iter().enumerate() {
            let id = format!("bench-{}-{round}", r.name);
            // run without the default seccomp profile: the cost of the rest.
            let (ms, _, ok) = timed(&mut rt(
                r,
                &["run", "-b", b_plain.to_str().unwrap(), &format!("{id}-p")],
            ));
            if !ok {
                failures.push(format!("{} run (no seccomp) failed", r.name));
            }
            if !warm {
                results[ri][4].ms.push(ms);
            }
            // run: create + start + wait + delete, in one command.
            let (ms, rss, ok) =
                timed(rt(r, &["run", "-b", b_true.to_str().unwrap(), &id]).current_dir(&b_true));
            if !ok {
                failures.push(format!("{} run failed", r.name));
            }
            if !warm {
                results[ri][0].ms.push(ms);
                results[ri][0].rss_kib.push(rss);
            }
            // lifecycle: create, start, wait for exit, delete; without
            // and with memory, cpu and pids limits.
            for (oi, bundle, tag) in [(1, &b_true, "l"), (2, &b_limits, "ll")] {
                let (ms, rss, ok) = lifecycle(r, bundle, &format!("{id}-{tag}"), &work);
                if !ok {
                    failures.push(format!("{} lifecycle failed ({tag})", r.name));
                }
                if !warm {
                    results[ri][oi].ms.push(ms);
                    results[ri][oi].rss_kib.push(rss);
                }
            }
            // delete -f of a running container.
            let id = format!("{id}-d");
            let (_, _, ok_r) = timed(&mut rt(
                r,
                &["run", "-d", "-b", b_sleep.to_str().unwrap(), &id],
            ));
            let (ms, rss, ok) = timed(&mut rt(r, &["delete", "-f", &id]));
            if !(ok_r && ok) {
                failures.push(format!("{} delete -f failed ({ok_r} {ok})", r.name));
            }
            if !warm {
                results[ri][3].ms.push(ms);
                results[ri][3].rss_kib.push(rss);
            }
        }
        let (ms, rss, ok) = timed(
            Command::new(&floor)
                .arg(b_true.join("rootfs"))
                .arg("/bin/true"),
        );
        if !ok {
            failures.push("floor failed".into());
        }
        if !warm {
            floor_s.ms.push(ms);
            floor_s.rss_kib.push(rss);
        }
    }

    let crun = runtimes.iter().position(|r| r.name == "crun");
    println!(
        "capsa-bench: {runs} runs each (after 2 warm-up rounds), busybox `true`, medians in ms"
    );
    println!();
    print!("| operation |");
    for r in &runtimes {
        print!(" {} |", r.name);
    }
    println!(" floor | capsa / crun |");
    print!("|---|");
    for _ in &runtimes {
        print!("---|");
    }
    println!("---|---|");
    for (oi, op) in ops.iter().enumerate() {
        print!("| {op} |");
        for res in &results {
            print!(" {:.2} |", median(&res[oi].ms));
        }
        let f = if oi == 0 || oi == 4 {
            format!("{:.2}", median(&floor_s.ms))
        } else {
            "-".into()
        };
        let ratio = crun
            .map(|c| {
                format!(
                    "{:.2}x",
                    median(&results[0][oi].ms) / median(&results[c][oi].ms)
                )
            })
            .unwrap_or_else(|| "-".into());
        println!(" {f} | {ratio} |");
    }
    print!("| peak RSS of `run` (MiB) |");
    for res in &results {
        let max = res[0].rss_kib.iter().copied().max().unwrap_or(0);
        print!(" {:.1} |", max as f64 / 1024.0);
    }
    println!(
        " {:.1} | - |",
        floor_s.rss_kib.iter().copied().max().unwrap_or(0) as f64 / 1024.0
    );
    if !failures.is_empty() {
        failures.sort();
        failures.dedup();
        println!();
        println!("failures: {}", failures.join("; "));
    }
    door_cost(&runtimes[0].bin, runs);
    for r in &runtimes {
        let _ = std::fs::remove_dir_all(&r.root);
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// What the door's sealed image of capsa-runtime costs to make, each way
/// (the overlay is what root gets; the memfd copy is the fallback).
fn door_cost(bin: &Path, runs: usize) {
    let size = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
    let mut overlay = Vec::new();
    let mut memfd = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let (fd, how) = capsa_sys::exe::sealed(bin).expect("sealed image");
        overlay.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(how, capsa_sys::exe::Seal::Overlay);
        drop(fd);
        let t = Instant::now();
        let fd = capsa_sys::exe::memfd_copy(bin).expect("memfd copy");
        memfd.push(t.elapsed().as_secs_f64() * 1000.0);
        drop(fd);
    }
    println!();
    println!(
        "the door's sealed image of capsa-runtime ({:.1} MiB), median of {runs}: lower-only overlay {:.3} ms, sealed memfd copy {:.3} ms",
        size as f64 / (1 << 20) as f64,
        median(&overlay),
        median(&memfd)
    );
}
