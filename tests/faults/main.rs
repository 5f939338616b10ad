//! Fault injection (issue 10): supd under pid reuse, hostile input, hostile clients,
//! a hostile state directory, its own crash and a units directory pulled away. Each
//! test is bounded in time; see docs/reliability.md for what each one proves.

#[path = "../common/mod.rs"]
mod common;
mod probe;
mod storm;

use common::harness::{self, root, trials};
use storm::*;

fn main() -> std::process::ExitCode {
    harness::main(trials![root => [
        // storm.rs
        crash_storm_with_pid_wrap_never_touches_healthy_units,
    ]])
}
