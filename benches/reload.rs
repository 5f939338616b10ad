//! Benchmark of issue 5 (not a timed test):
//!
//! - latency from the write of a changed unit file to the new service running
//!   (supd's "started" log line for the unit), with 1 and with 500 loaded units,
//!   through the directory watcher (its 150 ms debounce included);
//! - supd's CPU time during a reload of 500 unchanged units (every file rewritten
//!   with the same bytes), from the on-CPU nanoseconds of all its threads.
//!
//! Run as root: `cargo bench --bench reload` (SUP_BENCH_RUNS=10 by default).

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

const SUPD: &str = env!("CARGO_BIN_EXE_supd");

struct Supd {
    child: Child,
    lines: Lines<BufReader<ChildStderr>>,
}

impl Supd {
    /// Read supd's log until a line contains `needle`.
    fn wait_for(&mut self, needle: &str) {
        for line in self.lines.by_ref() {
            if line.expect("log").contains(needle) {
                return;
            }
        }
        panic!("supd exited before logging {needle:?}");
    }

    fn cpu_ns(&self) -> u64 {
        let mut total = 0;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .expect("tasks")
            .flatten()
        {
            if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        total
    }
}

impl Drop for Supd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        for _ in self.lines.by_ref() {}
        let _ = self.child.wait();
    }
}

fn unit(arg: u64) -> String {
    format!("[service]\nexec = [\"/bin/sleep\", \"{arg}\"]\n")
}

fn start(dir: &Path, n: usize) -> Supd {
    let units = dir.join("units");
    std::fs::create_dir_all(&units).expect("mkdir");
    for i in 0..n {
        std::fs::write(units.join(format!("u{i:04}.toml")), unit(100000)).expect("write");
    }
    let mut child = Command::new(SUPD)
        .arg("--units")
        .arg(&units)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--cgroup-root")
        .arg(format!("sup-bench-{}", std::process::id()))
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("supd");
    let lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut supd = Supd { child, lines };
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
