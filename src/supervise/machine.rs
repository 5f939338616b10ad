//! The life cycle of one unit as a pure state machine.
//!
//! The fleet feeds it one `Event` at a time together with the current time; the
//! machine moves to its next `Phase` and answers with the side effects to carry out
//! (`Action`). It never touches the system, so every phase × event pair is tested
//! table-driven (`machine_table.rs`). `Machine::handle` is the whole transition table:
//! one `match` on the event, and inside it every phase is named, so an event that does
//! not apply in a phase is ignored on purpose, never by a catch-all.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;

pub use super::time::Now;
pub use super::vocabulary::{Action, AfterStop, Event, ExitStatus, Failure, Phase, State};
use crate::unit::{RestartPolicy, Service};

#[derive(Debug, Clone)]
pub struct Machine {
    phase: Phase,
    since: SystemTime,
    want_up: bool,
    restarts: u32,
    /// The next spawn is an automatic restart (counted in `restarts` once it happens).
    restart_pending: bool,
    last_exit: Option<(ExitStatus, SystemTime)>,
    /// The last exit was an OOM kill.
    last_exit_oom: bool,
    oom_kills: u32,
    /// Consecutive quick failures; the next restart delay is `restart_delay * 2^step`.
    backoff_step: u32,
    /// Start times inside the current start-limit window.
    starts: VecDeque<Instant>,
    /// Number of the latest spawn attempt, so a late outcome is matched to its attempt.
    attempt: u64,
    /// The latest stop did not end within `stop_timeout` and needed SIGKILL.
    killed_at_stop_timeout: bool,
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
    pub fn restarts(&self) -> u32 {
        self.restarts
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

    /// The host pid of the main process, if one is alive.
    pub fn pid(&self) -> Option<i32> {
        match self.phase {
            Phase::Running { pid, .. } | Phase::Stopping { pid, .. } => Some(pid),
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

    /// Up in the sense dependents wait for: running, or a job that finished successfully.
    pub fn is_up(&self) -> bool {
        matches!(self.phase, Phase::Running { .. } | Phase::Exited)
    }

    /// On its way up: dependents ordered after it wait.
    pub fn is_coming_up(&self) -> bool {
        matches!(
            self.phase,
            Phase::Waiting
                | Phase::Spawning { .. }
                | Phase::Restarting { .. }
                | Phase::Stopping {
                    then: AfterStop::Start,
                    ..
                }
        )
    }

    /// The next instant at which a `Timer` event has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Restarting { at, .. } => Some(at),
            Phase::Stopping { deadline, .. } => deadline,
            _ => None,
        }
    }

    /// The coarse state users see.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Inactive => State::Inactive,
            Phase::Waiting | Phase::Spawning { .. } => State::Starting,
            Phase::Running { .. } => State::Running,
            Phase::Stopping { .. } => State::Stopping,
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
            Phase::Running { .. } => "running".into(),
            Phase::Stopping {
                deadline: Some(_), ..
            } => signal_word(svc.stop_signal),
            Phase::Stopping { deadline: None, .. } => "kill".into(),
            Phase::Restarting { .. } => "backoff".into(),
            Phase::Exited => "success".into(),
            Phase::Failed(f) => f.sub_state().into(),
        }
    }

    /// The transition table: apply `event` at `now` and return what to do.
    pub fn handle(&mut self, event: Event, now: Now, svc: &Service) -> Vec<Action> {
        let was_settled = self.is_settled_down();
        let mut actions = self.transition(event, now, svc);
        // Whenever the last process is gone for good, its cgroup goes too.
        if !was_settled && self.is_settled_down() {
            actions.push(Action::ReleaseCgroup);
        }
        actions
    }

    fn transition(&mut self, event: Event, now: Now, svc: &Service) -> Vec<Action> {
        use Phase as P;
        match event {
            Event::Start => {
                self.want_up = true;
                match &mut self.phase {
                    P::Inactive | P::Exited | P::Failed(_) | P::Restarting { .. } => {
                        self.reset_budget();
                        self.enter(P::Waiting, now);
                    }
                    P::Stopping { then, .. } => *then = AfterStop::Start,
                    // Already on its way up, or up.
                    P::Waiting | P::Spawning { .. } | P::Running { .. } => {}
                }
                Vec::new()
            }
            Event::Stop => {
                self.want_up = false;
                match &mut self.phase {
                    P::Waiting | P::Restarting { .. } => self.enter(P::Inactive, now),
                    P::Stopping { then, .. } => {
                        if *then == AfterStop::Start {
                            *then = AfterStop::Rest;
                        }
                    }
                    // Running: signalled once its dependents are down (`DependentsDown`).
                    // Spawning: stopped as soon as the spawn is confirmed.
                    P::Running { .. } | P::Spawning { .. } => {}
                    P::Inactive | P::Exited | P::Failed(_) => {}
                }
                Vec::new()
            }
            Event::Restart => match self.phase {
                P::Running { .. } => {
                    self.want_up = true;
                    self.reset_budget();
                    self.begin_stop(now, svc, AfterStop::Start)
                }
                P::Inactive
                | P::Waiting
                | P::Spawning { .. }
                | P::Stopping { .. }
                | P::Restarting { .. }
                | P::Exited
                | P::Failed(_) => self.transition(Event::Start, now, svc),
            },
            Event::ResetFailed => {
                match self.phase {
                    P::Failed(_) => self.enter(P::Inactive, now),
                    P::Inactive
                    | P::Waiting
                    | P::Spawning { .. }
                    | P::Running { .. }
                    | P::Stopping { .. }
                    | P::Restarting { .. }
                    | P::Exited => {}
                }
                self.reset_budget();
                Vec::new()
            }
            Event::DependenciesReady => match self.phase {
                P::Waiting => self.begin_spawn(now, svc),
                // Only a waiting unit spawns.
                P::Inactive
                | P::Spawning { .. }
                | P::Running { .. }
                | P::Stopping { .. }
                | P::Restarting { .. }
                | P::Exited
                | P::Failed(_) => Vec::new(),
            },
            Event::DependentsDown => match self.phase {
                P::Running { .. } if !self.want_up => self.begin_stop(now, svc, AfterStop::Rest),
                // Running and wanted up: nothing to stop. Elsewhere there is no process
                // to signal (Spawning stops once confirmed; Stopping already signalled).
                P::Running { .. }
                | P::Inactive
                | P::Waiting
                | P::Spawning { .. }
                | P::Stopping { .. }
                | P::Restarting { .. }
                | P::Exited
                | P::Failed(_) => Vec::new(),
            },
            Event::Spawned { attempt, pid } => self.spawned(attempt, pid, now, svc),
            Event::SpawnFailed { attempt } => self.spawn_failed(attempt, now, svc),
            Event::Exited {
                attempt,
                pid,
                status,
                oom_killed,
            } => {
                if attempt != self.attempt {
                    // A process of an earlier start (its helper): nothing of now.
                    return Vec::new();
                }
                self.exited(pid, status, oom_killed, now, svc)
            }
            Event::Timer => match &mut self.phase {
                P::Restarting { at, .. } if *at <= now.mono => {
                    self.enter(P::Waiting, now);
                    Vec::new()
                }
                P::Stopping { pid, deadline, .. } if deadline.is_some_and(|d| d <= now.mono) => {
                    let pid = *pid;
                    *deadline = None;
                    self.since = now.wall;
                    self.killed_at_stop_timeout = true;
                    kill_everything(pid)
                }
                // Not due yet, or no deadline in this phase.
                P::Restarting { .. }
                | P::Stopping { .. }
                | P::Inactive
                | P::Waiting
                | P::Spawning { .. }
                | P::Running { .. }
                | P::Exited
                | P::Failed(_) => Vec::new(),
            },
            Event::RequirementFailed { unit } => {
                self.want_up = false;
                let failure = Failure::RequirementFailed { unit };
                match self.phase {
                    P::Running { .. } => self.begin_stop(now, svc, AfterStop::Fail(failure)),
                    P::Waiting | P::Restarting { .. } => {
                        self.enter(P::Failed(failure), now);
                        Vec::new()
                    }
                    // Spawning: stopped once confirmed (want_up is false now). Stopping
                    // keeps its plan; settled phases have nothing to lose.
                    P::Spawning { .. }
                    | P::Stopping { .. }
                    | P::Inactive
                    | P::Exited
                    | P::Failed(_) => Vec::new(),
                }
            }
            Event::KillNow => match self.phase {
                P::Running { pid, .. } | P::Stopping { pid, .. } => kill_everything(pid),
                // No process to kill; a spawn in flight is stopped once confirmed.
                P::Inactive
                | P::Waiting
                | P::Spawning { .. }
                | P::Restarting { .. }
                | P::Exited
                | P::Failed(_) => Vec::new(),
            },
        }
    }

    fn enter(&mut self, phase: Phase, now: Now) {
        if std::mem::discriminant(&phase) != std::mem::discriminant(&self.phase) {
            self.since = now.wall;
        }
        self.phase = phase;
    }

    /// The operator acted: give the unit a fresh restart budget.
    fn reset_budget(&mut self) {
        self.restarts = 0;
        self.restart_pending = false;
        self.backoff_step = 0;
        self.starts.clear();
    }

    /// Send the stop signal to the running process (only called in `Running`).
    fn begin_stop(&mut self, now: Now, svc: &Service, then: AfterStop) -> Vec<Action> {
        let Phase::Running { pid, .. } = self.phase else {
            return Vec::new();
        };
        self.killed_at_stop_timeout = false;
        self.enter(
            Phase::Stopping {
                pid,
                deadline: Some(now.mono_after(svc.stop_timeout)),
                then,
            },
            now,
        );
        vec![
            Action::Signal {
                pgid: pid,
                signal: svc.stop_signal,
            },
            // A stopped (SIGSTOP) process only sees the stop signal once continued.
            Action::Signal {
                pgid: pid,
                signal: Signal::SIGCONT,
            },
        ]
    }

    /// Spawn, unless the start limit is exhausted (only called in `Waiting`).
    fn begin_spawn(&mut self, now: Now, svc: &Service) -> Vec<Action> {
        let limit = &svc.start_limit;
        while let Some(first) = self.starts.front() {
            if now.mono.saturating_duration_since(*first) >= limit.interval {
                self.starts.pop_front();
            } else {
                break;
            }
        }
        if self.starts.len() >= limit.burst as usize {
            self.want_up = false;
            self.enter(
                Phase::Failed(Failure::StartLimit {
                    burst: limit.burst,
                    interval: limit.interval,
                }),
                now,
            );
            return Vec::new();
        }
        self.starts.push_back(now.mono);
        if std::mem::take(&mut self.restart_pending) {
            self.restarts = self.restarts.saturating_add(1);
        }
        self.attempt = self.attempt.wrapping_add(1);
        self.enter(
            Phase::Spawning {
                early_exits: Vec::new(),
            },
            now,
        );
        vec![Action::Spawn {
            attempt: self.attempt,
        }]
    }

    /// Whether a spawn outcome belongs to the attempt in flight; any other has been
    /// given up (the unit moved on) and is stale.
    fn in_flight(&self, attempt: u64) -> bool {
        match self.phase {
            Phase::Spawning { .. } => attempt == self.attempt,
            Phase::Inactive
            | Phase::Waiting
            | Phase::Running { .. }
            | Phase::Stopping { .. }
            | Phase::Restarting { .. }
            | Phase::Exited
            | Phase::Failed(_) => false,
        }
    }

    fn spawned(&mut self, attempt: u64, pid: i32, now: Now, svc: &Service) -> Vec<Action> {
        if !self.in_flight(attempt) {
            // Its process must not run unsupervised. Only its group: the cgroup may
            // already be the next attempt's.
            return vec![Action::Signal {
                pgid: pid,
                signal: Signal::SIGKILL,
            }];
        }
        let early_exit = match &self.phase {
            Phase::Spawning { early_exits } => early_exits
                .iter()
                .find(|(p, _)| *p == pid)
                .map(|(_, status)| *status),
            _ => None,
        };
        self.enter(
            Phase::Running {
                pid,
                started: now.mono,
            },
            now,
        );
        if let Some(status) = early_exit {
            return self.exited(pid, status, false, now, svc);
        }
        if !self.want_up {
            return self.begin_stop(now, svc, AfterStop::Rest);
        }
        Vec::new()
    }

    fn spawn_failed(&mut self, attempt: u64, now: Now, svc: &Service) -> Vec<Action> {
        if !self.in_flight(attempt) {
            return Vec::new();
        }
        if !self.want_up {
            self.enter(Phase::Inactive, now);
        } else if matches!(
            svc.restart,
            RestartPolicy::OnFailure | RestartPolicy::Always
        ) {
            self.schedule_restart(now, svc);
        } else {
            self.want_up = false;
            self.enter(Phase::Failed(Failure::Spawn), now);
        }
        Vec::new()
    }

    fn exited(
        &mut self,
        pid: i32,
        status: ExitStatus,
        oom_killed: bool,
        now: Now,
        svc: &Service,
    ) -> Vec<Action> {
        if oom_killed {
            self.oom_kills = self.oom_kills.saturating_add(1);
        }
        match &mut self.phase {
            Phase::Spawning { early_exits } => {
                // The helper and the container's first process: never more than a
                // few per attempt.
                if early_exits.len() < EARLY_EXITS_KEPT {
                    early_exits.push((pid, status));
                }
                Vec::new()
            }
            Phase::Running { pid: p, started } if *p == pid => {
                let uptime = now.mono.saturating_duration_since(*started);
                self.last_exit = Some((status, now.wall));
                self.last_exit_oom = oom_killed;
                if uptime >= svc.restart_reset_after {
                    self.backoff_step = 0;
                }
                self.after_exit(status, now, svc);
                kill_everything(pid)
            }
            Phase::Stopping { pid: p, then, .. } if *p == pid => {
                let then = then.clone();
                self.last_exit = Some((status, now.wall));
                self.last_exit_oom = oom_killed;
                match then {
                    AfterStop::Rest => self.enter(Phase::Inactive, now),
                    AfterStop::Start => self.enter(Phase::Waiting, now),
                    AfterStop::Fail(f) => self.enter(Phase::Failed(f), now),
                }
                kill_everything(pid)
            }
            // Not the main process (a spawn helper, or a process already replaced).
            Phase::Running { .. }
            | Phase::Stopping { .. }
            | Phase::Inactive
            | Phase::Waiting
            | Phase::Restarting { .. }
            | Phase::Exited
            | Phase::Failed(_) => Vec::new(),
        }
    }

    /// The main process ended on its own: restart, or settle as exited/failed.
    fn after_exit(&mut self, status: ExitStatus, now: Now, svc: &Service) {
        let success = matches!(status, ExitStatus::Code(c) if svc.success_exit_codes.contains(&c));
        let restart = self.want_up
            && match svc.restart {
                RestartPolicy::No => false,
                RestartPolicy::OnFailure => !success,
                RestartPolicy::OnAbnormal => matches!(status, ExitStatus::Signal(_)),
                RestartPolicy::Always => true,
            };
        if restart {
            self.schedule_restart(now, svc);
        } else if success {
            self.want_up = false;
            self.enter(Phase::Exited, now);
        } else {
            self.want_up = false;
            let failure = if self.last_exit_oom {
                Failure::OomKilled
            } else {
                Failure::Exit(status)
            };
            self.enter(Phase::Failed(failure), now);
        }
    }

    fn schedule_restart(&mut self, now: Now, svc: &Service) {
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

/// Exits kept while a start is in flight (its helper, its first process).
const EARLY_EXITS_KEPT: usize = 4;

/// The main process is gone (or must go): whatever it left in its process group and
/// in the unit's cgroup dies with it.
fn kill_everything(pid: i32) -> Vec<Action> {
    vec![
        Action::Signal {
            pgid: pid,
            signal: Signal::SIGKILL,
        },
        Action::KillCgroup,
    ]
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

#[cfg(test)]
#[path = "machine_table.rs"]
mod table;

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
