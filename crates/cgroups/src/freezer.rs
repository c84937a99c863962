//! Freezing: the v1 freezer (`freezer.state`) or v2 `cgroup.freeze`.

use crate::{write, Cgroup, CgroupError, Result};
use std::time::{Duration, Instant};

impl Cgroup {
    /// Freeze (`true`) or thaw every process of the cgroup, and wait until
    /// the kernel reports it done (FREEZING and `frozen 0` are transient).
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        if let Some(d) = self.v1_dir("freezer") {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            let f = d.join("freezer.state");
            return wait_until(&f, || {
                write(&f, want)?;
                Ok(std::fs::read_to_string(&f)
                    .map_err(|e| CgroupError::sys("read", &f, e))?
                    .trim()
                    == want)
            });
        }
        let d = self.v2.as_ref().ok_or(CgroupError::NoHierarchy)?;
        write(&d.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
        let events = d.join("cgroup.events");
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        wait_until(&events, || {
            Ok(std::fs::read_to_string(&events)
                .map_err(|e| CgroupError::sys("read", &events, e))?
                .lines()
                .any(|l| l == want))
        })
    }

    /// Whether the cgroup is frozen.
    /// Frozen or freezing, by its own setting or an ancestor's: a
    /// process put in it now would not run.
    pub fn freeze_in_effect(&self) -> bool {
        if let Some(d) = self.v1_dir("freezer") {
            // v1 reports the state in effect, the parents' included.
            return std::fs::read_to_string(d.join("freezer.state"))
                .is_ok_and(|s| s.trim() != "THAWED");
        }
        self.v2.as_ref().is_some_and(|d| {
            std::fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
                || std::fs::read_to_string(d.join("cgroup.events"))
                    .is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
        })
    }

    pub fn is_frozen(&self) -> bool {
        if let Some(d) = self.v1_dir("freezer") {
            return std::fs::read_to_string(d.join("freezer.state"))
                .is_ok_and(|s| s.trim() == "FROZEN");
        }
        match &self.v2 {
            Some(d) => {
                std::fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
            }
            None => false,
        }
    }
}

fn wait_until(what: &std::path::Path, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut pause = Duration::from_micros(100);
    loop {
        if done()? {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(CgroupError::Sys {
                op: "wait for freezer",
                path: what.to_path_buf(),
                errno: nix::errno::Errno::ETIMEDOUT,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}
