//! Reading the usage of many units at once, for `supctl status`.
//!
//! With a thousand units that is four small files each on cgroup v1 (memory,
//! peak, CPU time, tasks), 4000 files per query. Opening them is what costs: the
//! kernel walks the path, checks permissions and sets up a `seq_file` for each,
//! then tears it down at close, about 4-6 us a file on this 2-CPU machine, so
//! 15-25 ms a query on one thread, 14-19 ms on two (docs/benchmarks.md).
//!
//! So each unit's usage files are opened once and held: when its cgroup is
//! created ([`CgroupTree::hold_usage_files`]), or at the first query that finds
//! them unopened; a query then costs one `pread` at offset 0 per file, which
//! makes cgroupfs run the file's show function afresh. The price is kernel
//! memory: an open cgroup file keeps a page-sized buffer once read, about 17 KiB
//! per unit for four files, next to the ~350 KiB of kernel memory the unit's v1
//! cgroups (memory, cpuacct, pids) cost by themselves; and four descriptors per
//! unit, within a budget of a quarter of supd's open-files limit (units beyond it
//! are read by opening their files per query, as before).
//!
//! A held file whose cgroup was removed fails its read (ENODEV): it is closed and
//! the file opened again in the unit's present cgroup, so a value never comes
//! from a cgroup that is gone. [`CgroupTree::remove`] drops the unit's files.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Mutex;

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use super::layout::Hierarchy;
use super::{CgroupTree, RawUsage, layout};

/// Units one thread reads before another is worth starting (a thread start costs
/// about as much as reading a few units).
const PER_THREAD: usize = 128;
/// Threads of one query at most, whatever the CPU count.
const MAX_THREADS: usize = 4;
/// Longest interface file read whole here: v2's `cpu.stat` is a few hundred bytes.
const MAX_FILE: usize = 4096;
/// Share of supd's soft open-files limit that held usage files may take.
const FD_BUDGET_DIVISOR: u64 = 4;

/// The usage files held open, per unit, and how many descriptors that is.
#[derive(Debug, Default)]
pub(super) struct HeldFiles {
    inner: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    units: HashMap<String, UnitFiles>,
    fds: usize,
}

/// One unit's open usage files: (index of the hierarchy in `CgroupTree::bases`,
/// file name, descriptor).
#[derive(Debug, Default)]
struct UnitFiles(Vec<(usize, Box<str>, OwnedFd)>);

impl UnitFiles {
    /// The text of the held `file` of hierarchy `index`: None if it is not held
    /// or its read failed (the descriptor is then closed: its cgroup is gone, or
    /// the file is unreadable); Some(None) for a text too long or not UTF-8.
    fn read(&mut self, index: usize, file: &str) -> Option<Option<String>> {
        let at = self
            .0
            .iter()
            .position(|(i, name, _)| *i == index && **name == *file)?;
        match self.0.get(at).map(|(_, _, fd)| read_at_start(fd)) {
            Some(Ok(text)) => Some(text),
            _ => {
                self.0.swap_remove(at);
                None
            }
        }
    }
}

impl HeldFiles {
    /// The unit's files, taken out while a query reads them (each thread reads
    /// its own units); `put` returns them.
    fn take(&self, unit: &str) -> UnitFiles {
        let mut held = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let files = held.units.remove(unit).unwrap_or_default();
        held.fds = held.fds.saturating_sub(files.0.len());
        files
    }

    /// Keep `files` for `unit`, if the budget has room (else they are closed).
    /// Files a concurrent `take`r put back first are closed in favour of these.
    fn put(&self, unit: &str, files: UnitFiles) {
        if files.0.is_empty() {
            return;
        }
        let mut held = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if held.fds.saturating_add(files.0.len()) > fd_budget() {
            return;
        }
        held.fds += files.0.len();
        if let Some(old) = held.units.insert(unit.to_string(), files) {
            held.fds = held.fds.saturating_sub(old.0.len());
        }
    }

    fn holds(&self, unit: &str) -> bool {
        let held = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        held.units.contains_key(unit)
    }

    /// Close the unit's files: its cgroup is being removed.
    pub(super) fn drop_unit(&self, unit: &str) {
        drop(self.take(unit));
    }
}

/// Descriptors held usage files may take: a share of the soft open-files limit
/// (supd raises it to the hard limit at start).
fn fd_budget() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    usize::try_from(soft / FD_BUDGET_DIVISOR).unwrap_or(usize::MAX)
}

impl CgroupTree {
    /// [`CgroupTree::usage`] of each of `units`, in the same order. Blocking; may
    /// use a few threads for many units.
    pub fn usage_of(&self, units: &[String]) -> Vec<RawUsage> {
        let Some(bases) = self.base_dirs() else {
            // The test model of cgroupfs has no directories to open.
            return units.iter().map(|u| self.usage(u)).collect();
        };
        let read_part = |part: &[String]| -> Vec<RawUsage> {
            part.iter().map(|u| self.usage_held(&bases, u)).collect()
        };
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = (units.len() / PER_THREAD).clamp(1, cpus.min(MAX_THREADS));
        if threads == 1 {
            return read_part(units);
        }
        let chunk = units.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let mut parts = units.chunks(chunk);
            // This thread reads the first part itself.
            let first = parts.next().unwrap_or_default();
            let others: Vec<(&[String], _)> = parts
                .map(|part| {
                    let spawned = std::thread::Builder::new()
                        .name("sup-usage".into())
                        .spawn_scoped(scope, move || read_part(part));
                    (part, spawned)
                })
                .collect();
            let mut out = read_part(first);
            for (part, spawned) in others {
                // No thread (or it panicked): read its part here, the order kept.
                match spawned.map(|h| h.join()) {
                    Ok(Ok(usage)) => out.extend(usage),
                    _ => out.extend(read_part(part)),
                }
            }
            out
        })
    }

    /// Open the usage files of the unit's new cgroup to hold them (see the module
    /// doc), unless they are held already; nothing is read yet.
    pub(super) fn hold_usage_files(&self, unit: &str) {
        if self.held.holds(unit) {
            return;
        }
        let Some(bases) = self.base_dirs() else {
            return;
        };
        let files = RefCell::new(UnitFiles::default());
        self.collect_over(&bases, |index, base, file| {
            if let Some(fd) = open_below(base, unit, file) {
                files.borrow_mut().0.push((index, file.into(), fd));
            }
            None
        });
        self.held.put(unit, files.into_inner());
    }

    /// supd's subtree directory in each hierarchy, in `self.bases`' order; None
    /// in the test model of cgroupfs.
    fn base_dirs(&self) -> Option<Vec<OwnedFd>> {
        self.bases
            .iter()
            .map(|(_, dir)| self.files.open_dir(dir))
            .collect()
    }

    /// [`collect_usage`] over the hierarchies, `read(index, base, file)` reading
    /// each file the unit's usage needs.
    fn collect_over(
        &self,
        bases: &[OwnedFd],
        read: impl Fn(usize, &OwnedFd, &str) -> Option<String>,
    ) -> RawUsage {
        let hierarchies = self.bases.iter().map(|(h, _)| h);
        let dirs = hierarchies.zip(bases.iter().enumerate());
        collect_usage(dirs, |(index, base), file| read(*index, base, file))
    }

    /// [`CgroupTree::usage`] from the unit's held files, opening (and then
    /// holding) those not held or no longer readable.
    fn usage_held(&self, bases: &[OwnedFd], unit: &str) -> RawUsage {
        let files = RefCell::new(self.held.take(unit));
        let usage = self.collect_over(bases, |index, base, file| {
            let mut files = files.borrow_mut();
            if let Some(text) = files.read(index, file) {
                return text;
            }
            let fd = open_below(base, unit, file)?;
            let text = read_at_start(&fd).ok().flatten();
            files.0.push((index, file.into(), fd));
            text
        });
        self.held.put(unit, files.into_inner());
        usage
    }
}

/// The usage counters from the files of each hierarchy `(h, dir)`, read with
/// `read(dir, file name)`; fields the kernel does not offer are None.
pub(super) fn collect_usage<'a, D: 'a>(
    dirs: impl Iterator<Item = (&'a Hierarchy, D)>,
    read: impl Fn(&D, &str) -> Option<String>,
) -> RawUsage {
    let mut u = RawUsage::default();
    for (h, dir) in dirs {
        let read = |f: &str| read(&dir, f);
        let num = |f: &str| read(f).and_then(|t| t.trim().parse::<u64>().ok());
        if h.is_v2() {
            u.memory_current = num("memory.current");
            u.memory_peak = num("memory.peak");
            u.cpu_usage_usec = read("cpu.stat").and_then(|t| layout::keyed_value(&t, "usage_usec"));
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

/// The interface file `unit/file` below supd's subtree directory `base`, opened
/// for reading; missing or unreadable is None.
fn open_below(base: &OwnedFd, unit: &str, file: &str) -> Option<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
    openat(base, &Path::new(unit).join(file), flags, Mode::empty()).ok()
}

/// The whole text of an open interface file, read from its start: cgroupfs runs
/// the file's show function afresh for a read at offset 0, and gives all of a
/// text that fits in one read. Err if the read fails (ENODEV: the cgroup was
/// removed); Ok(None) for a text of [`MAX_FILE`] bytes or more, or not UTF-8.
fn read_at_start(fd: &OwnedFd) -> nix::Result<Option<String>> {
    let mut buf = [0u8; MAX_FILE];
    let len = nix::sys::uio::pread(fd, &mut buf, 0)?;
    Ok(buf
        .get(..len)
        .filter(|_| len < MAX_FILE)
        .and_then(|text| std::str::from_utf8(text).ok())
        .map(str::to_string))
}
