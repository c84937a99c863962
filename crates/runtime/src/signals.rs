//! Signal names as `kill` accepts them: `KILL`, `SIGKILL`, `kill` or `9`.

/// Parse a signal name or number.
pub fn parse(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        // 0 sends nothing and only checks the target, as kill(2).
        return (0..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if let Some(rt) = name.strip_prefix("SIGRTMIN") {
        let base = libc::SIGRTMIN();
        return match rt {
            "" => Some(base),
            r => r
                .strip_prefix('+')
                .and_then(|n| n.parse::<i32>().ok())
                .map(|n| base + n)
                .filter(|&n| n <= libc::SIGRTMAX()),
        };
    }
    name.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_parse() {
        assert_eq!(parse("KILL"), Some(9));
        assert_eq!(parse("SIGTERM"), Some(15));
        assert_eq!(parse("hup"), Some(1));
        assert_eq!(parse("9"), Some(9));
        assert_eq!(parse("SIGRTMIN+1"), Some(libc::SIGRTMIN() + 1));
        assert_eq!(parse("FOO"), None);
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("65"), None);
    }
}
