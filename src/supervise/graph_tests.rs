//! Graph tests: the classes machines map to, the counters and which units a change
//! puts on the work list.

use super::*;
use crate::supervise::machine::{AfterStop, Failure, Now};

fn unit(name: &str, after: &[&str], requires: &[&str]) -> Unit {
    crate::supervise::fleet_tests::unit(name, after, requires, "/bin/true")
}

const COMING_UP: Class = Class {
    coming_up: true,
    up: false,
    failed: false,
    holding: false,
};
const UP: Class = Class {
    coming_up: false,
    up: true,
    failed: false,
    holding: false,
};
const FAILED: Class = Class {
    coming_up: false,
    up: false,
    failed: true,
    holding: false,
};
const HOLDING: Class = Class {
    coming_up: false,
    up: true,
    failed: false,
    holding: true,
};

#[test]
fn bump_reports_crossing_zero() {
    let cases = [
        // start, by, add, end, crossed
        (0, 1, true, 1, true),
        (1, 1, true, 2, false),
        (2, 1, false, 1, false),
        (1, 1, false, 0, true),
        (0, 3, true, 3, true),
        (3, 3, false, 0, true),
        (0, 0, true, 0, false),
    ];
    for (start, by, add, end, crossed) in cases {
        let mut c = start;
        assert_eq!(bump(&mut c, by, add), crossed, "{start} {by} {add}");
        assert_eq!(c, end, "{start} {by} {add}");
    }
}

#[test]
fn classes_follow_the_machine_predicates() {
    let now = Now::read();
    let at = now.mono;
    let wall = now.wall;
    let running = Phase::Running {
        pid: 1,
        started: at,
        watchdog: None,
    };
    let spawning = || Phase::Spawning {
        early_exits: Vec::new(),
        ready_early: false,
    };
    let stopping = |then| Phase::Stopping {
        pid: 1,
        deadline: None,
        then,
    };
    // phase, want_up, coming_up, up, failed, holding
    let cases = [
        (Phase::Inactive, false, false, false, false, false),
        (Phase::Waiting, true, true, false, false, false),
        (spawning(), true, true, false, false, false),
        (spawning(), false, true, false, false, true),
        (running.clone(), true, false, true, false, false),
        (running, false, false, true, false, true),
        (stopping(AfterStop::Start), true, true, false, false, false),
        (stopping(AfterStop::Rest), false, false, false, false, true),
        (
            Phase::Cleaning {
                deadline: at,
                then: AfterStop::Rest,
            },
            false,
            false,
            false,
            false,
            true,
        ),
        (
            Phase::Restarting { at, at_wall: wall },
            true,
            true,
            false,
            false,
            false,
        ),
        (
            Phase::Restarting { at, at_wall: wall },
            false,
            true,
            false,
            false,
            false,
        ),
        (Phase::Exited, false, false, true, false, false),
        (
            Phase::Failed(Failure::Spawn),
            false,
            false,
            false,
            true,
            false,
        ),
    ];
    for (phase, want_up, coming_up, up, failed, holding) in cases {
        let mut m = Machine::new(now);
        m.phase = phase.clone();
        m.want_up = want_up;
        let want = Class {
            coming_up,
            up,
            failed,
            holding,
        };
        assert_eq!(Class::of(&m), want, "{phase:?} want_up={want_up}");
    }
    assert_eq!(Class::of(&Machine::new(now)), Class::MISSING);
}

/// `db`; `web` after and requiring `db`; `cron` after `db` and `web`.
fn three() -> (Graph, [Unit; 3]) {
    let units = [
        unit("db", &[], &[]),
        unit("web", &[], &["db"]),
        unit("cron", &["db", "web"], &[]),
    ];
    let mut g = Graph::default();
    let mut dirty = Vec::new();
    for u in &units {
        g.add(&u.name, u, Class::MISSING, &mut dirty);
    }
    (g, units)
}

fn check(g: &Graph, units: &[Unit; 3], classes: [Class; 3]) {
    let all: Vec<(&str, &Unit, Class)> = units
        .iter()
        .zip(classes)
        .map(|(u, c)| (u.name.as_str(), u, c))
        .collect();
    g.check(&all).expect("counters match a recount");
}

#[test]
fn a_class_change_puts_only_the_units_whose_answer_changed_on_the_list() {
    let (mut g, units) = three();
    let [db, web, cron] = &units;
    let m = Class::MISSING;
    assert!(g.dependencies_ready("db"));
    assert!(!g.dependencies_ready("web"), "db is not up");
    assert!(
        g.dependencies_ready("cron"),
        "nothing it is after is coming up"
    );

    // Each row: unit, new class, units put on the work list, classes after.
    let rows: [(&Unit, Class, &[&str], [Class; 3]); 8] = [
        (db, COMING_UP, &["cron"], [COMING_UP, m, m]),
        // Dependents in id order: the order they were loaded in.
        (db, UP, &["web", "cron"], [UP, m, m]),
        (web, COMING_UP, &["cron"], [UP, COMING_UP, m]),
        (web, UP, &["cron"], [UP, UP, m]),
        (cron, HOLDING, &["db", "web"], [UP, UP, HOLDING]),
        (cron, m, &["db", "web"], [UP, UP, m]),
        (db, FAILED, &["web"], [FAILED, UP, m]),
        (db, m, &["web"], [m, UP, m]),
    ];
    for (u, class, want, classes) in rows {
        let mut dirty = Vec::new();
        g.set_class(&u.name, class, &mut dirty);
        assert_eq!(dirty, want, "{} -> {class:?}", u.name);
        check(&g, &units, classes);
    }
}

#[test]
fn answers_follow_the_counters() {
    let (mut g, _) = three();
    let mut dirty = Vec::new();
    g.set_class("db", UP, &mut dirty);
    assert!(g.dependencies_ready("web"));
    g.set_class("web", HOLDING, &mut dirty);
    g.set_class("cron", HOLDING, &mut dirty);
    assert!(!g.dependents_down("db"), "web and cron hold it");
    assert!(!g.dependents_down("web"), "cron holds it");
    g.set_class("cron", Class::MISSING, &mut dirty);
    assert!(g.dependents_down("web"));
    assert!(!g.dependents_down("db"), "web still holds it");
    assert_eq!(g.failed_requirement("web"), None);
    g.set_class("db", FAILED, &mut dirty);
    assert_eq!(g.failed_requirement("web"), Some("db".into()));
    assert_eq!(g.requiring("db"), vec!["web"]);
    assert!(g.requiring("web").is_empty(), "cron is only after web");
}

#[test]
fn edges_move_with_a_new_definition_and_go_with_a_removed_unit() {
    let (mut g, _) = three();
    let mut dirty = Vec::new();
    g.set_class("db", UP, &mut dirty);
    g.set_class("web", COMING_UP, &mut dirty);
    g.set_class("cron", HOLDING, &mut dirty);
    assert!(!g.dependents_down("db"));
    // cron no longer names db or web, and now requires `extra`, not loaded.
    let cron2 = unit("cron", &[], &["extra"]);
    let mut dirty = Vec::new();
    g.replace("cron", &cron2, &mut dirty);
    // db and web were held by cron alone; extra is held now; cron checks afresh.
    assert_eq!(dirty, ["db", "web", "extra", "cron"]);
    assert!(!g.dependencies_ready("cron"), "extra is not loaded: not up");
    assert!(g.dependents_down("db"), "web is coming up, not holding");
    assert!(g.ids.contains_key("extra"));
    g.remove("cron", &mut dirty);
    assert!(
        !g.ids.contains_key("extra"),
        "a name nobody lists is forgotten"
    );
    assert!(!g.ids.contains_key("cron"));
    // A unit loaded under a name others list: its class tells them.
    let extra_user = unit("user", &[], &["extra"]);
    g.add("user", &extra_user, Class::MISSING, &mut dirty);
    let extra = unit("extra", &[], &[]);
    let mut dirty = Vec::new();
    g.add("extra", &extra, UP, &mut dirty);
    assert_eq!(dirty, ["extra", "user"]);
    assert!(g.dependencies_ready("user"));
}

#[test]
fn duplicate_entries_count_once_each_way() {
    let db = unit("db", &[], &[]);
    let web = unit("web", &["db", "db"], &["db"]);
    let mut g = Graph::default();
    let mut dirty = Vec::new();
    g.add("db", &db, Class::MISSING, &mut dirty);
    g.add("web", &web, Class::MISSING, &mut dirty);
    let all = |c: Class, w: Class| vec![("db", &db, c), ("web", &web, w)];
    for (c, w) in [
        (COMING_UP, Class::MISSING),
        (UP, HOLDING),
        (FAILED, Class::MISSING),
        (Class::MISSING, HOLDING),
    ] {
        g.set_class("db", c, &mut dirty);
        g.set_class("web", w, &mut dirty);
        g.check(&all(c, w)).expect("counters match a recount");
    }
    g.remove("web", &mut dirty);
    assert!(g.dependents_down("db"));
    assert!(g.requiring("db").is_empty());
}

#[test]
fn units_that_came_and_went_leave_no_room_behind() {
    let mut g = Graph::default();
    let mut dirty = Vec::new();
    let db = unit("db", &[], &[]);
    g.add("db", &db, UP, &mut dirty);
    // A storm: a thousand units, each requiring db and one name nobody loads.
    let storm: Vec<Unit> = (0..1000)
        .map(|i| unit(&format!("c{i}"), &[], &["db", &format!("gone{i}")]))
        .collect();
    for u in &storm {
        g.add(&u.name, u, Class::MISSING, &mut dirty);
    }
    assert!(g.nodes.capacity() >= 2001);
    // Removed in any order: the nodes go once the last ones are free.
    for u in storm.iter().rev().step_by(2).chain(storm.iter().step_by(2)) {
        g.remove(&u.name, &mut dirty);
    }
    assert_eq!(g.nodes.len(), 1, "only db is left");
    assert!(g.nodes.capacity() < 64, "{}", g.nodes.capacity());
    assert!(g.free.is_empty() && g.ids.len() == 1);
    // The ids handed out afterwards are valid ones.
    let web = unit("web", &["db"], &["cache"]);
    g.add("web", &web, COMING_UP, &mut dirty);
    g.check(&[("db", &db, UP), ("web", &web, COMING_UP)])
        .expect("counters match a recount");
}
