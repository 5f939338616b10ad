//! `supctl enable` / `disable`: which units the operator keeps stopped, kept in
//! the state directory as one empty file per unit, `STATE/disabled/NAME`, so it
//! survives supd's restarts (and reboots, with a state directory on persistent
//! storage). Each file is made by writing a temporary file and renaming it, then
//! syncing the directory: a crash leaves the unit either disabled or not.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::event_loop::Daemon;
use crate::control::proto::Reply;
use crate::supervise::Now;

/// The directory of the disabled units' files.
pub fn disabled_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("disabled")
}

/// The disabled units recorded under `state_dir`; hidden files (a temporary file
/// left by a crash) are skipped.
pub fn load(state_dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(disabled_dir(state_dir)) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// Record `name` as disabled (or not), atomically and durably.
pub fn record(state_dir: &Path, name: &str, disabled: bool) -> std::io::Result<()> {
    let dir = disabled_dir(state_dir);
    let path = dir.join(name);
    if disabled {
        std::fs::DirBuilder::new().recursive(true).create(&dir)?;
        // A leading dot: never taken for a unit's file by `load`.
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(b"disabled by supctl disable\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
    } else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    if let Ok(d) = std::fs::File::open(&dir) {
        d.sync_all()?;
    }
    Ok(())
}

impl Daemon {
    /// At supd's start, before the units are loaded: the recorded disabled units.
    pub(super) fn load_disabled(&mut self) {
        let disabled = load(self.state_dir());
        if !disabled.is_empty() {
            tracing::info!(units = ?disabled, "disabled units stay stopped");
        }
        for name in disabled {
            self.fleet.set_disabled(&name, true);
        }
    }

    /// `disable`: record, then stop each unit (and the units that require it), as
    /// `stop` does and lists.
    pub(super) fn disable_units(&mut self, units: &[String], now: Now) -> Reply {
        if let Some(refusal) = self.record_all(units, true) {
            return refusal;
        }
        let mut reply = self.stop_units(units, now);
        if let Reply::Done { results } = &mut reply {
            for r in results.iter_mut().filter(|r| units.contains(&r.name)) {
                r.message = Some(match r.message {
                    Some(_) => "disabled, stop requested".into(),
                    None => "disabled".into(),
                });
            }
        }
        reply
    }

    /// `enable`: record; with `now`, start each unit as `start` does.
    pub(super) fn enable_units(&mut self, units: &[String], now_too: bool, now: Now) -> Reply {
        if let Some(refusal) = self.record_all(units, false) {
            return refusal;
        }
        for u in units.iter().filter(|_| now_too) {
            let actions = self.fleet.start(u, now);
            self.execute(actions);
        }
        let mut reply = self.results(units);
        if let Reply::Done { results } = &mut reply {
            for r in results.iter_mut() {
                r.message = Some(
                    if now_too {
                        "enabled, starting"
                    } else {
                        "enabled"
                    }
                    .into(),
                );
            }
        }
        reply
    }

    /// Record every unit, or refuse the request (unknown unit, or the state
    /// directory cannot be written).
    fn record_all(&mut self, units: &[String], disabled: bool) -> Option<Reply> {
        if let Some(refusal) = self.unknown_units(units) {
            return Some(refusal);
        }
        for u in units {
            if let Err(e) = record(self.state_dir(), u, disabled) {
                let what = if disabled { "disable" } else { "enable" };
                let message = format!(
                    "cannot {what} {u}: {}: {e}",
                    disabled_dir(self.state_dir()).join(u).display()
                );
                tracing::error!("{message}");
                return Some(Reply::Error {
                    code: crate::control::proto::ErrorCode::Internal,
                    message,
                });
            }
            self.fleet.set_disabled(u, disabled);
        }
        None
    }

    /// A start or restart of a disabled unit does nothing (the fleet never starts
    /// one): its result says so and is not ok.
    pub(super) fn mark_disabled(&self, reply: &mut Reply) {
        if let Reply::Done { results } = reply {
            for r in results
                .iter_mut()
                .filter(|r| self.fleet.is_disabled(&r.name))
            {
                r.ok = false;
                r.message = Some(disabled_reason(&r.name));
            }
        }
    }
}

/// Why a disabled unit does not start, with the way out.
pub fn disabled_reason(name: &str) -> String {
    format!("{name} is disabled: `supctl enable --now {name}` enables and starts it")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_units_are_recorded_one_file_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load(dir.path()).is_empty());
        record(dir.path(), "web", true).expect("disable");
        record(dir.path(), "db", true).expect("disable");
        record(dir.path(), "db", true).expect("twice is fine");
        std::fs::write(disabled_dir(dir.path()).join(".x.tmp"), "").expect("stray");
        assert_eq!(
            load(dir.path()),
            BTreeSet::from(["db".into(), "web".into()])
        );
        record(dir.path(), "web", false).expect("enable");
        record(dir.path(), "web", false).expect("enabling an enabled unit is fine");
        assert_eq!(load(dir.path()), BTreeSet::from(["db".into()]));
    }
}
