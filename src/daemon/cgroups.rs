//! The daemon's use of cgroups: which unit has one, and the ordering of the blocking
//! work on it. Creating, killing and removing a unit's cgroup happen in blocking
//! threads; a per-unit gate (a lock plus the number of the latest start attempt)
//! keeps them in order, so the clean-up of a stopped run never kills the processes
//! of the run that started after it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::cgroup::{CgroupError, CgroupTree, Leftover, RawUsage};
use crate::unit::ResourceSpec;

#[derive(Debug, Default)]
struct Gate {
    lock: Mutex<()>,
    /// The latest start attempt of the unit; older clean-ups give way to it.
    attempt: AtomicU64,
}

impl Gate {
    fn enter(&self) -> MutexGuard<'_, ()> {
        // The guarded work leaves no state behind a panic; a poisoned lock is usable.
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a unit's cgroup could not be made ready for a start.
#[derive(Debug, thiserror::Error)]
pub enum CgroupSetupError {
    #[error("cgroup {unit}: {source}")]
    Driver { unit: String, source: CgroupError },
    #[error("[resources] needs cgroups, which supd could not set up: {0}")]
    Unavailable(String),
}

/// Every unit's cgroup, as the event loop sees them.
#[derive(Debug)]
pub struct CgroupJobs {
    driver: Option<Arc<CgroupTree>>,
    /// Why there are no cgroups (shown when a unit needs them).
    unavailable: String,
    gates: HashMap<String, Arc<Gate>>,
    /// Units that may have a cgroup directory right now.
    live: HashSet<String>,
    /// The previous CPU reading per unit, for a recent CPU percentage.
    cpu_seen: Arc<Mutex<HashMap<String, (u64, Instant)>>>,
    /// Unit cgroups an earlier supd left behind, found at start.
    leftovers: HashMap<String, Leftover>,
}

/// What a start thread needs to put the new process into the unit's cgroup.
#[derive(Debug)]
pub struct StartCgroup {
    driver: Option<Arc<CgroupTree>>,
    unavailable: String,
    gate: Arc<Gate>,
    unit: String,
    resources: ResourceSpec,
}

/// Reads usage of a set of units in a blocking thread (never on the event loop).
#[derive(Debug)]
pub struct UsageReader {
    driver: Arc<CgroupTree>,
    cpu_seen: Arc<Mutex<HashMap<String, (u64, Instant)>>>,
}

/// Usage of one unit, with the CPU percentage since the previous reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub raw: RawUsage,
    pub cpu_percent: Option<f64>,
}

impl CgroupJobs {
    /// Set up supd's subtree `root`; without cgroups (none mounted, no permission)
    /// supd still runs, and only units with `[resources]` fail to start. Whatever an
    /// earlier supd left in the subtree (it was killed) is killed and removed first.
    pub async fn new(root: &str) -> CgroupJobs {
        let root = root.to_string();
        let setup = tokio::task::spawn_blocking(move || {
            CgroupTree::init(&root).map(|tree| {
                tracing::info!(layout = tree.layout().describe(), root, "cgroups ready");
                let leftovers = tree.clear_leftovers();
                (tree, leftovers)
            })
        })
        .await;
        let (driver, unavailable, leftovers) = match setup {
            Ok(Ok((tree, leftovers))) => (Some(Arc::new(tree)), String::new(), leftovers),
            Ok(Err(e)) => {
                tracing::warn!("running without cgroups: {e}");
                (None, e.to_string(), Vec::new())
            }
            Err(e) => (None, format!("setting up cgroups: {e}"), Vec::new()),
        };
        for l in &leftovers {
            match &l.error {
                None => tracing::warn!(
                    unit = %l.unit,
                    processes = l.processes,
                    "found the cgroup of an earlier supd's unit; killed what was left in it"
                ),
                Some(e) => tracing::error!(
                    unit = %l.unit,
                    processes = l.processes,
                    "found the cgroup of an earlier supd's unit and could not clear it: {e}"
                ),
            }
        }
        CgroupJobs {
            driver,
            unavailable,
            gates: HashMap::new(),
            live: HashSet::new(),
            cpu_seen: Arc::default(),
            leftovers: leftovers.into_iter().map(|l| (l.unit.clone(), l)).collect(),
        }
    }

    /// What an earlier supd left of `unit` (found and killed at start).
    pub fn leftover(&self, unit: &str) -> Option<&Leftover> {
        self.leftovers.get(unit)
    }

    fn gate(&mut self, unit: &str) -> Arc<Gate> {
        self.gates.entry(unit.to_string()).or_default().clone()
    }

    /// Start attempt `attempt` of `unit` is about to be handed to a thread.
    pub fn for_start(&mut self, unit: &str, attempt: u64, resources: &ResourceSpec) -> StartCgroup {
        let gate = self.gate(unit);
        gate.attempt.store(attempt, Ordering::SeqCst);
        if self.driver.is_some() {
            self.live.insert(unit.to_string());
        }
        StartCgroup {
            driver: self.driver.clone(),
            unavailable: self.unavailable.clone(),
            gate,
            unit: unit.to_string(),
            resources: resources.clone(),
        }
    }

    /// Kill everything in the unit's cgroup, unless a newer start came first.
    pub fn kill(&mut self, unit: &str) {
        if self.live.contains(unit) {
            self.in_background(unit, false);
        }
    }

    /// The unit has no process any more: kill leftovers and remove its cgroup.
    pub fn release(&mut self, unit: &str) {
        if self.live.remove(unit) {
            self.in_background(unit, true);
        }
    }

    pub fn is_live(&self, unit: &str) -> bool {
        self.live.contains(unit)
    }

    fn in_background(&mut self, unit: &str, remove: bool) {
        let Some(driver) = self.driver.clone() else {
            return;
        };
        let gate = self.gate(unit);
        let attempt = gate.attempt.load(Ordering::SeqCst);
        let unit = unit.to_string();
        tokio::task::spawn_blocking(move || {
            let _held = gate.enter();
            if gate.attempt.load(Ordering::SeqCst) != attempt {
                return; // a newer start owns the cgroup now and cleans up first
            }
            let result = driver
                .kill_all(&unit)
                .and_then(|()| if remove { driver.remove(&unit) } else { Ok(()) });
            if let Err(e) = result {
                tracing::warn!(unit, "cgroup clean-up: {e}");
            }
        });
    }

    /// New limits for a unit that keeps running (a reload changed only them).
    pub fn update(&mut self, unit: &str, resources: &ResourceSpec) {
        let Some(driver) = self.driver.clone() else {
            return;
        };
        if !self.live.contains(unit) {
            return; // applied at its next start
        }
        let gate = self.gate(unit);
        let (unit, resources) = (unit.to_string(), resources.clone());
        tokio::task::spawn_blocking(move || {
            let _held = gate.enter();
            match driver.apply(&unit, &resources) {
                Ok(()) => tracing::info!(unit, "resource limits updated in place"),
                Err(e) => tracing::warn!(unit, "updating resource limits: {e}"),
            }
        });
    }

    /// What the exit annotator needs to count OOM kills (None without cgroups).
    pub fn oom_reader(&self) -> Option<Arc<CgroupTree>> {
        self.driver.clone()
    }

    /// A reader for the usage of units with a cgroup (None without cgroups).
    pub fn usage_reader(&self) -> Option<UsageReader> {
        Some(UsageReader {
            driver: self.driver.clone()?,
            cpu_seen: self.cpu_seen.clone(),
        })
    }

    /// supd exits: every unit cgroup and the subtree go.
    pub fn teardown(&self) {
        if let Some(c) = &self.driver
            && let Err(e) = c.teardown()
        {
            tracing::warn!("removing supd's cgroups: {e}");
        }
    }
}

impl UsageReader {
    /// Blocking: reads the unit's cgroup files.
    pub fn read(&self, unit: &str) -> Usage {
        let raw = self.driver.usage(unit);
        let now = Instant::now();
        let mut seen = self.cpu_seen.lock().unwrap_or_else(|p| p.into_inner());
        let cpu_percent = raw.cpu_usage_usec.and_then(|cpu| {
            let previous = seen.insert(unit.to_string(), (cpu, now))?;
            let elapsed = now.duration_since(previous.1).as_micros() as f64;
            (elapsed > 0.0 && cpu >= previous.0)
                .then(|| (cpu - previous.0) as f64 * 100.0 / elapsed)
        });
        Usage { raw, cpu_percent }
    }
}

impl StartCgroup {
    /// Hold the unit's gate for the whole start.
    pub fn hold(&self) -> MutexGuard<'_, ()> {
        self.gate.enter()
    }

    /// Empty the unit's cgroup of leftovers of an earlier run, then create it with
    /// the limits. Call with the gate held.
    pub fn prepare(&self) -> Result<(), CgroupSetupError> {
        let driver_error = |source| CgroupSetupError::Driver {
            unit: self.unit.clone(),
            source,
        };
        match &self.driver {
            Some(c) => {
                c.kill_all(&self.unit).map_err(driver_error)?;
                c.create(&self.unit, &self.resources).map_err(driver_error)
            }
            None if self.resources.is_empty() => Ok(()),
            None => Err(CgroupSetupError::Unavailable(self.unavailable.clone())),
        }
    }

    /// Put the helper into the cgroup before it is given its plan.
    pub fn place(&self, pid: i32) -> Result<(), CgroupError> {
        match &self.driver {
            Some(c) => c.place(&self.unit, pid),
            None => Ok(()),
        }
    }
}
