//! Capability names and numbers (`capability.h`).

/// Capability names in kernel order: the index is the capability number.
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The number of a capability by name (`CAP_SYS_ADMIN` -> 21).
pub fn number(name: &str) -> Option<u32> {
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// The `oci-spec` capability named `name` (`CAP_CHOWN`), if this build
/// knows it.
pub fn parse(name: &str) -> Option<oci_spec::runtime::Capability> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

/// The name of an `oci-spec` capability as it is written in JSON.
pub fn name_of(cap: &oci_spec::runtime::Capability) -> String {
    serde_json::to_value(cap)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A set of capabilities as a bit mask (bit n = capability n).
pub fn mask<'a>(caps: impl IntoIterator<Item = &'a oci_spec::runtime::Capability>) -> u64 {
    caps.into_iter()
        .filter_map(|c| number(&name_of(c)))
        .fold(0u64, |m, n| m | (1u64 << n))
}

/// Parse `bytes` (the contents of `file`) as runc reads it: capability
/// names that are not known (a newer kernel's, or misspelt) are dropped
/// from every set, and one warning names them, in runc's words. The other
/// fields are read as [`crate::parse`] reads them.
pub fn parse_ignoring_unknown(
    file: &std::path::Path,
    bytes: &[u8],
) -> Result<(oci_spec::runtime::Spec, Vec<String>), crate::SpecError> {
    use oci_spec::runtime::{Capabilities, Capability};
    /// The five sets, as plain names.
    #[derive(serde::Deserialize, Default)]
    struct Sets {
        bounding: Option<Vec<String>>,
        effective: Option<Vec<String>>,
        inheritable: Option<Vec<String>>,
        permitted: Option<Vec<String>>,
        ambient: Option<Vec<String>>,
    }
    let mut doc: serde_json::Value = crate::deserialize(file, bytes)?;
    // The sets are lifted out whole and read as names; what is left is
    // read as the spec it is, and the known names put back typed.
    let sets = doc
        .pointer_mut("/process/capabilities")
        .map(serde_json::Value::take)
        .unwrap_or_default();
    let rest = serde_json::to_vec(&doc).map_err(|e| crate::SpecError::Parse {
        file: file.to_path_buf(),
        field: ".".into(),
        message: e.to_string(),
    })?;
    let mut spec: oci_spec::runtime::Spec = crate::deserialize(file, &rest)?;
    let sets: Sets = serde_json::from_value(sets).map_err(|e| crate::SpecError::Parse {
        file: file.to_path_buf(),
        field: "process.capabilities".into(),
        message: e.to_string(),
    })?;
    let mut unknown = std::collections::BTreeSet::new();
    let mut known = |names: Option<Vec<String>>| -> Option<Capabilities> {
        names.map(|names| {
            names
                .into_iter()
                .filter_map(|n| {
                    match serde_json::from_value::<Capability>(serde_json::Value::String(n.clone()))
                    {
                        Ok(c) => Some(c),
                        Err(_) => {
                            unknown.insert(n);
                            None
                        }
                    }
                })
                .collect()
        })
    };
    let mut caps = oci_spec::runtime::LinuxCapabilities::default();
    caps.set_bounding(known(sets.bounding));
    caps.set_effective(known(sets.effective));
    caps.set_inheritable(known(sets.inheritable));
    caps.set_permitted(known(sets.permitted));
    caps.set_ambient(known(sets.ambient));
    if let Some(p) = spec.process_mut() {
        p.set_capabilities(Some(caps));
    }
    let names: Vec<String> = unknown.into_iter().collect();
    let warnings = vec![format!(
        "ignoring unknown or unavailable capabilities: [{}]",
        names.join(" ")
    )];
    Ok((spec, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel_header() {
        assert_eq!(number("CAP_CHOWN"), Some(0));
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("CAP_FOO"), None);
    }

    #[test]
    fn mask_sets_one_bit_per_capability() {
        use oci_spec::runtime::Capability;
        let m = mask([Capability::Chown, Capability::SysAdmin].iter());
        assert_eq!(m, 1 | (1 << 21));
    }

    #[test]
    fn unknown_names_are_dropped_from_every_set_with_one_warning() {
        use oci_spec::runtime::Capability;
        let text = serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                "capabilities": {
                    "bounding": ["CAP_CHOWN", "CAP_FOO", "CAP_KILL"],
                    "effective": ["CAP_BAR", "CAP_CHOWN"],
                    "ambient": []
                }}
        })
        .to_string();
        let (spec, warnings) =
            parse_ignoring_unknown(std::path::Path::new("config.json"), text.as_bytes()).unwrap();
        assert_eq!(
            warnings,
            ["ignoring unknown or unavailable capabilities: [CAP_BAR CAP_FOO]"]
        );
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        let bounding = caps.bounding().clone().unwrap();
        assert_eq!(bounding.len(), 2);
        assert!(bounding.contains(&Capability::Chown) && bounding.contains(&Capability::Kill));
        assert_eq!(caps.effective().clone().unwrap().len(), 1);
        assert!(caps.ambient().clone().unwrap().is_empty());
        assert!(caps.permitted().is_none());
    }
}
