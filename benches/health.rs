//! Benchmark of issue 12 (not a timed test): what health checks cost supd. N
//! units (200) each run `sleep` with an exec probe (`/bin/true`) every second,
//! inside its container; once every unit has had its first healthy probe, supd's
//! own CPU time (utime + stime, all its threads) is read over a period of steady
//! probing, and the CPU of the units' cgroups separately (the probe helpers, which
//! stay in their unit's cgroup and fork one `/bin/true` per probe, and the idle
//! `sleep`s). The same supd with the same units but no `[health]` is measured for
//! comparison.
//!
//! Run as root: `cargo bench --bench health` (SUP_BENCH_UNITS=200,
//! SUP_BENCH_SECS=30).

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Supd;

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn units(n: usize, probe: &str) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let text = format!("[service]\nexec = [\"/bin/sleep\", \"100000\"]\n{probe}");
            (format!("h{i:04}"), text)
        })
        .collect()
}

/// supd's own CPU and its units' (their cgroups; or supd's reaped children where
/// there is no cgroup accounting) over `secs` seconds of steady state, as percent
/// of one core.
fn measure(n: usize, secs: u64, probe: &str, ready_line: &str) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut supd = Supd::launch(dir.path(), &units(n, probe));
    for _ in 0..n {
        supd.wait_for(ready_line);
    }
    let ticks_per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let ((own0, kids0), units0, t0) = (supd.ticks(), common::units_cpu_ns(), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let ((own1, kids1), units1, wall) = (supd.ticks(), common::units_cpu_ns(), t0.elapsed());
    let percent = |ticks: u64| ticks as f64 / ticks_per_sec / wall.as_secs_f64() * 100.0;
    let units = match (units0, units1) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e9 / wall.as_secs_f64() * 100.0,
        _ => percent(kids1 - kids0),
    };
    (percent(own1 - own0), units)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("health benchmark: run it as root with `cargo bench --bench health`");
        return;
    }
    let n = env_num("SUP_BENCH_UNITS", 200) as usize;
    let secs = env_num("SUP_BENCH_SECS", 30);
    let probe = "[health]\nexec = [\"/bin/true\"]\ninterval = \"1s\"\n";
    let (own, kids) = measure(n, secs, probe, "healthy unit=");
    println!(
        "{n} units probed every 1 s: supd {own:.2}% of one core; the units' processes (probes included) {kids:.1}% (over {secs} s)"
    );
    let (own, kids) = measure(n, secs, "", " started unit=");
    println!(
        "{n} units without [health]: supd {own:.2}% of one core; the units' processes {kids:.1}%"
    );
}
