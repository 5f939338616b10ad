//! Upper bounds on values and list lengths, documented in docs/units.md.
//!
//! Each keeps a typo (`"500000000000y"`, a runaway generated list) a
//! located load error instead of an overflow, a panic or a slow check
//! later. The caps are far above any sensible setting.

use std::time::Duration;

/// Every duration key (restart delays, `restart_reset_after`,
/// `stop_timeout`, `start_limit.interval`): one day. A longer delay or
/// timeout is never meant, and timers stay far from overflowing.
pub const DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// Memory limits and tmpfs sizes: 2^62 bytes (4 EiB), beyond any machine
/// and far from overflowing when converted or added.
pub const MEMORY: u64 = 1 << 62;
/// `logs.max_size`: 1 TiB per log file.
pub const LOG_SIZE: u64 = 1 << 40;
/// Entries of `after`, and of `requires`.
pub const DEPS: usize = 1024;
/// Arguments of `exec`, and variables of `env`.
pub const ARGS: usize = 4096;
/// Every other list: `success_exit_codes`, `supplementary_groups`,
/// `namespaces`, `capabilities`, `[[mount]]` entries, table entries.
pub const LIST: usize = 1024;
/// Layers of an overlay mount (the kernel's `OVL_MAX_STACK`).
pub const OVERLAY_LOWER: usize = 500;
/// Lines of `/proc/<pid>/uid_map` (the kernel's limit since Linux 4.15).
pub const ID_MAP_RANGES: usize = 340;
