use crate::cli::RunArgs;
use crate::log::Logger;
use capsa_runtime::foreground;
use capsa_runtime::Store;

/// create + start, then (unless detached) wait with signals forwarded and
/// the pty proxied; the container's exit code is ours, and its state is
/// removed afterwards unless `--keep`.
pub fn run(store: &Store, a: &RunArgs, log: &Logger) -> anyhow::Result<i32> {
    let mut opts = super::create_options(&a.create);
    opts.own_console = !a.detach;
    if !a.detach {
        // The init may be a grandchild (joined namespaces): be its reaper.
        capsa_sys::process::set_child_subreaper().ok();
        foreground::block_signals();
    }
    let mut created = capsa_runtime::create(store, &opts)?;
    created.warnings.iter().for_each(|w| log.warn(w));
    super::trace(log, &created.trace);
    // Before start: output written before the change would be translated.
    if let Some(m) = &created.console {
        foreground::clear_onlcr(m);
    }
    let id = &a.create.id;
    match capsa_runtime::start(store, id) {
        Ok(warnings) => warnings.iter().for_each(|w| log.warn(w)),
        Err(e) => {
            // The init's own report says more than "it exited".
            let _ = capsa_runtime::delete(store, id, true);
            if let Some(late) = created.late_error() {
                return Err(capsa_runtime::Error::Child(late).into());
            }
            return Err(e.into());
        }
    }
    if a.detach {
        return Ok(0);
    }
    let console = created.console.take();
    let code = foreground::wait(created.state.pid, console);
    if let Some(e) = created.late_error() {
        eprintln!("container init failed: {e}");
    }
    if !a.keep {
        for w in capsa_runtime::delete(store, id, true)? {
            log.warn(&w);
        }
    }
    Ok(code)
}
