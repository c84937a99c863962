use crate::cli::CheckpointArgs;
use crate::log::Logger;
use capsa_runtime::Store;

/// Dump the container with CRIU; unless `--leave-running` (or
/// `--pre-dump`) it is then gone, as runc's.
pub fn run(
    store: &Store,
    a: &CheckpointArgs,
    criu: &std::path::Path,
    log: &Logger,
) -> anyhow::Result<i32> {
    let opts = capsa_runtime::CheckpointOptions {
        id: a.id.clone(),
        flags: super::criu_flags(&a.criu, criu),
        leave_running: a.leave_running,
        pre_dump: a.pre_dump,
        parent_path: a.parent_path.clone(),
    };
    for w in capsa_runtime::checkpoint(store, &opts)? {
        log.warn(&w);
    }
    Ok(0)
}
