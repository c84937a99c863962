//! The device allowlist on cgroup v2: an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the container's cgroup, built
//! from the same rules as the v1 `devices.allow`/`devices.deny` files.
//!
//! Rules are checked last to first and the first that matches decides, so
//! a later rule overrides an earlier one as on v1; nothing matching is
//! denied (the implicit first rule `a *:* rwm` deny).

use crate::{CgroupError, Result};
use capsa_sys::bpf::Insn;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::AsRawFd;
use std::path::Path;

/// A rule in numbers: type (None = all), major, minor (None = any), access
/// bits (mknod 1, read 2, write 4), allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub kind: Option<char>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
    pub allow: bool,
}

fn access_bits(s: &str) -> u32 {
    s.chars().fold(0, |a, c| {
        a | match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => 0,
        }
    })
}

/// Parse `"c 1:3 rwm"` as written to the v1 files.
pub fn parse_rule(s: &str, allow: bool) -> Option<Rule> {
    let mut parts = s.split_whitespace();
    let kind = match parts.next()? {
        "a" => None,
        "c" => Some('c'),
        "b" => Some('b'),
        _ => return None,
    };
    let (major, minor) = match kind {
        None => (None, None),
        Some(_) => {
            let (ma, mi) = parts.next()?.split_once(':')?;
            let n = |x: &str| {
                if x == "*" {
                    Some(None)
                } else {
                    x.parse().ok().map(Some)
                }
            };
            (n(ma)?, n(mi)?)
        }
    };
    let access = parts.next().map(access_bits).unwrap_or(7);
    Some(Rule {
        kind,
        major,
        minor,
        access,
        allow,
    })
}

/// The spec's rules, then the defaults, in order. `linux.devices` are not
/// allowed by themselves: as runc, a device node is made, its use is
/// for `linux.resources.devices` to allow.
pub fn rules(spec: &[LinuxDeviceCgroup]) -> Vec<Rule> {
    let mut out = Vec::new();
    for d in spec {
        let kind = match d.typ() {
            Some(LinuxDeviceType::C) => Some('c'),
            Some(LinuxDeviceType::B) => Some('b'),
            _ => None,
        };
        out.push(Rule {
            kind,
            major: d.major().filter(|&m| m >= 0).map(|m| m as u32),
            minor: d.minor().filter(|&m| m >= 0).map(|m| m as u32),
            access: access_bits(d.access().as_deref().unwrap_or("rwm")),
            allow: d.allow(),
        });
    }
    out.extend(
        crate::DEFAULT_ALLOWED_DEVICES
            .iter()
            .filter_map(|r| parse_rule(r, true)),
    );
    out
}

// Opcodes (linux/bpf.h).
const LDX_MEM_W: u8 = 0x61;
const ALU_AND_K: u8 = 0x54;
const ALU_RSH_K: u8 = 0x74;
const ALU_MOV_K: u8 = 0xb4;
const ALU_MOV_X: u8 = 0xbc;
const JMP_JNE_K: u8 = 0x55;
const JMP_JNE_X: u8 = 0x5d;
const EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

/// The program for `rules`. Registers: r2 type, r3 access, r4 major,
/// r5 minor (from `struct bpf_cgroup_dev_ctx`).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        // Each check jumps past the rest of its block on mismatch.
        let mut checks: Vec<Vec<Insn>> = Vec::new();
        if let Some(k) = r.kind {
            checks.push(vec![insn(JMP_JNE_K, 2, 0, 0, if k == 'b' { 1 } else { 2 })]);
        }
        if let Some(m) = r.major {
            checks.push(vec![insn(JMP_JNE_K, 4, 0, 0, m as i32)]);
        }
        if let Some(m) = r.minor {
            checks.push(vec![insn(JMP_JNE_K, 5, 0, 0, m as i32)]);
        }
        if r.access != 7 {
            // Matches when the request asks nothing beyond the rule's bits.
            checks.push(vec![
                insn(ALU_MOV_X, 1, 3, 0, 0),
                insn(ALU_AND_K, 1, 0, 0, r.access as i32),
                insn(JMP_JNE_X, 1, 3, 0, 0),
            ]);
        }
        let tail = [
            insn(ALU_MOV_K, 0, 0, 0, r.allow as i32),
            insn(EXIT, 0, 0, 0, 0),
        ];
        if checks.is_empty() {
            // A rule that matches everything decides for all that is left:
            // what would follow is unreachable, which the verifier refuses.
            p.extend_from_slice(&tail);
            return p;
        }
        let mut block: Vec<Insn> = checks.into_iter().flatten().collect();
        block.extend_from_slice(&tail);
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K || ins.code == JMP_JNE_X {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(ALU_MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// Load the program for these rules and attach it to the v2 directory,
/// then detach the programs it replaces (an update): attaching first means
/// the cgroup is never without a filter.
pub fn attach_filter(dir: &Path, spec: &[LinuxDeviceCgroup]) -> Result<()> {
    let prog = program(&rules(spec));
    let fd =
        capsa_sys::bpf::load_device_program(&prog).map_err(|(errno, log)| CgroupError::Device {
            op: "load eBPF device filter",
            path: dir.to_path_buf(),
            errno,
            detail: log,
        })?;
    let d = std::fs::File::open(dir).map_err(|e| CgroupError::sys("open", dir, e))?;
    let old = capsa_sys::bpf::query_device_programs(d.as_raw_fd()).unwrap_or_default();
    capsa_sys::bpf::attach_device_program(d.as_raw_fd(), fd.as_raw_fd()).map_err(|errno| {
        CgroupError::Device {
            op: "attach eBPF device filter",
            path: dir.to_path_buf(),
            errno,
            detail: String::new(),
        }
    })?;
    for id in old {
        let Ok(p) = capsa_sys::bpf::program_by_id(id) else {
            continue;
        };
        capsa_sys::bpf::detach_device_program(d.as_raw_fd(), p.as_raw_fd()).map_err(|errno| {
            CgroupError::Device {
                op: "detach the previous eBPF device filter",
                path: dir.to_path_buf(),
                errno,
                detail: String::new(),
            }
        })?;
    }
    Ok(())
}

/// How many device programs are attached to a v2 directory.
pub fn attached_filters(dir: &Path) -> Result<usize> {
    let d = std::fs::File::open(dir).map_err(|e| CgroupError::sys("open", dir, e))?;
    capsa_sys::bpf::query_device_programs(d.as_raw_fd())
        .map(|v| v.len())
        .map_err(|errno| CgroupError::Device {
            op: "query eBPF device filters",
            path: dir.to_path_buf(),
            errno,
            detail: String::new(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_as_the_v1_files_write_them() {
        assert_eq!(
            parse_rule("c 136:* rwm", true),
            Some(Rule {
                kind: Some('c'),
                major: Some(136),
                minor: None,
                access: 7,
                allow: true
            })
        );
        assert_eq!(parse_rule("a *:* m", false).unwrap().kind, None);
        assert_eq!(parse_rule("c 1:3 rw", true).unwrap().access, 6);
    }

    #[test]
    fn program_checks_rules_last_first_and_denies_by_default() {
        let rules = [
            Rule {
                kind: None,
                major: None,
                minor: None,
                access: 7,
                allow: true,
            },
            Rule {
                kind: Some('c'),
                major: Some(1),
                minor: Some(3),
                access: 7,
                allow: true,
            },
            Rule {
                kind: None,
                major: None,
                minor: None,
                access: 2,
                allow: false,
            },
        ];
        let p = program(&rules);
        // Prologue (6), the deny-read-of-all rule (3 access insns + 2),
        // the allow rule (3 checks + 2), default deny (2).
        // The first rule (allow all) ends the program in place of the
        // default deny, which would be unreachable.
        assert_eq!(p.len(), 6 + 5 + 5 + 2);
        assert_eq!(p[p.len() - 2].imm, 1);
        // The last rule of the list comes first.
        assert_eq!(p[6].code, ALU_MOV_X);
        assert_eq!(p[9].imm, 0);
        // Jumps land on the next block.
        assert_eq!(p[8].off, 2);
        assert_eq!(p[11].off, 4);
        assert_eq!(p.last().unwrap().code, EXIT);
    }
}
