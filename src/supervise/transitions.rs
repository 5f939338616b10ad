//! The transition table of `Machine`: what each event does in each phase.

use super::{Action, AfterStop, Event, ExitStatus, Failure, Machine, Now, Phase, kill_everything};
use crate::unit::{OnUnhealthy, RestartPolicy, Service};
use std::time::Instant;

/// Exits kept while a start is in flight (its helper, its first process).
const EARLY_EXITS_KEPT: usize = 4;

impl Machine {
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
                    P::Exited if svc.lifecycle.remain_after_exit => {}
                    P::Inactive | P::Exited | P::Failed(_) | P::Restarting { .. } => {
                        self.reset_budget();
                        self.enter(P::Waiting, now);
                    }
                    P::Stopping { then, .. } | P::Cleaning { then, .. } => {
                        *then = AfterStop::Start;
                    }
                    // Already on its way up, or up.
                    P::Waiting | P::Spawning { .. } | P::Starting { .. } | P::Running { .. } => {}
                }
                Vec::new()
            }
            Event::Stop => {
                self.want_up = false;
                match &mut self.phase {
                    P::Waiting | P::Restarting { .. } => self.enter(P::Inactive, now),
                    P::Stopping { then, .. } | P::Cleaning { then, .. } => {
                        if *then == AfterStop::Start {
                            *then = AfterStop::Rest;
                        }
                    }
                    // A job that stays active (`remain_after_exit`) is stopped: it
                    // runs again at the next start.
                    P::Exited if svc.lifecycle.remain_after_exit => self.enter(P::Inactive, now),
                    // Running: signalled once its dependents are down (`DependentsDown`).
                    // Spawning: stopped as soon as the spawn is confirmed.
                    P::Running { .. } | P::Starting { .. } | P::Spawning { .. } => {}
                    P::Inactive | P::Exited | P::Failed(_) => {}
                }
                Vec::new()
            }
            Event::Restart => match self.phase {
                P::Running { .. } | P::Starting { .. } => {
                    self.want_up = true;
                    self.reset_budget();
                    self.begin_stop(now, svc, AfterStop::Start)
                }
                P::Inactive
                | P::Waiting
                | P::Spawning { .. }
                | P::Stopping { .. }
                | P::Cleaning { .. }
                | P::Restarting { .. }
                | P::Exited
                | P::Failed(_) => {
                    // Restart means run again, even a job that stays up.
                    if matches!(self.phase, P::Exited) {
                        self.enter(P::Inactive, now);
                    }
                    self.transition(Event::Start, now, svc)
                }
            },
            Event::ResetFailed => {
                if matches!(self.phase, P::Failed(_)) {
                    self.enter(P::Inactive, now);
                }
                self.reset_budget();
                Vec::new()
            }
            Event::DependenciesReady => match self.phase {
                P::Waiting => self.begin_spawn(now, svc),
                // Only a waiting unit spawns.
                P::Inactive
                | P::Spawning { .. }
                | P::Starting { .. }
                | P::Running { .. }
                | P::Stopping { .. }
                | P::Cleaning { .. }
                | P::Restarting { .. }
                | P::Exited
                | P::Failed(_) => Vec::new(),
            },
            Event::DependentsDown => match self.phase {
                P::Running { .. } | P::Starting { .. } if !self.want_up => {
                    self.begin_stop(now, svc, AfterStop::Rest)
                }
                // Wanted up: nothing to stop. Elsewhere there is no process to signal
                // (Spawning stops once confirmed; Stopping already signalled).
                P::Running { .. }
                | P::Starting { .. }
                | P::Inactive
                | P::Waiting
                | P::Spawning { .. }
                | P::Stopping { .. }
                | P::Cleaning { .. }
                | P::Restarting { .. }
                | P::Exited
                | P::Failed(_) => Vec::new(),
            },
            Event::Spawned { attempt, pid } => self.spawned(attempt, pid, now, svc),
            Event::SpawnFailed { attempt, start_pre } => {
                if !self.in_flight(attempt) {
                    return Vec::new();
                }
                let failure = if start_pre {
                    Failure::StartPre
                } else {
                    Failure::Spawn
                };
                let then = if self.want_up {
                    AfterStop::Retry(failure)
                } else {
                    AfterStop::Rest
                };
                self.after_process(then, now, svc)
            }
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
            Event::Timer => self.timer(now, svc),
            Event::RequirementFailed { unit } => {
                self.want_up = false;
                let failure = Failure::RequirementFailed { unit };
                match &mut self.phase {
                    P::Running { .. } | P::Starting { .. } => {
                        self.begin_stop(now, svc, AfterStop::Fail(failure))
                    }
                    P::Waiting | P::Restarting { .. } => {
                        self.enter(P::Failed(failure), now);
                        Vec::new()
                    }
                    P::Cleaning { then, .. } => {
                        *then = AfterStop::Fail(failure);
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
                P::Running { pid, .. } | P::Starting { pid, .. } | P::Stopping { pid, .. } => {
                    kill_everything(pid)
                }
                P::Cleaning { .. } => vec![Action::Kill { pgid: None }],
                // No process to kill; a spawn in flight is stopped once confirmed.
                P::Inactive
                | P::Waiting
                | P::Spawning { .. }
                | P::Restarting { .. }
                | P::Exited
                | P::Failed(_) => Vec::new(),
            },
            Event::Ready => match self.phase {
                P::Starting { pid, started, .. } => {
                    self.become_ready(pid, started, now, svc);
                    Vec::new()
                }
                // The service ran and said so before supd read the helper's last
                // report (both travel separately): kept for `spawned`.
                P::Spawning {
                    ref mut ready_early,
                    ..
                } => {
                    *ready_early = true;
                    Vec::new()
                }
                // Ready again (after a reload) or too late: nothing changes.
                P::Running { .. }
                | P::Inactive
                | P::Waiting
                | P::Stopping { .. }
                | P::Cleaning { .. }
                | P::Restarting { .. }
                | P::Exited
                | P::Failed(_) => Vec::new(),
            },
            Event::WatchdogPing => {
                if let P::Running {
                    watchdog: Some(due),
                    ..
                } = &mut self.phase
                    && let Some(w) = svc.lifecycle.watchdog
                {
                    *due = now.mono_after(w);
                }
                // Elsewhere there is no watchdog running: a ping means nothing.
                Vec::new()
            }
            Event::ExtendStart(by) => {
                if let P::Starting {
                    deadline: Some(due),
                    ..
                } = &mut self.phase
                {
                    *due = (*due).max(now.mono_after(by));
                }
                // Only a start that is waiting can be extended.
                Vec::new()
            }
            Event::Unhealthy(action) => match (self.phase.clone(), action) {
                (P::Running { .. } | P::Starting { .. }, OnUnhealthy::Restart) => {
                    self.begin_stop(now, svc, AfterStop::Restart(Failure::Unhealthy))
                }
                (P::Running { .. } | P::Starting { .. }, OnUnhealthy::Stop) => {
                    self.want_up = false;
                    self.begin_stop(now, svc, AfterStop::Fail(Failure::Unhealthy))
                }
                // Only shown, or no process that could be unhealthy any more.
                (P::Running { .. } | P::Starting { .. }, OnUnhealthy::None)
                | (
                    P::Inactive
                    | P::Waiting
                    | P::Spawning { .. }
                    | P::Stopping { .. }
                    | P::Cleaning { .. }
                    | P::Restarting { .. }
                    | P::Exited
                    | P::Failed(_),
                    _,
                ) => Vec::new(),
            },
            Event::StopPostDone { attempt } => match &self.phase {
                P::Cleaning { then, .. } if attempt == self.attempt => {
                    let then = then.clone();
                    self.finish(then, now, svc)
                }
                // Late (the cleaning timed out) or of an earlier attempt.
                P::Cleaning { .. }
                | P::Inactive
                | P::Waiting
                | P::Spawning { .. }
                | P::Starting { .. }
                | P::Running { .. }
                | P::Stopping { .. }
                | P::Restarting { .. }
                | P::Exited
                | P::Failed(_) => Vec::new(),
            },
        }
    }

    /// A deadline passed: a backoff ended, a stop or a start timed out, a watchdog
    /// was missed, or the `exec_stop_post` commands took too long.
    fn timer(&mut self, now: Now, svc: &Service) -> Vec<Action> {
        let due = |d: Option<std::time::Instant>| d.is_some_and(|d| d <= now.mono);
        match &mut self.phase {
            Phase::Restarting { at, .. } if *at <= now.mono => {
                self.enter(Phase::Waiting, now);
                Vec::new()
            }
            Phase::Stopping { pid, deadline, .. } if due(*deadline) => {
                let pid = *pid;
                *deadline = None;
                self.since = now.wall;
                self.killed_at_stop_timeout = true;
                kill_everything(pid)
            }
            Phase::Starting { deadline, .. } if due(*deadline) => {
                self.begin_stop(now, svc, AfterStop::Retry(Failure::StartTimeout))
            }
            Phase::Running { pid, watchdog, .. } if due(*watchdog) => {
                let pid = *pid;
                let then = AfterStop::Retry(Failure::Watchdog);
                self.enter(
                    Phase::Stopping {
                        pid,
                        deadline: None,
                        then,
                    },
                    now,
                );
                kill_everything(pid)
            }
            Phase::Cleaning { deadline, then } if *deadline <= now.mono => {
                let then = then.clone();
                let mut actions = vec![Action::Kill { pgid: None }];
                actions.extend(self.finish(then, now, svc));
                actions
            }
            // Not due yet, or no deadline in this phase.
            Phase::Restarting { .. }
            | Phase::Stopping { .. }
            | Phase::Starting { .. }
            | Phase::Running { .. }
            | Phase::Cleaning { .. }
            | Phase::Inactive
            | Phase::Waiting
            | Phase::Spawning { .. }
            | Phase::Exited
            | Phase::Failed(_) => Vec::new(),
        }
    }

    /// Ask the running process to stop (only called with a process).
    pub(super) fn begin_stop(&mut self, now: Now, svc: &Service, then: AfterStop) -> Vec<Action> {
        let (Phase::Running { pid, .. } | Phase::Starting { pid, .. }) = self.phase else {
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
        vec![Action::StopSignal {
            pgid: pid,
            signal: svc.stop_signal,
        }]
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
            let failure = Failure::StartLimit {
                burst: limit.burst,
                interval: limit.interval,
            };
            let exit_code = failure.exit_code();
            self.enter(Phase::Failed(failure), now);
            return vec![Action::Failed {
                for_good: true,
                exit_code,
            }];
        }
        self.starts.push_back(now.mono);
        if std::mem::take(&mut self.restart_pending) {
            self.restarts = self.restarts.saturating_add(1);
        }
        self.attempt = self.attempt.wrapping_add(1);
        self.enter(
            Phase::Spawning {
                early_exits: Vec::new(),
                ready_early: false,
            },
            now,
        );
        vec![Action::Spawn {
            attempt: self.attempt,
        }]
    }

    /// Whether a spawn outcome belongs to the attempt in flight; any other has been
    /// given up (the unit moved on) and is stale.
    pub(super) fn in_flight(&self, attempt: u64) -> bool {
        matches!(self.phase, Phase::Spawning { .. }) && attempt == self.attempt
    }

    fn spawned(&mut self, attempt: u64, pid: i32, now: Now, svc: &Service) -> Vec<Action> {
        let Phase::Spawning {
            early_exits,
            ready_early,
        } = &self.phase
        else {
            return vec![Action::KillStray { pgid: pid }];
        };
        let ready_early = *ready_early;
        if attempt != self.attempt {
            // Its process must not run unsupervised.
            return vec![Action::KillStray { pgid: pid }];
        }
        let early_exit = early_exits
            .iter()
            .find(|(p, _)| *p == pid)
            .map(|(_, status)| *status);
        let started = now.mono;
        if !svc.lifecycle.waits_for_ready() {
            self.enter_running(pid, started, None, now);
        } else if ready_early {
            self.become_ready(pid, started, now, svc);
        } else {
            let deadline = svc.lifecycle.start_timeout.map(|t| now.mono_after(t));
            self.enter(
                Phase::Starting {
                    pid,
                    started,
                    deadline,
                },
                now,
            );
        }
        if let Some(status) = early_exit {
            return self.exited(pid, status, false, now, svc);
        }
        if !self.want_up {
            return self.begin_stop(now, svc, AfterStop::Rest);
        }
        Vec::new()
    }

    /// From waiting for readiness to running: the watchdog starts counting.
    fn become_ready(&mut self, pid: i32, started: Instant, now: Now, svc: &Service) {
        let watchdog = svc.lifecycle.watchdog.map(|w| now.mono_after(w));
        self.last_failure = None;
        self.enter_running(pid, started, watchdog, now);
    }

    fn enter_running(&mut self, pid: i32, started: Instant, watchdog: Option<Instant>, now: Now) {
        let running = Phase::Running {
            pid,
            started,
            watchdog,
        };
        self.enter(running, now);
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
        let then = match &mut self.phase {
            Phase::Spawning { early_exits, .. } => {
                // The helper and the container's first process: never more than a
                // few per attempt.
                if early_exits.len() < EARLY_EXITS_KEPT {
                    early_exits.push((pid, status));
                }
                return Vec::new();
            }
            Phase::Running {
                pid: p, started, ..
            }
            | Phase::Starting {
                pid: p, started, ..
            } if *p == pid => {
                if now.mono.saturating_duration_since(*started) >= svc.restart_reset_after {
                    self.backoff_step = 0;
                }
                outcome(status, oom_killed, svc)
            }
            Phase::Stopping { pid: p, then, .. } if *p == pid => then.clone(),
            // Not the main process (a spawn helper, or a process already replaced).
            Phase::Running { .. }
            | Phase::Starting { .. }
            | Phase::Stopping { .. }
            | Phase::Cleaning { .. }
            | Phase::Inactive
            | Phase::Waiting
            | Phase::Restarting { .. }
            | Phase::Exited
            | Phase::Failed(_) => return Vec::new(),
        };
        self.last_exit = Some((status, now.wall));
        self.last_exit_oom = oom_killed;
        let mut actions = kill_everything(pid);
        actions.extend(self.after_process(then, now, svc));
        actions
    }

    /// The process is gone: run the `exec_stop_post` commands first, if any.
    fn after_process(&mut self, then: AfterStop, now: Now, svc: &Service) -> Vec<Action> {
        if svc.lifecycle.exec_stop_post.is_empty() {
            return self.finish(then, now, svc);
        }
        let deadline = now.mono_after(svc.stop_timeout);
        self.enter(Phase::Cleaning { deadline, then }, now);
        vec![Action::RunStopPost {
            attempt: self.attempt,
        }]
    }

    /// Where the unit goes once its process (and hooks) are done.
    fn finish(&mut self, then: AfterStop, now: Now, svc: &Service) -> Vec<Action> {
        match then {
            AfterStop::Rest => self.enter(Phase::Inactive, now),
            AfterStop::Start => self.enter(Phase::Waiting, now),
            AfterStop::Done if self.want_up && svc.restart == RestartPolicy::Always => {
                self.schedule_restart(now, svc)
            }
            AfterStop::Done => {
                self.want_up = false;
                self.enter(Phase::Exited, now);
            }
            AfterStop::Fail(f) => {
                self.want_up = false;
                let own = !matches!(f, Failure::RequirementFailed { .. });
                let exit_code = f.exit_code();
                self.enter(Phase::Failed(f), now);
                // A requirement's failure is reported by the requirement.
                return if own {
                    vec![Action::Failed {
                        for_good: true,
                        exit_code,
                    }]
                } else {
                    Vec::new()
                };
            }
            AfterStop::Retry(f) => {
                let allowed = restarts_after(&f, svc);
                return self.fail(f, allowed, now, svc);
            }
            AfterStop::Restart(f) => return self.fail(f, true, now, svc),
        }
        Vec::new()
    }

    /// The process failed: restart (with backoff) if `allowed` and still wanted.
    fn fail(&mut self, f: Failure, allowed: bool, now: Now, svc: &Service) -> Vec<Action> {
        let exit_code = f.exit_code();
        let restarts = self.want_up && allowed;
        if restarts {
            self.last_failure = Some(f);
            self.schedule_restart(now, svc);
        } else {
            self.want_up = false;
            self.enter(Phase::Failed(f), now);
        }
        vec![Action::Failed {
            for_good: !restarts,
            exit_code,
        }]
    }
}

/// How a process that ended on its own counts.
fn outcome(status: ExitStatus, oom_killed: bool, svc: &Service) -> AfterStop {
    let success = matches!(status, ExitStatus::Code(c) if svc.success_exit_codes.contains(&c));
    if success {
        AfterStop::Done
    } else if oom_killed {
        AfterStop::Retry(Failure::OomKilled)
    } else {
        AfterStop::Retry(Failure::Exit(status))
    }
}

/// Whether the restart policy restarts after this failure.
fn restarts_after(f: &Failure, svc: &Service) -> bool {
    match svc.restart {
        RestartPolicy::No => false,
        RestartPolicy::OnFailure | RestartPolicy::Always => true,
        RestartPolicy::OnAbnormal => f.is_abnormal(),
    }
}
