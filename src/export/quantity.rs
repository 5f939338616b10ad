//! Sizes, CPU shares and durations in the units the targets write.

use std::time::Duration;

use crate::unit::CpuMax;

/// Bytes as a Kubernetes quantity: the largest binary suffix that divides it
/// (`134217728` -> `128Mi`), so limits read as they were written.
pub fn k8s_bytes(bytes: u64) -> String {
    for (shift, suffix) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Bytes for compose (go-units: `m` is MiB); `b` when no suffix divides it.
pub fn compose_bytes(bytes: u64) -> String {
    for (shift, suffix) in [(30, "g"), (20, "m"), (10, "k")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    format!("{bytes}b")
}

/// `cpu.max` as millicores, rounded up so a limit never shrinks (at least 1m).
pub fn millicores(cpu: CpuMax) -> u64 {
    (cpu.quota_us * 1000).div_ceil(cpu.period_us).max(1)
}

/// `cpu.weight` as a CPU request: Kubernetes writes a request of 1 CPU as the
/// kernel's default weight (100), so weight W is W/100 CPU.
pub fn weight_millicores(weight: u32) -> u64 {
    u64::from(weight) * 10
}

/// Whole seconds, rounded up (probes count in seconds), at least `min`.
pub fn seconds(d: Duration, min: i32) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX).max(min)
}

/// A duration as compose writes it (`1m30s`, `200ms`).
pub fn compose_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        for (n, k8s, compose) in [
            (134_217_728, "128Mi", "128m"),
            (1 << 30, "1Gi", "1g"),
            (4096, "4Ki", "4k"),
            (1000, "1000", "1000b"),
            (1_572_864, "1536Ki", "1536k"),
        ] {
            assert_eq!(k8s_bytes(n), k8s, "{n}");
            assert_eq!(compose_bytes(n), compose, "{n}");
        }
    }

    #[test]
    fn cpus() {
        let cpu = |quota_us, period_us| CpuMax {
            quota_us,
            period_us,
        };
        assert_eq!(millicores(cpu(50_000, 100_000)), 500);
        assert_eq!(millicores(cpu(150_000, 100_000)), 1500);
        assert_eq!(millicores(cpu(1_000, 1_000_000)), 1);
        assert_eq!(weight_millicores(100), 1000);
        assert_eq!(weight_millicores(50), 500);
    }

    #[test]
    fn durations() {
        assert_eq!(seconds(Duration::from_millis(200), 1), 1);
        assert_eq!(seconds(Duration::from_millis(1500), 1), 2);
        assert_eq!(seconds(Duration::from_secs(0), 0), 0);
        assert_eq!(seconds(Duration::from_secs(30), 1), 30);
        assert_eq!(compose_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(compose_duration(Duration::from_millis(200)), "200ms");
    }
}
