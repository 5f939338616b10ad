//! Health probes on the daemon's side: for each unit with a `[health]` check whose
//! process runs, a tracker (`supervise::health`) says when a probe is due; a probe
//! is a join into the unit's container (`spawn::join`), started in a thread of its
//! own (`probe_start`), its exit reported by the reaper (role `Probe`). Its output
//! is read once it has exited. A probe that overruns its timeout is killed and
//! counts as failed. Units without `[health]` cost nothing here.
//!
//! What this costs supd per probe is kept small (benchmarks.md): the due probes
//! come out of a deadline queue, never a walk over every unit; the trackers are
//! only reconciled with the fleet after an event that may have changed it; probes
//! due at about the same time start as one batch (one job for the thread, one
//! report back).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::event_loop::Daemon;
use super::probe_start::{self, Prepared, ProbeJob, Started};
use super::worker::SerialWorker;
use crate::supervise::deadlines::Deadlines;
use crate::supervise::health::{Health, HealthTracker, OUTPUT_KEPT, Verdict};
use crate::supervise::{ExitStatus, Now};

/// What the probe thread reports back to the loop: a batch of starts.
#[derive(Debug)]
pub struct ProbeReport(pub Vec<Started>);

/// One unit's probing (one start of its process).
#[derive(Debug)]
struct Probing {
    attempt: u64,
    tracker: HealthTracker,
    running: Option<Running>,
    /// The plan and cgroup of this start, made by its first probe.
    prepared: Option<Arc<Prepared>>,
}

#[derive(Debug)]
struct Running {
    seq: u64,
    /// The join helper (to kill at the timeout) and its output, once started.
    started: Option<probe_start::Joined>,
    status: Option<ExitStatus>,
}

/// Every unit's probing.
#[derive(Debug)]
pub struct Probes {
    units: HashMap<String, Probing>,
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
    pub fn shown(&self, unit: &str) -> Option<(Health, u32, String)> {
        self.units.get(unit).map(|p| {
            (
                p.tracker.health(),
                p.tracker.failures(),
                p.tracker.last_output().to_string(),
            )
        })
    }

    /// The tracker of `unit` changed: queue its new deadline.
    fn reschedule(&mut self, unit: &str) {
        if let Some(p) = self.units.get(unit) {
            self.due.set(unit.to_string(), p.tracker.deadline());
        }
    }
}

impl Daemon {
    /// Trackers for the units that should be probed (a running process of a unit
    /// with `[health]`), none for the others. A walk over every unit: called only
    /// after an event that may have changed the fleet.
    pub(super) fn reconcile_probes(&mut self) {
        let now = Now::read();
        let (fleet, probes) = (&self.fleet, &mut self.probes);
        let due = &mut probes.due;
        probes.units.retain(|name, p| {
            let keep = fleet.get(name).is_some_and(|s| {
                s.machine.is_probed() && s.machine.attempt() == p.attempt && s.spec.health.is_some()
            });
            if !keep {
                due.remove(name);
            }
            keep
        });
        for (name, slot) in fleet.slots() {
            if !slot.machine.is_probed() || probes.units.contains_key(name) {
                continue;
            }
            if let Some(spec) = &slot.spec.health {
                let probing = Probing {
                    attempt: slot.machine.attempt(),
                    tracker: HealthTracker::new(spec, now, probes.origin),
                    running: None,
                    prepared: None,
                };
                probes.due.set(name.clone(), probing.tracker.deadline());
                probes.units.insert(name.clone(), probing);
            }
        }
    }

    /// Start the probes that are due and kill those past their timeout: only the
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
                let _ = reports.send(ProbeReport(started));
            });
        }
    }

    /// One unit whose deadline came: kill an overdue probe, or make the job of a
    /// due one.
    fn tend_probe(&mut self, unit: String, now: Now) -> Option<ProbeJob> {
        let p = self.probes.units.get_mut(&unit)?;
        if p.tracker.probe_overdue(now) {
            if let Some(started) = p.running.as_ref().and_then(|r| r.started.as_ref()) {
                started.kill();
            }
            p.running = None;
            self.probe_done(&unit, false, "probe timed out; killed".into(), now);
            return None;
        }
        if !p.tracker.probe_due(now) {
            // Not due after all (cannot happen: the queue holds the deadline).
            self.probes.reschedule(&unit);
            return None;
        }
        p.tracker.started(now);
        let seq = self.probes.next_seq;
        self.probes.next_seq = seq.wrapping_add(1);
        p.running = Some(Running {
            seq,
            started: None,
            status: None,
        });
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

    /// A batch of probe starts.
    pub(super) fn on_probe_report(&mut self, ProbeReport(batch): ProbeReport) {
        let now = Now::read();
        for started in batch {
            let Started {
                unit,
                seq,
                prepared,
                result,
            } = started;
            let current = self.probes.units.get_mut(&unit).and_then(|p| {
                let running = p.running.as_mut().filter(|r| r.seq == seq)?;
                if let Some(prepared) = prepared {
                    p.prepared.get_or_insert(prepared);
                }
                Some(running)
            });
            let Some(running) = current else {
                // A probe given up (timed out, or the unit moved on): kill what is left.
                if let Ok(joined) = result {
                    joined.kill();
                }
                continue;
            };
            match result {
                Ok(joined) => running.started = Some(joined),
                Err(error) => {
                    self.probe_done(&unit, false, error, now);
                    continue;
                }
            }
            self.finish_probe_if_done(&unit, now);
        }
    }

    /// The reaper saw probe `seq` of `unit` end.
    pub(super) fn on_probe_exit(&mut self, unit: &str, seq: u64, status: ExitStatus) {
        let running = self
            .probes
            .units
            .get_mut(unit)
            .and_then(|p| p.running.as_mut())
            .filter(|r| r.seq == seq);
        if let Some(running) = running {
            running.status = Some(status);
            self.finish_probe_if_done(unit, Now::read());
        }
    }

    /// Once the helper has both been started (its output pipe is here) and exited
    /// (nothing writes to the pipe any more), the probe is over.
    fn finish_probe_if_done(&mut self, unit: &str, now: Now) {
        let Some(p) = self.probes.units.get_mut(unit) else {
            return;
        };
        let done = p
            .running
            .as_ref()
            .is_some_and(|r| r.status.is_some() && r.started.is_some());
        let Some(Running {
            status: Some(status),
            started: Some(joined),
            ..
        }) = p.running.take_if(|_| done)
        else {
            return;
        };
        let output = read_output(&joined.output);
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

/// What the helper left in its output pipe: it has exited, so this never waits
/// (the pipe is non-blocking all the same: a process it left behind could hold
/// the other end open). Bounded: the helper writes at most the tail it kept.
fn read_output(fd: &OwnedFd) -> String {
    let mut buf = vec![0u8; OUTPUT_KEPT * 4];
    let mut len = 0;
    while len < buf.len() {
        let Some(rest) = buf.get_mut(len..) else {
            break;
        };
        match nix::unistd::read(fd, rest) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(e) => return format!("(output unreadable: {e})"),
        }
    }
    buf.truncate(len);
    String::from_utf8_lossy(&buf).into_owned()
}
