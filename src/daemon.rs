//! The supd event loop: the one owner of all unit state.
//!
//! Everything that happens (an exit, a spawn outcome, a control request, a signal, a
//! timer) becomes an event handled here in turn; the pure `Fleet` decides, and this
//! module performs the resulting actions (spawning in blocking threads, signalling
//! process groups). Nothing here polls: the loop sleeps until an event or the next
//! deadline any unit asked for.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::cgroup::units::UnitCgroups;
use crate::control::proto::{Command, ErrorCode, ExitInfo, Reply, UnitResult, UnitStatus};
use crate::control::server::{self, Answer, Query};
use crate::logs::{self, SharedLog};
use crate::reaper::{self, Exit, Registry};
use crate::spawn::{self, SpawnError, Spawned};
use crate::supervise::{Action, ExitStatus, Fleet, Now, Phase, Slot, UnitAction};
use crate::unit::{self, Loaded, UnitError};
use crate::watch as unit_watch;

#[derive(Debug, Clone)]
pub struct Config {
    pub units_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Name of supd's cgroup subtree (below supd's own cgroup).
    pub cgroup_root: String,
    /// Copy every line of unit output to supd's stderr (the console, as PID 1).
    pub forward_output: bool,
}

/// How supd's run ended: what the machine should do next (PID 1) and whether a
/// second shutdown request asked to hurry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub halt: crate::pid1::Halt,
    pub hurried: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot read units directory {path}: {source}")]
    UnitsDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot install handler for {signal}: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
}

/// An outcome from a spawner thread.
#[derive(Debug)]
struct SpawnOutcome {
    unit: String,
    spawn_gen: u64,
    result: Result<Spawned, (Option<i32>, SpawnError)>,
}

struct Daemon {
    config: Config,
    fleet: Fleet,
    /// Units whose file failed to load and that have no running definition.
    broken: BTreeMap<String, UnitError>,
    logs: HashMap<String, SharedLog>,
    registry: Registry,
    outcomes: mpsc::UnboundedSender<SpawnOutcome>,
    changes: watch::Sender<u64>,
    shutting_down: bool,
    ending: Ending,
    cgroups: UnitCgroups,
    /// Fingerprint of each loaded unit file's bytes, to tell when disk differs.
    fingerprints: HashMap<String, u64>,
}

/// Run supd until a shutdown signal has stopped every unit.
pub async fn run(config: Config) -> Result<Ending, DaemonError> {
    let loaded = read_units(&config.units_dir)?;
    let logs_dir = config.state_dir.join("logs");
    std::fs::create_dir_all(&logs_dir).map_err(|source| DaemonError::StateDir {
        path: logs_dir.clone(),
        source,
    })?;
    let socket_path = config.state_dir.join(crate::control::client::SOCKET_NAME);
    let listener = server::bind(&socket_path).map_err(|source| DaemonError::Socket {
        path: socket_path.clone(),
        source,
    })?;

    let registry = Registry::default();
    let (exit_tx, mut exits) = mpsc::unbounded_channel::<Exit>();
    let (outcome_tx, mut outcomes) = mpsc::unbounded_channel::<SpawnOutcome>();
    let (query_tx, mut queries) = mpsc::unbounded_channel::<Query>();
    let (changes, changes_rx) = watch::channel(0u64);
    let mut sigterm = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut sigint = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut sighup = listen(SignalKind::hangup(), "SIGHUP")?;
    tokio::spawn(reaper::run(registry.clone(), exit_tx));
    let server_task = tokio::spawn(server::serve(
        listener,
        server::Handle {
            queries: query_tx,
            changes: changes_rx,
            owner_uid: nix::unistd::geteuid().as_raw(),
        },
    ));

    let cgroups = UnitCgroups::new(&config.cgroup_root);
    let mut daemon = Daemon {
        cgroups,
        config,
        fleet: Fleet::default(),
        broken: BTreeMap::new(),
        logs: HashMap::new(),
        registry,
        outcomes: outcome_tx,
        changes,
        shutting_down: false,
        ending: Ending {
            halt: crate::pid1::Halt::Poweroff,
            hurried: false,
        },
        fingerprints: HashMap::new(),
    };
    daemon.apply_reload(&loaded, false);
    // Changes on disk are picked up by themselves; SIGHUP and `supctl reload` remain
    // for filesystems where inotify sees nothing (network and virtual shares).
    let (_watcher, mut changes_on_disk) = match unit_watch::watch(&daemon.config.units_dir) {
        Ok((w, rx)) => (Some(w), Some(rx)),
        Err(e) => {
            tracing::warn!(
                "cannot watch {}: {e}; reload with SIGHUP or `supctl reload`",
                daemon.config.units_dir.display()
            );
            (None, None)
        }
    };
    let mut debounce = unit_watch::Debounce::default();
    tracing::info!(units = daemon.fleet.slots().len(), socket = %socket_path.display(), "supd started");

    loop {
        let now = Now::read();
        let actions = daemon.fleet.reconcile(now);
        daemon.execute(actions);
        daemon.release_cgroups();
        daemon.changes.send_modify(|v| *v = v.wrapping_add(1));
        if daemon.shutting_down && daemon.fleet.all_settled_down() {
            break;
        }
        let deadline = daemon
            .fleet
            .next_deadline()
            .map(tokio::time::Instant::from_std)
            .into_iter()
            .chain(debounce.deadline())
            .min();
        tokio::select! {
            Some(exit) = exits.recv() => daemon.on_exit(exit),
            Some(outcome) = outcomes.recv() => daemon.on_spawn_outcome(outcome),
            Some(query) = queries.recv() => daemon.on_query(query),
            _ = sigterm.recv() => daemon.on_shutdown_signal("SIGTERM", crate::pid1::Halt::Poweroff),
            // Ctrl-Alt-Del arrives as SIGINT at PID 1: reboot, as other inits do.
            _ = sigint.recv() => daemon.on_shutdown_signal("SIGINT", crate::pid1::Halt::Reboot),
            _ = sighup.recv() => daemon.reload_from_disk(false).map(drop).unwrap_or(()),
            Some(()) = next_change(&mut changes_on_disk) => debounce.event(tokio::time::Instant::now()),
            _ = sleep_until(deadline) => {
                let actions = daemon.fleet.on_timers(Now::read());
                daemon.execute(actions);
                if debounce.take_due(tokio::time::Instant::now()) && !daemon.shutting_down {
                    let _ = daemon.reload_from_disk(false);
                }
            }
        }
    }
    server_task.abort();
    let _ = std::fs::remove_file(&socket_path);
    kill_stray_children();
    daemon.cgroups.teardown();
    tracing::info!("all units stopped; supd exits");
    Ok(daemon.ending)
}

fn listen(
    kind: SignalKind,
    name: &'static str,
) -> Result<tokio::signal::unix::Signal, DaemonError> {
    signal(kind).map_err(|source| DaemonError::Signal {
        signal: name,
        source,
    })
}

/// The next wake-up from the directory watcher (never, without one).
async fn next_change(rx: &mut Option<mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn read_units(dir: &Path) -> Result<Loaded, DaemonError> {
    let loaded = unit::load_dir(dir).map_err(|source| DaemonError::UnitsDir {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in &loaded.errors {
        tracing::error!(unit = %e.unit, "unit rejected: {e}");
    }
    Ok(loaded)
}

impl Daemon {
    fn on_shutdown_signal(&mut self, name: &str, halt: crate::pid1::Halt) {
        if self.shutting_down {
            self.ending.hurried = true;
            tracing::warn!(
                signal = name,
                "second shutdown signal: killing every unit now"
            );
            let actions = self.fleet.kill_all();
            self.execute(actions);
            return;
        }
        tracing::info!(
            signal = name,
            "shutting down: stopping all units in reverse dependency order"
        );
        self.shutting_down = true;
        self.ending.halt = halt;
        self.fleet.stop_all(Now::read());
    }

    fn on_exit(&mut self, exit: Exit) {
        let main_pid = self.fleet.get(&exit.owner).and_then(|s| s.machine.pid());
        if main_pid == Some(exit.pid) {
            tracing::info!(unit = %exit.owner, pid = exit.pid, status = %exit.status, "process exited");
        } else {
            // The spawn helper of a container, or a process that was already replaced.
            tracing::debug!(unit = %exit.owner, pid = exit.pid, status = %exit.status, "helper process exited");
        }
        let oom = main_pid == Some(exit.pid) && self.cgroups.new_oom_kill(&exit.owner);
        if oom {
            tracing::warn!(unit = %exit.owner, pid = exit.pid, "OOM-killed: the unit's cgroup reached memory_max");
        }
        let actions = self
            .fleet
            .on_exit(&exit.owner, exit.pid, exit.status, oom, Now::read());
        self.execute(actions);
    }

    fn on_spawn_outcome(&mut self, outcome: SpawnOutcome) {
        let now = Now::read();
        let actions = match outcome.result {
            Ok(spawned) => {
                let pid = spawned.pid;
                let log = self.log_for(&outcome.unit);
                tokio::spawn(logs::pump(spawned.stdout, "stdout", log.clone()));
                tokio::spawn(logs::pump(spawned.stderr, "stderr", log));
                if !self
                    .fleet
                    .is_current_spawn(&outcome.unit, outcome.spawn_gen)
                {
                    tracing::warn!(unit = %outcome.unit, pid, "spawned process no longer wanted; killing it");
                    signal_group(&outcome.unit, pid, Signal::SIGKILL);
                    return;
                }
                tracing::info!(unit = %outcome.unit, pid, "started");
                let mut actions = self
                    .fleet
                    .on_spawned(&outcome.unit, outcome.spawn_gen, pid, now);
                if let Some(status) = spawned.early_exit {
                    let oom = self.cgroups.new_oom_kill(&outcome.unit);
                    actions.extend(self.fleet.on_exit(&outcome.unit, pid, status, oom, now));
                }
                actions
            }
            Err((_, error)) => {
                tracing::error!(unit = %outcome.unit, "start failed: {error}");
                self.log_for(&outcome.unit)
                    .append("stderr", &format!("[supd] start failed: {error}"));
                self.fleet
                    .on_spawn_failed(&outcome.unit, outcome.spawn_gen, error.to_string(), now)
            }
        };
        self.execute(actions);
    }

    fn execute(&mut self, actions: Vec<UnitAction>) {
        for UnitAction {
            unit,
            action,
            spawn_gen,
        } in actions
        {
            match action {
                Action::Spawn => self.spawn(unit, spawn_gen),
                Action::SignalGroup { pgid, signal } => {
                    signal_group(&unit, pgid, signal);
                    // SIGKILL is for everything of the unit, not only its group.
                    if signal == Signal::SIGKILL {
                        self.cgroups.kill(&unit);
                    }
                }
            }
        }
    }

    /// Units whose process is gone (or that were removed) give up their cgroup.
    fn release_cgroups(&mut self) {
        for unit in self.cgroups.live_units() {
            let gone = self
                .fleet
                .get(&unit)
                .is_none_or(|s| s.machine.is_settled_down());
            if gone {
                self.cgroups.settled(&unit);
            }
        }
    }

    /// Start the unit's process in a blocking thread; the outcome comes back as an event.
    fn spawn(&mut self, unit: String, spawn_gen: u64) {
        let Some(slot) = self.fleet.get(&unit) else {
            return;
        };
        let spec = slot.spec.clone();
        self.log_for(&unit).set_limits(spec.logs);
        let registry = self.registry.clone();
        let outcomes = self.outcomes.clone();
        let state_dir = self.config.state_dir.clone();
        let cgroup = self.cgroups.for_spawn(&unit, spawn_gen, &spec.resources);
        tokio::task::spawn_blocking(move || {
            let _held = cgroup.hold();
            let result = cgroup
                .prepare()
                .and_then(|()| spawn::plan(&spec, &state_dir))
                .map_err(|e| (None, e))
                .and_then(|plan| {
                    spawn::spawn(&plan, &registry, &unit, &mut |pid| cgroup.place(pid))
                });
            // The loop only drops the receiver when supd exits.
            let _ = outcomes.send(SpawnOutcome {
                unit,
                spawn_gen,
                result,
            });
        });
    }

    fn log_for(&mut self, unit: &str) -> SharedLog {
        let dir = self.config.state_dir.join("logs");
        let limits = self.fleet.get(unit).map(|s| s.spec.logs);
        let forward = self.config.forward_output;
        self.logs
            .entry(unit.to_string())
            .or_insert_with(|| {
                let limits = limits.unwrap_or(crate::unit::LogLimits {
                    max_size: 10 << 20,
                    max_files: 5,
                });
                let log = SharedLog::new(dir.join(format!("{unit}.log")), limits);
                if forward {
                    log.forward_to_stderr(unit);
                }
                log
            })
            .clone()
    }

    fn reload_from_disk(&mut self, dry_run: bool) -> Result<Reply, String> {
        match read_units(&self.config.units_dir) {
            Ok(loaded) => Ok(self.apply_reload(&loaded, dry_run)),
            Err(e) => {
                tracing::error!("reload failed, nothing changed: {e}");
                Err(e.to_string())
            }
        }
    }

    fn apply_reload(&mut self, loaded: &Loaded, dry_run: bool) -> Reply {
        let plan = self.fleet.reload(loaded, Now::read(), dry_run);
        if !dry_run {
            for name in &plan.updated {
                if let Some(slot) = self.fleet.get(name) {
                    let resources = slot.spec.resources.clone();
                    self.cgroups.update(name, &resources);
                }
            }
            self.fingerprints = loaded
                .units
                .iter()
                .filter_map(|(n, u)| Some((n.clone(), fingerprint(&u.path)?)))
                .collect();
            self.broken = loaded
                .errors
                .iter()
                .filter(|e| self.fleet.get(&e.unit).is_none())
                .map(|e| (e.unit.clone(), e.clone()))
                .collect();
            tracing::info!(
                added = plan.added.len(),
                removed = plan.removed.len(),
                restarted = plan.restarted.len(),
                updated = plan.updated.len(),
                unchanged = plan.unchanged.len(),
                rejected = plan.rejected.len(),
                "units loaded"
            );
        }
        Reply::Reload {
            plan,
            applied: !dry_run,
        }
    }

    fn on_query(&mut self, query: Query) {
        let answer = self.answer(query.command);
        // The client may have gone away; nothing to do then.
        let _ = query.answer.send(answer);
    }

    fn answer(&mut self, command: Command) -> Answer {
        if self.shutting_down && command.is_mutating() {
            return Answer::Reply(Reply::Error {
                code: ErrorCode::ShuttingDown,
                message: "supd is shutting down".into(),
            });
        }
        let now = Now::read();
        let reply = match command {
            Command::Status { units } => self.status(&units),
            Command::Logs { unit, .. } => {
                if self.fleet.get(&unit).is_none() && !self.logs.contains_key(&unit) {
                    return Answer::Reply(self.not_found(&[unit]));
                }
                return Answer::Log(self.log_for(&unit));
            }
            Command::Start { units, .. } => {
                self.for_units(&units, |f, u| f.start_with_requirements(u, now))
            }
            Command::Stop { units, .. } => {
                self.for_units(&units, |f, u| f.stop_with_dependents(u, now))
            }
            Command::Restart { units, .. } => {
                let mut actions = Vec::new();
                let reply = self.for_units(&units, |f, u| actions.extend(f.restart(u, now)));
                self.execute(actions);
                reply
            }
            Command::ResetFailed { units } => self.for_units(&units, |f, u| f.reset_failed(u, now)),
            Command::Poweroff | Command::Reboot => {
                let halt = if command == Command::Reboot {
                    crate::pid1::Halt::Reboot
                } else {
                    crate::pid1::Halt::Poweroff
                };
                self.on_shutdown_signal("supctl", halt);
                return Answer::Reply(Reply::Done {
                    results: Vec::new(),
                });
            }
            Command::Reload { dry_run } => match self.reload_from_disk(dry_run) {
                Ok(reply) => reply,
                Err(message) => Reply::Error {
                    code: ErrorCode::Internal,
                    message,
                },
            },
        };
        if !matches!(reply, Reply::Error { .. } | Reply::Status { .. }) {
            let actions = self.fleet.reconcile(Now::read());
            self.execute(actions);
        }
        Answer::Reply(match reply {
            Reply::Done { .. } => self.done(&self.requested_units(&reply)),
            other => other,
        })
    }

    fn requested_units(&self, reply: &Reply) -> Vec<String> {
        match reply {
            Reply::Done { results } => results.iter().map(|r| r.name.clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// Apply `f` to each named unit, or refuse the whole request if one is unknown.
    fn for_units(&mut self, units: &[String], mut f: impl FnMut(&mut Fleet, &str)) -> Reply {
        let missing: Vec<String> = units
            .iter()
            .filter(|u| self.fleet.get(u).is_none())
            .cloned()
            .collect();
        if !missing.is_empty() {
            return self.not_found(&missing);
        }
        for u in units {
            f(&mut self.fleet, u);
        }
        Reply::Done {
            results: units
                .iter()
                .map(|u| UnitResult {
                    name: u.clone(),
                    ok: true,
                    state: String::new(),
                    message: None,
                })
                .collect(),
        }
    }

    /// A `done` reply carrying each unit's state after the request was applied.
    fn done(&self, units: &[String]) -> Reply {
        Reply::Done {
            results: units
                .iter()
                .filter_map(|u| self.fleet.get(u).map(|slot| (u, slot)))
                .map(|(u, slot)| UnitResult {
                    name: u.clone(),
                    ok: true,
                    state: slot.machine.state_names(&slot.spec.service).0.to_string(),
                    message: None,
                })
                .collect(),
        }
    }

    fn not_found(&self, missing: &[String]) -> Reply {
        let detail: Vec<String> = missing
            .iter()
            .map(|u| match self.broken.get(u) {
                Some(e) => format!("{u} has no valid definition: {e}"),
                None => format!("no unit named {u}"),
            })
            .collect();
        Reply::Error {
            code: ErrorCode::NotFound,
            message: detail.join("; "),
        }
    }

    fn status(&self, units: &[String]) -> Reply {
        let missing: Vec<String> = units
            .iter()
            .filter(|u| self.fleet.get(u).is_none() && !self.broken.contains_key(*u))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return self.not_found(&missing);
        }
        let wanted = |name: &str| units.is_empty() || units.iter().any(|u| u == name);
        let mut out: Vec<UnitStatus> = self
            .fleet
            .slots()
            .iter()
            .filter(|(name, _)| wanted(name))
            .map(|(name, slot)| self.unit_status(name, slot))
            .collect();
        out.extend(
            self.broken
                .iter()
                .filter(|(n, _)| wanted(n))
                .map(|(n, e)| self.broken_status(n, e)),
        );
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Reply::Status { units: out }
    }

    fn log_path(&self, name: &str) -> String {
        self.config
            .state_dir
            .join("logs")
            .join(format!("{name}.log"))
            .display()
            .to_string()
    }

    fn unit_status(&self, name: &str, slot: &Slot) -> UnitStatus {
        let m = &slot.machine;
        let (state, sub_state) = m.state_names(&slot.spec.service);
        let reason = match m.phase() {
            Phase::Failed(f) => Some(f.to_string()),
            _ => None,
        };
        let next_start = match m.phase() {
            Phase::Restarting { at_wall, .. } => Some(rfc3339(*at_wall)),
            _ => None,
        };
        UnitStatus {
            name: name.to_string(),
            description: slot.spec.description.clone(),
            state: state.to_string(),
            sub_state,
            since: rfc3339(m.since()),
            pid: m.pid(),
            restarts: m.restarts(),
            last_exit: m
                .last_exit()
                .map(|(status, at)| exit_info(status, at, m.last_exit_oom())),
            oom_kills: m.oom_kills(),
            reason,
            next_start,
            want: if m.want_up() { "up" } else { "down" }.into(),
            hash: slot.spec.hash.clone(),
            path: slot.spec.path.display().to_string(),
            definition_error: slot.definition_error.clone(),
            log_file: self.log_path(name),
            usage: self.cgroups.usage(name, &slot.spec.resources),
            disk_differs: self.fingerprints.get(name) != fingerprint(&slot.spec.path).as_ref(),
        }
    }

    /// A unit file that never loaded is shown as failed so `supctl status` lists it.
    fn broken_status(&self, name: &str, error: &UnitError) -> UnitStatus {
        UnitStatus {
            name: name.to_string(),
            description: String::new(),
            state: "failed".into(),
            sub_state: "bad-definition".into(),
            since: rfc3339(std::time::SystemTime::now()),
            pid: None,
            restarts: 0,
            last_exit: None,
            oom_kills: 0,
            reason: Some(format!("definition rejected: {error}")),
            next_start: None,
            want: "down".into(),
            hash: String::new(),
            path: error.path.display().to_string(),
            definition_error: Some(error.to_string()),
            log_file: self.log_path(name),
            usage: None,
            disk_differs: true,
        }
    }
}

/// FNV-1a of a file's bytes (None if it cannot be read): cheap enough to compare
/// on every status query.
fn fingerprint(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    Some(bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    }))
}

fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn exit_info(status: ExitStatus, at: std::time::SystemTime, oom_killed: bool) -> ExitInfo {
    let (code, signal) = match status {
        ExitStatus::Code(c) => (Some(c), None),
        ExitStatus::Signal(s) => (None, Some(ExitStatus::signal_name(s))),
    };
    ExitInfo {
        code,
        signal,
        oom_killed,
        at: rfc3339(at),
    }
}

/// Signal a unit's process group. Never pid 0 or 1: `kill(-1)` would hit every process.
fn signal_group(unit: &str, pgid: i32, signal: Signal) {
    if pgid <= 1 {
        tracing::error!(unit, pgid, "refusing to signal a process group <= 1");
        return;
    }
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(unit, pgid, signal = signal.as_str(), errno = %e, "killpg failed"),
    }
}

/// Children re-parented to supd (daemons that left their unit's process group) must
/// not outlive it: kill and reap whatever is left.
fn kill_stray_children() {
    let me = std::process::id() as i32;
    let killed: Vec<i32> = crate::procfs::processes()
        .into_iter()
        .filter(|p| p.ppid == me && p.pid > 1)
        .filter(|p| nix::sys::signal::kill(Pid::from_raw(p.pid), Signal::SIGKILL).is_ok())
        .map(|p| p.pid)
        .collect();
    if !killed.is_empty() {
        tracing::warn!(
            count = killed.len(),
            "killed processes left behind by units"
        );
    }
    for pid in killed {
        // SIGKILL cannot be caught; the wait ends as soon as the kernel tears it down
        // (ECHILD if the reaper task got there first).
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
    }
}
