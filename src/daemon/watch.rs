//! Watching the unit directory (inotify through `notify`) and debouncing what it
//! reports: editors save through temp files and renames, `git checkout` rewrites
//! many files; a burst of events becomes one reload once the directory has been
//! quiet for a moment (or, under a steady stream, after a bounded wait).

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Quiet time after the last event before reloading.
pub const QUIET: Duration = Duration::from_millis(150);
/// Longest a reload waits under a continuous stream of events.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

/// The unit directory's watcher; without one (inotify unavailable, e.g. on some
/// network filesystems) changes are only picked up on SIGHUP or `supctl reload`.
pub struct DirWatch {
    /// Kept alive for as long as events are wanted.
    _watcher: Option<notify::RecommendedWatcher>,
    events: Option<mpsc::UnboundedReceiver<()>>,
}

impl DirWatch {
    /// Start watching `dir` (not recursive: units are the files directly in it).
    pub fn start(dir: &Path) -> DirWatch {
        match watch(dir) {
            Ok((watcher, events)) => DirWatch {
                _watcher: Some(watcher),
                events: Some(events),
            },
            Err(e) => {
                tracing::warn!(
                    "cannot watch {}: {e}; reload with SIGHUP or `supctl reload`",
                    dir.display()
                );
                DirWatch {
                    _watcher: None,
                    events: None,
                }
            }
        }
    }

    /// The next wake-up (never, without a watcher).
    pub async fn next(&mut self) -> Option<()> {
        match &mut self.events {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }
}

fn watch(dir: &Path) -> notify::Result<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<()>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Errors (e.g. an inotify queue overflow) also mean "look again".
        if event.as_ref().map_or(true, |e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
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
