//! Fault injection (issue 10): supd under pid reuse, hostile input, hostile clients,
//! a hostile state directory, its own crash and a units directory pulled away. Each
//! test is bounded in time; see docs/reliability.md for what each one proves.

#[path = "../common/mod.rs"]
mod common;
mod input;
mod probe;
mod socket;
mod storm;

use common::harness::{self, root, trials};
use input::*;
use socket::*;
use storm::*;

fn main() -> std::process::ExitCode {
    harness::main(trials![root => [
        // input.rs
        durations_and_sizes_beyond_their_caps_are_located_errors_and_at_the_caps_units_run,
        special_files_named_like_units_are_located_errors_and_never_block,
        dependency_lists_are_capped_and_2000_units_reload_while_status_answers,
        // socket.rs
        silent_clients_are_dropped_after_the_request_timeout,
        followers_that_never_read_neither_block_status_nor_stay,
        a_follower_that_falls_behind_is_dropped_with_a_message,
        connections_beyond_512_are_told_busy_and_short_requests_recover,
        a_connection_flood_at_a_low_fd_limit_leaves_status_and_starts_working,
        supd_raises_its_soft_fd_limit_and_services_get_1024_unless_set,
        // storm.rs
        crash_storm_with_pid_wrap_never_touches_healthy_units,
    ]])
}
