use crate::cli::{ListArgs, ListFormat};
use capsa_runtime::Store;

pub fn run(store: &Store, a: &ListArgs) -> anyhow::Result<i32> {
    let all = capsa_runtime::list(store)?;
    if a.quiet {
        for (st, _) in &all {
            println!("{}", st.id);
        }
        return Ok(0);
    }
    match a.format {
        ListFormat::Json => {
            let v: Vec<_> = all.iter().map(|(st, s)| st.oci_state(*s)).collect();
            println!("{}", serde_json::to_string(&v)?);
        }
        ListFormat::Table => {
            let rows: Vec<[String; 6]> = all
                .iter()
                .map(|(st, s)| {
                    let pid = if *s == capsa_runtime::Status::Stopped {
                        0
                    } else {
                        st.pid
                    };
                    [
                        st.id.clone(),
                        pid.to_string(),
                        s.to_string(),
                        st.bundle.display().to_string(),
                        st.created.clone(),
                        st.owner.clone(),
                    ]
                })
                .collect();
            let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut widths = [0usize; 6];
            for r in std::iter::once(&header).chain(rows.iter()) {
                for (w, c) in widths.iter_mut().zip(r.iter()) {
                    *w = (*w).max(c.len());
                }
            }
            for r in std::iter::once(&header).chain(rows.iter()) {
                let line: Vec<String> = r
                    .iter()
                    .zip(widths.iter())
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                println!("{}", line.join("   ").trim_end());
            }
        }
    }
    Ok(0)
}
