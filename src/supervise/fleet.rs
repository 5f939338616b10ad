//! All units and the dependency rules between them.
//!
//! Every public call applies its events to the units' machines, then settles the
//! fleet (spawns what may spawn, stops what may stop, fails what lost a requirement,
//! swaps in changed definitions, drops removed units) and returns every action that
//! resulted. Nothing is left for a later call to pick up.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::machine::{Action, Event, ExitStatus, Machine, Phase};
use super::reload::{ReloadPlan, same_definition};
use super::time::Now;
use crate::unit::{ContainerSpec, Loaded, Namespace, OnFailure, OnUnhealthy, Unit};

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
}

/// An action the daemon must carry out for a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitAction {
    pub unit: String,
    pub action: Action,
}

/// All units and the dependency edges between them.
#[derive(Debug, Default)]
pub struct Fleet {
    slots: BTreeMap<String, Slot>,
    /// unit -> units that name it in `after` or `requires`.
    dependents: HashMap<String, BTreeSet<String>>,
    /// Units whose machine changed since the last settle: they and their neighbours
    /// are where the next settle starts.
    dirty: Vec<String>,
    /// Removed units dropped since the last `take_forgotten`: what the daemon keeps
    /// about them besides the slot goes too.
    forgotten: Vec<String>,
}

impl Fleet {
    pub fn slots(&self) -> &BTreeMap<String, Slot> {
        &self.slots
    }

    pub fn get(&self, name: &str) -> Option<&Slot> {
        self.slots.get(name)
    }

    /// Removed units dropped (their process gone) since the last call.
    pub fn take_forgotten(&mut self) -> Vec<String> {
        std::mem::take(&mut self.forgotten)
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

    /// What `apply_reload` would do, without doing it (`reload --dry-run`).
    pub fn plan_reload(&self, loaded: &Loaded) -> ReloadPlan {
        ReloadPlan::compute(&self.slots, loaded)
    }

    /// Apply a freshly read unit directory: add, remove, replace. Units that are new,
    /// or were running with a changed definition, are (re)started; rejected files
    /// keep the loaded definition.
    pub fn apply_reload(&mut self, loaded: &Loaded, now: Now) -> (ReloadPlan, Vec<UnitAction>) {
        let plan = self.plan_reload(loaded);
        let mut out = Vec::new();
        for name in &plan.removed {
            self.stop_with_dependents(name, now, &mut out);
            if let Some(slot) = self.slots.get_mut(name) {
                slot.removing = true;
            }
        }
        for (name, slot) in self.slots.iter_mut() {
            let Some(unit) = loaded.units.get(name) else {
                continue;
            };
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
        for name in &plan.restarted {
            self.event(name, Event::Restart, now, &mut out);
        }
        for name in &plan.added {
            if let Some(unit) = loaded.units.get(name) {
                let slot = Slot {
                    spec: Arc::new(unit.clone()),
                    next_spec: None,
                    machine: Machine::new(now),
                    removing: false,
                };
                self.slots.insert(name.clone(), slot);
            }
        }
        self.rebuild_dependents();
        for name in &plan.added {
            self.start_with_requirements(name, now, &mut out);
        }
        // Definitions and edges changed anywhere: every unit may move.
        self.dirty.extend(self.slots.keys().cloned());
        self.settle(now, &mut out);
        (plan, out)
    }

    /// Operator start: the unit and, transitively, every unit it requires.
    pub fn start(&mut self, name: &str, now: Now) -> Vec<UnitAction> {
        let mut out = Vec::new();
        self.start_with_requirements(name, now, &mut out);
        self.settle(now, &mut out);
        out
    }

    /// Operator stop: the unit and, transitively, every unit that requires it.
    pub fn stop(&mut self, name: &str, now: Now) -> Vec<UnitAction> {
        let mut out = Vec::new();
        self.stop_with_dependents(name, now, &mut out);
        self.settle(now, &mut out);
        out
    }

    /// Operator restart of one unit (dependents keep running; requirements start).
    pub fn restart(&mut self, name: &str, now: Now) -> Vec<UnitAction> {
        let mut out = Vec::new();
        self.event(name, Event::Restart, now, &mut out);
        let requires = self.slots.get(name).map(|s| s.spec.requires.clone());
        for req in requires.iter().flatten() {
            self.start_with_requirements(req, now, &mut out);
        }
        self.settle(now, &mut out);
        out
    }

    pub fn reset_failed(&mut self, name: &str, now: Now) -> Vec<UnitAction> {
        self.one(name, Event::ResetFailed, now)
    }

    /// Shutdown: everything goes down, in reverse dependency order.
    pub fn stop_all(&mut self, now: Now) -> Vec<UnitAction> {
        self.every(Event::Stop, now)
    }

    /// Kill every live process right away (a second shutdown request).
    pub fn kill_all(&mut self, now: Now) -> Vec<UnitAction> {
        self.every(Event::KillNow, now)
    }

    fn every(&mut self, event: Event, now: Now) -> Vec<UnitAction> {
        let mut out = Vec::new();
        for name in self.names() {
            self.event(&name, event.clone(), now, &mut out);
        }
        self.settle(now, &mut out);
        out
    }

    pub fn on_spawned(&mut self, name: &str, attempt: u64, pid: i32, now: Now) -> Vec<UnitAction> {
        self.one(name, Event::Spawned { attempt, pid }, now)
    }

    /// The start failed before the service ran (`start_pre`: in `exec_start_pre`).
    pub fn on_spawn_failed(
        &mut self,
        name: &str,
        attempt: u64,
        start_pre: bool,
        now: Now,
    ) -> Vec<UnitAction> {
        self.one(name, Event::SpawnFailed { attempt, start_pre }, now)
    }

    /// The service said it is ready (READY=1, `ready_fd`, a healthy probe).
    pub fn on_ready(&mut self, name: &str, now: Now) -> Vec<UnitAction> {
        self.one(name, Event::Ready, now)
    }

    /// A notify message other than READY=1 that the machine cares about.
    pub fn on_notify(&mut self, name: &str, event: Event, now: Now) -> Vec<UnitAction> {
        self.one(name, event, now)
    }

    /// The health check failed `retries` times in a row.
    pub fn on_unhealthy(&mut self, name: &str, action: OnUnhealthy, now: Now) -> Vec<UnitAction> {
        self.one(name, Event::Unhealthy(action), now)
    }

    /// The `exec_stop_post` commands of attempt `attempt` are done.
    pub fn on_stop_post_done(&mut self, name: &str, attempt: u64, now: Now) -> Vec<UnitAction> {
        self.one(name, Event::StopPostDone { attempt }, now)
    }

    /// The reaper saw `pid` of start attempt `attempt` of unit `name` end.
    pub fn on_exit(
        &mut self,
        name: &str,
        attempt: u64,
        pid: i32,
        status: ExitStatus,
        oom_killed: bool,
        now: Now,
    ) -> Vec<UnitAction> {
        let under_init = self
            .slots
            .get(name)
            .is_some_and(|s| runs_under_init(&s.spec.container));
        let status = if under_init {
            decode_init_status(status)
        } else {
            status
        };
        let event = Event::Exited {
            attempt,
            pid,
            status,
            oom_killed,
        };
        self.one(name, event, now)
    }

    /// Fire every timer that is due.
    pub fn on_timers(&mut self, now: Now) -> Vec<UnitAction> {
        let mut out = Vec::new();
        let due: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, s)| s.machine.deadline().is_some_and(|d| d <= now.mono))
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            self.event(&name, Event::Timer, now, &mut out);
        }
        self.settle(now, &mut out);
        out
    }

    fn one(&mut self, name: &str, event: Event, now: Now) -> Vec<UnitAction> {
        let mut out = Vec::new();
        self.event(name, event, now, &mut out);
        self.settle(now, &mut out);
        out
    }

    fn names(&self) -> Vec<String> {
        self.slots.keys().cloned().collect()
    }

    /// Feed one event to one unit's machine; true if anything changed.
    fn event(&mut self, name: &str, event: Event, now: Now, out: &mut Vec<UnitAction>) -> bool {
        let Some(slot) = self.slots.get_mut(name) else {
            return false;
        };
        let spec = slot.spec.clone();
        let before = slot.machine.phase().clone();
        let want_before = slot.machine.want_up();
        let actions = slot.machine.handle(event, now, &spec.service);
        let changed = *slot.machine.phase() != before
            || slot.machine.want_up() != want_before
            || !actions.is_empty();
        if changed {
            self.dirty.push(name.to_string());
        }
        let failed = actions.iter().any(|a| matches!(a, Action::Failed { .. }));
        out.extend(actions.into_iter().map(|action| UnitAction {
            unit: name.to_string(),
            action,
        }));
        if failed {
            self.after_failure(name, spec.service.lifecycle.on_failure, now, out);
        }
        changed
    }

    /// `on_failure` for the units that require `name`, which just failed.
    fn after_failure(
        &mut self,
        name: &str,
        action: OnFailure,
        now: Now,
        out: &mut Vec<UnitAction>,
    ) {
        let event = match action {
            OnFailure::StopDependents => Event::Stop,
            // Stopped now, started again once `name` is ready again (they require it).
            OnFailure::RestartDependents => Event::Restart,
            // The others are the daemon's (poweroff, reboot, exit) or nothing.
            OnFailure::None | OnFailure::Poweroff | OnFailure::Reboot | OnFailure::Exit => return,
        };
        let requiring: Vec<String> = self
            .dependents
            .get(name)
            .into_iter()
            .flatten()
            .filter(|d| {
                self.slots
                    .get(*d)
                    .is_some_and(|s| s.spec.requires.iter().any(|r| r == name))
            })
            .cloned()
            .collect();
        for dependent in requiring {
            if event == Event::Stop {
                self.stop_with_dependents(&dependent, now, out);
            } else {
                self.event(&dependent, event.clone(), now, out);
            }
        }
    }

    fn rebuild_dependents(&mut self) {
        self.dependents.clear();
        for (name, slot) in &self.slots {
            for dep in dependencies(&slot.spec) {
                self.dependents
                    .entry(dep.clone())
                    .or_default()
                    .insert(name.clone());
            }
        }
    }

    /// `name`'s definition changes from `old` to `new`: move its edges.
    fn replace_edges(&mut self, name: &str, old: &Unit, new: &Unit) {
        for dep in dependencies(old) {
            if let Some(set) = self.dependents.get_mut(dep) {
                set.remove(name);
            }
        }
        for dep in dependencies(new) {
            self.dependents
                .entry(dep.clone())
                .or_default()
                .insert(name.to_string());
        }
    }

    fn start_with_requirements(&mut self, name: &str, now: Now, out: &mut Vec<UnitAction>) {
        let mut stack = vec![name.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            let Some(slot) = self.slots.get(&n) else {
                continue;
            };
            if slot.removing {
                continue;
            }
            stack.extend(slot.spec.requires.iter().cloned());
            self.event(&n, Event::Start, now, out);
        }
    }

    fn stop_with_dependents(&mut self, name: &str, now: Now, out: &mut Vec<UnitAction>) {
        let mut stack = vec![name.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            self.event(&n, Event::Stop, now, out);
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

    /// Move every unit as far as dependencies allow, until nothing changes. A work
    /// list: a unit that moved puts its neighbours (and itself) back on it, so the
    /// cost follows the changes and the edges they touch, not units × passes.
    fn settle(&mut self, now: Now, out: &mut Vec<UnitAction>) {
        let mut queue: VecDeque<String> = VecDeque::new();
        let mut queued: HashSet<String> = HashSet::new();
        let mut changed = std::mem::take(&mut self.dirty);
        loop {
            for name in changed.drain(..) {
                for n in self.neighbourhood(&name) {
                    if queued.insert(n.clone()) {
                        queue.push_back(n);
                    }
                }
            }
            let Some(name) = queue.pop_front() else {
                break;
            };
            queued.remove(&name);
            self.step(&name, now, out);
            changed.append(&mut self.dirty);
        }
        let forgotten = &mut self.forgotten;
        let before = forgotten.len();
        self.slots.retain(|name, s| {
            let drop = s.removing && s.machine.is_settled_down();
            if drop {
                forgotten.push(name.clone());
            }
            !drop
        });
        if self.forgotten.len() != before {
            self.rebuild_dependents();
        }
    }

    /// A unit and the units whose next step may depend on it.
    fn neighbourhood(&self, name: &str) -> Vec<String> {
        let mut out = vec![name.to_string()];
        if let Some(slot) = self.slots.get(name) {
            out.extend(dependencies(&slot.spec).cloned());
        }
        out.extend(self.dependents.get(name).into_iter().flatten().cloned());
        out
    }

    /// One unit's share of `settle`; true if it changed anything.
    fn step(&mut self, name: &str, now: Now, out: &mut Vec<UnitAction>) -> bool {
        let Some(slot) = self.slots.get_mut(name) else {
            return false;
        };
        let between_processes =
            slot.machine.pid().is_none() && !matches!(slot.machine.phase(), Phase::Spawning { .. });
        if between_processes && let Some(next) = slot.next_spec.take() {
            let old = std::mem::replace(&mut slot.spec, next.clone());
            self.replace_edges(name, &old, &next);
            // Old and new neighbours both may move now.
            self.dirty.extend(dependencies(&old).cloned());
            self.dirty.push(name.to_string());
            return true;
        }
        let spec = slot.spec.clone();
        let want_up = slot.machine.want_up();
        let waiting = matches!(slot.machine.phase(), Phase::Waiting);
        // A process to stop: running, or still on its way to ready.
        let running = matches!(
            slot.machine.phase(),
            Phase::Running { .. } | Phase::Starting { .. }
        );
        if want_up {
            if let Some(unit) = self.failed_requirement(&spec) {
                return self.event(name, Event::RequirementFailed { unit }, now, out);
            }
            if waiting && self.dependencies_ready(&spec) {
                return self.event(name, Event::DependenciesReady, now, out);
            }
        } else if running && self.dependents_down(name) {
            return self.event(name, Event::DependentsDown, now, out);
        }
        false
    }

    /// A unit this one requires that has failed for good.
    fn failed_requirement(&self, spec: &Unit) -> Option<String> {
        spec.requires
            .iter()
            .find(|req| {
                self.slots
                    .get(*req)
                    .is_some_and(|dep| matches!(dep.machine.phase(), Phase::Failed(_)))
            })
            .cloned()
    }

    /// Every unit this one is ordered after has settled, and every unit it requires is up.
    fn dependencies_ready(&self, spec: &Unit) -> bool {
        let after_ok = spec
            .after
            .iter()
            .all(|d| self.slots.get(d).is_none_or(|s| !s.machine.is_coming_up()));
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
pub fn runs_under_init(c: &ContainerSpec) -> bool {
    c.init && c.namespaces.contains(&Namespace::Pid)
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
