//! Fleet tests: dependency ordering, requirement propagation and reload plans.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::unit::{Loaded, Unit};

/// A unit `after` and `requires` the named ones, running `exec` (also the graph's
/// tests' units).
pub(super) fn unit(name: &str, after: &[&str], requires: &[&str], exec: &str) -> Unit {
    let list = |xs: &[&str]| {
        xs.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        "[unit]\nafter = [{}]\nrequires = [{}]\n[service]\nexec = [{exec:?}]\n",
        list(after),
        list(requires)
    );
    parse(name, &text)
}

fn parse(name: &str, text: &str) -> Unit {
    crate::unit::parse_unit(name, &PathBuf::from(format!("/u/{name}.toml")), text)
        .expect("valid test unit")
}

fn loaded(units: Vec<Unit>) -> Loaded {
    Loaded {
        units: units.into_iter().map(|u| (u.name.clone(), u)).collect(),
        ..Loaded::default()
    }
}

fn spawned_units(actions: &[UnitAction]) -> Vec<&str> {
    actions
        .iter()
        .filter(|a| matches!(a.action, Action::Spawn { .. }))
        .map(|a| a.unit.as_str())
        .collect()
}

fn signalled(actions: &[UnitAction], signal: nix::sys::signal::Signal) -> Vec<&str> {
    actions
        .iter()
        .filter(|a| matches!(a.action, Action::StopSignal { signal: s, .. } if s == signal))
        .map(|a| a.unit.as_str())
        .collect()
}

/// Confirm every spawn with a made-up pid; returns the actions that followed.
fn confirm_spawns(
    fleet: &mut Fleet,
    actions: &[UnitAction],
    now: Now,
    pids: &mut BTreeMap<String, i32>,
) -> Vec<UnitAction> {
    let mut out = Vec::new();
    for a in actions {
        if let Action::Spawn { attempt } = a.action {
            let pid = 1000 + pids.len() as i32;
            pids.insert(a.unit.clone(), pid);
            out.extend(fleet.on_spawned(&a.unit, attempt, pid, now));
            // Services that wait for readiness say they are ready at once.
            out.extend(fleet.on_ready(&a.unit, now));
        }
    }
    out
}

/// Confirm spawns until no new ones come.
fn bring_up(fleet: &mut Fleet, first: Vec<UnitAction>, now: Now) -> BTreeMap<String, i32> {
    let mut pids = BTreeMap::new();
    let mut actions = first;
    while !spawned_units(&actions).is_empty() {
        actions = confirm_spawns(fleet, &actions, now, &mut pids);
        // A recount costs all edges: only for small fleets.
        if fleet.slots().len() <= 100 {
            fleet
                .check_graph()
                .expect("dependency counters match a recount");
        }
    }
    pids
}

/// The current process of `name` ended.
fn exit(fleet: &mut Fleet, name: &str, pid: i32, status: ExitStatus, now: Now) -> Vec<UnitAction> {
    let attempt = fleet.get(name).expect("unit exists").machine.attempt();
    let out = fleet.on_exit(name, attempt, pid, status, false, now);
    fleet
        .check_graph()
        .expect("dependency counters match a recount");
    out
}

/// A fleet of `db` and `web` requiring it, both up.
fn db_and_web(now: Now) -> (Fleet, BTreeMap<String, i32>) {
    let mut fleet = Fleet::default();
    let (_, first) = fleet.apply_reload(
        &loaded(vec![
            unit("db", &[], &[], "1"),
            unit("web", &[], &["db"], "2"),
        ]),
        now,
    );
    let pids = bring_up(&mut fleet, first, now);
    (fleet, pids)
}

fn state(fleet: &Fleet, name: &str) -> State {
    fleet
        .check_graph()
        .expect("dependency counters match a recount");
    fleet.get(name).expect("unit exists").machine.state()
}

#[test]
fn after_orders_start_and_reverse_orders_stop() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let (_, first) = fleet.apply_reload(
        &loaded(vec![
            unit("db", &[], &[], "1"),
            unit("web", &["db"], &[], "2"),
        ]),
        now,
    );
    assert_eq!(spawned_units(&first), vec!["db"], "web waits for db");
    let mut pids = BTreeMap::new();
    let second = confirm_spawns(&mut fleet, &first, now, &mut pids);
    assert_eq!(spawned_units(&second), vec!["web"]);
    confirm_spawns(&mut fleet, &second, now, &mut pids);

    let stops = fleet.stop_all(now);
    let units: Vec<&str> = stops.iter().map(|a| a.unit.as_str()).collect();
    assert!(
        units.iter().all(|u| *u == "web"),
        "db stops only after web: {units:?}"
    );
    let stops = exit(&mut fleet, "web", pids["web"], ExitStatus::Signal(15), now);
    assert_eq!(
        signalled(&stops, nix::sys::signal::Signal::SIGTERM),
        vec!["db"]
    );
    exit(&mut fleet, "db", pids["db"], ExitStatus::Signal(15), now);
    assert!(fleet.all_settled_down());
}

#[test]
fn requires_failure_stops_dependent_as_failed() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let db = parse("db", "[service]\nexec = [\"/bin/db\"]\nrestart = \"no\"\n");
    let (_, first) = fleet.apply_reload(&loaded(vec![db, unit("web", &[], &["db"], "2")]), now);
    let pids = bring_up(&mut fleet, first, now);
    assert_eq!(state(&fleet, "web"), State::Running);
    let acts = exit(&mut fleet, "db", pids["db"], ExitStatus::Code(1), now);
    assert_eq!(state(&fleet, "db"), State::Failed);
    assert_eq!(state(&fleet, "web"), State::Stopping);
    assert_eq!(
        signalled(&acts, nix::sys::signal::Signal::SIGTERM),
        vec!["web"]
    );
    exit(&mut fleet, "web", pids["web"], ExitStatus::Signal(15), now);
    let web = fleet.get("web").expect("web");
    assert_eq!(web.machine.state(), State::Failed);
    assert_eq!(web.machine.sub_state(&web.spec.service), "dependency");
}

#[test]
fn operator_stop_propagates_to_requiring_units_only() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let (_, first) = fleet.apply_reload(
        &loaded(vec![
            unit("db", &[], &[], "1"),
            unit("web", &[], &["db"], "2"),
            unit("cron", &["db"], &[], "3"),
        ]),
        now,
    );
    let pids = bring_up(&mut fleet, first, now);
    assert_eq!(fleet.stop_order("db"), ["web", "db"], "what a stop lists");
    assert_eq!(fleet.stop_order("web"), ["web"]);
    fleet.stop("db", now);
    assert_eq!(state(&fleet, "web"), State::Stopping);
    assert_eq!(state(&fleet, "db"), State::Running, "waits for web");
    assert_eq!(
        state(&fleet, "cron"),
        State::Running,
        "after alone does not stop it"
    );
    exit(&mut fleet, "web", pids["web"], ExitStatus::Signal(15), now);
    assert_eq!(state(&fleet, "db"), State::Stopping);
    assert_eq!(state(&fleet, "web"), State::Inactive);
}

#[test]
fn start_pulls_in_requirements() {
    let now = Now::read();
    let (mut fleet, pids) = db_and_web(now);
    fleet.stop_all(now);
    exit(&mut fleet, "web", pids["web"], ExitStatus::Signal(15), now);
    exit(&mut fleet, "db", pids["db"], ExitStatus::Signal(15), now);
    assert!(fleet.all_settled_down());
    let acts = fleet.start("web", now);
    assert_eq!(spawned_units(&acts), vec!["db"], "db first, web waits");
    assert_eq!(state(&fleet, "web"), State::Starting);
}

#[test]
fn reload_plan_adds_removes_restarts_and_keeps_unchanged() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let (_, first) = fleet.apply_reload(
        &loaded(vec![
            unit("a", &[], &[], "1"),
            unit("b", &[], &[], "2"),
            unit("c", &[], &[], "3"),
        ]),
        now,
    );
    let pids = bring_up(&mut fleet, first, now);
    let next = loaded(vec![
        unit("a", &[], &[], "1"),
        unit("b", &[], &[], "changed"),
        unit("d", &[], &[], "4"),
    ]);
    let dry = fleet.plan_reload(&next);
    assert_eq!(state(&fleet, "c"), State::Running, "a plan changes nothing");
    let (plan, acts) = fleet.apply_reload(&next, now);
    assert_eq!(dry, plan);
    let terms = signalled(&acts, nix::sys::signal::Signal::SIGTERM);
    assert!(
        terms.contains(&"b"),
        "the changed running unit is signalled right away: {acts:?}"
    );
    assert!(terms.contains(&"c"), "c is being stopped");
    assert_eq!(plan.added, vec!["d"]);
    assert_eq!(plan.removed, vec!["c"]);
    assert_eq!(plan.restarted, vec!["b"]);
    assert_eq!(plan.unchanged, vec!["a"]);
    assert_eq!(state(&fleet, "a"), State::Running);
    exit(&mut fleet, "c", pids["c"], ExitStatus::Signal(15), now);
    let acts = exit(&mut fleet, "b", pids["b"], ExitStatus::Signal(15), now);
    assert!(fleet.get("c").is_none(), "removed unit dropped once down");
    assert_eq!(fleet.take_forgotten(), vec!["c"], "and said so, once");
    assert!(fleet.take_forgotten().is_empty());
    assert_eq!(
        fleet.get("b").map(|s| s.spec.service.exec[0].as_str()),
        Some("changed")
    );
    assert!(spawned_units(&acts).contains(&"b"));
}

#[test]
fn rejected_file_keeps_running_definition() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let (_, first) = fleet.apply_reload(&loaded(vec![unit("a", &[], &[], "1")]), now);
    bring_up(&mut fleet, first, now);
    let mut next = loaded(vec![]);
    let error = crate::unit::UnitError {
        unit: "a".into(),
        path: "/u/a.toml".into(),
        line: 3,
        column: 1,
        message: "unknown field".into(),
    };
    next.errors.push(error.clone());
    let (plan, acts) = fleet.apply_reload(&next, now);
    assert!(plan.removed.is_empty());
    assert!(acts.is_empty(), "{acts:?}");
    assert_eq!(plan.rejected, vec![error]);
    assert_eq!(state(&fleet, "a"), State::Running);
}

#[test]
fn init_exit_codes_above_128_are_signals() {
    let cases = [
        (ExitStatus::Code(137), ExitStatus::Signal(9)),
        (ExitStatus::Code(143), ExitStatus::Signal(15)),
        (ExitStatus::Code(128), ExitStatus::Code(128)),
        (ExitStatus::Code(3), ExitStatus::Code(3)),
        (ExitStatus::Signal(9), ExitStatus::Signal(9)),
    ];
    for (raw, want) in cases {
        assert_eq!(decode_init_status(raw), want, "{raw:?}");
    }
}

#[test]
fn resource_only_change_is_an_update_in_place() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let with_limit = |m: &str| {
        parse(
            "a",
            &format!("[resources]\nmemory_max = \"{m}\"\n[service]\nexec = [\"/bin/a\"]\n"),
        )
    };
    let (_, first) = fleet.apply_reload(&loaded(vec![with_limit("32M")]), now);
    let pids = bring_up(&mut fleet, first, now);
    let (plan, acts) = fleet.apply_reload(&loaded(vec![with_limit("64M")]), now);
    assert_eq!(plan.updated, vec!["a"]);
    assert!(plan.restarted.is_empty());
    assert!(acts.is_empty(), "no signal, no spawn");
    let slot = fleet.get("a").expect("a");
    assert_eq!(slot.machine.pid(), Some(pids["a"]));
    assert_eq!(slot.spec.resources.memory_max, Some(64 << 20));
}

/// Dependency handling follows the changes, not units × units: a chain of 3000
/// units, each after the previous one, comes up one by one without the fleet
/// slowing down (a quadratic settle took minutes here).
#[test]
fn a_long_chain_comes_up_in_linear_time() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let n = 3000;
    let units: Vec<Unit> = (0..n)
        .map(|i| {
            let after = if i == 0 {
                String::new()
            } else {
                format!("u{}", i - 1)
            };
            let after: Vec<&str> = if i == 0 { vec![] } else { vec![after.as_str()] };
            unit(&format!("u{i}"), &after, &[], "/bin/true")
        })
        .collect();
    let started = std::time::Instant::now();
    let (_, first) = fleet.apply_reload(&loaded(units), now);
    assert_eq!(spawned_units(&first), vec!["u0"]);
    let pids = bring_up(&mut fleet, first, now);
    assert_eq!(pids.len(), n);
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(60),
        "bringing up a chain of {n} took {took:?}"
    );
}

#[test]
fn a_unit_still_waiting_to_be_ready_is_stopped_by_a_shutdown() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let notify = parse("db", "[service]\nexec = [\"1\"]\ntype = \"notify\"\n");
    let (_, first) = fleet.apply_reload(&loaded(vec![notify]), now);
    assert_eq!(spawned_units(&first), vec!["db"]);
    fleet.on_spawned("db", 1, 1000, now);
    assert_eq!(state(&fleet, "db"), State::Starting, "no READY=1 yet");
    let stops = fleet.stop_all(now);
    assert_eq!(
        signalled(&stops, nix::sys::signal::Signal::SIGTERM),
        vec!["db"]
    );
}

/// Settling costs the edges it touches, a few times each, not edges × list length:
/// 300 units, each after the 200 before it (about 40 000 edges), are loaded, brought
/// up one by one, shut down one by one and reloaded unchanged. Scanning every list
/// on each step, as the fleet once did, looked at about 10^9 edges here.
#[test]
fn settling_looks_at_each_edge_a_few_times_not_once_per_list_entry() {
    let now = Now::read();
    let (n, k) = (300usize, 200usize);
    let names = |r: std::ops::Range<usize>| r.map(|i| format!("u{i:03}")).collect::<Vec<_>>();
    let units: Vec<Unit> = (0..n)
        .map(|i| {
            let after = names(i.saturating_sub(k)..i);
            let after: Vec<&str> = after.iter().map(String::as_str).collect();
            unit(&format!("u{i:03}"), &after, &[], "/bin/true")
        })
        .collect();
    let edges: u64 = units.iter().map(|u| u.after.len() as u64).sum();
    let units = loaded(units);
    let mut fleet = Fleet::default();
    let (_, first) = fleet.apply_reload(&units, now);
    assert_eq!(spawned_units(&first), vec!["u000"]);
    let pids = bring_up(&mut fleet, first, now);
    assert_eq!(pids.len(), n);
    fleet.check_graph().expect("counters match a recount");
    let mut stopping = fleet.stop_all(now);
    assert_eq!(
        signalled(&stopping, nix::sys::signal::Signal::SIGTERM),
        vec![format!("u{:03}", n - 1)]
    );
    while let Some(a) = stopping.pop() {
        if matches!(a.action, Action::StopSignal { .. }) {
            let attempt = fleet.get(&a.unit).expect("unit").machine.attempt();
            let status = ExitStatus::Signal(15);
            stopping.extend(fleet.on_exit(&a.unit, attempt, pids[&a.unit], status, false, now));
        }
    }
    assert!(fleet.all_settled_down());
    fleet.check_graph().expect("counters match a recount");
    let (_, again) = fleet.apply_reload(&units, now);
    assert!(again.is_empty(), "{again:?}");
    let (visits, steps) = (fleet.dependency_visits(), fleet.settle_steps());
    eprintln!("{n} units, {edges} edges: {visits} edge visits, {steps} steps");
    assert!(
        visits <= 10 * edges,
        "{visits} edge visits for {edges} edges"
    );
    // Each unit changes a handful of times (start, spawn, ready, stop, exit, and
    // a reload); stepping every neighbour of each change was about 10^5 here.
    let n = n as u64;
    assert!(steps <= 20 * n, "{steps} steps for {n} units");
}

#[test]
fn stop_dependents_says_why_until_the_next_start() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let db = parse(
        "db",
        "[service]\nexec = [\"/bin/db\"]\nrestart = \"no\"\non_failure = \"stop-dependents\"\n",
    );
    let units = vec![
        db,
        unit("web", &[], &["db"], "2"),
        unit("api", &[], &["web"], "3"),
    ];
    let (_, first) = fleet.apply_reload(&loaded(units), now);
    let pids = bring_up(&mut fleet, first, now);
    exit(&mut fleet, "db", pids["db"], ExitStatus::Code(1), now);
    let why = Some(("db".to_string(), crate::unit::OnFailure::StopDependents));
    for name in ["web", "api"] {
        assert_eq!(fleet.get(name).expect(name).stopped_for, why, "{name}");
    }
    assert_eq!(fleet.get("db").expect("db").stopped_for, None);
    fleet.start("api", now);
    assert_eq!(fleet.get("api").expect("api").stopped_for, None);
}

#[test]
fn a_waiting_unit_says_what_it_waits_for() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let units = vec![
        unit("db", &[], &[], "1"),
        unit("cache", &[], &[], "2"),
        unit("web", &["cache"], &["db"], "3"),
    ];
    let (_, first) = fleet.apply_reload(&loaded(units), now);
    assert_eq!(state(&fleet, "web"), State::Starting, "waiting");
    assert_eq!(fleet.waiting_for("web"), vec!["db", "cache"]);
    bring_up(&mut fleet, first, now);
    assert_eq!(fleet.waiting_for("web"), Vec::<String>::new());
    assert_eq!(fleet.waiting_for("nobody"), Vec::<String>::new());
}

#[test]
fn wants_starts_the_wanted_unit_whose_failure_changes_nothing() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let app = parse(
        "app",
        "[unit]\nwants = [\"flaky\"]\n[service]\nexec = [\"app\"]\n",
    );
    let flaky = parse("flaky", "[service]\nexec = [\"flaky\"]\nrestart = \"no\"\n");
    let (_, first) = fleet.apply_reload(&loaded(vec![app, flaky]), now);
    let pids = bring_up(&mut fleet, first, now);
    for unit in ["app", "flaky"] {
        fleet.stop(unit, now);
        exit(&mut fleet, unit, pids[unit], ExitStatus::Signal(15), now);
        assert_eq!(state(&fleet, unit), State::Inactive);
    }
    let first = fleet.start("app", now);
    let mut started = spawned_units(&first);
    started.sort();
    assert_eq!(started, ["app", "flaky"], "no ordering: both at once");
    let pids = bring_up(&mut fleet, first, now);
    exit(&mut fleet, "flaky", pids["flaky"], ExitStatus::Code(1), now);
    assert_eq!(state(&fleet, "flaky"), State::Failed);
    assert_eq!(
        state(&fleet, "app"),
        State::Running,
        "its failure is not app's"
    );
    fleet.stop("flaky", now);
    assert_eq!(state(&fleet, "app"), State::Running, "nor is its stop");
}

#[test]
fn a_disabled_unit_is_started_by_nothing() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    fleet.set_disabled("db", true);
    let (_, first) = fleet.apply_reload(
        &loaded(vec![
            unit("db", &[], &[], "1"),
            unit("web", &[], &["db"], "2"),
        ]),
        now,
    );
    assert!(spawned_units(&first).is_empty(), "web waits for db");
    assert_eq!(state(&fleet, "db"), State::Inactive);
    assert_eq!(state(&fleet, "web"), State::Starting);
    assert_eq!(fleet.waiting_for("web"), ["db"]);
    assert!(spawned_units(&fleet.start("web", now)).is_empty());
    assert!(spawned_units(&fleet.start("db", now)).is_empty());
    assert!(spawned_units(&fleet.restart("db", now)).is_empty());
    fleet.set_disabled("db", false);
    let actions = fleet.start("db", now);
    assert_eq!(spawned_units(&actions), ["db"]);
    let pids = bring_up(&mut fleet, actions, now);
    assert!(pids.contains_key("web"), "web follows once db is up");
}

#[test]
fn stop_order_lists_each_unit_after_everything_requiring_it() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let (_, first) = fleet.apply_reload(
        &loaded(vec![
            unit("a", &[], &[], "1"),
            unit("b", &[], &["a"], "2"),
            unit("c", &[], &["b", "a"], "3"),
            unit("d", &[], &["a"], "4"),
        ]),
        now,
    );
    bring_up(&mut fleet, first, now);
    assert_eq!(fleet.stop_order("a"), ["c", "b", "d", "a"]);
    assert_eq!(fleet.stop_order("b"), ["c", "b"]);
}
