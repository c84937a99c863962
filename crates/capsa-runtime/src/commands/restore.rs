use crate::cli::RestoreArgs;
use crate::log::Logger;
use capsa_runtime::{foreground, Store};

/// Restore a container from CRIU's images; unless detached, wait for it as
/// `run` does (its exit code is ours, its state removed afterwards).
pub fn run(
    store: &Store,
    a: &RestoreArgs,
    criu: &std::path::Path,
    log: &Logger,
) -> anyhow::Result<i32> {
    let opts = capsa_runtime::RestoreOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        flags: super::criu_flags(&a.criu, criu),
        systemd_cgroup: a.systemd_cgroup,
        mode: super::mode(a.hardened),
    };
    if !a.detach {
        foreground::block_signals();
    }
    let restored = capsa_runtime::restore(store, &opts)?;
    if a.detach {
        return Ok(0);
    }
    // CRIU restored the process as our child (rst_sibling).
    let code = foreground::wait(restored.state.pid, None);
    for w in capsa_runtime::delete(store, &a.id, true)? {
        log.warn(&w);
    }
    Ok(code)
}
