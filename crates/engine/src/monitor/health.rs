//! The monitor's side of health checks: when the next probe is due
//! (every `interval`, every `start_interval` while the container is in its
//! start period, each counted from the end of the last), the probe under
//! way, and its result into the record.

use crate::container::Container;
use crate::health::{self, Probe, Timing};
use crate::Engine;
use capsa_image::config::Healthcheck;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

pub(super) struct Checker {
    engine: Engine,
    c: Container,
    check: Healthcheck,
    timing: Timing,
    started: Instant,
    next: Instant,
    probe: Option<Probe>,
}

impl Checker {
    /// For `c`, when it has a check to run.
    pub fn new(engine: &Engine, c: &Container) -> Option<Checker> {
        let check = c.healthcheck.clone()?;
        health::command(&check).ok().flatten()?;
        let timing = Timing::of(&check);
        let started = Instant::now();
        let mut me = Checker {
            engine: engine.clone(),
            c: c.clone(),
            check,
            timing,
            started,
            next: started,
            probe: None,
        };
        me.next = started + me.period();
        Some(me)
    }

    fn period(&self) -> Duration {
        if self.started.elapsed() < self.timing.start_period {
            self.timing.start_interval
        } else {
            self.timing.interval
        }
    }

    /// The probe's report pipe, while one is under way.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.probe.as_ref().map(Probe::fd)
    }

    /// How long the monitor may sleep before this needs it (ms).
    pub fn timeout_ms(&self) -> i32 {
        let at = match &self.probe {
            Some(p) => p.overdue(),
            None => self.next,
        };
        at.saturating_duration_since(Instant::now())
            .as_millis()
            .clamp(1, i32::MAX as u128) as i32
    }

    /// Take a finished probe's result, or start the next that is due.
    pub fn tick(&mut self) {
        if let Some(p) = &mut self.probe {
            let Some(entry) = p.try_finish() else {
                return;
            };
            self.probe = None;
            let _ = health::record(&self.engine, &self.c.id, entry, &self.check);
            self.next = Instant::now() + self.period();
            return;
        }
        if Instant::now() < self.next {
            return;
        }
        match health::start(&self.engine, &self.c, &self.check) {
            Ok(p) => self.probe = Some(p),
            Err(e) => {
                let entry = health::Entry {
                    start: capsa_sys::time::now_rfc3339(),
                    end: capsa_sys::time::now_rfc3339(),
                    exit_code: -1,
                    output: e.to_string(),
                };
                let _ = health::record(&self.engine, &self.c.id, entry, &self.check);
                self.next = Instant::now() + self.period();
            }
        }
    }
}
