//! When a unit counts as started and what happens around its main process: the
//! `type`, readiness, timeouts, hooks and failure actions of `[service]`, and the
//! `[health]` check. systemd's vocabulary where it has one.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use super::names::Named;

/// When the service counts as started (ready).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ServiceType {
    /// Ready once its program was exec'd (or, with a health check and
    /// `ready_on_healthy`, on its first healthy probe).
    Simple,
    /// Ready when it sends `READY=1` to `$NOTIFY_SOCKET`.
    Notify,
    /// Ready when it exits successfully; a job, not a daemon.
    Oneshot,
}

impl Named for ServiceType {
    const VARIANTS: &'static [Self] = &[Self::Simple, Self::Notify, Self::Oneshot];
    const WHAT: &'static str = "service type";

    fn name(self) -> &'static str {
        match self {
            ServiceType::Simple => "simple",
            ServiceType::Notify => "notify",
            ServiceType::Oneshot => "oneshot",
        }
    }
}

/// What else happens when the unit ends `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OnFailure {
    None,
    /// Units that require it are stopped.
    StopDependents,
    /// Units that require it are restarted once it is ready again.
    RestartDependents,
    /// Every unit is stopped and the machine powered off (supd as PID 1) or supd
    /// exits.
    Poweroff,
    /// Every unit is stopped and the machine rebooted (or supd exits).
    Reboot,
    /// Every unit is stopped and supd exits with the unit's exit code (as PID 1: the
    /// machine powers off, the code recorded on the console).
    Exit,
}

impl Named for OnFailure {
    const VARIANTS: &'static [Self] = &[
        Self::None,
        Self::StopDependents,
        Self::RestartDependents,
        Self::Poweroff,
        Self::Reboot,
        Self::Exit,
    ];
    const WHAT: &'static str = "on_failure action";

    fn name(self) -> &'static str {
        match self {
            OnFailure::None => "none",
            OnFailure::StopDependents => "stop-dependents",
            OnFailure::RestartDependents => "restart-dependents",
            OnFailure::Poweroff => "poweroff",
            OnFailure::Reboot => "reboot",
            OnFailure::Exit => "exit",
        }
    }
}

/// The lifecycle keys of `[service]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lifecycle {
    /// `type`.
    pub kind: ServiceType,
    /// s6-style readiness: ready when the service writes a newline to this fd.
    pub ready_fd: Option<i32>,
    /// Not ready within this time: failed (the restart policy applies). None: no
    /// limit.
    pub start_timeout: Option<Duration>,
    /// `notify`: the service must send `WATCHDOG=1` at least this often.
    pub watchdog: Option<Duration>,
    /// `oneshot`: after a successful run the unit stays up (`exited/active`), so a
    /// later start does not run it again.
    pub remain_after_exit: bool,
    /// Commands run in order inside the unit's container before the service; a
    /// failure fails the start.
    pub exec_start_pre: Vec<Vec<String>>,
    /// Commands run in order after the service ended (also after a failed start).
    pub exec_stop_post: Vec<Vec<String>>,
    pub on_failure: OnFailure,
    /// Derived from `[health]`: a `simple` service becomes ready on its first
    /// healthy probe.
    pub ready_on_health: bool,
}

impl Lifecycle {
    /// systemd's `DefaultTimeoutStartSec`, for units that have something to wait for.
    pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(90);

    pub fn is_default(&self) -> bool {
        *self == Lifecycle::default()
    }

    /// Whether the service must signal readiness (rather than being ready on exec).
    pub fn waits_for_ready(&self) -> bool {
        match self.kind {
            ServiceType::Notify | ServiceType::Oneshot => true,
            ServiceType::Simple => self.ready_fd.is_some() || self.ready_on_health,
        }
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            kind: ServiceType::Simple,
            ready_fd: None,
            start_timeout: None,
            watchdog: None,
            remain_after_exit: false,
            exec_start_pre: Vec::new(),
            exec_stop_post: Vec::new(),
            on_failure: OnFailure::None,
            ready_on_health: false,
        }
    }
}

/// How a health probe checks the service, from inside its container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Probe {
    /// A command run in the unit's namespaces, cgroup, identity and seccomp; exit
    /// code 0 is healthy.
    Exec(Vec<String>),
    /// A TCP connection from the unit's network namespace.
    Tcp(SocketAddr),
    /// An HTTP GET from the unit's network namespace; 2xx and 3xx are healthy.
    Http {
        addr: SocketAddr,
        /// The `Host` header.
        host: String,
        /// Path and query.
        path: String,
    },
}

/// What to do when the service turned unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OnUnhealthy {
    /// Kill it and start it again (counted as a failure: backoff and the start limit
    /// apply).
    Restart,
    /// Stop it (it ends failed).
    Stop,
    /// Only show it.
    None,
}

impl Named for OnUnhealthy {
    const VARIANTS: &'static [Self] = &[Self::Restart, Self::Stop, Self::None];
    const WHAT: &'static str = "on_unhealthy action";

    fn name(self) -> &'static str {
        match self {
            OnUnhealthy::Restart => "restart",
            OnUnhealthy::Stop => "stop",
            OnUnhealthy::None => "none",
        }
    }
}

/// The `[health]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthSpec {
    pub probe: Probe,
    /// Time between the end of a probe and the start of the next.
    pub interval: Duration,
    /// The same until the first healthy probe (default: `interval`), so a
    /// service whose first probe came too early is not kept waiting a whole
    /// `interval` (Docker's `start_interval`).
    pub start_interval: Duration,
    /// A probe still running after this is killed and counts as failed.
    pub timeout: Duration,
    /// Consecutive failures that make the service unhealthy.
    pub retries: u32,
    /// Failures during this time after a start do not count.
    pub start_period: Duration,
    pub on_unhealthy: OnUnhealthy,
    /// A `simple` service becomes ready on its first healthy probe.
    pub ready_on_healthy: bool,
}

impl HealthSpec {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_RETRIES: u32 = 3;
}
