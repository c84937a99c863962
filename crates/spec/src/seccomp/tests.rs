//! The compiler checked by running its programs through the interpreter.

use super::*;

fn profile(json: &str) -> SeccompPlan {
    let s: oci::LinuxSeccomp = serde_json::from_str(json).unwrap();
    compile(&s).unwrap()
}

const X64: u32 = AUDIT_ARCH_X86_64;

#[test]
fn default_action_and_plain_rules() {
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
        "syscalls":[{"names":["read","write","no_such_call"],"action":"SCMP_ACT_ALLOW"},
                    {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    );
    assert_eq!(simulate(&p.filter, X64, 0, [0; 6]), RET_ALLOW); // read
    assert_eq!(simulate(&p.filter, X64, 1, [0; 6]), RET_ALLOW); // write
    assert_eq!(simulate(&p.filter, X64, 83, [0; 6]), RET_ERRNO | 13); // mkdir
    assert_eq!(simulate(&p.filter, X64, 2, [0; 6]), RET_ERRNO | 1); // open: default EPERM
                                                                    // An unlisted architecture is killed; x32 calls too.
    assert_eq!(
        simulate(&p.filter, AUDIT_ARCH_I386, 3, [0; 6]),
        RET_KILL_PROCESS
    );
    assert_eq!(
        simulate(&p.filter, X64, X32_SYSCALL_BIT, [0; 6]),
        RET_KILL_PROCESS
    );
}

#[test]
fn calls_newer_than_the_profile_get_enosys_unless_the_default_allows() {
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
        "syscalls":[{"names":["write"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let enosys = RET_ERRNO | libc::ENOSYS as u32;
    assert_eq!(simulate(&p.filter, X64, 1000, [0; 6]), enosys);
    assert_eq!(simulate(&p.filter, AUDIT_ARCH_I386, 1000, [0; 6]), enosys);
    assert_eq!(simulate(&p.filter, X64, 0, [0; 6]), RET_ERRNO | 1); // read: default
    assert_eq!(simulate(&p.filter, X64, 1, [0; 6]), RET_ALLOW); // write
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert_eq!(simulate(&p.filter, X64, 1000, [0; 6]), RET_ALLOW);
}

#[test]
fn the_native_architecture_is_always_filtered_as_libseccomp_adds_it() {
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"],
        "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    // x86_64 calls follow the rules: not killed as a bad arch.
    assert_eq!(simulate(&p.filter, X64, 83, [0; 6]), RET_ERRNO | 1); // mkdir
    assert_eq!(simulate(&p.filter, X64, 0, [0; 6]), RET_ALLOW); // read
}

#[test]
fn conditions_on_one_argument_are_alternatives_as_with_runc() {
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
        "syscalls":[
          {"names":["kill"],"action":"SCMP_ACT_ERRNO","args":[
            {"index":1,"value":9,"op":"SCMP_CMP_EQ"},
            {"index":1,"value":15,"op":"SCMP_CMP_EQ"}]}
        ]}"#,
    );
    let kill = 62;
    for (sig, want) in [(9, RET_ERRNO | 1), (15, RET_ERRNO | 1), (10, RET_ALLOW)] {
        assert_eq!(
            simulate(&p.filter, X64, kill, [1, sig, 0, 0, 0, 0]),
            want,
            "signal {sig}"
        );
    }
}

#[test]
fn argument_conditions_with_every_operator() {
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_KILL_PROCESS",
        "syscalls":[
          {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
          {"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":22,"args":[{"index":0,"value":4294967296,"op":"SCMP_CMP_GE"}]},
          {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
          {"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":2,"value":100,"op":"SCMP_CMP_LT"},{"index":0,"value":3,"op":"SCMP_CMP_NE"}]},
          {"names":["write"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":10,"op":"SCMP_CMP_LE"}]},
          {"names":["close"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":10,"op":"SCMP_CMP_GT"}]}
        ]}"#,
    );
    let personality = 135;
    assert_eq!(
        simulate(&p.filter, X64, personality, [8, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        simulate(&p.filter, X64, personality, [1 << 33, 0, 0, 0, 0, 0]),
        RET_ERRNO | 22
    );
    assert_eq!(
        simulate(&p.filter, X64, personality, [9, 0, 0, 0, 0, 0]),
        RET_KILL_PROCESS
    );
    let clone = 56;
    assert_eq!(
        simulate(&p.filter, X64, clone, [0x11, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        simulate(&p.filter, X64, clone, [0x1000_0000, 0, 0, 0, 0, 0]),
        RET_KILL_PROCESS
    ); // CLONE_NEWUSER
    assert_eq!(simulate(&p.filter, X64, 0, [4, 0, 99, 0, 0, 0]), RET_ALLOW);
    assert_eq!(
        simulate(&p.filter, X64, 0, [3, 0, 99, 0, 0, 0]),
        RET_KILL_PROCESS
    );
    assert_eq!(
        simulate(&p.filter, X64, 0, [4, 0, 100, 0, 0, 0]),
        RET_KILL_PROCESS
    );
    assert_eq!(
        simulate(&p.filter, X64, 0, [4, 0, 1 << 40, 0, 0, 0]),
        RET_KILL_PROCESS
    );
    assert_eq!(simulate(&p.filter, X64, 1, [0, 10, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(
        simulate(&p.filter, X64, 1, [0, 11, 0, 0, 0, 0]),
        RET_KILL_PROCESS
    );
    assert_eq!(simulate(&p.filter, X64, 3, [11, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(
        simulate(&p.filter, X64, 3, [10, 0, 0, 0, 0, 0]),
        RET_KILL_PROCESS
    );
    assert_eq!(
        simulate(&p.filter, X64, 3, [1 << 32, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
}

#[test]
fn three_architectures_with_x32() {
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
        "syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    assert_eq!(simulate(&p.filter, X64, 39, [0; 6]), RET_ALLOW);
    assert_eq!(
        simulate(&p.filter, X64, 39 | X32_SYSCALL_BIT, [0; 6]),
        RET_ALLOW
    );
    assert_eq!(simulate(&p.filter, AUDIT_ARCH_I386, 20, [0; 6]), RET_ALLOW); // getpid on i386
    assert_eq!(
        simulate(&p.filter, AUDIT_ARCH_I386, 39, [0; 6]),
        RET_ERRNO | 1
    );
}

#[test]
fn notify_needs_a_listener_and_asks_the_kernel_for_one() {
    let s: oci::LinuxSeccomp = serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#).unwrap();
    assert!(compile(&s)
        .unwrap_err()
        .to_string()
        .starts_with("linux.seccomp.listenerPath"));
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert_eq!(p.flags & FLAG_NEW_LISTENER, FLAG_NEW_LISTENER);
    assert_eq!(simulate(&p.filter, X64, 83, [0; 6]), RET_USER_NOTIF);
    assert_eq!(
        p.listener.unwrap().0,
        std::path::PathBuf::from("/run/agent.sock")
    );
}

#[test]
fn notify_is_refused_for_write_and_as_the_default() {
    let s: oci::LinuxSeccomp = serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/a.sock","syscalls":[{"names":["mkdir","write"],"action":"SCMP_ACT_NOTIFY"}]}"#).unwrap();
    let e = compile(&s).unwrap_err().to_string();
    assert_eq!(
        e,
        "linux.seccomp.syscalls[0].names: SCMP_ACT_NOTIFY cannot be used for the write syscall"
    );
    let s: oci::LinuxSeccomp =
        serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/run/a.sock"}"#)
            .unwrap();
    assert!(compile(&s)
        .unwrap_err()
        .to_string()
        .contains("as default action"));
}

#[test]
fn errors_name_the_field() {
    let s: oci::LinuxSeccomp = serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":7,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#).unwrap();
    let e = compile(&s).unwrap_err().to_string();
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].args[0].index"),
        "{e}"
    );
}
