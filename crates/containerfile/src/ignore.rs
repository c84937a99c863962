//! Path patterns: `.containerignore` / `.dockerignore` rules, and the globs
//! `COPY` and `ADD` sources may be. Patterns are Go's `filepath.Match`
//! (`*`, `?`, `[a-z]`, `[^a]`, `\` escaping) per path component, with `**`
//! matching any number of components, as Docker's pattern matcher does.

/// One component against one pattern component.
pub fn component(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches(&p, &n)
}

fn matches(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and what it had taken, to backtrack.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, len)) = class(&p[pi..], n[ni]) {
                        if ok {
                            pi += len;
                            ni += 1;
                            continue;
                        }
                    }
                }
                '\\' if pi + 1 < p.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                '\\' if pi + 1 < p.len() => {}
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// `[...]` at the start of `p` against `c`: whether it matches, and the
/// class's length; `None` when it is not closed.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('^') | Some('!'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        let lo = if p[i] == '\\' && i + 1 < p.len() {
            i += 1;
            p[i]
        } else {
            p[i]
        };
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            let hi = p[i + 2];
            hit |= lo <= c && c <= hi;
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
    None
}

/// A path (components split on `/`) against a pattern, `**` spanning any
/// number of components. Dynamic programming over (pattern, path)
/// positions, so a pattern of many `**` cannot take exponential time.
pub fn path(pattern: &[&str], path: &[&str]) -> bool {
    let (np, nn) = (pattern.len(), path.len());
    // ok[i][j]: pattern[i..] matches path[j..].
    let mut ok = vec![vec![false; nn + 1]; np + 1];
    ok[np][nn] = true;
    for i in (0..np).rev() {
        for j in (0..=nn).rev() {
            ok[i][j] = if pattern[i] == "**" {
                ok[i + 1][j] || (j < nn && ok[i][j + 1])
            } else {
                j < nn && component(pattern[i], path[j]) && ok[i + 1][j + 1]
            };
        }
    }
    ok[0][0]
}

/// Clean a pattern or path: no leading `/` or `./`, no empty or `.`
/// components, `..` taking one back (never above the top).
pub fn clean(p: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

/// One rule of an ignore file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    parts: Vec<String>,
    exclude: bool,
}

/// The rules of a `.containerignore` or `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    rules: Vec<Rule>,
}

impl Ignore {
    /// Read the file's text: one pattern a line, `#` comments, `!`
    /// re-including what an earlier line left out.
    pub fn parse(text: &str) -> Ignore {
        let mut rules = Vec::new();
        for l in text.lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (exclude, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let parts = clean(p);
            if parts.is_empty() {
                continue;
            }
            rules.push(Rule { parts, exclude });
        }
        Ignore { rules }
    }

    /// Whether `rel` (a path in the context) is left out: the last rule
    /// that matches it or one of its parents decides.
    pub fn ignored(&self, rel: &str) -> bool {
        let parts = clean(rel);
        let comps: Vec<&str> = parts.iter().map(String::as_str).collect();
        let mut out = false;
        for r in &self.rules {
            let pat: Vec<&str> = r.parts.iter().map(String::as_str).collect();
            let hit = (1..=comps.len()).any(|k| path(&pat, &comps[..k]));
            if hit {
                out = !r.exclude;
            }
        }
        out
    }

    /// Whether some rule re-includes a path under `dir`, so a left-out
    /// directory must still be walked.
    pub fn may_include_under(&self, dir: &str) -> bool {
        let d = clean(dir);
        self.rules.iter().any(|r| {
            r.exclude
                && (r.parts.len() > d.len() || r.parts.iter().any(|p| p == "**"))
                && r.parts
                    .iter()
                    .zip(d.iter())
                    .all(|(p, c)| p == "**" || component(p, c))
        })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Whether `s` has glob characters.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_match_as_go_filepath_match() {
        assert!(component("*.txt", "a.txt"));
        assert!(!component("*.txt", "a.txt.bak"));
        assert!(component("a?c", "abc"));
        assert!(component("[a-c]x", "bx"));
        assert!(!component("[^a-c]x", "bx"));
        assert!(component("[!a-c]x", "dx"));
        assert!(component("\\*", "*"));
        assert!(!component("\\*", "a"));
        assert!(component("*", ""));
        assert!(component("a*b*c", "aXXbYYc"));
        assert!(!component("a*b*c", "aXXbYY"));
    }

    #[test]
    fn double_star_spans_directories() {
        let m = |p: &str, x: &str| {
            let p = clean(p);
            let x = clean(x);
            path(
                &p.iter().map(String::as_str).collect::<Vec<_>>(),
                &x.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        };
        assert!(m("**/*.go", "a/b/c.go"));
        assert!(m("**/*.go", "c.go"));
        assert!(m("a/**/z", "a/z"));
        assert!(m("a/**/z", "a/b/c/z"));
        assert!(!m("a/*/z", "a/b/c/z"));
    }

    #[test]
    fn ignore_rules_follow_dockerignore() {
        let i = Ignore::parse("# comment\n*.log\n!keep.log\nbuild/\n/tmp\n**/secret\n");
        assert!(i.ignored("x.log"));
        assert!(!i.ignored("keep.log"));
        assert!(i.ignored("build"));
        assert!(i.ignored("build/out/a.o"));
        assert!(i.ignored("tmp"));
        assert!(i.ignored("deep/dir/secret"));
        assert!(!i.ignored("src/main.rs"));
        // `*.log` is for the top only, as Docker's.
        assert!(!i.ignored("sub/x.log"));
        let j = Ignore::parse("docs\n!docs/README.md\n");
        assert!(j.ignored("docs/a.md"));
        assert!(!j.ignored("docs/README.md"));
        assert!(j.may_include_under("docs"));
        assert!(!i.may_include_under("build"));
    }
}
