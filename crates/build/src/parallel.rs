//! Independent stages at once, as BuildKit runs them (and podman does
//! not by default): when several needed stages have everything they
//! depend on, all but one are built by forks of this process while this
//! one builds the first; each fork sends back its stage's final state, or
//! the error it failed with, through a pipe.
//!
//! A fork is made only while this process has one thread
//! (`fork_single_threaded`); otherwise the stages run in turn. A fork
//! dies with its parent (`PR_SET_PDEATHSIG`), never runs the parent's
//! destructors (it leaves with `_exit`, a panic included), and is killed
//! and reaped if the parent gives up on it.

use crate::stage::{Build, State};
use crate::{Error, Result};
use capsa_sys::process::Forked;
use std::collections::BTreeSet;
use std::io::{Read, Write};

/// What a fork sends back.
#[derive(serde::Serialize, serde::Deserialize)]
enum Report {
    Built {
        state: Box<State>,
        /// Its own steps: run, and taken from the cache.
        ran: usize,
        cached: usize,
        used: BTreeSet<String>,
        steps: Vec<crate::StepRecord>,
    },
    /// The stage failed: the error as the build tells it.
    Failed(String),
}

/// A fork building one stage.
struct Child {
    stage: usize,
    /// How many step records we had when it forked (its copy has them).
    records: usize,
    pid: Option<rustix::process::Pid>,
    from: std::fs::File,
}

impl Build<'_> {
    /// Build the stages in `order` (file order, each after what it needs),
    /// independent ones at once; returns each stage's state.
    pub(crate) fn stages(&self, order: &[usize]) -> Result<Vec<Option<State>>> {
        let mut done: Vec<Option<State>> = vec![None; self.file.stages.len()];
        let number = |i: usize| order.iter().position(|&x| x == i).unwrap_or(0) + 1;
        loop {
            let ready: Vec<usize> = order
                .iter()
                .copied()
                .filter(|&i| done[i].is_none() && self.deps(i).iter().all(|&d| done[d].is_some()))
                .collect();
            let Some((&first, rest)) = ready.split_first() else {
                break;
            };
            let mut kids = Vec::new();
            for &j in rest {
                if let Some(k) = self.fork_stage(j, number(j), order.len(), &done) {
                    kids.push(k);
                }
            }
            let mine = self.stage(first, number(first), order.len(), &done);
            // The forks are waited for whatever happened here.
            let mut failed = None;
            for mut k in kids {
                match k.collect() {
                    Some(Report::Built {
                        state,
                        ran,
                        cached,
                        used,
                        steps,
                    }) => {
                        self.ran.set(self.ran.get() + ran);
                        self.cached.set(self.cached.get() + cached);
                        self.used.borrow_mut().extend(used);
                        self.records
                            .borrow_mut()
                            .extend(steps.into_iter().skip(k.records));
                        done[k.stage] = Some(*state);
                    }
                    Some(Report::Failed(e)) => failed = failed.or(Some(Error::Forked(e))),
                    // No word from it (killed): built here below.
                    None => {}
                }
            }
            done[first] = Some(mine?);
            if let Some(e) = failed {
                return Err(e);
            }
            for &j in rest {
                if done[j].is_none() {
                    done[j] = Some(self.stage(j, number(j), order.len(), &done)?);
                }
            }
        }
        Ok(done)
    }

    /// Fork, and build stage `i` in the child; `None` when no fork was
    /// made (the stage is then built here).
    fn fork_stage(&self, i: usize, n: usize, of: usize, done: &[Option<State>]) -> Option<Child> {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ok()?;
        let had_scratch = self.has_scratch();
        let parent = rustix::process::getpid();
        let records = self.records.borrow().len();
        match capsa_sys::process::fork_single_threaded() {
            Ok(Some(Forked::Child)) => {
                drop(r);
                // Dies with the build; and if the build died already, goes.
                let _ = rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ));
                if rustix::process::getppid() != Some(parent) {
                    capsa_sys::process::exit_now(1);
                }
                let (ran, cached) = (self.ran.get(), self.cached.get());
                let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.stage(i, n, of, done)
                }));
                let report = match built {
                    Ok(Ok(state)) => Report::Built {
                        state: Box::new(state),
                        ran: self.ran.get() - ran,
                        cached: self.cached.get() - cached,
                        used: self.used.borrow().clone(),
                        steps: self.records.borrow().clone(),
                    },
                    Ok(Err(e)) => Report::Failed(e.to_string()),
                    Err(_) => Report::Failed(format!("stage {n}: the build panicked")),
                };
                let sent = serde_json::to_vec(&report)
                    .ok()
                    .is_some_and(|b| std::fs::File::from(w).write_all(&b).is_ok());
                // Only what the child made itself goes with it: the
                // parent's directories and locks stay the parent's.
                if !had_scratch {
                    self.drop_scratch();
                }
                capsa_sys::process::exit_now(if sent { 0 } else { 1 })
            }
            Ok(Some(Forked::Parent(pid))) => {
                drop(w);
                Some(Child {
                    stage: i,
                    records,
                    pid: rustix::process::Pid::from_raw(pid.as_raw()),
                    from: std::fs::File::from(r),
                })
            }
            _ => None,
        }
    }
}

impl Child {
    /// The fork's report, once it has exited; `None` without one.
    fn collect(&mut self) -> Option<Report> {
        let mut bytes = Vec::new();
        let read = self.from.read_to_end(&mut bytes);
        let pid = self.pid.take()?;
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        read.ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

impl Drop for Child {
    /// A fork not collected (the parent is unwinding) is killed and
    /// reaped, not left building.
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        }
    }
}
