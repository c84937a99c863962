//! `run`'s namespace and process flags: `--pid`, `--ipc`, `--uts` as host
//! or another container's, `--shm-size`, `--group-add`,
//! `--memory-reservation`, `--oom-kill-disable`, `--oom-score-adj`,
//! `--cidfile`, `--annotation`.

use capsa_tests::images::load_busybox_probe;
use capsa_tests::registry::Capsa;
use capsa_tests::Env;

fn inside(c: &Capsa, args: &[&str]) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    c.ok(&a).trim().to_string()
}

#[test]
fn namespaces_are_shared_with_a_container_or_the_host_as_asked() {
    let env = Env::new("runflags-ns");
    let c = Capsa::new(&env, "r");
    let image = load_busybox_probe(&env, &c);
    c.ok(&[
        "run", "-d", "--name", "x", "-h", "xhost", image, "sleep", "1000",
    ]);
    let ns = |args: &[&str], kind: &str| {
        let mut a: Vec<&str> = args.to_vec();
        let link = format!("/proc/self/ns/{kind}");
        a.extend_from_slice(&[image, "readlink", &link]);
        inside(&c, &a)
    };
    let of_x = |kind: &str| {
        c.ok(&["exec", "x", "readlink", &format!("/proc/self/ns/{kind}")])
            .trim()
            .to_string()
    };
    let of_host = |kind: &str| {
        std::fs::read_link(format!("/proc/self/ns/{kind}"))
            .unwrap()
            .display()
            .to_string()
    };

    // --pid container:X shows X's processes.
    let ps = inside(&c, &["--pid", "container:x", image, "ps", "-o", "args"]);
    assert!(ps.contains("sleep 1000"), "{ps}");
    assert_eq!(ns(&["--pid", "container:x"], "pid"), of_x("pid"));
    assert_eq!(ns(&["--ipc", "container:x"], "ipc"), of_x("ipc"));
    assert_eq!(ns(&["--uts", "container:x"], "uts"), of_x("uts"));
    assert_eq!(
        inside(&c, &["--uts", "container:x", image, "hostname"]),
        "xhost"
    );
    // Private by default: none of them is X's or the host's.
    for kind in ["pid", "ipc", "uts"] {
        let own = ns(&[], kind);
        assert_ne!(own, of_x(kind));
        assert_ne!(own, of_host(kind));
    }
    assert_eq!(ns(&["--pid", "host"], "pid"), of_host("pid"));
    assert_eq!(ns(&["--ipc", "host"], "ipc"), of_host("ipc"));
    assert_eq!(ns(&["--uts", "host"], "uts"), of_host("uts"));
    let host_name = nix::sys::utsname::uname()
        .unwrap()
        .nodename()
        .to_string_lossy()
        .into_owned();
    assert_eq!(inside(&c, &["--uts", "host", image, "hostname"]), host_name);
    // The host's hostname is never set from a container: -h with a UTS
    // namespace not its own is refused.
    let e = c.fails(&["run", "--rm", "--uts", "host", "-h", "evil", image, "true"]);
    assert!(e.contains("--hostname"), "{e}");
    assert_eq!(
        nix::sys::utsname::uname()
            .unwrap()
            .nodename()
            .to_string_lossy(),
        host_name
    );
    // --ipc host brings the host's /dev/shm; none, no /dev/shm.
    let probe = format!("capsa-test-{}", std::process::id());
    inside(
        &c,
        &[
            "--ipc",
            "host",
            image,
            "touch",
            &format!("/dev/shm/{probe}"),
        ],
    );
    assert!(std::path::Path::new(&format!("/dev/shm/{probe}")).exists());
    std::fs::remove_file(format!("/dev/shm/{probe}")).unwrap();
    let shm = inside(
        &c,
        &[
            "--ipc",
            "none",
            image,
            "sh",
            "-c",
            "grep ' /dev/shm ' /proc/self/mountinfo; true",
        ],
    );
    assert_eq!(shm, "");
    let shm = inside(
        &c,
        &[
            "--shm-size",
            "1m",
            image,
            "grep",
            " /dev/shm ",
            "/proc/self/mountinfo",
        ],
    );
    assert!(shm.contains("size=1024k"), "{shm}");

    // Security: x rewrites its /etc/hostname (a file of the host's run
    // directory): a container sharing its UTS namespace takes the name
    // from x's record, and no line of x's writing reaches its /etc/hosts.
    c.ok(&[
        "exec",
        "x",
        "sh",
        "-c",
        "printf 'xhost\\n6.6.6.6 bank.example\\n' > /etc/hostname",
    ]);
    let hosts = inside(
        &c,
        &[
            "--uts",
            "container:x",
            image,
            "cat",
            "/etc/hosts",
            "/etc/hostname",
        ],
    );
    assert!(!hosts.contains("bank.example"), "{hosts}");

    // Security: a join is resolved again at each start. y joins x's PID
    // namespace; x starts again (a new init, a new pid): y follows it, and
    // never joins whatever took x's old pid.
    c.ok(&[
        "create",
        "--name",
        "y",
        "--pid",
        "container:x",
        image,
        "sleep",
        "1000",
    ]);
    c.ok(&["stop", "-t", "1", "x"]);
    c.ok(&["start", "x"]);
    c.ok(&["start", "y"]);
    assert_eq!(
        c.ok(&["exec", "y", "readlink", "/proc/self/ns/pid"]).trim(),
        of_x("pid")
    );
    c.ok(&["stop", "-t", "1", "x"]);
    c.ok(&["stop", "-t", "1", "y"]);
    let e = c.fails(&["start", "y"]);
    assert!(e.contains("--pid") && e.contains("not running"), "{e}");
    c.ok(&["start", "x"]);

    // A container that is not running cannot be joined; bad values name
    // the flag.
    c.ok(&["create", "--name", "idle", image, "true"]);
    let e = c.fails(&["run", "--rm", "--pid", "container:idle", image, "true"]);
    assert!(e.contains("--pid") && e.contains("not running"), "{e}");
    let e = c.fails(&["run", "--rm", "--ipc", "sometimes", image, "true"]);
    assert!(e.contains("--ipc"), "{e}");
    let e = c.fails(&["run", "--rm", "--uts", "none", image, "true"]);
    assert!(e.contains("--uts"), "{e}");
}

#[test]
fn process_and_memory_flags_reach_the_kernel() {
    let env = Env::new("runflags-proc");
    let c = Capsa::new(&env, "r");
    let image = load_busybox_probe(&env, &c);
    let ids = inside(
        &c,
        &[
            "--group-add",
            "1234",
            "--group-add",
            "99",
            image,
            "id",
            "-G",
        ],
    );
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert!(ids.contains(&"1234") && ids.contains(&"99"), "{ids:?}");
    let e = c.fails(&["run", "--rm", "--group-add", "nosuchgroup", image, "true"]);
    assert!(
        e.contains("--group-add") && e.contains("nosuchgroup"),
        "{e}"
    );
    // (Raising it: lowering needs CAP_SYS_RESOURCE, which this host's root lacks.)
    assert_eq!(
        inside(
            &c,
            &[
                "--oom-score-adj",
                "500",
                image,
                "cat",
                "/proc/self/oom_score_adj"
            ]
        ),
        "500"
    );
    let e = c.fails(&["run", "--rm", "--oom-score-adj", "5000", image, "true"]);
    assert!(e.contains("--oom-score-adj"), "{e}");

    c.ok(&[
        "run",
        "-d",
        "--name",
        "mem",
        "--memory",
        "64m",
        "--memory-reservation",
        "32m",
        "--oom-kill-disable",
        "--annotation",
        "org.example/who=me",
        image,
        "sleep",
        "1000",
    ]);
    let v: serde_json::Value = serde_json::from_str(&c.ok(&["inspect", "mem"])).unwrap();
    let files = &v[0]["Cgroup"]["Files"];
    let path = v[0]["Cgroup"]["Path"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory/{path}/{f}"))
            .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/{path}/{f}")))
            .unwrap_or_default()
    };
    let soft = read("memory.soft_limit_in_bytes") + &read("memory.low");
    assert_eq!(soft.trim(), (32 << 20).to_string(), "{files}");
    if std::path::Path::new(&format!("/sys/fs/cgroup/memory/{path}")).exists() {
        assert!(read("memory.oom_control").contains("oom_kill_disable 1"));
    }
    assert_eq!(v[0]["HostConfig"]["Annotations"]["org.example/who"], "me");
    let e = c.fails(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--memory-reservation",
        "128m",
        image,
        "true",
    ]);
    assert!(e.contains("--memory-reservation"), "{e}");

    // --cidfile: the id, written once; a file there already is refused
    // before anything is made.
    let cid = env.dir.join("cid");
    let id = c.ok(&[
        "run",
        "-d",
        "--cidfile",
        cid.to_str().unwrap(),
        image,
        "sleep",
        "1000",
    ]);
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id.trim());
    let before = c.ok(&["ps", "-aq"]);
    let e = c.fails(&[
        "run",
        "-d",
        "--cidfile",
        cid.to_str().unwrap(),
        image,
        "true",
    ]);
    assert!(e.contains("--cidfile") && e.contains("exists"), "{e}");
    assert_eq!(c.ok(&["ps", "-aq"]), before);
    // A run that fails leaves no id file behind.
    let other = env.dir.join("cid2");
    c.fails(&[
        "run",
        "--cidfile",
        other.to_str().unwrap(),
        "localhost/no-such:image",
        "true",
    ]);
    assert!(!other.exists());
}

#[test]
fn cpu_memory_and_name_flags_and_the_refused_ones() {
    let env = Env::new("runflags-more");
    let c = Capsa::new(&env, "r");
    let image = load_busybox_probe(&env, &c);
    c.ok(&[
        "run",
        "-d",
        "--name",
        "cpu",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--cpuset-mems",
        "0",
        "--memory",
        "64m",
        "--memory-swappiness",
        "10",
        image,
        "sleep",
        "1000",
    ]);
    let v: serde_json::Value = serde_json::from_str(&c.ok(&["inspect", "cpu"])).unwrap();
    let path = v[0]["Cgroup"]["Path"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let v1 = |ctl: &str, f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctl}/{path}/{f}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    if std::path::Path::new(&format!("/sys/fs/cgroup/memory/{path}")).exists() {
        let cpu = |f: &str| {
            let a = v1("cpu,cpuacct", f);
            if a.is_empty() {
                v1("cpu", f)
            } else {
                a
            }
        };
        assert_eq!(cpu("cpu.cfs_period_us"), "50000");
        assert_eq!(cpu("cpu.cfs_quota_us"), "25000");
        assert_eq!(v1("cpuset", "cpuset.mems"), "0");
        assert_eq!(v1("memory", "memory.swappiness"), "10");
    } else {
        let max = std::fs::read_to_string(format!("/sys/fs/cgroup/{path}/cpu.max")).unwrap();
        assert_eq!(max.trim(), "25000 50000");
    }
    assert_eq!(
        inside(
            &c,
            &[
                "--domainname",
                "example.org",
                image,
                "cat",
                "/proc/sys/kernel/domainname"
            ]
        ),
        "example.org"
    );
    let host_cg = std::fs::read_link("/proc/self/ns/cgroup")
        .unwrap()
        .display()
        .to_string();
    assert_eq!(
        inside(
            &c,
            &[
                "--cgroupns",
                "host",
                image,
                "readlink",
                "/proc/self/ns/cgroup"
            ]
        ),
        host_cg
    );
    assert_ne!(
        inside(&c, &[image, "readlink", "/proc/self/ns/cgroup"]),
        host_cg
    );

    // What capsa does not take is refused, naming the flag and why,
    // before anything is made.
    let before = c.ok(&["ps", "-aq"]);
    for (args, words) in [
        (&["--gpus", "all"][..], "--gpus"),
        (&["-a", "stdout"][..], "--attach"),
        (&["--link", "db:db"][..], "--link"),
        (&["--log-driver", "syslog"][..], "--log-driver"),
        (&["--platform", "linux/arm64"][..], "--platform"),
        (&["--sig-proxy=false"][..], "--sig-proxy"),
        (&["--cpus", "1", "--cpu-quota", "50000"][..], "--cpus"),
        (&["--memory-swappiness", "101"][..], "--memory-swappiness"),
        (&["--cgroupns", "shared"][..], "--cgroupns"),
        (&["--platform", "linux/amd64/v9"][..], "--platform"),
        // Security: a sysctl of a namespace shared with the host or another
        // container would change it.
        (
            &["--network", "host", "--sysctl", "net.ipv4.ip_forward=0"][..],
            "--sysctl",
        ),
        (
            &["--ipc", "host", "--sysctl", "kernel.shmmax=1000000"][..],
            "--sysctl",
        ),
        (
            &["--uts", "host", "--sysctl", "kernel.domainname=evil"][..],
            "--sysctl",
        ),
        (&["--sysctl", "kernel.hostname=evil"][..], "--sysctl"),
        (
            &["--disable-content-trust=false"][..],
            "--disable-content-trust",
        ),
        (&["--cpu-rt-runtime", "950000"][..], "real-time"),
        (&["--expose", "80:80"][..], "--expose"),
        (&["--expose", "80/sctp"][..], "--expose"),
        (
            &["--volumes-from", "nosuchcontainer"][..],
            "nosuchcontainer",
        ),
        (&["--volumes-from", "cpu:rx"][..], "--volumes-from"),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[image, "true"]);
        let e = c.fails(&a);
        assert!(e.contains(words), "{args:?}: {e}");
    }
    assert_eq!(c.ok(&["ps", "-aq"]), before);
    // And what it takes as docker's default is taken.
    assert_eq!(
        inside(
            &c,
            &[
                "--sig-proxy",
                "--disable-content-trust",
                "--platform",
                "linux",
                "-q",
                image,
                "echo",
                "ok"
            ]
        ),
        "ok"
    );
}
