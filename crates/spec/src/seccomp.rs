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

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

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

// Opcodes (linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JMP_JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

// struct seccomp_data offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg(i: usize, high: bool) -> u32 {
    16 + 8 * i as u32 + if high { 4 } else { 0 }
}

// Return values (linux/seccomp.h).
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const FLAG_NEW_LISTENER: u32 = 8;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn name<T: serde::Serialize>(v: &T) -> String {
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

/// A condition on one argument, as BPF with symbolic targets.
#[derive(Debug, Clone, Copy)]
enum Target {
    Next,
    Ok,
    Fail,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Ld(u32),
    And(u32),
    Jmp(u16, u32, Target, Target),
}

fn condition(field: &str, a: &oci::LinuxSeccompArg) -> Result<Vec<Op>, SpecError> {
    if a.index() > 5 {
        return Err(SpecError::invalid(
            format!("{field}.index"),
            format!("{} is not an argument index (0-5)", a.index()),
        ));
    }
    let (hi, lo) = ((a.value() >> 32) as u32, a.value() as u32);
    let (ld_hi, ld_lo) = (
        Op::Ld(off_arg(a.index(), true)),
        Op::Ld(off_arg(a.index(), false)),
    );
    use Target::{Fail, Next, Ok as Pass};
    Result::Ok(match name(&a.op()).as_str() {
        "SCMP_CMP_EQ" => vec![
            ld_hi,
            Op::Jmp(JEQ_K, hi, Next, Fail),
            ld_lo,
            Op::Jmp(JEQ_K, lo, Pass, Fail),
        ],
        "SCMP_CMP_NE" => vec![
            ld_hi,
            Op::Jmp(JEQ_K, hi, Next, Pass),
            ld_lo,
            Op::Jmp(JEQ_K, lo, Fail, Pass),
        ],
        "SCMP_CMP_GT" => vec![
            ld_hi,
            Op::Jmp(JGT_K, hi, Pass, Next),
            Op::Jmp(JEQ_K, hi, Next, Fail),
            ld_lo,
            Op::Jmp(JGT_K, lo, Pass, Fail),
        ],
        "SCMP_CMP_GE" => vec![
            ld_hi,
            Op::Jmp(JGT_K, hi, Pass, Next),
            Op::Jmp(JEQ_K, hi, Next, Fail),
            ld_lo,
            Op::Jmp(JGE_K, lo, Pass, Fail),
        ],
        "SCMP_CMP_LT" => vec![
            ld_hi,
            Op::Jmp(JGT_K, hi, Fail, Next),
            Op::Jmp(JEQ_K, hi, Next, Pass),
            ld_lo,
            Op::Jmp(JGE_K, lo, Fail, Pass),
        ],
        "SCMP_CMP_LE" => vec![
            ld_hi,
            Op::Jmp(JGT_K, hi, Fail, Next),
            Op::Jmp(JEQ_K, hi, Next, Pass),
            ld_lo,
            Op::Jmp(JGT_K, lo, Fail, Pass),
        ],
        "SCMP_CMP_MASKED_EQ" => {
            let two = a.value_two().unwrap_or(0);
            let (thi, tlo) = ((two >> 32) as u32, two as u32);
            vec![
                ld_hi,
                Op::And(hi),
                Op::Jmp(JEQ_K, thi, Next, Fail),
                ld_lo,
                Op::And(lo),
                Op::Jmp(JEQ_K, tlo, Pass, Fail),
            ]
        }
        other => {
            return Err(SpecError::invalid(
                format!("{field}.op"),
                format!("unknown operator {other:?}"),
            ))
        }
    })
}

/// Lay out one rule: its conditions in sequence (each `Ok` goes to the
/// next condition), then `ret action`. `Fail` jumps past the rule.
fn rule_code(conds: &[Vec<Op>], ret: u32) -> Result<Vec<SockFilter>, SpecError> {
    let mut ops: Vec<(Op, usize)> = Vec::new(); // (op, index of its condition)
    for (ci, c) in conds.iter().enumerate() {
        for op in c {
            ops.push((*op, ci));
        }
    }
    // Condition starts, and the end of the rule (where `ret` is).
    let mut starts = Vec::new();
    let mut pos = 0;
    for c in conds {
        starts.push(pos);
        pos += c.len();
    }
    let ret_at = pos;
    let fail_at = ret_at + 1;
    let mut out = Vec::new();
    for (i, (op, ci)) in ops.iter().enumerate() {
        out.push(match *op {
            Op::Ld(off) => SockFilter {
                code: LD_W_ABS,
                jt: 0,
                jf: 0,
                k: off,
            },
            Op::And(m) => SockFilter {
                code: ALU_AND_K,
                jt: 0,
                jf: 0,
                k: m,
            },
            Op::Jmp(code, k, t, f) => {
                let resolve = |tg: Target| -> Result<u8, SpecError> {
                    let dest = match tg {
                        Target::Next => i + 1,
                        Target::Ok => starts.get(ci + 1).copied().unwrap_or(ret_at),
                        Target::Fail => fail_at,
                    };
                    u8::try_from(dest - i - 1).map_err(|_| {
                        SpecError::invalid("linux.seccomp", "a rule has too many conditions")
                    })
                };
                SockFilter {
                    code,
                    jt: resolve(t)?,
                    jf: resolve(f)?,
                    k,
                }
            }
        });
    }
    out.push(SockFilter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: ret,
    });
    Ok(out)
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

    // Rules as (names, ret, conditions), in the order written.
    struct Rule {
        names: Vec<String>,
        ret: u32,
        conds: Vec<Vec<Op>>,
    }
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

    let mut prog: Vec<SockFilter> = Vec::new();
    let bad_arch = SockFilter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: RET_KILL_PROCESS,
    };
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
                head.push(bad_arch);
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
        let mut by_nr: std::collections::HashMap<u32, Vec<&Rule>> =
            std::collections::HashMap::new();
        for r in &rules {
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
        sections.push((audit, body));
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
    prog.push(bad_arch);
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

fn prog_has(prog: &[SockFilter], ret: u32) -> bool {
    prog.iter().any(|i| i.code == RET_K && i.k == ret)
}

/// Run the program on one call, as the kernel would: the return value.
pub fn simulate(prog: &[SockFilter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let mut acc = 0u32;
    let mut pc = 0usize;
    while let Some(ins) = prog.get(pc) {
        pc += 1;
        match ins.code {
            LD_W_ABS => {
                let o = ins.k as usize;
                acc = u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
            }
            ALU_AND_K => acc &= ins.k,
            JMP_JA => pc += ins.k as usize,
            RET_K => return ins.k,
            code => {
                let hit = match code {
                    JEQ_K => acc == ins.k,
                    JGT_K => acc > ins.k,
                    JGE_K => acc >= ins.k,
                    JSET_K => acc & ins.k != 0,
                    _ => return RET_KILL_PROCESS,
                };
                pc += if hit { ins.jt } else { ins.jf } as usize;
            }
        }
    }
    RET_KILL_PROCESS
}

#[cfg(test)]
mod tests {
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
        let s: oci::LinuxSeccomp = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/run/a.sock"}"#,
        )
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
}
