//! The words the unit state machine speaks: its phases, the events it is fed, the
//! actions it answers with, and how a process ended.

use std::time::{Duration, Instant, SystemTime};

use crate::unit::OnUnhealthy;

use nix::sys::signal::Signal;

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
    /// The process could not be started; the daemon keeps the error itself (step,
    /// path, errno) and shows it next to this state.
    Spawn,
    /// A unit this one `requires` failed.
    RequirementFailed {
        unit: String,
    },
    /// Not ready within `start_timeout`.
    StartTimeout,
    /// A `notify` service missed its `WATCHDOG=1`.
    Watchdog,
    /// Its health check failed `retries` times in a row.
    Unhealthy,
    /// An `exec_start_pre` command failed.
    StartPre,
}

impl Failure {
    /// Whether `on-abnormal` restarts after this failure (as systemd's: signals,
    /// timeouts, the watchdog; not exit codes).
    pub fn is_abnormal(&self) -> bool {
        matches!(
            self,
            Failure::Exit(ExitStatus::Signal(_))
                | Failure::OomKilled
                | Failure::StartTimeout
                | Failure::Watchdog
                | Failure::Unhealthy
        )
    }

    /// The exit code this failure stands for (`on_failure = "exit"`): the process's
    /// own, 128+N for a signal, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Exit(ExitStatus::Code(c)) => *c,
            Failure::Exit(ExitStatus::Signal(s)) => 128 + s,
            Failure::OomKilled => 128 + libc::SIGKILL,
            _ => 1,
        }
    }

    pub fn sub_state(&self) -> &'static str {
        match self {
            Failure::Exit(ExitStatus::Code(_)) => "exit-code",
            Failure::Exit(ExitStatus::Signal(_)) => "signal",
            Failure::OomKilled => "oom-killed",
            Failure::StartLimit { .. } => "start-limit",
            Failure::Spawn => "spawn-error",
            Failure::RequirementFailed { .. } => "dependency",
            Failure::StartTimeout => "start-timeout",
            Failure::Watchdog => "watchdog",
            Failure::Unhealthy => "unhealthy",
            Failure::StartPre => "start-pre",
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
            Failure::Spawn => write!(f, "could not start"),
            Failure::RequirementFailed { unit } => write!(f, "required unit {unit} failed"),
            Failure::StartTimeout => write!(f, "not ready within start_timeout; killed"),
            Failure::Watchdog => write!(f, "no WATCHDOG=1 within watchdog; killed"),
            Failure::Unhealthy => write!(f, "health check failed; stopped"),
            Failure::StartPre => write!(f, "could not start"),
        }
    }
}

/// What happens once the unit's process is gone (after its `exec_stop_post`
/// commands, if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterStop {
    /// Inactive.
    Rest,
    /// Waiting to start again at once (an operator restart).
    Start,
    /// Failed, not restarted (a requirement failed, an unhealthy unit stopped).
    Fail(Failure),
    /// The process failed: restarted with backoff if the restart policy says so,
    /// else failed.
    Retry(Failure),
    /// The process failed and must come back (`on_unhealthy = "restart"`):
    /// restarted with backoff whatever the policy.
    Restart(Failure),
    /// The process ended successfully: exited (or restarted, with `always`).
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Inactive,
    /// Start wanted; waiting until the units it is ordered after have settled.
    Waiting,
    /// The spawner is running; the pid is not confirmed yet. Exits of this attempt's
    /// processes that the reaper saw before the spawn outcome arrived (the helper's,
    /// or a service that ended at once) are kept here rather than lost, and so is
    /// a READY=1 that overtook the helper's last report (`ready_early`).
    Spawning {
        early_exits: Vec<(i32, ExitStatus)>,
        ready_early: bool,
    },
    /// The service runs but is not ready yet (`notify`, `ready_fd`, a health check
    /// or a `oneshot` job); at `deadline` (`start_timeout`) it has failed.
    Starting {
        pid: i32,
        started: Instant,
        deadline: Option<Instant>,
    },
    /// Ready. A `notify` service with a `watchdog` must ping before `watchdog`.
    Running {
        pid: i32,
        started: Instant,
        watchdog: Option<Instant>,
    },
    /// The stop signal was sent; at `deadline` SIGKILL follows (None once it was sent).
    Stopping {
        pid: i32,
        deadline: Option<Instant>,
        then: AfterStop,
    },
    /// The process is gone; its `exec_stop_post` commands run (until `deadline`),
    /// then `then`.
    Cleaning {
        deadline: Instant,
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

/// The coarse state users see (`supctl status`, `--wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Inactive,
    Starting,
    Running,
    Stopping,
    Restarting,
    Exited,
    Failed,
}

/// Something that happened to the unit, as the fleet tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Want the unit up (operator start, or a dependent's start pulling it in).
    Start,
    /// Want the unit down. A running process is signalled later, by `DependentsDown`.
    Stop,
    /// Operator restart: stop a running process, then start again with a fresh budget.
    Restart,
    /// Operator reset-failed: forget the failure and the restart budget.
    ResetFailed,
    /// Everything it is ordered after has settled and everything it requires is up.
    DependenciesReady,
    /// Everything ordered after it is down: send the stop signal now.
    DependentsDown,
    /// The spawner confirmed attempt `attempt` runs the service as `pid`.
    Spawned { attempt: u64, pid: i32 },
    /// Attempt `attempt` failed before the service program ran (`start_pre`: in one of
    /// its `exec_start_pre` commands).
    SpawnFailed { attempt: u64, start_pre: bool },
    /// The service said it is ready (READY=1, a newline on `ready_fd`, a healthy
    /// probe).
    Ready,
    /// A `notify` service pinged its watchdog.
    WatchdogPing,
    /// EXTEND_TIMEOUT_USEC: the start may take this much longer from now.
    ExtendStart(Duration),
    /// The health check failed `retries` times in a row.
    Unhealthy(OnUnhealthy),
    /// The `exec_stop_post` commands of attempt `attempt` are done.
    StopPostDone { attempt: u64 },
    /// The reaper saw `pid` of start attempt `attempt` end; `oom_killed` if its
    /// cgroup counted an OOM kill.
    Exited {
        attempt: u64,
        pid: i32,
        status: ExitStatus,
        oom_killed: bool,
    },
    /// A deadline passed (backoff over, or stop timeout).
    Timer,
    /// A unit this one requires failed for good.
    RequirementFailed { unit: String },
    /// Kill right away (a second shutdown request).
    KillNow,
}

/// A side effect the daemon performs on the machine's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start attempt number `attempt`; its outcome comes back as `Spawned`/`SpawnFailed`.
    Spawn { attempt: u64 },
    /// Ask the service to stop: `signal`, then SIGCONT (a stopped process only sees
    /// it once continued), to every process of the unit: those in its cgroup
    /// (processes that left the main process group with `setsid`, like postgres'
    /// backends, too) or, without cgroups, the process group `pgid`.
    StopSignal { pgid: i32, signal: Signal },
    /// SIGKILL every process of the unit: its cgroup, and the process group `pgid`
    /// (none when only hooks are left).
    Kill { pgid: Option<i32> },
    /// SIGKILL the process group of a spawn nobody waits for any more (not the cgroup,
    /// which may already be the next attempt's).
    KillStray { pgid: i32 },
    /// The unit has no process any more: empty and remove its cgroup.
    ReleaseCgroup,
    /// Run the `exec_stop_post` commands of attempt `attempt` (reported back with
    /// `StopPostDone`).
    RunStopPost { attempt: u64 },
    /// The unit's process failed (`for_good`: and will not be restarted); the fleet
    /// and the daemon apply `on_failure`.
    Failed { for_good: bool, exit_code: i32 },
}
