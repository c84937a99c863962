//! `linux.seccomp` compiled to a classic BPF program, in pure Rust.
//!
//! Why not libseccomp: a static, dependency-free runtime binary, and a
//! compiler small enough to read (and to unit-test instruction by
//! instruction). Semantics follow runc over libseccomp where the spec is
//! silent: unknown syscall names are skipped, a syscall's rules are tried in
//! the order written and the first whose argument conditions all hold
//! decides, anything else gets `defaultAction`; a call from an architecture
//! the profile does not list kills the process.
//!
//! Program layout (all jumps forward, as BPF requires):
//!
//! ```text
//!   load arch; one jump per listed architecture; kill (bad arch)
//!   per architecture: load nr; [x32: clear the x32 bit]
//!     per syscall:  jeq nr -> ret ACTION        (rules without conditions)
//!                   jeq nr -> ja group          (rules with conditions)
//!     ret DEFAULT
//!   groups: conditions of each rule; ret its action; ...; ret DEFAULT
//! ```

use crate::{oci, SpecError};
use bpf::*;
pub use bpf::{simulate, SockFilter};

mod bpf;

/// A compiled profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompPlan {
    pub filter: Vec<SockFilter>,
    /// `SECCOMP_FILTER_FLAG_*` for seccomp(2).
    pub flags: u32,
    /// Where a seccomp agent listens, when a rule notifies
    /// (`SCMP_ACT_NOTIFY`); the listener fd goes there.
    pub listener: Option<(std::path::PathBuf, String)>,
}

pub(super) fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action(
    field: &str,
    a: &oci::LinuxSeccompAction,
    errno: Option<u32>,
    default_errno: u32,
) -> Result<u32, SpecError> {
    let e = errno.unwrap_or(default_errno) & 0xffff;
    Ok(match name(a).as_str() {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS" => RET_KILL_PROCESS,
        "SCMP_ACT_TRAP" => RET_TRAP,
        "SCMP_ACT_ERRNO" => RET_ERRNO | e,
        "SCMP_ACT_TRACE" => RET_TRACE | e,
        "SCMP_ACT_LOG" => RET_LOG,
        "SCMP_ACT_ALLOW" => RET_ALLOW,
        "SCMP_ACT_NOTIFY" => RET_USER_NOTIF,
        other => {
            return Err(SpecError::invalid(
                field,
                format!("unknown action {other:?}"),
            ))
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchKind {
    X86_64,
    X86,
    X32,
}

/// The syscall table of an ABI, by name: built once per compile, since
/// the crate's own lookup walks the whole table for each name (a default
/// profile names some 400 calls, for up to three ABIs).
fn syscall_table(arch: ArchKind) -> std::collections::HashMap<String, u32> {
    match arch {
        ArchKind::X86_64 | ArchKind::X32 => syscalls::x86_64::Sysno::iter()
            .map(|s| (s.to_string(), s.id() as u32))
            .collect(),
        ArchKind::X86 => syscalls::x86::Sysno::iter()
            .map(|s| (s.to_string(), s.id() as u32))
            .collect(),
    }
}

/// Compile `linux.seccomp`.
pub fn compile(s: &oci::LinuxSeccomp) -> Result<SeccompPlan, SpecError> {
    let default_errno = s.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default = action(
        "linux.seccomp.defaultAction",
        &s.default_action(),
        None,
        default_errno,
    )?;
    // Security (a hang, not an escape): the runtime's own writes (its
    // reports to the parent) after the filter is loaded would wait for an
    // agent that may be waiting for the runtime. runc refuses both too.
    if default == RET_USER_NOTIF {
        return Err(SpecError::invalid(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be used as default action",
        ));
    }
    let mut flags = 0u32;
    for (i, f) in s.flags().iter().flatten().enumerate() {
        flags |= match name(f).as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => 1,
            "SECCOMP_FILTER_FLAG_LOG" => 2,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => 4,
            other => {
                return Err(SpecError::invalid(
                    format!("linux.seccomp.flags[{i}]"),
                    format!("unknown flag {other:?}"),
                ))
            }
        };
    }
    let mut archs = Vec::new();
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        match name(a).as_str() {
            "SCMP_ARCH_X86_64" => archs.push(ArchKind::X86_64),
            "SCMP_ARCH_X86" => archs.push(ArchKind::X86),
            "SCMP_ARCH_X32" => archs.push(ArchKind::X32),
            // Other ABIs cannot make system calls on an x86_64 kernel.
            n if n.starts_with("SCMP_ARCH_") => {}
            other => {
                return Err(SpecError::invalid(
                    format!("linux.seccomp.architectures[{i}]"),
                    format!("unknown architecture {other:?}"),
                ))
            }
        }
    }
    // libseccomp, so runc, always adds the native architecture to a
    // filter: a profile listing only x86 and x32 still filters x86_64
    // calls by its rules, it does not kill them.
    if !archs.contains(&ArchKind::X86_64) {
        archs.push(ArchKind::X86_64);
    }

    let rules = rules(s, default_errno)?;

    let mut prog: Vec<SockFilter> = Vec::new();
    // Sections per audit arch; x32 shares the x86_64 one, which is always
    // there (the native arch is added above).
    let i386 = archs.contains(&ArchKind::X86);
    let mut sections: Vec<(u32, Vec<SockFilter>)> = Vec::new();
    for (audit, kind) in [
        (AUDIT_ARCH_X86_64, ArchKind::X86_64),
        (AUDIT_ARCH_I386, ArchKind::X86),
    ] {
        if kind == ArchKind::X86 && !i386 {
            continue;
        }
        sections.push((audit, section(kind, &archs, &rules, default)?));
    }
    // Architecture check: per section a jeq and a long jump (sections are
    // longer than a conditional jump reaches).
    prog.push(SockFilter {
        code: LD_W_ABS,
        jt: 0,
        jf: 0,
        k: OFF_ARCH,
    });
    let n = sections.len();
    let first = 1 + 2 * n + 1; // after the load, the pairs, and the bad-arch ret
    let mut start = first;
    for (audit, body) in &sections {
        prog.push(SockFilter {
            code: JEQ_K,
            jt: 0,
            jf: 1,
            k: *audit,
        });
        let ja_at = prog.len();
        prog.push(SockFilter {
            code: JMP_JA,
            jt: 0,
            jf: 0,
            k: (start - ja_at - 1) as u32,
        });
        start += body.len();
    }
    prog.push(BAD_ARCH);
    for (_, b) in sections {
        prog.extend(b);
    }
    if prog.len() > 4096 {
        return Err(SpecError::invalid(
            "linux.seccomp",
            format!(
                "compiles to {} BPF instructions, above the kernel's 4096",
                prog.len()
            ),
        ));
    }
    // A notify rule needs an agent to answer, reached at listenerPath.
    let notifies = default == RET_USER_NOTIF || prog_has(&prog, RET_USER_NOTIF);
    let listener = match (notifies, s.listener_path()) {
        (true, Some(p)) if p.is_absolute() => {
            Some((p.clone(), s.listener_metadata().clone().unwrap_or_default()))
        }
        (true, _) => {
            return Err(SpecError::invalid(
                "linux.seccomp.listenerPath",
                "SCMP_ACT_NOTIFY needs an absolute listenerPath where a seccomp agent listens",
            ))
        }
        (false, _) => None,
    };
    if listener.is_some() {
        flags |= FLAG_NEW_LISTENER;
    }
    Ok(SeccompPlan {
        listener,
        filter: prog,
        flags,
    })
}

/// A call from an architecture the profile does not list.
const BAD_ARCH: SockFilter = SockFilter {
    code: RET_K,
    jt: 0,
    jf: 0,
    k: RET_KILL_PROCESS,
};

/// One rule of the profile: the names it covers, what it returns, and
/// its conditions (all must hold).
struct Rule {
    names: Vec<String>,
    ret: u32,
    conds: Vec<Vec<Op>>,
}

/// The profile's rules as (names, ret, conditions), in the order written.
fn rules(s: &oci::LinuxSeccomp, default_errno: u32) -> Result<Vec<Rule>, SpecError> {
    let mut rules = Vec::new();
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let ret = action(
            &format!("{field}.action"),
            &sc.action(),
            sc.errno_ret(),
            default_errno,
        )?;
        if ret == RET_USER_NOTIF && sc.names().iter().any(|n| n == "write") {
            return Err(SpecError::invalid(
                format!("{field}.names"),
                "SCMP_ACT_NOTIFY cannot be used for the write syscall",
            ));
        }
        let mut conds = Vec::new();
        let mut per_arg = [0usize; 6];
        for (j, a) in sc.args().iter().flatten().enumerate() {
            conds.push(condition(&format!("{field}.args[{j}]"), a)?);
            if let Some(n) = per_arg.get_mut(a.index()) {
                *n += 1;
            }
        }
        // Security: runc's (libseccomp's) semantics. Conditions on one
        // argument cannot all hold at once, so when an argument has more
        // than one, every condition of the entry is a rule of its own (an
        // OR); ANDed, a profile written for runc would never match, and
        // what it refuses would be allowed (fail open).
        if per_arg.iter().any(|&n| n > 1) {
            for c in conds {
                rules.push(Rule {
                    names: sc.names().clone(),
                    ret,
                    conds: vec![c],
                });
            }
        } else {
            rules.push(Rule {
                names: sc.names().clone(),
                ret,
                conds,
            });
        }
    }
    Ok(rules)
}

/// The code for one audit architecture: load the number, the x32 check,
/// the ENOSYS stub, one dispatch per number, `ret default`, then the
/// condition groups the dispatch jumps to.
fn section(
    kind: ArchKind,
    archs: &[ArchKind],
    rules: &[Rule],
    default: u32,
) -> Result<Vec<SockFilter>, SpecError> {
    let mut head = vec![SockFilter {
        code: LD_W_ABS,
        jt: 0,
        jf: 0,
        k: OFF_NR,
    }];
    if kind == ArchKind::X86_64 {
        if archs.contains(&ArchKind::X32) {
            // x32 numbers are x86_64's with the x32 bit: clear it.
            head.push(SockFilter {
                code: ALU_AND_K,
                jt: 0,
                jf: 0,
                k: !X32_SYSCALL_BIT,
            });
        } else {
            head.push(SockFilter {
                code: JSET_K,
                jt: 0,
                jf: 1,
                k: X32_SYSCALL_BIT,
            });
            head.push(BAD_ARCH);
        }
    }
    let table = syscall_table(kind);
    // As runc's stub: a call newer than every one this profile could
    // name gets ENOSYS, not the default action, so that programs fall
    // back to an older call instead of failing (or dying) on EPERM.
    // Not where the default allows: then new calls are allowed anyway.
    if !matches!(default & 0xffff_0000, RET_ALLOW | RET_LOG) {
        let newest = table.values().copied().max().unwrap_or(0);
        head.push(SockFilter {
            code: JGT_K,
            jt: 0,
            jf: 1,
            k: newest,
        });
        head.push(SockFilter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: RET_ERRNO | libc::ENOSYS as u32,
        });
    }
    // Group rules by number, keeping the order written.
    let mut order: Vec<u32> = Vec::new();
    let mut by_nr: std::collections::HashMap<u32, Vec<&Rule>> = std::collections::HashMap::new();
    for r in rules {
        for n in &r.names {
            let Some(&nr) = table.get(n.as_str()) else {
                continue;
            };
            let e = by_nr.entry(nr).or_default();
            if e.is_empty() {
                order.push(nr);
            }
            e.push(r);
        }
    }
    let mut dispatch: Vec<(u32, Option<u32>)> = Vec::new(); // (nr, direct ret)
    let mut groups: Vec<Vec<SockFilter>> = Vec::new();
    for nr in &order {
        let rs = &by_nr[nr];
        // A first rule without conditions decides alone.
        if rs[0].conds.is_empty() {
            dispatch.push((*nr, Some(rs[0].ret)));
            continue;
        }
        let mut g = Vec::new();
        for r in rs {
            g.extend(rule_code(&r.conds, r.ret)?);
            if r.conds.is_empty() {
                break;
            }
        }
        g.push(SockFilter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: default,
        });
        dispatch.push((*nr, None));
        groups.push(g);
    }
    let mut body = head;
    // Where each group will start, relative to the section start.
    // Two instructions per dispatched number, then `ret default`.
    let dispatch_len = dispatch.len() * 2 + 1;
    let mut group_at = body.len() + dispatch_len;
    let mut gi = 0;
    for (nr, direct) in &dispatch {
        match direct {
            Some(ret) => {
                body.push(SockFilter {
                    code: JEQ_K,
                    jt: 0,
                    jf: 1,
                    k: *nr,
                });
                body.push(SockFilter {
                    code: RET_K,
                    jt: 0,
                    jf: 0,
                    k: *ret,
                });
            }
            None => {
                body.push(SockFilter {
                    code: JEQ_K,
                    jt: 0,
                    jf: 1,
                    k: *nr,
                });
                let here = body.len();
                body.push(SockFilter {
                    code: JMP_JA,
                    jt: 0,
                    jf: 0,
                    k: (group_at - here - 1) as u32,
                });
                group_at += groups[gi].len();
                gi += 1;
            }
        }
    }
    body.push(SockFilter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: default,
    });
    for g in groups {
        body.extend(g);
    }
    Ok(body)
}

#[cfg(test)]
mod tests;
