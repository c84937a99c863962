//! Bad input gets a runc-like error on stderr, exit 1, and leaves nothing
//! behind: no state directory, no cgroup, no process.

use capsa_tests::*;
use serde_json::json;

fn fails_cleanly(env: &Env, args: &[&str], id: &str, want: &str) {
    let o = env.rt(args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{args:?} should fail; stdout {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let e = stderr(&o);
    assert!(e.contains(want), "stderr for {args:?} lacks {want:?}: {e}");
    env.assert_gone(id);
}

#[test]
fn missing_bundle() {
    let env = Env::new("nobundle");
    let id = env.id("c");
    let missing = env.dir.join("nope");
    fails_cleanly(
        &env,
        &["create", "-b", missing.to_str().unwrap(), &id],
        &id,
        "nope/config.json: No such file or directory",
    );
}

#[test]
fn invalid_json_names_the_position() {
    let env = Env::new("badjson");
    let b = env.bundle("b");
    std::fs::write(b.dir.join("config.json"), "{ \"ociVersion\": \"1.2.0\", ").unwrap();
    let id = env.id("c");
    fails_cleanly(
        &env,
        &["create", "-b", b.path(), &id],
        &id,
        "config.json: line 1 column",
    );
}

/// A bundle whose config `change` spoils must be refused at create with
/// `want` on stderr, leaving nothing.
fn bad_config(name: &str, change: impl FnOnce(&mut serde_json::Value), want: &str) {
    let env = Env::new(name);
    let mut b = env.bundle("b");
    change(&mut b.config);
    b.save();
    let id = env.id("c");
    fails_cleanly(&env, &["create", "-b", b.path(), &id], &id, want);
}

#[test]
fn unknown_namespace_type_names_its_field() {
    bad_config(
        "badns",
        |c| c["linux"]["namespaces"][1] = json!({ "type": "bogus" }),
        "linux.namespaces[1].type: unknown variant `bogus`",
    );
}

#[test]
fn unsupported_spec_version_is_refused() {
    bad_config(
        "badversion",
        |c| c["ociVersion"] = json!("2.0.0"),
        "ociVersion: \"2.0.0\" is not supported",
    );
}

#[test]
fn a_1_3_config_runs_and_what_capsa_cannot_apply_is_refused() {
    let env = Env::new("v13");
    let mut b = env.bundle("b");
    b.config["ociVersion"] = json!("1.3.0");
    b.args(&["true"]);
    env.rt_ok(&["run", "-b", b.path(), &env.id("c")]);
    bad_config(
        "netdev",
        |c| c["linux"]["netDevices"] = json!({ "eth9": { "name": "eth0" } }),
        "linux.netDevices: moving network devices into the container is not supported",
    );
    bad_config(
        "badsched",
        |c| c["process"]["scheduler"] = json!({ "policy": "SCHED_OTHER", "priority": 50 }),
        "process.scheduler.priority: must be 1 to 99 for SCHED_FIFO and SCHED_RR",
    );
}

#[test]
fn relative_cwd_is_refused() {
    bad_config(
        "relcwd",
        |c| c["process"]["cwd"] = json!("tmp"),
        "process.cwd: \"tmp\" is not an absolute path",
    );
}

#[test]
fn hostname_without_a_uts_namespace_is_refused() {
    bad_config(
        "nouts",
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "uts")
        },
        "hostname: cannot set a hostname without a private UTS namespace",
    );
}

#[test]
fn a_missing_program_fails_at_create_and_leaves_nothing() {
    bad_config(
        "noprog",
        |c| c["process"]["args"] = json!(["does-not-exist"]),
        "executable file not found in $PATH",
    );
}

#[test]
fn id_already_in_use() {
    let env = Env::new("dupid");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["create", "-b", b.path(), &id]);
    let b2 = env.bundle("b2");
    let o = env.rt(&["create", "-b", b2.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("container with id exists"),
        "{}",
        stderr(&o)
    );
    // The first container is untouched; the second made no cgroup.
    assert_eq!(env.state(&id)["status"], "created");
    assert!(
        !std::path::Path::new(&format!("/sys/fs/cgroup/pids/{}/b2", env.cgroup_parent)).exists()
    );
}

#[test]
fn unknown_id_for_every_command() {
    let env = Env::new("unknownid");
    for args in [
        &["start", "ghost"][..],
        &["state", "ghost"],
        &["kill", "ghost"],
        &["delete", "ghost"],
        &["exec", "ghost", "true"],
        &["ps", "ghost"],
    ] {
        let o = env.rt(args);
        // exec says 255, as runc's, for an exec that could not start.
        let code = if args[0] == "exec" { 255 } else { 1 };
        assert_eq!(o.status.code(), Some(code), "{args:?}");
        assert!(
            stderr(&o).contains("container does not exist: ghost"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn start_twice_and_delete_running_without_force() {
    let env = Env::new("twice");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["create", "-b", b.path(), &id]);
    env.rt_ok(&["start", &id]);
    let o = env.rt(&["start", &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot start an already running container"),
        "{}",
        stderr(&o)
    );
    let o = env.rt(&["delete", &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is not stopped: running"),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.state(&id)["status"], "running");
}

#[test]
fn rlimit_above_the_hard_limit_reports_the_missing_capability() {
    let env = Env::new("rlimit");
    let mut b = env.bundle("b");
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    if hard == u64::MAX {
        return;
    }
    b.config["process"]["rlimits"] =
        json!([{ "type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1 }]);
    b.args(&["true"]);
    let id = env.id("c");
    // Raising a hard limit needs CAP_SYS_RESOURCE, which this machine's
    // root lacks; with it, the container simply runs.
    let o = env.rt(&["run", "-b", b.path(), &id]);
    refused_unless_allowed(&env, &o, &id, &["RLIMIT_NOFILE", "CAP_SYS_RESOURCE"]);
}

#[test]
fn negative_oom_score_adj_without_the_capability_is_reported() {
    let env = Env::new("oomneg");
    let mut b = env.bundle("b");
    b.config["process"]["oomScoreAdj"] = json!(-500);
    b.args(&["true"]);
    let id = env.id("c");
    let o = env.rt(&["run", "-b", b.path(), &id]);
    refused_unless_allowed(&env, &o, &id, &["oom_score_adj", "CAP_SYS_RESOURCE"]);
}

#[test]
fn wrong_flags_are_usage_errors() {
    let env = Env::new("flags");
    let o = env.rt(&["create", "--no-such-flag", "x"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("--no-such-flag"));
    let o = env.rt(&["create", "../escape"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("invalid container id"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_on_an_unknown_command_says_there_is_none_as_runc() {
    let env = Env::new("helptopic");
    let o = env.rt(&["foo", "-h"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("No help topic for 'foo'"),
        "{}",
        stderr(&o)
    );
    // Help on a real command is help, and succeeds.
    let o = env.rt(&["checkpoint", "-h"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("--image-path"));
}
