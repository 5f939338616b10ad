//! `after`/`requires` across units.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::*;

fn unit(name: &str, deps: &str) -> Unit {
    let text = format!("[unit]\n{deps}\n[service]\nexec = [\"/bin/{name}\"]\n");
    parse_unit(name, &PathBuf::from(format!("u/{name}.toml")), &text).unwrap()
}

fn graph(units: &[Unit], invalid: &[&str]) -> Loaded {
    let map = units.iter().map(|u| (u.name.clone(), u.clone())).collect();
    let invalid: BTreeSet<String> = invalid.iter().map(|s| s.to_string()).collect();
    check_graph(map, &invalid)
}

pub(super) fn unit_names(loaded: &Loaded) -> Vec<&str> {
    loaded.units.keys().map(String::as_str).collect()
}

#[test]
fn valid_graph() {
    let l = graph(
        &[
            unit("a", "requires = [\"b\"]\nafter = [\"c\"]"),
            unit("b", "after = [\"c\"]"),
            unit("c", ""),
        ],
        &[],
    );
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(unit_names(&l), ["a", "b", "c"]);
}

#[test]
fn unknown_dependency() {
    let l = graph(
        &[unit("web", "after = [\"cache\"]\nrequires = [\"db\"]")],
        &[],
    );
    assert_eq!(l.errors.len(), 2);
    let e = &l.errors[1];
    assert_eq!(
        e.to_string(),
        r#"u/web.toml:3:13: unknown dependency "db" in requires: no unit file db.toml in this directory"#
    );
    assert_eq!((l.errors[0].line, l.errors[0].column), (2, 10));
    assert!(l.units.is_empty());
}

#[test]
fn requires_on_invalid_unit() {
    let l = graph(
        &[
            unit("web", "requires = [\"db\"]"),
            unit("worker", "after = [\"db\"]"),
        ],
        &["db"],
    );
    assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
    assert_eq!(
        l.errors[0].to_string(),
        r#"u/web.toml:2:13: requires "db", whose definition has errors"#
    );
    assert_eq!(
        unit_names(&l),
        ["worker"],
        "after on an invalid unit is allowed"
    );
}

#[test]
fn three_unit_cycle() {
    let l = graph(
        &[
            unit("a", "after = [\"b\"]"),
            unit("b", "requires = [\"c\"]"),
            unit("c", "after = [\"x\", \"a\"]"),
            unit("x", ""),
            unit("d", "requires = [\"a\"]"),
        ],
        &[],
    );
    let cycle: Vec<String> = l
        .errors
        .iter()
        .filter(|e| e.message.contains("cycle"))
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        cycle,
        [
            "u/a.toml:2:10: dependency cycle: a -> b -> c -> a",
            "u/b.toml:2:13: dependency cycle: a -> b -> c -> a",
            "u/c.toml:2:15: dependency cycle: a -> b -> c -> a",
        ]
    );
    // d requires a member of the cycle, so it is dropped too.
    assert!(
        l.errors
            .iter()
            .any(|e| e.unit == "d" && e.message == r#"requires "a", whose definition has errors"#)
    );
    assert_eq!(unit_names(&l), ["x"]);
}

#[test]
fn self_dependency() {
    let l = graph(&[unit("a", "requires = [\"a\"]")], &[]);
    assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
    assert_eq!((l.errors[0].line, l.errors[0].column), (2, 13));
    assert!(
        l.errors[0].message.contains("cannot list itself"),
        "{}",
        l.errors[0]
    );
    assert!(l.units.is_empty());
}

#[test]
fn rejection_cascades_through_requires() {
    let l = graph(
        &[
            unit("a", "requires = [\"b\"]"),
            unit("b", "requires = [\"c\"]"),
            unit("c", "requires = [\"missing\"]"),
            unit("d", "after = [\"c\"]"),
        ],
        &[],
    );
    assert_eq!(l.errors.len(), 3, "{:?}", l.errors);
    assert_eq!(unit_names(&l), ["d"]);
}

/// Units `u0000..` each after the next `fan_out` units (wrapping round),
/// so all of them form one big cycle component.
fn ring(n: usize, fan_out: usize) -> Vec<Unit> {
    (0..n)
        .map(|i| {
            let deps: Vec<String> = (1..=fan_out)
                .map(|k| format!("\"u{:04}\"", (i + k) % n))
                .collect();
            unit(
                &format!("u{i:04}"),
                &format!("after = [{}]", deps.join(", ")),
            )
        })
        .collect()
}

#[test]
fn large_graphs_are_checked_in_linear_time() {
    // 600000 edges: a search per unit (what this replaced) would take
    // minutes here.
    let units = ring(2000, 300);
    let started = std::time::Instant::now();
    let l = graph(&units, &[]);
    let took = started.elapsed();
    // Generous: a loaded CI machine is slow, a quadratic check takes minutes.
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
    assert!(l.units.is_empty());
    assert_eq!(l.errors.len(), 2000);
    assert!(
        l.errors
            .iter()
            .all(|e| e.message.starts_with("dependency cycle: "))
    );
    // u0000 leaves through an entry closest to coming back (6 hops).
    let e = &l.errors[0];
    assert_eq!(e.message.matches(" -> ").count(), 7, "{e}");
    let next = &e.message["dependency cycle: u0000 -> ".len()..][..5];
    let column = 10 + 9 * (next[1..].parse::<usize>().unwrap() - 1);
    assert_eq!((e.line, e.column), (2, column), "{e}");
}

#[test]
fn long_cycles_are_shortened_in_messages() {
    let l = graph(&ring(20, 1), &[]);
    assert_eq!(l.errors.len(), 20);
    let first: Vec<String> = (0..12).map(|i| format!("u{i:04}")).collect();
    let want = format!(
        "dependency cycle: {} -> ... (8 more) -> u0000",
        first.join(" -> ")
    );
    assert!(
        l.errors.iter().all(|e| e.message == want),
        "{:#?}",
        l.errors
    );
}

#[test]
fn cycles_through_shared_units_name_a_simple_cycle() {
    // a <-> b and b <-> c: each unit's message is a simple cycle through it.
    let l = graph(
        &[
            unit("a", "after = [\"b\"]"),
            unit("b", "after = [\"a\", \"c\"]"),
            unit("c", "after = [\"b\"]"),
        ],
        &[],
    );
    let shown: Vec<String> = l.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "u/a.toml:2:10: dependency cycle: a -> b -> a",
            "u/b.toml:2:10: dependency cycle: a -> b -> a",
            "u/c.toml:2:10: dependency cycle: b -> c -> b",
        ]
    );
}

#[test]
fn long_requires_chains_are_dropped_in_one_pass() {
    let n = 3000;
    let mut units: Vec<Unit> = (0..n)
        .map(|i| {
            unit(
                &format!("c{i:04}"),
                &format!("requires = [\"c{:04}\"]", i + 1),
            )
        })
        .collect();
    units.push(unit("other", ""));
    let started = std::time::Instant::now();
    let l = graph(&units, &[]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(unit_names(&l), ["other"]);
    assert_eq!(l.errors.len(), n);
    let last = format!("c{:04}", n - 1);
    assert!(
        l.errors
            .iter()
            .any(|e| e.unit == last && e.message.contains("unknown dependency"))
    );
    assert!(
        l.errors
            .iter()
            .filter(|e| e.unit != last)
            .all(|e| e.message.contains("whose definition has errors") && e.line == 2)
    );
}

#[test]
fn wants_names_known_units_and_makes_no_cycle() {
    let l = graph(&[unit("web", "wants = [\"metrics\"]")], &[]);
    assert_eq!(
        l.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            r#"u/web.toml:2:10: unknown dependency "metrics" in wants: no unit file metrics.toml in this directory"#
        ]
    );
    // Wanting each other is no cycle (no ordering), nor is wanting a broken unit
    // an error; wanting itself is.
    let l = graph(
        &[
            unit("a", "wants = [\"b\", \"broken\"]"),
            unit("b", "wants = [\"a\"]"),
        ],
        &["broken"],
    );
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(unit_names(&l), ["a", "b"]);
    let l = graph(&[unit("a", "wants = [\"a\"]")], &[]);
    assert!(l.errors[0].message.contains("cannot list itself in wants"));
}
