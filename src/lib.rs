//! sup: a declarative per-app container supervisor.
//!
//! Modules by concern: `unit` (unit files), `supervise` (pure state machines),
//! `spawn` (starting processes), `reaper` (the one `waitpid` loop), `logs`,
//! `control` (socket protocol), `daemon` (wiring it all together).

pub mod cgroup;
pub mod control;
pub mod daemon;
pub mod logs;
pub mod pid1;
pub mod procfs;
pub mod reaper;
pub mod spawn;
pub mod supervise;
pub mod unit;
pub mod watch;
