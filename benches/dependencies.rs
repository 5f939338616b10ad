//! Benchmark of issue 10 point 4 (not a timed test): the cost of settling the
//! fleet's dependencies, on the pure `Fleet` (no processes, no root).
//!
//! - `wide`: N units, each with `after` on the K units before it (lists within
//!   the 1024 cap). Times: the reload that loads them, bringing them up one by
//!   one (every spawn confirmed and ready, as supd does), a shutdown, and
//!   every exit.
//! - `gate`: the same units, each also requiring `gate`, which fails to spawn:
//!   every unit ends `failed/dependency` (the shape of the fault test).
//! - `chain`: a chain of M units, each after the previous one, brought up.
//!
//! Run: `cargo bench --bench dependencies`. Options via env: SUP_BENCH_UNITS
//! (default 2000), SUP_BENCH_EDGES (default 1000), SUP_BENCH_CHAIN (3000).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sup::supervise::{Action, ExitStatus, Fleet, Now, UnitAction};
use sup::unit::{Loaded, Unit};

fn env_num(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn names(range: impl Iterator<Item = usize>) -> String {
    let list: Vec<String> = range.map(|i| format!("\"u{i:04}\"")).collect();
    format!("[{}]", list.join(", "))
}

fn parse(name: &str, text: &str) -> Unit {
    let path = PathBuf::from(format!("/u/{name}.toml"));
    sup::unit::parse_unit(name, &path, text).expect("valid bench unit")
}

fn loaded(units: Vec<Unit>) -> Loaded {
    Loaded {
        units: units.into_iter().map(|u| (u.name.clone(), u)).collect(),
        ..Loaded::default()
    }
}

fn wide(n: usize, k: usize, requires_gate: bool) -> Loaded {
    let service = "[service]\nexec = [\"/bin/sleep\", \"1000\"]\n";
    let mut units: Vec<Unit> = (0..n)
        .map(|i| {
            let after = names(i.saturating_sub(k)..i);
            let requires = if requires_gate { "[\"gate\"]" } else { "[]" };
            let text = format!("[unit]\nafter = {after}\nrequires = {requires}\n{service}");
            parse(&format!("u{i:04}"), &text)
        })
        .collect();
    if requires_gate {
        units.push(parse(
            "gate",
            "[service]\nexec = [\"/nonexistent\"]\nrestart = \"no\"\n",
        ));
    }
    loaded(units)
}

fn chain(m: usize) -> Loaded {
    let units = (0..m)
        .map(|i| {
            let after = if i == 0 {
                "[]".to_string()
            } else {
                names(i - 1..i)
            };
            parse(
                &format!("u{i:04}"),
                &format!("[unit]\nafter = {after}\n[service]\nexec = [\"/bin/true\"]\n"),
            )
        })
        .collect();
    loaded(units)
}

/// Confirm every spawn (and readiness) until none is asked for; the time spent
/// inside the fleet only.
fn bring_up(
    fleet: &mut Fleet,
    first: Vec<UnitAction>,
    now: Now,
) -> (Duration, BTreeMap<String, i32>) {
    let mut pids = BTreeMap::new();
    let mut pending = first;
    let mut took = Duration::ZERO;
    while !pending.is_empty() {
        let mut next = Vec::new();
        for a in &pending {
            if let Action::Spawn { attempt } = a.action {
                let pid = 1000 + pids.len() as i32;
                pids.insert(a.unit.clone(), pid);
                let t = Instant::now();
                next.extend(fleet.on_spawned(&a.unit, attempt, pid, now));
                next.extend(fleet.on_ready(&a.unit, now));
                took += t.elapsed();
            }
        }
        pending = next;
    }
    (took, pids)
}

/// Shut down: every signalled unit exits at once; the time inside the fleet.
fn shut_down(fleet: &mut Fleet, pids: &BTreeMap<String, i32>, now: Now) -> Duration {
    let t = Instant::now();
    let mut pending = fleet.stop_all(now);
    let mut took = t.elapsed();
    while !pending.is_empty() {
        let mut next = Vec::new();
        for a in &pending {
            if let Action::StopSignal { .. } = a.action {
                let attempt = fleet.get(&a.unit).map_or(0, |s| s.machine.attempt());
                let t = Instant::now();
                next.extend(fleet.on_exit(
                    &a.unit,
                    attempt,
                    pids[&a.unit],
                    ExitStatus::Signal(15),
                    false,
                    now,
                ));
                took += t.elapsed();
            }
        }
        pending = next;
    }
    took
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let n = env_num("SUP_BENCH_UNITS", 2000);
    let k = env_num("SUP_BENCH_EDGES", 1000);
    let m = env_num("SUP_BENCH_CHAIN", 3000);
    let now = Now::read();

    let units = wide(n, k, false);
    let mut fleet = Fleet::default();
    let t = Instant::now();
    let (_, first) = fleet.apply_reload(&units, now);
    let reload = t.elapsed();
    let (up, pids) = bring_up(&mut fleet, first, now);
    assert_eq!(pids.len(), n, "every unit came up");
    let down = shut_down(&mut fleet, &pids, now);
    assert!(fleet.all_settled_down(), "every unit went down");
    let t = Instant::now();
    let (_, again) = fleet.apply_reload(&units, now);
    let unchanged = t.elapsed();
    assert!(again.is_empty(), "an unchanged reload does nothing");
    println!(
        "wide  {n} units x {k} after: reload {:8.1} ms, bring-up {:8.1} ms, shutdown {:8.1} ms, unchanged reload {:8.1} ms",
        ms(reload),
        ms(up),
        ms(down),
        ms(unchanged)
    );

    let units = wide(n, k, true);
    let mut fleet = Fleet::default();
    let t = Instant::now();
    let (_, first) = fleet.apply_reload(&units, now);
    let reload = t.elapsed();
    let t = Instant::now();
    let gate = fleet.get("gate").map_or(0, |s| s.machine.attempt());
    assert!(first.iter().any(|a| a.unit == "gate"), "gate is spawned");
    fleet.on_spawn_failed("gate", gate, false, now);
    let failed = t.elapsed();
    let all_failed = fleet
        .slots()
        .values()
        .all(|s| s.machine.state() == sup::supervise::State::Failed);
    assert!(all_failed, "every unit failed with its requirement");
    println!(
        "gate  {n} units x {k} after + requires gate: reload {:8.1} ms, gate fails -> all failed {:8.1} ms",
        ms(reload),
        ms(failed)
    );

    let units = chain(m);
    let mut fleet = Fleet::default();
    let t = Instant::now();
    let (_, first) = fleet.apply_reload(&units, now);
    let reload = t.elapsed();
    let (up, pids) = bring_up(&mut fleet, first, now);
    assert_eq!(pids.len(), m);
    let down = shut_down(&mut fleet, &pids, now);
    println!(
        "chain {m} units: reload {:8.1} ms, bring-up {:8.1} ms, shutdown {:8.1} ms",
        ms(reload),
        ms(up),
        ms(down)
    );
}
