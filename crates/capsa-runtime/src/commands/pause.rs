use capsa_runtime::Store;

pub fn pause(store: &Store, id: &str) -> anyhow::Result<i32> {
    capsa_runtime::pause(store, id)?;
    Ok(0)
}

pub fn resume(store: &Store, id: &str) -> anyhow::Result<i32> {
    capsa_runtime::resume(store, id)?;
    Ok(0)
}
