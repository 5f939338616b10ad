//! Resource control: one cgroup per unit inside a subtree supd owns, on cgroup v2,
//! v1 and hybrid hierarchies (v1 controllers next to a cgroup2 mount without
//! controllers, as on the development machine).
//!
//! This is a small file-based driver of our own rather than cgroups-rs: the pieces
//! supd needs (exact error reporting per file, no blanket controller enabling,
//! `cgroup.kill` and a kill loop on v1, OOM counters on both versions) are the
//! gaps of that crate, and the rest is writing a few files.
//!
//! `layout` finds the hierarchies and `settings` says which file gets which
//! value (both pure, table-tested); `CgroupTree` creates, fills, kills and removes
//! the directories through `fs`, which is the kernel's cgroupfs or, in the unit
//! tests, a model of it on a temporary directory.
//!
//! A unit with `private_devices` also gets a device allowlist (`devices`): the
//! v1 `devices` controller's files, or on v2 a BPF device program (`bpf`)
//! attached to its cgroup.

pub mod bpf;
pub mod devices;
pub mod fs;
pub mod layout;
mod settings;
mod usage;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bpf::device_program;
use bpf::sys::BpfError;
use devices::DeviceAllowlist;
use fs::{CgroupFs, Files, Kernel};
use layout::{Hierarchy, Layout};
use nix::sys::signal::Signal;
use settings::{joined, settings, v2_enable_line};

use crate::unit::ResourceSpec;

/// What went wrong, with the step and the path; file-system failures keep the
/// `io::Error` (and so its errno, see [`CgroupError::errno`]).
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("mkdir {path}: {source}")]
    Mkdir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("rmdir {path}: {source}")]
    Rmdir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no cgroup hierarchy found (is /sys/fs/cgroup mounted?)")]
    NoHierarchy,
    #[error("{key} needs the {controller} controller, which this kernel does not offer to supd")]
    MissingController {
        key: &'static str,
        controller: &'static str,
    },
    #[error("cgroup {path} did not empty within {secs}s")]
    NotEmpty { path: PathBuf, secs: u64 },
    #[error("{} on {path}: {}{}", source.step, source.source, source.log)]
    DeviceProgram { path: PathBuf, source: BpfError },
    #[error(
        "this host offers supd no device control (cgroup v1 without a devices hierarchy); \
         private_devices = false runs the unit without a device allowlist"
    )]
    NoDeviceControl,
    /// A failed step of the device allowlist.
    #[error("device allowlist: {0}")]
    Devices(Box<CgroupError>),
}

impl CgroupError {
    /// The errno of a failed file-system step, so a caller wrapping this error
    /// in its own can keep it (EBUSY, ENOENT, EACCES... call for different action).
    pub fn errno(&self) -> Option<i32> {
        match self {
            CgroupError::Mkdir { source, .. }
            | CgroupError::Read { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Rmdir { source, .. } => source.raw_os_error(),
            CgroupError::DeviceProgram { source, .. } => source.source.raw_os_error(),
            CgroupError::Devices(inner) => inner.errno(),
            CgroupError::NoHierarchy
            | CgroupError::MissingController { .. }
            | CgroupError::NotEmpty { .. }
            | CgroupError::NoDeviceControl => None,
        }
    }
}

/// The subtree supd owns, in every hierarchy it uses, and the unit cgroups in it.
#[derive(Debug)]
pub struct CgroupTree {
    files: Files,
    layout: Layout,
    /// Per hierarchy: the directory of supd's subtree (`<supd's cgroup>/<name>`).
    bases: Vec<(Hierarchy, PathBuf)>,
    /// Each unit's usage files, held open for `supctl status` (see `usage`).
    held: usage::HeldFiles,
}

/// On v2 below the root, the leaf of the subtree supd moves itself into, so that
/// its own cgroup may enable controllers (no internal processes). Unit names
/// start with a letter or digit, so it never clashes with a unit.
const SUPD_LEAF: &str = ".supd";

/// How often `kill_all` looks at `cgroup.procs` again: a killed process leaves
/// it only once it has exited, within milliseconds; polling this often ends a
/// stop promptly without keeping a CPU busy.
const KILL_ROUND: Duration = Duration::from_millis(5);
/// How long `kill_all` waits for the cgroup to empty: a process in uninterruptible
/// sleep (a hung NFS server, a stuck device) outlives SIGKILL, and then the
/// blocking thread (and the unit's start gate) must not wait forever.
const KILL_DEADLINE: Duration = Duration::from_secs(10);

impl CgroupTree {
    /// Find the hierarchies and create supd's subtree `name` under its own cgroup.
    pub fn init(name: &str) -> Result<CgroupTree, CgroupError> {
        CgroupTree::with_layout(detect_layout()?, name)
    }

    /// Create supd's subtree `name` in a known layout, on the kernel's cgroupfs.
    pub fn with_layout(layout: Layout, name: &str) -> Result<CgroupTree, CgroupError> {
        CgroupTree::with_fs(Box::new(Kernel), layout, name)
    }

    /// Create supd's subtree `name` in `layout` on the file system `fs`.
    pub fn with_fs(
        fs: Box<dyn CgroupFs>,
        layout: Layout,
        name: &str,
    ) -> Result<CgroupTree, CgroupError> {
        let mut tree = CgroupTree {
            files: Files::new(fs),
            layout,
            bases: Vec::new(),
            held: usage::HeldFiles::default(),
        };
        for h in tree.layout.hierarchies() {
            let base = h.own_dir().join(name);
            tree.make_dir(&h, &base)?;
            if h.is_v2() {
                tree.enable_v2_controllers(&h, &base)?;
            }
            tree.bases.push((h, base));
        }
        Ok(tree)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// supd's subtree in every hierarchy, as `/proc/PID/cgroup` names it (relative
    /// to the hierarchy's root): a process whose cgroup is below one of these is
    /// inside a unit (or supd's own leaf).
    pub fn subtree_paths(&self) -> Vec<PathBuf> {
        self.bases
            .iter()
            .filter_map(|(h, base)| base.strip_prefix(h.mount()).ok())
            .map(|rel| Path::new("/").join(rel))
            .collect()
    }

    /// The unit's cgroup where a new process can be created directly inside it
    /// (`clone3` with `CLONE_INTO_CGROUP`): on a pure cgroup v2 host only, where
    /// it is the one directory `place` would write.
    pub fn clone_into_dir(&self, unit: &str) -> Option<PathBuf> {
        match (&self.layout, self.bases.as_slice()) {
            (Layout::Unified(_), [(_, base)]) => Some(base.join(unit)),
            _ => None,
        }
    }

    fn dirs(&self, unit: &str) -> impl Iterator<Item = (&Hierarchy, PathBuf)> {
        self.bases.iter().map(move |(h, base)| (h, base.join(unit)))
    }

    /// Create (or reuse) the unit's cgroup and apply its limits, without a device
    /// allowlist: [`CgroupTree::create_with`] with `None`.
    pub fn create(&self, unit: &str, res: &ResourceSpec) -> Result<(), CgroupError> {
        self.create_with(unit, res, None)
    }

    /// Create (or reuse) the unit's cgroup, apply its limits and, with `devices`,
    /// deny the unit every device but those listed. A limit whose controller is
    /// missing is an error, never silently skipped; so is a device allowlist on a
    /// host without device control. Call with the cgroup empty (a start): what an
    /// earlier run left that this one does not use (a v1 hierarchy of a removed
    /// limit, a device program) is removed.
    pub fn create_with(
        &self,
        unit: &str,
        res: &ResourceSpec,
        devices: Option<&DeviceAllowlist>,
    ) -> Result<(), CgroupError> {
        let restricted = devices.is_some();
        if restricted && !self.has_device_control() {
            return Err(CgroupError::Devices(Box::new(CgroupError::NoDeviceControl)));
        }
        for (h, dir) in self.dirs(unit) {
            if joined(h, res, restricted) {
                self.make_dir(h, &dir)?;
            } else if self.files.exists(&dir) {
                self.files.rmdir(&dir)?;
            }
        }
        self.apply(unit, res)?;
        self.set_devices(unit, devices)
            .map_err(|e| CgroupError::Devices(Box::new(e)))?;
        self.hold_usage_files(unit);
        Ok(())
    }

    /// The unit's device allowlist. v1: `a` to `devices.deny` (nothing allowed,
    /// the exceptions inherited from the parent cleared), then one `devices.allow`
    /// line per rule. v2: the allowlist's program attached first, then every
    /// device program attached before (an earlier run's) detached, so restarts
    /// never stack programs and no moment is unfiltered; without `devices`, only
    /// the detaching.
    fn set_devices(
        &self,
        unit: &str,
        devices: Option<&DeviceAllowlist>,
    ) -> Result<(), CgroupError> {
        for (h, dir) in self.dirs(unit) {
            if h.is_v2() {
                let before = match devices {
                    Some(_) => self.files.device_programs(&dir)?,
                    // A kernel without cgroup BPF has nothing attached to undo.
                    None => self.files.device_programs(&dir).unwrap_or_default(),
                };
                if let Some(list) = devices {
                    self.files
                        .attach_device_program(&dir, &device_program(list))?;
                }
                for id in before {
                    self.files.detach_device_program(&dir, id)?;
                }
            } else if h.has("devices")
                && let Some(list) = devices
            {
                self.files.write(&dir.join("devices.deny"), "a")?;
                for line in list.v1_lines() {
                    self.files.write(&dir.join("devices.allow"), &line)?;
                }
            }
        }
        Ok(())
    }

    /// A v2 hierarchy (BPF device programs) or a v1 devices hierarchy.
    fn has_device_control(&self) -> bool {
        self.bases
            .iter()
            .any(|(h, _)| h.is_v2() || h.has("devices"))
    }

    /// Write the limits (also used to change them on a running unit). A v1
    /// hierarchy the unit was not in yet (a new kind of limit) is joined first, with
    /// every process of the unit.
    pub fn apply(&self, unit: &str, res: &ResourceSpec) -> Result<(), CgroupError> {
        for setting in settings(res) {
            let Some((h, dir)) = self.dirs(unit).find(|(h, _)| h.has(setting.controller)) else {
                return Err(CgroupError::MissingController {
                    key: setting.key,
                    controller: setting.controller,
                });
            };
            if !self.files.exists(&dir) {
                let members = match self.procs_dir(unit) {
                    Some((_, d)) => self.files.procs(&d)?,
                    None => Vec::new(),
                };
                self.make_dir(h, &dir)?;
                for pid in members {
                    self.files.attach(&dir, pid)?;
                }
            }
            let (file, value) = setting.for_version(h.is_v2());
            self.files.write(&dir.join(file), value)?;
        }
        Ok(())
    }

    /// Put `pid` into the unit's cgroup in every hierarchy the unit has joined:
    /// the tests' way to give a unit members (supd's helpers move themselves,
    /// see `join_files`).
    #[cfg(test)]
    pub(crate) fn place(&self, unit: &str, pid: i32) -> Result<(), CgroupError> {
        for (_, dir) in self.dirs(unit) {
            if self.files.exists(&dir) {
                self.files.attach(&dir, pid)?;
            }
        }
        Ok(())
    }

    /// The file in each of the unit's hierarchies, joined or not, into which a
    /// process writes `0` to move itself in (the helpers of starts, probes and
    /// `exec` do, skipping those that do not exist: the unit has not joined them).
    ///
    /// On v1 that is `tasks`, which moves the writing thread alone: unlike a pid
    /// or `cgroup.procs` it skips the kernel's global threadgroup lock, whose
    /// first taking after a quiet spell waits for an RCU grace period (8-16 ms
    /// here, the tail of every v1 start and restart). It is the whole process
    /// only because every helper is single-threaded. On v2, `cgroup.procs`.
    pub fn join_files(&self, unit: &str) -> Vec<PathBuf> {
        self.dirs(unit)
            .map(|(h, dir)| dir.join(if h.is_v2() { "cgroup.procs" } else { "tasks" }))
            .collect()
    }

    /// The directory whose `cgroup.procs` lists every process of the unit, and
    /// its hierarchy.
    fn procs_dir(&self, unit: &str) -> Option<(&Hierarchy, PathBuf)> {
        let existing = || self.dirs(unit).filter(|(_, d)| self.files.exists(d));
        existing()
            .find(|(h, _)| h.is_v2() || h.has("pids"))
            .or_else(|| existing().next())
    }

    /// Whether a `/proc/PID/cgroup` text puts the process in the unit's cgroup
    /// (or below it) in one of supd's hierarchies. Pure.
    pub fn holds(&self, unit: &str, proc_cgroup: &str) -> bool {
        self.dirs(unit).any(|(h, dir)| h.holds(proc_cgroup, &dir))
    }

    /// Send `signal` to every process in the unit's cgroup but `skip`, each only
    /// if it is still a member when signalled: a pid read from `cgroup.procs` may
    /// be another process's by then (see [`CgroupFs::signal`]).
    pub fn signal_members(&self, unit: &str, signal: Signal, skip: Option<i32>) {
        if let Some((h, dir)) = self.procs_dir(unit) {
            let pids = self.files.procs(&dir).unwrap_or_default();
            self.signal_listed(h, &dir, &pids, signal, skip);
        }
    }

    /// Signal the `pids` read from `dir`'s `cgroup.procs` that are members still.
    fn signal_listed(
        &self,
        h: &Hierarchy,
        dir: &Path,
        pids: &[i32],
        signal: Signal,
        skip: Option<i32>,
    ) {
        let member = |text: &str| h.holds(text, dir);
        for &pid in pids {
            if Some(pid) != skip && pid > 1 {
                self.files.signal(pid, signal, &member);
            }
        }
    }

    /// Kill every process of the unit and wait until the cgroup is empty:
    /// `cgroup.kill` where the kernel has it, else SIGKILL each member (checked
    /// to be one still, see `signal_members`), until nothing is left or
    /// `KILL_DEADLINE` has passed. Blocking.
    pub fn kill_all(&self, unit: &str) -> Result<(), CgroupError> {
        let deadline = Instant::now() + KILL_DEADLINE;
        let Some((h, dir)) = self.procs_dir(unit) else {
            return Ok(());
        };
        let kill_file = dir.join("cgroup.kill");
        loop {
            let pids = self.files.procs(&dir)?;
            if pids.is_empty() {
                return Ok(());
            }
            if self.files.exists(&kill_file) {
                self.files.write(&kill_file, "1")?;
            } else {
                // A process forked after the read is caught next round.
                self.signal_listed(h, &dir, &pids, Signal::SIGKILL, None);
            }
            if Instant::now() > deadline {
                return Err(CgroupError::NotEmpty {
                    path: dir,
                    secs: KILL_DEADLINE.as_secs(),
                });
            }
            std::thread::sleep(KILL_ROUND);
        }
    }

    /// Remove the unit's cgroup (after `kill_all`). A cgroup that is already gone is fine.
    pub fn remove(&self, unit: &str) -> Result<(), CgroupError> {
        self.held.drop_unit(unit);
        for (_, dir) in self.dirs(unit) {
            self.files.rmdir(&dir)?;
        }
        Ok(())
    }

    /// OOM kills so far in the unit's cgroup (v2 `memory.events`, v1 `memory.oom_control`).
    pub fn oom_kills(&self, unit: &str) -> u64 {
        let Some((h, dir)) = self.dirs(unit).find(|(h, _)| h.has("memory")) else {
            return 0;
        };
        let file = if h.is_v2() {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        self.files
            .read_optional(&dir.join(file))
            .and_then(|text| layout::keyed_value(&text, "oom_kill"))
            .unwrap_or(0)
    }

    /// Current usage of the unit's cgroup; fields the kernel does not offer are None.
    pub fn usage(&self, unit: &str) -> RawUsage {
        let mut text = String::new();
        usage::collect_usage(self.dirs(unit), &mut text, |dir, f, text| {
            self.files
                .read_optional(&dir.join(f))
                .map(|read| *text = read)
                .is_some()
        })
    }

    /// Unit cgroups left in the subtree by an earlier supd that did not exit in
    /// order (killed, crashed): their processes are killed and the cgroups removed,
    /// so nothing keeps running that no supd supervises. Returns each unit found,
    /// with how many processes were still in it.
    pub fn clear_leftovers(&self) -> Vec<Leftover> {
        let mut found: Vec<Leftover> = Vec::new();
        for (_, base) in &self.bases {
            for unit in self.files.children(base) {
                // Unit names never start with '.', supd's own leaf does.
                if unit.starts_with('.') || found.iter().any(|l| l.unit == unit) {
                    continue;
                }
                let processes = self
                    .procs_dir(&unit)
                    .and_then(|(_, d)| self.files.procs(&d).ok())
                    .map_or(0, |p| p.len());
                let error = self
                    .kill_all(&unit)
                    .and_then(|()| self.remove(&unit))
                    .err()
                    .map(|e| e.to_string());
                found.push(Leftover {
                    unit,
                    processes,
                    error,
                });
            }
        }
        found
    }

    /// Kill and remove every unit cgroup and the subtree itself (supd exiting).
    pub fn teardown(&self) -> Result<(), CgroupError> {
        for (_, base) in &self.bases {
            for unit in self.files.children(base) {
                if !unit.starts_with('.') {
                    self.kill_all(&unit)?;
                    self.remove(&unit)?;
                }
            }
        }
        for (h, base) in &self.bases {
            let leaf = base.join(SUPD_LEAF);
            if self.files.exists(&leaf) {
                self.files.attach(&h.own_dir(), std::process::id())?;
                self.files.rmdir(&leaf)?;
            }
            self.files.rmdir(base)?;
        }
        Ok(())
    }

    /// mkdir (or reuse) a cgroup; a new v1 cpuset cgroup starts with no CPUs and
    /// no memory nodes, so it gets its parent's.
    fn make_dir(&self, h: &Hierarchy, dir: &Path) -> Result<(), CgroupError> {
        self.files.mkdir(dir)?;
        if h.is_v2() || !h.has("cpuset") {
            return Ok(());
        }
        let Some(parent) = dir.parent() else {
            return Ok(());
        };
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let current = self
                .files
                .read_optional(&dir.join(file))
                .unwrap_or_default();
            if current.trim().is_empty() {
                let value = self.files.read(&parent.join(file))?;
                self.files.write(&dir.join(file), value.trim())?;
            }
        }
        Ok(())
    }

    /// On v2, controllers must be enabled in every ancestor's
    /// `cgroup.subtree_control` below the mount root, and a cgroup with processes
    /// cannot enable them for its children (no internal processes): supd moves
    /// itself into the leaf `<subtree>/.supd` first when it is not at the root.
    fn enable_v2_controllers(&self, h: &Hierarchy, base: &Path) -> Result<(), CgroupError> {
        let Some(line) = v2_enable_line(|c| h.has(c)) else {
            return Ok(());
        };
        if h.own_dir() != h.mount() {
            let leaf = base.join(SUPD_LEAF);
            self.files.mkdir(&leaf)?;
            self.files.attach(&leaf, std::process::id())?;
        }
        self.files
            .write(&h.own_dir().join("cgroup.subtree_control"), &line)?;
        self.files
            .write(&base.join("cgroup.subtree_control"), &line)
    }
}

/// The hierarchies of this process, from `/proc/self/mountinfo` and
/// `/proc/self/cgroup`.
fn detect_layout() -> Result<Layout, CgroupError> {
    let read = |file: &str| {
        std::fs::read_to_string(file).map_err(|source| CgroupError::Read {
            path: PathBuf::from(file),
            source,
        })
    };
    let mountinfo = read("/proc/self/mountinfo")?;
    let own = read("/proc/self/cgroup")?;
    Layout::detect(&mountinfo, &own, |dir| {
        std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default()
    })
    .ok_or(CgroupError::NoHierarchy)
}

/// A unit cgroup an earlier supd left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub unit: String,
    /// Processes that were still running in it (now killed).
    pub processes: usize,
    /// Why it could not be cleared, if it could not.
    pub error: Option<String>,
}

/// Usage counters as read from the cgroup files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawUsage {
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub cpu_usage_usec: Option<u64>,
    pub tasks: Option<u64>,
}
