//! The words the unit state machine speaks: its phases, the events it is fed, the
//! actions it answers with, and how a process ended.

use std::time::{Duration, Instant, SystemTime};

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
}

impl Failure {
    pub fn sub_state(&self) -> &'static str {
        match self {
            Failure::Exit(ExitStatus::Code(_)) => "exit-code",
            Failure::Exit(ExitStatus::Signal(_)) => "signal",
            Failure::OomKilled => "oom-killed",
            Failure::StartLimit { .. } => "start-limit",
            Failure::Spawn => "spawn-error",
            Failure::RequirementFailed { .. } => "dependency",
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
    /// The spawner is running; the pid is not confirmed yet. Exits of this attempt's
    /// processes that the reaper saw before the spawn outcome arrived (the helper's,
    /// or a service that ended at once) are kept here rather than lost.
    Spawning {
        early_exits: Vec<(i32, ExitStatus)>,
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
    /// Attempt `attempt` failed before the service program ran.
    SpawnFailed { attempt: u64 },
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
    /// Send a signal to the process group led by `pgid` (ESRCH is fine: nothing left).
    Signal { pgid: i32, signal: Signal },
    /// SIGKILL every process in the unit's cgroup (leftovers, or a stop timeout).
    KillCgroup,
    /// The unit has no process any more: empty and remove its cgroup.
    ReleaseCgroup,
}
