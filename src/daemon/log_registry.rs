//! Every unit's log, by name. A unit's log outlives its definition (a removed unit's
//! last lines stay readable until supd exits).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::logs::{LogWriter, SharedLog};
use crate::unit::LogLimits;

/// Limits for the log of a unit whose definition is not known (yet).
const FALLBACK_LIMITS: LogLimits = LogLimits {
    max_size: 10 << 20,
    max_files: 5,
};

#[derive(Debug)]
pub struct LogRegistry {
    dir: PathBuf,
    writer: LogWriter,
    logs: HashMap<String, SharedLog>,
}

impl LogRegistry {
    pub fn new(dir: PathBuf, writer: LogWriter) -> Self {
        LogRegistry {
            dir,
            writer,
            logs: HashMap::new(),
        }
    }

    /// Where a unit's log file is (whether or not it exists yet).
    pub fn path(&self, unit: &str) -> PathBuf {
        self.dir.join(format!("{unit}.log"))
    }

    pub fn get(&self, unit: &str) -> Option<&SharedLog> {
        self.logs.get(unit)
    }

    /// The unit's log, created on first use; `limits` (the unit's current ones, if
    /// known) apply from now on.
    pub fn open(&mut self, unit: &str, limits: Option<LogLimits>) -> SharedLog {
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
}
