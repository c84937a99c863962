//! Any JSON as linux.seccomp: compilation returns a program or an error,
//! and every program it returns is one the kernel would accept: at most
//! 4096 instructions, every jump inside the program, ending in a return;
//! running it on a few calls terminates.
#![no_main]

use capsa_spec::seccomp::{compile, simulate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = serde_json::from_slice::<capsa_spec::oci::LinuxSeccomp>(data) else { return };
    let Ok(plan) = compile(&s) else { return };
    let p = &plan.filter;
    assert!(!p.is_empty() && p.len() <= 4096);
    for (i, ins) in p.iter().enumerate() {
        let class = ins.code & 0x07;
        if class == 0x05 {
            // jumps: JA uses k, conditional ones jt/jf
            let far = if ins.code == 0x05 { ins.k as usize } else { ins.jt.max(ins.jf) as usize };
            assert!(i + 1 + far < p.len(), "jump out of the program at {i}");
        }
    }
    assert_eq!(p.last().unwrap().code, 0x06, "the program does not end in a return");
    for (arch, nr) in [(0xC000_003E, 0), (0xC000_003E, 59), (0x4000_0003, 11), (0, 1)] {
        let _ = simulate(p, arch, nr, [0, 1, u64::MAX, 0, 0, 0]);
    }
});
