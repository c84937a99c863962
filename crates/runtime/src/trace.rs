//! What a create cost, step by step, on both sides of the clone: each step
//! is stamped with CLOCK_REALTIME (which, unlike the monotonic clocks, a
//! time namespace does not offset), so the runtime's and the init's steps
//! merge on one time line.

use serde::{Deserialize, Serialize};

/// Stamped steps, in the order they happened.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Trace {
    /// (who, step, nanoseconds since the epoch)
    pub steps: Vec<(String, String, u64)>,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Trace {
    /// Stamp `step` done by `who` (`runtime`, `init`).
    pub fn mark(&mut self, who: &str, step: &str) {
        self.steps
            .push((who.to_string(), step.to_string(), now_ns()));
    }

    /// Add the other side's steps and keep the time order.
    pub fn merge(&mut self, other: Trace) {
        self.steps.extend(other.steps);
        self.steps.sort_by_key(|s| s.2);
    }

    /// One line per step: time since the first step and since the previous
    /// one, in microseconds.
    pub fn lines(&self) -> Vec<String> {
        let Some(first) = self.steps.first().map(|s| s.2) else {
            return Vec::new();
        };
        let mut prev = first;
        self.steps
            .iter()
            .map(|(who, step, t)| {
                let line = format!(
                    "{:>8} us {:>+7} us  {who:<7} {step}",
                    (t - first) / 1000,
                    (t.saturating_sub(prev)) / 1000
                );
                prev = *t;
                line
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_steps_are_in_time_order_with_deltas() {
        let mut a = Trace {
            steps: vec![
                ("runtime".into(), "plan".into(), 1_000),
                ("runtime".into(), "ready".into(), 9_000),
            ],
        };
        let b = Trace {
            steps: vec![("init".into(), "mounts".into(), 5_000)],
        };
        a.merge(b);
        let l = a.lines();
        assert_eq!(l.len(), 3);
        assert!(l[1].contains("init") && l[1].contains("mounts"));
        assert!(l[2].trim_start().starts_with('8'), "{}", l[2]);
    }
}
