//! The daemon's use of cgroups: which unit has one, and the ordering of the
//! blocking work on it. Creating, killing and removing a unit's cgroup happen in
//! blocking threads; a per-unit gate (a lock plus the number of the latest start)
//! keeps them in order, so the clean-up of a stopped run never kills the processes
//! of the run that started after it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Cgroups;
use crate::spawn::{SpawnError, Step};
use crate::unit::ResourceSpec;

#[derive(Debug, Default)]
struct Gate {
    lock: Mutex<()>,
    /// The latest start of the unit; older clean-ups give way to it.
    epoch: AtomicU64,
}

impl Gate {
    fn enter(&self) -> MutexGuard<'_, ()> {
        // The guarded work leaves no state behind a panic; a poisoned lock is usable.
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
pub struct UnitCgroups {
    cgroups: Option<Arc<Cgroups>>,
    /// Why there are no cgroups (shown when a unit needs them).
    unavailable: String,
    gates: HashMap<String, Arc<Gate>>,
    /// Units that may have a cgroup directory right now.
    live: HashSet<String>,
    /// OOM kills already accounted per unit.
    oom_seen: HashMap<String, u64>,
    /// The previous CPU reading per unit, for a recent CPU percentage.
    cpu_seen: Mutex<HashMap<String, (u64, std::time::Instant)>>,
}

/// What a spawn thread needs to put the new process into the unit's cgroup.
#[derive(Debug)]
pub struct SpawnCgroup {
    cgroups: Option<Arc<Cgroups>>,
    unavailable: String,
    gate: Arc<Gate>,
    unit: String,
    resources: ResourceSpec,
}

impl UnitCgroups {
    /// Set up supd's subtree `root`; without cgroups (none mounted, no permission)
    /// supd still runs, and only units with `[resources]` fail to start.
    pub fn new(root: &str) -> UnitCgroups {
        let (cgroups, unavailable) = match Cgroups::init(root) {
            Ok(c) => {
                tracing::info!(layout = c.layout().describe(), root, "cgroups ready");
                (Some(Arc::new(c)), String::new())
            }
            Err(e) => {
                tracing::warn!("running without cgroups: {e}");
                (None, e.to_string())
            }
        };
        UnitCgroups {
            cgroups,
            unavailable,
            gates: HashMap::new(),
            live: HashSet::new(),
            oom_seen: HashMap::new(),
            cpu_seen: Mutex::new(HashMap::new()),
        }
    }

    fn gate(&mut self, unit: &str) -> Arc<Gate> {
        self.gates.entry(unit.to_string()).or_default().clone()
    }

    /// A start of `unit` (attempt `spawn_gen`) is about to be handed to a thread.
    pub fn for_spawn(
        &mut self,
        unit: &str,
        spawn_gen: u64,
        resources: &ResourceSpec,
    ) -> SpawnCgroup {
        let gate = self.gate(unit);
        gate.epoch.store(spawn_gen, Ordering::SeqCst);
        if self.cgroups.is_some() {
            self.live.insert(unit.to_string());
        }
        SpawnCgroup {
            cgroups: self.cgroups.clone(),
            unavailable: self.unavailable.clone(),
            gate,
            unit: unit.to_string(),
            resources: resources.clone(),
        }
    }

    /// Kill everything in the unit's cgroup (SIGKILL time), unless a newer start
    /// came first.
    pub fn kill(&mut self, unit: &str) {
        self.in_background(unit, false);
    }

    /// The unit has no process any more: kill leftovers and remove its cgroup.
    pub fn settled(&mut self, unit: &str) {
        if self.live.remove(unit) {
            self.in_background(unit, true);
        }
    }

    /// Units that may still have a cgroup (for `settled` checks).
    pub fn live_units(&self) -> Vec<String> {
        self.live.iter().cloned().collect()
    }

    fn in_background(&mut self, unit: &str, remove: bool) {
        let Some(cgroups) = self.cgroups.clone() else {
            return;
        };
        let gate = self.gate(unit);
        let epoch = gate.epoch.load(Ordering::SeqCst);
        let unit = unit.to_string();
        tokio::task::spawn_blocking(move || {
            let _held = gate.enter();
            if gate.epoch.load(Ordering::SeqCst) != epoch {
                return; // a newer start owns the cgroup now and cleans up first
            }
            let result = cgroups.kill_all(&unit).and_then(|()| {
                if remove {
                    cgroups.remove(&unit)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = result {
                tracing::warn!(unit, "cgroup clean-up: {e}");
            }
        });
    }

    /// New limits for a unit that keeps running (a reload changed only them).
    pub fn update(&mut self, unit: &str, resources: &ResourceSpec) {
        let Some(cgroups) = self.cgroups.clone() else {
            return;
        };
        if !self.live.contains(unit) {
            return; // applied at its next start
        }
        let gate = self.gate(unit);
        let (unit, resources) = (unit.to_string(), resources.clone());
        tokio::task::spawn_blocking(move || {
            let _held = gate.enter();
            match cgroups.apply(&unit, &resources) {
                Ok(()) => tracing::info!(unit, "resource limits updated in place"),
                Err(e) => tracing::warn!(unit, "updating resource limits: {e}"),
            }
        });
    }

    /// Whether the unit's cgroup counted a new OOM kill since the last call.
    pub fn new_oom_kill(&mut self, unit: &str) -> bool {
        let Some(cgroups) = &self.cgroups else {
            return false;
        };
        let count = cgroups.oom_kills(unit);
        let seen = self.oom_seen.entry(unit.to_string()).or_insert(0);
        let increased = count > *seen;
        *seen = count;
        increased
    }

    /// Usage of a unit with a cgroup, with the CPU percentage since the last call.
    pub fn usage(&self, unit: &str, res: &ResourceSpec) -> Option<crate::control::proto::Usage> {
        let cgroups = self.cgroups.as_ref()?;
        if !self.live.contains(unit) {
            return None;
        }
        let raw = cgroups.usage(unit);
        let now = std::time::Instant::now();
        let mut seen = self.cpu_seen.lock().unwrap_or_else(|p| p.into_inner());
        let cpu_percent = raw.cpu_usage_usec.and_then(|cpu| {
            let previous = seen.insert(unit.to_string(), (cpu, now))?;
            let elapsed = now.duration_since(previous.1).as_micros() as f64;
            (elapsed > 0.0 && cpu >= previous.0)
                .then(|| (cpu - previous.0) as f64 * 100.0 / elapsed)
        });
        Some(crate::control::proto::Usage {
            memory_current: raw.memory_current,
            memory_peak: raw.memory_peak,
            memory_max: res.memory_max,
            cpu_usage_usec: raw.cpu_usage_usec,
            cpu_percent,
            tasks: raw.tasks,
            pids_max: res.pids_max,
        })
    }

    /// supd exits: every unit cgroup and the subtree go.
    pub fn teardown(&self) {
        if let Some(c) = &self.cgroups
            && let Err(e) = c.teardown()
        {
            tracing::warn!("removing supd's cgroups: {e}");
        }
    }
}

impl SpawnCgroup {
    /// Hold the unit's gate for the whole start.
    pub fn hold(&self) -> MutexGuard<'_, ()> {
        self.gate.enter()
    }

    /// Empty the unit's cgroup of leftovers of an earlier run, then create it with
    /// the limits. Call with the gate held.
    pub fn prepare(&self) -> Result<(), SpawnError> {
        let fail = |e: super::CgroupError| {
            SpawnError::new(Step::Cgroup, Some(&self.unit), None, e.to_string())
        };
        match &self.cgroups {
            Some(c) => {
                c.kill_all(&self.unit).map_err(fail)?;
                c.create(&self.unit, &self.resources).map_err(fail)
            }
            None if self.resources.is_empty() => Ok(()),
            None => Err(SpawnError::new(
                Step::Cgroup,
                Some(&self.unit),
                None,
                format!(
                    "[resources] needs cgroups, which supd could not set up: {}",
                    self.unavailable
                ),
            )),
        }
    }

    /// Put the helper into the cgroup before it is given its plan.
    pub fn place(&self, pid: i32) -> Result<(), SpawnError> {
        match &self.cgroups {
            Some(c) => c
                .place(&self.unit, pid)
                .map_err(|e| SpawnError::new(Step::Cgroup, Some(&self.unit), None, e.to_string())),
            None => Ok(()),
        }
    }
}
