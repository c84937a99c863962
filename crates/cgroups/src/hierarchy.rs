//! Which cgroup hierarchies the host has, read from `/proc/self/mountinfo`.

use std::path::PathBuf;

/// A mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    /// Controllers bound to it (`cpu`, `cpuacct`), or `name=systemd`.
    pub controllers: Vec<String>,
    pub mountpoint: PathBuf,
}

/// The host's cgroup layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchy {
    pub v1: Vec<V1Mount>,
    /// The cgroup2 mount point, if any.
    pub v2: Option<PathBuf>,
}

/// The three layouts a host can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 controllers plus a v2 mount (usually `/sys/fs/cgroup/unified`).
    Hybrid,
    /// Only the unified v2 hierarchy.
    Unified,
}

// v1 mount options that are not controllers.
const NOT_CONTROLLERS: [&str; 6] = [
    "rw",
    "ro",
    "noprefix",
    "clone_children",
    "xattr",
    "cpuset_v2_mode",
];

impl Hierarchy {
    /// Read the hierarchies mounted in our mount namespace.
    pub fn detect() -> std::io::Result<Hierarchy> {
        Ok(Self::parse(&std::fs::read_to_string(
            "/proc/self/mountinfo",
        )?))
    }

    /// Parse mountinfo text (see proc(5)).
    pub fn parse(mountinfo: &str) -> Hierarchy {
        let mut h = Hierarchy::default();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            let mountpoint = PathBuf::from(capsa_sys::mount::unescape(pre[4]));
            match post[0] {
                "cgroup2" if h.v2.is_none() => h.v2 = Some(mountpoint),
                "cgroup" => {
                    let controllers: Vec<String> = post[2]
                        .split(',')
                        .filter(|o| {
                            !NOT_CONTROLLERS.contains(o) && !o.starts_with("release_agent=")
                        })
                        .map(str::to_string)
                        .collect();
                    if controllers.is_empty() || h.v1.iter().any(|m| m.controllers == controllers) {
                        continue;
                    }
                    h.v1.push(V1Mount {
                        controllers,
                        mountpoint,
                    });
                }
                _ => {}
            }
        }
        h
    }

    /// Legacy, hybrid or unified.
    pub fn mode(&self) -> Mode {
        match (self.v1.is_empty(), self.v2.is_some()) {
            (true, _) => Mode::Unified,
            (false, true) => Mode::Hybrid,
            (false, false) => Mode::Legacy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_layout_is_recognised() {
        let h = Hierarchy::parse(HYBRID);
        assert_eq!(h.mode(), Mode::Hybrid);
        assert_eq!(h.v1.len(), 3);
        assert_eq!(
            h.v1.iter()
                .find(|m| m.controllers == ["memory"])
                .map(|m| m.mountpoint.as_path()),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        assert_eq!(h.v1[2].controllers, vec!["name=systemd".to_string()]);
        assert_eq!(h.v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn unified_layout_is_recognised() {
        let h = Hierarchy::parse(
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        assert_eq!(h.mode(), Mode::Unified);
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        assert_eq!(capsa_sys::mount::unescape("/a\\040b"), "/a b");
    }
}
