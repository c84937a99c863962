//! Capabilities (docker's `--cap-add`/`--cap-drop` rules, `--privileged`)
//! and `--security-opt`.

use super::{linux, process};
use crate::error::{flag, Result};
use crate::options::RunOptions;
use capsa_spec::oci;

/// `chown` -> `CAP_CHOWN`; `ALL` stays.
fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up == "ALL" || up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The capability names the container gets: the default set (or, with
/// `--privileged`, `all`), with docker's rules for adds and drops:
/// `--cap-add ALL` starts from every capability (less the drops);
/// `--cap-drop ALL` keeps only the adds; otherwise the defaults plus adds
/// less drops.
pub(super) fn capability_names(
    o: &RunOptions,
    defaults: Vec<String>,
    all: &[String],
) -> Result<Vec<String>> {
    let mut caps = if o.privileged { all.to_vec() } else { defaults };
    let check = |flag_name: &str, list: &[String]| -> Result<Vec<String>> {
        list.iter()
            .map(|c| {
                let c = cap_name(c);
                if c != "ALL" && !all.contains(&c) {
                    Err(flag(flag_name, format!("unknown capability {c}")))
                } else {
                    Ok(c)
                }
            })
            .collect()
    };
    let adds = check("--cap-add", &o.cap_add)?;
    let drops = check("--cap-drop", &o.cap_drop)?;
    let add_all = adds.iter().any(|c| c == "ALL");
    let drop_all = drops.iter().any(|c| c == "ALL");
    if add_all {
        caps = all.to_vec();
    } else if drop_all {
        caps.clear();
    }
    for c in adds.iter().filter(|c| *c != "ALL") {
        if !caps.contains(c) {
            caps.push(c.clone());
        }
    }
    // With --cap-drop ALL (and no --cap-add ALL) only the adds are left.
    if add_all || !drop_all {
        caps.retain(|c| !drops.contains(c));
    }
    Ok(caps)
}

pub(super) fn apply(o: &RunOptions, spec: &mut oci::Spec) -> Result<()> {
    // "All" is what this process may hand on (its bounding set): a host
    // without CAP_SYS_RESOURCE, say, cannot give it to a container.
    let all: Vec<String> = (0..=capsa_sys::caps::last_cap())
        .filter(|n| capsa_sys::process::bounding_has(*n))
        .filter_map(|n| {
            capsa_spec::caps::NAMES
                .get(n as usize)
                .map(|s| s.to_string())
        })
        .collect();
    let p = process(spec);
    let defaults: Vec<String> = p
        .capabilities()
        .as_ref()
        .and_then(|c| c.bounding().clone())
        .map(|b| b.iter().map(capsa_spec::caps::name_of).collect())
        .unwrap_or_default();
    let names = capability_names(o, defaults, &all)?;
    let set: oci::Capabilities = names
        .iter()
        .filter_map(|n| capsa_spec::caps::parse(n))
        .collect();
    let mut caps = p.capabilities().clone().unwrap_or_default();
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    p.set_capabilities(Some(caps));
    if o.privileged {
        let l = linux(spec);
        l.set_seccomp(None);
        l.set_masked_paths(None);
        l.set_readonly_paths(None);
        l.resources_mut()
            .get_or_insert_with(Default::default)
            .set_devices(Some(vec![oci::LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .access("rwm")
                .build()?]));
    }
    for s in &o.security_opt {
        let (k, v) = s.split_once(['=', ':']).unwrap_or((s.as_str(), ""));
        match (k, v) {
            ("no-new-privileges", "" | "true") => {
                process(spec).set_no_new_privileges(Some(true));
            }
            ("no-new-privileges", "false") => {
                process(spec).set_no_new_privileges(Some(false));
            }
            ("seccomp", "unconfined") => {
                linux(spec).set_seccomp(None);
            }
            ("seccomp", file) if !file.is_empty() => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| flag("--security-opt seccomp", format!("{file}: {e}")))?;
                // docker's profile format has fields the OCI spec has not
                // (archMap, includes, excludes): they are not read.
                let profile: oci::LinuxSeccomp = serde_json::from_str(&text).map_err(|e| {
                    flag(
                        "--security-opt seccomp",
                        format!("{file}: not a seccomp profile: {e}"),
                    )
                })?;
                linux(spec).set_seccomp(Some(profile));
            }
            ("apparmor", "unconfined") => {
                process(spec).set_apparmor_profile(None);
            }
            ("apparmor", p) if !p.is_empty() => {
                process(spec).set_apparmor_profile(Some(p.to_string()));
            }
            ("label", _) => {
                return Err(flag(
                    "--security-opt",
                    "SELinux labels are not supported on this host (no SELinux)",
                ))
            }
            _ => {
                return Err(flag(
                    "--security-opt",
                    format!("unknown option {s:?} (seccomp=, no-new-privileges, apparmor=)"),
                ))
            }
        }
    }
    Ok(())
}
