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
//! from a cgroup that is gone. [`CgroupTree::remove`] drops the unit's files,
//! and a query that was reading them does not put them back. The budget counts
//! what queries may open too: a unit without room is read by opening and
//! closing its files one at a time.

use std::collections::{HashMap, HashSet};
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
    /// Descriptors open for usage: held in `units`, lent to the queries reading,
    /// and reserved for what those may open and keep.
    fds: usize,
    /// Queries reading now.
    reading: usize,
    /// Units whose cgroup was removed while a query read them: their files are
    /// not put back (a removed unit is never read again to find them dead).
    removed: HashSet<String>,
}

/// The most files [`collect_usage`] reads for one unit.
const FILES_PER_UNIT: usize = 4;

/// One unit's open usage files: (index of the hierarchy in `CgroupTree::bases`,
/// file name, descriptor).
#[derive(Debug, Default)]
struct UnitFiles(Vec<(usize, &'static str, OwnedFd)>);

impl UnitFiles {
    /// Read the held `file` of hierarchy `index` into `text`: None if it is not
    /// held or its read failed (the descriptor is then closed: its cgroup is
    /// gone, or the file is unreadable); Some(false) for a text too long or not
    /// UTF-8.
    fn read(&mut self, index: usize, file: &str, text: &mut String) -> Option<bool> {
        let at = self
            .0
            .iter()
            .position(|(i, name, _)| *i == index && *name == file)?;
        match self.0.get(at).map(|(_, _, fd)| read_at_start(fd, text)) {
            Some(Ok(read)) => Some(read),
            _ => {
                self.0.swap_remove(at);
                None
            }
        }
    }
}

/// A unit being read: its name, the key its files were held under (kept to put
/// them back without a new allocation), its files, whether the files it opens
/// may be kept (the budget had room), and the descriptors counted for it in
/// `Held::fds`.
struct Taken<'u> {
    unit: &'u String,
    key: Option<String>,
    files: UnitFiles,
    keep: bool,
    counted: usize,
}

impl HeldFiles {
    /// The files of each of `units`, taken out while a query reads them; `put`
    /// returns them. One lock for all: a lock per unit would make the threads of
    /// a query wait on each other. A unit may keep the files it opens only while
    /// the budget has room for them; the others are read and closed one by one.
    fn take<'u>(&self, units: &'u [String], budget: usize) -> Vec<Taken<'u>> {
        let mut held = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        held.reading += 1;
        let mut room = budget.saturating_sub(held.fds);
        units
            .iter()
            .map(|unit| {
                let (key, files) = match held.units.remove_entry(unit) {
                    Some((key, files)) => (Some(key), files),
                    None => (None, UnitFiles::default()),
                };
                let missing = FILES_PER_UNIT.saturating_sub(files.0.len());
                let keep = missing <= room;
                let reserved = if keep { missing } else { 0 };
                room -= reserved;
                held.fds += reserved;
                let counted = files.0.len() + reserved;
                Taken {
                    unit,
                    key,
                    files,
                    keep,
                    counted,
                }
            })
            .collect()
    }

    /// Keep each unit's files again (a query's `taken` with `from_query`, or a
    /// new cgroup's): not those of a unit removed meanwhile, nor beyond the
    /// budget. Files a concurrent query put back first are closed in favour of
    /// these.
    fn put(&self, taken: Vec<Taken<'_>>, from_query: bool, budget: usize) {
        let mut held = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for t in taken {
            held.fds = held.fds.saturating_sub(t.counted);
            if from_query && held.removed.contains(t.unit.as_str()) {
                continue;
            }
            if !from_query {
                held.removed.remove(t.unit.as_str());
            }
            let len = t.files.0.len();
            if len == 0 || held.fds.saturating_add(len) > budget {
                continue;
            }
            held.fds += len;
            let key = t.key.unwrap_or_else(|| t.unit.clone());
            if let Some(old) = held.units.insert(key, t.files) {
                held.fds = held.fds.saturating_sub(old.0.len());
            }
        }
        if from_query {
            held.reading = held.reading.saturating_sub(1);
            if held.reading == 0 {
                held.removed.clear();
            }
        }
    }

    fn holds(&self, unit: &str) -> bool {
        let held = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        held.units.contains_key(unit)
    }

    /// Close the unit's files: its cgroup is being removed.
    pub(super) fn drop_unit(&self, unit: &str) {
        let mut held = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(files) = held.units.remove(unit) {
            held.fds = held.fds.saturating_sub(files.0.len());
        }
        if held.reading > 0 {
            held.removed.insert(unit.to_string());
        }
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
        let budget = fd_budget();
        let mut taken = self.held.take(units, budget);
        let read_part = |part: &mut [Taken<'_>]| -> Vec<RawUsage> {
            // One text buffer for all the files this thread reads.
            let mut text = String::with_capacity(MAX_FILE);
            part.iter_mut()
                .map(|t| self.usage_held(&bases, t.unit, &mut t.files, t.keep, &mut text))
                .collect()
        };
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = (units.len() / PER_THREAD).clamp(1, cpus.min(MAX_THREADS));
        let usage = if threads == 1 {
            read_part(&mut taken)
        } else {
            let chunk = units.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let mut parts = taken.chunks_mut(chunk);
                // This thread reads the first part itself.
                let first = parts.next().unwrap_or_default();
                let others: Vec<_> = parts
                    .map(|part| {
                        let len = part.len();
                        let spawned = std::thread::Builder::new()
                            .name("sup-usage".into())
                            .spawn_scoped(scope, || read_part(part));
                        (len, spawned)
                    })
                    .collect();
                let mut out = read_part(first);
                for (len, spawned) in others {
                    match spawned.map(|h| h.join()) {
                        Ok(Ok(usage)) => out.extend(usage),
                        // No thread, or it panicked (its part was moved into it):
                        // those units show no usage this time, the order kept.
                        _ => out.extend((0..len).map(|_| RawUsage::default())),
                    }
                }
                out
            })
        };
        self.held.put(taken, true, budget);
        usage
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
        let mut files = UnitFiles::default();
        let mut text = String::new();
        self.collect_over(&bases, &mut text, |index, base, file, _| {
            if let Some(fd) = open_below(base, unit, file) {
                files.0.push((index, file, fd));
            }
            false
        });
        let unit = unit.to_string();
        let taken = Taken {
            unit: &unit,
            key: None,
            files,
            keep: true,
            counted: 0,
        };
        self.held.put(vec![taken], false, fd_budget());
    }

    /// supd's subtree directory in each hierarchy, in `self.bases`' order; None
    /// in the test model of cgroupfs.
    fn base_dirs(&self) -> Option<Vec<OwnedFd>> {
        self.bases
            .iter()
            .map(|(_, dir)| self.files.open_dir(dir))
            .collect()
    }

    /// [`collect_usage`] over the hierarchies, `read(index, base, file, text)`
    /// reading each file the unit's usage needs.
    fn collect_over(
        &self,
        bases: &[OwnedFd],
        text: &mut String,
        mut read: impl FnMut(usize, &OwnedFd, &'static str, &mut String) -> bool,
    ) -> RawUsage {
        let hierarchies = self.bases.iter().map(|(h, _)| h);
        let dirs = hierarchies.zip(bases.iter().enumerate());
        collect_usage(dirs, text, |(index, base), file, text| {
            read(*index, base, file, text)
        })
    }

    /// [`CgroupTree::usage`] from the unit's held `files`, opening those not held
    /// or no longer readable, and holding them with `keep`.
    fn usage_held(
        &self,
        bases: &[OwnedFd],
        unit: &str,
        files: &mut UnitFiles,
        keep: bool,
        text: &mut String,
    ) -> RawUsage {
        self.collect_over(bases, text, |index, base, file, text| {
            if let Some(read) = files.read(index, file, text) {
                return read;
            }
            let Some(fd) = open_below(base, unit, file) else {
                return false;
            };
            let read = read_at_start(&fd, text).unwrap_or(false);
            if keep {
                files.0.push((index, file, fd));
            }
            read
        })
    }
}

/// The usage counters from the files of each hierarchy `(h, dir)`:
/// `read(dir, file name, text)` puts a file's text into `text` (one buffer for
/// every file) and says whether it could; fields the kernel does not offer are
/// None.
pub(super) fn collect_usage<'a, D: 'a>(
    dirs: impl Iterator<Item = (&'a Hierarchy, D)>,
    text: &mut String,
    mut read: impl FnMut(&D, &'static str, &mut String) -> bool,
) -> RawUsage {
    let mut u = RawUsage::default();
    for (h, dir) in dirs {
        // The number in `file`, or the value of `key` in it.
        let mut value = |file: &'static str, key: Option<&str>| -> Option<u64> {
            text.clear();
            if !read(&dir, file, text) {
                return None;
            }
            match key {
                Some(key) => layout::keyed_value(text, key),
                None => text.trim().parse().ok(),
            }
        };
        if h.is_v2() {
            u.memory_current = value("memory.current", None);
            u.memory_peak = value("memory.peak", None);
            u.cpu_usage_usec = value("cpu.stat", Some("usage_usec"));
            u.tasks = value("pids.current", None);
            continue;
        }
        if h.has("memory") {
            u.memory_current = value("memory.usage_in_bytes", None);
            u.memory_peak = value("memory.max_usage_in_bytes", None);
        }
        if h.has("cpuacct") {
            u.cpu_usage_usec = value("cpuacct.usage", None).map(|ns| ns / 1000);
        }
        if h.has("pids") {
            u.tasks = value("pids.current", None);
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

/// Put the whole text of an open interface file, read from its start, into
/// `text`: cgroupfs runs the file's show function afresh for a read at offset
/// 0, and gives all of a text that fits in one read. Err if the read fails
/// (ENODEV: the cgroup was removed); Ok(false) for a text of [`MAX_FILE`] bytes
/// or more, or not UTF-8.
fn read_at_start(fd: &OwnedFd, text: &mut String) -> nix::Result<bool> {
    let mut buf = [0u8; MAX_FILE];
    let len = nix::sys::uio::pread(fd, &mut buf, 0)?;
    let read = buf
        .get(..len)
        .filter(|_| len < MAX_FILE)
        .and_then(|bytes| std::str::from_utf8(bytes).ok());
    if let Some(read) = read {
        text.push_str(read);
    }
    Ok(read.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(n: usize) -> UnitFiles {
        let open = |_| std::fs::File::open("/dev/null").expect("/dev/null").into();
        UnitFiles((0..n).map(|i| (i, "f", open(i))).collect())
    }

    fn new_cgroup(held: &HeldFiles, unit: &str, n: usize, budget: usize) {
        let unit = unit.to_string();
        let t = Taken {
            unit: &unit,
            key: None,
            files: files(n),
            keep: true,
            counted: 0,
        };
        held.put(vec![t], false, budget);
    }

    fn counts(held: &HeldFiles) -> (usize, usize) {
        let h = held.inner.lock().expect("lock");
        (h.units.len(), h.fds)
    }

    #[test]
    fn queries_keep_files_only_within_the_budget_and_never_for_a_removed_unit() {
        let held = HeldFiles::default();
        new_cgroup(&held, "a", 4, 10);
        new_cgroup(&held, "b", 4, 10);
        // Over the budget: not held.
        new_cgroup(&held, "c", 4, 10);
        assert_eq!(counts(&held), (2, 8));

        // A query: a and b are lent (8), c may not keep what it opens (2 left
        // of the budget, 4 needed).
        let units: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let taken = held.take(&units, 10);
        let keep: Vec<bool> = taken.iter().map(|t| t.keep).collect();
        assert_eq!(keep, [true, true, false]);
        assert_eq!(counts(&held), (0, 8));
        // b's cgroup is removed while the query reads: its files are not put back.
        held.drop_unit("b");
        held.put(taken, true, 10);
        assert_eq!(counts(&held), (1, 4));
        // No query reads any more: a new cgroup named b is held again.
        new_cgroup(&held, "b", 4, 10);
        assert_eq!(counts(&held), (2, 8));
        held.drop_unit("a");
        held.drop_unit("b");
        assert_eq!(counts(&held), (0, 0));
    }

    #[test]
    fn a_unit_missing_files_reserves_room_for_them_while_read() {
        let held = HeldFiles::default();
        new_cgroup(&held, "a", 2, 100);
        let units = vec!["a".to_string(), "b".to_string()];
        let taken = held.take(&units, 100);
        // a's 2 held + 2 reserved, b's 4 reserved.
        assert_eq!(counts(&held).1, 8);
        assert!(taken.iter().all(|t| t.keep));
        held.put(taken, true, 100);
        // Only what was really held is counted again.
        assert_eq!(counts(&held), (1, 2));
    }
}
