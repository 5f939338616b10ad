//! Benchmark of issue 17 (not a timed test): sup side by side with its peers,
//! on the same generated workload, in one run, every figure also a ratio of
//! sup's to the peer's measured in the same run.
//!
//! 1. Container start to reaped exit of `/bin/true` (pid, mnt, uts, ipc, net,
//!    read-only busybox root): sup's spawn path vs `unshare -fpimnu`, bwrap,
//!    runc (the code of benches/isolation.rs).
//! 2. N long-running services (each a script that writes its name to a fifo,
//!    then execs `sleep`): supervisor start until every service has reported,
//!    for supd (containers, and `namespaces = []`), s6-svscan, runsvdir and
//!    supervisord. Then, on each of them:
//! 3. supervisor-side memory: PSS of the supervisor and every process it keeps
//!    per service (sup-init, s6-supervise, runsv), services excluded;
//! 4. restart: kill -9 of a service's process until its script reports again
//!    (sup with `restart_delay = "0s"`, the issue's zero delay; the peers as they come);
//! 5. idle CPU of those processes (utime + stime) over a quiet period;
//! 6. log throughput: a unit writing lines as fast as it can into supd's log
//!    file vs the same producer piped into `s6-log`, with `supctl status`
//!    latency meanwhile.
//!
//! Run as root: `cargo bench --bench peers`. Missing peers are installed with
//! apt-get. Knobs: SUP_BENCH_STARTS (container starts per tool, 300: with
//! 100, the nearest-rank p99 is the second slowest start, one hiccup of the
//! machine),
//! SUP_BENCH_UNITS (200), SUP_BENCH_RUNS (rounds of part 2, 3),
//! SUP_BENCH_RESTARTS (per round, 5), SUP_BENCH_IDLE_SECS (10),
//! SUP_BENCH_LOG_LINES (1000000).

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::containers::{self, which};
use common::logs;
use common::procs;
use common::supervisors::{self, Kind, Workload};
use common::timing::percentile_ms;

fn env_num(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one supervisor measured over all rounds.
#[derive(Default)]
struct Results {
    start_ms: Vec<f64>,
    pss_kib: Vec<u64>,
    idle_ticks: Vec<u64>,
    restart_ms: Vec<f64>,
    kept: String,
}

fn main() {
    // `cargo test --all-targets` runs this binary without --bench: stay instant.
    if !std::env::args().any(|a| a == "--bench") {
        println!("peers benchmark: run it as root with `cargo bench --bench peers`");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("peers benchmark needs root");
        return;
    }
    let starts = env_num("SUP_BENCH_STARTS", 300);
    let n = env_num("SUP_BENCH_UNITS", 200);
    let rounds = env_num("SUP_BENCH_RUNS", 3);
    let restarts = env_num("SUP_BENCH_RESTARTS", 5).min(n);
    let idle = Duration::from_secs(env_num("SUP_BENCH_IDLE_SECS", 10) as u64);
    install_peers();
    print_machine();

    // Below the target directory: a container's /tmp is its own, so the
    // workload's scripts and fifo must live elsewhere to be seen by all.
    let dir = tempfile::Builder::new()
        .prefix("sup-bench-peers-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir");

    println!("\n## 1. Container start to reaped exit, /bin/true, {starts} starts each");
    let starts = containers::compare(starts, &dir.path().join("containers"));
    start_table(&starts);

    println!("\n## Where the time goes: one cgroup migration after an idle gap");
    println!("| gap before the write | median ms | max ms |");
    println!("|---|---|---|");
    for (gap, samples) in supervisors::migration_cost(&[0, 2, 20, 200]) {
        println!(
            "| {gap} ms | {:.3} | {:.3} |",
            percentile_ms(&samples, 0.5),
            percentile_ms(&samples, 1.0)
        );
    }

    println!(
        "\n## 2-5. {n} services, {rounds} rounds (load {})",
        loadavg()
    );
    let work = Workload::new(dir.path(), n);
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| k.program().is_none_or(which))
        .collect();
    let mut results: BTreeMap<usize, Results> = BTreeMap::new();
    for round in 0..rounds {
        // Round-robin, so a change of load on the shared machine hits all.
        for (k, kind) in kinds.iter().enumerate() {
            let at = dir.path().join(format!("r{round}-{k}"));
            let r = results.entry(k).or_default();
            measure(*kind, &work, &at, round, restarts, idle, r);
            let _ = std::fs::remove_dir_all(&at);
        }
    }
    supervisors::remove_cgroups(&format!("sup-bench-{}", std::process::id()));
    let rows: Vec<(Kind, Results)> = results.into_iter().map(|(k, r)| (kinds[k], r)).collect();
    services_table(&rows, n);

    let lines = env_num("SUP_BENCH_LOG_LINES", 1_000_000);
    println!(
        "\n## 6. Log throughput: {lines} lines of 40 bytes (load {})",
        loadavg()
    );
    println!("| logger | lines/s | sup / logger |");
    println!("|---|---|---|");
    let mut sup_runs = Vec::new();
    let mut s6_runs = Vec::new();
    for round in 0..rounds {
        sup_runs.push(logs::sup(&dir.path().join(format!("log{round}")), lines));
        if which("s6-log") {
            s6_runs.push(logs::s6_log(&dir.path().join(format!("log{round}")), lines));
        }
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let sup_rate = med(sup_runs.iter().map(|r| r.lines_per_sec).collect());
    println!("| supd, log file | {sup_rate:.0} | 1 |");
    if !s6_runs.is_empty() {
        let s6 = med(s6_runs);
        println!("| s6-log | {s6:.0} | {:.2}x |", sup_rate / s6);
    }
    let status: Vec<Duration> = sup_runs.into_iter().flat_map(|r| r.status).collect();
    if !status.is_empty() {
        println!(
            "\n`supctl status` while the unit wrote: median {:.1} ms, p99 {:.1} ms, max {:.1} ms (n = {})",
            percentile_ms(&status, 0.5),
            percentile_ms(&status, 0.99),
            percentile_ms(&status, 1.0),
            status.len()
        );
    }
    supervisors::remove_cgroups(&format!("sup-bench-{}", std::process::id()));
}

/// One round on one supervisor: start, memory, idle CPU, restarts, stop.
fn measure(
    kind: Kind,
    work: &Workload,
    dir: &std::path::Path,
    round: usize,
    restarts: usize,
    idle: Duration,
    r: &mut Results,
) {
    work.clear();
    let (running, t0) = supervisors::launch(kind, work, dir);
    let all = work.wait_all(Duration::from_secs(60));
    let start = ms(all - t0);
    r.start_ms.push(start);

    // Let the start's stragglers (helpers exiting, first log writes) finish.
    std::thread::sleep(Duration::from_secs(1));
    let kept = running.kept();
    let pss: u64 = kept.iter().map(|p| procs::pss_kib(p.pid)).sum();
    r.pss_kib.push(pss);
    r.kept = composition(&kept);

    let cpu = |kept: &[procs::Proc]| -> u64 { kept.iter().map(|p| procs::ticks(p.pid).0).sum() };
    let before = cpu(&kept);
    std::thread::sleep(idle);
    let used = cpu(&kept) - before;
    r.idle_ticks.push(used);

    // A different service each time: each restart is that service's first, and
    // each service has been up for longer than any peer's throttle window.
    let mut samples = Vec::new();
    for s in 0..restarts {
        let i = (round * restarts + s) * 7 % work.n;
        let pid = running.service_pid(i).expect("service running");
        work.clear();
        let t0 = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
        let back = work.wait_for(i, Duration::from_secs(30));
        samples.push(ms(back - t0));
    }
    println!(
        "{:<20} round {round}: start {start:7.1} ms  PSS {pss:6} KiB  idle {used} ticks  restarts {}",
        kind.name(),
        samples
            .iter()
            .map(|s| format!("{s:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    r.restart_ms.extend(samples);
    running.stop();
}

/// "supd 1, sup-init 200": which processes a supervisor keeps.
fn composition(kept: &[procs::Proc]) -> String {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for p in kept {
        *count.entry(p.comm.as_str()).or_default() += 1;
    }
    count
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn start_table(rows: &[(&str, Vec<Duration>)]) {
    let sup = &rows[0].1;
    let (sup_med, sup_p99) = (percentile_ms(sup, 0.5), percentile_ms(sup, 0.99));
    println!(
        "sup's p99 is {:.2}x its median (n = {})\n",
        sup_p99 / sup_med,
        sup.len()
    );
    println!("| tool | median ms | p99 ms | sup/tool median | sup/tool p99 |");
    println!("|---|---|---|---|---|");
    for (name, samples) in rows {
        let (med, p99) = (percentile_ms(samples, 0.5), percentile_ms(samples, 0.99));
        if name.starts_with("sup:") {
            // A part of sup's own start, not a peer.
            println!("| {name} | {med:.2} | {p99:.2} | | |");
            continue;
        }
        println!(
            "| {name} | {med:.2} | {p99:.2} | {:.2}x | {:.2}x |",
            sup_med / med,
            sup_p99 / p99
        );
    }
}

fn services_table(rows: &[(Kind, Results)], n: usize) {
    let med = |v: &[f64]| -> f64 {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let tick_ms = 1000.0 / procs::ticks_per_sec();
    // Each row's figures, then sup's ratios to the peers on each.
    let figures: Vec<(Kind, [f64; 5])> = rows
        .iter()
        .map(|(kind, r)| {
            let pss: Vec<f64> = r.pss_kib.iter().map(|&p| p as f64 / n as f64).collect();
            let idle: Vec<f64> = r.idle_ticks.iter().map(|&t| t as f64 * tick_ms).collect();
            (
                *kind,
                [
                    med(&r.start_ms),
                    med(&pss),
                    med(&r.restart_ms),
                    r.restart_ms.iter().copied().fold(0.0, f64::max),
                    med(&idle),
                ],
            )
        })
        .collect();
    println!(
        "\n| supervisor | start, all {n} ran (ms) | PSS per service (KiB) | restart median (ms) | restart max (ms) | idle CPU (ms) |"
    );
    println!("|---|---|---|---|---|---|");
    for (kind, f) in &figures {
        println!(
            "| {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.0} |",
            kind.name(),
            f[0],
            f[1],
            f[2],
            f[3],
            f[4]
        );
    }
    println!("\nsup's ratio to each peer (below 1: sup is faster / smaller):\n");
    println!("| sup / peer | start | PSS | restart median |");
    println!("|---|---|---|---|");
    let is_sup = |k: &Kind| matches!(k, Kind::SupContainer | Kind::SupPlain);
    for (sup, s) in figures.iter().filter(|(k, _)| is_sup(k)) {
        for (peer, p) in figures.iter().filter(|(k, _)| !is_sup(k)) {
            println!(
                "| {} / {} | {:.2}x | {:.2}x | {:.2}x |",
                sup.name(),
                peer.name(),
                s[0] / p[0],
                s[1] / p[1],
                s[2] / p[2]
            );
        }
    }
    println!("\nprocesses counted for memory and CPU:");
    for (kind, r) in rows {
        println!("- {}: {}", kind.name(), r.kept);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The peers' Debian packages, installed with apt-get when a program is missing.
const PEERS: [(&str, &str); 6] = [
    ("s6-svscan", "s6"),
    ("runsvdir", "runit"),
    ("supervisord", "supervisor"),
    ("bwrap", "bubblewrap"),
    ("runc", "runc"),
    ("busybox", "busybox-static"),
];

fn install_peers() {
    let missing: Vec<&str> = PEERS
        .iter()
        .filter(|(program, _)| !which(program))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return;
    }
    println!("installing {}", missing.join(" "));
    let ok = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("apt-get failed: the peers that are missing are left out");
    }
}

fn print_machine() {
    let sh = |c: &str| {
        Command::new("sh")
            .args(["-c", c])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    println!(
        "machine: {} cores, Linux {}, load {}",
        sh("nproc"),
        sh("uname -r"),
        loadavg()
    );
    let versions: Vec<String> = PEERS
        .iter()
        .map(|(_, pkg)| {
            format!(
                "{pkg} {}",
                sh(&format!("dpkg-query -W -f='${{Version}}' {pkg}"))
            )
        })
        .collect();
    println!("peers: {}", versions.join(", "));
}
