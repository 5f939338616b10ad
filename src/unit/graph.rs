//! Dependency checks over a set of parsed units.
//!
//! Runs after every file has been parsed, because whether `requires = ["db"]`
//! is valid depends on db.toml. Every step is linear (or n log n) in the
//! number of units and entries: a directory is checked on each reload.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use super::Loaded;
use super::error::UnitError;
use super::model::{Pos, Unit};

/// Which list a dependency came from; decides the rules and the location.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    After,
    Requires,
    /// Started along, no ordering: not an edge of the cycle check.
    Wants,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::After => "after",
            Kind::Requires => "requires",
            Kind::Wants => "wants",
        }
    }

    fn list(self, unit: &Unit) -> (&[String], &[Pos]) {
        match self {
            Kind::After => (&unit.after, &unit.deps.after),
            Kind::Requires => (&unit.requires, &unit.deps.requires),
            Kind::Wants => (&unit.wants, &unit.deps.wants),
        }
    }
}

/// Longest cycle written out in full; longer ones are shortened.
const CYCLE_SHOWN: usize = 12;

/// Validates dependencies; see the module docs in `mod.rs` for the rules.
pub(super) fn check_graph(units: BTreeMap<String, Unit>, invalid: &BTreeSet<String>) -> Loaded {
    let mut errors = Vec::new();
    let mut rejected = BTreeSet::new();
    for unit in units.values() {
        if check_edges(unit, &units, invalid, &mut errors) {
            rejected.insert(unit.name.clone());
        }
    }
    rejected.extend(check_cycles(&units, &mut errors));
    let mut units = units;
    units.retain(|name, _| !rejected.contains(name));
    drop_dangling(&mut units, &mut errors);
    errors.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    Loaded {
        units,
        errors,
        fingerprints: BTreeMap::new(),
        networks: BTreeMap::new(),
    }
}

/// Every entry of `kind` in `unit` with where it was written.
fn entries(unit: &Unit, kind: Kind) -> impl Iterator<Item = (Kind, &str, Pos)> {
    let (names, positions) = kind.list(unit);
    names.iter().enumerate().map(move |(i, dep)| {
        let pos = positions.get(i).copied().unwrap_or(Pos::START);
        (kind, dep.as_str(), pos)
    })
}

/// Every `after`/`requires` entry of `unit`.
fn edges(unit: &Unit) -> impl Iterator<Item = (Kind, &str, Pos)> {
    entries(unit, Kind::After).chain(entries(unit, Kind::Requires))
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
    let mut seen = HashSet::new();
    for (kind, dep, pos) in edges(unit).chain(entries(unit, Kind::Wants)) {
        let message = if dep == unit.name {
            format!("unit {:?} cannot list itself in {}", dep, kind.key())
        } else if invalid.contains(dep) {
            if kind != Kind::Requires {
                // Ordering against (or wanting) a broken unit is harmless:
                // it just will not be running.
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
        // A name listed twice is reported once, at its first entry.
        if seen.insert((kind, dep)) {
            errors.push(located(unit, pos, message));
        }
    }
    !seen.is_empty()
}

/// The units as numbered nodes, edges over after ∪ requires between known
/// units (self-loops are reported separately).
struct Graph<'a> {
    units: Vec<&'a Unit>,
    succ: Vec<Vec<usize>>,
    pred: Vec<Vec<usize>>,
}

impl<'a> Graph<'a> {
    fn new(units: &'a BTreeMap<String, Unit>) -> Self {
        let index: HashMap<&str, usize> = units
            .keys()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut succ = vec![Vec::new(); units.len()];
        let mut pred = vec![Vec::new(); units.len()];
        // `added[j] == i` once the edge i -> j is in: no per-unit set.
        let mut added = vec![usize::MAX; units.len()];
        for (i, unit) in units.values().enumerate() {
            for (_, dep, _) in edges(unit) {
                if let Some(&j) = index.get(dep)
                    && j != i
                    && added[j] != i
                {
                    added[j] = i;
                    succ[i].push(j);
                    pred[j].push(i);
                }
            }
        }
        Graph {
            units: units.values().collect(),
            succ,
            pred,
        }
    }

    /// Strongly connected components (Tarjan's algorithm, iterative so deep
    /// graphs cannot overflow the stack): `comp[v]` numbers v's component.
    fn components(&self) -> (Vec<usize>, usize) {
        let n = self.units.len();
        let (mut index, mut low) = (vec![usize::MAX; n], vec![0; n]);
        let (mut on_stack, mut stack) = (vec![false; n], Vec::new());
        let (mut comp, mut count, mut next) = (vec![usize::MAX; n], 0, 0);
        for root in 0..n {
            if index[root] != usize::MAX {
                continue;
            }
            // (node, position in its successor list)
            let mut work = vec![(root, 0)];
            while let Some(&mut (v, ref mut i)) = work.last_mut() {
                if *i == 0 && index[v] == usize::MAX {
                    index[v] = next;
                    low[v] = next;
                    next += 1;
                    stack.push(v);
                    on_stack[v] = true;
                }
                if let Some(&w) = self.succ[v].get(*i) {
                    *i += 1;
                    if index[w] == usize::MAX {
                        work.push((w, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp[w] = count;
                        if w == v {
                            break;
                        }
                    }
                    count += 1;
                }
            }
        }
        (comp, count)
    }

    /// BFS from `root` within its component over `next` (successors or
    /// predecessors): for each reached node, the node it was reached from.
    fn bfs(&self, root: usize, comp: &[usize], next: &[Vec<usize>]) -> Vec<Option<usize>> {
        let mut from = vec![None; self.units.len()];
        from[root] = Some(root);
        let mut queue = VecDeque::from([root]);
        while let Some(v) = queue.pop_front() {
            for &w in &next[v] {
                if comp[w] == comp[root] && from[w].is_none() {
                    from[w] = Some(v);
                    queue.push_back(w);
                }
            }
        }
        from
    }
}

/// Reports every unit that lies on a dependency cycle and returns their
/// names. Each message names one cycle through the unit, written from its
/// alphabetically first unit so all members of a simple cycle print the
/// same text.
///
/// Per component, one BFS out of and one into its first unit `r` give, for
/// each member `u`, the closed walk `u -> ... -> r -> ... -> u`; cutting
/// out repeated units leaves a simple cycle through `u`. That is two
/// linear passes per component instead of a search per unit.
fn check_cycles(units: &BTreeMap<String, Unit>, errors: &mut Vec<UnitError>) -> Vec<String> {
    let graph = Graph::new(units);
    let (comp, count) = graph.components();
    let mut members = vec![Vec::new(); count];
    for (v, &c) in comp.iter().enumerate() {
        members[c].push(v);
    }
    let mut on_cycle = Vec::new();
    for group in members.iter().filter(|m| m.len() > 1) {
        // Nodes are numbered in name order, so the smallest is the first.
        let root = group.iter().copied().min().unwrap_or_default();
        let out_of_root = graph.bfs(root, &comp, &graph.succ);
        let into_root = graph.bfs(root, &comp, &graph.pred);
        for &u in group {
            let cycle = cycle_through(&graph, u, root, &out_of_root, &into_root);
            let unit = graph.units[u];
            let Some(next) = cycle.get(1).map(|&v| graph.units[v].name.as_str()) else {
                continue;
            };
            let names: Vec<&str> = cycle
                .iter()
                .map(|&v| graph.units[v].name.as_str())
                .collect();
            let message = format!("dependency cycle: {}", render_cycle(&names));
            let kind = if unit.requires.iter().any(|d| d == next) {
                Kind::Requires
            } else {
                Kind::After
            };
            let pos = entries(unit, kind)
                .find(|(_, d, _)| *d == next)
                .map_or(Pos::START, |(_, _, p)| p);
            errors.push(located(unit, pos, message));
            on_cycle.push(unit.name.clone());
        }
    }
    on_cycle
}

/// A simple cycle `u -> ... -> u` (listed without the final repeat) built
/// from the BFS trees out of and into `root`; see [`check_cycles`].
fn cycle_through(
    graph: &Graph,
    u: usize,
    root: usize,
    out_of_root: &[Option<usize>],
    into_root: &[Option<usize>],
) -> Vec<usize> {
    let steps = graph.units.len();
    let first = if u == root {
        // The root leaves through the successor closest to coming back.
        let back = graph.succ[root].iter().filter(|&&s| into_root[s].is_some());
        back.min_by_key(|&&s| hops(into_root, s, root)).copied()
    } else {
        into_root[u]
    };
    let mut walk = vec![u];
    let mut v = first.unwrap_or(root);
    for _ in 0..steps {
        walk.push(v);
        if v == root {
            break;
        }
        v = into_root[v].unwrap_or(root);
    }
    let mut back = Vec::new();
    let mut v = u;
    for _ in 0..steps {
        if v == root {
            break;
        }
        back.push(v);
        v = out_of_root[v].unwrap_or(root);
    }
    walk.extend(back.into_iter().rev());
    // The walk ends where it started; the repeat is implied.
    walk.pop();
    simplify(walk)
}

/// Steps from `v` along `into_root` links until `root`.
fn hops(into_root: &[Option<usize>], mut v: usize, root: usize) -> usize {
    let mut n = 0;
    while v != root && n < into_root.len() {
        v = into_root[v].unwrap_or(root);
        n += 1;
    }
    n
}

/// Cuts every `v -> ... -> v` detour out of a closed walk, leaving each
/// unit once; the walk's first unit stays first.
fn simplify(walk: Vec<usize>) -> Vec<usize> {
    let mut cycle: Vec<usize> = Vec::with_capacity(walk.len());
    let mut at: HashMap<usize, usize> = HashMap::new();
    for v in walk {
        if let Some(&i) = at.get(&v) {
            for w in cycle.drain(i + 1..) {
                at.remove(&w);
            }
        } else {
            at.insert(v, cycle.len());
            cycle.push(v);
        }
    }
    cycle
}

/// `a -> b -> c -> a`, rotated to begin at the smallest name; a cycle of
/// more than [`CYCLE_SHOWN`] units names the first ones and a count.
fn render_cycle(cycle: &[&str]) -> String {
    let first = cycle
        .iter()
        .enumerate()
        .min_by_key(|(_, n)| **n)
        .map_or(0, |(i, _)| i);
    let mut names: Vec<&str> = cycle[first..]
        .iter()
        .chain(&cycle[..first])
        .copied()
        .collect();
    let head = names.first().copied().unwrap_or_default();
    let more = names.len().saturating_sub(CYCLE_SHOWN);
    names.truncate(CYCLE_SHOWN);
    let elided = format!("... ({more} more)");
    if more > 0 {
        names.push(&elided);
    }
    names.push(head);
    names.join(" -> ")
}

/// Removes units whose `requires` point at units that are not loaded, and
/// then the units requiring those, until every loaded unit's requirements
/// are loaded. Each removed unit is reported at its first `requires` entry
/// naming a unit that is not loaded.
fn drop_dangling(units: &mut BTreeMap<String, Unit>, errors: &mut Vec<UnitError>) {
    let mut required_by: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut queue = VecDeque::new();
    let mut dropped: HashSet<&str> = HashSet::new();
    for unit in units.values() {
        for dep in &unit.requires {
            required_by.entry(dep).or_default().push(&unit.name);
        }
        if unit.requires.iter().any(|d| !units.contains_key(d)) && dropped.insert(&unit.name) {
            queue.push_back(unit.name.as_str());
        }
    }
    while let Some(name) = queue.pop_front() {
        for &dependent in required_by.get(name).into_iter().flatten() {
            if dropped.insert(dependent) {
                queue.push_back(dependent);
            }
        }
    }
    let loaded = |d: &str| units.contains_key(d) && !dropped.contains(d);
    for name in &dropped {
        let Some(unit) = units.get(*name) else {
            continue;
        };
        if let Some((_, dep, pos)) = entries(unit, Kind::Requires).find(|(_, d, _)| !loaded(d)) {
            let message = format!("requires {dep:?}, whose definition has errors");
            errors.push(located(unit, pos, message));
        }
    }
    let dropped: HashSet<String> = dropped.into_iter().map(str::to_owned).collect();
    units.retain(|name, _| !dropped.contains(name));
}
