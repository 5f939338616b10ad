//! The control protocol spoken over supd's Unix socket: one JSON object per line in
//! each direction. A client sends exactly one `Request`; the server answers with one
//! `Reply` line, or for `logs` with zero or more `log` lines followed by `end` (with
//! `follow`, `log` lines keep coming until the client hangs up).
//!
//! Field names here are the stable contract documented in docs/protocol.md and used by
//! `supctl status --json`; add fields, never rename them.

use serde::{Deserialize, Serialize};

/// Bumped when a request or reply changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line the server reads; longer ones get a `bad-request` error.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version the client speaks; must equal `PROTOCOL_VERSION`.
    pub v: u32,
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Command {
    /// Status of the named units, or of all units when `units` is empty.
    Status {
        #[serde(default)]
        units: Vec<String>,
        /// Without the fields that cost supd a read per unit (the service's pid,
        /// cgroup usage): what the status table shows, fast for a thousand units.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        brief: bool,
    },
    Start {
        units: Vec<String>,
        #[serde(default)]
        wait: bool,
    },
    Stop {
        units: Vec<String>,
        #[serde(default)]
        wait: bool,
    },
    Restart {
        units: Vec<String>,
        #[serde(default)]
        wait: bool,
    },
    ResetFailed {
        units: Vec<String>,
    },
    /// Discard stopped image units' writable layers (docs/images.md).
    Reset {
        units: Vec<String>,
    },
    /// Allow the units to start again (`now`: and start them).
    Enable {
        units: Vec<String>,
        #[serde(default)]
        now: bool,
    },
    /// Keep the units stopped, across supd's restarts too; stops them now.
    Disable {
        units: Vec<String>,
        /// Accepted for systemctl's habit; a disable always stops the units.
        #[serde(default)]
        now: bool,
    },
    /// Re-read the unit directory and apply the difference.
    Reload {
        #[serde(default)]
        dry_run: bool,
    },
    /// Stop every unit, then power the machine off (supd as PID 1) or exit.
    Poweroff,
    /// Stop every unit, then reboot the machine (supd as PID 1) or exit.
    Reboot,
    /// How exposed the named units (or all) leave the host and supd.
    Audit {
        #[serde(default)]
        units: Vec<String>,
    },
    /// The last `lines` log lines of a unit; with `follow`, then every new line.
    Logs {
        unit: String,
        #[serde(default = "default_log_lines")]
        lines: usize,
        #[serde(default)]
        follow: bool,
        /// Only lines at or after this time (RFC 3339).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
        /// Only lines at or before this time (RFC 3339).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<String>,
        /// Only lines containing this text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grep: Option<String>,
    },
    /// A live stream of events about the named units (or all), one `Reply::Event`
    /// each, until the client hangs up.
    Events {
        #[serde(default)]
        units: Vec<String>,
    },
    /// Send `signal` (a name such as `HUP`/`SIGHUP`, or a number) to the unit's
    /// main process, or with `all` to every process of its cgroup.
    Kill {
        unit: String,
        #[serde(default = "default_kill_signal")]
        signal: String,
        #[serde(default)]
        all: bool,
    },
    /// Run `argv` inside the unit's running container. The request line carries
    /// the command's stdin, stdout and stderr as three descriptors (SCM_RIGHTS);
    /// answered with `exit` once the command has ended.
    Exec {
        unit: String,
        argv: Vec<String>,
        /// The descriptors are a terminal: the command gets it as its controlling tty.
        #[serde(default)]
        tty: bool,
        /// Run as this user (name or uid, looked up in the container) instead of
        /// the service's.
        #[serde(default)]
        user: Option<String>,
        /// `KEY=VALUE` added to (or replacing in) the service's environment.
        #[serde(default)]
        env: Vec<String>,
        /// Working directory instead of the service's.
        #[serde(default)]
        workdir: Option<String>,
    },
}

fn default_kill_signal() -> String {
    "SIGTERM".to_string()
}

fn default_log_lines() -> usize {
    50
}

impl Command {
    /// Whether the command changes anything (as opposed to only reading state).
    pub fn is_mutating(&self) -> bool {
        !matches!(
            self,
            Command::Status { .. }
                | Command::Logs { .. }
                | Command::Audit { .. }
                | Command::Events { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Reply {
    Status {
        units: Vec<UnitStatus>,
    },
    /// Outcome of start / stop / restart / reset-failed, one entry per named unit.
    Done {
        results: Vec<UnitResult>,
    },
    Reload {
        plan: ReloadPlan,
        /// False for `dry_run`: the plan was computed but nothing was changed.
        applied: bool,
    },
    /// `audit`: one report per unit.
    Audit {
        units: Vec<UnitAudit>,
    },
    Log(LogLine),
    /// One event of an `events` stream.
    Event(Event),
    /// How an `exec`'d command ended: its exit code, or the signal that killed it.
    Exit {
        code: Option<i32>,
        signal: Option<String>,
    },
    /// End of a `logs` reply (never sent while following).
    End,
    Error {
        code: ErrorCode,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The request line was not valid JSON, too long, or named an unknown command.
    BadRequest,
    UnsupportedVersion,
    /// The peer's uid may not use this socket.
    PermissionDenied,
    /// A named unit is not loaded.
    NotFound,
    /// The client took too long to send its request, or `--wait` ran out of time.
    Timeout,
    /// supd is shutting down and accepts no more work.
    ShuttingDown,
    /// Too many clients at once; try again.
    Busy,
    /// The unit has no running process (`exec`, `kill`).
    NotRunning,
    Internal,
}

/// The coarse state of a unit. The names are the wire contract, spelled out here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnitState {
    #[serde(rename = "inactive")]
    Inactive,
    #[serde(rename = "starting")]
    Starting,
    #[serde(rename = "running")]
    Running,
    #[serde(rename = "stopping")]
    Stopping,
    #[serde(rename = "restarting")]
    Restarting,
    #[serde(rename = "exited")]
    Exited,
    #[serde(rename = "failed")]
    Failed,
}

impl UnitState {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitState::Inactive => "inactive",
            UnitState::Starting => "starting",
            UnitState::Running => "running",
            UnitState::Stopping => "stopping",
            UnitState::Restarting => "restarting",
            UnitState::Exited => "exited",
            UnitState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for UnitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user reads in `supctl status`; serialised as-is by `supctl status --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitStatus {
    pub name: String,
    pub description: String,
    /// inactive | starting | running | stopping | restarting | exited | failed
    pub state: UnitState,
    /// Finer detail of the state, e.g. `waiting`, `spawning`, `backoff`, `sigterm`, `sigkill`,
    /// `exit-code`, `signal`, `start-limit`, `spawn-error`, `dependency`.
    pub sub_state: String,
    /// When the unit entered its current state (RFC 3339, UTC).
    pub since: String,
    /// Host pid of the main process, when there is one.
    pub pid: Option<i32>,
    /// Automatic restarts since the operator last started the unit.
    pub restarts: u32,
    pub last_exit: Option<ExitInfo>,
    /// OOM kills since supd loaded the unit.
    #[serde(default)]
    pub oom_kills: u32,
    /// Why the unit is failed (or why it last stopped), in words.
    pub reason: Option<String>,
    /// When the next automatic start is due (state `restarting`).
    pub next_start: Option<String>,
    /// What the operator asked for: `up` or `down`.
    pub want: String,
    /// Short hash of the loaded definition.
    pub hash: String,
    /// Unit file the definition was loaded from.
    pub path: String,
    /// `[container] image` as written, and the manifest digest it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The image's ExposedPorts (`80/tcp`): what it listens on, not published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_ports: Vec<String>,
    /// Set when the file on disk was rejected and the loaded definition kept running.
    pub definition_error: Option<String>,
    /// Where the unit's output is written.
    pub log_file: String,
    /// The unit file on disk is not the one loaded (edited and not yet reloaded,
    /// rejected, or removed).
    #[serde(default)]
    pub disk_differs: bool,
    /// Usage read from the unit's cgroup (absent without cgroups or a process).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// The latest stop did not finish within `stop_timeout` and needed SIGKILL.
    #[serde(default)]
    pub stop_timed_out: bool,
    /// What supd found of this unit at its start, left running by an earlier supd
    /// that did not exit in order (it was killed, and everything found killed).
    #[serde(default)]
    pub leftover: Option<String>,
    /// The unit is ready: dependents may start (running and ready, or a finished job).
    #[serde(default)]
    pub ready: bool,
    /// `starting`, `healthy` or `unhealthy` for a unit with a `[health]` check whose
    /// process runs; null otherwise.
    #[serde(default)]
    pub health: Option<String>,
    /// Failed probes in a row.
    #[serde(default)]
    pub health_failures: u32,
    /// The last probe's output (at most 4096 bytes).
    #[serde(default)]
    pub health_output: Option<String>,
    /// The service's last `STATUS=` (sd_notify).
    #[serde(default)]
    pub status_text: Option<String>,
    /// Networking, for units that are not on the host's network.
    #[serde(default)]
    pub network: Option<NetworkStatus>,
    /// Host pid of the service's main process: `pid` itself, or the service under
    /// the container's init.
    #[serde(default)]
    pub main_pid: Option<i32>,
    /// The same process's pid inside the unit's pid namespace (`NSpid`).
    #[serde(default)]
    pub main_pid_in_container: Option<i32>,
    /// False once the operator disabled the unit (`supctl disable`).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// A unit's network as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NetworkStatus {
    /// `none`, `bridge` or `unit:NAME`.
    pub mode: String,
    /// Its address on each network (bridge mode).
    pub addresses: Vec<NetworkAddress>,
    /// Published ports, `[host_ip:]host_port:container_port/proto`.
    pub ports: Vec<String>,
    /// Extra names on its networks.
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAddress {
    pub network: String,
    pub address: String,
    /// The interface inside the container (`eth0`).
    pub interface: String,
}

impl UnitStatus {
    /// A status with only a name and a state; every other field empty.
    pub fn new(name: &str, state: UnitState) -> Self {
        UnitStatus {
            name: name.to_string(),
            description: String::new(),
            state,
            sub_state: String::new(),
            since: String::new(),
            pid: None,
            restarts: 0,
            last_exit: None,
            oom_kills: 0,
            reason: None,
            next_start: None,
            want: String::new(),
            hash: String::new(),
            path: String::new(),
            image: None,
            exposed_ports: Vec::new(),
            definition_error: None,
            log_file: String::new(),
            disk_differs: false,
            usage: None,
            stop_timed_out: false,
            leftover: None,
            ready: false,
            health: None,
            health_failures: 0,
            health_output: None,
            status_text: None,
            network: None,
            main_pid: None,
            main_pid_in_container: None,
            enabled: true,
        }
    }
}

/// A unit's resource usage against its limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub memory_max: Option<u64>,
    /// CPU time used by the unit since its cgroup was created, in microseconds.
    pub cpu_usage_usec: Option<u64>,
    /// CPU use in percent of one CPU, over the newest window of at least 0.5 s
    /// between readings (any client's); None until there is such a window.
    pub cpu_percent: Option<f64>,
    pub tasks: Option<u64>,
    pub pids_max: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code when the process exited normally.
    pub code: Option<i32>,
    /// Signal name (e.g. `SIGKILL`) when it was killed by a signal.
    pub signal: Option<String>,
    /// The kernel's OOM killer ended it (its cgroup reached `memory_max`).
    #[serde(default)]
    pub oom_killed: bool,
    /// When the exit was observed (RFC 3339, UTC).
    pub at: String,
}

/// A unit's exposure report (`supctl audit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitAudit {
    pub name: String,
    /// 0.0 (every protection) to 10.0 (none).
    pub score: f64,
    /// PERFECT, SAFE, OK, MEDIUM, EXPOSED or UNSAFE (systemd-analyze's scale).
    pub rating: String,
    pub checks: Vec<AuditCheck>,
}

/// One protection of a unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditCheck {
    pub id: String,
    pub description: String,
    pub ok: bool,
    /// What its absence adds to the exposure (0 when `ok`).
    pub exposure: f64,
    /// How to get it, or what the unit has instead.
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitResult {
    pub name: String,
    /// True when the unit reached what was asked (or, without `wait`, the request was accepted).
    pub ok: bool,
    /// State when the reply was sent.
    pub state: UnitState,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadPlan {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub restarted: Vec<String>,
    /// Changed definitions of units that were not running: replaced without a restart.
    #[serde(default)]
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// `file:line:column: message` for each definition that was rejected.
    pub rejected: Vec<String>,
    /// Why units change besides their files: `UNIT: image NAME:TAG is now sha256:...`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// RFC 3339 UTC timestamp with milliseconds.
    pub ts: String,
    /// `stdout` or `stderr`
    pub stream: String,
    pub line: String,
}

// Conversions from the daemon's own types to the wire, at the protocol's edge.

impl From<&crate::supervise::ReloadPlan> for ReloadPlan {
    fn from(p: &crate::supervise::ReloadPlan) -> Self {
        ReloadPlan {
            added: p.added.clone(),
            removed: p.removed.clone(),
            restarted: p.restarted.clone(),
            updated: p.updated.clone(),
            unchanged: p.unchanged.clone(),
            rejected: p.rejected.iter().map(ToString::to_string).collect(),
            images: Vec::new(),
        }
    }
}

impl From<crate::logs::Entry> for LogLine {
    fn from(e: crate::logs::Entry) -> Self {
        LogLine {
            ts: humantime::format_rfc3339_millis(e.at).to_string(),
            stream: e.stream.as_str().to_string(),
            line: e.line,
        }
    }
}

impl UnitAudit {
    pub fn new(name: &str, report: crate::audit::Report) -> Self {
        UnitAudit {
            name: name.to_string(),
            score: report.score,
            rating: report.rating.to_string(),
            checks: report
                .checks
                .into_iter()
                .map(|c| AuditCheck {
                    id: c.id.to_string(),
                    description: c.description.to_string(),
                    ok: c.ok,
                    exposure: c.exposure,
                    hint: c.hint,
                })
                .collect(),
        }
    }
}

/// Something that happened, as `supctl events` streams it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// The unit it is about; none for supd-wide events (reload, dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    /// The unit changed state (a restart shows as `restarting`, with the count).
    State {
        state: UnitState,
        sub_state: String,
        previous: UnitState,
        restarts: u32,
    },
    /// The unit's main process exited.
    Exit {
        pid: i32,
        #[serde(default)]
        code: Option<i32>,
        #[serde(default)]
        signal: Option<String>,
        oom_killed: bool,
    },
    /// A start failed before the service ran.
    StartFailed { error: String },
    /// The health check's verdict changed.
    Health {
        health: String,
        #[serde(default)]
        previous: Option<String>,
    },
    /// The unit directory was read and applied.
    Reload {
        added: Vec<String>,
        removed: Vec<String>,
        restarted: Vec<String>,
        rejected: Vec<String>,
    },
    /// This client fell behind: `count` events were dropped for it.
    Dropped { count: u64 },
}
