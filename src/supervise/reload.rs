//! What a reload of the unit directory changes, decided before anything is touched
//! (so `--dry-run` shows exactly what a real reload does).

use std::collections::{BTreeMap, BTreeSet};

use super::fleet::Slot;
use crate::unit::{Loaded, Unit, UnitError};

/// The outcome of comparing a freshly read directory with the loaded units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// New files: started.
    pub added: Vec<String>,
    /// Files gone (and not merely rejected): stopped, then dropped.
    pub removed: Vec<String>,
    /// Changed definitions of units with a process: stopped and started again.
    pub restarted: Vec<String>,
    /// Changed only in `[resources]` (applied to the running cgroup) or in the
    /// settings of its `[health]` check (probing starts over), or changed
    /// while not running (taken as they are): no restart.
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// Every problem of every rejected file; those units keep their loaded definition.
    pub rejected: Vec<UnitError>,
}

impl ReloadPlan {
    /// Compare `loaded` with the current slots.
    pub fn compute(slots: &BTreeMap<String, Slot>, loaded: &Loaded) -> ReloadPlan {
        let rejected_units: BTreeSet<&str> =
            loaded.errors.iter().map(|e| e.unit.as_str()).collect();
        let mut plan = ReloadPlan {
            rejected: loaded.errors.clone(),
            ..ReloadPlan::default()
        };
        for (name, unit) in &loaded.units {
            match slots.get(name) {
                None => plan.added.push(name.clone()),
                Some(slot) if same_definition(&slot.spec, unit) => {
                    plan.unchanged.push(name.clone())
                }
                Some(slot) if crate::unit::same_except_live_settings(&slot.spec, unit) => {
                    plan.updated.push(name.clone())
                }
                Some(slot) if !slot.machine.is_settled_down() => plan.restarted.push(name.clone()),
                Some(_) => plan.updated.push(name.clone()),
            }
        }
        for name in slots.keys() {
            if !loaded.units.contains_key(name) && !rejected_units.contains(name.as_str()) {
                plan.removed.push(name.clone());
            }
        }
        plan
    }
}

/// Equal in meaning (the hash covers the semantic definition, not the file's bytes).
pub(super) fn same_definition(a: &Unit, b: &Unit) -> bool {
    a.hash == b.hash
}
