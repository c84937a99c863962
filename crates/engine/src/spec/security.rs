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
    // Security: CVE-2022-29162 class. oci-spec's default capability sets
    // fill inheritable and ambient; a spec without sets starts from none.
    let mut caps = p.capabilities().clone().unwrap_or_else(|| {
        let mut none = oci::LinuxCapabilities::default();
        none.set_inheritable(None);
        none.set_ambient(None);
        none
    });
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
                let profile = profile(&text, &names).map_err(|e| {
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

/// The conditions docker's profile format puts on a rule.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Filter {
    caps: Vec<String>,
    arches: Vec<String>,
    min_kernel: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Conditions {
    includes: Option<Filter>,
    excludes: Option<Filter>,
}

/// What docker's format adds to the OCI one.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct DockerProfile {
    arch_map: Vec<ArchMap>,
    syscalls: Vec<Conditions>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ArchMap {
    architecture: String,
    sub_architectures: Vec<String>,
}

/// A seccomp profile file, in the OCI format or docker's, for a container
/// with capabilities `caps` on this (x86_64) host.
///
/// Security: docker's rules can be conditional ("allow `unshare` only with
/// CAP_SYS_ADMIN", "only on this architecture", "only from kernel X").
/// Read as a plain OCI profile those conditions would vanish and every
/// conditional allow would hold for everyone (a container without
/// CAP_SYS_ADMIN could make namespaces). They are applied here as docker
/// applies them: a rule whose conditions do not hold is left out.
fn profile(text: &str, caps: &[String]) -> std::result::Result<oci::LinuxSeccomp, String> {
    let mut p: oci::LinuxSeccomp = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let docker: DockerProfile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let kernel = kernel_version(&rustix::system::uname().release().to_string_lossy());
    let native = ["amd64", "x86_64", "SCMP_ARCH_X86_64"];
    let holds = |c: &Conditions| {
        let has = |cap: &String| caps.contains(&cap_name(cap));
        let inc = c.includes.as_ref();
        let exc = c.excludes.as_ref();
        inc.is_none_or(|f| f.caps.iter().all(has))
            && inc.is_none_or(|f| {
                f.arches.is_empty() || f.arches.iter().any(|a| native.contains(&a.as_str()))
            })
            && inc
                .and_then(|f| f.min_kernel.as_deref())
                .is_none_or(|m| kernel >= kernel_version(m))
            && exc.is_none_or(|f| !f.caps.iter().any(has))
            && exc.is_none_or(|f| !f.arches.iter().any(|a| native.contains(&a.as_str())))
    };
    if let Some(rules) = p.syscalls().clone() {
        if rules.len() != docker.syscalls.len() {
            return Err("the rules could not be read twice alike".into());
        }
        let kept = rules
            .into_iter()
            .zip(&docker.syscalls)
            .filter(|(_, c)| holds(c))
            .map(|(r, _)| r)
            .collect();
        p.set_syscalls(Some(kept));
    }
    // docker's archMap: the native architecture and its sub-architectures.
    if p.architectures().is_none() {
        if let Some(m) = docker
            .arch_map
            .iter()
            .find(|m| m.architecture == "SCMP_ARCH_X86_64")
        {
            let mut names = vec![m.architecture.clone()];
            names.extend(m.sub_architectures.iter().cloned());
            let arches: Vec<oci::Arch> = names
                .iter()
                .filter_map(|n| serde_json::from_value(serde_json::Value::String(n.clone())).ok())
                .collect();
            p.set_architectures(Some(arches));
        }
    }
    Ok(p)
}

/// `6.18.0-...` as (6, 18).
fn kernel_version(s: &str) -> (u32, u32) {
    let mut it = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|x| !x.is_empty());
    let n = |x: Option<&str>| x.and_then(|v| v.parse().ok()).unwrap_or(0);
    (n(it.next()), n(it.next()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_conditions_leave_out_the_rules_that_do_not_hold() {
        let text = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["unshare"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["chown"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["arm_only"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
                {"names": ["future"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}}
            ]
        })
        .to_string();
        let names = |p: &oci::LinuxSeccomp| -> Vec<String> {
            p.syscalls()
                .clone()
                .unwrap()
                .iter()
                .flat_map(|r| r.names().clone())
                .collect()
        };
        let plain = profile(&text, &["CAP_CHOWN".into()]).unwrap();
        assert_eq!(names(&plain), ["read", "chown"]);
        assert_eq!(plain.architectures().as_ref().unwrap().len(), 2);
        let admin = profile(&text, &["CAP_SYS_ADMIN".into()]).unwrap();
        assert_eq!(names(&admin), ["read", "unshare"]);
        assert_eq!(kernel_version("6.18.0-capsa"), (6, 18));
    }
}
