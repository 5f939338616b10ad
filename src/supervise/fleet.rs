//! All units and the dependency rules between them.
//!
//! Every public call applies its events to the units' machines, then settles the
//! fleet (spawns what may spawn, stops what may stop, fails what lost a requirement,
//! swaps in changed definitions, drops removed units) and returns every action that
//! resulted. Nothing is left for a later call to pick up.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::graph::{Class, Graph};
use super::machine::{Action, Event, ExitStatus, Machine, Phase};
use super::reload::{ReloadPlan, same_definition};
use super::time::Now;
use crate::memory::Shrink;
use crate::unit::{Loaded, OnFailure, OnUnhealthy, Unit};

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
    /// Stopped (or restarted) by the `on_failure` of a unit it requires: that
    /// unit and its `on_failure`, shown as the reason until the next start or stop.
    pub stopped_for: Option<(String, OnFailure)>,
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
    /// The edges of every slot's `spec`, and per unit how many still hold it back.
    graph: Graph,
    /// Units whose next step may differ since they were last stepped: their machine
    /// moved, or a dependency check of theirs changed its answer. Where the next
    /// settle starts.
    dirty: Vec<String>,
    /// Units marked `removing`: dropped once their process is gone.
    removing: BTreeSet<String>,
    /// Units stepped by `settle` since the fleet was made (see `settle_steps`).
    steps: u64,
    /// Removed units dropped since the last `take_forgotten`: what the daemon keeps
    /// about them besides the slot goes too.
    forgotten: Vec<String>,
    /// Units the operator disabled (`supctl disable`): never started, not by
    /// supd's start, a reload, a dependent or an `on_failure`. Names, so a
    /// unit keeps it while its file is away.
    disabled: BTreeSet<String>,
}

impl Fleet {
    pub fn slots(&self) -> &BTreeMap<String, Slot> {
        &self.slots
    }

    pub fn get(&self, name: &str) -> Option<&Slot> {
        self.slots.get(name)
    }

    /// Whether the operator disabled `name`.
    pub fn is_disabled(&self, name: &str) -> bool {
        self.disabled.contains(name)
    }

    /// Mark `name` disabled or not. Disabling stops nothing by itself (see
    /// `stop`); enabling starts nothing.
    pub fn set_disabled(&mut self, name: &str, disabled: bool) {
        if disabled {
            self.disabled.insert(name.to_string());
        } else {
            self.disabled.remove(name);
        }
    }

    /// What a waiting unit waits for, in the order of its lists: the units it
    /// `requires` that are not up, then those it is `after` that are on their way
    /// up. For `status`: a walk over its lists, not kept.
    pub fn waiting_for(&self, name: &str) -> Vec<String> {
        let Some(slot) = self.slots.get(name) else {
            return Vec::new();
        };
        let machine = |n: &String| self.slots.get(n).map(|s| &s.machine);
        let required = slot
            .spec
            .requires
            .iter()
            .filter(|n| !machine(n).is_some_and(|m| m.is_up()));
        let ordered = slot
            .spec
            .after
            .iter()
            .filter(|n| !slot.spec.requires.contains(n))
            .filter(|n| machine(n).is_some_and(|m| m.is_coming_up()));
        required.chain(ordered).cloned().collect()
    }

    /// What an operator stop of `name` stops, in the order they go down: the units
    /// that require it (directly or not), deepest first, then `name`; only those
    /// that are not already down (`name` itself always).
    pub fn stop_order(&self, name: &str) -> Vec<String> {
        // Depth first over "required by", each unit after everything requiring
        // it; with a stack of its own, for long chains.
        let mut order = Vec::new();
        let mut seen = BTreeSet::from([name.to_string()]);
        let mut stack = vec![(name.to_string(), self.graph.requiring(name), 0)];
        while let Some((n, dependents, next)) = stack.last_mut() {
            match dependents.get(*next).cloned() {
                Some(d) => {
                    *next += 1;
                    if seen.insert(d.clone()) {
                        let deeper = self.graph.requiring(&d);
                        stack.push((d, deeper, 0));
                    }
                }
                None => {
                    order.push(std::mem::take(n));
                    stack.pop();
                }
            }
        }
        order.retain(|n| {
            n == name
                || self
                    .slots
                    .get(n)
                    .is_some_and(|s| s.machine.want_up() || !s.machine.is_settled_down())
        });
        order
    }

    /// Removed units dropped (their process gone) since the last call.
    pub fn take_forgotten(&mut self) -> Vec<String> {
        std::mem::take(&mut self.forgotten)
    }

    /// True when no unit has a process or is about to spawn one.
    pub fn all_settled_down(&self) -> bool {
        self.slots.values().all(|s| s.machine.is_settled_down())
    }

    /// Edges looked at by dependency handling since the fleet was made: the cost of
    /// settling, which tests bound by the number of edges.
    pub fn dependency_visits(&self) -> u64 {
        self.graph.visits()
    }

    /// Units stepped while settling since the fleet was made: a few per change of
    /// a unit, where stepping every neighbour of a changed unit cost its degree.
    pub fn settle_steps(&self) -> u64 {
        self.steps
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
                self.removing.insert(name.clone());
            }
        }
        for (name, slot) in self.slots.iter_mut() {
            let Some(unit) = loaded.units.get(name) else {
                continue;
            };
            if same_definition(&slot.spec, unit)
                || crate::unit::same_except_live_settings(&slot.spec, unit)
            {
                // Same process: keep it, take the new definition (path, hash, limits).
                // An unchanged one is not copied again: a copy made at every reload
                // lands wherever the heap has room, and after a storm of units that
                // came and went, such long-lived blocks keep its pages resident.
                if *slot.spec != *unit {
                    slot.spec = Arc::new(unit.clone());
                }
                self.graph.replace(name, &slot.spec, &mut self.dirty);
                slot.next_spec = None;
            } else {
                slot.next_spec = Some(Arc::new(unit.clone()));
            }
            slot.removing = false;
            self.removing.remove(name);
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
                    stopped_for: None,
                };
                let class = Class::of(&slot.machine);
                self.graph.add(name, &slot.spec, class, &mut self.dirty);
                self.slots.insert(name.clone(), slot);
            }
        }
        for name in &plan.added {
            self.start_with_requirements(name, now, &mut out);
        }
        // Definitions changed anywhere: every unit may move (each step is O(1)).
        self.dirty.extend(self.slots.keys().cloned());
        self.settle(now, &mut out);
        (plan, out)
    }

    /// Operator start: the unit and, transitively, every unit it requires or wants.
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

    /// Operator restart of one unit (dependents keep running; requirements and
    /// wanted units start).
    pub fn restart(&mut self, name: &str, now: Now) -> Vec<UnitAction> {
        let mut out = Vec::new();
        if self.disabled.contains(name) {
            return out;
        }
        self.event(name, Event::Restart, now, &mut out);
        let pulled = self
            .slots
            .get(name)
            .map(|s| [&s.spec.requires[..], &s.spec.wants[..]].concat());
        for req in pulled.iter().flatten() {
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
        let status = match self.slots.get(name) {
            Some(s) => super::service_status(&s.spec.container, status),
            None => status,
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
        if matches!(event, Event::Start | Event::Stop) {
            slot.stopped_for = None;
        }
        let spec = slot.spec.clone();
        let before = slot.machine.phase().clone();
        let want_before = slot.machine.want_up();
        let actions = slot.machine.handle(event, now, &spec.service);
        let class = Class::of(&slot.machine);
        let changed = *slot.machine.phase() != before
            || slot.machine.want_up() != want_before
            || !actions.is_empty();
        if changed {
            self.dirty.push(name.to_string());
        }
        // The neighbours whose dependency checks this changes go on `dirty` too.
        self.graph.set_class(name, class, &mut self.dirty);
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
        for dependent in self.graph.requiring(name) {
            if event == Event::Restart && self.disabled.contains(&dependent) {
                continue;
            }
            let affected = if event == Event::Stop {
                self.stop_with_dependents(&dependent, now, out)
            } else {
                self.event(&dependent, event.clone(), now, out);
                BTreeSet::from([dependent])
            };
            for unit in affected {
                if let Some(slot) = self.slots.get_mut(&unit) {
                    slot.stopped_for = Some((name.to_string(), action));
                }
            }
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
            if slot.removing || self.disabled.contains(&n) {
                continue;
            }
            // Wanted units start too; nothing waits for them, and their failure
            // touches nobody (they are not edges of the graph).
            stack.extend(slot.spec.requires.iter().cloned());
            stack.extend(slot.spec.wants.iter().cloned());
            self.event(&n, Event::Start, now, out);
        }
    }

    /// Stop `name` and every unit that requires it, directly or not; returns them.
    fn stop_with_dependents(
        &mut self,
        name: &str,
        now: Now,
        out: &mut Vec<UnitAction>,
    ) -> BTreeSet<String> {
        let mut stack = vec![name.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            self.event(&n, Event::Stop, now, out);
            stack.extend(self.graph.requiring(&n));
        }
        seen
    }

    /// Move every unit as far as dependencies allow, until nothing changes. A work
    /// list: a unit whose machine moved, or whose dependency checks changed their
    /// answer (see `graph`), is stepped again; nothing else is. Each step is O(1)
    /// and a unit's state change costs its degree, so settling costs the changes and
    /// the edges they touch, not units × passes or edges × list length.
    fn settle(&mut self, now: Now, out: &mut Vec<UnitAction>) {
        let mut queue: VecDeque<String> = VecDeque::new();
        let mut queued: HashSet<String> = HashSet::new();
        loop {
            for name in self.dirty.drain(..) {
                if queued.insert(name.clone()) {
                    queue.push_back(name);
                }
            }
            if let Some(name) = queue.pop_front() {
                queued.remove(&name);
                self.steps += 1;
                self.step(&name, now, out);
                continue;
            }
            self.drop_removed();
            if self.dirty.is_empty() {
                break;
            }
        }
        // A reload puts every unit on it: room for a thousand names goes with them.
        self.dirty.shrink_after_churn();
    }

    /// Drop the removed units whose process is gone; their neighbours see them go.
    fn drop_removed(&mut self) {
        let gone: Vec<String> = self
            .removing
            .iter()
            .filter(|n| {
                self.slots
                    .get(*n)
                    .is_none_or(|s| s.removing && s.machine.is_settled_down())
            })
            .cloned()
            .collect();
        for name in gone {
            self.removing.remove(&name);
            if self.slots.remove(&name).is_some() {
                self.graph.remove(&name, &mut self.dirty);
                self.forgotten.push(name);
            }
        }
    }

    /// One unit's share of `settle`; true if it changed anything.
    fn step(&mut self, name: &str, now: Now, out: &mut Vec<UnitAction>) -> bool {
        let Some(slot) = self.slots.get_mut(name) else {
            return false;
        };
        let between_processes =
            slot.machine.pid().is_none() && !matches!(slot.machine.phase(), Phase::Spawning { .. });
        if between_processes && let Some(next) = slot.next_spec.take() {
            slot.spec = next.clone();
            // Old and new neighbours whose checks this changes go on `dirty`.
            self.graph.replace(name, &next, &mut self.dirty);
            self.dirty.push(name.to_string());
            return true;
        }
        let want_up = slot.machine.want_up();
        let waiting = matches!(slot.machine.phase(), Phase::Waiting);
        // A process to stop: running, or still on its way to ready.
        let running = matches!(
            slot.machine.phase(),
            Phase::Running { .. } | Phase::Starting { .. }
        );
        if want_up {
            // A unit this one requires has failed for good.
            if let Some(unit) = self.graph.failed_requirement(name) {
                return self.event(name, Event::RequirementFailed { unit }, now, out);
            }
            // Every unit this one is ordered after has settled, and every unit it
            // requires is up.
            if waiting && self.graph.dependencies_ready(name) {
                return self.event(name, Event::DependenciesReady, now, out);
            }
        } else if running && self.graph.dependents_down(name) {
            // Every unit ordered after this one that is also going down has stopped.
            return self.event(name, Event::DependentsDown, now, out);
        }
        false
    }
}

#[cfg(test)]
impl Fleet {
    /// The graph's counters against a naive recount from every slot.
    pub(super) fn check_graph(&self) -> Result<(), String> {
        let units: Vec<(&str, &Unit, Class)> = self
            .slots
            .iter()
            .map(|(n, s)| (n.as_str(), &*s.spec, Class::of(&s.machine)))
            .collect();
        self.graph.check(&units)
    }
}
