//! `supctl events`: what happened, streamed to every listener. A broadcast ring
//! of `EVENT_QUEUE` events: sending never waits, and a listener that falls more
//! than that behind is told how many it missed (`dropped`) and carries on. With
//! no listener nothing is computed at all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::broadcast;

use super::event_loop::Daemon;
use crate::control::proto::{Event, EventKind, UnitState};

/// Events kept for a listener that is behind.
pub const EVENT_QUEUE: usize = 1024;

/// A unit as events describe it: its state, sub-state, restarts and health.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    state: UnitState,
    sub_state: String,
    restarts: u32,
    health: Option<String>,
}

pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    /// What each unit looked like at the last comparison (only while listened to).
    seen: HashMap<String, Seen>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(EVENT_QUEUE).0,
            seen: HashMap::new(),
        }
    }
}

impl EventBus {
    pub fn listening(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    fn send(&self, unit: Option<&str>, kind: EventKind) {
        if !self.listening() {
            return;
        }
        let event = Event {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            unit: unit.map(str::to_owned),
            kind,
        };
        // Nobody left to hear it is not an error.
        let _ = self.tx.send(Arc::new(event));
    }
}

impl Daemon {
    /// A new listener: from now on, changes are compared with what it sees now.
    pub(super) fn subscribe_events(&mut self) -> broadcast::Receiver<Arc<Event>> {
        if !self.events.listening() {
            self.events.seen = self.seen_now();
        }
        self.events.tx.subscribe()
    }

    pub(super) fn emit(&self, unit: Option<&str>, kind: EventKind) {
        self.events.send(unit, kind);
    }

    /// After an event that may have changed units: one event per change of state
    /// or health since the last look.
    pub(super) fn emit_changes(&mut self) {
        if !self.events.listening() {
            if !self.events.seen.is_empty() {
                self.events.seen = HashMap::new();
            }
            return;
        }
        let now = self.seen_now();
        for (unit, seen) in &now {
            let before = self.events.seen.get(unit);
            let previous = before.map_or(UnitState::Inactive, |b| b.state);
            if before.is_none_or(|b| (b.state, &b.sub_state) != (seen.state, &seen.sub_state)) {
                let kind = EventKind::State {
                    state: seen.state,
                    sub_state: seen.sub_state.clone(),
                    previous,
                    restarts: seen.restarts,
                };
                self.events.send(Some(unit), kind);
            }
            let health_before = before.and_then(|b| b.health.clone());
            if seen.health.is_some() && seen.health != health_before {
                let kind = EventKind::Health {
                    health: seen.health.clone().unwrap_or_default(),
                    previous: health_before,
                };
                self.events.send(Some(unit), kind);
            }
        }
        self.events.seen = now;
    }

    fn seen_now(&self) -> HashMap<String, Seen> {
        self.fleet
            .slots()
            .iter()
            .map(|(name, slot)| {
                let m = &slot.machine;
                let failed = matches!(m.phase(), crate::supervise::Phase::Failed(_));
                let seen = Seen {
                    state: super::status::unit_state(m.state()),
                    sub_state: m.sub_state(&slot.spec.service),
                    restarts: m.restarts(),
                    health: self
                        .probes
                        .shown(name, failed)
                        .map(|(h, _, _)| super::status::health_word(h).to_string()),
                };
                (name.clone(), seen)
            })
            .collect()
    }
}
