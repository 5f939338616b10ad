//! `exec_start_pre`, `exec_stop_post` and `on_failure`.

use std::time::Duration;

use crate::common::*;
use crate::{dependent_on, gate, shared, stamp, touch};

/// The start commands run in order in the service's own container (they share
/// its private /tmp) before it; the stop command runs after its process is gone,
/// before `stop --wait` returns.
pub fn exec_start_pre_runs_in_the_container_and_exec_stop_post_after_it() {
    let (sup, out) = shared(&[]);
    let (pre, main, post, seen) = (
        out.join("pre"),
        out.join("main"),
        out.join("post"),
        out.join("seen"),
    );
    let pre_cmds = format!(
        "exec_start_pre = [[\"/bin/sh\", \"-c\", \"mkdir /tmp/app && echo $SUP_UNIT > /tmp/app/who\"], \
         [\"/bin/sh\", \"-c\", \"date +%s%N > {pre}\"]]\n\
         exec_stop_post = [[\"/bin/sh\", \"-c\", \"date +%s%N > {post}\"]]\n",
        pre = pre.display(),
        post = post.display()
    );
    let script = format!(
        "cat /tmp/app/who > {seen}; date +%s%N > {main}; exec sleep 1000",
        seen = seen.display(),
        main = main.display()
    );
    sup.write_unit("app", &(unit("", &script) + &pre_cmds));
    let sup = sup.launch();
    sup.wait_state("app", "running");
    assert_eq!(
        wait_file(&seen).trim(),
        "app",
        "same container as the service"
    );
    assert!(stamp(&pre) < stamp(&main), "pre ran before the service");
    assert!(!post.exists(), "exec_stop_post ran while the service runs");

    let out = sup.supctl_within(&["stop", "--wait", "app"], PATIENCE);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        post.exists(),
        "stop --wait returned before exec_stop_post ran"
    );
    assert!(stamp(&post) > stamp(&main));
    assert_eq!(sup.unit("app")["state"], "inactive");
}

/// A failing `exec_start_pre` command fails the start with a reason naming it;
/// the service never runs.
pub fn failing_exec_start_pre_fails_the_start() {
    let (sup, out) = shared(&[]);
    let ran = out.join("ran");
    sup.write_unit(
        "app",
        &(unit("", &format!("touch {}; exec sleep 1000", ran.display()))
            + "exec_start_pre = [[\"/bin/echo\", \"pre one\"], [\"/bin/sh\", \"-c\", \"echo bad config >&2; exit 4\"]]\nrestart = \"no\"\n"),
    );
    // Never done: killed with what it started at start_timeout.
    sup.write_unit(
        "hang",
        &(unit("", "exec sleep 1000")
            + "exec_start_pre = [[\"/bin/sh\", \"-c\", \"sleep 1000; true\"]]\nstart_timeout = \"1s\"\nrestart = \"no\"\n"),
    );
    // 300 KB before the service runs (more than a default pipe holds) is fine.
    sup.write_unit(
        "chatty",
        &(unit("", "exec sleep 1000")
            + "exec_start_pre = [[\"/bin/sh\", \"-c\", \"head -c 300000 /dev/zero | tr '\\\\0' x | fold -w 100\"]]\n"),
    );
    let sup = sup.launch();
    sup.wait_state("chatty", "running");
    let app = sup.wait_state("app", "failed");
    assert_eq!(app["sub_state"], "start-pre", "{app}");
    let shown = stdout(&sup.supctl(&["status", "app"]));
    assert!(
        shown.contains("exec_start_pre") && shown.contains("exit 4") && shown.contains("code 4"),
        "status names the command and its exit:\n{shown}"
    );
    let logs = stdout(&sup.supctl(&["logs", "app"]));
    assert!(
        logs.contains("pre one") && logs.contains("bad config"),
        "what the commands wrote is in the log:\n{logs}"
    );
    assert!(
        !ran.exists(),
        "the service ran after a failed exec_start_pre"
    );
    let started = std::time::Instant::now();
    let hang = sup.wait_state("hang", "failed");
    assert_eq!(hang["sub_state"], "start-pre", "{hang}");
    let reason = hang["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("still running after start_timeout (1s); killed"),
        "{reason}"
    );
    // Well before the 30 s the helper would otherwise get.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// `on_failure = "stop-dependents"`: when the unit fails, the units that require
/// it are stopped; others keep running.
pub fn on_failure_stop_dependents_stops_the_units_that_require_it() {
    let (sup, out) = shared(&[]);
    let crash = out.join("crash");
    sup.write_unit(
        "db",
        &(unit("", &format!("{}; exit 3", gate(&crash)))
            + "restart = \"no\"\non_failure = \"stop-dependents\"\n"),
    );
    sup.write_unit(
        "app",
        &format!(
            "[unit]\nrequires = [\"db\"]\n{}",
            unit("", "exec sleep 1000")
        ),
    );
    sup.write_unit("bystander", &unit("", "exec sleep 1000"));
    let sup = sup.launch();
    sup.wait_all_running();
    touch(&crash);
    sup.wait_state("db", "failed");
    let app = sup.wait_state("app", "inactive");
    assert_eq!(
        app["reason"], "required unit db failed (its on_failure = \"stop-dependents\")",
        "{app}"
    );
    assert_eq!(sup.unit("bystander")["state"], "running");
}

/// `on_failure = "restart-dependents"`: the dependents are restarted once the
/// failed unit is ready again (after its own restart).
pub fn on_failure_restart_dependents_restarts_them_once_ready_again() {
    let (sup, out) = shared(&[]);
    let (crash, crashed, ready2, app) = (
        out.join("crash"),
        out.join("crashed"),
        out.join("ready2"),
        out.join("app"),
    );
    let script = format!(
        "if [ -e {crashed} ]; then sleep 0.5; date +%s%N > {ready2}; echo >&3; exec sleep 1000; fi; \
         echo >&3; {gate}; touch {crashed}; exit 3",
        crashed = crashed.display(),
        ready2 = ready2.display(),
        gate = gate(&crash)
    );
    sup.write_unit(
        "db",
        &(unit("", &script)
            + "ready_fd = 3\nrestart = \"on-failure\"\nrestart_delay = \"100ms\"\non_failure = \"restart-dependents\"\n"),
    );
    sup.write_unit("app", &dependent_on("db", &app));
    let sup = sup.launch();
    let first = pid_of(&sup.wait_state("app", "running"));
    touch(&crash);
    let mut starts = Vec::new();
    wait_until("app to start a second time", || {
        starts = std::fs::read_to_string(&app)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse::<u128>().ok())
            .collect::<Vec<_>>();
        starts.len() >= 2
    });
    assert!(
        starts[1] > stamp(&ready2),
        "app was started again only after db was ready again"
    );
    let app_now = sup.wait_state("app", "running");
    assert_ne!(pid_of(&app_now), first);
    assert_eq!(sup.unit("db")["restarts"], 1);
}

/// `on_failure = "exit"`: supd stops everything and exits with the unit's exit
/// code (what a VM test runner reads when supd is its init).
pub fn on_failure_exit_ends_supd_with_the_units_exit_code() {
    let (sup, out) = shared(&[]);
    let crash = out.join("crash");
    sup.write_unit(
        "job",
        &(unit("", &format!("{}; exit 42", gate(&crash)))
            + "restart = \"no\"\non_failure = \"exit\"\n"),
    );
    sup.write_unit("other", &unit("", "exec sleep 1000"));
    let mut sup = sup.launch();
    let other = pid_of(&sup.wait_state("other", "running"));
    sup.wait_state("job", "running");
    touch(&crash);
    let child = sup.child.take().expect("supd");
    let status = wait_bounded(child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("supd did not exit; log:\n{}", sup.log.text()))
        .status;
    assert_eq!(status.code(), Some(42), "log:\n{}", sup.log.text());
    assert!(!pid_alive(other), "the other unit was stopped");
    sup.log.wait_for("exit code of the failed unit");
}
