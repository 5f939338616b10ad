//! The daemon's use of cgroups: which unit has one, and the ordering of the blocking
//! work on it. Creating, killing and removing a unit's cgroup happen in blocking
//! threads; a per-unit gate (a lock plus the number of the latest start attempt)
//! keeps them in order, so the clean-up of a stopped run never kills the processes
//! of the run that started after it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::cgroup::devices::{DeviceAllowlist, DeviceError};
use crate::cgroup::{CgroupError, CgroupTree, Leftover, RawUsage};
use crate::memory::Shrink;
use crate::unit::{Protection, ResourceSpec};

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

/// Recent CPU readings (µs used, when) per unit, shared by every usage reader.
type CpuSamples = Arc<Mutex<HashMap<String, VecDeque<(u64, Instant)>>>>;

/// Why a unit's cgroup could not be made ready for a start.
#[derive(Debug, thiserror::Error)]
pub enum CgroupSetupError {
    #[error("cgroup {unit}: {source}")]
    Driver { unit: String, source: CgroupError },
    #[error("[resources] needs cgroups, which supd could not set up: {0}")]
    Unavailable(String),
    /// A `[[device]]` is missing or not a device node.
    #[error("device allowlist: {0}")]
    DeviceNode(#[from] DeviceError),
    /// The driver's step of the device allowlist failed (a v1 file, a bpf call,
    /// no device control on this host).
    #[error("device allowlist: {0}")]
    DeviceControl(CgroupError),
    #[error(
        "device allowlist: private_devices needs cgroups, which supd could not set up ({0}); \
         private_devices = false runs the unit without a device allowlist"
    )]
    NoCgroupsForDevices(String),
}

impl CgroupSetupError {
    /// A driver error; one of the device allowlist says so first.
    fn driver(unit: &str, e: CgroupError) -> CgroupSetupError {
        match e {
            CgroupError::Devices(inner) => CgroupSetupError::DeviceControl(*inner),
            source => CgroupSetupError::Driver {
                unit: unit.to_string(),
                source,
            },
        }
    }
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
    /// Recent CPU readings per unit, for a CPU percentage over a window.
    cpu_seen: CpuSamples,
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

/// What a probe's start needs to put the probe into the unit's cgroup.
#[derive(Debug)]
pub struct ProbeCgroup {
    driver: Option<Arc<CgroupTree>>,
    unit: String,
}

impl ProbeCgroup {
    /// The unit's cgroup files the probe's helper writes itself into (none
    /// without a cgroup; see `CgroupTree::join_files`).
    pub fn join_files(&self) -> Vec<std::path::PathBuf> {
        self.driver
            .as_ref()
            .map(|c| c.join_files(&self.unit))
            .unwrap_or_default()
    }
}

/// Reads usage of a set of units in a blocking thread (never on the event loop).
#[derive(Debug)]
pub struct UsageReader {
    driver: Arc<CgroupTree>,
    cpu_seen: CpuSamples,
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

    /// For a health probe of `unit` (no change to the unit's cgroup bookkeeping).
    pub fn for_probe(&self, unit: &str) -> ProbeCgroup {
        ProbeCgroup {
            driver: self.driver.clone().filter(|_| self.live.contains(unit)),
            unit: unit.to_string(),
        }
    }

    /// Whether supd has a cgroup subtree.
    pub fn available(&self) -> bool {
        self.driver.is_some()
    }

    /// supd's subtree as `/proc/PID/cgroup` names it (none without cgroups).
    pub fn subtree_paths(&self) -> Vec<std::path::PathBuf> {
        self.driver
            .as_ref()
            .map(|d| d.subtree_paths())
            .unwrap_or_default()
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

    /// Send `signals`, in order, to every process in the unit's cgroup but `skip` (a
    /// container's init, which would pass them on a second time). False when the
    /// unit has no cgroup: the caller signals the process group instead.
    pub fn signal(&mut self, unit: &str, signals: &[Signal], skip: Option<i32>) -> bool {
        let Some(driver) = self.driver.clone().filter(|_| self.live.contains(unit)) else {
            return false;
        };
        let gate = self.gate(unit);
        let (unit, signals) = (unit.to_string(), signals.to_vec());
        tokio::task::spawn_blocking(move || {
            let _held = gate.enter();
            for signal in signals {
                // Each pid is checked to be a member still (pidfd): never a reused one.
                driver.signal_members(&unit, signal, skip);
            }
        });
        true
    }

    /// The unit has no process any more: kill leftovers and remove its cgroup.
    pub fn release(&mut self, unit: &str) {
        if self.live.remove(unit) {
            self.in_background(unit, true);
        }
    }

    /// What tells whether a process is in the unit's cgroup (from its
    /// `/proc/PID/cgroup`); `None` without cgroups.
    pub fn membership(&self, unit: &str) -> Option<crate::notify::sender::Membership> {
        let driver = self.driver.clone()?;
        let unit = unit.to_string();
        Some(Arc::new(move |text: &str| driver.holds(&unit, text)))
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

    /// `units` were removed and their processes are gone: what is kept about them
    /// goes, as do the gates no job holds (a gate only orders the jobs that hold it;
    /// the next job of a unit makes a new one). A gate still held now goes at a
    /// later call.
    pub fn forget(&mut self, units: &[String]) {
        for unit in units {
            self.leftovers.remove(unit);
        }
        self.gates.retain(|_, gate| Arc::strong_count(gate) > 1);
        self.gates.shrink_after_churn();
        self.live.shrink_after_churn();
        // Samples only matter for a unit with a cgroup (a new one starts afresh).
        let mut seen = self.cpu_seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|u, _| self.live.contains(u));
        seen.shrink_after_churn();
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
    /// Blocking: the usage of each of `units` (with a cgroup), in order, with its
    /// CPU percentage; the files of many units are read on a few threads
    /// (`CgroupTree::usage_of`).
    pub fn read_all(&self, units: &[String]) -> Vec<Usage> {
        let raw = self.driver.usage_of(units);
        let now = Instant::now();
        let mut seen = self.cpu_seen.lock().unwrap_or_else(|p| p.into_inner());
        units
            .iter()
            .zip(raw)
            .map(|(unit, raw)| with_cpu_percent(&mut seen, unit, raw, now))
            .collect()
    }
}

/// `raw` with the CPU percentage of `unit` since its samples in `seen`.
fn with_cpu_percent(
    seen: &mut HashMap<String, VecDeque<(u64, Instant)>>,
    unit: &str,
    raw: RawUsage,
    now: Instant,
) -> Usage {
    let cpu_percent = raw.cpu_usage_usec.and_then(|cpu| {
        // Room for all samples at once: a deque that grew query by query during
        // a storm would leave its blocks all over the heap.
        // Looked up before inserting: the key is allocated only for a unit new here.
        if !seen.contains_key(unit) {
            seen.insert(unit.to_string(), VecDeque::with_capacity(CPU_SAMPLES + 1));
        }
        cpu_percent(seen.get_mut(unit)?, cpu, now)
    });
    Usage { raw, cpu_percent }
}

/// CPU use is a rate, measured over at least this long: a window shorter than that
/// would make two quick queries disagree wildly (one sees 0%, the next 114%).
const CPU_WINDOW: Duration = Duration::from_millis(500);
/// Samples kept per unit (queries of several clients interleave).
const CPU_SAMPLES: usize = 16;
/// Readings closer than this to the newest kept sample are not kept: however often
/// clients ask, the kept samples reach back further than `CPU_WINDOW`.
const CPU_SAMPLE_SPACING: Duration = Duration::from_millis(62);

/// Record the reading `cpu` (µs used so far) at `now`; the CPU percentage over the
/// newest window of at least `CPU_WINDOW`, if there is one.
fn cpu_percent(samples: &mut VecDeque<(u64, Instant)>, cpu: u64, now: Instant) -> Option<f64> {
    // A counter that went backwards is a new cgroup (the unit restarted).
    if samples.back().is_some_and(|(c, _)| *c > cpu) {
        samples.clear();
    }
    let base = samples
        .iter()
        .rev()
        .find(|(_, at)| now.saturating_duration_since(*at) >= CPU_WINDOW)
        .copied();
    let spaced = samples
        .back()
        .is_none_or(|(_, at)| now.saturating_duration_since(*at) >= CPU_SAMPLE_SPACING);
    if spaced {
        samples.push_back((cpu, now));
        if samples.len() > CPU_SAMPLES {
            samples.pop_front();
        }
    }
    let (then_cpu, then) = base?;
    let elapsed = now.saturating_duration_since(then).as_micros() as f64;
    Some(cpu.saturating_sub(then_cpu) as f64 * 100.0 / elapsed)
}

impl StartCgroup {
    /// Hold the unit's gate for the whole start.
    pub fn hold(&self) -> MutexGuard<'_, ()> {
        self.gate.enter()
    }

    /// Empty the unit's cgroup of leftovers of an earlier run, then create it with
    /// the limits and, with `private_devices`, the device allowlist (the
    /// `[[device]]` nodes are stat'ed now). Call with the gate held.
    ///
    /// Without cgroups a unit with `private_devices` does not start: nothing
    /// would stop it from opening a block device it creates, and the relaxation
    /// is the unit's to state (`private_devices = false`), not supd's to assume.
    pub fn prepare(&self, protection: &Protection) -> Result<(), CgroupSetupError> {
        let devices = match protection.private_devices {
            true => Some(DeviceAllowlist::for_unit(&protection.devices)?),
            false => None,
        };
        let driver_error = |source| CgroupSetupError::driver(&self.unit, source);
        match &self.driver {
            Some(c) => {
                c.kill_all(&self.unit).map_err(driver_error)?;
                c.create_with(&self.unit, &self.resources, devices.as_ref())
                    .map_err(driver_error)
            }
            None if devices.is_some() => Err(CgroupSetupError::NoCgroupsForDevices(
                self.unavailable.clone(),
            )),
            None if self.resources.is_empty() => Ok(()),
            None => Err(CgroupSetupError::Unavailable(self.unavailable.clone())),
        }
    }

    /// The unit's cgroup directory, open, where the helper can be created inside
    /// it (pure cgroup v2 only; see `spawn::spawn`). Call after `prepare`.
    pub fn clone_into(&self) -> Option<std::os::fd::OwnedFd> {
        use nix::fcntl::{OFlag, open};
        let dir = self.driver.as_ref()?.clone_into_dir(&self.unit)?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        open(&dir, flags, nix::sys::stat::Mode::empty()).ok()
    }

    /// The unit's cgroup files the start's helper writes itself into, unless it
    /// was created inside (see `CgroupTree::join_files`).
    pub fn join_files(&self) -> Vec<std::path::PathBuf> {
        self.driver
            .as_ref()
            .map(|c| c.join_files(&self.unit))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::DeviceSpec;

    #[test]
    fn without_cgroups_private_devices_fails_naming_the_relaxation() {
        let start = StartCgroup {
            driver: None,
            unavailable: "no cgroup hierarchy found".into(),
            gate: Arc::default(),
            unit: "web".into(),
            resources: ResourceSpec::default(),
        };
        let mut protection = Protection::default();
        assert!(protection.private_devices, "the default");
        let err = start.prepare(&protection).expect_err("unprotectable");
        let text = err.to_string();
        assert!(text.starts_with("device allowlist: "), "{text}");
        assert!(text.contains("no cgroup hierarchy found"), "{text}");
        assert!(text.contains("private_devices = false"), "{text}");

        protection.devices = vec![DeviceSpec {
            path: "/dev/sup-no-such-device".into(),
            access: "rw".into(),
        }];
        let err = start.prepare(&protection).expect_err("missing node");
        assert!(
            matches!(&err, CgroupSetupError::DeviceNode(e) if e.errno() == Some(libc::ENOENT)),
            "{err:?}"
        );
        assert!(err.to_string().contains("/dev/sup-no-such-device"), "{err}");

        protection.private_devices = false;
        protection.devices.clear();
        start
            .prepare(&protection)
            .expect("relaxed: runs without cgroups");
    }

    #[test]
    fn cpu_percent_is_a_rate_over_a_window_whoever_asks() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = VecDeque::new();
        // A unit held at 50% of a CPU: 500 µs of CPU per ms.
        let at = |t: u64| (t * 500, t0 + ms(t));
        assert_eq!(cpu_percent(&mut s, at(0).0, at(0).1), None, "no window yet");
        assert_eq!(cpu_percent(&mut s, at(100).0, at(100).1), None, "too short");
        let p = cpu_percent(&mut s, at(1000).0, at(1000).1).expect("a window");
        assert!((p - 50.0).abs() < 0.01, "{p}");
        // A second client asking right after sees the same rate, not 0% or 100%.
        let q = cpu_percent(&mut s, at(1010).0, at(1010).1).expect("window");
        assert!((q - 50.0).abs() < 0.01, "{q}");
        // Asked every 10 ms for two seconds (many clients): a window all along.
        for t in (1010..3010).step_by(10) {
            let p = cpu_percent(&mut s, at(t).0, at(t).1).expect("a window");
            assert!((p - 50.0).abs() < 0.01, "{t}: {p}");
        }
        // A restart resets the counter: no negative or huge rate.
        assert_eq!(cpu_percent(&mut s, 10, t0 + ms(4000)), None);
        assert!(s.len() <= CPU_SAMPLES);
    }
}
