//! Image config plus flags in, spec out: no kernel, a temp rootfs with the
//! image's /etc/passwd and /etc/group.

use super::*;
use crate::flags::{Flag, FromFlag};

/// A flag, read as the command line reads it.
fn flag<T: FromFlag>(text: &str) -> Flag<T> {
    Flag::parse(text).unwrap()
}
use crate::options::NetworkMode as Mode;
use capsa_spec::oci::{LinuxNamespaceType, PosixRlimitType};

struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir =
            std::env::temp_dir().join(format!("capsa-spec-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["rootfs/etc", "files", "volumes"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(
            dir.join("rootfs/etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("rootfs/etc/group"),
            "root:x:0:\napp:x:1000:\nvideo:x:44:app\naudio:x:29:other\n",
        )
        .unwrap();
        Fixture { dir }
    }

    /// Build from an image config (its `config` object) and flags.
    fn build(&self, image: serde_json::Value, o: &RunOptions) -> Result<(oci::Spec, Vec<String>)> {
        self.build_on(image, o, &Mode::None)
    }

    fn build_on(
        &self,
        image: serde_json::Value,
        o: &RunOptions,
        network: &Mode,
    ) -> Result<(oci::Spec, Vec<String>)> {
        let config: ImageConfiguration = serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": image,
        }))
        .unwrap();
        let rootfs = self.dir.join("rootfs");
        let files = self.dir.join("files");
        let volumes = self.dir.join("volumes");
        let hosts = |h: &str| format!("127.0.0.1 localhost\n127.0.1.1 {h}\n");
        let i = Inputs {
            id: "0123456789abcdef0123456789abcdef",
            config: &config,
            rootfs: &rootfs,
            dir: &files,
            volumes: &volumes,
            cgroup_path: "/capsa/0123456789ab",
            idmap: None,
            keep_id: None,
            network,
            join_netns: Some("/proc/42/ns/net".into()),
            hosts: &hosts,
            shared: Default::default(),
        };
        build(o, &i)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn env(spec: &oci::Spec) -> Vec<String> {
    spec.process().as_ref().unwrap().env().clone().unwrap()
}

fn get<'a>(env: &'a [String], key: &str) -> Vec<&'a str> {
    env.iter()
        .filter_map(|e| e.strip_prefix(&format!("{key}=")))
        .collect()
}

fn caps(spec: &oci::Spec) -> Vec<String> {
    let mut v: Vec<String> = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .as_ref()
        .unwrap()
        .iter()
        .map(capsa_spec::caps::name_of)
        .collect();
    v.sort();
    v
}

#[test]
fn entrypoint_and_cmd_merge_as_docker_merges_them() {
    let f = Fixture::new("cmd");
    let image = serde_json::json!({"Entrypoint": ["/ep"], "Cmd": ["a", "b"]});
    let args = |o: RunOptions| f.build(image.clone(), &o).unwrap().1;
    assert_eq!(args(RunOptions::default()), ["/ep", "a", "b"]);
    // Arguments replace the image's Cmd, not its Entrypoint.
    let o = RunOptions {
        args: vec!["x".into()],
        ..Default::default()
    };
    assert_eq!(args(o), ["/ep", "x"]);
    // --entrypoint replaces both.
    let o = RunOptions {
        entrypoint: Some("/other".into()),
        ..Default::default()
    };
    assert_eq!(args(o), ["/other"]);
    let o = RunOptions {
        entrypoint: Some(String::new()),
        args: vec!["sh".into()],
        ..Default::default()
    };
    assert_eq!(args(o), ["sh"]);
    // Nothing at all to run is a flag error.
    let e = f
        .build(serde_json::json!({}), &RunOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("no command given"), "{e}");
}

#[test]
fn env_takes_the_image_then_files_then_flags_later_winning() {
    let f = Fixture::new("env");
    let file = f.dir.join("env.list");
    std::fs::write(&file, "# comment\nB=from-file\nC=from-file\n\n").unwrap();
    let image =
        serde_json::json!({"Cmd": ["sh"], "Env": ["A=image", "B=image", "PATH=/image/bin"]});
    let o = RunOptions {
        env_files: vec![file.display().to_string()],
        env: vec!["C=flag".into()],
        tty: true,
        hostname: Some("box".into()),
        ..Default::default()
    };
    let (spec, _) = f.build(image, &o).unwrap();
    let env = env(&spec);
    assert_eq!(get(&env, "A"), ["image"]);
    assert_eq!(get(&env, "B"), ["from-file"]);
    assert_eq!(get(&env, "C"), ["flag"]);
    // Each key once; the image's PATH over the default one.
    assert_eq!(get(&env, "PATH"), ["/image/bin"]);
    assert_eq!(get(&env, "HOSTNAME"), ["box"]);
    assert_eq!(get(&env, "TERM"), ["xterm"]);
    assert_eq!(spec.hostname().as_deref(), Some("box"));
}

#[test]
fn user_comes_from_the_images_passwd_and_groups() {
    let f = Fixture::new("user");
    let user = |image: serde_json::Value, flag: Option<&str>| {
        let o = RunOptions {
            user: flag.map(str::to_string),
            ..Default::default()
        };
        let (spec, _) = f.build(image, &o).unwrap();
        let u = spec.process().as_ref().unwrap().user().clone();
        (
            u.uid(),
            u.gid(),
            u.additional_gids().clone().unwrap_or_default(),
        )
    };
    assert_eq!(
        user(serde_json::json!({"Cmd": ["sh"]}), None),
        (0, 0, vec![])
    );
    assert_eq!(
        user(serde_json::json!({"Cmd": ["sh"], "User": "app"}), None),
        (1000, 1000, vec![44])
    );
    // The flag over the image; a group by name.
    assert_eq!(
        user(
            serde_json::json!({"Cmd": ["sh"], "User": "app"}),
            Some("0:audio")
        ),
        (0, 29, vec![])
    );
    let o = RunOptions {
        user: Some("nobody".into()),
        ..Default::default()
    };
    let e = f.build(serde_json::json!({"Cmd": ["sh"]}), &o).unwrap_err();
    assert!(e.to_string().contains("no user \"nobody\""), "{e}");
}

#[test]
fn volumes_and_tmpfs_become_mounts_and_replace_defaults() {
    let f = Fixture::new("vol");
    let host = f.dir.join("data");
    std::fs::create_dir_all(&host).unwrap();
    let o = RunOptions {
        volumes: vec![
            flag(&format!("{}:/data:ro", host.display())),
            flag("named:/named"),
        ],
        tmpfs: vec![flag("/dev/shm:size=1m")],
        ..Default::default()
    };
    let (spec, _) = f.build(serde_json::json!({"Cmd": ["sh"]}), &o).unwrap();
    let mounts = spec.mounts().clone().unwrap();
    let at = |d: &str| {
        let found: Vec<_> = mounts
            .iter()
            .filter(|m| m.destination() == Path::new(d))
            .collect();
        assert_eq!(found.len(), 1, "{d}: {found:?}");
        found[0].clone()
    };
    let data = at("/data");
    assert_eq!(data.source().as_deref(), Some(host.as_path()));
    assert!(data.options().as_ref().unwrap().contains(&"ro".to_string()));
    assert_eq!(
        at("/named").source().as_deref(),
        Some(f.dir.join("volumes/named/_data").as_path())
    );
    assert!(f.dir.join("volumes/named/_data").is_dir());
    // The default /dev/shm is replaced, not doubled.
    let shm = at("/dev/shm");
    assert_eq!(shm.typ().as_deref(), Some("tmpfs"));
    assert!(shm
        .options()
        .as_ref()
        .unwrap()
        .contains(&"size=1m".to_string()));
    // /etc/hosts and friends, written and bound.
    assert!(at("/etc/hosts")
        .source()
        .as_ref()
        .unwrap()
        .ends_with("files/hosts"));
    // A host path that does not exist is an error naming it.
    let o = RunOptions {
        volumes: vec![flag("/no/such/dir:/x")],
        ..Default::default()
    };
    let e = f.build(serde_json::json!({"Cmd": ["sh"]}), &o).unwrap_err();
    assert!(e.to_string().contains("/no/such/dir"), "{e}");
}

#[test]
fn capabilities_follow_dockers_all_rules() {
    let f = Fixture::new("caps");
    let image = serde_json::json!({"Cmd": ["sh"]});
    let with = |add: &[&str], drop: &[&str]| {
        let o = RunOptions {
            cap_add: add.iter().map(|s| s.to_string()).collect(),
            cap_drop: drop.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        caps(&f.build(image.clone(), &o).unwrap().0)
    };
    let defaults = with(&[], &[]);
    assert_eq!(defaults.len(), 14, "{defaults:?}");
    assert!(defaults.contains(&"CAP_CHOWN".to_string()));
    assert!(!defaults.contains(&"CAP_SYS_ADMIN".to_string()));
    // Lower case and without the prefix, as docker takes them.
    let added = with(&["sys_admin"], &["chown"]);
    assert!(added.contains(&"CAP_SYS_ADMIN".to_string()));
    assert!(!added.contains(&"CAP_CHOWN".to_string()));
    assert_eq!(with(&["NET_ADMIN"], &["ALL"]), ["CAP_NET_ADMIN"]);
    let all = with(&["ALL"], &["MKNOD"]);
    assert!(all.len() > 14 && !all.contains(&"CAP_MKNOD".to_string()));
    let o = RunOptions {
        cap_add: vec!["CAP_NOPE".into()],
        ..Default::default()
    };
    let e = f.build(image, &o).unwrap_err();
    assert!(e.to_string().contains("unknown capability CAP_NOPE"), "{e}");
}

#[test]
fn ulimits_devices_limits_and_namespaces_land_typed() {
    let f = Fixture::new("res");
    let o = RunOptions {
        ulimits: vec![flag("nofile=100:200")],
        devices: vec![flag("/dev/null:/dev/mynull:r")],
        memory: Some(flag("64m")),
        cpus: Some(flag("0.5")),
        pids_limit: Some(0),
        sysctls: vec![flag("net.ipv4.ip_forward=1")],
        ..Default::default()
    };
    let (spec, _) = f
        .build_on(
            serde_json::json!({"Cmd": ["sh"]}),
            &o,
            &Mode::Container("db".into()),
        )
        .unwrap();
    let rl = spec.process().as_ref().unwrap().rlimits().clone().unwrap();
    let nofile: Vec<_> = rl
        .iter()
        .filter(|r| r.typ() == PosixRlimitType::RlimitNofile)
        .collect();
    assert_eq!(nofile.len(), 1, "the default NOFILE is replaced");
    assert_eq!((nofile[0].soft(), nofile[0].hard()), (100, 200));
    let linux = spec.linux().as_ref().unwrap();
    let dev = &linux.devices().as_ref().unwrap()[0];
    assert_eq!(dev.path(), Path::new("/dev/mynull"));
    assert_eq!((dev.major(), dev.minor()), (1, 3));
    let r = linux.resources().as_ref().unwrap();
    let allowed = r.devices().as_ref().unwrap();
    // The default deny-all first, then the device's allow.
    assert!(!allowed[0].allow());
    assert_eq!(allowed.last().unwrap().access().as_deref(), Some("r"));
    let mem = r.memory().as_ref().unwrap();
    assert_eq!((mem.limit(), mem.swap()), (Some(64 << 20), Some(128 << 20)));
    assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(50_000));
    assert_eq!(r.pids().as_ref().unwrap().limit(), -1);
    assert_eq!(
        linux
            .sysctl()
            .as_ref()
            .unwrap()
            .get("net.ipv4.ip_forward")
            .map(String::as_str),
        Some("1")
    );
    // --network container:NAME joins that container's namespace by path.
    let net: Vec<_> = linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .filter(|n| n.typ() == LinuxNamespaceType::Network)
        .collect();
    assert_eq!(net.len(), 1);
    assert_eq!(net[0].path().as_deref(), Some(Path::new("/proc/42/ns/net")));
    // A swap total below memory (the memory floor is the flag's own:
    // flags.rs).
    let o = RunOptions {
        memory: Some(flag("64m")),
        memory_swap: Some(flag("32m")),
        ..Default::default()
    };
    let e = f.build(serde_json::json!({"Cmd": ["sh"]}), &o).unwrap_err();
    assert!(e.to_string().contains("--memory-swap"), "{e}");
}

#[test]
fn privileged_and_security_options() {
    let f = Fixture::new("sec");
    let image = serde_json::json!({"Cmd": ["sh"]});
    let (spec, _) = f.build(image.clone(), &RunOptions::default()).unwrap();
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_some(), "the default profile applies");
    assert!(linux.masked_paths().is_some());
    let o = RunOptions {
        privileged: true,
        ..Default::default()
    };
    let (spec, _) = f.build(image.clone(), &o).unwrap();
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_none() && linux.masked_paths().is_none());
    assert!(caps(&spec).contains(&"CAP_SYS_ADMIN".to_string()));
    let o = RunOptions {
        security_opt: vec![
            "no-new-privileges=false".into(),
            "seccomp=unconfined".into(),
        ],
        ..Default::default()
    };
    let (spec, _) = f.build(image.clone(), &o).unwrap();
    assert_eq!(
        spec.process().as_ref().unwrap().no_new_privileges(),
        Some(false)
    );
    assert!(spec.linux().as_ref().unwrap().seccomp().is_none());
    // A profile file is read as the typed profile it must be.
    let profile = f.dir.join("profile.json");
    std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ERRNO", "archMap": [], "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#).unwrap();
    let o = RunOptions {
        security_opt: vec![format!("seccomp={}", profile.display())],
        ..Default::default()
    };
    let (spec, _) = f.build(image.clone(), &o).unwrap();
    let s = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
    assert_eq!(s.syscalls().as_ref().unwrap().len(), 1);
    let o = RunOptions {
        security_opt: vec!["bogus".into()],
        ..Default::default()
    };
    assert!(f
        .build(image, &o)
        .unwrap_err()
        .to_string()
        .contains("unknown option"));
}

#[test]
fn an_image_volume_over_the_root_or_the_kernels_filesystems_is_refused() {
    let f = Fixture::new("imgvol");
    for v in ["/", "/proc", "/./dev", "/x/../sys"] {
        let image = serde_json::json!({"Cmd": ["sh"], "Volumes": {v: {}}});
        let e = f
            .build(image, &RunOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("may not cover"), "{v}: {e}");
    }
}
