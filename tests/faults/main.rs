//! Fault injection (issue 10): supd under pid reuse, hostile input, hostile clients,
//! a hostile state directory, its own crash and a units directory pulled away. Each
//! test is bounded in time; see docs/reliability.md for what each one proves.

#[path = "../common/mod.rs"]
mod common;
mod crash;
mod input;
mod misc;
mod probe;
mod socket;
mod state;
mod storm;

use common::harness::{self, root, trials};
use crash::*;
use input::*;
use misc::*;
use socket::*;
use state::*;
use storm::*;

fn main() -> std::process::ExitCode {
    harness::main(trials![root => [
        // crash.rs
        after_kill_9_a_new_supd_kills_every_leftover_and_restarts_what_remains,
        a_units_directory_deleted_and_created_again_is_watched_again,
        a_killed_fork_server_is_replaced_and_none_outlives_supd,
        a_hung_fork_server_is_killed_and_the_unit_runs_again_on_a_new_one,
        // input.rs
        durations_and_sizes_beyond_their_caps_are_located_errors_and_at_the_caps_units_run,
        special_files_named_like_units_are_located_errors_and_never_block,
        dependency_lists_are_capped_and_2000_units_reload_while_status_answers,
        // misc.rs
        a_numeric_user_without_passwd_entry_runs_with_its_own_gid_and_no_groups,
        a_deleted_log_file_is_created_again_by_the_next_line,
        a_stop_forced_at_stop_timeout_says_so_in_reply_status_and_log,
        quick_successive_queries_see_the_same_cpu_percentage,
        // socket.rs
        silent_clients_are_dropped_after_the_request_timeout,
        followers_that_never_read_neither_block_status_nor_stay,
        a_follower_that_falls_behind_is_dropped_with_a_message,
        connections_beyond_512_are_told_busy_and_short_requests_recover,
        a_connection_flood_at_a_low_fd_limit_leaves_status_and_starts_working,
        supd_raises_its_soft_fd_limit_and_services_get_1024_unless_set,
        // state.rs
        a_state_dir_another_user_owns_or_can_write_is_refused,
        log_files_are_private_and_a_planted_link_is_not_followed,
        supctl_refuses_a_socket_another_user_could_have_planted,
        supctl_refuses_a_supd_of_another_user,
        a_dangling_link_or_a_stale_socket_at_the_socket_path_does_not_block_startup,
        // storm.rs
        crash_storm_with_pid_wrap_never_touches_healthy_units,
    ]])
}
