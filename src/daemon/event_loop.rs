//! The event loop: the one owner of all unit state.
//!
//! Everything that happens (an exit, a start outcome, a control request, a finished
//! read of the unit directory, a signal, a timer) becomes an event handled here in
//! turn. The pure `Fleet` decides; this module carries out the actions it returns.
//! The loop sleeps until an event or its single deadline: the earliest of every
//! unit's timer and the directory watcher's debounce.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::signal::unix::Signal as SignalStream;
use tokio::sync::{mpsc, watch};

use super::cgroups::CgroupJobs;
use super::exits::UnitExit;
use super::log_registry::LogRegistry;
use super::reload::{LoadResult, Trigger};
use super::start::{StartError, StartJob, StartOutcome};
use super::watch::{Debounce, DirWatch};
use super::{Config, Ending};
use crate::control::server::Query;
use crate::logs::{self, Stream};
use crate::pid1::Halt;
use crate::reaper::Registry;
use crate::supervise::{Action, Fleet, Now, UnitAction};
use crate::unit::{Namespace, UnitError};

/// Where the loop's events come from.
pub struct Inputs {
    pub exits: mpsc::UnboundedReceiver<UnitExit>,
    pub outcomes: mpsc::UnboundedReceiver<StartOutcome>,
    pub queries: mpsc::UnboundedReceiver<Query>,
    pub loaded: mpsc::UnboundedReceiver<LoadResult>,
    pub sigterm: SignalStream,
    pub sigint: SignalStream,
    pub sighup: SignalStream,
    pub dir_watch: DirWatch,
}

pub struct Daemon {
    config: Config,
    pub(super) fleet: Fleet,
    /// The problems of every unit file rejected by the latest read, by unit.
    pub(super) rejected: BTreeMap<String, Vec<UnitError>>,
    /// Fingerprint of the file each loaded definition was read from.
    pub(super) loaded_fingerprints: HashMap<String, u64>,
    /// Fingerprint of every unit file as of the latest read.
    pub(super) disk_fingerprints: BTreeMap<String, u64>,
    /// Why the latest start of a unit failed (shown with its `spawn-error` state).
    pub(super) start_errors: HashMap<String, StartError>,
    pub(super) logs: LogRegistry,
    registry: Registry,
    pub(super) cgroups: CgroupJobs,
    outcomes: mpsc::UnboundedSender<StartOutcome>,
    /// Bumped after every event, so `--wait` requests look again.
    changes: watch::Sender<u64>,
    pub(super) reloads: mpsc::UnboundedSender<Trigger>,
    pub(super) shutting_down: bool,
    ending: Ending,
}

impl Daemon {
    pub fn new(
        config: Config,
        registry: Registry,
        cgroups: CgroupJobs,
        logs: LogRegistry,
        outcomes: mpsc::UnboundedSender<StartOutcome>,
        changes: watch::Sender<u64>,
        reloads: mpsc::UnboundedSender<Trigger>,
    ) -> Self {
        Daemon {
            config,
            fleet: Fleet::default(),
            rejected: BTreeMap::new(),
            loaded_fingerprints: HashMap::new(),
            disk_fingerprints: BTreeMap::new(),
            start_errors: HashMap::new(),
            logs,
            registry,
            cgroups,
            outcomes,
            changes,
            reloads,
            shutting_down: false,
            ending: Ending {
                halt: Halt::Poweroff,
                hurried: false,
            },
        }
    }

    pub fn unit_count(&self) -> usize {
        self.fleet.slots().len()
    }

    pub(super) fn units_dir(&self) -> &Path {
        &self.config.units_dir
    }

    /// Handle events until a shutdown has stopped every unit. Hands back the cgroups
    /// for the final teardown.
    pub async fn run(mut self, mut inputs: Inputs) -> (Ending, CgroupJobs) {
        let mut debounce = Debounce::default();
        loop {
            self.changes.send_modify(|v| *v = v.wrapping_add(1));
            if self.shutting_down && self.fleet.all_settled_down() {
                break;
            }
            let deadline = self
                .fleet
                .next_deadline()
                .map(tokio::time::Instant::from_std)
                .into_iter()
                .chain(debounce.deadline())
                .min();
            tokio::select! {
                Some(exit) = inputs.exits.recv() => self.on_exit(exit),
                Some(outcome) = inputs.outcomes.recv() => self.on_start_outcome(outcome),
                Some(query) = inputs.queries.recv() => self.on_query(query),
                Some(load) = inputs.loaded.recv() => self.on_loaded(load),
                _ = inputs.sigterm.recv() => self.on_shutdown_request("SIGTERM", Halt::Poweroff),
                // Ctrl-Alt-Del arrives as SIGINT at PID 1: reboot, as other inits do.
                _ = inputs.sigint.recv() => self.on_shutdown_request("SIGINT", Halt::Reboot),
                _ = inputs.sighup.recv() => self.request_reload(Trigger::Signal),
                Some(()) = inputs.dir_watch.next() => debounce.event(tokio::time::Instant::now()),
                _ = sleep_until(deadline) => {
                    let actions = self.fleet.on_timers(Now::read());
                    self.warn_escalations(&actions);
                    self.execute(actions);
                    if debounce.take_due(tokio::time::Instant::now()) && !self.shutting_down {
                        self.request_reload(Trigger::Watch);
                    }
                }
            }
        }
        (self.ending, self.cgroups)
    }

    pub(super) fn on_shutdown_request(&mut self, by: &str, halt: Halt) {
        if self.shutting_down {
            self.ending.hurried = true;
            tracing::warn!(by, "second shutdown request: killing every unit now");
            let actions = self.fleet.kill_all(Now::read());
            self.execute(actions);
            return;
        }
        tracing::info!(
            by,
            "shutting down: stopping all units in reverse dependency order"
        );
        self.shutting_down = true;
        self.ending.halt = halt;
        let actions = self.fleet.stop_all(Now::read());
        self.execute(actions);
    }

    fn on_exit(&mut self, unit_exit: UnitExit) {
        let UnitExit { exit, oom_killed } = unit_exit;
        let main = self
            .fleet
            .get(&exit.owner)
            .filter(|s| s.machine.attempt() == exit.attempt)
            .and_then(|s| s.machine.pid());
        if main == Some(exit.pid) {
            tracing::info!(unit = %exit.owner, pid = exit.pid, status = %exit.status, "process exited");
            if oom_killed {
                tracing::warn!(unit = %exit.owner, pid = exit.pid, "OOM-killed: the unit's cgroup reached memory_max");
            }
        } else {
            // The spawn helper, or a process of an earlier start.
            tracing::debug!(unit = %exit.owner, pid = exit.pid, attempt = exit.attempt, status = %exit.status, "helper or earlier process exited");
        }
        let actions = self.fleet.on_exit(
            &exit.owner,
            exit.attempt,
            exit.pid,
            exit.status,
            oom_killed,
            Now::read(),
        );
        self.execute(actions);
    }

    fn on_start_outcome(&mut self, outcome: StartOutcome) {
        let now = Now::read();
        let limits = self.fleet.get(&outcome.unit).map(|s| s.spec.logs);
        let log = self.logs.open(&outcome.unit, limits);
        let actions = match outcome.result {
            Ok(spawned) => {
                let pid = spawned.pid;
                tokio::spawn(logs::pump(spawned.stdout, Stream::Stdout, log.clone()));
                tokio::spawn(logs::pump(spawned.stderr, Stream::Stderr, log));
                tracing::info!(unit = %outcome.unit, pid, "started");
                self.start_errors.remove(&outcome.unit);
                let mut actions = self
                    .fleet
                    .on_spawned(&outcome.unit, outcome.attempt, pid, now);
                if let Some(status) = spawned.early_exit {
                    actions.extend(self.fleet.on_exit(
                        &outcome.unit,
                        outcome.attempt,
                        pid,
                        status,
                        false,
                        now,
                    ));
                }
                actions
            }
            Err(error) => {
                tracing::error!(unit = %outcome.unit, "start failed: {error}");
                log.note(format!("[supd] start failed: {error}"));
                self.start_errors.insert(outcome.unit.clone(), error);
                self.fleet
                    .on_spawn_failed(&outcome.unit, outcome.attempt, now)
            }
        };
        self.execute(actions);
    }

    /// A stop that needed SIGKILL may have lost data (a database's last writes): say so.
    fn warn_escalations(&self, actions: &[UnitAction]) {
        for a in actions {
            if a.action == Action::KillCgroup
                && let Some(slot) = self.fleet.get(&a.unit)
                && slot.machine.killed_at_stop_timeout()
            {
                let svc = &slot.spec.service;
                tracing::warn!(
                    unit = %a.unit,
                    "did not stop within stop_timeout ({}) of {}; killed with SIGKILL",
                    humantime::format_duration(svc.stop_timeout),
                    svc.stop_signal.as_str()
                );
            }
        }
    }

    /// Carry out what the fleet decided.
    pub(super) fn execute(&mut self, actions: Vec<UnitAction>) {
        for UnitAction { unit, action } in actions {
            match action {
                Action::Spawn { attempt } => self.start(unit, attempt),
                Action::Signal { pgid, signal } => self.signal_group(&unit, pgid, signal),
                Action::KillCgroup => self.cgroups.kill(&unit),
                Action::ReleaseCgroup => self.cgroups.release(&unit),
            }
        }
    }

    /// Start attempt `attempt` of `unit` in a blocking thread.
    fn start(&mut self, unit: String, attempt: u64) {
        let Some(slot) = self.fleet.get(&unit) else {
            return;
        };
        let spec = slot.spec.clone();
        self.logs.open(&unit, Some(spec.logs));
        let job = StartJob {
            cgroup: self.cgroups.for_start(&unit, attempt, &spec.resources),
            unit,
            attempt,
            spec,
            state_dir: self.config.state_dir.clone(),
            registry: self.registry.clone(),
        };
        job.run_in_background(self.outcomes.clone());
    }

    /// Signal a unit's process group. A group is named by its leader's pid, which is
    /// only safe to use while the leader has not been reaped: afterwards the number
    /// may be another process's, leading a group of its own (every container's first
    /// process calls setsid). So the signal is sent under the reaper's lock while the
    /// leader is a registered, unreaped child of the unit. Once the leader is gone,
    /// what is left of its group is killed through the unit's cgroup (pidfd-checked),
    /// or died with its PID namespace; only a unit with neither is signalled by
    /// number still.
    fn signal_group(&self, unit: &str, pgid: i32, signal: Signal) {
        if self
            .registry
            .while_unreaped(pgid, unit, || signal_group(unit, pgid, signal))
        {
            return;
        }
        let own_pid_ns = self
            .fleet
            .get(unit)
            .is_some_and(|s| s.spec.container.namespaces.contains(&Namespace::Pid));
        if self.cgroups.is_live(unit) || own_pid_ns {
            tracing::debug!(
                unit,
                pgid,
                signal = signal.as_str(),
                "group leader already reaped; not signalling its number"
            );
            return;
        }
        signal_group(unit, pgid, signal);
    }

    pub(super) fn log_path(&self, unit: &str) -> PathBuf {
        self.logs.path(unit)
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
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
