//! Sizes as users write them on command lines (`512m`, `1.5g`, `100kb`):
//! the one size parser of the workspace.

/// A size that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a size (a number of bytes, or with k, m, g or t: powers of 1024)")]
pub struct SizeError(pub String);

/// Bytes from `s`: a non-negative number, perhaps fractional, with an
/// optional `k`, `m`, `g` or `t` (powers of 1024) and an optional `b`, in
/// any case, as docker and runc read memory sizes.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let bad = || SizeError(s.to_string());
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult): (&str, u64) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    let bytes = v * mult as f64;
    if !(bytes.is_finite() && bytes >= 0.0 && bytes < i64::MAX as f64) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_powers_of_1024_in_any_case() {
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("100mb"), Ok(100 << 20));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size(" 0 "), Ok(0));
    }

    #[test]
    fn what_is_not_a_size_is_refused() {
        for bad in ["", "m", "abc", "-1", "1x", "nan", "inf", "99999999t"] {
            assert_eq!(parse_size(bad), Err(SizeError(bad.into())), "{bad}");
        }
    }
}
