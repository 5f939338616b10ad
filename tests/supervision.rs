//! End-to-end tests of supervision: real supd, real supctl, real processes. Units
//! run in containers by default, so most of these tests need root; without it they
//! are reported as ignored.

mod common;

use std::time::{Duration, Instant};

use common::harness::{self, anywhere, root, trials};
use common::*;

fn main() -> std::process::ExitCode {
    harness::main(trials![
        // Its unit declares no namespaces, so it runs as any user.
        anywhere => [stop_kills_a_term_ignoring_service_and_its_group_after_timeout],
        root => [
            crash_loop_backs_off_hits_start_limit_and_restart_recovers,
            typo_is_reported_with_location_and_good_units_still_run,
            two_hundred_services_run_and_every_exit_is_observed,
            non_root_client_is_refused,
            sigterm_stops_in_reverse_dependency_order_and_exits_zero,
            after_orders_start,
            spawn_error_names_step_and_errno,
            logs_are_kept_in_memory_and_on_disk,
            status_exit_codes_are_useful_in_scripts,
            reload_applies_only_the_difference,
        ],
    ])
}

/// A service that crashes while a marker file exists restarts with growing delays,
/// ends `failed` at its start limit, and `supctl restart` brings it back.
fn crash_loop_backs_off_hits_start_limit_and_restart_recovers() {
    let sup = Sup::prepare(&[]);
    let crash = sup.path().join("crash");
    let stamps = sup.path().join("stamps");
    std::fs::write(&crash, "").expect("marker");
    sup.write_unit(
        "crashy",
        &format!(
            r#"
[service]
exec = ["/bin/sh", "-c", "date +%s%N >> {stamps}; if [ -e {crash} ]; then exit 7; fi; exec sleep 1000"]
restart = "on-failure"
restart_delay = "100ms"
restart_max_delay = "5s"
start_limit = {{ burst = 5, interval = "1m" }}
"#,
            stamps = stamps.display(),
            crash = crash.display()
        ),
    );
    let sup = sup.launch();
    let unit = sup.wait_state("crashy", "failed");
    assert_eq!(unit["sub_state"], "start-limit");
    assert_eq!(unit["restarts"], 4);
    assert_eq!(unit["last_exit"]["code"], 7);
    assert!(
        unit["reason"]
            .as_str()
            .expect("reason")
            .contains("start limit")
    );

    let starts: Vec<u128> = std::fs::read_to_string(&stamps)
        .expect("stamps")
        .lines()
        .map(|l| l.trim().parse().expect("ns"))
        .collect();
    assert_eq!(starts.len(), 5, "burst of 5 starts");
    let gaps: Vec<u128> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .collect();
    // Delays 100, 200, 400, 800 ms: each gap at least the delay, and growing.
    for (gap, delay) in gaps.iter().zip([100u128, 200, 400, 800]) {
        assert!(*gap >= delay, "gaps {gaps:?} ms must respect backoff");
    }
    for w in gaps.windows(2) {
        assert!(w[1] > w[0], "gaps {gaps:?} ms must grow");
    }

    std::fs::remove_file(&crash).expect("remove marker");
    let out = sup.supctl(&["restart", "--wait", "crashy"]);
    assert!(
        out.status.success(),
        "restart: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let unit = sup.unit("crashy");
    assert_eq!(unit["state"], "running");
    assert_eq!(
        unit["restarts"], 0,
        "the operator's restart gives a fresh budget"
    );
}

/// A service ignoring SIGTERM is killed after stop_timeout, with its whole group.
fn stop_kills_a_term_ignoring_service_and_its_group_after_timeout() {
    let sup = Sup::start(&[(
        "stubborn",
        r#"
# On the host (no PID namespace), so the process group is the only thing holding
# the service together: the kill must reach all of it.
[container]
namespaces = []

[service]
exec = ["/bin/sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000 & echo ready; wait"]
stop_timeout = "700ms"
"#,
    )]);
    let unit = sup.wait_state("stubborn", "running");
    let pgid = pid_of(&unit);
    wait_until("three processes in the group", || {
        members_of_group(pgid).len() == 3
    });

    let t0 = Instant::now();
    let out = sup.supctl(&["stop", "--wait", "stubborn"]);
    let took = t0.elapsed();
    assert!(
        out.status.success(),
        "stop: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        took >= Duration::from_millis(700),
        "SIGTERM was ignored, so only SIGKILL after 700ms ends it (took {took:?})"
    );
    let unit = sup.unit("stubborn");
    assert_eq!(unit["state"], "inactive");
    assert_eq!(unit["last_exit"]["signal"], "SIGKILL");
    // The group's other members got the same SIGKILL as the main process; they die
    // when the kernel next schedules them, which a busy machine may delay.
    wait_until("nothing of the process group to remain", || {
        members_of_group(pgid).is_empty()
    });
}

/// A typo names file:line:column; the other units still run.
fn typo_is_reported_with_location_and_good_units_still_run() {
    let sup = Sup::prepare(&[
        ("good", "[service]\nexec = [\"/bin/sleep\", \"1000\"]\n"),
        (
            "bad",
            "[service]\nexec = [\"/bin/sleep\", \"1000\"]\n\nretsart = \"always\"\n",
        ),
    ]);
    let check = std::process::Command::new(SUPD)
        .args(["--check", "--units"])
        .arg(sup.units_dir())
        .output()
        .expect("supd --check");
    assert!(!check.status.success(), "--check must fail");
    let report = stdout(&check);
    let expected = format!("{}:4:1:", sup.units_dir().join("bad.toml").display());
    assert!(
        report.contains(&expected),
        "report names file:line:col: {report}"
    );
    assert!(report.contains("retsart"), "{report}");

    let sup = sup.launch();
    sup.wait_state("good", "running");
    let bad = sup.unit("bad");
    assert_eq!(bad["state"], "failed");
    assert!(
        bad["definition_error"]
            .as_str()
            .expect("error")
            .contains(&expected)
    );
    assert!(
        sup.log.text().contains(&expected),
        "supd logs the error too"
    );
    let out = sup.supctl(&["start", "bad"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

/// 200 services all reach running; killing them all at once loses no exit.
fn two_hundred_services_run_and_every_exit_is_observed() {
    let units: Vec<(String, String)> = (0..200)
        .map(|i| {
            (
                format!("svc{i:03}"),
                "[service]\nexec = [\"/bin/sleep\", \"1000\"]\nrestart = \"no\"\n".to_string(),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = units
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let sup = Sup::start(&refs);
    let status = sup.wait_status_within("200 running", Duration::from_secs(60), |s| {
        s.len() == 200 && s.iter().all(|u| u["state"] == "running")
    });
    let pids: Vec<i32> = status.iter().map(pid_of).collect();
    for pid in &pids {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
    }
    let status = sup.wait_status_within("200 failed", Duration::from_secs(60), |s| {
        s.iter().all(|u| u["state"] == "failed")
    });
    for u in &status {
        assert_eq!(u["last_exit"]["signal"], "SIGKILL", "{u}");
        assert_eq!(u["sub_state"], "signal");
    }
    assert!(pids.iter().all(|p| !pid_alive(*p)));
}

/// Only root and supd's own uid may control it.
fn non_root_client_is_refused() {
    use std::os::unix::process::CommandExt;
    let sup = Sup::start(&[("svc", "[service]\nexec = [\"/bin/sleep\", \"1000\"]\n")]);
    sup.wait_state("svc", "running");
    let as_nobody = |args: &[&str]| {
        std::process::Command::new(SUPCTL)
            .arg("--state-dir")
            .arg(sup.state_dir())
            .args(args)
            .uid(65534)
            .gid(65534)
            .output()
            .expect("supctl as nobody")
    };
    set_mode(sup.path(), 0o755);
    set_mode(&sup.state_dir(), 0o755);
    // The socket's mode 0600 is the first wall.
    let out = as_nobody(&["stop", "svc"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    // Peer credentials are the second: even with the socket opened up, nobody is refused.
    set_mode(&sup.state_dir().join("control.sock"), 0o666);
    let out = as_nobody(&["stop", "svc"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("uid 65534 may not control supd"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sup.unit("svc")["state"], "running");
}

/// SIGTERM stops units in reverse dependency order, then supd exits 0.
fn sigterm_stops_in_reverse_dependency_order_and_exits_zero() {
    let sup = Sup::prepare(&[]);
    let journal = sup.path().join("journal");
    let unit = |name: &str, deps: &str| {
        sh_unit(
            &format!("[unit]\n{deps}"),
            &format!(
                "trap 'echo {name} >> {j}; exit 0' TERM; echo armed > {j}.{name}; sleep 1000 & wait",
                j = journal.display()
            ),
        )
    };
    sup.write_unit("base", &unit("base", ""));
    sup.write_unit("middle", &unit("middle", "requires = [\"base\"]"));
    sup.write_unit("top", &unit("top", "after = [\"middle\"]"));
    let mut sup = sup.launch();
    let status = sup.wait_all_running();
    // Running means exec'd, not that the shell has set its trap yet.
    for name in ["base", "middle", "top"] {
        wait_file(&sup.path().join(format!("journal.{name}")));
    }
    let pids: Vec<i32> = status.iter().map(pid_of).collect();
    let exit = sup.stop();
    assert!(exit.success(), "supd exit status {exit}");
    let order = std::fs::read_to_string(&journal).expect("journal");
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        vec!["top", "middle", "base"]
    );
    for pid in pids {
        assert!(members_of_group(pid).is_empty(), "group {pid} left running");
    }
    assert!(
        !sup.state_dir().join("control.sock").exists(),
        "socket removed"
    );
}

/// `after` orders the start: the dependent's first line comes after the dependency's.
fn after_orders_start() {
    let sup = Sup::prepare(&[]);
    let journal = sup.path().join("journal");
    let unit = |name: &str, deps: &str| {
        sh_unit(
            &format!("[unit]\n{deps}"),
            &format!("echo {name} >> {j}; exec sleep 1000", j = journal.display()),
        )
    };
    sup.write_unit("a", &unit("a", "after = [\"b\"]"));
    sup.write_unit("b", &unit("b", "after = [\"c\"]"));
    sup.write_unit("c", &unit("c", ""));
    let sup = sup.launch();
    sup.wait_all_running();
    wait_until("journal complete", || {
        std::fs::read_to_string(&journal).is_ok_and(|j| j.lines().count() == 3)
    });
    let order = std::fs::read_to_string(&journal).expect("journal");
    assert_eq!(order.lines().collect::<Vec<_>>(), vec!["c", "b", "a"]);
}

/// A start that fails before exec names the step, path and errno.
fn spawn_error_names_step_and_errno() {
    let sup = Sup::start(&[(
        "lost",
        "[service]\nexec = [\"/bin/true\"]\nworkdir = \"/nonexistent/dir\"\nrestart = \"no\"\n",
    )]);
    let unit = sup.wait_state("lost", "failed");
    assert_eq!(unit["sub_state"], "spawn-error");
    let reason = unit["reason"].as_str().expect("reason");
    assert!(
        reason.contains("chdir /nonexistent/dir: ENOENT"),
        "{reason}"
    );
}

/// Output reaches `supctl logs` and the log file with timestamps; stderr is marked.
fn logs_are_kept_in_memory_and_on_disk() {
    let sup = Sup::start(&[(
        "talker",
        "[service]\nexec = [\"/bin/sh\", \"-c\", \"echo hello out; echo hello err >&2; exec sleep 1000\"]\n",
    )]);
    sup.wait_state("talker", "running");
    wait_until("two log lines", || {
        stdout(&sup.supctl(&["logs", "talker"])).lines().count() == 2
    });
    let logs = stdout(&sup.supctl(&["logs", "talker", "-n", "5"]));
    assert!(logs.contains("hello out"), "{logs}");
    assert!(logs.contains("[stderr] hello err"), "{logs}");
    let file = std::fs::read_to_string(sup.state_dir().join("logs/talker.log")).expect("log file");
    let first = file.lines().next().expect("a line");
    assert!(
        humantime::parse_rfc3339(first.split(' ').next().expect("ts")).is_ok(),
        "{first}"
    );
}

/// Status of a named unit that is not running exits 3; an unknown unit exits 4.
fn status_exit_codes_are_useful_in_scripts() {
    let sup = Sup::start(&[
        ("up", "[service]\nexec = [\"/bin/sleep\", \"1000\"]\n"),
        (
            "done",
            "[service]\nexec = [\"/bin/true\"]\nrestart = \"no\"\n",
        ),
    ]);
    sup.wait_state("up", "running");
    sup.wait_state("done", "exited");
    assert_eq!(sup.supctl(&["status", "up"]).status.code(), Some(0));
    assert_eq!(sup.supctl(&["status", "done"]).status.code(), Some(3));
    assert_eq!(sup.supctl(&["status", "nope"]).status.code(), Some(4));
}

/// `supctl reload` starts new, stops removed and restarts changed units only.
fn reload_applies_only_the_difference() {
    let sleep = "[service]\nexec = [\"/bin/sleep\", \"1000\"]\n";
    let sup = Sup::start(&[("keep", sleep), ("change", sleep), ("drop", sleep)]);
    let before = sup.wait_all_running();
    let pid_in = |s: &[serde_json::Value], n: &str| {
        s.iter().find(|u| u["name"] == n).map(|u| u["pid"].clone())
    };
    // Same meaning, different bytes: not a change.
    sup.write_unit(
        "keep",
        "# comment\n[service]\nexec = [ \"/bin/sleep\", \"1000\" ]\n",
    );
    sup.write_unit("change", "[service]\nexec = [\"/bin/sleep\", \"2000\"]\n");
    std::fs::remove_file(sup.units_dir().join("drop.toml")).expect("rm");
    sup.write_unit("new", sleep);
    // supd watches the directory too; whichever reload comes first applies the
    // whole difference, in one summary line.
    let out = sup.supctl(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    sup.log.wait_for("added=1 removed=1 restarted=1");
    // The changed unit is signalled and ends by it, not by the SIGKILL of its 10 s
    // stop timeout.
    let exit = sup.log.wait_for_all(&["process exited", "unit=change"]);
    assert!(!exit.contains("SIGKILL"), "{exit}");
    let after = sup.wait_status("reloaded", |s| {
        s.len() == 3 && s.iter().all(|u| u["state"] == "running")
    });
    assert_eq!(pid_in(&before, "keep"), pid_in(&after, "keep"));
    assert_ne!(pid_in(&before, "change"), pid_in(&after, "change"));
}
