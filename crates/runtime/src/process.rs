//! The last steps before the user's program runs, shared by a container's
//! init and by `exec`: resource limits, user and groups, capabilities,
//! no_new_privs, the working directory, and execve.

use crate::error::ChildError;
use capsa_spec::seccomp::SeccompPlan;
use capsa_spec::ProcessPlan;
use nix::errno::Errno;
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

type R<T> = std::result::Result<T, ChildError>;

fn err(op: &str, target: impl std::fmt::Display, e: Errno) -> ChildError {
    ChildError::sys("process", op, target, e)
}

/// Find `args[0]` as execve would with the process's `PATH`, inside the
/// current root. The error reads as runc's.
pub fn lookup(p: &ProcessPlan) -> R<PathBuf> {
    let name = &p.args[0];
    let is_exec = |f: &Path| {
        std::fs::metadata(f)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    // The errno says which (an engine's 127 or 126), the words say it as
    // runc does.
    let fail = |errno: Errno, detail: String| ChildError {
        errno: errno as i32,
        ..ChildError::msg("process", "exec", name, detail)
    };
    if name.contains('/') {
        let path = if Path::new(name).is_absolute() {
            PathBuf::from(name)
        } else {
            p.cwd.join(name)
        };
        if is_exec(&path) {
            return Ok(path);
        }
        return Err(if path.exists() {
            fail(Errno::EACCES, format!("exec: {name:?}: permission denied"))
        } else {
            fail(
                Errno::ENOENT,
                format!(
                    "exec: {name:?}: stat {}: no such file or directory",
                    path.display()
                ),
            )
        });
    }
    for dir in p.path_var().split(':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(dir)
        };
        let cand = dir.join(name);
        if is_exec(&cand) {
            return Ok(cand);
        }
    }
    Err(fail(
        Errno::ENOENT,
        format!("exec: {name:?}: executable file not found in $PATH"),
    ))
}

/// Apply rlimits. Raising a hard limit needs CAP_SYS_RESOURCE, which the
/// error names.
pub fn set_rlimits(p: &ProcessPlan) -> R<()> {
    for &(res, soft, hard) in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        if let Err(e) = capsa_sys::process::set_rlimit(res, &lim) {
            let name = capsa_spec::rlimits::name_of_number(res);
            let why = if e == Errno::EPERM {
                " (raising a hard limit needs CAP_SYS_RESOURCE)"
            } else {
                ""
            };
            return Err(ChildError {
                detail: format!("soft {soft} hard {hard}{why}"),
                ..err("setrlimit", name, e)
            });
        }
    }
    Ok(())
}

/// Write `oom_score_adj` (lowering it needs CAP_SYS_RESOURCE).
pub fn set_oom_score_adj(proc: &capsa_sys::procfs::ProcFs, p: &ProcessPlan) -> R<()> {
    if let Some(adj) = p.oom_score_adj {
        let path = capsa_sys::procfs::ProcFs::own("oom_score_adj");
        proc.write(&path, adj.to_string().as_bytes())
            .map_err(|errno| {
                let why = if adj < 0 {
                    "lowering the score needs CAP_SYS_RESOURCE"
                } else {
                    ""
                };
                ChildError {
                    detail: why.into(),
                    ..err("write oom_score_adj", adj, errno)
                }
            })?;
    }
    Ok(())
}

/// `ioPriority`.
pub fn set_io_priority(p: &ProcessPlan) -> R<()> {
    if let Some((class, level)) = p.io_priority {
        capsa_sys::process::set_io_priority(class, level)
            .map_err(|e| err("ioprio_set", format!("class {class} level {level}"), e))?;
    }
    Ok(())
}

/// The CPU affinity and `scheduler`. The affinity is the spec's
/// `execCPUAffinity.final`, or else every CPU: a runtime its caller pinned
/// to a few CPUs must not pin the container, whose cgroup's cpuset decides
/// (as runc resets it). The affinity comes first: SCHED_DEADLINE refuses a
/// task that cannot run everywhere.
pub fn set_scheduling(p: &ProcessPlan) -> R<()> {
    let all;
    let cpus = match &p.exec_cpu_affinity.1 {
        Some(c) => c.as_slice(),
        None => {
            all = capsa_sys::process::possible_cpus();
            &all
        }
    };
    capsa_sys::process::set_cpu_affinity(cpus).map_err(|e| {
        err(
            "sched_setaffinity",
            "execCPUAffinity.final (or every CPU)",
            e,
        )
    })?;
    if let Some(s) = &p.scheduler {
        capsa_sys::process::set_sched_attr(s)
            .map_err(|e| err("sched_setattr", format!("policy {}", s.policy), e))?;
    }
    Ok(())
}

/// `linux.personality` and `linux.memoryPolicy`, for the init process.
pub fn set_personality_and_memory(plan: &capsa_spec::Plan) -> R<()> {
    if let Some(persona) = plan.personality {
        capsa_sys::process::set_personality(persona)
            .map_err(|e| err("personality", format!("{persona:#x}"), e))?;
    }
    if let Some((mode, nodes)) = &plan.memory_policy {
        capsa_sys::process::set_mempolicy(*mode, nodes)
            .map_err(|e| err("set_mempolicy", format!("mode {mode:#x}"), e))?;
    }
    Ok(())
}

/// Each key once, the last value winning, in the order of those last
/// values (as runc, and Go's os/exec, do).
pub fn dedup_env(env: &[String]) -> Vec<String> {
    let key = |e: &String| e.split('=').next().unwrap_or_default().to_string();
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<String> = env
        .iter()
        .rev()
        .filter(|e| seen.insert(key(e)))
        .cloned()
        .collect();
    out.reverse();
    out
}

/// The environment to exec with: [`dedup_env`], and `HOME` from the
/// container's `/etc/passwd` when the spec does not set it or sets it empty,
/// `/` when the user has no entry (as runc does).
pub fn env_with_home(p: &ProcessPlan) -> Vec<String> {
    let mut env = dedup_env(&p.env);
    if env
        .iter()
        .any(|e| e.starts_with("HOME=") && e.len() > "HOME=".len())
    {
        return env;
    }
    env.retain(|e| !e.starts_with("HOME="));
    // Only a regular file: a FIFO there would hang the start.
    let home = capsa_sys::root::Root::open(Path::new("/"))
        .ok()
        .and_then(|r| r.read(Path::new("/etc/passwd"), 4 << 20).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(p.uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".into());
    env.push(format!("HOME={home}"));
    env
}

/// Drop to the spec's user with exactly its capability sets, enter the
/// working directory, close every fd the program must not inherit, and
/// execve. Returns only on failure.
pub fn finalize(
    p: &ProcessPlan,
    exe: &Path,
    env: &[String],
    keep_fds: i32,
    seccomp: Option<&SeccompPlan>,
    labels: crate::lsm::Labels,
    start_hooks: Option<(&[capsa_spec::oci::Hook], &str)>,
) -> ChildError {
    match finalize_inner(p, exe, env, keep_fds, seccomp, labels, start_hooks) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn finalize_inner(
    p: &ProcessPlan,
    exe: &Path,
    env: &[String],
    keep_fds: i32,
    seccomp: Option<&SeccompPlan>,
    labels: crate::lsm::Labels,
    start_hooks: Option<(&[capsa_spec::oci::Hook], &str)>,
) -> R<std::convert::Infallible> {
    let args: Vec<CString> = p
        .args
        .iter()
        .map(|a| {
            CString::new(a.as_bytes())
                .map_err(|_| ChildError::msg("process", "args", a, "contains a NUL byte"))
        })
        .collect::<R<_>>()?;
    let envs: Vec<CString> = env
        .iter()
        .map(|a| {
            CString::new(a.as_bytes())
                .map_err(|_| ChildError::msg("process", "env", a, "contains a NUL byte"))
        })
        .collect::<R<_>>()?;
    let path = CString::new(exe.as_os_str().as_encoded_bytes())
        .map_err(|_| ChildError::msg("process", "exec", exe.display(), "contains a NUL byte"))?;

    // Security: CVE-2024-21626. Nothing but stdio and --preserve-fds may
    // reach the program; a leaked directory fd would be a way out of the
    // rootfs.
    capsa_sys::fd::cloexec_from(3 + keep_fds).map_err(|e| err("close_range", "fds", e))?;

    // The runtime may have blocked signals to forward them, and ignored
    // some (Rust ignores SIGPIPE): the program starts with none blocked and
    // every action the default, as with runc. (Before seccomp, which may
    // forbid it.)
    capsa_sys::process::default_signal_actions();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which the
    // user switch below may drop: load it now, as runc does (the profile
    // must then allow the set-up calls that follow).
    if !p.no_new_privileges {
        if let Some(s) = seccomp {
            load_seccomp(s)?;
        }
    }

    // The bounding set first: dropping needs CAP_SETPCAP, which the
    // user switch below may take away.
    let last = capsa_sys::caps::last_cap();
    for cap in 0..=last {
        if p.bounding & (1u64 << cap) == 0 && capsa_sys::process::bounding_has(cap) {
            capsa_sys::process::drop_bounding_cap(cap).map_err(|e| {
                err(
                    "drop bounding capability",
                    capsa_spec::caps::NAMES.get(cap as usize).unwrap_or(&"?"),
                    e,
                )
            })?;
        }
    }

    capsa_sys::process::set_keep_caps(true).map_err(|e| err("prctl", "PR_SET_KEEPCAPS", e))?;
    if let Err(e) = capsa_sys::process::set_groups(&p.additional_gids) {
        // A user namespace with setgroups denied refuses; only an error
        // when groups were asked for.
        if !p.additional_gids.is_empty() || e != Errno::EPERM {
            return Err(err("setgroups", format!("{:?}", p.additional_gids), e));
        }
    }
    let gid = nix::unistd::Gid::from_raw(p.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| err("setresgid", p.gid, e))?;
    let uid = nix::unistd::Uid::from_raw(p.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| err("setresuid", p.uid, e))?;
    capsa_sys::process::set_keep_caps(false).map_err(|e| err("prctl", "PR_SET_KEEPCAPS", e))?;

    nix::unistd::chdir(&p.cwd).map_err(|e| err("chdir", p.cwd.display(), e))?;
    // Security: CVE-2024-21626. A cwd outside the root (reached through a
    // leaked fd) makes getcwd fail with ENOENT ("(unreachable)").
    match nix::unistd::getcwd() {
        Ok(c) if c.is_absolute() => {}
        Ok(c) => {
            return Err(ChildError::msg(
                "process",
                "getcwd",
                c.display(),
                "current directory is outside the container root",
            ))
        }
        Err(e) => {
            return Err(ChildError {
                detail: "current directory is outside the container root".into(),
                ..err("getcwd", p.cwd.display(), e)
            })
        }
    }

    // 0022 unless the spec says otherwise (as runc): never the umask of
    // whoever started the runtime.
    capsa_sys::process::set_umask(p.umask.unwrap_or(0o022));

    capsa_sys::caps::set(capsa_sys::caps::CapSets {
        effective: p.effective,
        permitted: p.permitted,
        inheritable: p.inheritable,
    })
    .map_err(|e| {
        err(
            "capset",
            format!(
                "effective {:#x} permitted {:#x} inheritable {:#x}",
                p.effective, p.permitted, p.inheritable
            ),
            e,
        )
    })?;
    // The kernel allows an ambient capability only when it is permitted and
    // inheritable; others are skipped, as runc does.
    let allowed = p.ambient & p.permitted & p.inheritable;
    let ambient: Vec<u32> = (0..=last).filter(|c| allowed & (1u64 << c) != 0).collect();
    capsa_sys::process::set_ambient(&ambient)
        .map_err(|e| err("raise ambient capabilities", format!("{:#x}", p.ambient), e))?;

    if p.no_new_privileges {
        capsa_sys::process::set_no_new_privs()
            .map_err(|e| err("prctl", "PR_SET_NO_NEW_PRIVS", e))?;
    }

    labels.apply()?;
    // Seccomp last of the set-up: nothing of the runtime's own is filtered.
    if p.no_new_privileges {
        if let Some(s) = seccomp {
            load_seccomp(s)?;
        }
    }
    // Security: a startContainer hook is a program of the container's
    // (its path resolves in the container): it runs with what the
    // container's process gets, its seccomp filter included (as runc),
    // never with the runtime's privileges.
    if let Some((hooks, state)) = start_hooks {
        crate::hooks::run(hooks, state).map_err(|f| {
            ChildError::msg(
                "hooks",
                "startContainer",
                format!("[{}] {}", f.index, f.path),
                f.why,
            )
        })?;
    }
    let e = capsa_sys::process::execve(&path, &args, &envs);
    Err(err("execve", exe.display(), e))
}

/// Load the filter; the listener fd when the profile notifies an agent.
fn load_seccomp(s: &SeccompPlan) -> R<Option<std::os::fd::OwnedFd>> {
    let filter: Vec<capsa_sys::seccomp::Instruction> = s
        .filter
        .iter()
        .map(|i| capsa_sys::seccomp::Instruction {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    capsa_sys::seccomp::set_filter(s.flags, &filter).map_err(|e| {
        err(
            "seccomp",
            format!("{} instructions, flags {:#x}", filter.len(), s.flags),
            e,
        )
    })
}

/// With a seccomp agent (`SCMP_ACT_NOTIFY`): load the filter now, while the
/// runtime is still there to pass the listener to the agent, and send the
/// listener fd over the channel. no_new_privs first when asked (it is
/// irreversible anyway).
pub fn load_seccomp_for_agent(
    p: &ProcessPlan,
    s: &SeccompPlan,
    chan: &crate::channel::Channel,
) -> R<()> {
    if p.no_new_privileges {
        capsa_sys::process::set_no_new_privs()
            .map_err(|e| err("prctl", "PR_SET_NO_NEW_PRIVS", e))?;
    }
    let fd = load_seccomp(s)?
        .ok_or_else(|| ChildError::msg("process", "seccomp", "listener", "no listener fd"))?;
    chan.send_fd(
        &crate::channel::Msg::SeccompListener,
        Some(std::os::fd::AsRawFd::as_raw_fd(&fd)),
    )
    .map_err(|e| err("send", "seccomp listener", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_keeps_its_last_value() {
        let env: Vec<String> = ["A=1", "B=2", "A=3", "C=", "B=4"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(dedup_env(&env), ["A=3", "C=", "B=4"]);
    }
}
