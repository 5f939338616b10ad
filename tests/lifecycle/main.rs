//! End-to-end tests of readiness, health and the lifecycle keys (issue 12): real
//! supd, real supctl, real containers. A service says it is ready with
//! `supctl notify --ready` (sd_notify), a newline on its `ready_fd`, or a healthy
//! probe; the tests check what dependents, `--wait` and `status` make of it.

#[path = "../common/mod.rs"]
mod common;
mod health;
mod hooks;
mod postgres;
mod readiness;

use std::path::{Path, PathBuf};

use common::harness::{self, root, trials};
use common::*;
use health::*;
use hooks::*;
use postgres::*;
use readiness::*;

fn main() -> std::process::ExitCode {
    harness::main(trials![root => [
        notify_service_in_pid_and_user_namespaces_gates_its_dependent,
        ready_fd_gates_a_dependent,
        notify_works_with_the_state_directory_in_a_private_tmp,
        notify_reaches_a_user_namespaced_unit_with_a_private_state_directory,
        a_ready_before_a_crash_never_counts_for_the_restarted_service,
        a_ready_from_outside_the_unit_is_dropped_and_from_inside_counts,
        start_timeout_fails_a_service_that_is_never_ready,
        watchdog_kills_a_service_that_stops_pinging,
        oneshot_with_remain_after_exit_satisfies_a_dependent,
        exec_check_turns_unhealthy_and_restarts_the_service,
        tcp_and_http_checks_restart_a_sick_server,
        first_healthy_probe_makes_a_simple_service_ready,
        a_probe_past_its_timeout_is_killed_with_what_it_started,
        on_unhealthy_stop_fails_the_unit_and_keeps_what_the_probes_said,
        exec_start_pre_runs_in_the_container_and_exec_stop_post_after_it,
        failing_exec_start_pre_fails_the_start,
        on_failure_stop_dependents_stops_the_units_that_require_it,
        on_failure_restart_dependents_restarts_them_once_ready_again,
        on_failure_exit_ends_supd_with_the_units_exit_code,
        postgres_gates_an_app_whose_first_connection_never_fails,
    ]])
}

/// A supd test directory whose `out` directory every container may write (user
/// namespaced ones as a high host uid too).
fn shared(units: &[(&str, &str)]) -> (Sup, PathBuf) {
    let sup = Sup::prepare(units);
    set_mode(sup.path(), 0o755);
    let out = shared_dir(sup.path(), "out");
    (sup, out)
}

/// A shell loop that waits for `file` to appear, then removes it (a gate the test
/// opens once per start).
fn gate(file: &Path) -> String {
    format!(
        "while [ ! -e {f} ]; do sleep 0.05; done; rm -f {f}",
        f = file.display()
    )
}

/// Nanoseconds since the epoch as the service wrote them (`date +%s%N`).
fn stamp(file: &Path) -> u128 {
    wait_file(file)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn touch(file: &Path) {
    std::fs::write(file, "").expect("touch");
}

/// `supctl notify` as a service runs it (the test binary's own supctl).
fn notify(args: &str) -> String {
    format!("{SUPCTL} notify {args}")
}

/// A unit that requires `dependency` and appends the time it started (ns) to
/// `stamps`, then idles.
fn dependent_on(dependency: &str, stamps: &Path) -> String {
    format!(
        "[unit]\nrequires = [{dependency:?}]\n{}",
        unit(
            "",
            &format!("date +%s%N >> {}; exec sleep 1000", stamps.display())
        )
    )
}
