//! The event loop: the one owner of all unit state.
//!
//! Everything that happens (an exit, a start outcome, a control request, a finished
//! read of the unit directory, a signal, a timer) becomes an event handled here in
//! turn. The pure `Fleet` decides; this module carries out the actions it returns.
//! The loop sleeps until an event or its single deadline: the earliest of every
//! unit's timer, the health probes' and the directory watcher's debounce.
//!
//! Health probes make most events of a busy supd (hundreds a second), and most of
//! them change nothing in the fleet: the fleet's deadline and the probes' view of
//! it are computed again only after an event that may have changed the fleet.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::Signal as SignalStream;
use tokio::sync::{Semaphore, mpsc, watch};

use super::cgroups::CgroupJobs;
use super::exits::UnitExit;
use super::health::{ProbeReport, Probes};
use super::log_registry::LogRegistry;
use super::network::Networks;
use super::notify::NotifySockets;
use super::peers::PeerPolicy;
use super::reload::{LoadResult, Trigger};
use super::start::{StartError, StartOutcome};
use super::stop_post::StopPostRuns;
use super::watch::{Debounce, DirWatch};
use super::{Config, Ending};
use crate::control::server::Query;
use crate::logs;
use crate::memory::Trimmer;
use crate::notify::socket::UnitNotice;
use crate::pid1::Halt;
use crate::reaper::Registry;
use crate::reaper::Role;
use crate::supervise::{Action, Fleet, Now, UnitAction};
use crate::unit::UnitError;

/// Where the loop's events come from.
pub struct Inputs {
    pub exits: mpsc::UnboundedReceiver<UnitExit>,
    pub outcomes: mpsc::UnboundedReceiver<StartOutcome>,
    pub queries: mpsc::UnboundedReceiver<Query>,
    pub loaded: mpsc::UnboundedReceiver<LoadResult>,
    pub notices: mpsc::UnboundedReceiver<UnitNotice>,
    pub probe_reports: mpsc::UnboundedReceiver<ProbeReport>,
    pub sigterm: SignalStream,
    pub sigint: SignalStream,
    pub sighup: SignalStream,
    pub dir_watch: DirWatch,
}

/// Where the loop sends what it starts: start outcomes come back to it, changes
/// go to waiting clients, reads of the unit directory to the reader.
pub struct Links {
    pub outcomes: mpsc::UnboundedSender<StartOutcome>,
    pub changes: watch::Sender<u64>,
    pub reloads: mpsc::UnboundedSender<Trigger>,
    pub incumbents: super::reload::Incumbents,
}

pub struct Daemon {
    pub(super) config: Config,
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
    pub(super) registry: Registry,
    pub(super) cgroups: CgroupJobs,
    pub(super) outcomes: mpsc::UnboundedSender<StartOutcome>,
    /// Bumped after every event, so `--wait` requests look again.
    changes: watch::Sender<u64>,
    pub(super) reloads: mpsc::UnboundedSender<Trigger>,
    /// The loaded units, for the reader (a new unit cannot take their ports).
    pub(super) incumbents: super::reload::Incumbents,
    pub(super) shutting_down: bool,
    ending: Ending,
    /// Who may use the control socket (units with `control_socket = true`).
    pub(super) peers: PeerPolicy,
    /// A unit with `on_failure = "exit"` failed: its name and exit code.
    pub(super) exit_code: Option<(String, i32, crate::unit::OnFailure)>,
    /// Every notifying unit's socket, and what they said.
    pub(super) notify: NotifySockets,
    /// Health probes of the units that have a check.
    pub(super) probes: Probes,
    /// A pidfd of each unit's main process (by start attempt): what probes join.
    pub(super) main_pidfds: HashMap<String, (u64, Arc<OwnedFd>)>,
    /// Each unit's service process as found when its start was confirmed.
    pub(super) service_pids: HashMap<String, super::start::ServicePid>,
    /// The `exec_stop_post` runs in progress.
    pub(super) stop_post: StopPostRuns,
    /// The latest event may have changed the fleet: its deadline and the probes'
    /// trackers are to be looked at again.
    pub(super) fleet_touched: bool,
    /// The latest event changed what `status` shows (waiting clients look again).
    pub(super) shown_changed: bool,
    /// Told of starts and dropped units; gives memory back once supd is quiet.
    pub(super) trimmer: Trimmer,
    /// Service starts running at once (`start::START_SLOTS`).
    pub(super) start_slots: Arc<Semaphore>,
    /// Bridge networks: addresses, hosts files, bridges and nftables.
    pub(super) networks: Networks,
    /// What the metrics count that only the loop sees.
    pub(super) counters: super::metrics::Counters,
    /// `supctl events` listeners and what they last saw.
    pub(super) events: super::events::EventBus,
    /// The host ports a running unit publishes, held (by start attempt).
    pub(super) published: HashMap<String, (u64, Vec<(crate::unit::PortSpec, OwnedFd)>)>,
}

/// The parts of the daemon beyond its core: the socket's peer policy, notify
/// sockets, health probes, the memory trimmer.
pub struct Extras {
    pub peers: PeerPolicy,
    pub notify: NotifySockets,
    pub probes: Probes,
    pub trimmer: Trimmer,
    pub networks: Networks,
    pub counters: super::metrics::Counters,
}

impl Daemon {
    pub fn new(
        config: Config,
        registry: Registry,
        cgroups: CgroupJobs,
        logs: LogRegistry,
        links: Links,
        extras: Extras,
    ) -> Self {
        let Extras {
            peers,
            notify,
            probes,
            trimmer,
            networks,
            counters,
        } = extras;
        let Links {
            outcomes,
            changes,
            reloads,
            incumbents,
        } = links;
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
            incumbents,
            shutting_down: false,
            ending: Ending {
                halt: Halt::Poweroff,
                hurried: false,
                exit_code: None,
            },
            peers,
            exit_code: None,
            notify,
            probes,
            main_pidfds: HashMap::new(),
            service_pids: HashMap::new(),
            stop_post: StopPostRuns::default(),
            fleet_touched: true,
            shown_changed: true,
            trimmer,
            start_slots: Arc::new(Semaphore::new(super::start::START_SLOTS)),
            networks,
            published: HashMap::new(),
            events: Default::default(),
            counters,
        }
    }

    pub fn unit_count(&self) -> usize {
        self.fleet.slots().len()
    }

    pub(super) fn units_dir(&self) -> &Path {
        &self.config.units_dir
    }

    pub(super) fn state_dir(&self) -> &Path {
        &self.config.state_dir
    }

    /// Handle events until a shutdown has stopped every unit. Hands back the cgroups
    /// for the final teardown.
    pub async fn run(mut self, mut inputs: Inputs) -> (Ending, CgroupJobs, Networks) {
        let mut debounce = Debounce::default();
        let mut fleet_deadline = None;
        // The fleet deadline last handled without waiting (see below).
        let mut handled_at_once = None;
        loop {
            // Probes first (a timed-out one may change the fleet), then what the
            // fleet changed (a restarted unit's tracker goes, a new one may be due).
            loop {
                self.tend_probes();
                if !std::mem::take(&mut self.fleet_touched) {
                    break;
                }
                self.shown_changed = true;
                self.forget_removed();
                self.reconcile_probes();
                fleet_deadline = self.fleet.next_deadline();
            }
            if std::mem::take(&mut self.shown_changed) {
                self.changes.send_modify(|v| *v = v.wrapping_add(1));
                self.emit_changes();
            }
            if self.shutting_down && self.fleet.all_settled_down() {
                break;
            }
            // A unit timer already due (a restart with `restart_delay = "0s"`) is
            // handled now: tokio's timer would fire it at its next millisecond
            // tick, about a millisecond more on every such restart. Once per
            // deadline, so one the timers leave due cannot spin the loop.
            if let Some(due) = fleet_deadline
                .filter(|d| *d <= std::time::Instant::now() && handled_at_once != Some(*d))
            {
                handled_at_once = Some(due);
                let actions = self.fleet.on_timers(Now::read());
                self.warn_escalations(&actions);
                self.execute(actions);
                self.fleet_touched = true;
                continue;
            }
            let deadline = fleet_deadline
                .into_iter()
                .chain(self.probes.deadline())
                .map(tokio::time::Instant::from_std)
                .chain(debounce.deadline())
                .min();
            // Whether the event may have changed the fleet: all but the probes'
            // own, which say so themselves when they do.
            let touched = tokio::select! {
                Some(exit) = inputs.exits.recv() => {
                    let probe = matches!(exit.exit.role, Role::Probe(_));
                    self.on_exit(exit);
                    !probe
                }
                Some(outcome) = inputs.outcomes.recv() => { self.on_start_outcome(outcome); true }
                Some(query) = inputs.queries.recv() => { self.on_query(query); true }
                Some(load) = inputs.loaded.recv() => { self.on_loaded(load); true }
                Some(notice) = inputs.notices.recv() => { self.on_notice(notice); true }
                Some(report) = inputs.probe_reports.recv() => { self.on_probe_report(report); false }
                _ = inputs.sigterm.recv() => {
                    self.on_shutdown_request("SIGTERM", Halt::Poweroff);
                    true
                }
                // Ctrl-Alt-Del arrives as SIGINT at PID 1: reboot, as other inits do.
                _ = inputs.sigint.recv() => {
                    self.on_shutdown_request("SIGINT", Halt::Reboot);
                    true
                }
                _ = inputs.sighup.recv() => { self.request_reload(Trigger::Signal); true }
                Some(()) = inputs.dir_watch.next() => {
                    debounce.event(tokio::time::Instant::now());
                    false
                }
                _ = sleep_until(deadline) => {
                    // A probe's deadline comes far more often than a unit's timer.
                    let now = Now::read();
                    let fleet_due = fleet_deadline.is_some_and(|d| d <= now.mono);
                    if fleet_due {
                        let actions = self.fleet.on_timers(now);
                        self.warn_escalations(&actions);
                        self.execute(actions);
                    }
                    if debounce.take_due(tokio::time::Instant::now()) && !self.shutting_down {
                        self.request_reload(Trigger::Watch);
                    }
                    fleet_due
                }
            };
            self.fleet_touched |= touched;
        }
        if let Some((unit, code, action)) = &self.exit_code {
            tracing::warn!(unit, code, "exiting with the exit code of the failed unit");
            self.ending.exit_code = Some((*code, *action));
        }
        (self.ending, self.cgroups, self.networks)
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
        match exit.role {
            Role::Main => {}
            // A probe helper's end is seen on its socket, after its last result.
            Role::Probe(_) => return,
            Role::Hook => {
                return self.on_hook_exit(&exit.owner, exit.attempt, exit.pid, exit.status);
            }
        }
        let main = self
            .fleet
            .get(&exit.owner)
            .filter(|s| s.machine.attempt() == exit.attempt)
            .and_then(|s| s.machine.pid());
        if main == Some(exit.pid) {
            // The service's own status, as status shows it: a unit under sup's
            // init reports its service's death by signal N as 128 + N.
            let shown = match self.fleet.get(&exit.owner) {
                Some(s) => crate::supervise::service_status(&s.spec.container, exit.status),
                None => exit.status,
            };
            let (code, signal) = match shown {
                crate::supervise::ExitStatus::Code(c) => (Some(c), None),
                crate::supervise::ExitStatus::Signal(s) => (
                    None,
                    Some(
                        nix::sys::signal::Signal::try_from(s)
                            .map_or_else(|_| s.to_string(), |s| s.as_str().to_owned()),
                    ),
                ),
            };
            // Named as status and events name it (`code=1`, `signal=SIGTERM`): a
            // container's init reports its service's signal as 128 + N.
            let named = match (code, &signal) {
                (Some(c), _) => format!("code={c}"),
                (None, Some(s)) => format!("signal={s}"),
                (None, None) => String::new(),
            };
            tracing::info!(unit = %exit.owner, pid = exit.pid, exit = %named, "process exited");
            self.counters
                .exit(&exit.owner, code, signal.as_deref(), oom_killed);
            let kind = crate::control::proto::EventKind::Exit {
                pid: exit.pid,
                code,
                signal,
                oom_killed,
            };
            self.emit(Some(&exit.owner), kind);
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
        // Before a restart in `actions`: the old process's host ports are let go
        // first, or the new start would find them taken.
        self.prune_main_pidfd(&exit.owner);
        self.execute(actions);
    }

    /// A main process's pidfd is kept while that process runs (probes join it):
    /// given back once the unit has no process of that start any more (it ended,
    /// even before its start was confirmed; the unit is gone; a newer start).
    fn prune_main_pidfd(&mut self, unit: &str) {
        let running = self
            .fleet
            .get(unit)
            .filter(|s| s.machine.pid().is_some())
            .map(|s| s.machine.attempt());
        if let Some((attempt, _)) = self.main_pidfds.get(unit)
            && running != Some(*attempt)
        {
            self.main_pidfds.remove(unit);
        }
        if let Some((attempt, _)) = self.published.get(unit)
            && running != Some(*attempt)
        {
            self.published.remove(unit);
            self.networks.set_publishing(unit, false);
        }
    }

    fn on_start_outcome(&mut self, outcome: StartOutcome) {
        if outcome.role != Role::Main {
            return self.on_stop_post_started(&outcome.unit, outcome.attempt, outcome.result);
        }
        let now = Now::read();
        let limits = self.fleet.get(&outcome.unit).map(|s| s.spec.logs);
        let log = self.logs.open(&outcome.unit, limits);
        let actions = match outcome.result {
            Ok(spawned) => {
                let pid = spawned.pid;
                self.counters.started(outcome.took);
                if !outcome.ports.is_empty() {
                    self.published
                        .insert(outcome.unit.clone(), (outcome.attempt, outcome.ports));
                    self.networks.set_publishing(&outcome.unit, true);
                }
                self.restart_namespace_sharers(&outcome.unit, now);
                // A new process: the last one's STATUS= text is not its. A text
                // of this attempt may have arrived before this report (the
                // service ran at once): it stays.
                if self
                    .notify
                    .status
                    .get(&outcome.unit)
                    .is_some_and(|(attempt, _)| *attempt != Some(outcome.attempt))
                {
                    self.notify.status.remove(&outcome.unit);
                }
                if let Some(fd) = spawned.pidfd {
                    self.main_pidfds
                        .insert(outcome.unit.clone(), (outcome.attempt, Arc::new(fd)));
                }
                match outcome.service {
                    Some(service) => self.service_pids.insert(outcome.unit.clone(), service),
                    None => self.service_pids.remove(&outcome.unit),
                };
                logs::pump_both(spawned.stdout, spawned.stderr, log);
                if let Some(fd) = spawned.ready {
                    self.notify
                        .watch_ready_pipe(&outcome.unit, outcome.attempt, fd);
                }
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
                let kind = crate::control::proto::EventKind::StartFailed {
                    error: error.to_string(),
                };
                self.emit(Some(&outcome.unit), kind);
                if let Some(output) = error.early_output() {
                    let out = output
                        .stdout
                        .iter()
                        .map(|l| (crate::logs::Stream::Stdout, l.clone()));
                    let err = output
                        .stderr
                        .iter()
                        .map(|l| (crate::logs::Stream::Stderr, l.clone()));
                    log.notes(out.chain(err));
                }
                log.note(format!("[supd] start failed: {error}"));
                let start_pre = error.is_start_pre();
                self.start_errors.insert(outcome.unit.clone(), error);
                self.fleet
                    .on_spawn_failed(&outcome.unit, outcome.attempt, start_pre, now)
            }
        };
        self.execute(actions);
        self.prune_main_pidfd(&outcome.unit);
    }

    /// Say why a timer stops a unit (start timeout, watchdog), and that a stop
    /// needed SIGKILL: that may have lost data (a database's last writes).
    fn warn_escalations(&self, actions: &[UnitAction]) {
        for a in actions {
            if matches!(a.action, Action::StopSignal { .. } | Action::Kill { .. })
                && let Some(slot) = self.fleet.get(&a.unit)
                && !slot.machine.killed_at_stop_timeout()
                && let Some(cause) = slot.machine.stop_cause()
            {
                tracing::warn!(unit = %a.unit, "{cause}");
            }
            if matches!(a.action, Action::Kill { .. })
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

    /// `unit` has a new container: units in its network namespace (`mode =
    /// "unit:NAME"`) are in the old one, and restart into the new.
    fn restart_namespace_sharers(&mut self, unit: &str, now: Now) {
        let sharers: Vec<String> = self
            .fleet
            .slots()
            .iter()
            .filter(|(_, s)| s.spec.network.mode == crate::unit::NetworkMode::Unit(unit.to_owned()))
            .filter(|(_, s)| s.machine.pid().is_some())
            .map(|(name, _)| name.clone())
            .collect();
        for name in sharers {
            tracing::info!(unit = %name, peer = unit, "restarting into the new network namespace of its peer");
            let actions = self.fleet.restart(&name, now);
            self.execute(actions);
        }
    }

    /// The unit's log file; none when unit output does not go to files.
    pub(super) fn log_path(&self, unit: &str) -> Option<PathBuf> {
        self.logs.file(unit)
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
