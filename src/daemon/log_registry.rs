//! Every unit's log, by name. A removed unit's last lines stay readable (`supctl
//! logs`) for a while: those of the `REMOVED_KEPT` units removed most recently are
//! kept in memory, older ones only in their file, so memory does not grow with every
//! unit name ever loaded.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use crate::logs::{LogWriter, SharedLog};
use crate::memory::Shrink;
use crate::unit::LogLimits;

/// Limits for the log of a unit whose definition is not known (yet).
const FALLBACK_LIMITS: LogLimits = LogLimits {
    max_size: 10 << 20,
    max_files: 5,
};

/// Removed units whose lines stay in memory. A storm of a thousand units that come
/// and go would otherwise leave a thousand logs behind.
pub const REMOVED_KEPT: usize = 16;

#[derive(Debug)]
pub struct LogRegistry {
    dir: PathBuf,
    writer: LogWriter,
    logs: HashMap<String, SharedLog>,
    /// Removed units whose log is still here, oldest first (at most `REMOVED_KEPT`).
    removed: VecDeque<String>,
}

impl LogRegistry {
    pub fn new(dir: PathBuf, writer: LogWriter) -> Self {
        LogRegistry {
            dir,
            writer,
            logs: HashMap::new(),
            removed: VecDeque::new(),
        }
    }

    /// Where a unit's log file is (whether or not it exists yet).
    pub fn path(&self, unit: &str) -> PathBuf {
        self.dir.join(format!("{unit}.log"))
    }

    /// The unit's log file, if lines are written to files (`--log-target`).
    pub fn file(&self, unit: &str) -> Option<PathBuf> {
        self.writer.writes_files().then(|| self.path(unit))
    }

    pub fn get(&self, unit: &str) -> Option<&SharedLog> {
        self.logs.get(unit)
    }

    /// The unit's log, created on first use; `limits` (the unit's current ones, if
    /// known) apply from now on. With limits the unit is loaded: if it had been
    /// removed before, its log is no longer one of the removed ones.
    pub fn open(&mut self, unit: &str, limits: Option<LogLimits>) -> SharedLog {
        if limits.is_some() && !self.removed.is_empty() {
            self.removed.retain(|u| u != unit);
        }
        let path = self.path(unit);
        let log = self.logs.entry(unit.to_string()).or_insert_with(|| {
            let limits = limits.unwrap_or(FALLBACK_LIMITS);
            SharedLog::new(unit, path, limits, self.writer.clone())
        });
        if let Some(limits) = limits {
            log.set_limits(limits);
        }
        log.clone()
    }

    /// `unit` was removed: its log is kept until `REMOVED_KEPT` units removed later
    /// push it out. Pumps still reading its pipes hold their own handle.
    pub fn forget(&mut self, unit: &str) {
        if !self.logs.contains_key(unit) || self.removed.iter().any(|u| u == unit) {
            return;
        }
        self.removed.push_back(unit.to_string());
        while self.removed.len() > REMOVED_KEPT {
            if let Some(old) = self.removed.pop_front() {
                self.logs.remove(&old);
            }
        }
        self.logs.shrink_after_churn();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_latest_removed_units_keep_their_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = LogWriter::start(false).expect("writer");
        let mut logs = LogRegistry::new(dir.path().into(), writer);
        let n = REMOVED_KEPT + 10;
        for i in 0..n {
            logs.open(&format!("u{i}"), None).note(format!("line {i}"));
        }
        logs.open("stays", None);
        // u0 is removed, loaded again, and removed once more: counted once, late.
        logs.forget("u0");
        logs.open("u0", Some(FALLBACK_LIMITS));
        for i in 1..n {
            logs.forget(&format!("u{i}"));
        }
        logs.forget("u0");
        assert!(logs.get("stays").is_some(), "a loaded unit keeps its log");
        assert!(logs.get("u0").is_some(), "removed last");
        for i in 1..=10 {
            assert!(logs.get(&format!("u{i}")).is_none(), "u{i} pushed out");
        }
        let kept = (11..n).filter(|i| logs.get(&format!("u{i}")).is_some());
        assert_eq!(kept.count(), REMOVED_KEPT - 1);
        assert_eq!(logs.get("u0").map(|l| l.tail(5).len()), Some(1));
        assert!(logs.removed.len() <= REMOVED_KEPT);
    }
}
