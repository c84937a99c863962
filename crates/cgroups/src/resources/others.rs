//! hugetlb, net_cls and net_prio, rdma, and `unified` keys.

#[allow(unused_imports)]
use super::*;

impl Planner<'_> {
    pub(super) fn hugetlb(&mut self, r: &LinuxResources) -> Result<()> {
        for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
            let field = format!("hugepageLimits[{i}]");
            let size = h.page_size();
            if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(refuse(&field, format!("bad page size {size:?}")));
            }
            match self.place("hugetlb", &field)? {
                Place::V1(d) => self.put_existing(
                    d,
                    &format!("hugetlb.{size}.limit_in_bytes"),
                    h.limit().to_string(),
                    &field,
                )?,
                Place::V2(d) => {
                    self.put_existing(d, &format!("hugetlb.{size}.max"), max_or(h.limit()), &field)?
                }
            }
        }
        Ok(())
    }

    pub(super) fn network(&mut self, r: &LinuxResources) -> Result<()> {
        let Some(n) = r.network() else { return Ok(()) };
        if let Some(id) = n.class_id() {
            match self.cg.v1_dir("net_cls") {
                Some(d) => self.put(d, "net_cls.classid", id.to_string(), "network.classID"),
                None => {
                    return Err(refuse(
                        "network.classID",
                        "the net_cls controller (cgroup v1 only) is not mounted",
                    ))
                }
            }
        }
        for (i, p) in n.priorities().iter().flatten().enumerate() {
            let field = format!("network.priorities[{i}]");
            match self.cg.v1_dir("net_prio") {
                Some(d) => self.put(
                    d,
                    "net_prio.ifpriomap",
                    format!("{} {}", p.name(), p.priority()),
                    &field,
                ),
                None => {
                    return Err(refuse(
                        &field,
                        "the net_prio controller (cgroup v1 only) is not mounted",
                    ))
                }
            }
        }
        Ok(())
    }

    pub(super) fn rdma(&mut self, r: &LinuxResources) -> Result<()> {
        let Some(map) = r.rdma() else { return Ok(()) };
        let mut names: Vec<&String> = map.keys().collect();
        names.sort();
        for name in names {
            let v = &map[name];
            let field = format!("rdma.{name}");
            let (Place::V1(d) | Place::V2(d)) = self.place("rdma", &field)?;
            let mut parts = vec![name.clone()];
            if let Some(h) = v.hca_handles() {
                parts.push(format!("hca_handle={h}"));
            }
            if let Some(o) = v.hca_objects() {
                parts.push(format!("hca_object={o}"));
            }
            self.put(d, "rdma.max", parts.join(" "), &field);
        }
        Ok(())
    }

    pub(super) fn unified(&mut self, r: &LinuxResources) -> Result<()> {
        let Some(u) = r.unified() else { return Ok(()) };
        let mut keys: Vec<&String> = u.keys().collect();
        keys.sort();
        for key in keys {
            let field = format!("unified.{key}");
            let Some(d) = self.cg.v2.as_deref() else {
                return Err(refuse(
                    &field,
                    "there is no cgroup v2 hierarchy on this host",
                ));
            };
            if key.contains('/') || key.starts_with('.') || !key.contains('.') {
                return Err(refuse(&field, "not a cgroup file name"));
            }
            // Security (a spec that moves host processes): the core's
            // files are not limits. `cgroup.procs` or `cgroup.threads`
            // written by the host's root would pull any host pid into the
            // container's cgroup, under its limits and its kill; only the
            // two that are limits pass.
            if key.starts_with("cgroup.")
                && key != "cgroup.max.depth"
                && key != "cgroup.max.descendants"
            {
                return Err(refuse(
                    &field,
                    "only cgroup.max.depth and cgroup.max.descendants of the cgroup core's files are limits",
                ));
            }
            // A controller file of a controller we have on v1 would be
            // applied twice and disagree: refuse.
            let ctl = key.split('.').next().unwrap_or_default();
            if self.cg.v1_dir(ctl).is_some() {
                return Err(refuse(
                    &field,
                    // runc's words lead, for the tools that match them.
                    format!(
                        "invalid configuration: the {ctl} controller is on cgroup v1 on this host"
                    ),
                ));
            }
            if let Some(m) = self.missing.as_mut() {
                // `cgroup.*` files are the core's, not a controller's.
                if ctl != "cgroup"
                    && !m.iter().any(|c| c == ctl)
                    && !crate::v2_controllers(d).iter().any(|c| c == ctl)
                {
                    m.push(ctl.to_string());
                }
                continue;
            }
            self.put_existing(d, key, u[key].clone(), &field)?;
        }
        Ok(())
    }
}
