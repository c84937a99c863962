//! Classic BPF for seccomp: the instructions, the return values the
//! kernel knows, one argument condition as code, and an interpreter the
//! tests (and `capsa-runtime`'s checks) run a program through.

use super::name;
use crate::{oci, SpecError};

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Opcodes (linux/filter.h).
pub(super) const LD_W_ABS: u16 = 0x20;
pub(super) const ALU_AND_K: u16 = 0x54;
pub(super) const JMP_JA: u16 = 0x05;
pub(super) const JEQ_K: u16 = 0x15;
pub(super) const JGT_K: u16 = 0x25;
pub(super) const JGE_K: u16 = 0x35;
pub(super) const JSET_K: u16 = 0x45;
pub(super) const RET_K: u16 = 0x06;

// struct seccomp_data offsets.
pub(super) const OFF_NR: u32 = 0;
pub(super) const OFF_ARCH: u32 = 4;
pub(super) const fn off_arg(i: usize, high: bool) -> u32 {
    16 + 8 * i as u32 + if high { 4 } else { 0 }
}

// Return values (linux/seccomp.h).
pub(super) const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub(super) const RET_KILL_THREAD: u32 = 0x0000_0000;
pub(super) const RET_TRAP: u32 = 0x0003_0000;
pub(super) const RET_ERRNO: u32 = 0x0005_0000;
pub(super) const RET_TRACE: u32 = 0x7ff0_0000;
pub(super) const RET_LOG: u32 = 0x7ffc_0000;
pub(super) const RET_ALLOW: u32 = 0x7fff_0000;
pub(super) const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub(super) const FLAG_NEW_LISTENER: u32 = 8;

pub(super) const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
pub(super) const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub(super) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A condition on one argument, as BPF with symbolic targets.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    Next,
    Ok,
    Fail,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Op {
    Ld(u32),
    And(u32),
    Jmp(u16, u32, Target, Target),
}

pub(super) fn condition(field: &str, a: &oci::LinuxSeccompArg) -> Result<Vec<Op>, SpecError> {
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
pub(super) fn rule_code(conds: &[Vec<Op>], ret: u32) -> Result<Vec<SockFilter>, SpecError> {
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

pub(super) fn prog_has(prog: &[SockFilter], ret: u32) -> bool {
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
