//! Starting a service process.
//!
//! supd's own process is multithreaded (tokio), so it never runs Rust code in a forked
//! child. Instead its fork server (`forkserver`, a single-threaded copy of supd
//! started once) forks a helper for each start, or supd `posix_spawn`s a fresh copy
//! of its own binary in helper mode (`supd __spawn UNIT`, see `helper`); either way
//! the helper is single-threaded and may do anything:
//! it receives a `LaunchPlan` over a socket on fd 3, sets up the container
//! (namespaces, mounts, identity, restrictions) and execs the service.
//! The socket is close-on-exec in the helper, so a successful exec shows up here as EOF
//! without a message; a failure arrives first as a `SpawnError` naming the step.
//!
//! Modules, in the order a start goes through them:
//! - `resolve` (supd): unit -> `LaunchPlan` (`types`), lookups done up front
//!   (`identity`: user and group, in the account files of `accounts`);
//! - `handover` (supd): start the helper (through `forkserver`), send the plan, read
//!   its reports;
//! - `helper` (the helper process): the linear setup sequence, using `namespaces`
//!   (join, clone, id maps), `mounts`, `security`, `seccomp`, and `init` (the
//!   container's PID 1);
//! - `join` (a helper in a running container: health probes, `supctl exec`; with
//!   a terminal, `join_tty`);
//! - `sys`: the raw syscalls (posix_spawn, pidfds, descriptor flags);
//! - `error`: `SpawnError`, what any step reports.

pub mod accounts;
pub mod credentials;
pub mod envfile;
mod error;
mod forkserver;
mod handover;
pub mod helper;
mod hooks;
mod identity;
mod init;
mod init_program;
mod init_sys;
pub mod join;
pub mod join_command;
mod join_tty;
pub mod mounts;
mod namespaces;
mod resolve;
pub mod seccomp;
pub mod security;
mod sys;
mod types;

use std::os::fd::RawFd;

pub use error::{EarlyOutput, SpawnError, Step};
pub use forkserver::{
    is_mode as is_fork_server_mode, main as fork_server_main, shut_down as shut_down_fork_server,
};
pub use handover::{spawn, spawn_with_helper};
pub use hooks::stop_post_plan;
pub use init::program_main as init_program_main;
pub use init_program::program_path as init_program_path;
pub use resolve::{attach_network, effective_mounts, plan, run_as};
pub use types::{Credentials, LaunchPlan, Report, Spawned};

/// The fd on which the helper finds its control socket.
pub const HELPER_FD: RawFd = 3;
/// The argv[1] that selects helper mode in the supd binary.
pub const HELPER_ARG: &str = "__spawn";
