//! `supctl audit --json` on the units of the escape suite: the default unit has the
//! checks for each protection the probe could not get past, each relaxation
//! loses exactly the check for what it let through and scores worse, and a unit
//! relaxing everything scores worst.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::*;
use crate::kit::*;
use crate::shapes::relaxations;

/// The audit check that speaks for each relaxation of `shapes::relaxations`.
fn check_of(relaxation: &str) -> &'static str {
    match relaxation {
        "socket" => "control-socket",
        "cgroups" | "cgroups_hostns" => "protect-cgroups",
        "kernel" => "protect-kernel",
        "devices" => "private-devices",
        "net_raw" => "raw-sockets",
        "seccomp" => "seccomp",
        "system" => "protect-system",
        "tmp" => "private-tmp",
        other => panic!("no audit check named for {other}"),
    }
}

/// unit -> (score, the ids of its failed checks).
fn audit(sup: &Sup) -> BTreeMap<String, (f64, Vec<String>)> {
    let out = sup.supctl(&["audit", "--json"]);
    assert!(out.status.success(), "audit: {}", stderr(&out));
    let units: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("audit --json: {e}: {}", stdout(&out)));
    units
        .as_array()
        .expect("an array of units")
        .iter()
        .map(|u| {
            let failed = u["checks"]
                .as_array()
                .expect("checks")
                .iter()
                .filter(|c| c["ok"] == false)
                .map(|c| c["id"].as_str().expect("id").to_string())
                .collect();
            let name = u["name"].as_str().expect("name").to_string();
            (name, (u["score"].as_f64().expect("score"), failed))
        })
        .collect()
}

pub fn audit_json_scores_the_default_unit_better_than_any_relaxed_one() {
    let sup = Sup::prepare(&[]);
    let idle = |container: &str| unit(container, "exec sleep 1000");
    let relaxed = relaxations();
    sup.write_unit("default", &idle(""));
    for (name, key, _) in &relaxed {
        sup.write_unit(name, &idle(key));
    }
    sup.write_unit("everything", &idle(&all_relaxed()));
    let nobody = |container: &str| idle(container) + "user = \"nobody\"\n";
    sup.write_unit("nobody", &nobody(""));
    sup.write_unit("nobody_relaxed", &nobody(NOBODY_RELAXED));
    let sup = sup.launch();
    let report = audit(&sup);
    let (base, missing) = &report["default"];
    let checks: Vec<&str> = relaxed.iter().map(|(n, _, _)| check_of(n)).collect();
    for id in &checks {
        assert!(
            !missing.iter().any(|m| m == id),
            "the default unit has {id}: {missing:?}"
        );
    }
    for (name, key, _) in &relaxed {
        let (score, failed) = &report[*name];
        assert!(
            failed.iter().any(|f| f == check_of(name)),
            "{key:?} fails {}: {failed:?}",
            check_of(name)
        );
        assert!(score > base, "{key:?}: {score} <= the default's {base}");
    }
    let (worst, failed) = &report["everything"];
    for id in &checks {
        assert!(failed.iter().any(|f| f == id), "everything relaxed: {id}");
    }
    for (name, (score, _)) in &report {
        assert!(
            name == "everything" || score < worst,
            "{name} ({score}) scores below everything relaxed ({worst})"
        );
    }
    // A `nobody` that may setuid(0) (the escape suite shows it does) is root.
    let (plain, _) = &report["nobody"];
    let (may_setuid, failed) = &report["nobody_relaxed"];
    assert!(
        may_setuid > plain && failed.iter().any(|f| f == "non-root"),
        "{NOBODY_RELAXED}: {may_setuid} (missing {failed:?}) vs nobody's {plain}"
    );
    drop(sup);
}
