//! Keys ordered by a deadline each, so that the loop finds the earliest deadline and
//! the keys due by now without looking at every key (health probes: hundreds of
//! units, one of them due every few milliseconds). Pure; every operation is
//! O(log n).

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Deadlines<K> {
    by_time: BTreeSet<(Instant, K)>,
    of: HashMap<K, Instant>,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            by_time: BTreeSet::new(),
            of: HashMap::new(),
        }
    }
}

impl<K: Ord + Hash + Clone> Deadlines<K> {
    /// `key` is due at `at` (instead of whenever it was due before).
    pub fn set(&mut self, key: K, at: Instant) {
        if let Some(old) = self.of.insert(key.clone(), at) {
            if old == at {
                return;
            }
            self.by_time.remove(&(old, key.clone()));
        }
        self.by_time.insert((at, key));
    }

    /// `key` is not due at all any more.
    pub fn remove(&mut self, key: &K) {
        if let Some(old) = self.of.remove(key) {
            self.by_time.remove(&(old, key.clone()));
        }
    }

    /// The earliest deadline.
    pub fn first(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Take out every key due at `now` or before, earliest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.by_time.first()
            && *at <= now
        {
            if let Some((_, key)) = self.by_time.pop_first() {
                self.of.remove(&key);
                due.push(key);
            }
        }
        due
    }

    pub fn len(&self) -> usize {
        self.of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.of.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// One step of a table: an operation, then the expected earliest deadline (in
    /// ms after t0) and the keys taken out by it.
    enum Op {
        Set(&'static str, u64),
        Remove(&'static str),
        TakeDue(u64),
    }

    #[test]
    fn the_earliest_first_and_due_keys_taken_once() {
        use Op::*;
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let table: Vec<(Op, Option<u64>, Vec<&str>)> = vec![
            (Set("a", 30), Some(30), vec![]),
            (Set("b", 10), Some(10), vec![]),
            (Set("c", 20), Some(10), vec![]),
            // Moving a key moves it, it is not added twice.
            (Set("b", 40), Some(20), vec![]),
            (Set("c", 20), Some(20), vec![]),
            (TakeDue(5), Some(20), vec![]),
            (TakeDue(30), Some(40), vec!["c", "a"]),
            (TakeDue(30), Some(40), vec![]),
            (Remove("b"), None, vec![]),
            (Remove("b"), None, vec![]),
            // Equal deadlines: both kept, both taken.
            (Set("x", 50), Some(50), vec![]),
            (Set("y", 50), Some(50), vec![]),
            (TakeDue(50), None, vec!["x", "y"]),
        ];
        let mut d = Deadlines::default();
        for (i, (op, first, taken)) in table.into_iter().enumerate() {
            let got = match op {
                Set(k, at) => {
                    d.set(k, ms(at));
                    vec![]
                }
                Remove(k) => {
                    d.remove(&k);
                    vec![]
                }
                TakeDue(at) => d.take_due(ms(at)),
            };
            assert_eq!(got, taken, "step {i}: taken");
            assert_eq!(d.first(), first.map(ms), "step {i}: first");
            assert_eq!(d.len(), d.by_time.len(), "step {i}: one entry per key");
        }
        assert!(d.is_empty());
    }
}
