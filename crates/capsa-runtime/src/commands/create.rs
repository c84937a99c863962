use crate::cli::CreateArgs;
use crate::log::Logger;
use capsa_runtime::Store;

pub fn run(store: &Store, a: &CreateArgs, log: &Logger) -> anyhow::Result<i32> {
    let c = capsa_runtime::create(store, &super::create_options(a))?;
    c.warnings.iter().for_each(|w| log.warn(w));
    log.debug(&format!(
        "created {} with init pid {}",
        c.state.id, c.state.pid
    ));
    super::trace(log, &c.trace);
    Ok(0)
}
