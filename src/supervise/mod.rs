//! Supervision: the per-unit state machine (`machine`) and the fleet of units with
//! their dependencies (`Fleet`). Both are pure: the daemon feeds them events and the
//! time, and performs the `Action`s they return.

pub mod machine;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

pub use machine::{Action, AfterStop, ExitStatus, Failure, Machine, Now, Phase};

use crate::control::proto::ReloadPlan;
use crate::unit::{Loaded, Unit};

/// One loaded unit: its definition and its life cycle.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The definition the current (or last) process was started from.
    pub spec: Arc<Unit>,
    /// A changed definition waiting for the current process to be gone.
    pub next_spec: Option<Arc<Unit>>,
    pub machine: Machine,
    /// Removed from disk: dropped once its process is gone.
    pub removing: bool,
    /// The file on disk was rejected; `spec` is the last good definition.
    pub definition_error: Option<String>,
    /// Incremented per spawn so a late spawn outcome is matched to its attempt.
    pub spawn_gen: u64,
}

/// All units and the dependency edges between them.
#[derive(Debug, Default)]
pub struct Fleet {
    slots: BTreeMap<String, Slot>,
    /// unit -> units that name it in `after` or `requires`.
    dependents: HashMap<String, Vec<String>>,
    /// Actions decided outside `reconcile` (a reload restarting units), handed out by
    /// the next `reconcile`.
    pending: Vec<UnitAction>,
}

/// An action the daemon must perform for a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitAction {
    pub unit: String,
    pub action: Action,
    /// For `Spawn`: the attempt number to hand back with the outcome.
    pub spawn_gen: u64,
}

impl Fleet {
    pub fn slots(&self) -> &BTreeMap<String, Slot> {
        &self.slots
    }

    pub fn get(&self, name: &str) -> Option<&Slot> {
        self.slots.get(name)
    }

    /// True when no unit has a process or is about to spawn one.
    pub fn all_settled_down(&self) -> bool {
        self.slots.values().all(|s| s.machine.is_settled_down())
    }

    /// The earliest timer any unit needs.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter_map(|s| s.machine.deadline())
            .min()
    }

    /// Apply a freshly read unit directory: add, remove, replace. Units that are new or
    /// were running with a changed definition are (re)started; rejected files keep the
    /// loaded definition. With `dry_run` only the plan is computed.
    pub fn reload(&mut self, loaded: &Loaded, now: Now, dry_run: bool) -> ReloadPlan {
        let rejected: BTreeMap<&str, String> = loaded
            .errors
            .iter()
            .map(|e| (e.unit.as_str(), e.to_string()))
            .collect();
        let mut plan = ReloadPlan {
            rejected: loaded.errors.iter().map(|e| e.to_string()).collect(),
            ..ReloadPlan::default()
        };
        for (name, unit) in &loaded.units {
            match self.slots.get(name) {
                None => plan.added.push(name.clone()),
                Some(slot) if same_definition(&slot.spec, unit) => {
                    plan.unchanged.push(name.clone())
                }
                // Only limits changed: applied to the running cgroup, no restart.
                Some(slot) if crate::unit::same_except_resources(&slot.spec, unit) => {
                    plan.updated.push(name.clone())
                }
                Some(slot) if slot.machine.pid().is_some() || !slot.machine.is_settled_down() => {
                    plan.restarted.push(name.clone())
                }
                Some(_) => plan.updated.push(name.clone()),
            }
        }
        for name in self.slots.keys() {
            if !loaded.units.contains_key(name) && !rejected.contains_key(name.as_str()) {
                plan.removed.push(name.clone());
            }
        }
        if dry_run {
            return plan;
        }
        for name in &plan.removed {
            self.stop_with_dependents(name, now);
            if let Some(slot) = self.slots.get_mut(name) {
                slot.removing = true;
            }
        }
        for (name, slot) in self.slots.iter_mut() {
            slot.definition_error = rejected.get(name.as_str()).cloned();
            if let Some(unit) = loaded.units.get(name) {
                if same_definition(&slot.spec, unit)
                    || crate::unit::same_except_resources(&slot.spec, unit)
                {
                    // Same process: keep it, take the new definition (path, hash, limits).
                    slot.spec = Arc::new(unit.clone());
                    slot.next_spec = None;
                } else {
                    slot.next_spec = Some(Arc::new(unit.clone()));
                }
                slot.removing = false;
            }
        }
        for name in &plan.restarted {
            if let Some(slot) = self.slots.get_mut(name) {
                let spec = slot.spec.clone();
                let actions = slot.machine.restart(now, &spec.service);
                self.pending.extend(tag(name, 0, actions));
            }
        }
        for name in &plan.added {
            if let Some(unit) = loaded.units.get(name) {
                self.slots.insert(
                    name.clone(),
                    Slot {
                        spec: Arc::new(unit.clone()),
                        next_spec: None,
                        machine: Machine::new(now),
                        removing: false,
                        definition_error: None,
                        spawn_gen: 0,
                    },
                );
            }
        }
        self.rebuild_dependents();
        for name in &plan.added {
            self.start_with_requirements(name, now);
        }
        plan
    }

    fn rebuild_dependents(&mut self) {
        self.dependents.clear();
        for (name, slot) in &self.slots {
            for dep in dependencies(&slot.spec) {
                self.dependents
                    .entry(dep.clone())
                    .or_default()
                    .push(name.clone());
            }
        }
    }

    /// Operator start: the unit and, transitively, every unit it requires.
    pub fn start_with_requirements(&mut self, name: &str, now: Now) {
        let mut stack = vec![name.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(slot) = self.slots.get_mut(&n) {
                if slot.removing {
                    continue;
                }
                slot.machine.start(now);
                stack.extend(slot.spec.requires.iter().cloned());
            }
        }
    }

    /// Operator stop: the unit and, transitively, every unit that requires it.
    pub fn stop_with_dependents(&mut self, name: &str, now: Now) {
        let mut stack = vec![name.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(slot) = self.slots.get_mut(&n) {
                slot.machine.stop(now);
            }
            for dependent in self.dependents.get(&n).into_iter().flatten() {
                let requires_it = self
                    .slots
                    .get(dependent)
                    .is_some_and(|s| s.spec.requires.contains(&n));
                if requires_it {
                    stack.push(dependent.clone());
                }
            }
        }
    }

    /// Operator restart of one unit (dependents keep running).
    pub fn restart(&mut self, name: &str, now: Now) -> Vec<UnitAction> {
        let Some(slot) = self.slots.get_mut(name) else {
            return Vec::new();
        };
        let spec = slot.spec.clone();
        let actions = slot.machine.restart(now, &spec.service);
        for req in spec.requires.iter() {
            self.start_with_requirements(req, now);
        }
        tag(name, 0, actions)
    }

    pub fn reset_failed(&mut self, name: &str, now: Now) {
        if let Some(slot) = self.slots.get_mut(name) {
            slot.machine.reset_failed(now);
        }
    }

    /// Shutdown: everything goes down, in reverse dependency order (see `reconcile`).
    pub fn stop_all(&mut self, now: Now) {
        for slot in self.slots.values_mut() {
            slot.machine.stop(now);
        }
    }

    /// SIGKILL to every live process group right away (a second shutdown signal).
    pub fn kill_all(&self) -> Vec<UnitAction> {
        self.slots
            .iter()
            .filter_map(|(name, slot)| {
                let pgid = slot.machine.pid()?;
                Some(UnitAction {
                    unit: name.clone(),
                    action: Action::SignalGroup {
                        pgid,
                        signal: nix::sys::signal::Signal::SIGKILL,
                    },
                    spawn_gen: 0,
                })
            })
            .collect()
    }

    /// Whether a spawn outcome belongs to the attempt the unit is waiting for.
    pub fn is_current_spawn(&self, name: &str, spawn_gen: u64) -> bool {
        self.slots.get(name).is_some_and(|s| {
            s.spawn_gen == spawn_gen && matches!(s.machine.phase(), Phase::Spawning { .. })
        })
    }

    pub fn on_spawned(&mut self, name: &str, gen_: u64, pid: i32, now: Now) -> Vec<UnitAction> {
        self.with_machine(name, Some(gen_), |m, svc| m.spawned(pid, now, svc))
    }

    pub fn on_spawn_failed(
        &mut self,
        name: &str,
        gen_: u64,
        msg: String,
        now: Now,
    ) -> Vec<UnitAction> {
        self.with_machine(name, Some(gen_), |m, svc| m.spawn_failed(msg, now, svc))
    }

    pub fn on_exit(
        &mut self,
        name: &str,
        pid: i32,
        status: ExitStatus,
        oom_killed: bool,
        now: Now,
    ) -> Vec<UnitAction> {
        if oom_killed && let Some(slot) = self.slots.get_mut(name) {
            slot.machine.record_oom_kill();
        }
        let under_init = self
            .slots
            .get(name)
            .is_some_and(|s| runs_under_init(&s.spec.container));
        let status = if under_init {
            decode_init_status(status)
        } else {
            status
        };
        self.with_machine(name, None, |m, svc| m.exited(pid, status, now, svc))
    }

    /// Fire every timer that is due.
    pub fn on_timers(&mut self, now: Now) -> Vec<UnitAction> {
        let mut out = Vec::new();
        for (name, slot) in self.slots.iter_mut() {
            if slot.machine.deadline().is_some_and(|d| d <= now.mono) {
                out.extend(tag(name, 0, slot.machine.on_timer(now)));
            }
        }
        out
    }

    fn with_machine(
        &mut self,
        name: &str,
        gen_: Option<u64>,
        f: impl FnOnce(&mut Machine, &crate::unit::Service) -> Vec<Action>,
    ) -> Vec<UnitAction> {
        let Some(slot) = self.slots.get_mut(name) else {
            return Vec::new();
        };
        if gen_.is_some_and(|g| g != slot.spawn_gen) {
            return Vec::new();
        }
        let spec = slot.spec.clone();
        tag(name, 0, f(&mut slot.machine, &spec.service))
    }

    /// Move every unit as far as dependencies allow: spawn units whose dependencies have
    /// settled, stop units whose dependents are down, fail units whose requirement
    /// failed, swap in changed definitions, drop removed units. Repeats until stable.
    pub fn reconcile(&mut self, now: Now) -> Vec<UnitAction> {
        let mut out = std::mem::take(&mut self.pending);
        let names: Vec<String> = self.slots.keys().cloned().collect();
        loop {
            let mut changed = false;
            for name in &names {
                changed |= self.step(name, now, &mut out);
            }
            if !changed {
                break;
            }
        }
        self.slots
            .retain(|_, s| !(s.removing && s.machine.is_settled_down()));
        if self.slots.len() != names.len() {
            self.rebuild_dependents();
        }
        out
    }

    /// One unit's share of `reconcile`; true if it changed anything.
    fn step(&mut self, name: &str, now: Now, out: &mut Vec<UnitAction>) -> bool {
        let Some(slot) = self.slots.get(name) else {
            return false;
        };
        if slot.next_spec.is_some()
            && slot.machine.pid().is_none()
            && !matches!(slot.machine.phase(), Phase::Spawning { .. })
        {
            let slot = match self.slots.get_mut(name) {
                Some(s) => s,
                None => return false,
            };
            if let Some(next) = slot.next_spec.take() {
                slot.spec = next;
            }
            self.rebuild_dependents();
            return true;
        }
        let Some(slot) = self.slots.get(name) else {
            return false;
        };
        let spec = slot.spec.clone();
        if slot.machine.want_up() {
            if let Some(lost) = self.lost_requirement(&spec) {
                return self.apply(name, out, |m, svc| m.dependency_lost(lost, now, svc));
            }
            if matches!(slot.machine.phase(), Phase::Waiting) && self.dependencies_ready(&spec) {
                return self.apply(name, out, |m, svc| m.begin_spawn(now, svc));
            }
        } else if matches!(slot.machine.phase(), Phase::Running { .. })
            && self.dependents_down(name)
        {
            return self.apply(name, out, |m, svc| m.begin_stop(now, svc, AfterStop::Rest));
        }
        false
    }

    /// Run a transition on a unit and collect its actions; a Spawn gets a new attempt number.
    fn apply(
        &mut self,
        name: &str,
        out: &mut Vec<UnitAction>,
        f: impl FnOnce(&mut Machine, &crate::unit::Service) -> Vec<Action>,
    ) -> bool {
        let Some(slot) = self.slots.get_mut(name) else {
            return false;
        };
        let spec = slot.spec.clone();
        let before = slot.machine.phase().clone();
        let actions = f(&mut slot.machine, &spec.service);
        if actions.contains(&Action::Spawn) {
            slot.spawn_gen += 1;
        }
        let changed = *slot.machine.phase() != before || !actions.is_empty();
        out.extend(tag(name, slot.spawn_gen, actions));
        changed
    }

    /// A unit this one requires has failed for good.
    fn lost_requirement(&self, spec: &Unit) -> Option<String> {
        spec.requires.iter().find_map(|req| {
            let dep = self.slots.get(req)?;
            match dep.machine.phase() {
                Phase::Failed(_) => Some(format!("required unit {req} failed")),
                _ => None,
            }
        })
    }

    /// Every unit this one is ordered after has settled, and every unit it requires is up.
    fn dependencies_ready(&self, spec: &Unit) -> bool {
        let on_its_way_up = |m: &Machine| {
            matches!(
                m.phase(),
                Phase::Waiting | Phase::Spawning { .. } | Phase::Restarting { .. }
            ) || matches!(
                m.phase(),
                Phase::Stopping {
                    then: AfterStop::Start,
                    ..
                }
            )
        };
        let after_ok = spec
            .after
            .iter()
            .all(|d| self.slots.get(d).is_none_or(|s| !on_its_way_up(&s.machine)));
        let requires_ok = spec
            .requires
            .iter()
            .all(|d| self.slots.get(d).is_some_and(|s| s.machine.is_up()));
        after_ok && requires_ok
    }

    /// Every unit ordered after this one that is also going down has stopped.
    fn dependents_down(&self, name: &str) -> bool {
        self.dependents.get(name).into_iter().flatten().all(|d| {
            self.slots.get(d).is_none_or(|s| {
                s.machine.want_up()
                    || s.machine.is_settled_down()
                    || matches!(s.machine.phase(), Phase::Restarting { .. })
            })
        })
    }
}

/// Whether the unit's main process is the container init (own PID namespace).
pub fn runs_under_init(c: &crate::unit::ContainerSpec) -> bool {
    c.init && c.namespaces.contains(&crate::unit::Namespace::Pid)
}

/// The container init cannot die by the service's signal (a PID 1 cannot kill
/// itself), so it exits 128+N; turn that back into "killed by signal N" so restart
/// policies and status see what happened to the service.
pub fn decode_init_status(status: ExitStatus) -> ExitStatus {
    match status {
        ExitStatus::Code(c) if (129..=128 + 64).contains(&c) => ExitStatus::Signal(c - 128),
        other => other,
    }
}

/// The units this one must start after: `after` plus `requires`.
fn dependencies(unit: &Unit) -> impl Iterator<Item = &String> {
    unit.after.iter().chain(unit.requires.iter())
}

/// Equal in meaning (the hash covers the semantic definition, not the file's bytes).
fn same_definition(a: &Unit, b: &Unit) -> bool {
    a.hash == b.hash
}

fn tag(name: &str, spawn_gen: u64, actions: Vec<Action>) -> Vec<UnitAction> {
    actions
        .into_iter()
        .map(|action| UnitAction {
            unit: name.to_string(),
            action,
            spawn_gen,
        })
        .collect()
}

#[cfg(test)]
pub fn test_service() -> crate::unit::Service {
    use std::time::Duration;
    crate::unit::Service {
        exec: vec!["/bin/true".into()],
        env: Default::default(),
        workdir: None,
        user: None,
        group: None,
        restart: crate::unit::RestartPolicy::OnFailure,
        restart_delay: Duration::from_millis(100),
        restart_max_delay: Duration::from_secs(30),
        restart_reset_after: Duration::from_secs(10),
        start_limit: crate::unit::StartLimit {
            burst: 5,
            interval: Duration::from_secs(10),
        },
        stop_signal: nix::sys::signal::Signal::SIGTERM,
        stop_timeout: Duration::from_secs(10),
        success_exit_codes: vec![0],
        supplementary_groups: Vec::new(),
        umask: None,
    }
}

#[cfg(test)]
mod tests;
