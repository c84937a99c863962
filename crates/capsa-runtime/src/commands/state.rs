use capsa_runtime::Store;

pub fn run(store: &Store, id: &str) -> anyhow::Result<i32> {
    let (st, status) = capsa_runtime::state(store, id)?;
    println!("{}", serde_json::to_string_pretty(&st.oci_state(status))?);
    Ok(0)
}
