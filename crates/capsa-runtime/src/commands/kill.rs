use crate::cli::KillArgs;
use anyhow::anyhow;
use capsa_runtime::Store;

pub fn run(store: &Store, a: &KillArgs) -> anyhow::Result<i32> {
    let sig = capsa_runtime::signals::parse(&a.signal)
        .ok_or_else(|| anyhow!("unknown signal {:?}", a.signal))?;
    capsa_runtime::kill(store, &a.id, sig, a.all)?;
    Ok(0)
}
