//! Giving memory back after a burst of work (a storm of crash-looping units that
//! are then removed).
//!
//! Several things keep memory that a burst needed once it is over. Maps sized for a
//! thousand units keep their capacity when the units go: `Shrink::shrink_after_churn`
//! lets it go once they are mostly empty. And glibc's malloc keeps freed memory in
//! its arenas (one per thread that allocated, up to eight per CPU; tokio's blocking
//! pool runs up to 512 threads in a burst of starts): after a 1000-unit storm about
//! 45 MB were free inside supd's arenas and still resident, next to 3 MB in use.
//! Settings and a trimmer give that back:
//! - glibc raises its thresholds as it goes: freeing a block that was mmap'd (a
//!   `status` reply for a thousand units) raises the mmap threshold to that size and
//!   the trim threshold to twice it, up to 64 MiB. After that, the free space at the
//!   top of every arena below the new threshold stays resident for good: about 2 MB
//!   in each of 16 arenas after the storm. `tune_malloc` fixes both thresholds at
//!   glibc's own defaults (128 KiB), which turns that raising off.
//! - One arena (`M_ARENA_MAX`): with an arena per thread of a burst, each kept
//!   pages that held a few live blocks, so after a 150-unit storm supd's anonymous
//!   memory stayed 4 to 10 MB above its level before (3 MB); with one it comes
//!   back to within 2 MB. supd's threads spend their time in syscalls, not in
//!   malloc: one arena's lock costs nothing measurable.
//! - No per-thread caches (glibc's tcache): every thread keeps up to 7 freed
//!   blocks of each small size for itself, and `malloc_trim` cannot return a page
//!   that holds one. After a storm supd's long-lived threads (tokio's workers and
//!   its own) held about a thousand such blocks spread over the whole heap: half
//!   of the heap's resident pages held nothing else (2.3 MB after 1000 units ×
//!   60 s). Only the `GLIBC_TUNABLES` environment variable turns them off, read
//!   when a program starts, so supd starts itself over once with it set
//!   (`restart_without_thread_caches`; the helpers it spawns get an empty
//!   environment and keep theirs). Small blocks then come from the one arena
//!   under its lock: 500 starts took as long (docs/reliability.md).
//! - `Trimmer` hands free pages in the middle of the arenas back to the kernel with
//!   `malloc_trim(0)` once supd has been quiet (no start, no unit dropped) for
//!   `QUIET`. Nothing polls: the trimmer sleeps until the first activity after a
//!   trim.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How long supd must be quiet before memory is trimmed: longer than tokio keeps an
/// idle blocking thread (10 s), so the threads of the burst are gone and what they
/// held is free by then.
pub const QUIET: Duration = Duration::from_secs(12);

/// The glibc tunable that turns malloc's per-thread caches off (see the module's
/// comment). Tunables are read only when a program starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const NO_THREAD_CACHE: &str = "glibc.malloc.tcache_count=0";

/// Start supd over with malloc's per-thread caches turned off, unless they already
/// are (or `GLIBC_TUNABLES` sets them otherwise: the operator's choice stands).
/// Call first thing in `main`, while supd has one thread and has done nothing
/// else. Returns only if supd is not started over: not glibc, no `/proc` yet (the
/// kernel's PID 1 before it mounts it), or the exec failed.
pub fn restart_without_thread_caches() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::process::CommandExt;

        let mut tunables = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
        let name = b"glibc.malloc.tcache_count";
        if tunables.as_bytes().windows(name.len()).any(|w| w == name) {
            return;
        }
        // The binary's real path, not /proc/self/exe: the process name (comm) is
        // taken from it, and tools and tests find supd by that name (started
        // through a symlink, it becomes the name of the file linked to).
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        if !exe.exists() {
            return; // replaced on disk since it started
        }
        if !tunables.is_empty() {
            tunables.push(":");
        }
        tunables.push(NO_THREAD_CACHE);
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(&exe);
        if let Some(arg0) = args.next() {
            command.arg0(arg0);
        }
        let error = command.args(args).env("GLIBC_TUNABLES", tunables).exec();
        eprintln!(
            "supd: cannot start over with malloc's thread caches off ({error}); memory may stay high after a burst"
        );
    }
}

/// glibc's default mmap and trim thresholds, fixed (see the module's comment).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_THRESHOLD: i32 = 128 * 1024;

/// Fix malloc's mmap and trim thresholds and use one arena, so freed memory goes
/// back to the kernel after a burst. Call once at the start of `main`, before any other thread runs.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets one of malloc's parameters, under malloc's lock.
        let mmap = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_THRESHOLD) };
        // SAFETY: as above.
        let trim = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, MALLOC_THRESHOLD) };
        // SAFETY: as above.
        let arenas = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        if mmap != 1 || trim != 1 || arenas != 1 {
            // Memory still works, it is only kept longer after a burst.
            eprintln!("supd: cannot fix malloc's thresholds; memory may stay high after a burst");
        }
    }
}

/// Collections at or below this capacity are not worth shrinking.
const MIN_SHRINK: usize = 64;

/// A collection that can give back capacity it no longer needs.
pub trait Shrink {
    fn len_and_capacity(&self) -> (usize, usize);
    fn shrink_to_len(&mut self, capacity: usize);

    /// Shrink to twice the length once at most a quarter of the capacity is used:
    /// after churn the memory goes, and a map that grows and shrinks by a little does
    /// not reallocate each time.
    fn shrink_after_churn(&mut self) {
        let (len, capacity) = self.len_and_capacity();
        if capacity > MIN_SHRINK && len.saturating_mul(4) < capacity {
            self.shrink_to_len(len.saturating_mul(2));
        }
    }
}

impl<K: Eq + Hash, V, S: BuildHasher> Shrink for HashMap<K, V, S> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_to_len(&mut self, capacity: usize) {
        self.shrink_to(capacity);
    }
}

impl<T: Eq + Hash, S: BuildHasher> Shrink for HashSet<T, S> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_to_len(&mut self, capacity: usize) {
        self.shrink_to(capacity);
    }
}

impl<T> Shrink for Vec<T> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_to_len(&mut self, capacity: usize) {
        self.shrink_to(capacity);
    }
}

impl<T> Shrink for VecDeque<T> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_to_len(&mut self, capacity: usize) {
        self.shrink_to(capacity);
    }
}

/// Trims malloc's free memory once activity has stopped for `QUIET`.
#[derive(Debug, Clone)]
pub struct Trimmer {
    wake: Arc<Notify>,
    /// Bumped by every activity; unchanged over `QUIET` means quiet.
    activity: Arc<AtomicU64>,
    /// Trims done so far.
    trims: Arc<AtomicU64>,
}

impl Trimmer {
    /// Start the trimmer's task (call within the runtime).
    pub fn start() -> Trimmer {
        Self::start_with(QUIET)
    }

    fn start_with(quiet: Duration) -> Trimmer {
        let trimmer = Trimmer {
            wake: Arc::new(Notify::new()),
            activity: Arc::new(AtomicU64::new(0)),
            trims: Arc::new(AtomicU64::new(0)),
        };
        tokio::spawn(run(trimmer.clone(), quiet));
        trimmer
    }

    /// Something that allocates a lot, or frees what a burst allocated, happened.
    /// Cheap: a counter and, when the trimmer sleeps, one wake-up.
    pub fn touch(&self) {
        self.activity.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }
}

async fn run(trimmer: Trimmer, quiet: Duration) {
    let mut trimmed_at = 0;
    loop {
        trimmer.wake.notified().await;
        let mut seen = trimmer.activity.load(Ordering::Relaxed);
        if seen == trimmed_at {
            continue; // a wake-up left over from before the last trim
        }
        // Once per `quiet`, not once per touch, however busy supd is.
        loop {
            tokio::time::sleep(quiet).await;
            let now = trimmer.activity.load(Ordering::Relaxed);
            if now == seen {
                break;
            }
            seen = now;
        }
        trimmed_at = seen;
        // It walks every arena under its lock: not on a worker thread.
        let _ = tokio::task::spawn_blocking(trim).await;
        trimmer.trims.fetch_add(1, Ordering::Relaxed);
    }
}

/// Return free memory at the top and in the middle of every malloc arena to the
/// kernel. Only glibc has `malloc_trim`; elsewhere this does nothing.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim only works on malloc's own bookkeeping, under its
        // locks, and may be called from any thread at any time.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(
            released = released == 1,
            took_us = started.elapsed().as_micros() as u64,
            "gave free memory back to the kernel"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_shrink_once_mostly_empty() {
        let mut map: HashMap<u32, u32> = (0..1000).map(|i| (i, i)).collect();
        map.shrink_after_churn();
        assert!(map.capacity() >= 1000, "full: kept");
        let full = map.capacity();
        let third = full as u32 / 3;
        map.retain(|k, _| *k < third);
        map.shrink_after_churn();
        // (Tombstones of removed entries count against the reported capacity.)
        assert!(map.capacity() > full / 2, "a third used: kept");
        map.retain(|k, _| *k < 10);
        map.shrink_after_churn();
        assert!(map.capacity() < 64, "1% used: {}", map.capacity());
        assert_eq!(map.len(), 10);
        let mut small: HashSet<u32> = (0..20).collect();
        small.clear();
        small.shrink_after_churn();
        assert!(small.capacity() >= 20, "too small to bother");
    }

    #[tokio::test]
    async fn trims_once_activity_stops_and_sleeps_otherwise() {
        let ms = Duration::from_millis;
        let trimmer = Trimmer::start_with(ms(200));
        let trims = || trimmer.trims.load(Ordering::Relaxed);
        // Busy for 0.6 s: the trimmer waits on.
        for _ in 0..30 {
            trimmer.touch();
            tokio::time::sleep(ms(20)).await;
        }
        assert_eq!(trims(), 0, "not while busy");
        // Quiet: one trim, then sleep (no second trim for the same burst).
        tokio::time::sleep(ms(1000)).await;
        assert_eq!(trims(), 1);
        trimmer.touch();
        tokio::time::sleep(ms(1000)).await;
        assert_eq!(trims(), 2, "the next burst is trimmed too");
    }
}
