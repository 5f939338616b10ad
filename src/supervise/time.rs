//! The time a transition sees, with arithmetic that saturates instead of panicking:
//! a unit may ask for any delay its file allows, and supd (perhaps PID 1) must never
//! die computing a deadline.

use std::time::{Duration, Instant, SystemTime};

/// Stand-in for "never" when a deadline would not fit the clock (about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// The current time, read once per event so a transition sees one consistent instant.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// For deadlines and durations (immune to clock changes).
    pub mono: Instant,
    /// For what users read (`since`, `next start`).
    pub wall: SystemTime,
}

impl Now {
    pub fn read() -> Self {
        Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// The same moment shifted by `d`, on both clocks.
    pub fn plus(self, d: Duration) -> Self {
        Now {
            mono: self.mono_after(d),
            wall: self.wall_after(d),
        }
    }

    /// `mono + d`, saturating at a far-future instant.
    pub fn mono_after(self, d: Duration) -> Instant {
        add_saturating(self.mono, d, Instant::checked_add)
    }

    /// `wall + d`, saturating at a far-future time.
    pub fn wall_after(self, d: Duration) -> SystemTime {
        add_saturating(self.wall, d, SystemTime::checked_add)
    }
}

fn add_saturating<T: Copy>(t: T, d: Duration, add: impl Fn(&T, Duration) -> Option<T>) -> T {
    add(&t, d).or_else(|| add(&t, FAR_FUTURE)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_delays_saturate_instead_of_panicking() {
        let now = Now::read();
        let later = now.plus(Duration::MAX);
        assert!(later.mono > now.mono);
        assert!(later.wall > now.wall);
        assert_eq!(
            now.plus(Duration::from_secs(1)).mono,
            now.mono + Duration::from_secs(1)
        );
    }
}
