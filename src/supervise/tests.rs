//! Fleet tests: dependency ordering, requirement propagation and reload plans.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::unit::Unit;

fn unit(name: &str, after: &[&str], requires: &[&str], exec: &str) -> Unit {
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
    crate::unit::parse_unit(name, &PathBuf::from(format!("/u/{name}.toml")), &text)
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
        .filter(|a| a.action == Action::Spawn)
        .map(|a| a.unit.as_str())
        .collect()
}

/// Confirm every pending spawn with a made-up pid; returns the pids by unit.
fn confirm_spawns(
    fleet: &mut Fleet,
    actions: &[UnitAction],
    now: Now,
    pids: &mut BTreeMap<String, i32>,
) {
    for a in actions.iter().filter(|a| a.action == Action::Spawn) {
        let pid = 1000 + pids.len() as i32;
        pids.insert(a.unit.clone(), pid);
        fleet.on_spawned(&a.unit, a.spawn_gen, pid, now);
    }
}

fn state(fleet: &Fleet, name: &str) -> &'static str {
    let slot = fleet.get(name).expect("unit exists");
    slot.machine.state_names(&slot.spec.service).0
}

#[test]
fn after_orders_start_and_reverse_orders_stop() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    fleet.reload(
        &loaded(vec![
            unit("db", &[], &[], "1"),
            unit("web", &["db"], &[], "2"),
        ]),
        now,
        false,
    );
    let first = fleet.reconcile(now);
    assert_eq!(spawned_units(&first), vec!["db"], "web waits for db");
    let mut pids = BTreeMap::new();
    confirm_spawns(&mut fleet, &first, now, &mut pids);
    let second = fleet.reconcile(now);
    assert_eq!(spawned_units(&second), vec!["web"]);
    confirm_spawns(&mut fleet, &second, now, &mut pids);
    fleet.reconcile(now);

    fleet.stop_all(now);
    let stops = fleet.reconcile(now);
    let signalled: Vec<&str> = stops.iter().map(|a| a.unit.as_str()).collect();
    assert!(
        signalled.iter().all(|u| *u == "web"),
        "db stops only after web: {signalled:?}"
    );
    fleet.on_exit("web", pids["web"], ExitStatus::Signal(15), false, now);
    let stops = fleet.reconcile(now);
    assert!(stops.iter().any(|a| a.unit == "db"));
    fleet.on_exit("db", pids["db"], ExitStatus::Signal(15), false, now);
    fleet.reconcile(now);
    assert!(fleet.all_settled_down());
}

#[test]
fn requires_failure_stops_dependent_as_failed() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let db = crate::unit::parse_unit(
        "db",
        &PathBuf::from("/u/db.toml"),
        "[service]\nexec = [\"/bin/db\"]\nrestart = \"no\"\n",
    )
    .expect("valid");
    fleet.reload(
        &loaded(vec![db, unit("web", &[], &["db"], "2")]),
        now,
        false,
    );
    let mut pids = BTreeMap::new();
    let a = fleet.reconcile(now);
    confirm_spawns(&mut fleet, &a, now, &mut pids);
    let a = fleet.reconcile(now);
    confirm_spawns(&mut fleet, &a, now, &mut pids);
    assert_eq!(state(&fleet, "web"), "running");
    fleet.on_exit("db", pids["db"], ExitStatus::Code(1), false, now);
    fleet.reconcile(now);
    assert_eq!(state(&fleet, "db"), "failed");
    assert_eq!(state(&fleet, "web"), "stopping");
    fleet.on_exit("web", pids["web"], ExitStatus::Signal(15), false, now);
    fleet.reconcile(now);
    let web = fleet.get("web").expect("web");
    assert_eq!(
        web.machine.state_names(&web.spec.service),
        ("failed", "dependency".into())
    );
}

#[test]
fn operator_stop_propagates_to_requiring_units_only() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    fleet.reload(
        &loaded(vec![
            unit("db", &[], &[], "1"),
            unit("web", &[], &["db"], "2"),
            unit("cron", &["db"], &[], "3"),
        ]),
        now,
        false,
    );
    let mut pids = BTreeMap::new();
    for _ in 0..3 {
        let a = fleet.reconcile(now);
        confirm_spawns(&mut fleet, &a, now, &mut pids);
    }
    fleet.stop_with_dependents("db", now);
    fleet.reconcile(now);
    assert_eq!(state(&fleet, "web"), "stopping");
    assert_eq!(state(&fleet, "db"), "running", "waits for web");
    assert_eq!(
        state(&fleet, "cron"),
        "running",
        "after alone does not stop it"
    );
    fleet.on_exit("web", pids["web"], ExitStatus::Signal(15), false, now);
    fleet.reconcile(now);
    assert_eq!(state(&fleet, "db"), "stopping");
    assert_eq!(state(&fleet, "web"), "inactive");
}

#[test]
fn start_pulls_in_requirements() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    fleet.reload(
        &loaded(vec![
            unit("db", &[], &[], "1"),
            unit("web", &[], &["db"], "2"),
        ]),
        now,
        false,
    );
    fleet.stop_all(now);
    fleet.reconcile(now);
    fleet.start_with_requirements("web", now);
    let a = fleet.reconcile(now);
    assert_eq!(spawned_units(&a), vec!["db"]);
}

#[test]
fn reload_plan_adds_removes_restarts_and_keeps_unchanged() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    fleet.reload(
        &loaded(vec![
            unit("a", &[], &[], "1"),
            unit("b", &[], &[], "2"),
            unit("c", &[], &[], "3"),
        ]),
        now,
        false,
    );
    let mut pids = BTreeMap::new();
    let a = fleet.reconcile(now);
    confirm_spawns(&mut fleet, &a, now, &mut pids);
    let next = loaded(vec![
        unit("a", &[], &[], "1"),
        unit("b", &[], &[], "changed"),
        unit("d", &[], &[], "4"),
    ]);
    let dry = fleet.reload(&next, now, true);
    assert_eq!(state(&fleet, "c"), "running", "dry run changes nothing");
    let plan = fleet.reload(&next, now, false);
    assert_eq!(dry, plan);
    let acts = fleet.reconcile(now);
    assert!(
        acts.iter().any(|a| a.unit == "b"
            && matches!(
                a.action,
                Action::SignalGroup {
                    signal: nix::sys::signal::Signal::SIGTERM,
                    ..
                }
            )),
        "the changed running unit is signalled right away: {acts:?}"
    );
    assert_eq!(plan.added, vec!["d"]);
    assert_eq!(plan.removed, vec!["c"]);
    assert_eq!(plan.restarted, vec!["b"]);
    assert_eq!(plan.unchanged, vec!["a"]);
    assert!(acts.iter().any(|x| x.unit == "c"), "c is being stopped");
    assert_eq!(state(&fleet, "a"), "running");
    fleet.on_exit("c", pids["c"], ExitStatus::Signal(15), false, now);
    fleet.on_exit("b", pids["b"], ExitStatus::Signal(15), false, now);
    let acts = fleet.reconcile(now);
    assert!(fleet.get("c").is_none(), "removed unit dropped once down");
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
    fleet.reload(&loaded(vec![unit("a", &[], &[], "1")]), now, false);
    let mut pids = BTreeMap::new();
    let a = fleet.reconcile(now);
    confirm_spawns(&mut fleet, &a, now, &mut pids);
    let mut next = loaded(vec![]);
    next.errors.push(crate::unit::UnitError {
        unit: "a".into(),
        path: "/u/a.toml".into(),
        line: 3,
        column: 1,
        message: "unknown field".into(),
    });
    let plan = fleet.reload(&next, now, false);
    assert!(plan.removed.is_empty());
    assert_eq!(
        plan.rejected,
        vec!["/u/a.toml:3:1: unknown field".to_string()]
    );
    fleet.reconcile(now);
    assert_eq!(state(&fleet, "a"), "running");
    assert!(
        fleet
            .get("a")
            .and_then(|s| s.definition_error.clone())
            .is_some()
    );
}

#[test]
fn init_exit_codes_above_128_are_signals() {
    assert_eq!(
        decode_init_status(ExitStatus::Code(137)),
        ExitStatus::Signal(9)
    );
    assert_eq!(
        decode_init_status(ExitStatus::Code(143)),
        ExitStatus::Signal(15)
    );
    assert_eq!(
        decode_init_status(ExitStatus::Code(128)),
        ExitStatus::Code(128)
    );
    assert_eq!(decode_init_status(ExitStatus::Code(3)), ExitStatus::Code(3));
    assert_eq!(
        decode_init_status(ExitStatus::Signal(9)),
        ExitStatus::Signal(9)
    );
}

#[test]
fn resource_only_change_is_an_update_in_place() {
    let now = Now::read();
    let mut fleet = Fleet::default();
    let with_limit = |m: &str| {
        crate::unit::parse_unit(
            "a",
            &PathBuf::from("/u/a.toml"),
            &format!("[resources]\nmemory_max = \"{m}\"\n[service]\nexec = [\"/bin/a\"]\n"),
        )
        .expect("valid")
    };
    fleet.reload(&loaded(vec![with_limit("32M")]), now, false);
    let mut pids = BTreeMap::new();
    let a = fleet.reconcile(now);
    confirm_spawns(&mut fleet, &a, now, &mut pids);
    let plan = fleet.reload(&loaded(vec![with_limit("64M")]), now, false);
    assert_eq!(plan.updated, vec!["a"]);
    assert!(plan.restarted.is_empty());
    assert!(fleet.reconcile(now).is_empty(), "no signal, no spawn");
    let slot = fleet.get("a").expect("a");
    assert_eq!(slot.machine.pid(), Some(pids["a"]));
    assert_eq!(slot.spec.resources.memory_max, Some(64 << 20));
}
