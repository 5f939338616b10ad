//! End-to-end tests of issue 15's unit keys and operator verbs: enable and
//! disable across supd restarts, `env_file`, `[credentials]`, `wants` and the
//! main pid in status. Real supd, real supctl, real containers (root).

#[path = "../common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::harness::{self, root, trials};
use common::*;

fn main() -> std::process::ExitCode {
    harness::main(trials![root => [
        disable_survives_a_supd_restart_and_enable_undoes_it,
    ]])
}

/// A unit idling in a default container; `head` comes before `[service]`.
fn idle(head: &str) -> String {
    sh_unit(head, "exec sleep 1000") + "stop_timeout = \"2s\"\n"
}

/// A directory below the test's own that every container may write.
#[allow(dead_code)]
fn out_dir(sup: &Sup) -> PathBuf {
    set_mode(sup.path(), 0o755);
    shared_dir(sup.path(), "out")
}

/// supd stopped (every unit with it) and started again on the same directories.
fn restart_supd(mut sup: Sup) -> Sup {
    assert!(
        sup.stop().success(),
        "supd exits 0; log:\n{}",
        sup.log.text()
    );
    sup.log = Arc::default();
    sup.launch()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "supctl failed: {}{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn disable_survives_a_supd_restart_and_enable_undoes_it() {
    let sup = Sup::start(&[
        ("db", &idle("")),
        ("web", &idle("[unit]\nrequires = [\"db\"]")),
    ]);
    sup.wait_all_running();
    let said = ok(&sup.supctl(&["disable", "db"]));
    let lines: Vec<&str> = said
        .lines()
        .map(|l| l.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(lines, ["web", "db"], "what it stops, in order: {said}");
    let text = stdout(&sup.supctl(&["status"]));
    assert!(text.contains("(disabled)"), "{text}");
    let sup = {
        let db = sup.wait_state("db", "inactive");
        assert_eq!(db["enabled"], false, "{db:#}");
        sup.wait_state("web", "inactive");
        restart_supd(sup)
    };
    // After supd's restart: db is kept stopped, web waits for it.
    let web = sup.wait_state("web", "starting");
    assert_eq!(web["reason"], "waiting for db (disabled)", "{web:#}");
    let db = sup.unit("db");
    assert_eq!(db["state"], "inactive", "{db:#}");
    assert_eq!(db["enabled"], false);
    assert!(
        db["reason"].as_str().unwrap_or("").contains("disabled"),
        "{db:#}"
    );
    let detail = stdout(&sup.supctl(&["status", "db"]));
    assert!(detail.contains("Enabled: no"), "{detail}");
    let refused = sup.supctl(&["start", "db"]);
    assert_eq!(refused.status.code(), Some(1), "start of a disabled unit");
    assert!(
        stderr(&refused).contains("db is disabled"),
        "{}",
        stderr(&refused)
    );
    // enable alone starts nothing.
    ok(&sup.supctl(&["enable", "db"]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let db = sup.unit("db");
    assert_eq!(
        (db["state"].as_str(), db["enabled"].as_bool()),
        (Some("inactive"), Some(true))
    );
    // enable --now starts it, and web, which waited, follows.
    ok(&sup.supctl(&["enable", "--now", "db"]));
    sup.wait_all_running();
    assert!(!sup.state_dir().join("disabled/db").exists());
}
