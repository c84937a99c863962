use crate::cli::SpecArgs;
use anyhow::{bail, Context};

pub fn run(a: &SpecArgs) -> anyhow::Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        bail!(
            "File {} exists. Remove it first or use a different bundle",
            path.display()
        );
    }
    let rootless = a.rootless.then(|| {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    });
    let spec = capsa_spec::defaults::spec(rootless)?;
    let text = serde_json::to_string_pretty(&spec)? + "\n";
    capsa_runtime::state::write_atomic(&path, text.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(0)
}
