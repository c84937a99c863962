use crate::cli::DeleteArgs;
use crate::log::Logger;
use capsa_runtime::Store;

/// A failing poststop hook fails the delete, as runc's does, once the
/// container is gone (its cgroup and state are removed first).
pub fn run(store: &Store, a: &DeleteArgs, log: &Logger) -> anyhow::Result<i32> {
    let failed = capsa_runtime::delete(store, &a.id, a.force)?;
    match failed.split_first() {
        None => Ok(0),
        Some((first, rest)) => {
            for w in rest {
                log.warn(w);
            }
            anyhow::bail!("{first}")
        }
    }
}
