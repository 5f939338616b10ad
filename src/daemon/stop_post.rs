//! Running a unit's `exec_stop_post` commands once its process is gone: a start
//! with role `Hook` (see `start`), whose exit ends the `Cleaning` phase. Which
//! exit is the hook's is matched by pid, as for the service itself: the helper of
//! a hook in a PID namespace exits too, and an exit may arrive before the start
//! reports the pid.

use std::collections::HashMap;

use super::event_loop::Daemon;
use super::start::StartError;
use crate::spawn::Spawned;
use crate::supervise::{ExitStatus, Now};

/// Exits of a hook's start kept until its pid is known (the helper's, a few).
const EARLY_EXITS_KEPT: usize = 8;

/// The hooks running, per unit.
#[derive(Debug, Default)]
pub struct StopPostRuns {
    runs: HashMap<String, Run>,
}

#[derive(Debug)]
struct Run {
    attempt: u64,
    pid: Option<i32>,
    early_exits: Vec<(i32, ExitStatus)>,
}

impl StopPostRuns {
    /// The hooks of `attempt` are being started (replacing any older run).
    pub fn begin(&mut self, unit: &str, attempt: u64) {
        let run = Run {
            attempt,
            pid: None,
            early_exits: Vec::new(),
        };
        self.runs.insert(unit.to_string(), run);
    }

    /// The start reported its pid (and maybe that it already ended). Some when the
    /// run is over.
    pub fn spawned(
        &mut self,
        unit: &str,
        attempt: u64,
        pid: i32,
        early: Option<ExitStatus>,
    ) -> Option<ExitStatus> {
        let run = self.runs.get_mut(unit).filter(|r| r.attempt == attempt)?;
        run.pid = Some(pid);
        let seen = run.early_exits.iter().find(|(p, _)| *p == pid).map(|e| e.1);
        let done = early.or(seen)?;
        self.runs.remove(unit);
        Some(done)
    }

    /// A process of a hook start ended. Some when it was the hook (the run is over).
    pub fn exited(
        &mut self,
        unit: &str,
        attempt: u64,
        pid: i32,
        status: ExitStatus,
    ) -> Option<ExitStatus> {
        let run = self.runs.get_mut(unit).filter(|r| r.attempt == attempt)?;
        match run.pid {
            Some(p) if p == pid => {
                self.runs.remove(unit);
                Some(status)
            }
            Some(_) => None,
            None => {
                if run.early_exits.len() < EARLY_EXITS_KEPT {
                    run.early_exits.push((pid, status));
                }
                None
            }
        }
    }

    /// The start failed: the run is over.
    pub fn failed(&mut self, unit: &str, attempt: u64) -> bool {
        let ours = self.runs.get(unit).is_some_and(|r| r.attempt == attempt);
        if ours {
            self.runs.remove(unit);
        }
        ours
    }
}

impl Daemon {
    /// Start the `exec_stop_post` commands of `attempt`.
    pub(super) fn run_stop_post(&mut self, unit: String, attempt: u64) {
        self.stop_post.begin(&unit, attempt);
        self.start_job(unit, attempt, crate::reaper::Role::Hook);
    }

    /// The hook start's outcome.
    pub(super) fn on_stop_post_started(
        &mut self,
        unit: &str,
        attempt: u64,
        result: Result<Spawned, StartError>,
    ) {
        match result {
            Ok(spawned) => {
                let log = self.logs.open(unit, None);
                crate::logs::pump_both(spawned.stdout, spawned.stderr, log);
                if let Some(status) =
                    self.stop_post
                        .spawned(unit, attempt, spawned.pid, spawned.early_exit)
                {
                    self.stop_post_done(unit, attempt, Some(status));
                }
            }
            Err(e) => {
                if self.stop_post.failed(unit, attempt) {
                    tracing::warn!(unit, "exec_stop_post could not start: {e}");
                    self.stop_post_done(unit, attempt, None);
                }
            }
        }
    }

    /// A process of a hook start ended.
    pub(super) fn on_hook_exit(&mut self, unit: &str, attempt: u64, pid: i32, status: ExitStatus) {
        if let Some(status) = self.stop_post.exited(unit, attempt, pid, status) {
            self.stop_post_done(unit, attempt, Some(status));
        }
    }

    fn stop_post_done(&mut self, unit: &str, attempt: u64, status: Option<ExitStatus>) {
        match status {
            Some(ExitStatus::Code(0)) => tracing::info!(unit, "exec_stop_post done"),
            Some(status) => tracing::warn!(unit, %status, "exec_stop_post failed"),
            None => {}
        }
        let actions = self.fleet.on_stop_post_done(unit, attempt, Now::read());
        self.execute(actions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: ExitStatus = ExitStatus::Code(0);
    const BAD: ExitStatus = ExitStatus::Code(3);

    #[test]
    fn only_the_hooks_own_exit_ends_the_run() {
        // (events, result of the last one): 's' = spawned with pid, 'x' = exit.
        enum E {
            Spawned(i32, Option<ExitStatus>),
            Exit(u64, i32, ExitStatus),
        }
        use E::*;
        let cases: Vec<(&str, Vec<E>, Option<ExitStatus>)> = vec![
            (
                "plain",
                vec![Spawned(20, None), Exit(7, 20, BAD)],
                Some(BAD),
            ),
            (
                "helper exits first",
                vec![Spawned(20, None), Exit(7, 19, OK)],
                None,
            ),
            (
                "exit before pid",
                vec![Exit(7, 20, BAD), Spawned(20, None)],
                Some(BAD),
            ),
            (
                "helper before pid",
                vec![Exit(7, 19, OK), Spawned(20, None)],
                None,
            ),
            ("already ended", vec![Spawned(20, Some(OK))], Some(OK)),
            (
                "older attempt",
                vec![Spawned(20, None), Exit(6, 20, OK)],
                None,
            ),
        ];
        for (name, events, want) in cases {
            let mut runs = StopPostRuns::default();
            runs.begin("db", 7);
            let mut last = None;
            for e in events {
                last = match e {
                    Spawned(pid, early) => runs.spawned("db", 7, pid, early),
                    Exit(attempt, pid, status) => runs.exited("db", attempt, pid, status),
                };
            }
            assert_eq!(last, want, "{name}");
        }
    }

    #[test]
    fn a_failed_start_ends_only_its_own_run() {
        let mut runs = StopPostRuns::default();
        runs.begin("db", 7);
        assert!(!runs.failed("db", 6));
        assert!(runs.failed("db", 7));
        assert!(!runs.failed("db", 7));
    }
}
