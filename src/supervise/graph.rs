//! The dependency edges between units, with counters that make the fleet's
//! dependency checks O(1).
//!
//! A unit's next step depends on its dependencies only through three questions:
//! is any unit it is ordered `after` still coming up, is any unit it `requires`
//! not up (or failed for good), and is any unit ordered after it still holding a
//! process that must stop first. Asking them by scanning the lists made settling
//! cost edges × list length: 2000 units with 1000-entry lists kept supd's event
//! loop busy for 10 s. Instead, every unit keeps how many of its edges answer
//! "not yet", and a unit whose [`Class`] changes tells its neighbours, which costs
//! its degree. A class changes a bounded number of times per start or stop, so
//! settling costs the edges of the units that changed, once each.
//!
//! Edges follow each unit's current definition (`Slot::spec`); a name listed by a
//! unit but not loaded has a node too (it may be loaded later, and its absence is
//! an answer: "not up"). Nothing here touches a machine: the fleet computes a
//! unit's class and hands it in.

use std::collections::{BTreeMap, HashMap};

use super::machine::{Machine, Phase};
use crate::memory::Shrink;
use crate::unit::Unit;

/// What the units next to a unit see of its state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Class {
    /// On its way up: units ordered after it wait ([`Machine::is_coming_up`]).
    pub coming_up: bool,
    /// Up: units requiring it may start ([`Machine::is_up`]).
    pub up: bool,
    /// Failed for good: units requiring it fail too.
    pub failed: bool,
    /// Not wanted, yet a process is still there (and not in a restart backoff): the
    /// units it is ordered after must not stop before it is gone.
    pub holding: bool,
}

impl Class {
    /// A name no unit is loaded under: after it nothing waits, it is not up, it
    /// has not failed and holds nothing. (An inactive unit has the same class, so
    /// loading or dropping one that is down changes nothing for its neighbours.)
    pub const MISSING: Class = Class {
        coming_up: false,
        up: false,
        failed: false,
        holding: false,
    };

    pub fn of(m: &Machine) -> Class {
        Class {
            coming_up: m.is_coming_up(),
            up: m.is_up(),
            failed: matches!(m.phase(), Phase::Failed(_)),
            holding: !(m.want_up()
                || m.is_settled_down()
                || matches!(m.phase(), Phase::Restarting { .. })),
        }
    }
}

/// How often one unit names another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Edge {
    after: u32,
    requires: u32,
}

/// Names are interned: the hot paths index a vector instead of hashing and
/// comparing strings (with 2 million edges, string keys alone cost seconds).
type Id = usize;

#[derive(Debug, Default)]
struct Node {
    name: String,
    /// A unit is loaded under this name (else it is only named by others).
    loaded: bool,
    /// The class the neighbours were last told about.
    class: Class,
    /// The unit's own `after` and `requires`, as in its current definition.
    after: Vec<Id>,
    requires: Vec<Id>,
    /// Units naming this one, and how often in which list. Ordered by id (the
    /// order names were first seen, reusing forgotten ids), so the order in
    /// which neighbours are put on the work list is the same on every run.
    dependents: BTreeMap<Id, Edge>,
    /// `after` entries naming a unit that is coming up.
    after_coming_up: u32,
    /// `requires` entries naming a unit that is not up (or not loaded).
    requires_not_up: u32,
    /// `requires` entries naming a unit that failed.
    requires_failed: u32,
    /// Edges from units that name this one and still hold a process.
    dependents_holding: u32,
}

/// Every edge, by both ends, and the counters (see the module doc).
#[derive(Debug, Default)]
pub(super) struct Graph {
    ids: HashMap<String, Id>,
    nodes: Vec<Node>,
    /// Ids of forgotten names, for reuse.
    free: Vec<Id>,
    /// Edges looked at so far: what the cost of settling is counted in (tests
    /// bound it by a small multiple of the edges).
    visits: u64,
}

/// Add to or take from a counter; true if it went from or to zero, which is when
/// the unit's answer to a question changes.
fn bump(counter: &mut u32, by: u32, add: bool) -> bool {
    let was_zero = *counter == 0;
    *counter = if add {
        counter.saturating_add(by)
    } else {
        // Never below zero while the counters are consistent; saturating keeps a
        // bug from wrapping into "blocked forever".
        debug_assert!(*counter >= by, "dependency counter below zero");
        counter.saturating_sub(by)
    };
    was_zero != (*counter == 0)
}

impl Graph {
    pub fn visits(&self) -> u64 {
        self.visits
    }

    fn node(&self, name: &str) -> Option<&Node> {
        self.ids.get(name).and_then(|&id| self.nodes.get(id))
    }

    /// The node of `id`. Every id comes from `intern` and `nodes` never shrinks
    /// (forgotten ids are reused), so it is always in range; should that ever
    /// break, the daemon gets a blank node instead of a panic.
    fn at(&mut self, id: Id) -> &mut Node {
        if id >= self.nodes.len() {
            debug_assert!(false, "dependency graph: no node {id}");
            self.nodes.resize_with(id + 1, Node::default);
        }
        &mut self.nodes[id]
    }

    /// Every unit ordered after `name` has settled, and every unit it requires is up.
    pub fn dependencies_ready(&self, name: &str) -> bool {
        self.node(name)
            .is_none_or(|n| n.after_coming_up == 0 && n.requires_not_up == 0)
    }

    /// No unit ordered after `name` holds a process that must stop first.
    pub fn dependents_down(&self, name: &str) -> bool {
        self.node(name).is_none_or(|n| n.dependents_holding == 0)
    }

    /// The first unit in `name`'s `requires` that has failed. Scans the list only
    /// when one has (then the unit fails at once and stops asking).
    pub fn failed_requirement(&mut self, name: &str) -> Option<String> {
        let node = self.node(name).filter(|n| n.requires_failed > 0)?;
        let mut seen = 0;
        let mut found = None;
        for &req in &node.requires {
            seen += 1;
            if let Some(r) = self.nodes.get(req)
                && r.class.failed
            {
                found = Some(r.name.clone());
                break;
            }
        }
        self.visits += seen;
        found
    }

    /// The loaded units that require `name`, sorted by name.
    pub fn requiring(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .node(name)
            .into_iter()
            .flat_map(|n| n.dependents.iter())
            .filter(|(_, e)| e.requires > 0)
            .filter_map(|(&d, _)| self.nodes.get(d))
            .filter(|d| d.loaded)
            .map(|d| d.name.clone())
            .collect();
        out.sort();
        out
    }

    /// The id of `name`, made if new.
    fn intern(&mut self, name: &str) -> Id {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let node = Node {
            name: name.to_string(),
            ..Node::default()
        };
        let id = match self.free.pop() {
            Some(id) => {
                *self.at(id) = node;
                id
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.ids.insert(name.to_string(), id);
        id
    }

    /// A unit is loaded under `name` with definition `unit`, its machine in `class`.
    pub fn add(&mut self, name: &str, unit: &Unit, class: Class, dirty: &mut Vec<String>) {
        let id = self.intern(name);
        let node = self.at(id);
        node.loaded = true;
        // Its neighbours saw nothing loaded here; link as such, then move.
        node.class = Class::MISSING;
        self.link(id, unit, dirty);
        self.set_class(name, class, dirty);
    }

    /// The unit `name` is dropped: its neighbours see it gone.
    pub fn remove(&mut self, name: &str, dirty: &mut Vec<String>) {
        let Some(&id) = self.ids.get(name) else {
            return;
        };
        self.set_class(name, Class::MISSING, dirty);
        let old = self.unlink(id, dirty);
        self.at(id).loaded = false;
        self.prune(id);
        for dep in old {
            self.prune(dep);
        }
        self.release_tail();
    }

    /// Free nodes at the end of the vector go, and it shrinks once mostly empty:
    /// after a storm of units that came and went (they were added last, so theirs
    /// are the last nodes) it does not keep room for all of them.
    fn release_tail(&mut self) {
        let before = self.nodes.len();
        // A free node has no name (see `prune`); a used one always has one.
        while self.nodes.last().is_some_and(|n| n.name.is_empty()) {
            self.nodes.pop();
        }
        if self.nodes.len() == before {
            return;
        }
        let len = self.nodes.len();
        self.free.retain(|&id| id < len);
        self.nodes.shrink_after_churn();
        self.free.shrink_after_churn();
        self.ids.shrink_after_churn();
    }

    /// `name`'s definition is now `new`: move its edges if its lists changed.
    pub fn replace(&mut self, name: &str, new: &Unit, dirty: &mut Vec<String>) {
        let Some(&id) = self.ids.get(name) else {
            return;
        };
        if self.same_lists(id, new) {
            return;
        }
        let old = self.unlink(id, dirty);
        self.link(id, new, dirty);
        // A dependency no longer named, and named by nothing else, goes.
        for dep in old {
            self.prune(dep);
        }
    }

    fn same_lists(&self, id: Id, unit: &Unit) -> bool {
        let Some(node) = self.nodes.get(id) else {
            return false;
        };
        let same = |ids: &[Id], names: &[String]| {
            ids.len() == names.len()
                && ids
                    .iter()
                    .zip(names)
                    .all(|(&i, n)| self.nodes.get(i).is_some_and(|d| d.name == *n))
        };
        same(&node.after, &unit.after) && same(&node.requires, &unit.requires)
    }

    /// `name`'s machine is now in `class`: tell every neighbour whose counter that
    /// moves, and put the ones whose answer changed on `dirty`.
    pub fn set_class(&mut self, name: &str, class: Class, dirty: &mut Vec<String>) {
        let Some(&id) = self.ids.get(name) else {
            return;
        };
        let old = std::mem::replace(&mut self.at(id).class, class);
        if old == class {
            return;
        }
        // Taken out while the dependents' counters move (one of them may be `id`
        // itself); put back below.
        let dependents = std::mem::take(&mut self.at(id).dependents);
        self.visits += dependents.len() as u64;
        for (&dependent, edge) in &dependents {
            let d = self.at(dependent);
            let mut moved = false;
            if old.coming_up != class.coming_up && edge.after > 0 {
                moved |= bump(&mut d.after_coming_up, edge.after, class.coming_up);
            }
            if old.up != class.up && edge.requires > 0 {
                moved |= bump(&mut d.requires_not_up, edge.requires, !class.up);
            }
            if old.failed != class.failed && edge.requires > 0 {
                moved |= bump(&mut d.requires_failed, edge.requires, class.failed);
            }
            if moved {
                dirty.push(d.name.clone());
            }
        }
        self.at(id).dependents = dependents;
        if old.holding != class.holding {
            let (after, requires) = self.take_lists(id);
            self.visits += (after.len() + requires.len()) as u64;
            for &dep in after.iter().chain(&requires) {
                let d = self.at(dep);
                if bump(&mut d.dependents_holding, 1, class.holding) {
                    dirty.push(d.name.clone());
                }
            }
            self.put_lists(id, after, requires);
        }
    }

    fn take_lists(&mut self, id: Id) -> (Vec<Id>, Vec<Id>) {
        let node = self.at(id);
        (
            std::mem::take(&mut node.after),
            std::mem::take(&mut node.requires),
        )
    }

    fn put_lists(&mut self, id: Id, after: Vec<Id>, requires: Vec<Id>) {
        let node = self.at(id);
        node.after = after;
        node.requires = requires;
    }

    /// Give `id` the edges of `unit` (it has none) and count its counters afresh.
    fn link(&mut self, id: Id, unit: &Unit, dirty: &mut Vec<String>) {
        let holding = self.at(id).class.holding;
        let (mut after_coming_up, mut requires_not_up, mut requires_failed) = (0u32, 0u32, 0u32);
        let mut after = Vec::with_capacity(unit.after.len());
        let mut requires = Vec::with_capacity(unit.requires.len());
        self.visits += (unit.after.len() + unit.requires.len()) as u64;
        for (name, is_requires) in unit
            .after
            .iter()
            .map(|d| (d, false))
            .chain(unit.requires.iter().map(|d| (d, true)))
        {
            let dep = self.intern(name);
            let d = self.at(dep);
            let edge = d.dependents.entry(id).or_default();
            if is_requires {
                edge.requires += 1;
                requires_not_up += u32::from(!d.class.up);
                requires_failed += u32::from(d.class.failed);
                requires.push(dep);
            } else {
                edge.after += 1;
                after_coming_up += u32::from(d.class.coming_up);
                after.push(dep);
            }
            if holding && bump(&mut d.dependents_holding, 1, true) {
                dirty.push(d.name.clone());
            }
        }
        let node = self.at(id);
        node.after = after;
        node.requires = requires;
        node.after_coming_up = after_coming_up;
        node.requires_not_up = requires_not_up;
        node.requires_failed = requires_failed;
        // Its own answers may differ from before.
        dirty.push(node.name.clone());
    }

    /// Take `id`'s edges away; returns the ids it named.
    fn unlink(&mut self, id: Id, dirty: &mut Vec<String>) -> Vec<Id> {
        let holding = self.at(id).class.holding;
        let (after, requires) = self.take_lists(id);
        self.visits += (after.len() + requires.len()) as u64;
        let named = after.iter().map(|&d| (d, false));
        for (dep, is_requires) in named.chain(requires.iter().map(|&d| (d, true))) {
            let d = self.at(dep);
            if let Some(edge) = d.dependents.get_mut(&id) {
                let count = if is_requires {
                    &mut edge.requires
                } else {
                    &mut edge.after
                };
                *count = count.saturating_sub(1);
                if *edge == Edge::default() {
                    d.dependents.remove(&id);
                }
            }
            if holding && bump(&mut d.dependents_holding, 1, false) {
                dirty.push(d.name.clone());
            }
        }
        let node = self.at(id);
        node.after_coming_up = 0;
        node.requires_not_up = 0;
        node.requires_failed = 0;
        let mut old = after;
        old.extend(requires);
        old
    }

    /// Forget a name that is neither loaded nor named by a loaded unit.
    fn prune(&mut self, id: Id) {
        let node = self.at(id);
        if node.loaded || !node.dependents.is_empty() || node.name.is_empty() {
            return;
        }
        let name = std::mem::take(&mut node.name);
        *node = Node::default();
        self.ids.remove(&name);
        self.free.push(id);
    }

    /// The counters and lists compared with a naive recount from the given units
    /// and classes (tests: after every step they must agree).
    #[cfg(test)]
    pub fn check(&self, units: &[(&str, &Unit, Class)]) -> Result<(), String> {
        let classes: HashMap<&str, Class> = units.iter().map(|(n, _, c)| (*n, *c)).collect();
        let class = |n: &str| classes.get(n).copied().unwrap_or(Class::MISSING);
        let mut holding: HashMap<&str, u32> = HashMap::new();
        for (_, unit, c) in units {
            let lists = unit.after.iter().chain(&unit.requires);
            for dep in lists.filter(|_| c.holding) {
                *holding.entry(dep.as_str()).or_default() += 1;
            }
        }
        for (name, unit, c) in units {
            let node = self.node(name).ok_or(format!("{name}: no node"))?;
            let id = self.ids[*name];
            if !node.loaded || !self.same_lists(id, unit) {
                return Err(format!("{name}: not loaded with its lists"));
            }
            let count = |list: &[String], f: &dyn Fn(Class) -> bool| {
                list.iter().filter(|d| f(class(d))).count() as u32
            };
            let want = (
                *c,
                count(&unit.after, &|c| c.coming_up),
                count(&unit.requires, &|c| !c.up),
                count(&unit.requires, &|c| c.failed),
                holding.get(name).copied().unwrap_or(0),
            );
            let got = (
                node.class,
                node.after_coming_up,
                node.requires_not_up,
                node.requires_failed,
                node.dependents_holding,
            );
            if want != got {
                return Err(format!("{name}: counters {got:?}, recounted {want:?}"));
            }
        }
        let named: usize = units
            .iter()
            .map(|(_, u, _)| u.after.len() + u.requires.len())
            .sum();
        let edges: u32 = self
            .nodes
            .iter()
            .flat_map(|n| n.dependents.values())
            .map(|e| e.after + e.requires)
            .sum();
        if edges as usize != named {
            return Err(format!("{edges} edges kept, {named} named"));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
