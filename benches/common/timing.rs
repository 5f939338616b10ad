//! What the container-start benchmarks share: timing runs, reporting median and
//! p99, and waiting for a started container's exit.

#![allow(dead_code)] // Each benchmark uses what it needs.

use std::time::{Duration, Instant};

use nix::sys::wait::{WaitStatus, waitpid};

/// `runs` timings of `f`, after one warm-up run (page cache, lazy kernel state).
pub fn measure(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    f();
    (0..runs).map(|_| time(&mut f)).collect()
}

pub fn time(f: &mut impl FnMut()) -> Duration {
    let t0 = Instant::now();
    f();
    t0.elapsed()
}

pub fn report(name: &str, samples: &[Duration]) {
    println!(
        "{name:<16} median {:7.3} ms   p99 {:7.3} ms   (n = {})",
        percentile_ms(samples, 0.5),
        percentile_ms(samples, 0.99),
        samples.len()
    );
}

/// The `q` quantile of `samples` (nearest rank), in milliseconds.
pub fn percentile_ms(samples: &[Duration], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort();
    s[((s.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
}

/// Reap children until `pid` has exited with 0 (the helper exits too).
pub fn wait_success(pid: i32) {
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => {
                assert_eq!(code, 0, "container failed");
                return;
            }
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                panic!("container killed by {sig}")
            }
            Ok(_) => continue,
            Err(e) => panic!("waitpid: {e}"),
        }
    }
}
