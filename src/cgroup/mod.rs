//! Resource control: one cgroup per unit inside a subtree supd owns, on cgroup v2,
//! v1 and hybrid hierarchies (v1 controllers next to a cgroup2 mount without
//! controllers, as on the development machine).
//!
//! This is a small file-based driver of our own rather than cgroups-rs: the pieces
//! supd needs (exact error reporting per file, no blanket controller enabling,
//! `cgroup.kill` and a kill loop on v1, OOM counters on both versions) are the
//! gaps of that crate, and the rest is writing a few files.
//!
//! `layout` finds the hierarchies (pure parsing, unit-tested); `Cgroups` creates,
//! fills, kills and removes the directories.

pub mod layout;
mod settings;
pub mod units;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use layout::{Hierarchy, Layout};
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
            CgroupError::NoHierarchy
            | CgroupError::MissingController { .. }
            | CgroupError::NotEmpty { .. } => None,
        }
    }
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// The subtree supd owns, in every hierarchy it uses.
#[derive(Debug, Clone)]
pub struct Cgroups {
    layout: Layout,
    /// Per hierarchy: the directory of supd's subtree (`<supd's cgroup>/<name>`).
    bases: Vec<(Hierarchy, PathBuf)>,
}

/// On v2, where supd itself waits while the controllers are enabled above it.
const SUPD_LEAF: &str = ".supd";

impl Cgroups {
    /// Find the hierarchies and create supd's subtree `name` under its own cgroup.
    pub fn init(name: &str) -> Result<Cgroups, CgroupError> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(read_error(Path::new("/proc/self/mountinfo")))?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(read_error(Path::new("/proc/self/cgroup")))?;
        let layout = Layout::detect(&mountinfo, &own, |p| {
            std::fs::read_to_string(p.join("cgroup.controllers")).unwrap_or_default()
        })
        .ok_or(CgroupError::NoHierarchy)?;
        let mut bases = Vec::new();
        for h in layout.hierarchies() {
            let base = h.own_dir().join(name);
            mkdir(&base)?;
            if h.is_v2() {
                enable_v2_controllers(&h, &base)?;
            }
            if h.has("cpuset") && !h.is_v2() {
                inherit_cpuset(&base)?;
            }
            bases.push((h.clone(), base));
        }
        Ok(Cgroups { layout, bases })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn dirs(&self, unit: &str) -> impl Iterator<Item = (&Hierarchy, PathBuf)> {
        self.bases.iter().map(move |(h, base)| (h, base.join(unit)))
    }

    /// Create (or reuse) the unit's cgroup and apply its limits. A limit whose
    /// controller is missing is an error, never silently skipped.
    pub fn create(&self, unit: &str, res: &ResourceSpec) -> Result<(), CgroupError> {
        for (h, dir) in self.dirs(unit) {
            if joined(h, res) {
                make_unit_dir(h, &dir)?;
            }
        }
        self.apply(unit, res)
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
            if !dir.exists() {
                make_unit_dir(h, &dir)?;
                if let Some(members) = self.procs_dir(unit) {
                    for pid in procs(&members)? {
                        write(&dir.join("cgroup.procs"), &pid.to_string())?;
                    }
                }
            }
            let (file, value) = setting.for_version(h.is_v2());
            write(&dir.join(file), value)?;
        }
        Ok(())
    }

    /// Put `pid` into the unit's cgroup in every hierarchy the unit has joined
    /// (before it runs anything of the service, so nothing it forks can escape).
    pub fn place(&self, unit: &str, pid: i32) -> Result<(), CgroupError> {
        for (_, dir) in self.dirs(unit) {
            if dir.exists() {
                write(&dir.join("cgroup.procs"), &pid.to_string())?;
            }
        }
        Ok(())
    }

    /// The directory whose `cgroup.procs` lists every process of the unit.
    fn procs_dir(&self, unit: &str) -> Option<PathBuf> {
        let existing = || self.dirs(unit).filter(|(_, d)| d.exists());
        existing()
            .find(|(h, _)| h.is_v2() || h.has("pids"))
            .or_else(|| existing().next())
            .map(|(_, d)| d)
    }

    /// Kill every process of the unit and wait until the cgroup is empty:
    /// `cgroup.kill` where the kernel has it, else SIGKILL each member, until
    /// nothing is left. Blocking.
    pub fn kill_all(&self, unit: &str) -> Result<(), CgroupError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let Some(dir) = self.procs_dir(unit) else {
            return Ok(());
        };
        if !dir.exists() {
            return Ok(());
        }
        let kill_file = dir.join("cgroup.kill");
        loop {
            let pids = procs(&dir)?;
            if pids.is_empty() {
                return Ok(());
            }
            if kill_file.exists() {
                write(&kill_file, "1")?;
            } else {
                // A process forked between the read and the kill is caught next round.
                for pid in procs(&dir)? {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            if Instant::now() > deadline {
                return Err(CgroupError::NotEmpty {
                    path: dir,
                    secs: 10,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Remove the unit's cgroup (after `kill_all`). A cgroup that is already gone is fine.
    pub fn remove(&self, unit: &str) -> Result<(), CgroupError> {
        for (_, dir) in self.dirs(unit) {
            rmdir(&dir)?;
        }
        Ok(())
    }

    /// OOM kills so far in the unit's cgroup (v2 `memory.events`, v1 `memory.oom_control`).
    pub fn oom_kills(&self, unit: &str) -> u64 {
        self.dirs(unit)
            .find(|(h, _)| h.has("memory"))
            .map(|(h, dir)| {
                let file = if h.is_v2() {
                    "memory.events"
                } else {
                    "memory.oom_control"
                };
                let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
                layout::keyed_value(&text, "oom_kill").unwrap_or(0)
            })
            .unwrap_or(0)
    }

    /// Current usage of the unit's cgroup; fields the kernel does not offer are None.
    pub fn usage(&self, unit: &str) -> RawUsage {
        let mut u = RawUsage::default();
        for (h, dir) in self.dirs(unit) {
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
            let num = |f: &str| read(f).and_then(|t| t.trim().parse::<u64>().ok());
            if h.is_v2() {
                u.memory_current = num("memory.current");
                u.memory_peak = num("memory.peak");
                u.cpu_usage_usec =
                    read("cpu.stat").and_then(|t| layout::keyed_value(&t, "usage_usec"));
                u.tasks = num("pids.current");
                continue;
            }
            if h.has("memory") {
                u.memory_current = num("memory.usage_in_bytes");
                u.memory_peak = num("memory.max_usage_in_bytes");
            }
            if h.has("cpuacct") {
                u.cpu_usage_usec = num("cpuacct.usage").map(|ns| ns / 1000);
            }
            if h.has("pids") {
                u.tasks = num("pids.current");
            }
        }
        u
    }

    /// Kill and remove every unit cgroup and the subtree itself (supd exiting).
    pub fn teardown(&self) -> Result<(), CgroupError> {
        for (_, base) in &self.bases {
            let Ok(entries) = std::fs::read_dir(base) else {
                continue;
            };
            for e in entries.flatten() {
                // Unit names never start with '.', supd's own leaf does.
                if e.path().is_dir()
                    && let Some(unit) = e.file_name().to_str()
                    && !unit.starts_with('.')
                {
                    self.kill_all(unit)?;
                    self.remove(unit)?;
                }
            }
        }
        for (h, base) in &self.bases {
            let leaf = base.join(SUPD_LEAF);
            if leaf.exists() {
                write(
                    &h.own_dir().join("cgroup.procs"),
                    &std::process::id().to_string(),
                )?;
                rmdir(&leaf)?;
            }
            rmdir(base)?;
        }
        Ok(())
    }
}

/// Usage counters as read from the cgroup files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawUsage {
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub cpu_usage_usec: Option<u64>,
    pub tasks: Option<u64>,
}

fn make_unit_dir(h: &Hierarchy, dir: &Path) -> Result<(), CgroupError> {
    mkdir(dir)?;
    if h.has("cpuset") && !h.is_v2() {
        inherit_cpuset(dir)?;
    }
    Ok(())
}

fn mkdir(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(dir) {
        Err(source) if source.kind() != ErrorKind::AlreadyExists => Err(CgroupError::Mkdir {
            path: dir.to_path_buf(),
            source,
        }),
        _ => Ok(()),
    }
}

/// rmdir, retried briefly: the kernel may report EBUSY until the last process of a
/// just-emptied cgroup is fully gone.
fn rmdir(dir: &Path) -> Result<(), CgroupError> {
    for _ in 0..200 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(rmdir_error(dir, e)),
        }
    }
    std::fs::remove_dir(dir).map_err(|e| rmdir_error(dir, e))
}

fn rmdir_error(dir: &Path, source: std::io::Error) -> CgroupError {
    CgroupError::Rmdir {
        path: dir.to_path_buf(),
        source,
    }
}

fn write(file: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(file, value).map_err(|source| CgroupError::Write {
        path: file.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

fn procs(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let file = dir.join("cgroup.procs");
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(read_error(&file)(e)),
    }
}

/// A new v1 cpuset cgroup starts with no CPUs and no memory nodes; copy the parent's.
fn inherit_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let current = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if current.trim().is_empty() {
            let value = std::fs::read_to_string(parent.join(file))
                .map_err(read_error(&parent.join(file)))?;
            write(&dir.join(file), value.trim())?;
        }
    }
    Ok(())
}

/// On v2, controllers must be enabled in every ancestor's `cgroup.subtree_control`
/// below the mount root, and a cgroup with processes cannot enable them for its
/// children (no internal processes): supd moves itself into a leaf `supd` of its
/// subtree first when it is not at the root.
fn enable_v2_controllers(h: &Hierarchy, base: &Path) -> Result<(), CgroupError> {
    let available =
        std::fs::read_to_string(h.own_dir().join("cgroup.controllers")).unwrap_or_default();
    let Some(line) = v2_enable_line(&available) else {
        return Ok(());
    };
    if h.own_dir() != h.mount() {
        let leaf = base.join(SUPD_LEAF);
        mkdir(&leaf)?;
        write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
        write(&h.own_dir().join("cgroup.subtree_control"), &line)?;
    } else {
        write(&h.mount().join("cgroup.subtree_control"), &line)?;
    }
    write(&base.join("cgroup.subtree_control"), &line)
}
