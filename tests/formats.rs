//! `--filter` and `--format` as docker's: filters on ps, images, volume
//! ls and network ls (one key's values are alternatives, keys all hold),
//! Go templates (`{{.Names}}`, `{{json .}}`, `table ...`) on every
//! listing and on inspect.

use capsa_tests::images::load_busybox_probe;
use capsa_tests::registry::Capsa;
use capsa_tests::Env;
use serde_json::Value;

fn lines(s: String) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn ps_filters_and_templates_read_as_dockers() {
    let env = Env::new("formats-ps");
    let c = Capsa::new(&env, "f");
    let image = load_busybox_probe(&env, &c);
    let label_file = env.dir.join("labels");
    std::fs::write(&label_file, "# a comment\nfrom=file\n\n").unwrap();
    c.ok(&[
        "run",
        "-d",
        "--name",
        "alpha",
        "-l",
        "team=a",
        "--label-file",
        label_file.to_str().unwrap(),
        image,
        "sleep",
        "1000",
    ]);
    let out = c.run(&[
        "run", "--name", "beta", "--label", "team=b", image, "sh", "-c", "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    c.ok(&[
        "create",
        "--name",
        "gamma",
        image,
        "sh",
        "-c",
        "echo a rather long command line",
    ]);
    let ps = |args: &[&str]| {
        let mut a = vec!["ps"];
        a.extend_from_slice(args);
        lines(c.ok(&a))
    };
    assert_eq!(ps(&["--format", "{{.Names}}"]), ["alpha"]);
    assert_eq!(
        ps(&["-a", "--format", "{{.Names}}"]),
        ["alpha", "beta", "gamma"]
    );
    assert_eq!(
        ps(&["-a", "--filter", "label=team", "--format", "{{.Names}}"]),
        ["alpha", "beta"]
    );
    assert_eq!(
        ps(&["-a", "-f", "label=team=b", "--format", "{{.Names}}"]),
        ["beta"]
    );
    assert_eq!(
        ps(&["-f", "label=from=file", "--format", "{{.Names}}"]),
        ["alpha"]
    );
    // status and exited look at stopped containers without -a.
    assert_eq!(
        ps(&["-f", "status=exited", "--format", "{{.Names}}"]),
        ["beta"]
    );
    assert_eq!(
        ps(&["-a", "-f", "exited=3", "--format", "{{.Names}}"]),
        ["beta"]
    );
    assert!(
        ps(&["-f", "exited=3", "-q"]).is_empty(),
        "as dockerd: exited needs -a"
    );
    assert_eq!(
        ps(&["-f", "status=created", "--format", "{{.Names}}"]),
        ["gamma"]
    );
    // One key's values: either; two keys: both.
    assert_eq!(
        ps(&[
            "-a",
            "-f",
            "name=alp",
            "-f",
            "name=gam",
            "--format",
            "{{.Names}}"
        ]),
        ["alpha", "gamma"]
    );
    assert!(ps(&["-a", "-f", "status=running", "-f", "label=team=b", "-q"]).is_empty());
    assert_eq!(
        ps(&["-a", "-f", &format!("ancestor={image}"), "-q"]).len(),
        3
    );
    assert_eq!(
        ps(&["-a", "-f", "since=alpha", "--format", "{{.Names}}"]).len(),
        2
    );
    assert!(ps(&["-a", "-f", "before=alpha", "-q"]).is_empty());
    assert_eq!(ps(&["-a", "-f", "health=none", "-q"]).len(), 3);
    assert_eq!(ps(&["-a", "-f", "network=none", "-q"]).len(), 3);
    assert_eq!(ps(&["-l", "--format", "{{.Names}}"]), ["gamma"]);

    // docker's fields, as docker writes them.
    let row: Value = serde_json::from_str(
        c.ok(&["ps", "-a", "-f", "name=gamma", "--format", "{{json .}}"])
            .trim(),
    )
    .unwrap();
    let keys: Vec<&str> = row
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "Command",
            "CreatedAt",
            "ID",
            "Image",
            "Labels",
            "LocalVolumes",
            "Mounts",
            "Names",
            "Networks",
            "Platform",
            "Ports",
            "RunningFor",
            "Size",
            "State",
            "Status"
        ]
    );
    // Cut to 19 characters and an ellipsis, then quoted, as docker's.
    assert_eq!(row["Command"], "\"sh -c 'echo a rathe…\"");
    assert_eq!(row["State"], "created");
    assert_eq!(row["ID"].as_str().unwrap().len(), 12);
    let labels = c.ok(&[
        "ps",
        "-f",
        "name=alpha",
        "--format",
        "{{.Labels}}|{{upper .Names}}",
    ]);
    assert_eq!(labels.trim(), "from=file,team=a|ALPHA");

    // table: a header row from docker's titles, columns padded to the
    // widest cell plus three.
    let t = c.ok(&[
        "ps",
        "-a",
        "-f",
        "name=beta",
        "--format",
        r"table {{.Names}}\t{{.State}}",
    ]);
    assert_eq!(t, "NAMES     STATE\nbeta      exited\n", "{t:?}");

    // inspect -f, over each.
    let s = c.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}} {{.Config.Labels.team}}",
        "alpha",
        "beta",
    ]);
    assert_eq!(s, "running 0 a\nexited 3 b\n", "{s:?}");

    // Security: a label (an image's too) holding a terminal's escape
    // sequence is printed escaped, never raw.
    c.ok(&[
        "create",
        "--name",
        "evil",
        "-l",
        "x=\u{1b}]0;pwned\u{7}\u{1b}[2J",
        image,
        "true",
    ]);
    let out = c.ok(&["ps", "-a", "-f", "name=evil", "--format", "{{.Labels}}"]);
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    assert!(out.contains("pwned"), "{out:?}");
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let line = c.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "container=evil",
    ]);
    assert!(
        line.contains("pwned") && !line.contains('\u{1b}'),
        "{line:?}"
    );
    let raw = c.ok(&["inspect", "-f", "{{.Config.Labels.x}}", "evil"]);
    assert!(!raw.contains('\u{1b}') && raw.contains("pwned"), "{raw:?}");
    c.ok(&[
        "create",
        "--name",
        "c1",
        "-l",
        "y=a\u{9b}2J",
        "-l",
        "k\u{1b}[2J=v",
        image,
        "true",
    ]);
    // Keys too, as a template ranges over them.
    let keys = c.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .Config.Labels}}{{$k}} {{end}}",
        "c1",
    ]);
    assert!(
        !keys.contains('\u{1b}') && !keys.contains('\u{9b}') && keys.contains("[2J"),
        "{keys:?}"
    );
    let j = c.ok(&["ps", "-a", "-f", "name=c1", "--format", "{{json .}}"]);
    assert!(!j.contains('\u{9b}') && j.contains("9b}2J"), "{j:?}");
    let j = c.ok(&["inspect", "c1"]);
    assert!(!j.contains('\u{9b}') && j.contains("\\u009b"), "{j:?}");
    c.ok(&["rm", "evil", "c1"]);

    // Bad values name the flag.
    let e = c.fails(&["ps", "-f", "colour=red"]);
    assert!(e.contains("--filter") && e.contains("colour"), "{e}");
    let e = c.fails(&["ps", "-f", "status=sleepy"]);
    assert!(e.contains("--filter"), "{e}");
    let e = c.fails(&["ps", "--format", "{{.Names"]);
    assert!(e.contains("--format"), "{e}");
    let e = c.fails(&["ps", "--format", "{{.Nmes}}"]);
    assert!(e.contains("--format") && e.contains("Nmes"), "{e}");
    let e = c.fails(&["run", "-l", "=x", image, "true"]);
    assert!(e.contains("--label"), "{e}");
}

#[test]
fn images_volumes_and_networks_filter_and_template_too() {
    let env = Env::new("formats-more");
    let c = Capsa::new(&env, "f");
    let image = load_busybox_probe(&env, &c);
    c.ok(&["tag", image, "localhost/other:2"]);
    let out = c.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(
        lines(out),
        [
            "localhost/bb:test",
            "localhost/imported:bbprobe",
            "localhost/other:2"
        ]
    );
    let out = c.ok(&[
        "images",
        "-f",
        "reference=localhost/o*",
        "--format",
        "{{.Repository}}",
    ]);
    assert_eq!(out, "localhost/other\n");
    let out = c.ok(&[
        "images",
        "-f",
        "reference=*:test",
        "-f",
        "reference=*:2",
        "--format",
        "{{.Tag}}",
    ]);
    assert_eq!(lines(out), ["2", "test"]);
    assert!(c.ok(&["images", "-f", "dangling=true", "-q"]).is_empty());
    let t = c.ok(&[
        "images",
        "-f",
        "reference=localhost/other",
        "--format",
        r"table {{.Repository}}\t{{.Tag}}",
    ]);
    assert_eq!(t, "REPOSITORY        TAG\nlocalhost/other   2\n", "{t:?}");
    let e = c.fails(&["images", "-f", "size=big"]);
    assert!(e.contains("--filter"), "{e}");

    c.ok(&["volume", "create", "-l", "k=v", "v1"]);
    c.ok(&["volume", "create", "v2"]);
    let out = c.ok(&[
        "volume",
        "ls",
        "-f",
        "label=k",
        "--format",
        "{{.Name}} {{.Driver}} {{.Labels}}",
    ]);
    assert_eq!(out, "v1 local k=v\n");
    let out = c.ok(&[
        "network",
        "ls",
        "-f",
        "name=bri",
        "--format",
        "{{.Name}} {{.Driver}}",
    ]);
    assert_eq!(out, "bridge bridge\n");
    // inspect -f on volumes, networks and images; info and stats too.
    assert_eq!(
        c.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}}",
            "v1",
            "v2"
        ]),
        "v1 local\nv2 local\n"
    );
    assert_eq!(
        c.ok(&["network", "inspect", "--format", "{{.Name}}", "bridge"]),
        "bridge\n"
    );
    assert_eq!(
        c.ok(&["image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", image]),
        "linux/amd64\n"
    );
    let kernel = c.ok(&["info", "-f", "{{.Kernel}}"]);
    assert_eq!(
        kernel.trim(),
        nix::sys::utsname::uname()
            .unwrap()
            .release()
            .to_string_lossy()
    );
    c.ok(&["run", "-d", "--name", "busy", image, "sleep", "1000"]);
    let s = c.ok(&["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}"]);
    assert_eq!(s.trim(), "busy 1", "{s}");
    let t = c.ok(&[
        "stats",
        "--no-stream",
        "--format",
        r"table {{.Name}}\t{{.PIDs}}",
    ]);
    assert!(t.starts_with("NAME      PIDS\nbusy      1"), "{t:?}");
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_and_install() {
    let env = Env::new("formats-install");
    let c = Capsa::new(&env, "f");
    let bash = c.ok(&["completion", "bash"]);
    assert!(
        bash.contains("_capsa()") && bash.contains("--health-cmd"),
        "{}",
        &bash[..200]
    );
    let script = env.dir.join("capsa.bash");
    std::fs::write(&script, &bash).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(c.ok(&["completion", "zsh"]).starts_with("#compdef capsa"));
    assert!(c.ok(&["completion", "fish"]).contains("complete -c capsa"));
    let e = c.fails(&["completion", "tcsh"]);
    assert!(e.contains("tcsh") && e.contains("bash"), "{e}");

    // The install script, with the binaries under test, into a scratch
    // DESTDIR.
    let dest = env.dir.join("dest");
    let out = std::process::Command::new("sh")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install.sh"))
        .arg("/usr")
        .env("DESTDIR", &dest)
        .env("CAPSA_BIN_DIR", capsa_tests::bin_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let usr = dest.join("usr");
    for f in [
        "bin/capsa",
        "bin/capsa-runtime",
        "bin/capsa-monitor",
        "share/bash-completion/completions/capsa",
        "share/zsh/site-functions/_capsa",
        "share/fish/vendor_completions.d/capsa.fish",
    ] {
        assert!(usr.join(f).exists(), "{f} not installed");
    }
    let run = std::fs::read_to_string(usr.join("share/man/man1/capsa-run.1")).unwrap();
    assert!(
        run.contains(".TH capsa-run") && run.contains("health\\-cmd"),
        "{}",
        &run[..300]
    );
    let ls = std::fs::read_to_string(usr.join("share/man/man1/capsa-volume-ls.1")).unwrap();
    assert!(ls.contains("\\-\\-filter"), "{}", &ls[..300]);
    assert!(!usr.join("share/man/man1/capsa-help.1").exists());
}
