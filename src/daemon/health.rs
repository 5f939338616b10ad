//! Health probes on the daemon's side: for each unit with a `[health]` check whose
//! process runs, a tracker (`supervise::health`) says when a probe is due; a probe
//! is a join into the unit's container (`spawn::join`), started in a blocking
//! thread, its output read by a task, its exit reported by the reaper (role
//! `Probe`). Both are needed for a result; a probe that overruns its timeout is
//! killed and counts as failed. Units without `[health]` cost nothing here.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::cgroups::ProbeCgroup;
use super::event_loop::Daemon;
use super::worker::SerialWorker;
use crate::reaper::{ChildOf, Registry, Role};
use crate::spawn::join::{self, EncodedJoinPlan, JoinAction, JoinPlan, Joined};
use crate::spawn::{SpawnError, Step};
use crate::supervise::health::{Health, HealthTracker, OUTPUT_KEPT, Verdict};
use crate::supervise::{ExitStatus, Now};
use crate::unit::{Probe, Unit};

/// What a probe job reports back to the loop.
#[derive(Debug)]
pub enum ProbeReport {
    /// The join helper runs (its pid, so it can be killed at the timeout).
    Started {
        unit: String,
        seq: u64,
        joined: Arc<Joined>,
        /// The plan it was given, kept for the next probes of the same start.
        plan: EncodedJoinPlan,
    },
    /// It could not be started: a failed probe, with the reason.
    NotStarted {
        unit: String,
        seq: u64,
        error: String,
    },
    /// Its output, read to the end (or to the limit).
    Output {
        unit: String,
        seq: u64,
        text: String,
    },
}

/// One unit's probing.
#[derive(Debug)]
struct Probing {
    attempt: u64,
    tracker: HealthTracker,
    running: Option<Running>,
    /// The join plan, made and encoded by the first probe of this start.
    plan: Option<EncodedJoinPlan>,
}

#[derive(Debug, Default)]
struct Running {
    seq: u64,
    joined: Option<Arc<Joined>>,
    output: Option<String>,
    status: Option<ExitStatus>,
}

/// Every unit's probing.
#[derive(Debug)]
pub struct Probes {
    units: HashMap<String, Probing>,
    next_seq: u64,
    reports: mpsc::UnboundedSender<ProbeReport>,
    /// Where probes are started, one after the other.
    starter: SerialWorker,
}

impl Probes {
    pub fn new(reports: mpsc::UnboundedSender<ProbeReport>) -> Self {
        Probes {
            units: HashMap::new(),
            next_seq: 0,
            reports,
            starter: SerialWorker::new("supd-probes"),
        }
    }

    /// The earliest probe or probe timeout due.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.units.values().map(|p| p.tracker.deadline()).min()
    }

    /// Health as `status` shows it: (health, failures in a row, last output).
    pub fn shown(&self, unit: &str) -> Option<(Health, u32, String)> {
        self.units.get(unit).map(|p| {
            (
                p.tracker.health(),
                p.tracker.failures(),
                p.tracker.last_output().to_string(),
            )
        })
    }
}

impl Daemon {
    /// Probe the units that should be probed now: trackers for new runs, none for
    /// units without a running process, probes started or timed out as due. Runs
    /// after every event, so it allocates nothing unless something is due.
    pub(super) fn tend_probes(&mut self) {
        let now = Now::read();
        let fleet = &self.fleet;
        self.probes.units.retain(|name, p| {
            fleet.get(name).is_some_and(|s| {
                s.machine.is_probed() && s.machine.attempt() == p.attempt && s.spec.health.is_some()
            })
        });
        for (name, slot) in fleet.slots() {
            if !slot.machine.is_probed() || self.probes.units.contains_key(name) {
                continue;
            }
            if let Some(spec) = &slot.spec.health {
                let probing = Probing {
                    attempt: slot.machine.attempt(),
                    tracker: HealthTracker::new(spec, now),
                    running: None,
                    plan: None,
                };
                self.probes.units.insert(name.clone(), probing);
            }
        }
        let due: Vec<String> = self
            .probes
            .units
            .iter()
            .filter(|(_, p)| p.tracker.probe_overdue(now) || p.tracker.probe_due(now))
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            self.tend_probe(&name, now);
        }
    }

    fn tend_probe(&mut self, unit: &str, now: Now) {
        let Some(p) = self.probes.units.get_mut(unit) else {
            return;
        };
        if p.tracker.probe_overdue(now) {
            if let Some(j) = p.running.as_ref().and_then(|r| r.joined.as_ref()) {
                j.kill();
            }
            p.running = None;
            self.probe_done(unit, false, "probe timed out; killed".into(), now);
            return;
        }
        if !p.tracker.probe_due(now) {
            return;
        }
        p.tracker.started(now);
        let seq = self.probes.next_seq;
        self.probes.next_seq = seq.wrapping_add(1);
        p.running = Some(Running {
            seq,
            ..Running::default()
        });
        let attempt = p.attempt;
        self.start_probe(unit, attempt, seq);
    }

    /// Start one probe in a blocking thread.
    fn start_probe(&mut self, unit: &str, attempt: u64, seq: u64) {
        let reports = self.probes.reports.clone();
        let Some(slot) = self.fleet.get(unit) else {
            return;
        };
        let spec = slot.spec.clone();
        let target = self
            .main_pidfds
            .get(unit)
            .filter(|(a, _)| *a == attempt)
            .map(|(_, fd)| fd.clone());
        let cached = self.probes.units.get(unit).and_then(|p| p.plan.clone());
        let cgroup = self.cgroups.for_probe(unit);
        let (registry, state_dir) = (self.registry.clone(), self.state_dir().to_path_buf());
        let unit = unit.to_string();
        self.probes.starter.run(move || {
            let owner = ChildOf {
                unit: unit.clone(),
                attempt,
                role: Role::Probe(seq),
            };
            let started = match cached {
                Some(plan) => Ok(plan),
                None => probe_plan(&spec, &state_dir),
            }
            .and_then(|plan| {
                let joined = start(&plan, target, &registry, &owner, cgroup)?;
                Ok((joined, plan))
            });
            let report = match started {
                Ok(((joined, output), plan)) => {
                    read_output(output, unit.clone(), seq, reports.clone());
                    let joined = Arc::new(joined);
                    ProbeReport::Started {
                        unit,
                        seq,
                        joined,
                        plan,
                    }
                }
                Err(e) => ProbeReport::NotStarted {
                    unit,
                    seq,
                    error: e.to_string(),
                },
            };
            let _ = reports.send(report);
        });
    }

    /// A report from a probe job.
    pub(super) fn on_probe_report(&mut self, report: ProbeReport) {
        let now = Now::read();
        let (unit, seq) = match &report {
            ProbeReport::Started { unit, seq, .. }
            | ProbeReport::NotStarted { unit, seq, .. }
            | ProbeReport::Output { unit, seq, .. } => (unit.clone(), *seq),
        };
        let Some(running) = self.running_probe(&unit, seq) else {
            // A probe given up (timed out, or the unit moved on): kill what is left.
            if let ProbeReport::Started { joined, .. } = report {
                joined.kill();
            }
            return;
        };
        match report {
            ProbeReport::Started { joined, plan, .. } => {
                running.joined = Some(joined);
                if let Some(p) = self.probes.units.get_mut(&unit) {
                    p.plan.get_or_insert(plan);
                }
            }
            ProbeReport::Output { text, .. } => running.output = Some(text),
            ProbeReport::NotStarted { error, .. } => {
                self.probe_done(&unit, false, error, now);
                return;
            }
        }
        self.finish_probe_if_done(&unit, now);
    }

    /// The reaper saw probe `seq` of `unit` end.
    pub(super) fn on_probe_exit(&mut self, unit: &str, seq: u64, status: ExitStatus) {
        if let Some(running) = self.running_probe(unit, seq) {
            running.status = Some(status);
            self.finish_probe_if_done(unit, Now::read());
        }
    }

    fn running_probe(&mut self, unit: &str, seq: u64) -> Option<&mut Running> {
        self.probes
            .units
            .get_mut(unit)?
            .running
            .as_mut()
            .filter(|r| r.seq == seq)
    }

    fn finish_probe_if_done(&mut self, unit: &str, now: Now) {
        let Some(p) = self.probes.units.get_mut(unit) else {
            return;
        };
        // Both the exit and the whole output are needed; until then it runs on.
        let complete = p
            .running
            .as_ref()
            .is_some_and(|r| r.status.is_some() && r.output.is_some());
        let Some(Running {
            status: Some(status),
            output: Some(output),
            ..
        }) = p.running.take_if(|_| complete)
        else {
            return;
        };
        let healthy = status == ExitStatus::Code(0);
        let text = if healthy || !output.trim().is_empty() {
            output
        } else {
            format!("probe failed: {status}")
        };
        self.probe_done(unit, healthy, text, now);
    }

    /// A probe result: the tracker decides, the fleet acts.
    fn probe_done(&mut self, unit: &str, healthy: bool, output: String, now: Now) {
        let Some(p) = self.probes.units.get_mut(unit) else {
            return;
        };
        p.running = None;
        let verdict = p.tracker.finished(healthy, &output, now);
        let Some(slot) = self.fleet.get(unit) else {
            return;
        };
        let (ready_on_health, on_unhealthy) = (
            slot.spec.service.lifecycle.ready_on_health,
            slot.spec.health.as_ref().map(|h| h.on_unhealthy),
        );
        let actions = match verdict {
            Verdict::FirstHealthy => {
                tracing::info!(unit, "healthy");
                if ready_on_health {
                    self.fleet.on_ready(unit, now)
                } else {
                    Vec::new()
                }
            }
            Verdict::Recovered => {
                tracing::info!(unit, "healthy again");
                Vec::new()
            }
            Verdict::BecameUnhealthy => {
                tracing::warn!(unit, output = output.trim(), "unhealthy");
                match on_unhealthy {
                    Some(action) => self.fleet.on_unhealthy(unit, action, now),
                    None => Vec::new(),
                }
            }
            Verdict::Unchanged => Vec::new(),
        };
        self.execute(actions);
    }
}

/// The join plan of `spec`'s probe: the service's launch plan (its identity and
/// restrictions) with the probe as the action. Blocking (user lookups).
fn probe_plan(spec: &Unit, state_dir: &std::path::Path) -> Result<EncodedJoinPlan, SpawnError> {
    let health = spec
        .health
        .as_ref()
        .ok_or_else(|| SpawnError::new(Step::Helper, None, None, "no [health] check"))?;
    let mut launch = crate::spawn::plan(spec, state_dir)?;
    let timeout_ms = u64::try_from(health.timeout.as_millis()).unwrap_or(u64::MAX);
    let action = match &health.probe {
        Probe::Exec(argv) => {
            launch.argv = argv.clone();
            JoinAction::Exec
        }
        Probe::Tcp(addr) => JoinAction::Tcp {
            addr: *addr,
            timeout_ms,
        },
        Probe::Http { addr, host, path } => JoinAction::Http {
            addr: *addr,
            host: host.clone(),
            path: path.clone(),
            timeout_ms,
        },
    };
    JoinPlan { launch, action }.encode()
}

/// Start the join helper for one probe. Blocking.
fn start(
    plan: &EncodedJoinPlan,
    target: Option<Arc<OwnedFd>>,
    registry: &Registry,
    owner: &ChildOf,
    cgroup: ProbeCgroup,
) -> Result<(Joined, OwnedFd), SpawnError> {
    let target = target.ok_or_else(|| {
        SpawnError::new(
            Step::Helper,
            None,
            None,
            "the service's process is not known yet",
        )
    })?;
    let mut place = |pid| cgroup.place(pid);
    join::start(
        plan,
        std::os::fd::AsFd::as_fd(&*target),
        registry,
        owner,
        &mut place,
    )
}

fn read_output(fd: OwnedFd, unit: String, seq: u64, reports: mpsc::UnboundedSender<ProbeReport>) {
    let handle = tokio::runtime::Handle::current();
    handle.spawn(async move {
        let text = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            Ok(rx) => {
                let mut buf = Vec::new();
                // Bounded: a probe writing without end cannot grow supd.
                let _ = rx.take(OUTPUT_KEPT as u64 * 4).read_to_end(&mut buf).await;
                String::from_utf8_lossy(&buf).into_owned()
            }
            Err(e) => format!("(output unreadable: {e})"),
        };
        let _ = reports.send(ProbeReport::Output { unit, seq, text });
    });
}
