//! Reading the usage of many units at once, for `supctl status`.
//!
//! With a thousand units that is four small files each on cgroup v1 (memory,
//! peak, CPU time, tasks). Opening each by its whole path made the kernel walk
//! every component again (`/sys/fs/cgroup/memory/<supd's cgroup>/<unit>/<file>`,
//! most of them kernfs entries it revalidates each time): reading relative to
//! supd's subtree directory of each hierarchy, opened once per query, leaves two
//! components to walk, and one `read` per file replaces std's `read_to_string`
//! (statx, lseek, two reads). Measured on a shared 2-CPU machine with 1000 units
//! (cgroup v1, docs/benchmarks.md): 4000 files by whole path 20-26 ms, relative
//! 15.5-30 ms, and two threads about 1.5x faster than one. Holding every file
//! open between queries (a `pread` each, 7 ms) was left out: each open cgroup
//! file keeps a page-sized buffer in the kernel once read, 16 MiB for 1000 units,
//! and the fds would have to follow every restart of a unit's cgroup.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

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

impl CgroupTree {
    /// [`CgroupTree::usage`] of each of `units`, in the same order. Blocking; may
    /// use a few threads for many units.
    pub fn usage_of(&self, units: &[String]) -> Vec<RawUsage> {
        let bases: Option<Vec<OwnedFd>> = self
            .bases
            .iter()
            .map(|(_, dir)| self.files.open_dir(dir))
            .collect();
        // The test model of cgroupfs has no directories to open.
        let Some(bases) = bases else {
            return units.iter().map(|u| self.usage(u)).collect();
        };
        let read_part = |part: &[String]| -> Vec<RawUsage> {
            part.iter().map(|u| self.usage_below(&bases, u)).collect()
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

    /// [`CgroupTree::usage`] with each file opened relative to `bases`, supd's
    /// subtree directory of each hierarchy in `self.bases`' order.
    fn usage_below(&self, bases: &[OwnedFd], unit: &str) -> RawUsage {
        let hierarchies = self.bases.iter().map(|(h, _)| h);
        collect_usage(hierarchies.zip(bases), |base, file| {
            read_below(base, &Path::new(unit).join(file))
        })
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

/// The text of the interface file `rel` below the directory `base`; missing,
/// unreadable or longer than [`MAX_FILE`] is None.
fn read_below(base: &OwnedFd, rel: &Path) -> Option<String> {
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
    let fd = openat(base, rel, flags, Mode::empty()).ok()?;
    let mut file = std::fs::File::from(fd);
    let mut buf = [0u8; MAX_FILE];
    let mut len = 0;
    loop {
        let room = buf.get_mut(len..)?;
        if room.is_empty() {
            return None; // longer than MAX_FILE
        }
        let offered = room.len();
        let n = file.read(room).ok()?;
        len += n;
        // cgroupfs fills all the room offered unless the text ends first: a short
        // read was the last (this saves a read per file that would return 0).
        if n < offered {
            break;
        }
    }
    String::from_utf8(buf.get(..len)?.to_vec()).ok()
}
