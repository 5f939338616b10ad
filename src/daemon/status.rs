//! The status view: unit state turned into the wire types of `supctl status`. The view
//! is built on the loop from what the loop already knows; cgroup usage, which needs
//! reading cgroupfs, is filled in by a blocking thread that then sends the answer.

use std::time::SystemTime;

use tokio::sync::oneshot;

use super::event_loop::Daemon;
use crate::control::proto::{ExitInfo, Reply, UnitState, UnitStatus, Usage};
use crate::control::server::Answer;
use crate::supervise::health::Health;
use crate::supervise::{ExitStatus, Failure, Phase, Slot, State};
use crate::unit::UnitError;

/// The wire name of a supervision state.
pub fn unit_state(state: State) -> UnitState {
    match state {
        State::Inactive => UnitState::Inactive,
        State::Starting => UnitState::Starting,
        State::Running => UnitState::Running,
        State::Stopping => UnitState::Stopping,
        State::Restarting => UnitState::Restarting,
        State::Exited => UnitState::Exited,
        State::Failed => UnitState::Failed,
    }
}

impl Daemon {
    /// Answer `status` for the named units (all when empty).
    pub(super) fn answer_status(
        &self,
        units: &[String],
        brief: bool,
        answer: oneshot::Sender<Answer>,
    ) {
        let missing: Vec<String> = units
            .iter()
            .filter(|u| self.fleet.get(u).is_none() && !self.rejected.contains_key(*u))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let _ = answer.send(Answer::Reply(self.not_found(&missing)));
            return;
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
            self.rejected
                .iter()
                .filter(|(n, _)| wanted(n) && self.fleet.get(n).is_none())
                .map(|(n, e)| self.broken_status(n, e)),
        );
        out.sort_by(|a, b| a.name.cmp(&b.name));
        if brief {
            let _ = answer.send(Answer::Reply(Reply::Status { units: out }));
            return;
        }
        let with_cgroup: Vec<(usize, String)> = out
            .iter()
            .enumerate()
            .filter(|(_, s)| self.cgroups.is_live(&s.name))
            .map(|(i, s)| (i, s.name.clone()))
            .collect();
        // The service's own process: as found when the start was confirmed, where
        // that start's process still runs (its pid cannot be another's: supd has
        // not reaped it); else looked up in /proc (the init had not started it
        // yet then).
        for s in out.iter_mut() {
            if let Some(known) = self.service_pids.get(&s.name)
                && s.pid == Some(known.started)
            {
                s.main_pid = Some(known.pid);
                s.main_pid_in_container = known.in_container;
            }
        }
        let with_pid: Vec<(usize, i32, bool)> = out
            .iter()
            .enumerate()
            .filter(|(_, s)| s.main_pid.is_none())
            .filter_map(|(i, s)| {
                let slot = self.fleet.get(&s.name)?;
                let under_init = crate::supervise::runs_under_init(&slot.spec.container);
                Some((i, s.pid?, under_init))
            })
            .collect();
        let reader = self
            .cgroups
            .usage_reader()
            .filter(|_| !with_cgroup.is_empty());
        if reader.is_none() && with_pid.is_empty() {
            let _ = answer.send(Answer::Reply(Reply::Status { units: out }));
            return;
        }
        tokio::task::spawn_blocking(move || {
            for (i, pid, under_init) in with_pid {
                if let Some(status) = out.get_mut(i) {
                    status.main_pid = main_pid(pid, under_init);
                    status.main_pid_in_container =
                        status.main_pid.and_then(crate::procfs::pid_in_namespace);
                }
            }
            let Some(reader) = reader else {
                let _ = answer.send(Answer::Reply(Reply::Status { units: out }));
                return;
            };
            let (at, units): (Vec<usize>, Vec<String>) = with_cgroup.into_iter().unzip();
            for (i, usage) in at.into_iter().zip(reader.read_all(&units)) {
                if let Some(status) = out.get_mut(i)
                    && let Some(u) = status.usage.as_mut()
                {
                    u.memory_current = usage.raw.memory_current;
                    u.memory_peak = usage.raw.memory_peak;
                    u.cpu_usage_usec = usage.raw.cpu_usage_usec;
                    u.cpu_percent = usage.cpu_percent;
                    u.tasks = usage.raw.tasks;
                }
            }
            let _ = answer.send(Answer::Reply(Reply::Status { units: out }));
        });
    }

    fn with_start_error(&self, name: &str, reason: String) -> String {
        match self.start_errors.get(name) {
            Some(e) => format!("{reason}; the last start failed: {e}"),
            None => reason,
        }
    }

    /// Why the unit is where it is, in words: failed, restarted, stopped by a
    /// requirement's `on_failure`, or waiting for its dependencies.
    pub(super) fn failure_reason(&self, name: &str, slot: &Slot) -> Option<String> {
        match slot.machine.phase() {
            Phase::Failed(f @ (Failure::Spawn | Failure::StartPre)) => {
                Some(match self.start_errors.get(name) {
                    Some(e) => format!("{f}: {e}"),
                    None => f.to_string(),
                })
            }
            // The start limit and restarts after failed starts say why they failed.
            Phase::Failed(f) => Some(self.with_start_error(name, f.to_string())),
            // Why it is being restarted.
            Phase::Restarting { .. } => slot
                .machine
                .last_failure()
                .map(|f| self.with_start_error(name, f.to_string())),
            Phase::Waiting if slot.stopped_for.is_none() => {
                let deps: Vec<String> = self
                    .fleet
                    .waiting_for(name)
                    .into_iter()
                    .map(|d| match self.fleet.is_disabled(&d) {
                        true => format!("{d} (disabled)"),
                        false => d,
                    })
                    .collect();
                (!deps.is_empty()).then(|| format!("waiting for {}", deps.join(", ")))
            }
            Phase::Inactive if slot.stopped_for.is_none() && self.fleet.is_disabled(name) => {
                Some(super::enable::disabled_reason(name))
            }
            Phase::Inactive | Phase::Waiting | Phase::Stopping { .. } | Phase::Cleaning { .. } => {
                slot.stopped_for
                    .as_ref()
                    .map(|(unit, action)| stopped_by_on_failure(unit, *action))
            }
            _ => None,
        }
    }

    fn network_status(
        &self,
        spec: &crate::unit::Unit,
    ) -> Option<crate::control::proto::NetworkStatus> {
        let net = &spec.network;
        if net.mode == crate::unit::NetworkMode::Host {
            return None;
        }
        let addresses = self
            .networks
            .addresses(&spec.name)
            .into_iter()
            .enumerate()
            .map(
                |(i, (network, address))| crate::control::proto::NetworkAddress {
                    network,
                    address: address.to_string(),
                    interface: format!("eth{i}"),
                },
            )
            .collect();
        Some(crate::control::proto::NetworkStatus {
            mode: net.mode.shown(),
            addresses,
            ports: net.ports.iter().map(ToString::to_string).collect(),
            aliases: net.aliases.clone(),
        })
    }

    fn unit_status(&self, name: &str, slot: &Slot) -> UnitStatus {
        let m = &slot.machine;
        let next_start = match m.phase() {
            Phase::Restarting { at_wall, .. } => Some(rfc3339(*at_wall)),
            _ => None,
        };
        let definition_error = self.rejected.get(name).map(|errors| join_errors(errors));
        let res = &slot.spec.resources;
        let failed = matches!(m.phase(), Phase::Failed(_));
        let health = self.probes.shown(name, failed);
        UnitStatus {
            name: name.to_string(),
            description: slot.spec.description.clone(),
            state: unit_state(m.state()),
            sub_state: m.sub_state(&slot.spec.service),
            since: rfc3339(m.since()),
            pid: m.pid(),
            restarts: m.restarts(),
            last_exit: m
                .last_exit()
                .map(|(status, at)| exit_info(status, at, m.last_exit_oom())),
            oom_kills: m.oom_kills(),
            reason: self.failure_reason(name, slot),
            next_start,
            want: if m.want_up() { "up" } else { "down" }.into(),
            hash: slot.spec.hash.clone(),
            path: slot.spec.path.display().to_string(),
            image: slot
                .spec
                .container
                .image
                .as_ref()
                .map(|i| match &i.resolved {
                    Some(r) => format!("{} ({})", i.reference, r.digest),
                    None => i.reference.clone(),
                }),
            exposed_ports: image_ports(&slot.spec),
            definition_error,
            log_file: self
                .log_path(name)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            // Filled in off the loop; limits are known here.
            usage: self.cgroups.is_live(name).then(|| Usage {
                memory_max: res.memory_max,
                pids_max: res.pids_max,
                ..Usage::default()
            }),
            disk_differs: self.disk_fingerprints.get(name) != self.loaded_fingerprints.get(name),
            stop_timed_out: m.killed_at_stop_timeout(),
            leftover: self.cgroups.leftover(name).map(describe_leftover),
            ready: m.is_up(),
            health: health.as_ref().map(|(h, _, _)| health_word(*h).to_string()),
            health_failures: health.as_ref().map_or(0, |(_, f, _)| *f),
            health_output: health.map(|(_, _, out)| out).filter(|o| !o.is_empty()),
            // The service's own words, while it has a process to say them.
            status_text: m
                .pid()
                .and_then(|_| self.notify.status.get(name).map(|(_, text)| text.clone())),
            network: self.network_status(&slot.spec),
            // Read from /proc off the loop (`answer_status`).
            main_pid: None,
            main_pid_in_container: None,
            enabled: !self.fleet.is_disabled(name),
        }
    }

    /// A unit file that never loaded is shown as failed so `supctl status` lists it.
    fn broken_status(&self, name: &str, errors: &[UnitError]) -> UnitStatus {
        let text = join_errors(errors);
        UnitStatus {
            sub_state: "bad-definition".into(),
            since: rfc3339(SystemTime::now()),
            reason: Some(format!("definition rejected: {text}")),
            want: "down".into(),
            path: errors
                .first()
                .map(|e| e.path.display().to_string())
                .unwrap_or_default(),
            definition_error: Some(text),
            log_file: self
                .log_path(name)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            disk_differs: true,
            leftover: self.cgroups.leftover(name).map(describe_leftover),
            enabled: !self.fleet.is_disabled(name),
            ..UnitStatus::new(name, UnitState::Failed)
        }
    }
}

/// The service's own process: `pid` itself, or under the container's init the
/// one `kill` signals (`kill::service_pid`), which is not there yet (None) right
/// after the container's start.
pub(super) fn main_pid(pid: i32, under_init: bool) -> Option<i32> {
    match under_init {
        true => super::kill::service_pid(pid),
        false => Some(pid),
    }
}

pub(super) fn health_word(h: Health) -> &'static str {
    match h {
        Health::Starting => "starting",
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    }
}

fn describe_leftover(l: &crate::cgroup::Leftover) -> String {
    let what = format!(
        "at start supd found {} process(es) of this unit left by an earlier supd and killed them",
        l.processes
    );
    match &l.error {
        None => what,
        Some(e) => format!("{what}; clearing its cgroup failed: {e}"),
    }
}

fn join_errors(errors: &[UnitError]) -> String {
    errors
        .iter()
        .map(UnitError::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn exit_info(status: ExitStatus, at: SystemTime, oom_killed: bool) -> ExitInfo {
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

/// Why a unit was stopped by the `on_failure` of a unit it requires.
fn stopped_by_on_failure(unit: &str, action: crate::unit::OnFailure) -> String {
    let name = crate::unit::names::Named::name(action);
    let again = match action {
        crate::unit::OnFailure::RestartDependents => {
            format!("; it starts again once {unit} is ready")
        }
        _ => String::new(),
    };
    format!("required unit {unit} failed (its on_failure = \"{name}\"){again}")
}

/// An image unit's ExposedPorts, as its image declares them.
fn image_ports(unit: &crate::unit::Unit) -> Vec<String> {
    let resolved = unit
        .container
        .image
        .as_ref()
        .and_then(|i| i.resolved.as_ref());
    resolved
        .map(|r| r.exposed_ports.clone())
        .unwrap_or_default()
}
