//! Health probes on the daemon's side: for each unit with a `[health]` check whose
//! process runs, a tracker (`supervise::health`) says when a probe is due; probes
//! are run by a helper joined into the unit's container (`spawn::join`), one per
//! start of the unit, started in a thread of its own (`probe_start`) and asked for
//! each probe with one byte (`probe_helper`). A probe that overruns its timeout
//! fails, and its helper is killed (the next probe starts another). Units without
//! `[health]` cost nothing here.
//!
//! What this costs supd per probe is kept small (benchmarks.md): a byte written
//! and a result read, no process started by supd; the due probes come out of a
//! deadline queue, never a walk over every unit; the trackers are only
//! reconciled with the fleet after an event that may have changed it; helpers
//! due at about the same time start as one batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::event_loop::Daemon;
use super::probe_helper::HelperConn;
use super::probe_start::{self, Prepared, ProbeJob, Started};
use super::worker::SerialWorker;
use crate::supervise::deadlines::Deadlines;
use crate::supervise::health::{Health, HealthTracker, Verdict};
use crate::supervise::{ExitStatus, Now};

/// What reaches the loop about probes.
#[derive(Debug)]
pub enum ProbeReport {
    /// The probe thread started a batch of helpers (or could not).
    Started(Vec<Started>),
    /// Helper `id` of `unit` answered its probe.
    Result {
        unit: String,
        id: u64,
        status: ExitStatus,
        output: String,
    },
    /// Helper `id` of `unit` is gone (its socket closed), and why.
    Closed { unit: String, id: u64, why: String },
}

/// One unit's probing (one start of its process).
#[derive(Debug)]
struct Probing {
    attempt: u64,
    tracker: HealthTracker,
    /// The helper the running probe waits for (started, or being started).
    running: Option<u64>,
    /// The helper, once started.
    helper: Option<HelperConn>,
    /// The plan and cgroup of this start, made by its first helper.
    prepared: Option<Arc<Prepared>>,
}

/// Every unit's probing.
#[derive(Debug)]
pub struct Probes {
    units: HashMap<String, Probing>,
    /// What the last probes of a unit no longer probed said (it was stopped, or
    /// failed for being unhealthy): shown until its next start or its removal.
    ended: HashMap<String, (Health, u32, String)>,
    /// Each unit's tracker deadline: the next probe, or the running one's timeout.
    due: Deadlines<String>,
    /// Where the trackers count their ticks from.
    origin: Instant,
    next_seq: u64,
    reports: mpsc::UnboundedSender<ProbeReport>,
    /// Where probes are started, one batch after the other.
    starter: SerialWorker,
}

impl Probes {
    pub fn new(reports: mpsc::UnboundedSender<ProbeReport>) -> Self {
        Probes {
            units: HashMap::new(),
            ended: HashMap::new(),
            due: Deadlines::default(),
            origin: Instant::now(),
            next_seq: 0,
            reports,
            starter: SerialWorker::new("supd-probes"),
        }
    }

    /// The earliest probe or probe timeout due.
    pub fn deadline(&self) -> Option<Instant> {
        self.due.first()
    }

    /// Health as `status` shows it: (health, failures in a row, last output).
    /// A unit no longer probed shows its last verdict only if it `failed` (why,
    /// for `on_unhealthy = "stop"`); a stopped one shows none.
    pub fn shown(&self, unit: &str, failed: bool) -> Option<(Health, u32, String)> {
        match self.units.get(unit) {
            Some(p) => Some(shown(&p.tracker)),
            None if failed => self.ended.get(unit).cloned(),
            None => None,
        }
    }

    /// Stop probing `unit` (its helper is dropped, so killed); the next reconcile
    /// starts again from its current definition if it is to be probed.
    pub fn forget(&mut self, unit: &str) {
        self.units.remove(unit);
        self.due.remove(&unit.to_string());
    }

    /// The tracker of `unit` changed: queue its new deadline.
    fn reschedule(&mut self, unit: &str) {
        if let Some(p) = self.units.get(unit) {
            self.due.set(unit.to_string(), p.tracker.deadline());
        }
    }
}

/// A tracker's health as `status` shows it.
fn shown(tracker: &HealthTracker) -> (Health, u32, String) {
    (
        tracker.health(),
        tracker.failures(),
        tracker.last_output().to_string(),
    )
}

impl Daemon {
    /// Trackers for the units that should be probed (a running process of a unit
    /// with `[health]`), none for the others. A walk over every unit: called only
    /// after an event that may have changed the fleet.
    pub(super) fn reconcile_probes(&mut self) {
        let now = Now::read();
        let (fleet, probes) = (&self.fleet, &mut self.probes);
        let (due, ended) = (&mut probes.due, &mut probes.ended);
        probes.units.retain(|name, p| {
            let keep = fleet.get(name).is_some_and(|s| {
                s.machine.is_probed() && s.machine.attempt() == p.attempt && s.spec.health.is_some()
            });
            if !keep {
                due.remove(name);
                ended.insert(name.clone(), shown(&p.tracker));
            }
            keep
        });
        ended.retain(|name, _| fleet.get(name).is_some());
        for (name, slot) in fleet.slots() {
            if !slot.machine.is_probed() || probes.units.contains_key(name) {
                continue;
            }
            if let Some(spec) = &slot.spec.health {
                probes.ended.remove(name);
                let probing = Probing {
                    attempt: slot.machine.attempt(),
                    tracker: HealthTracker::new(spec, now, probes.origin),
                    running: None,
                    helper: None,
                    prepared: None,
                };
                probes.due.set(name.clone(), probing.tracker.deadline());
                probes.units.insert(name.clone(), probing);
            }
        }
    }

    /// Start the probes that are due and fail those past their timeout: only the
    /// units whose deadline has come, taken out of the queue.
    pub(super) fn tend_probes(&mut self) {
        let now = Now::read();
        let mut batch = Vec::new();
        for unit in self.probes.due.take_due(now.mono) {
            if let Some(job) = self.tend_probe(unit, now) {
                batch.push(job);
            }
        }
        if !batch.is_empty() {
            let (registry, state_dir) = (self.registry.clone(), self.state_dir().to_path_buf());
            let reports = self.probes.reports.clone();
            self.probes.starter.run(move || {
                let started = probe_start::start_all(batch, &registry, &state_dir);
                // The loop is gone only when supd ends.
                let _ = reports.send(ProbeReport::Started(started));
            });
        }
    }

    /// One unit whose deadline came: fail an overdue probe (killing its helper),
    /// or ask its helper for a due one, or make the job of starting a helper.
    fn tend_probe(&mut self, unit: String, now: Now) -> Option<ProbeJob> {
        let p = self.probes.units.get_mut(&unit)?;
        if p.tracker.probe_overdue(now) {
            p.running = None;
            p.helper = None;
            self.probe_done(&unit, false, "probe timed out; killed".into(), now);
            return None;
        }
        if !p.tracker.probe_due(now) {
            // Not due after all (cannot happen: the queue holds the deadline).
            self.probes.reschedule(&unit);
            return None;
        }
        p.tracker.started(now);
        match p.helper.as_ref().map(|h| h.request().map(|()| h.id)) {
            Some(Ok(id)) => {
                p.running = Some(id);
                self.probes.reschedule(&unit);
                return None;
            }
            // A helper that cannot take the request is gone: another one starts.
            Some(Err(e)) => {
                tracing::debug!(unit, error = %e, "probe helper gone; starting another");
                p.helper = None;
            }
            None => {}
        }
        let seq = self.probes.next_seq;
        self.probes.next_seq = seq.wrapping_add(1);
        p.running = Some(seq);
        let (attempt, prepared) = (p.attempt, p.prepared.clone());
        self.probes.reschedule(&unit);
        let slot = self.fleet.get(&unit)?;
        let target = self
            .main_pidfds
            .get(&unit)
            .filter(|(a, _)| *a == attempt)
            .map(|(_, fd)| fd.clone());
        let prepared = match prepared {
            Some(ready) => Ok(ready),
            None => Err((slot.spec.clone(), self.cgroups.for_probe(&unit))),
        };
        Some(ProbeJob {
            unit,
            attempt,
            seq,
            target,
            prepared,
        })
    }

    /// A report about probes.
    pub(super) fn on_probe_report(&mut self, report: ProbeReport) {
        let now = Now::read();
        match report {
            ProbeReport::Started(batch) => {
                for started in batch {
                    self.on_helper_started(started, now);
                }
            }
            ProbeReport::Result {
                unit,
                id,
                status,
                output,
            } => {
                if self.take_running(&unit, id) {
                    let healthy = status == ExitStatus::Code(0);
                    let text = if healthy || !output.trim().is_empty() {
                        output
                    } else {
                        format!("probe failed: {status}")
                    };
                    self.probe_done(&unit, healthy, text, now);
                }
            }
            ProbeReport::Closed { unit, id, why } => {
                if let Some(p) = self.probes.units.get_mut(&unit) {
                    p.helper.take_if(|h| h.id == id);
                }
                if self.take_running(&unit, id) {
                    let text = format!("probe failed: its helper ended ({why})");
                    self.probe_done(&unit, false, text, now);
                }
            }
        }
    }

    fn on_helper_started(&mut self, started: Started, now: Now) {
        let Started {
            unit,
            seq,
            prepared,
            result,
        } = started;
        let reports = self.probes.reports.clone();
        let Some(p) = self
            .probes
            .units
            .get_mut(&unit)
            .filter(|p| p.running == Some(seq))
        else {
            // Given up meanwhile (timed out, or the unit moved on): dropped, killed.
            if let Ok(joined) = result {
                joined.helper.kill();
            }
            return;
        };
        if let Some(prepared) = prepared {
            p.prepared.get_or_insert(prepared);
        }
        let conn = result.and_then(|joined| HelperConn::new(&unit, seq, joined, reports));
        match conn {
            Ok(conn) => p.helper = Some(conn),
            Err(error) => {
                p.running = None;
                self.probe_done(&unit, false, error, now);
            }
        }
    }

    /// Whether helper `id` of `unit` runs its probe: if so, it no longer does.
    fn take_running(&mut self, unit: &str, id: u64) -> bool {
        self.probes
            .units
            .get_mut(unit)
            .and_then(|p| p.running.take_if(|g| *g == id))
            .is_some()
    }

    /// A probe result: the tracker decides, the fleet acts.
    fn probe_done(&mut self, unit: &str, healthy: bool, output: String, now: Now) {
        let Some(p) = self.probes.units.get_mut(unit) else {
            return;
        };
        p.running = None;
        let verdict = p.tracker.finished(healthy, &output, now);
        self.probes.reschedule(unit);
        self.shown_changed = true;
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
                if !ready_on_health {
                    return;
                }
                self.fleet.on_ready(unit, now)
            }
            Verdict::Recovered => {
                tracing::info!(unit, "healthy again");
                return;
            }
            Verdict::BecameUnhealthy => {
                tracing::warn!(unit, output = output.trim(), "unhealthy");
                let Some(action) = on_unhealthy else {
                    return;
                };
                self.fleet.on_unhealthy(unit, action, now)
            }
            Verdict::Unchanged => return,
        };
        // The fleet was asked: whatever it did, the loop looks at it again.
        self.fleet_touched = true;
        self.execute(actions);
    }
}
