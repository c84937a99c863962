use crate::log::Logger;
use capsa_runtime::Store;

pub fn run(store: &Store, id: &str, log: &Logger) -> anyhow::Result<i32> {
    for w in capsa_runtime::start(store, id)? {
        log.warn(&w);
    }
    Ok(0)
}
