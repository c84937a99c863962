//! `process.rlimits[].type` names and their `RLIMIT_*` numbers.

const TABLE: [(&str, u32); 16] = [
    ("RLIMIT_CPU", 0),
    ("RLIMIT_FSIZE", 1),
    ("RLIMIT_DATA", 2),
    ("RLIMIT_STACK", 3),
    ("RLIMIT_CORE", 4),
    ("RLIMIT_RSS", 5),
    ("RLIMIT_NPROC", 6),
    ("RLIMIT_NOFILE", 7),
    ("RLIMIT_MEMLOCK", 8),
    ("RLIMIT_AS", 9),
    ("RLIMIT_LOCKS", 10),
    ("RLIMIT_SIGPENDING", 11),
    ("RLIMIT_MSGQUEUE", 12),
    ("RLIMIT_NICE", 13),
    ("RLIMIT_RTPRIO", 14),
    ("RLIMIT_RTTIME", 15),
];

/// The resource number of an rlimit name.
pub fn number(name: &str) -> Option<u32> {
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The name of an `oci-spec` rlimit type as written in JSON.
pub fn name_of(t: &oci_spec::runtime::PosixRlimitType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The name of a resource number (`7` -> `RLIMIT_NOFILE`).
pub fn name_of_number(n: u32) -> &'static str {
    TABLE
        .iter()
        .find(|(_, v)| *v == n)
        .map(|(name, _)| *name)
        .unwrap_or("RLIMIT_?")
}
