use crate::cli::{ListFormat, PsArgs};
use anyhow::{bail, Context};
use capsa_runtime::Store;

/// As runc: JSON is the list of pids; the table is ps(1)'s output filtered
/// to the container's processes.
pub fn run(store: &Store, a: &PsArgs) -> anyhow::Result<i32> {
    let pids = capsa_runtime::pids(store, &a.id)?;
    if a.format == ListFormat::Json {
        if !a.ps_args.is_empty() {
            bail!("ps options cannot be used with --format json");
        }
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("running ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for l in lines {
        if let Some(pid) = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pids.contains(&pid) {
                println!("{l}");
            }
        }
    }
    Ok(0)
}
