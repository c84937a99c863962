//! `config.json` to a [`Plan`]: parsed with `oci-spec`, validated as a whole
//! before anything on the system changes, with every default resolved.
//!
//! Every error names the JSON path at fault, as in
//! `process.capabilities.bounding[2]: unknown variant "CAP_FOO"`.

// Library code returns errors; tests may unwrap.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod caps;
pub mod defaults;
pub mod mounts;
mod plan;
pub mod rlimits;
pub mod seccomp;
pub mod units;

pub use oci_spec::runtime as oci;
pub use plan::{HookSet, IdMap, Namespaces, Plan, ProcessPlan};

use std::path::{Path, PathBuf};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The JSON is malformed or does not match the OCI schema; `field` is the
    /// JSON path where parsing stopped.
    #[error("{file}: {field}: {message}")]
    Parse {
        file: PathBuf,
        field: String,
        message: String,
    },
    /// The JSON is well-formed but a value is not acceptable.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl SpecError {
    /// A capability set names a capability this build does not know.
    pub fn is_unknown_capability(&self) -> bool {
        matches!(self, SpecError::Parse { field, message, .. }
            if field.contains("capabilities") && message.starts_with("unknown capability"))
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parse `bytes` (the contents of `file`) as an OCI runtime spec.
pub fn parse(file: &Path, bytes: &[u8]) -> Result<oci::Spec, SpecError> {
    deserialize(file, bytes)
}

pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(
    file: &Path,
    bytes: &[u8],
) -> Result<T, SpecError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        // Without a path (syntax errors, truncated files) the position says
        // where.
        let field = if field == "." || field == "?" || field.is_empty() {
            format!("line {} column {}", inner.line(), inner.column())
        } else {
            field
        };
        SpecError::Parse {
            file: file.to_path_buf(),
            message: message(&field, &inner.to_string()),
            field,
        }
    })
}

// serde_json appends " at line L column C" to its messages; the JSON path
// already says where. oci-spec words an unknown capability as "no variant
// for CAP_FOO (converted to FOO)": say it plainly.
fn message(field: &str, msg: &str) -> String {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    if field.contains("capabilities") {
        if let Some(rest) = msg.strip_prefix("no variant for ") {
            let name = rest.split(' ').next().unwrap_or(rest);
            return format!("unknown capability {name:?}");
        }
    }
    msg.to_string()
}

/// How a config is read where runc's behaviour and capsa's hardened
/// defaults part ways (docs/runc-parity.md). `capsa-runtime` reads as runc
/// does unless given `--hardened`; the `capsa` engine always reads
/// hardened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// runc's reading: a capability name the kernel header does not list
    /// is ignored with a warning, and `ro` on a recursive bind covers its
    /// top mount only (runc's `rro` asks for all of it).
    Runc,
    /// capsa's: an unknown capability is an error, as the OCI spec asks,
    /// and `ro` on a recursive bind is read-only all the way down. The
    /// default of the library: a caller that says nothing gets it.
    #[default]
    Hardened,
}

/// Read `BUNDLE/config.json` and turn it into a validated [`Plan`], read
/// as `mode` says. Warnings (what runc's reading ignored) are in
/// [`Plan::warnings`].
pub fn load(bundle: &Path, mode: Mode) -> Result<Plan, SpecError> {
    let file = bundle.join("config.json");
    let bytes = std::fs::read(&file).map_err(|error| SpecError::Read {
        path: file.clone(),
        error,
    })?;
    let (spec, warnings) = match parse(&file, &bytes) {
        Err(e) if mode == Mode::Runc && e.is_unknown_capability() => {
            caps::parse_ignoring_unknown(&file, &bytes)?
        }
        r => (r?, Vec::new()),
    };
    let mut plan = Plan::new(bundle, spec)?;
    plan.warnings = warnings;
    if mode == Mode::Hardened {
        plan.harden();
    }
    Ok(plan)
}

/// Parse a `process.json` as given to `exec --process`. Without `user` the
/// process runs as root, as runc runs it (oci-spec makes the field
/// required; the schema of a process file does not).
pub fn parse_process(file: &Path, bytes: &[u8]) -> Result<oci::Process, SpecError> {
    #[derive(serde::Deserialize)]
    struct UserField {
        user: Option<serde::de::IgnoredAny>,
    }
    let has_user = deserialize::<UserField>(file, bytes)?.user.is_some();
    if has_user {
        return deserialize(file, bytes);
    }
    // The one field added is a typed default; every other field is read
    // by oci-spec as it stands in the file.
    let mut fields: serde_json::Map<String, serde_json::Value> = deserialize(file, bytes)?;
    let root = serde_json::to_value(oci::User::default()).map_err(|e| SpecError::Parse {
        file: file.to_path_buf(),
        field: "user".into(),
        message: e.to_string(),
    })?;
    fields.insert("user".into(), root);
    let bytes = serde_json::to_vec(&fields).map_err(|e| SpecError::Parse {
        file: file.to_path_buf(),
        field: "user".into(),
        message: e.to_string(),
    })?;
    deserialize(file, &bytes)
}

/// The OCI runtime spec version capsa implements (and writes in `spec`).
pub const OCI_VERSION: &str = "1.2.0";
