//! Restart policies (`--restart`). With no daemon, the container's own
//! monitor restarts it when its init exits: it stays alive between the
//! lives, waits docker's backoff, and makes the container again on the
//! same snapshot. After a host reboot no monitor is left;
//! `capsa start --all-restartable` (from a systemd unit or an `@reboot`
//! cron line) starts what the policies say.

use crate::error::{flag, Result};
use crate::flags::FromFlag;
use std::time::Duration;

/// `--restart no|on-failure[:N]|always|unless-stopped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    No,
    /// Restart after a non-zero exit, at most `max` times (0: no limit,
    /// as docker's MaximumRetryCount).
    OnFailure {
        max: u32,
    },
    Always,
    /// As `always`, except at boot for a container stopped by hand.
    UnlessStopped,
}

impl FromFlag for Policy {
    fn from_flag(text: &str) -> Result<Self> {
        let (name, count) = match text.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (text, None),
        };
        let policy = match name {
            "no" | "" => Policy::No,
            "always" => Policy::Always,
            "unless-stopped" => Policy::UnlessStopped,
            "on-failure" => Policy::OnFailure { max: 0 },
            other => {
                return Err(flag(
                    "--restart",
                    format!("{other:?}: no, on-failure[:max-retries], always or unless-stopped"),
                ))
            }
        };
        match (policy, count) {
            (_, None) => Ok(policy),
            (Policy::OnFailure { .. }, Some(c)) => c
                .parse::<u32>()
                .map(|max| Policy::OnFailure { max })
                .map_err(|_| {
                    flag(
                        "--restart",
                        format!("{c:?}: the retry count is a whole number"),
                    )
                }),
            (_, Some(_)) => Err(flag(
                "--restart",
                format!("a retry count goes with on-failure only, not {name}"),
            )),
        }
    }
}

impl Policy {
    /// Docker's name for it (`HostConfig.RestartPolicy.Name`).
    pub fn name(self) -> &'static str {
        match self {
            Policy::No => "no",
            Policy::OnFailure { .. } => "on-failure",
            Policy::Always => "always",
            Policy::UnlessStopped => "unless-stopped",
        }
    }

    /// Docker's `MaximumRetryCount`.
    pub fn max_retries(self) -> u32 {
        match self {
            Policy::OnFailure { max } => max,
            _ => 0,
        }
    }

    /// Whether an exit with `code`, after `restarts` restarts of this
    /// start, is followed by another. A container stopped by hand (`stop`,
    /// `kill` with a fatal signal, `rm -f`) never is, whatever the policy.
    pub fn restarts(self, code: i32, restarts: u32, stopped_by_hand: bool) -> bool {
        if stopped_by_hand {
            return false;
        }
        match self {
            Policy::No => false,
            Policy::Always | Policy::UnlessStopped => true,
            Policy::OnFailure { max } => code != 0 && (max == 0 || restarts < max),
        }
    }

    /// Whether `start --all-restartable` starts a container that is not
    /// running (after a reboot, say): as dockerd does when it comes up,
    /// `always` always, `unless-stopped` unless it was stopped by hand,
    /// `on-failure` when its last exit failed (a reboot's kill counts)
    /// and it was not stopped by hand.
    pub fn at_boot(self, last_exit: Option<i32>, stopped_by_hand: bool) -> bool {
        match self {
            Policy::Always => true,
            Policy::UnlessStopped => !stopped_by_hand,
            Policy::OnFailure { .. } => !stopped_by_hand && last_exit != Some(0),
            Policy::No => false,
        }
    }
}

/// Docker's restart backoff: 100 ms, doubled at each restart up to a
/// minute, and back to 100 ms once a life lasted 10 s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backoff {
    delay: Duration,
}

const FIRST: Duration = Duration::from_millis(100);
const MOST: Duration = Duration::from_secs(60);
const STEADY: Duration = Duration::from_secs(10);

impl Backoff {
    /// The wait before the next start, after a life of `ran`.
    pub fn next(&mut self, ran: Duration) -> Duration {
        if ran >= STEADY {
            self.delay = Duration::ZERO;
        }
        self.delay = if self.delay.is_zero() {
            FIRST
        } else {
            (self.delay * 2).min(MOST)
        };
        self.delay
    }
}

/// Whether a signal from `capsa kill` stops the container for good (its
/// policy set aside until the next `start`): SIGKILL and its stop signal,
/// as docker's kill. Another signal leaves the policy in place.
pub fn fatal(signal: i32, stop_signal: Option<&str>) -> bool {
    let stop = stop_signal
        .and_then(capsa_runtime::signals::parse)
        .unwrap_or(libc::SIGTERM);
    signal == libc::SIGKILL || signal == stop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Policy> {
        Policy::from_flag(s)
    }

    #[test]
    fn policies_read_as_docker_writes_them() {
        assert_eq!(p("no").unwrap(), Policy::No);
        assert_eq!(p("always").unwrap(), Policy::Always);
        assert_eq!(p("unless-stopped").unwrap(), Policy::UnlessStopped);
        assert_eq!(p("on-failure").unwrap(), Policy::OnFailure { max: 0 });
        assert_eq!(p("on-failure:3").unwrap(), Policy::OnFailure { max: 3 });
        for bad in ["sometimes", "always:3", "on-failure:x", "on-failure:-1"] {
            let e = p(bad).unwrap_err().to_string();
            assert!(e.starts_with("--restart"), "{bad}: {e}");
        }
    }

    #[test]
    fn on_failure_counts_its_restarts() {
        let two = Policy::OnFailure { max: 2 };
        assert!(two.restarts(1, 0, false));
        assert!(two.restarts(1, 1, false));
        assert!(!two.restarts(1, 2, false));
        assert!(!two.restarts(0, 0, false));
        assert!(Policy::OnFailure { max: 0 }.restarts(1, 1000, false));
        assert!(Policy::Always.restarts(0, 1000, false));
        assert!(!Policy::Always.restarts(1, 0, true));
        assert!(!Policy::No.restarts(1, 0, false));
    }

    #[test]
    fn boot_starts_what_dockerd_would() {
        assert!(Policy::Always.at_boot(Some(0), true));
        assert!(!Policy::UnlessStopped.at_boot(Some(137), true));
        assert!(Policy::UnlessStopped.at_boot(Some(-1), false));
        assert!(!Policy::OnFailure { max: 1 }.at_boot(Some(0), false));
        assert!(Policy::OnFailure { max: 1 }.at_boot(Some(-1), false));
        assert!(!Policy::No.at_boot(Some(-1), false));
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_resets_after_ten_seconds() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(5);
        let got: Vec<u128> = (0..4).map(|_| b.next(quick).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800]);
        for _ in 0..20 {
            b.next(quick);
        }
        assert_eq!(b.next(quick), MOST);
        assert_eq!(b.next(Duration::from_secs(11)), FIRST);
    }

    #[test]
    fn kill_signals_that_end_the_policy() {
        assert!(fatal(libc::SIGKILL, None));
        assert!(fatal(libc::SIGTERM, None));
        assert!(!fatal(libc::SIGUSR1, None));
        assert!(fatal(libc::SIGQUIT, Some("SIGQUIT")));
        assert!(!fatal(libc::SIGTERM, Some("SIGQUIT")));
    }
}
