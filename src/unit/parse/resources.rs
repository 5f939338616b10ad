//! `[resources]` -> [`ResourceSpec`]: sizes, `cpu_max` and `pids_max`
//! through their value parsers, then ranges, cpu lists and
//! `memory_high <= memory_max`.

use toml::Spanned;

use super::limits;
use super::reader::{Reader, Value};
use crate::unit::resources::ResourceSpec;
use crate::unit::values::{self, CPU_MAX_EXPECTED, PIDS_EXPECTED, SIZE_EXPECTED, check_cpu_list};

pub(super) const RESOURCE_KEYS: &[&str] = &[
    "memory_max",
    "memory_high",
    "memory_swap_max",
    "cpu_max",
    "cpu_weight",
    "pids_max",
    "io_weight",
    "cpuset_cpus",
    "cpuset_mems",
];

/// One page: a smaller memory limit cannot hold anything.
const MEMORY_MIN: u64 = 4096;
/// Range of `cpu_weight` and `io_weight` (cgroup v2).
const WEIGHT_MAX: i64 = 10_000;

/// An absent section gives [`ResourceSpec::default()`]: no limits.
pub(super) fn read_resources(v: Option<Value>, r: &mut Reader) -> ResourceSpec {
    let Some(mut t) = r.table(v, RESOURCE_KEYS) else {
        return ResourceSpec::default();
    };
    let memory_max = read_memory("memory_max", t.take("memory_max"), r);
    let memory_high = read_memory("memory_high", t.take("memory_high"), r);
    if let (Some(max), Some(high)) = (&memory_max, &memory_high)
        && let (Some(max), Some(high)) = (*max.get_ref(), *high.get_ref())
        && high > max
    {
        r.report(
            memory_high.as_ref().map_or(0..0, Spanned::span),
            format!(
                "memory_high ({high} bytes) must be <= memory_max ({max} bytes): \
                 memory_high throttles before the hard limit is reached"
            ),
        );
    }
    let swap = t.take("memory_swap_max");
    let swap_expected = format!("{SIZE_EXPECTED}, or \"max\" for no limit");
    let memory_swap_max = r.scalar(swap, &swap_expected, |v| {
        values::memory(v, "memory_swap_max", limits::MEMORY)
    });
    let cpu_max = r.scalar(t.take("cpu_max"), CPU_MAX_EXPECTED, values::cpu_max);
    let pids_max = r.scalar(t.take("pids_max"), PIDS_EXPECTED, values::pids);
    let mut weight = |key: &str, r: &mut Reader| {
        r.int_in(t.take(key), 1, WEIGHT_MAX, key)
            .map(|w| *w.get_ref() as u32)
    };
    let cpu_weight = weight("cpu_weight", r);
    let io_weight = weight("io_weight", r);
    let mut list = |key: &str, r: &mut Reader| {
        let raw = r.string(t.take(key))?;
        match check_cpu_list(raw.get_ref(), key) {
            Ok(()) => Some(raw.into_inner()),
            Err(msg) => {
                r.report(raw.span(), msg);
                None
            }
        }
    };
    let cpuset_cpus = list("cpuset_cpus", r);
    let cpuset_mems = list("cpuset_mems", r);
    let flat = |v: Option<Spanned<Option<u64>>>| v.and_then(Spanned::into_inner);
    ResourceSpec {
        memory_max: flat(memory_max),
        memory_high: flat(memory_high),
        memory_swap_max: flat(memory_swap_max),
        cpu_max: cpu_max.and_then(Spanned::into_inner),
        cpu_weight,
        pids_max: flat(pids_max),
        io_weight,
        cpuset_cpus,
        cpuset_mems,
    }
}

/// A memory limit (`None` inside for `"max"`); a set one must be at least
/// one page.
fn read_memory(key: &str, v: Option<Value>, r: &mut Reader) -> Option<Spanned<Option<u64>>> {
    let expected = format!("{SIZE_EXPECTED}, or \"max\" for no limit");
    r.scalar(v, &expected, |v| {
        match values::memory(v, key, limits::MEMORY)? {
            Some(bytes) if bytes < MEMORY_MIN => Err(format!(
                "{key} must be at least 4K (4096 bytes, one page), got {bytes} bytes; \
             use \"max\" for no limit"
            )),
            limit => Ok(limit),
        }
    })
}
