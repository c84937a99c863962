//! Any text as a Containerfile, and any text as a .dockerignore: parsed
//! into instructions or refused with an error naming the line, never a
//! panic or a hang; every word of every instruction then expanded (or
//! refused) with a lookup, and every ignore rule matched against paths.
#![no_main]

use capsa_containerfile::{expand, ignore, parse, Kind};
use libfuzzer_sys::fuzz_target;

fn words(k: &Kind) -> Vec<String> {
    match k {
        Kind::From { image, .. } => vec![image.clone()],
        Kind::Copy(c) | Kind::Add(c) => c.sources.iter().chain([&c.dest]).cloned().collect(),
        Kind::Env(p) | Kind::Label(p) => p.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect(),
        Kind::Arg(a) => a.iter().filter_map(|(_, v)| v.clone()).collect(),
        Kind::Workdir(w) | Kind::User(w) | Kind::StopSignal(w) => vec![w.clone()],
        Kind::Expose(v) | Kind::Volume(v) => v.clone(),
        _ => vec![],
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lookup = |n: &str| (n.len() % 2 == 0).then(|| format!("v{n}"));
    if let Ok(f) = parse(text, "Containerfile") {
        for ins in f.args.iter().chain(f.stages.iter().flat_map(|s| std::iter::once(&s.from).chain(&s.steps))) {
            for w in words(&ins.kind) {
                let _ = expand::word(&w, f.escape, &lookup);
            }
        }
    }
    let ig = ignore::Ignore::parse(text);
    for p in ["a", "a/b/c", "x.log", "deep/dir/tree/of/many/parts/file.txt", ""] {
        let _ = ig.ignored(p);
        let _ = ig.may_include_under(p);
    }
});
