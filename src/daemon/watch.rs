//! Watching the unit directory (inotify through `notify`) and debouncing what it
//! reports: editors save through temp files and renames, `git checkout` rewrites
//! many files; a burst of events becomes one reload once the directory has been
//! quiet for a moment (or, under a steady stream, after a bounded wait).

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Quiet time after the last event before reloading.
pub const QUIET: Duration = Duration::from_millis(150);
/// Longest a reload waits under a continuous stream of events.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

/// What the watcher saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Something in the directory changed.
    Changed,
    /// The directory itself was created, removed or renamed.
    Directory,
}

/// The unit directory's watcher; without one (inotify unavailable, e.g. on some
/// network filesystems) changes are only picked up on SIGHUP or `supctl reload`.
///
/// The parent directory is watched too, so a units directory that is deleted and
/// created again (a deploy that swaps it) is watched again by itself.
pub struct DirWatch {
    dir: PathBuf,
    watcher: Option<notify::RecommendedWatcher>,
    events: Option<mpsc::UnboundedReceiver<Seen>>,
}

impl DirWatch {
    /// Start watching `dir` (not recursive: units are the files directly in it).
    pub fn start(dir: &Path) -> DirWatch {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        match watch(&dir) {
            Ok((watcher, events)) => DirWatch {
                dir,
                watcher: Some(watcher),
                events: Some(events),
            },
            Err(e) => {
                tracing::warn!(
                    "cannot watch {}: {e}; reload with SIGHUP or `supctl reload`",
                    dir.display()
                );
                DirWatch {
                    dir,
                    watcher: None,
                    events: None,
                }
            }
        }
    }

    /// The next time the directory's contents may have changed (never, without a
    /// watcher).
    pub async fn next(&mut self) -> Option<()> {
        loop {
            let seen = match &mut self.events {
                Some(rx) => rx.recv().await?,
                None => return std::future::pending().await,
            };
            match seen {
                Seen::Changed => return Some(()),
                Seen::Directory if self.rearm() => return Some(()),
                Seen::Directory => {}
            }
        }
    }

    /// The directory came or went: watch it again if it is there. True if it is.
    fn rearm(&mut self) -> bool {
        let Some(watcher) = &mut self.watcher else {
            return false;
        };
        // The kernel dropped the old watch with the old directory.
        let _ = watcher.unwatch(&self.dir);
        if !self.dir.is_dir() {
            tracing::warn!(dir = %self.dir.display(), "units directory is gone; units keep running, and it is watched for until it comes back");
            return false;
        }
        match watcher.watch(&self.dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                tracing::info!(dir = %self.dir.display(), "units directory is back; watching it again");
                true
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), "cannot watch the units directory again: {e}; reload with SIGHUP or `supctl reload`");
                false
            }
        }
    }
}

fn watch(
    dir: &Path,
) -> notify::Result<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<Seen>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let own = dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let seen = match &event {
            // Errors (e.g. an inotify queue overflow) also mean "look again".
            Err(_) => Some(Seen::Changed),
            Ok(e) if e.kind.is_access() => None,
            Ok(e) if e.paths.iter().any(|p| p == &own) => Some(Seen::Directory),
            // The parent's other entries are none of our business.
            Ok(e) if e.paths.iter().all(|p| p.parent() != Some(own.as_path())) => None,
            Ok(_) => Some(Seen::Changed),
        };
        if let Some(seen) = seen {
            let _ = tx.send(seen);
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    if let Some(parent) = dir.parent() {
        watcher.watch(parent, RecursiveMode::NonRecursive)?;
    }
    Ok((watcher, rx))
}

/// When the pending reload is due.
#[derive(Debug, Default, Clone, Copy)]
pub struct Debounce {
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Debounce {
    pub fn event(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + QUIET).min(first + MAX_WAIT))
    }

    /// True (and reset) when the reload is due at `now`.
    pub fn take_due(&mut self, now: Instant) -> bool {
        if self.deadline().is_some_and(|d| d <= now) {
            *self = Debounce::default();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_period_and_max_wait() {
        let t0 = Instant::now();
        let mut d = Debounce::default();
        assert_eq!(d.deadline(), None);
        d.event(t0);
        assert_eq!(d.deadline(), Some(t0 + QUIET));
        d.event(t0 + Duration::from_millis(100));
        assert_eq!(d.deadline(), Some(t0 + Duration::from_millis(100) + QUIET));
        // A steady stream cannot postpone the reload past MAX_WAIT.
        for i in 0..100 {
            d.event(t0 + Duration::from_millis(10 * i));
        }
        assert_eq!(d.deadline(), Some(t0 + MAX_WAIT));
        assert!(!d.take_due(t0 + Duration::from_millis(500)));
        assert!(d.take_due(t0 + MAX_WAIT));
        assert_eq!(d.deadline(), None);
    }
}
