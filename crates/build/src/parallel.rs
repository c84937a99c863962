//! Independent stages at once, as BuildKit runs them (and podman does
//! not by default): when several needed stages have everything they
//! depend on, all but one are built by forks of this process while this
//! one builds the first; each fork sends its stage's final state back
//! through a pipe. A fork that fails sends nothing, and its stage is then
//! built here, where its error is told.
//!
//! A fork is made only while this process has one thread
//! (`fork_single_threaded`); otherwise the stages run in turn.

use crate::stage::{Build, State};
use crate::Result;
use capsa_sys::process::Forked;
use std::collections::BTreeSet;
use std::io::{Read, Write};

/// What a fork sends back.
#[derive(serde::Serialize, serde::Deserialize)]
struct Report {
    state: State,
    ran: usize,
    cached: usize,
    used: BTreeSet<String>,
    steps: Vec<crate::StepRecord>,
}

/// A fork building one stage.
struct Child {
    stage: usize,
    /// How many step records we had when it forked (its copy has them).
    records: usize,
    pid: rustix::process::Pid,
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
            for k in kids {
                let (stage, theirs) = (k.stage, k.records);
                if let Some(r) = k.collect() {
                    self.ran.set(self.ran.get() + r.ran);
                    self.cached.set(self.cached.get() + r.cached);
                    self.used.borrow_mut().extend(r.used);
                    // The fork's copy began with ours: only its own are new.
                    self.records
                        .borrow_mut()
                        .extend(r.steps.into_iter().skip(theirs));
                    done[stage] = Some(r.state);
                }
            }
            done[first] = Some(mine?);
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
        match capsa_sys::process::fork_single_threaded() {
            Ok(Some(Forked::Child)) => {
                drop(r);
                let report = self.stage(i, n, of, done).ok().map(|state| Report {
                    state,
                    ran: self.ran.get(),
                    cached: self.cached.get(),
                    used: self.used.borrow().clone(),
                    steps: self.records.borrow().clone(),
                });
                let code = match report.and_then(|r| serde_json::to_vec(&r).ok()) {
                    Some(bytes) => {
                        let ok = std::fs::File::from(w).write_all(&bytes).is_ok();
                        if ok {
                            0
                        } else {
                            1
                        }
                    }
                    None => 1,
                };
                // Only what the child made itself goes with it: the
                // parent's directories and locks stay the parent's.
                if !had_scratch {
                    self.drop_scratch();
                }
                capsa_sys::process::exit_now(code)
            }
            Ok(Some(Forked::Parent(pid))) => {
                drop(w);
                Some(Child {
                    stage: i,
                    records: self.records.borrow().len(),
                    pid: rustix::process::Pid::from_raw(pid.as_raw())?,
                    from: std::fs::File::from(r),
                })
            }
            _ => None,
        }
    }
}

impl Child {
    /// The fork's report, once it has exited; `None` if it failed.
    fn collect(mut self) -> Option<Report> {
        let mut bytes = Vec::new();
        let read = self.from.read_to_end(&mut bytes);
        let status =
            rustix::process::waitpid(Some(self.pid), rustix::process::WaitOptions::empty());
        let ok = matches!(status, Ok(Some((_, s))) if s.exit_status() == Some(0));
        if read.is_err() || !ok {
            return None;
        }
        serde_json::from_slice(&bytes).ok()
    }
}
