use crate::cli::DeleteArgs;
use crate::log::Logger;
use capsa_runtime::Store;

pub fn run(store: &Store, a: &DeleteArgs, log: &Logger) -> anyhow::Result<i32> {
    for w in capsa_runtime::delete(store, &a.id, a.force)? {
        log.warn(&w);
    }
    Ok(0)
}
