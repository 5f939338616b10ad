//! Dependency checks over a set of parsed units.
//!
//! Runs after every file has been parsed, because whether `requires = ["db"]`
//! is valid depends on db.toml.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::Loaded;
use super::error::UnitError;
use super::model::{Pos, Unit};

/// Which list a dependency came from; decides the rules and the location.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    After,
    Requires,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::After => "after",
            Kind::Requires => "requires",
        }
    }
}

/// Validates dependencies; see the module docs in `mod.rs` for the rules.
pub(super) fn check_graph(units: BTreeMap<String, Unit>, invalid: &BTreeSet<String>) -> Loaded {
    let mut errors = Vec::new();
    let mut rejected = BTreeSet::new();
    for unit in units.values() {
        if check_edges(unit, &units, invalid, &mut errors) {
            rejected.insert(unit.name.clone());
        }
    }
    for unit in check_cycles(&units, &mut errors) {
        rejected.insert(unit);
    }
    let mut units = units;
    units.retain(|name, _| !rejected.contains(name));
    drop_dangling(&mut units, &mut errors);
    errors.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    Loaded {
        units,
        errors,
        fingerprints: BTreeMap::new(),
    }
}

/// Every `after`/`requires` entry of `unit` as (kind, target).
fn edges(unit: &Unit) -> impl Iterator<Item = (Kind, &str)> {
    let after = unit.after.iter().map(|d| (Kind::After, d.as_str()));
    let requires = unit.requires.iter().map(|d| (Kind::Requires, d.as_str()));
    after.chain(requires)
}

fn error_at(unit: &Unit, kind: Kind, dep: &str, message: String) -> UnitError {
    let pos = match kind {
        Kind::After => unit.deps.after_pos(dep),
        Kind::Requires => unit.deps.requires_pos(dep),
    };
    located(unit, pos, message)
}

fn located(unit: &Unit, pos: Pos, message: String) -> UnitError {
    UnitError {
        unit: unit.name.clone(),
        path: unit.path.clone(),
        line: pos.line,
        column: pos.column,
        message,
    }
}

/// Per-entry checks: self-reference, unknown names, `requires` on a unit
/// whose file failed to parse. Returns whether the unit must be rejected.
fn check_edges(
    unit: &Unit,
    units: &BTreeMap<String, Unit>,
    invalid: &BTreeSet<String>,
    errors: &mut Vec<UnitError>,
) -> bool {
    let mut bad = false;
    let mut seen = BTreeSet::new();
    for (kind, dep) in edges(unit) {
        // A name listed twice would otherwise be reported twice at the
        // same (first) location.
        if !seen.insert((kind.key(), dep)) {
            continue;
        }
        let message = if dep == unit.name {
            format!("unit {:?} cannot list itself in {}", dep, kind.key())
        } else if invalid.contains(dep) {
            if kind == Kind::After {
                // Ordering against a broken unit is harmless: it just
                // will not be running.
                continue;
            }
            format!("requires {dep:?}, whose definition has errors")
        } else if !units.contains_key(dep) {
            format!(
                "unknown dependency {dep:?} in {}: no unit file {dep}.toml in this directory",
                kind.key()
            )
        } else {
            continue;
        };
        errors.push(error_at(unit, kind, dep, message));
        bad = true;
    }
    bad
}

/// Successors of `name` over after ∪ requires, restricted to known units,
/// excluding self-loops (reported separately).
fn successors<'a>(units: &'a BTreeMap<String, Unit>, name: &str) -> BTreeSet<&'a str> {
    units.get(name).map_or_else(BTreeSet::new, |u| {
        edges(u)
            .map(|(_, d)| d)
            .filter(|d| *d != name)
            .filter_map(|d| units.get_key_value(d).map(|(k, _)| k.as_str()))
            .collect()
    })
}

/// Reports every unit that lies on a dependency cycle and returns their
/// names. Each unit's message names one cycle through it (the shortest,
/// found by BFS), written starting at its alphabetically first unit so all
/// members of a simple cycle print the same text.
fn check_cycles(units: &BTreeMap<String, Unit>, errors: &mut Vec<UnitError>) -> Vec<String> {
    let mut on_cycle = Vec::new();
    for unit in units.values() {
        let Some(cycle) = shortest_cycle(units, &unit.name) else {
            continue;
        };
        let next = cycle.get(1).map_or(unit.name.as_str(), String::as_str);
        let kind = if unit.requires.iter().any(|d| d == next) {
            Kind::Requires
        } else {
            Kind::After
        };
        let message = format!("dependency cycle: {}", render_cycle(&cycle));
        errors.push(error_at(unit, kind, next, message));
        on_cycle.push(unit.name.clone());
    }
    on_cycle
}

/// Shortest path `start -> ... -> start` (listed without the final repeat),
/// or `None` if `start` is not on a cycle.
fn shortest_cycle(units: &BTreeMap<String, Unit>, start: &str) -> Option<Vec<String>> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in successors(units, node) {
            if next == start {
                return Some(path_back(&parent, start, node));
            }
            if !parent.contains_key(next) {
                parent.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

/// Rebuilds `start -> ... -> last` from BFS parent links.
fn path_back(parent: &BTreeMap<&str, &str>, start: &str, last: &str) -> Vec<String> {
    let mut path = vec![last.to_owned()];
    let mut node = last;
    while node != start {
        match parent.get(node) {
            Some(p) => {
                node = p;
                path.push(node.to_owned());
            }
            None => break,
        }
    }
    path.reverse();
    path
}

/// `a -> b -> c -> a`, rotated to begin at the smallest name.
fn render_cycle(cycle: &[String]) -> String {
    let first = cycle
        .iter()
        .enumerate()
        .min_by_key(|(_, n)| n.as_str())
        .map_or(0, |(i, _)| i);
    let mut names: Vec<&str> = cycle[first..]
        .iter()
        .chain(&cycle[..first])
        .map(String::as_str)
        .collect();
    if let Some(head) = names.first().copied() {
        names.push(head);
    }
    names.join(" -> ")
}

/// Removes units whose `requires` point at units that are no longer loaded,
/// repeating until nothing changes, so every loaded unit's requirements are
/// themselves loaded.
fn drop_dangling(units: &mut BTreeMap<String, Unit>, errors: &mut Vec<UnitError>) {
    loop {
        let mut dropped = Vec::new();
        for unit in units.values() {
            for dep in &unit.requires {
                if !units.contains_key(dep) {
                    let message = format!("requires {dep:?}, whose definition has errors");
                    errors.push(error_at(unit, Kind::Requires, dep, message));
                    dropped.push(unit.name.clone());
                    break;
                }
            }
        }
        if dropped.is_empty() {
            return;
        }
        units.retain(|name, _| !dropped.contains(name));
    }
}
