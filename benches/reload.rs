//! Benchmark of issue 5 (not a timed test):
//!
//! - latency from the write of a changed unit file to the new service running
//!   (supd's "started" log line for the unit), with 1 and with 500 loaded units,
//!   through the directory watcher (its 150 ms debounce included);
//! - supd's CPU time during a reload of 500 unchanged units (every file rewritten
//!   with the same bytes), from the on-CPU nanoseconds of all its threads.
//!
//! Run as root: `cargo bench --bench reload` (SUP_BENCH_RUNS=10 by default).

use std::path::Path;
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;

use common::Supd;

fn unit(arg: u64) -> String {
    format!("[service]\nexec = [\"/bin/sleep\", \"{arg}\"]\n")
}

fn start(dir: &Path, n: usize) -> Supd {
    let units: Vec<(String, String)> = (0..n).map(|i| (format!("u{i:04}"), unit(100000))).collect();
    let mut supd = Supd::launch(dir, &units);
    for _ in 0..n {
        supd.wait_for(" started unit=");
    }
    supd
}

fn latency(n: usize, runs: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut supd = start(dir.path(), n);
    let file = dir.path().join("units/u0000.toml");
    let mut samples = Vec::new();
    for run in 0..runs {
        let t0 = Instant::now();
        std::fs::write(&file, unit(200000 + run)).expect("edit");
        supd.wait_for(" started unit=u0000");
        samples.push(t0.elapsed());
        std::thread::sleep(Duration::from_millis(300)); // let the next edit be a new burst
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "write -> running with {n:>3} units: median {:6.1} ms, min {:6.1}, max {:6.1} (n = {runs}; includes the 150 ms debounce)",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
}

fn unchanged_reload_cpu(n: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut supd = start(dir.path(), n);
    std::thread::sleep(Duration::from_millis(500));
    let before = supd.cpu_ns();
    for i in 0..n {
        std::fs::write(dir.path().join(format!("units/u{i:04}.toml")), unit(100000))
            .expect("rewrite");
    }
    supd.wait_for(&format!("unchanged={n}"));
    let used = supd.cpu_ns() - before;
    println!(
        "supd CPU for a reload of {n} unchanged units (all files rewritten): {:.1} ms",
        used as f64 / 1e6
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("reload benchmark: run it as root with `cargo bench --bench reload`");
        return;
    }
    let runs = std::env::var("SUP_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    latency(1, runs);
    latency(500, runs);
    unchanged_reload_cpu(500);
}
