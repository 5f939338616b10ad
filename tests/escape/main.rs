//! The escape suite (issue 11): a static probe program tries to get out of units
//! of every shape — command supd, leave its cgroup, write kernel state, open a
//! block device, sniff the host's network, use root's powers as `nobody`, call
//! syscalls the filter denies, write the host's system files — and each attempt
//! must fail, and succeed where the unit relaxes the protection on purpose. Also:
//! a real Debian daemon serving under the default protections, and `supctl audit`
//! rating protected units above relaxed ones. These tests need root (the daemon's
//! also redis); without it they are reported as ignored.

mod audit;
#[path = "../common/mod.rs"]
mod common;
mod control;
mod daemon;
mod kit;
mod shapes;

use audit::*;
use common::harness::{self, root, trials};
use control::*;
use daemon::*;
use shapes::*;

fn main() -> std::process::ExitCode {
    let code = harness::main(trials![root => [
        // shapes.rs
        default_unit_refuses_every_attack_and_each_key_lets_its_own_through,
        user_namespace_unit_refuses_every_attack_even_with_the_keys_relaxed,
        rootfs_unit_refuses_every_attack_and_relaxed_keys_let_theirs_through,
        // control.rs
        control_socket_is_hidden_peer_checked_and_opened_only_on_request,
        // audit.rs
        audit_json_scores_the_default_unit_better_than_any_relaxed_one,
    ], root_and_redis => [
        // daemon.rs
        redis_serves_stores_and_saves_as_a_default_unit,
    ]]);
    kit::remove_probe();
    code
}
