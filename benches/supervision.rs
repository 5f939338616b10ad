//! Benchmark of issue 2 (not a timed test): start N trivial services, measure
//!
//! - time from spawning supd until every service has been started (from supd's own
//!   "started" log lines, so the measurement does not poll);
//! - supd's resident memory with N services running, and the same with 0 units;
//! - CPU time supd uses while idle for a period with N services.
//!
//! Run: `cargo bench --bench supervision` (as root or not). Options via env:
//! SUP_BENCH_UNITS (default 200), SUP_BENCH_IDLE_SECS (default 30),
//! SUP_BENCH_RUNS (default 5).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;
use common::SUPD;
use common::procs::{rss_kib, ticks_per_sec};

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    common::procs::ticks(pid).0
}

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
    _dir: tempfile::TempDir,
}

/// Start supd on `n` units of `sleep 1000` and return once `n` were started.
fn start(n: usize) -> (Run, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let units = dir.path().join("units");
    std::fs::create_dir(&units).expect("mkdir");
    for i in 0..n {
        std::fs::write(
            units.join(format!("s{i:04}.toml")),
            "[service]\nexec = [\"/bin/sleep\", \"100000\"]\n",
        )
        .expect("write unit");
    }
    let t0 = Instant::now();
    let mut child = Command::new(SUPD)
        .arg("--units")
        .arg(&units)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn supd");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut started = 0;
    let mut ready = false;
    let mut elapsed = Duration::ZERO;
    while started < n || !ready {
        let line = lines.next().expect("supd log ended").expect("read");
        if line.contains(" started unit=") {
            started += 1;
        }
        if line.contains("supd started") {
            ready = true;
        }
        elapsed = t0.elapsed();
    }
    (
        Run {
            child,
            lines,
            _dir: dir,
        },
        elapsed,
    )
}

fn stop(mut run: Run) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    // Drain the log so supd never blocks on a full pipe while stopping.
    for _ in run.lines.by_ref() {}
    let status = run.child.wait().expect("wait supd");
    assert!(status.success(), "supd exited with {status}");
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary too,
    // without it, and must not spend a minute here.
    if !std::env::args().any(|a| a == "--bench") {
        println!("supervision benchmark: run it with `cargo bench --bench supervision`");
        return;
    }
    let n = env_num("SUP_BENCH_UNITS", 200) as usize;
    let idle = env_num("SUP_BENCH_IDLE_SECS", 30);
    let runs = env_num("SUP_BENCH_RUNS", 5);
    let ticks_per_sec = ticks_per_sec();
    assert!(Path::new("/bin/sleep").exists());

    let (empty, _) = start(0);
    let base_rss = rss_kib(empty.child.id());
    stop(empty);

    let mut times = Vec::new();
    for _ in 0..runs {
        let (run, t) = start(n);
        times.push(t);
        stop(run);
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "start {n} services: median {:.1} ms, min {:.1} ms, max {:.1} ms over {runs} runs",
        ms(median),
        ms(times[0]),
        ms(times[times.len() - 1])
    );

    let (run, _) = start(n);
    let pid = run.child.id();
    let rss = rss_kib(pid);
    println!(
        "supd RSS: {base_rss} KiB with 0 units, {rss} KiB with {n} running ({:.1} KiB per unit)",
        (rss.saturating_sub(base_rss)) as f64 / n as f64
    );
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(idle));
    let used = cpu_ticks(pid) - before;
    println!(
        "supd CPU while idle for {idle} s with {n} services: {:.0} ms",
        used as f64 * 1000.0 / ticks_per_sec
    );
    stop(run);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
