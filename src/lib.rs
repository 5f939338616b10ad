//! sup: a declarative per-app container supervisor.
//!
//! Modules by concern, lowest layer first (a module only uses the ones above it in
//! this list, never the ones below):
//! - `unit`: unit files (model, parsing, validation, dependency graph);
//! - `supervise`: the pure per-unit state machine and the fleet's dependency rules;
//!   `audit`: how exposed a unit's definition leaves the host (pure);
//! - `image`: OCI images imported from files, their store, unit roots;
//! - `memory`: giving memory back after a burst (capacity of maps, malloc's arenas);
//! - `cgroup`: the cgroup driver; `spawn`: starting containers through a helper;
//!   `reaper`: the one `waitpid` loop; `logs`: unit output; `notify`: sd_notify
//!   messages; `procfs`, `pid1`;
//! - `control`: the control protocol (wire types), server and client;
//! - `daemon`: supd's event loop, wiring all of them together;
//! - `cli`: the command lines of supd and supctl, their man pages and completions.

pub mod audit;
pub mod cgroup;
pub mod cli;
pub mod control;
pub mod daemon;
pub mod export;
pub mod image;
pub mod logs;
pub mod memory;
pub mod net;
pub mod notify;
pub mod pid1;
pub mod procfs;
pub mod reaper;
pub mod spawn;
pub mod supervise;
pub mod unit;
