//! The life cycle of one unit as a pure state machine.
//!
//! The fleet feeds it one `Event` at a time together with the current time; the
//! machine moves to its next `Phase` and answers with the side effects to carry out
//! (`Action`). It never touches the system, so every phase × event pair is tested
//! table-driven (`machine_table.rs`). `Machine::handle` (in `transitions.rs`) is the
//! whole transition table: one `match` on the event, and inside it every phase is
//! named, so an event that does not apply in a phase is ignored on purpose, never by
//! a catch-all. This file holds the machine's memory and what it answers about
//! itself.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;

pub use super::time::Now;
pub use super::vocabulary::{Action, AfterStop, Event, ExitStatus, Failure, Phase, State};
use crate::unit::{Service, ServiceType};

#[derive(Debug, Clone)]
pub struct Machine {
    pub(super) phase: Phase,
    pub(super) since: SystemTime,
    pub(super) want_up: bool,
    pub(super) restarts: u32,
    /// The next spawn is an automatic restart (counted in `restarts` once it happens).
    pub(super) restart_pending: bool,
    pub(super) last_exit: Option<(ExitStatus, SystemTime)>,
    /// The last exit was an OOM kill.
    pub(super) last_exit_oom: bool,
    pub(super) oom_kills: u32,
    /// Consecutive quick failures; the next restart delay is `restart_delay * 2^step`.
    pub(super) backoff_step: u32,
    /// Start times inside the current start-limit window.
    pub(super) starts: VecDeque<Instant>,
    /// Number of the latest spawn attempt, so a late outcome is matched to its attempt.
    pub(super) attempt: u64,
    /// The latest stop did not end within `stop_timeout` and needed SIGKILL.
    pub(super) killed_at_stop_timeout: bool,
    /// Why the latest process failed, while it is being restarted.
    pub(super) last_failure: Option<Failure>,
}

impl Machine {
    pub fn new(now: Now) -> Self {
        Machine {
            phase: Phase::Inactive,
            since: now.wall,
            want_up: false,
            restarts: 0,
            restart_pending: false,
            last_exit: None,
            last_exit_oom: false,
            oom_kills: 0,
            backoff_step: 0,
            starts: VecDeque::new(),
            attempt: 0,
            killed_at_stop_timeout: false,
            last_failure: None,
        }
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }
    pub fn since(&self) -> SystemTime {
        self.since
    }
    pub fn want_up(&self) -> bool {
        self.want_up
    }
    /// Automatic restarts since the operator last started the unit; during the
    /// backoff before a restart (and while that restart waits for its
    /// dependencies) it counts already, so status does not lag one behind.
    pub fn restarts(&self) -> u32 {
        let pending =
            self.restart_pending && matches!(self.phase, Phase::Restarting { .. } | Phase::Waiting);
        self.restarts.saturating_add(u32::from(pending))
    }
    pub fn last_exit(&self) -> Option<(ExitStatus, SystemTime)> {
        self.last_exit
    }
    pub fn last_exit_oom(&self) -> bool {
        self.last_exit_oom
    }
    pub fn oom_kills(&self) -> u32 {
        self.oom_kills
    }
    pub fn attempt(&self) -> u64 {
        self.attempt
    }
    /// The latest stop needed SIGKILL after `stop_timeout` (data loss for databases).
    pub fn killed_at_stop_timeout(&self) -> bool {
        self.killed_at_stop_timeout
    }
    /// The failure a stop in progress is for (a start timeout, a missed watchdog,
    /// an unhealthy service), if any.
    pub fn stop_cause(&self) -> Option<&Failure> {
        match &self.phase {
            Phase::Stopping { then, .. } | Phase::Cleaning { then, .. } => match then {
                AfterStop::Fail(f) | AfterStop::Retry(f) | AfterStop::Restart(f) => Some(f),
                AfterStop::Rest | AfterStop::Start | AfterStop::Done => None,
            },
            _ => None,
        }
    }
    /// Why the latest process failed (also while it is restarted after it).
    pub fn last_failure(&self) -> Option<&Failure> {
        self.last_failure.as_ref()
    }

    /// The host pid of the main process, if one is alive.
    pub fn pid(&self) -> Option<i32> {
        match self.phase {
            Phase::Starting { pid, .. }
            | Phase::Running { pid, .. }
            | Phase::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// No process exists and none is about to be spawned.
    pub fn is_settled_down(&self) -> bool {
        matches!(
            self.phase,
            Phase::Inactive | Phase::Exited | Phase::Failed(_)
        )
    }

    /// Up in the sense dependents wait for: ready and running, or a job that finished
    /// successfully.
    pub fn is_up(&self) -> bool {
        matches!(self.phase, Phase::Running { .. } | Phase::Exited)
    }

    /// On its way up: dependents ordered after it wait.
    pub fn is_coming_up(&self) -> bool {
        matches!(
            self.phase,
            Phase::Waiting
                | Phase::Spawning { .. }
                | Phase::Starting { .. }
                | Phase::Restarting { .. }
                | Phase::Stopping {
                    then: AfterStop::Start,
                    ..
                }
        )
    }

    /// Whether the unit's health should be probed now: a process runs that is
    /// (about to be) serving.
    pub fn is_probed(&self) -> bool {
        matches!(self.phase, Phase::Starting { .. } | Phase::Running { .. })
    }

    /// The next instant at which a `Timer` event has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Restarting { at, .. } => Some(at),
            Phase::Stopping { deadline, .. } | Phase::Starting { deadline, .. } => deadline,
            Phase::Running { watchdog, .. } => watchdog,
            Phase::Cleaning { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    /// The coarse state users see.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Inactive => State::Inactive,
            Phase::Waiting | Phase::Spawning { .. } | Phase::Starting { .. } => State::Starting,
            Phase::Running { .. } => State::Running,
            Phase::Stopping { .. } | Phase::Cleaning { .. } => State::Stopping,
            Phase::Restarting { .. } => State::Restarting,
            Phase::Exited => State::Exited,
            Phase::Failed(_) => State::Failed,
        }
    }

    /// The finer detail of the state, as shown to users.
    pub fn sub_state(&self, svc: &Service) -> String {
        match &self.phase {
            Phase::Inactive => "dead".into(),
            Phase::Waiting => "waiting".into(),
            Phase::Spawning { .. } => "spawning".into(),
            Phase::Starting { .. } if svc.lifecycle.kind == ServiceType::Oneshot => {
                "running-job".into()
            }
            Phase::Starting { .. } => match svc.lifecycle.kind {
                ServiceType::Simple if svc.lifecycle.ready_fd.is_some() => "waiting-for-ready-fd",
                ServiceType::Simple => "waiting-for-healthy",
                ServiceType::Notify | ServiceType::Oneshot => "waiting-for-ready",
            }
            .into(),
            Phase::Running { .. } => "running".into(),
            Phase::Stopping {
                deadline: Some(_), ..
            } => signal_word(svc.stop_signal),
            Phase::Stopping { deadline: None, .. } => "kill".into(),
            Phase::Cleaning { .. } => "stop-post".into(),
            Phase::Restarting { .. } => "backoff".into(),
            Phase::Exited if svc.lifecycle.remain_after_exit => "active".into(),
            Phase::Exited => "success".into(),
            Phase::Failed(f) => f.sub_state().into(),
        }
    }

    pub(super) fn enter(&mut self, phase: Phase, now: Now) {
        if std::mem::discriminant(&phase) != std::mem::discriminant(&self.phase) {
            self.since = now.wall;
        }
        self.phase = phase;
    }

    /// The operator acted: give the unit a fresh restart budget.
    pub(super) fn reset_budget(&mut self) {
        self.restarts = 0;
        self.restart_pending = false;
        self.backoff_step = 0;
        self.starts.clear();
    }

    pub(super) fn schedule_restart(&mut self, now: Now, svc: &Service) {
        let delay = backoff_delay(svc.restart_delay, svc.restart_max_delay, self.backoff_step);
        self.backoff_step = self.backoff_step.saturating_add(1);
        self.restart_pending = true;
        self.enter(
            Phase::Restarting {
                at: now.mono_after(delay),
                at_wall: now.wall_after(delay),
            },
            now,
        );
    }
}

/// The main process is gone (or must go): whatever it left in its process group and
/// in the unit's cgroup dies with it.
pub(super) fn kill_everything(pid: i32) -> Vec<Action> {
    vec![Action::Kill { pgid: Some(pid) }]
}

/// `SIGTERM` -> `term`: the stopping sub-state names the signal that was sent.
fn signal_word(sig: Signal) -> String {
    sig.as_str().trim_start_matches("SIG").to_ascii_lowercase()
}

/// Exponential backoff: `base * 2^step`, capped at `max`.
pub fn backoff_delay(base: Duration, max: Duration, step: u32) -> Duration {
    let factor = 1u32.checked_shl(step.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

#[path = "transitions.rs"]
mod transitions;

#[cfg(test)]
#[path = "machine_table.rs"]
mod table;

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
