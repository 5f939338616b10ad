//! The validated model of the `[resources]` section: cgroup limits.
//!
//! Like the rest of the unit model, everything here has already been checked
//! by the parser; `None` always means "no limit" (the cgroup default).

use serde::{Deserialize, Serialize};

/// cgroup limits of a unit. A unit without `[resources]` gets
/// [`ResourceSpec::default()`]: no limits at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSpec {
    /// Hard memory limit in bytes, `>= 4096` (`memory.max`).
    pub memory_max: Option<u64>,
    /// Memory throttling threshold in bytes, `>= 4096` and `<= memory_max`
    /// when both are set (`memory.high`).
    pub memory_high: Option<u64>,
    /// Swap limit in bytes; `0` disables swap (`memory.swap.max`).
    pub memory_swap_max: Option<u64>,
    /// CPU bandwidth limit (`cpu.max`).
    pub cpu_max: Option<CpuMax>,
    /// Relative CPU weight, `1..=10000` (`cpu.weight`; the kernel default
    /// is 100).
    pub cpu_weight: Option<u32>,
    /// Maximum number of tasks, `>= 1` (`pids.max`).
    pub pids_max: Option<u64>,
    /// Relative IO weight, `1..=10000` (`io.weight`).
    pub io_weight: Option<u32>,
    /// CPUs the unit may run on, in cpu list syntax (`"0-2,4"`); every
    /// number is `< 4096` and every range `a-b` has `a <= b`
    /// (`cpuset.cpus`).
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the unit may use, same syntax (`cpuset.mems`).
    pub cpuset_mems: Option<String>,
}

impl ResourceSpec {
    /// True when no limit is set (the unit runs unconstrained).
    pub fn is_empty(&self) -> bool {
        *self == ResourceSpec::default()
    }
}

/// CPU bandwidth: at most `quota_us` of CPU time every `period_us`.
///
/// `period_us` is in `1000..=1000000`, `quota_us` in
/// `1000..=1000 * period_us` (at most 1000 CPUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuMax {
    /// CPU time per period, in microseconds.
    pub quota_us: u64,
    /// Length of the period, in microseconds.
    pub period_us: u64,
}

impl CpuMax {
    /// Period used by the percent form (`"150%"`): 100 ms, the kernel default.
    pub const DEFAULT_PERIOD_US: u64 = 100_000;
    /// Shortest period (and smallest quota) the kernel accepts: 1 ms.
    pub const MIN_US: u64 = 1_000;
    /// Longest period the kernel accepts: 1 s.
    pub const MAX_PERIOD_US: u64 = 1_000_000;
    /// Largest quota as a multiple of the period (1000 CPUs = 100000%).
    pub const MAX_CPUS: u64 = 1_000;
}
