//! Terminals: the pty master sent to `--console-socket` as runc does (the
//! way containerd and podman receive it), for create and for exec.

use capsa_tests::*;
use serde_json::json;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

fn read_all(master: OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(master.as_raw_fd(), &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `create` with a console socket, then `start`: the pty master.
fn create_and_start_with_console(env: &Env, b: &Bundle, id: &str) -> OwnedFd {
    let sock = env.dir.join(format!("{id}.sock"));
    let rx = receive_master(UnixListener::bind(&sock).unwrap());
    env.rt_ok(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "-b",
        b.path(),
        id,
    ]);
    let master = rx.join().unwrap();
    env.rt_ok(&["start", id]);
    master
}

#[test]
fn create_sends_the_pty_master_to_the_console_socket() {
    let env = Env::new("console");
    let mut b = env.bundle("b");
    b.config["process"]["terminal"] = json!(true);
    b.args(&[
        "sh",
        "-c",
        "tty; echo hello-tty; test -c /dev/console && echo has-console",
    ]);
    let id = env.id("c");
    let out = read_all(create_and_start_with_console(&env, &b, &id));
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("hello-tty"), "{out}");
    assert!(out.contains("has-console"), "{out}");
}

#[test]
fn exec_tty_sends_its_own_pty_master() {
    let env = Env::new("exectty");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let sock = env.dir.join("exec.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let rx = receive_master(listener);
    env.rt_ok(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "tty; echo exec-tty",
    ]);
    let out = read_all(rx.join().unwrap());
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("exec-tty"), "{out}");
}

#[test]
fn a_terminal_without_console_socket_is_refused_for_create() {
    let env = Env::new("noconsole");
    let mut b = env.bundle("b");
    b.config["process"]["terminal"] = json!(true);
    b.save();
    let id = env.id("c");
    let o = env.rt(&["create", "-b", b.path(), &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot allocate tty"), "{}", stderr(&o));
    env.assert_gone(&id);
}

#[test]
fn console_socket_that_does_not_exist_is_a_clear_error() {
    let env = Env::new("badsock");
    let mut b = env.bundle("b");
    b.config["process"]["terminal"] = json!(true);
    b.save();
    let id = env.id("c");
    let sock = env.dir.join("missing.sock");
    let o = env.rt(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "-b",
        b.path(),
        &id,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing.sock"), "{}", stderr(&o));
    env.assert_gone(&id);
}

/// As runc: the terminal belongs to the process's user (the group stays
/// devpts' tty group), for the init and for exec.
#[test]
fn the_terminal_belongs_to_the_process_user() {
    let env = Env::new("ttyowner");
    let mut b = env.bundle("b");
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 100});
    b.args(&["sh", "-c", "stat -c owner-%u $(tty); sleep 100"]);
    let id = env.id("c");
    let master = create_and_start_with_console(&env, &b, &id);
    let mut buf = [0u8; 256];
    let n = nix::unistd::read(master.as_raw_fd(), &mut buf).unwrap();
    let out = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(out.contains("owner-1000"), "{out:?}");
    // exec --tty as another user.
    let sock2 = env.dir.join("exec.sock");
    let rx = receive_master(UnixListener::bind(&sock2).unwrap());
    env.rt_ok(&[
        "exec",
        "--tty",
        "--detach",
        "--user",
        "1001:100",
        "--console-socket",
        sock2.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "stat -c owner-%u $(tty)",
    ]);
    let out = read_all(rx.join().unwrap());
    assert!(out.contains("owner-1001"), "{out:?}");
}

#[test]
fn exec_process_file_without_user_gets_its_console_size() {
    let env = Env::new("execsize");
    let mut b = env.bundle("b");
    b.args(&["sleep", "100"]);
    let id = env.id("c");
    env.rt_ok(&["run", "-d", "-b", b.path(), &id]);
    let sock = env.dir.join("exec.sock");
    let rx = receive_master(UnixListener::bind(&sock).unwrap());
    // No `user`: runc runs such a process as root.
    let f = env.dir.join("process.json");
    let process = json!({
        "terminal": true, "consoleSize": { "height": 10, "width": 110 },
        "args": ["sh", "-c", "stty size; id -u"], "cwd": "/", "env": ["PATH=/bin"]
    });
    std::fs::write(&f, process.to_string()).unwrap();
    env.rt_ok(&[
        "exec",
        "--detach",
        "--console-socket",
        sock.to_str().unwrap(),
        "--process",
        f.to_str().unwrap(),
        &id,
    ]);
    let out = read_all(rx.join().unwrap());
    assert!(out.contains("10 110"), "{out}");
    assert!(out.lines().any(|l| l.trim() == "0"), "{out}");
}
