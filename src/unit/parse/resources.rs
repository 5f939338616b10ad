//! `[resources]` -> [`ResourceSpec`].
//!
//! Same two stages as the rest of the parser: serde rejects unknown keys and
//! malformed values (sizes, `cpu_max` and `pids_max` have their own
//! deserialisers, so toml points at the value), then ranges, cpu lists and
//! `memory_high <= memory_max` are checked on `Spanned` values.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use super::{Problem, in_range};
use crate::unit::resources::{CpuMax, ResourceSpec};
use crate::unit::values::{
    CPU_MAX_EXPECTED, SIZE_EXPECTED, check_cpu_list, parse_cpu_max, parse_size,
};

/// One page: a smaller memory limit cannot hold anything.
const MEMORY_MIN: u64 = 4096;
/// Range of `cpu_weight` and `io_weight` (cgroup v2).
const WEIGHT_MAX: i64 = 10_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResources {
    memory_max: Option<Spanned<MemoryValue>>,
    memory_high: Option<Spanned<MemoryValue>>,
    memory_swap_max: Option<MemoryValue>,
    cpu_max: Option<CpuMaxValue>,
    cpu_weight: Option<Spanned<i64>>,
    pids_max: Option<PidsValue>,
    io_weight: Option<Spanned<i64>>,
    cpuset_cpus: Option<Spanned<String>>,
    cpuset_mems: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------
// Value deserialisers
// ---------------------------------------------------------------------------

/// A memory amount: a size string, an integer number of bytes, or `"max"`
/// (no limit, `None`).
struct MemoryValue(Option<u64>);

impl<'de> Deserialize<'de> for MemoryValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MemoryValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "{SIZE_EXPECTED}, or \"max\" for no limit")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<MemoryValue, E> {
                if s == "max" {
                    return Ok(MemoryValue(None));
                }
                parse_size(s)
                    .map(|n| MemoryValue(Some(n)))
                    .map_err(|e| E::custom(format!("{e}, or \"max\" for no limit")))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<MemoryValue, E> {
                u64::try_from(n).map(|n| MemoryValue(Some(n))).map_err(|_| {
                    E::custom(format!(
                        "invalid size {n}: sizes cannot be negative; expected {SIZE_EXPECTED}, or \"max\" for no limit"
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<MemoryValue, E> {
                Ok(MemoryValue(Some(n)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `cpu_max`: `"150%"`, `"quota/period"` or `"max"` (`None`).
struct CpuMaxValue(Option<CpuMax>);

impl<'de> Deserialize<'de> for CpuMaxValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CpuMaxValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(CPU_MAX_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<CpuMaxValue, E> {
                if s == "max" {
                    return Ok(CpuMaxValue(None));
                }
                parse_cpu_max(s)
                    .map(|c| CpuMaxValue(Some(c)))
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<CpuMaxValue, E> {
                Err(E::custom(format!(
                    "cpu_max must be a string, not the integer {n}: expected {CPU_MAX_EXPECTED}"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

const PIDS_EXPECTED: &str = r#"an integer >= 1 like 512, or "max" for no limit"#;

/// `pids_max`: an integer `>= 1` or `"max"` (`None`).
struct PidsValue(Option<u64>);

impl<'de> Deserialize<'de> for PidsValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PidsValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(PIDS_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PidsValue, E> {
                if s == "max" {
                    Ok(PidsValue(None))
                } else {
                    Err(E::custom(format!(
                        "invalid pids_max {s:?}: expected {PIDS_EXPECTED}"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PidsValue, E> {
                match u64::try_from(n) {
                    Ok(n) if n >= 1 => Ok(PidsValue(Some(n))),
                    _ => Err(E::custom(format!(
                        "pids_max {n} is out of range: expected {PIDS_EXPECTED}"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// Builds the resource spec; an absent section is `RawResources::default()`
/// and gives [`ResourceSpec::default()`].
pub(super) fn build_resources(raw: RawResources, problems: &mut Vec<Problem>) -> ResourceSpec {
    let memory_max = check_memory("memory_max", raw.memory_max, problems);
    let high_at = raw.memory_high.as_ref().map(Spanned::span);
    let memory_high = check_memory("memory_high", raw.memory_high, problems);
    if let (Some(max), Some(high), Some(at)) = (memory_max, memory_high, high_at)
        && high > max
    {
        problems.push(Problem::at(
            at,
            format!(
                "memory_high ({high} bytes) must be <= memory_max ({max} bytes): \
                 memory_high throttles before the hard limit is reached"
            ),
        ));
    }
    let weight = |value: Option<Spanned<i64>>, what: &str, problems: &mut Vec<Problem>| {
        value
            .and_then(|w| in_range(&w, 1, WEIGHT_MAX, what, problems))
            .map(|w| w as u32)
    };
    ResourceSpec {
        memory_max,
        memory_high,
        memory_swap_max: raw.memory_swap_max.and_then(|m| m.0),
        cpu_max: raw.cpu_max.and_then(|c| c.0),
        cpu_weight: weight(raw.cpu_weight, "cpu_weight", problems),
        pids_max: raw.pids_max.and_then(|p| p.0),
        io_weight: weight(raw.io_weight, "io_weight", problems),
        cpuset_cpus: check_list("cpuset_cpus", raw.cpuset_cpus, problems),
        cpuset_mems: check_list("cpuset_mems", raw.cpuset_mems, problems),
    }
}

/// A set memory limit must be at least one page.
fn check_memory(
    key: &str,
    raw: Option<Spanned<MemoryValue>>,
    problems: &mut Vec<Problem>,
) -> Option<u64> {
    let raw = raw?;
    let bytes = raw.get_ref().0?;
    if bytes < MEMORY_MIN {
        problems.push(Problem::at(
            raw.span(),
            format!(
                "{key} must be at least 4K (4096 bytes, one page), got {bytes} bytes; \
                 use \"max\" for no limit"
            ),
        ));
        return None;
    }
    Some(bytes)
}

/// `cpuset_cpus` / `cpuset_mems`: kept as written once valid.
fn check_list(
    key: &str,
    raw: Option<Spanned<String>>,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let raw = raw?;
    match check_cpu_list(raw.get_ref(), key) {
        Ok(()) => Some(raw.into_inner()),
        Err(msg) => {
            problems.push(Problem::at(raw.span(), msg));
            None
        }
    }
}
