//! A unit's health check over time, as a pure tracker: when the next probe is due,
//! when a running probe times out, and what a result means (Docker's states:
//! starting, healthy, unhealthy; failures during `start_period` do not count).
//! Probes never overlap: the next is scheduled `interval` after one ends, put off
//! to the next tick (see [`tick`]).

use std::time::{Duration, Instant};

use super::time::Now;
use crate::unit::HealthSpec;

/// Output kept of the last probe (Docker keeps 4096 bytes too).
pub const OUTPUT_KEPT: usize = 4096;

/// How long after a probe's timeout supd waits for its helper to answer: the
/// helper kills the probe (and what it started) at the timeout itself and reports
/// it; a helper silent beyond this is killed by supd.
pub const HELPER_GRACE: Duration = Duration::from_secs(1);

/// The health a unit shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No healthy probe yet.
    Starting,
    Healthy,
    Unhealthy,
}

/// What a probe result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Unchanged,
    /// The first healthy probe of this run (a `ready_on_healthy` unit is ready).
    FirstHealthy,
    /// Healthy again after being unhealthy.
    Recovered,
    /// `retries` failures in a row.
    BecameUnhealthy,
}

/// The tick a probe's next run is put off to: the largest power-of-two number of
/// milliseconds not above a tenth of `interval`, at most 1024 ms (64 ms for 1 s);
/// none below a 10 ms interval. Ticks count from one origin shared by every unit,
/// and powers of two divide each other, so probes due at about the same time start
/// together, also across units with different intervals: one wake-up of supd and
/// one batch of starts instead of one each, for at most a tenth of the interval
/// of delay.
pub fn tick(interval: Duration) -> Duration {
    let tenth = interval.as_millis() / 10;
    if tenth == 0 {
        return Duration::ZERO;
    }
    let power = 1u64 << (u128::BITS - 1 - tenth.leading_zeros()).min(10);
    Duration::from_millis(power)
}

/// `t` put off to the next tick counted from `origin` (itself if on one).
fn on_tick(t: Instant, origin: Instant, tick: Duration) -> Instant {
    let (since, tick) = (
        t.saturating_duration_since(origin).as_nanos(),
        tick.as_nanos(),
    );
    if tick == 0 {
        return t;
    }
    let late = (tick - since % tick) % tick;
    u64::try_from(late)
        .ok()
        .and_then(|ns| t.checked_add(Duration::from_nanos(ns)))
        .unwrap_or(t)
}

#[derive(Debug, Clone)]
pub struct HealthTracker {
    interval: Duration,
    /// The interval until the first healthy probe, and its tick.
    start_interval: Duration,
    start_tick: Duration,
    /// Where ticks are counted from, and the tick of this interval.
    origin: Instant,
    tick: Duration,
    timeout: Duration,
    retries: u32,
    /// Failures before this instant do not count.
    grace_until: Instant,
    next_probe: Instant,
    /// A probe runs and must end by then.
    running_until: Option<Instant>,
    health: Health,
    failures: u32,
    ever_healthy: bool,
    last_output: String,
}

impl HealthTracker {
    /// A tracker for a process that started at `now`: the first probe is due at
    /// once (a `ready_on_healthy` unit should not wait a whole interval). Later
    /// probes start on ticks counted from `origin`.
    pub fn new(spec: &HealthSpec, now: Now, origin: Instant) -> Self {
        HealthTracker {
            interval: spec.interval,
            start_interval: spec.start_interval,
            start_tick: tick(spec.start_interval),
            origin,
            tick: tick(spec.interval),
            timeout: spec.timeout,
            retries: spec.retries,
            grace_until: now.mono_after(spec.start_period),
            next_probe: now.mono,
            running_until: None,
            health: Health::Starting,
            failures: 0,
            ever_healthy: false,
            last_output: String::new(),
        }
    }

    pub fn health(&self) -> Health {
        self.health
    }
    pub fn failures(&self) -> u32 {
        self.failures
    }
    pub fn last_output(&self) -> &str {
        &self.last_output
    }

    /// When something is due: the next probe, or the running probe's timeout.
    pub fn deadline(&self) -> Instant {
        self.running_until.unwrap_or(self.next_probe)
    }

    /// Whether a probe should start now.
    pub fn probe_due(&self, now: Now) -> bool {
        self.running_until.is_none() && self.next_probe <= now.mono
    }

    /// Whether the running probe's helper has not answered within its timeout
    /// and `HELPER_GRACE` (it is to be killed and the probe counted as failed).
    pub fn probe_overdue(&self, now: Now) -> bool {
        self.running_until.is_some_and(|t| t <= now.mono)
    }

    /// A probe started at `now`.
    pub fn started(&mut self, now: Now) {
        self.running_until = Some(now.mono_after(self.timeout.saturating_add(HELPER_GRACE)));
    }

    /// The running probe ended (`healthy` or not) at `now`, with its output.
    pub fn finished(&mut self, healthy: bool, output: &str, now: Now) -> Verdict {
        self.running_until = None;
        let (interval, tick) = if healthy || self.ever_healthy {
            (self.interval, self.tick)
        } else {
            (self.start_interval, self.start_tick)
        };
        self.next_probe = on_tick(now.mono_after(interval), self.origin, tick);
        self.last_output = keep_tail(output);
        if healthy {
            self.failures = 0;
            let before = self.health;
            self.health = Health::Healthy;
            let first = !std::mem::replace(&mut self.ever_healthy, true);
            return match before {
                _ if first => Verdict::FirstHealthy,
                Health::Unhealthy => Verdict::Recovered,
                Health::Starting | Health::Healthy => Verdict::Unchanged,
            };
        }
        // Docker: while still starting, failures in the start period do not count.
        if self.health == Health::Starting && now.mono < self.grace_until {
            return Verdict::Unchanged;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.retries && self.health != Health::Unhealthy {
            self.health = Health::Unhealthy;
            return Verdict::BecameUnhealthy;
        }
        Verdict::Unchanged
    }
}

/// The last `OUTPUT_KEPT` bytes of a probe's output, cut at a character boundary.
fn keep_tail(output: &str) -> String {
    let mut start = output.len().saturating_sub(OUTPUT_KEPT);
    while !output.is_char_boundary(start) {
        start += 1;
    }
    output[start..].trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::{OnUnhealthy, Probe};

    fn spec(retries: u32, start_period: u64) -> HealthSpec {
        HealthSpec {
            probe: Probe::Exec(vec!["true".into()]),
            interval: Duration::from_secs(10),
            start_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            retries,
            start_period: Duration::from_secs(start_period),
            on_unhealthy: OnUnhealthy::Restart,
            ready_on_healthy: true,
        }
    }

    #[test]
    fn first_probe_at_once_then_one_at_a_time() {
        let t0 = Now::read();
        let mut h = HealthTracker::new(&spec(3, 0), t0, t0.mono);
        assert!(h.probe_due(t0), "first probe at once");
        h.started(t0);
        assert!(
            !h.probe_due(t0.plus(Duration::from_secs(60))),
            "never two at once"
        );
        let overdue = Duration::from_secs(2) + HELPER_GRACE;
        assert_eq!(h.deadline(), t0.mono + overdue);
        assert!(!h.probe_overdue(t0.plus(Duration::from_secs(2))));
        assert!(h.probe_overdue(t0.plus(overdue)));
        let t1 = t0.plus(Duration::from_secs(1));
        assert_eq!(h.finished(true, "ok\n", t1), Verdict::FirstHealthy);
        assert_eq!(h.health(), Health::Healthy);
        assert_eq!(h.last_output(), "ok");
        // 11 s after the origin, put off to the next 512 ms tick: 11.264 s.
        assert_eq!(
            h.deadline(),
            t0.mono + Duration::from_millis(22 * 512),
            "interval after the end, on a tick"
        );
        assert!(!h.probe_due(t1.plus(Duration::from_secs(10))));
        assert!(h.probe_due(t0.plus(Duration::from_millis(22 * 512))));
    }

    #[test]
    fn ticks_are_powers_of_two_ms_up_to_a_tenth_of_the_interval() {
        let table = [
            (5, 0),
            (9, 0),
            (10, 1),
            (100, 8),
            (1_000, 64),
            (2_000, 128),
            (10_000, 512),
            (30_000, 1024),
            (86_400_000, 1024),
        ];
        for (interval, want) in table {
            assert_eq!(
                tick(Duration::from_millis(interval)),
                Duration::from_millis(want),
                "interval {interval} ms"
            );
        }
        assert_eq!(tick(Duration::MAX), Duration::from_millis(1024));
    }

    #[test]
    fn times_are_put_off_to_the_next_tick_of_the_origin() {
        let origin = Instant::now();
        let ms = |n: u64| origin + Duration::from_millis(n);
        let t = Duration::from_millis(64);
        let table = [(0, 0), (1, 64), (63, 64), (64, 64), (65, 128), (1000, 1024)];
        for (at, want) in table {
            assert_eq!(on_tick(ms(at), origin, t), ms(want), "at {at} ms");
        }
        assert_eq!(on_tick(ms(7), origin, Duration::ZERO), ms(7), "no tick");
        // Before the origin (cannot happen: the origin is taken first) it stays.
        if let Some(b) = origin.checked_sub(Duration::from_millis(5)) {
            assert_eq!(on_tick(b, origin, t), b);
        }
    }

    #[test]
    fn retries_failures_in_a_row_make_it_unhealthy_and_a_success_recovers() {
        let t0 = Now::read();
        let mut h = HealthTracker::new(&spec(3, 0), t0, t0.mono);
        let mut t = t0;
        let mut verdicts = Vec::new();
        for healthy in [true, false, false, true, false, false, false, false, true] {
            h.started(t);
            t = t.plus(Duration::from_secs(1));
            verdicts.push(h.finished(healthy, "", t));
        }
        use Verdict::*;
        assert_eq!(
            verdicts,
            vec![
                FirstHealthy,
                Unchanged,
                Unchanged,
                Unchanged,
                Unchanged,
                Unchanged,
                BecameUnhealthy,
                Unchanged,
                Recovered
            ]
        );
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_while_starting() {
        let t0 = Now::read();
        let mut h = HealthTracker::new(&spec(1, 30), t0, t0.mono);
        h.started(t0);
        assert_eq!(
            h.finished(false, "", t0.plus(Duration::from_secs(5))),
            Verdict::Unchanged
        );
        assert_eq!((h.health(), h.failures()), (Health::Starting, 0));
        h.started(t0.plus(Duration::from_secs(31)));
        let late = t0.plus(Duration::from_secs(32));
        assert_eq!(h.finished(false, "refused", late), Verdict::BecameUnhealthy);
        assert_eq!(h.last_output(), "refused");
    }

    #[test]
    fn output_is_bounded() {
        let t0 = Now::read();
        let mut h = HealthTracker::new(&spec(3, 0), t0, t0.mono);
        h.started(t0);
        let big = "é".repeat(OUTPUT_KEPT);
        h.finished(true, &big, t0);
        assert!(h.last_output().len() <= OUTPUT_KEPT);
    }

    #[test]
    fn start_interval_until_the_first_healthy_probe() {
        let t0 = Now::read();
        // interval 10 s, start_interval 1 s (ticks of 100 ms and 1 s).
        let mut h = HealthTracker::new(&spec(3, 0), t0, t0.mono);
        h.started(t0);
        h.finished(false, "not yet", t0);
        let soon = h.deadline().saturating_duration_since(t0.mono);
        assert!(soon <= Duration::from_millis(1100), "{soon:?}");
        let t1 = t0.plus(soon);
        h.started(t1);
        h.finished(true, "ok", t1);
        let later = h.deadline().saturating_duration_since(t1.mono);
        assert!(later >= Duration::from_secs(10), "{later:?}");
        h.started(t1.plus(later));
        h.finished(false, "sick", t1.plus(later));
        let after = h.deadline().saturating_duration_since(t1.plus(later).mono);
        assert!(
            after >= Duration::from_secs(10),
            "once healthy, interval: {after:?}"
        );
    }
}
