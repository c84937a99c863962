//! Times as container state, logs and image configs write them (RFC 3339
//! in UTC, written with Howard Hinnant's civil-from-days), and times and
//! durations as users and images give them, read with `jiff`: any zone
//! offset, Go-style and friendly durations. The one time and duration
//! parser of the workspace.

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS[.nnnnnnnnn]Z`.
pub fn rfc3339(secs: i64, nanos: Option<u32>) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    let frac = nanos.map(|n| format!(".{n:09}")).unwrap_or_default();
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Now, with nanoseconds.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, Some(d.subsec_nanos()))
}

/// Seconds since the epoch of an RFC 3339 time (`2024-02-29T23:59:59Z`,
/// `...+02:00`, with or without fractions): the zone's offset is applied.
/// `None` before the epoch or for what is not such a time.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t: jiff::Timestamp = s.trim().parse().ok()?;
    u64::try_from(t.as_second()).ok()
}

/// A duration as Go and docker write them (`500ms`, `1.5s`, `5m`,
/// `1h30m`) or as ISO 8601 (`PT5M`). `None` for a negative or unreadable
/// one.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let d: jiff::SignedDuration = s.trim().parse().ok()?;
    std::time::Duration::try_from(d).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_both_ways() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (4_102_444_800, "2100-01-01T00:00:00Z"),
        ] {
            assert_eq!(rfc3339(secs, None), text);
            assert_eq!(parse_rfc3339(text), Some(secs as u64));
        }
        assert_eq!(rfc3339(1, Some(5)), "1970-01-01T00:00:01.000000005Z");
        assert_eq!(
            parse_rfc3339("2024-02-29T23:59:59.123456789Z"),
            Some(1_709_251_199)
        );
        assert_eq!(parse_rfc3339("junk"), None);
    }

    #[test]
    fn an_offset_is_applied_not_ignored() {
        // 01:00 at +02:00 is 23:00 UTC the day before.
        assert_eq!(
            parse_rfc3339("2024-03-01T01:00:00+02:00"),
            parse_rfc3339("2024-02-29T23:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T23:00:00-01:30"),
            Some(1_709_247_600 + 5_400)
        );
    }

    #[test]
    fn durations_read_as_go_and_docker_write_them() {
        use std::time::Duration;
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("PT2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("-5s"), None);
        assert_eq!(parse_duration("soon"), None);
    }
}
