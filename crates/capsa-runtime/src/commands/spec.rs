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
    // runc's default, which tools and users edit; the hardened one on
    // request. runc adds a cgroup namespace on pure v2 hosts only.
    let spec = if a.hardened {
        capsa_spec::defaults::hardened(rootless)?
    } else {
        let pure_v2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
        capsa_spec::defaults::runc(rootless, pure_v2)?
    };
    let text = capsa_spec::defaults::to_stable_json(&spec)? + "\n";
    capsa_runtime::state::write_atomic(&path, text.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(0)
}
