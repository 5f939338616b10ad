//! The life cycle of one unit as a pure state machine.
//!
//! The daemon feeds it events (operator requests, spawn outcomes, exits, timers) together
//! with the current time; it answers with the new phase and the side effects to perform
//! (`Action`). It never touches the system, so every transition is unit-tested below.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;

use crate::unit::{RestartPolicy, Service};

/// The current time, read once per event so a transition sees one consistent instant.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// For deadlines and durations (immune to clock changes).
    pub mono: Instant,
    /// For what users read (`since`, `next start`).
    pub wall: SystemTime,
}

impl Now {
    pub fn read() -> Self {
        Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// The same moment shifted by `d`, on both clocks.
    pub fn plus(self, d: Duration) -> Self {
        Now {
            mono: self.mono + d,
            wall: self.wall + d,
        }
    }
}

/// How a process ended, as `waitpid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    pub fn signal_name(signo: i32) -> String {
        match Signal::try_from(signo) {
            Ok(sig) => sig.as_str().to_string(),
            Err(_) => format!("SIG{signo}"),
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by {}", ExitStatus::signal_name(*s)),
        }
    }
}

/// Why a unit is `failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Exit(ExitStatus),
    /// The kernel's OOM killer ended it (its cgroup hit `memory_max`).
    OomKilled,
    StartLimit {
        burst: u32,
        interval: Duration,
    },
    /// The process could not be started; the text names the step, path and errno.
    Spawn(String),
    /// A unit this one `requires` failed or was stopped.
    Dependency(String),
}

impl Failure {
    pub fn sub_state(&self) -> &'static str {
        match self {
            Failure::Exit(ExitStatus::Code(_)) => "exit-code",
            Failure::Exit(ExitStatus::Signal(_)) => "signal",
            Failure::OomKilled => "oom-killed",
            Failure::StartLimit { .. } => "start-limit",
            Failure::Spawn(_) => "spawn-error",
            Failure::Dependency(_) => "dependency",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Exit(status) => write!(f, "{status}"),
            Failure::OomKilled => write!(f, "oom-killed: the unit's cgroup reached memory_max"),
            Failure::StartLimit { burst, interval } => write!(
                f,
                "start limit hit: {burst} starts within {}; run `supctl restart` or `supctl reset-failed`",
                humantime::format_duration(*interval)
            ),
            Failure::Spawn(msg) => write!(f, "could not start: {msg}"),
            Failure::Dependency(msg) => write!(f, "{msg}"),
        }
    }
}

/// What happens once a stopping unit's process is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterStop {
    Rest,
    Start,
    Fail(Failure),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Inactive,
    /// Start wanted; waiting until the units it is ordered after have settled.
    Waiting,
    /// The spawner is running; the pid is not confirmed yet. An exit that the reaper saw
    /// before the spawn outcome arrived is kept here rather than lost.
    Spawning {
        early_exit: Option<(i32, ExitStatus)>,
    },
    Running {
        pid: i32,
        started: Instant,
    },
    /// The stop signal was sent; at `deadline` SIGKILL follows (None once it was sent).
    Stopping {
        pid: i32,
        deadline: Option<Instant>,
        then: AfterStop,
    },
    /// Backing off before the next automatic start.
    Restarting {
        at: Instant,
        at_wall: SystemTime,
    },
    /// Ended successfully and is not restarted (e.g. a oneshot job).
    Exited,
    Failed(Failure),
}

/// A side effect the daemon performs on the machine's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Spawn,
    /// Send a signal to the process group led by `pgid` (ESRCH is fine: nothing left).
    SignalGroup {
        pgid: i32,
        signal: Signal,
    },
}

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
    /// An OOM kill was seen in the cgroup; it explains the next exit.
    oom_next: bool,
    oom_kills: u32,
    /// Consecutive quick failures; the next restart delay is `restart_delay * 2^step`.
    backoff_step: u32,
    /// Start times inside the current start-limit window.
    starts: VecDeque<Instant>,
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
            oom_next: false,
            oom_kills: 0,
            backoff_step: 0,
            starts: VecDeque::new(),
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

    /// The unit's cgroup reports an OOM kill: it explains the coming exit.
    pub fn record_oom_kill(&mut self) {
        self.oom_kills = self.oom_kills.saturating_add(1);
        self.oom_next = true;
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

    /// The next instant at which `on_timer` has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Restarting { at, .. } => Some(at),
            Phase::Stopping { deadline, .. } => deadline,
            _ => None,
        }
    }

    /// `(state, sub_state)` as shown to users.
    pub fn state_names(&self, svc: &Service) -> (&'static str, String) {
        match &self.phase {
            Phase::Inactive => ("inactive", "dead".into()),
            Phase::Waiting => ("starting", "waiting".into()),
            Phase::Spawning { .. } => ("starting", "spawning".into()),
            Phase::Running { .. } => ("running", "running".into()),
            Phase::Stopping {
                deadline: Some(_), ..
            } => ("stopping", signal_word(svc.stop_signal)),
            Phase::Stopping { deadline: None, .. } => ("stopping", "kill".into()),
            Phase::Restarting { .. } => ("restarting", "backoff".into()),
            Phase::Exited => ("exited", "success".into()),
            Phase::Failed(f) => ("failed", f.sub_state().into()),
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

    /// Operator `start`: want the unit up; it is spawned once its dependencies allow.
    pub fn start(&mut self, now: Now) {
        self.want_up = true;
        match &mut self.phase {
            Phase::Inactive | Phase::Exited | Phase::Failed(_) | Phase::Restarting { .. } => {
                self.reset_budget();
                self.enter(Phase::Waiting, now);
            }
            Phase::Stopping { then, .. } => *then = AfterStop::Start,
            Phase::Waiting | Phase::Spawning { .. } | Phase::Running { .. } => {}
        }
    }

    /// Operator `restart`: like start, but a running process is stopped first.
    pub fn restart(&mut self, now: Now, svc: &Service) -> Vec<Action> {
        if matches!(self.phase, Phase::Running { .. }) {
            self.want_up = true;
            self.reset_budget();
            return self.begin_stop(now, svc, AfterStop::Start);
        }
        self.start(now);
        Vec::new()
    }

    /// Operator `stop` (or shutdown, or removal): want the unit down. A running process
    /// is not signalled here: the daemon calls `begin_stop` once the units ordered after
    /// this one have stopped.
    pub fn stop(&mut self, now: Now) {
        self.want_up = false;
        match &mut self.phase {
            Phase::Waiting | Phase::Restarting { .. } => self.enter(Phase::Inactive, now),
            Phase::Stopping { then, .. } if *then == AfterStop::Start => *then = AfterStop::Rest,
            _ => {}
        }
    }

    /// Send the stop signal to a running unit (or do nothing if it is not running).
    pub fn begin_stop(&mut self, now: Now, svc: &Service, then: AfterStop) -> Vec<Action> {
        let Phase::Running { pid, .. } = self.phase else {
            return Vec::new();
        };
        self.enter(
            Phase::Stopping {
                pid,
                deadline: Some(now.mono + svc.stop_timeout),
                then,
            },
            now,
        );
        vec![
            Action::SignalGroup {
                pgid: pid,
                signal: svc.stop_signal,
            },
            // A stopped (SIGSTOP) process only sees the stop signal once continued.
            Action::SignalGroup {
                pgid: pid,
                signal: Signal::SIGCONT,
            },
        ]
    }

    /// Dependencies allow the start: spawn, unless the start limit is exhausted.
    pub fn begin_spawn(&mut self, now: Now, svc: &Service) -> Vec<Action> {
        if self.phase != Phase::Waiting {
            return Vec::new();
        }
        let limit = &svc.start_limit;
        while let Some(first) = self.starts.front() {
            if now.mono.duration_since(*first) >= limit.interval {
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
        self.enter(Phase::Spawning { early_exit: None }, now);
        vec![Action::Spawn]
    }

    /// The spawner confirmed that the service program is executing as `pid`.
    pub fn spawned(&mut self, pid: i32, now: Now, svc: &Service) -> Vec<Action> {
        let Phase::Spawning { early_exit } = self.phase else {
            return Vec::new();
        };
        self.enter(
            Phase::Running {
                pid,
                started: now.mono,
            },
            now,
        );
        if let Some((early_pid, status)) = early_exit
            && early_pid == pid
        {
            return self.exited(pid, status, now, svc);
        }
        if !self.want_up {
            return self.begin_stop(now, svc, AfterStop::Rest);
        }
        Vec::new()
    }

    /// The spawner failed before the service program ran.
    pub fn spawn_failed(&mut self, message: String, now: Now, svc: &Service) -> Vec<Action> {
        if !matches!(self.phase, Phase::Spawning { .. }) {
            return Vec::new();
        }
        let failure = Failure::Spawn(message);
        if !self.want_up {
            self.enter(Phase::Inactive, now);
        } else if matches!(
            svc.restart,
            RestartPolicy::OnFailure | RestartPolicy::Always
        ) {
            self.schedule_restart(now, svc);
        } else {
            self.want_up = false;
            self.enter(Phase::Failed(failure), now);
        }
        Vec::new()
    }

    /// The reaper saw `pid` end.
    pub fn exited(&mut self, pid: i32, status: ExitStatus, now: Now, svc: &Service) -> Vec<Action> {
        match &mut self.phase {
            Phase::Spawning { early_exit } => {
                *early_exit = Some((pid, status));
                Vec::new()
            }
            Phase::Running { pid: p, started } if *p == pid => {
                let uptime = now.mono.duration_since(*started);
                self.last_exit = Some((status, now.wall));
                self.last_exit_oom = std::mem::take(&mut self.oom_next);
                if uptime >= svc.restart_reset_after {
                    self.backoff_step = 0;
                }
                self.after_exit(status, now, svc);
                vec![kill_leftovers(pid)]
            }
            Phase::Stopping { pid: p, then, .. } if *p == pid => {
                let then = then.clone();
                self.last_exit = Some((status, now.wall));
                self.last_exit_oom = std::mem::take(&mut self.oom_next);
                match then {
                    AfterStop::Rest => self.enter(Phase::Inactive, now),
                    AfterStop::Start => self.enter(Phase::Waiting, now),
                    AfterStop::Fail(f) => self.enter(Phase::Failed(f), now),
                }
                vec![kill_leftovers(pid)]
            }
            _ => Vec::new(),
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
        let at = now.plus(delay);
        self.enter(
            Phase::Restarting {
                at: at.mono,
                at_wall: at.wall,
            },
            now,
        );
    }

    /// A deadline passed: a backoff ended or a stop timed out.
    pub fn on_timer(&mut self, now: Now) -> Vec<Action> {
        match &mut self.phase {
            Phase::Restarting { at, .. } if *at <= now.mono => {
                self.enter(Phase::Waiting, now);
                Vec::new()
            }
            Phase::Stopping { pid, deadline, .. } if deadline.is_some_and(|d| d <= now.mono) => {
                *deadline = None;
                self.since = now.wall;
                vec![Action::SignalGroup {
                    pgid: *pid,
                    signal: Signal::SIGKILL,
                }]
            }
            _ => Vec::new(),
        }
    }

    /// Operator `reset-failed`: forget the failure and the restart budget.
    pub fn reset_failed(&mut self, now: Now) {
        if matches!(self.phase, Phase::Failed(_)) {
            self.enter(Phase::Inactive, now);
        }
        self.reset_budget();
    }

    /// A unit this one requires failed or was stopped: stop (if running) and end failed.
    pub fn dependency_lost(&mut self, why: String, now: Now, svc: &Service) -> Vec<Action> {
        self.want_up = false;
        let failure = Failure::Dependency(why);
        match self.phase {
            Phase::Running { .. } => self.begin_stop(now, svc, AfterStop::Fail(failure)),
            Phase::Waiting | Phase::Restarting { .. } => {
                self.enter(Phase::Failed(failure), now);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }
}

/// Whatever the main process left in its process group dies with it.
fn kill_leftovers(pid: i32) -> Action {
    Action::SignalGroup {
        pgid: pid,
        signal: Signal::SIGKILL,
    }
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
mod tests {
    use super::*;
    use crate::supervise::test_service;

    fn t0() -> Now {
        Now::read()
    }

    fn running(m: &mut Machine, now: Now, svc: &Service, pid: i32) {
        m.start(now);
        assert_eq!(m.begin_spawn(now, svc), vec![Action::Spawn]);
        m.spawned(pid, now, svc);
        assert_eq!(m.pid(), Some(pid));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let ms = Duration::from_millis;
        assert_eq!(backoff_delay(ms(100), ms(1000), 0), ms(100));
        assert_eq!(backoff_delay(ms(100), ms(1000), 1), ms(200));
        assert_eq!(backoff_delay(ms(100), ms(1000), 3), ms(800));
        assert_eq!(backoff_delay(ms(100), ms(1000), 4), ms(1000));
        assert_eq!(backoff_delay(ms(100), ms(1000), 200), ms(1000));
    }

    #[test]
    fn crash_restarts_with_growing_delay_then_hits_start_limit() {
        let mut svc = test_service();
        svc.start_limit.burst = 3;
        svc.start_limit.interval = Duration::from_secs(60);
        let now = t0();
        let mut m = Machine::new(now);
        running(&mut m, now, &svc, 10);
        let mut t = now;
        let mut delays = Vec::new();
        for pid in 10..12 {
            t = t.plus(Duration::from_millis(5));
            m.exited(pid, ExitStatus::Code(1), t, &svc);
            let Phase::Restarting { at, .. } = *m.phase() else {
                panic!("expected restarting, got {:?}", m.phase())
            };
            delays.push(at - t.mono);
            t = Now {
                mono: at,
                wall: t.wall,
            };
            m.on_timer(t);
            assert_eq!(m.begin_spawn(t, &svc), vec![Action::Spawn]);
            m.spawned(pid + 1, t, &svc);
        }
        assert_eq!(
            delays,
            vec![Duration::from_millis(100), Duration::from_millis(200)]
        );
        m.exited(12, ExitStatus::Code(1), t, &svc);
        let Phase::Restarting { at, .. } = *m.phase() else {
            panic!()
        };
        let t = Now {
            mono: at,
            wall: t.wall,
        };
        m.on_timer(t);
        assert!(m.begin_spawn(t, &svc).is_empty());
        assert_eq!(m.state_names(&svc), ("failed", "start-limit".to_string()));
        assert_eq!(m.restarts(), 2, "the refused third restart did not happen");
        // The operator acts: a fresh budget.
        m.restart(t, &svc);
        assert_eq!(m.begin_spawn(t, &svc), vec![Action::Spawn]);
        assert_eq!(m.restarts(), 0);
    }

    #[test]
    fn backoff_resets_after_stable_uptime() {
        let svc = test_service();
        let now = t0();
        let mut m = Machine::new(now);
        running(&mut m, now, &svc, 1);
        m.exited(1, ExitStatus::Code(1), now, &svc);
        m.on_timer(now.plus(Duration::from_secs(1)));
        m.begin_spawn(now.plus(Duration::from_secs(1)), &svc);
        m.spawned(2, now.plus(Duration::from_secs(1)), &svc);
        let later = now.plus(Duration::from_secs(1) + svc.restart_reset_after);
        m.exited(2, ExitStatus::Code(1), later, &svc);
        let Phase::Restarting { at, .. } = *m.phase() else {
            panic!()
        };
        assert_eq!(at - later.mono, svc.restart_delay);
    }

    #[test]
    fn policies_decide_restart() {
        let now = t0();
        let cases = [
            (RestartPolicy::No, ExitStatus::Code(1), "failed"),
            (RestartPolicy::No, ExitStatus::Code(0), "exited"),
            (RestartPolicy::OnFailure, ExitStatus::Code(0), "exited"),
            (RestartPolicy::OnFailure, ExitStatus::Code(3), "restarting"),
            (
                RestartPolicy::OnFailure,
                ExitStatus::Signal(9),
                "restarting",
            ),
            (RestartPolicy::OnAbnormal, ExitStatus::Code(3), "failed"),
            (
                RestartPolicy::OnAbnormal,
                ExitStatus::Signal(11),
                "restarting",
            ),
            (RestartPolicy::Always, ExitStatus::Code(0), "restarting"),
        ];
        for (policy, status, want) in cases {
            let mut svc = test_service();
            svc.restart = policy;
            let mut m = Machine::new(now);
            running(&mut m, now, &svc, 5);
            m.exited(5, status, now, &svc);
            assert_eq!(m.state_names(&svc).0, want, "{policy:?} {status:?}");
        }
    }

    #[test]
    fn oom_kill_explains_the_exit_and_follows_the_policy() {
        let mut svc = test_service();
        svc.restart = RestartPolicy::No;
        let now = t0();
        let mut m = Machine::new(now);
        running(&mut m, now, &svc, 5);
        m.record_oom_kill();
        m.exited(5, ExitStatus::Signal(9), now, &svc);
        assert_eq!(m.state_names(&svc), ("failed", "oom-killed".to_string()));
        assert!(m.last_exit_oom());
        assert_eq!(m.oom_kills(), 1);
        svc.restart = RestartPolicy::OnFailure;
        m.start(now);
        m.begin_spawn(now, &svc);
        m.spawned(6, now, &svc);
        m.record_oom_kill();
        m.exited(6, ExitStatus::Signal(9), now, &svc);
        assert_eq!(
            m.state_names(&svc).0,
            "restarting",
            "an OOM kill is a failure for on-failure"
        );
        assert_eq!(m.oom_kills(), 2);
    }

    #[test]
    fn success_exit_codes_count_as_success() {
        let mut svc = test_service();
        svc.success_exit_codes = vec![0, 42];
        let now = t0();
        let mut m = Machine::new(now);
        running(&mut m, now, &svc, 5);
        m.exited(5, ExitStatus::Code(42), now, &svc);
        assert_eq!(m.state_names(&svc).0, "exited");
    }

    #[test]
    fn stop_signals_then_kills_after_timeout() {
        let svc = test_service();
        let now = t0();
        let mut m = Machine::new(now);
        running(&mut m, now, &svc, 7);
        m.stop(now);
        let acts = m.begin_stop(now, &svc, AfterStop::Rest);
        assert_eq!(
            acts[0],
            Action::SignalGroup {
                pgid: 7,
                signal: Signal::SIGTERM
            }
        );
        assert_eq!(m.state_names(&svc), ("stopping", "term".to_string()));
        assert!(m.on_timer(now).is_empty(), "not yet due");
        let due = now.plus(svc.stop_timeout);
        assert_eq!(
            m.on_timer(due),
            vec![Action::SignalGroup {
                pgid: 7,
                signal: Signal::SIGKILL
            }]
        );
        assert_eq!(m.deadline(), None);
        m.exited(7, ExitStatus::Signal(9), due, &svc);
        assert_eq!(m.state_names(&svc).0, "inactive");
        assert!(!m.want_up());
    }

    #[test]
    fn operator_stop_never_restarts() {
        let mut svc = test_service();
        svc.restart = RestartPolicy::Always;
        let now = t0();
        let mut m = Machine::new(now);
        running(&mut m, now, &svc, 7);
        m.stop(now);
        m.begin_stop(now, &svc, AfterStop::Rest);
        m.exited(7, ExitStatus::Signal(15), now, &svc);
        assert_eq!(m.state_names(&svc).0, "inactive");
    }

    #[test]
    fn exit_seen_before_spawn_outcome_is_not_lost() {
        let svc = test_service();
        let now = t0();
        let mut m = Machine::new(now);
        m.start(now);
        m.begin_spawn(now, &svc);
        m.exited(9, ExitStatus::Code(2), now, &svc);
        m.spawned(9, now, &svc);
        assert_eq!(m.state_names(&svc).0, "restarting");
        assert_eq!(m.last_exit().map(|e| e.0), Some(ExitStatus::Code(2)));
    }

    #[test]
    fn spawn_error_follows_policy() {
        let mut svc = test_service();
        svc.restart = RestartPolicy::No;
        let now = t0();
        let mut m = Machine::new(now);
        m.start(now);
        m.begin_spawn(now, &svc);
        m.spawn_failed("chdir /nope: ENOENT".into(), now, &svc);
        assert_eq!(m.state_names(&svc), ("failed", "spawn-error".to_string()));
    }

    #[test]
    fn stop_while_spawning_stops_once_spawned() {
        let svc = test_service();
        let now = t0();
        let mut m = Machine::new(now);
        m.start(now);
        m.begin_spawn(now, &svc);
        m.stop(now);
        let acts = m.spawned(4, now, &svc);
        assert_eq!(
            acts[0],
            Action::SignalGroup {
                pgid: 4,
                signal: Signal::SIGTERM
            }
        );
        assert_eq!(m.state_names(&svc).0, "stopping");
    }

    #[test]
    fn restart_of_running_unit_stops_then_waits_to_start() {
        let svc = test_service();
        let now = t0();
        let mut m = Machine::new(now);
        running(&mut m, now, &svc, 4);
        m.restart(now, &svc);
        m.exited(4, ExitStatus::Signal(15), now, &svc);
        assert_eq!(m.state_names(&svc), ("starting", "waiting".to_string()));
    }

    #[test]
    fn dependency_loss_stops_and_fails() {
        let svc = test_service();
        let now = t0();
        let mut m = Machine::new(now);
        running(&mut m, now, &svc, 4);
        m.dependency_lost("required unit db failed".into(), now, &svc);
        m.exited(4, ExitStatus::Signal(15), now, &svc);
        assert_eq!(m.state_names(&svc), ("failed", "dependency".to_string()));
    }
}
