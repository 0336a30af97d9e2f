//! Top-k tables in fixed memory (Space-Saving): the hosts, processes, gateways, rules and
//! results a report ranks, exact until a table meets more distinct keys than it has counters,
//! approximate after, and able to say by how much.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::rc::Rc;

use super::{bounded, MAX_KEY};

/// Approximate top-k counting in fixed memory: Space-Saving (Metwally, Agrawal, El Abbadi,
/// 2005). With `capacity` counters it is exact until a key arrives when all are taken; that key
/// then takes over the smallest counter and inherits its count, which may overstate the
/// newcomer's by at most that much (kept as `overcount`). Any key seen more often than the
/// smallest counter is guaranteed a counter.
pub(super) struct TopK<D> {
    capacity: usize,
    /// A binary min-heap on `count`, so the counter to take over is always `slots[0]`.
    slots: Vec<Slot<D>>,
    /// Each key's index in `slots`.
    position: HashMap<Rc<str>, usize>,
    takeovers: u64,
}

/// One counter: a key, its count, and what it counts beside.
pub(super) struct Slot<D> {
    pub(super) key: Rc<str>,
    pub(super) count: u64,
    /// How much of `count` may belong to keys this counter held before.
    pub(super) overcount: u64,
    /// Per-key breakdown, counted only since this key got the counter.
    pub(super) detail: D,
}

impl<D: Default> TopK<D> {
    pub(super) fn new(capacity: usize) -> Self {
        TopK {
            capacity,
            slots: Vec::new(),
            position: HashMap::new(),
            takeovers: 0,
        }
    }

    /// Counts one occurrence of `key` (cut to `MAX_KEY` bytes); returns its detail to update.
    pub(super) fn add(&mut self, key: &str) -> &mut D {
        self.add_weighted(key, 1)
    }

    /// Counts `weight` for `key` (bytes, where a table ranks by bytes).
    pub(super) fn add_weighted(&mut self, key: &str, weight: u64) -> &mut D {
        let key = bounded(key, MAX_KEY);
        let index = if let Some(&index) = self.position.get(key) {
            self.slots[index].count = self.slots[index].count.saturating_add(weight);
            self.sift_down(index)
        } else if self.slots.len() < self.capacity {
            let key: Rc<str> = Rc::from(key);
            self.position.insert(Rc::clone(&key), self.slots.len());
            self.slots.push(Slot {
                key,
                count: weight,
                overcount: 0,
                detail: D::default(),
            });
            self.sift_up(self.slots.len() - 1)
        } else {
            self.takeovers += 1;
            let key: Rc<str> = Rc::from(key);
            let smallest = &mut self.slots[0];
            self.position.remove(&smallest.key);
            self.position.insert(Rc::clone(&key), 0);
            *smallest = Slot {
                key,
                count: smallest.count.saturating_add(weight),
                overcount: smallest.count,
                detail: D::default(),
            };
            self.sift_down(0)
        };
        &mut self.slots[index].detail
    }
}

impl<D> TopK<D> {
    /// Whether some key was counted in a taken-over counter, making counts approximate.
    pub(super) fn approximate(&self) -> bool {
        self.takeovers > 0
    }

    /// How many counters the table has: distinct keys past this many make it approximate.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether no key was counted.
    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The number of distinct keys, when known.
    pub(super) fn distinct(&self) -> Option<usize> {
        (!self.approximate()).then_some(self.slots.len())
    }

    /// Counters, largest count first (ties by key, for a stable report).
    pub(super) fn ranked(&self) -> Vec<&Slot<D>> {
        let mut ranked: Vec<&Slot<D>> = self.slots.iter().collect();
        ranked.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        ranked
    }

    fn sift_up(&mut self, mut index: usize) -> usize {
        while index > 0 {
            let parent = (index - 1) / 2;
            if self.slots[parent].count <= self.slots[index].count {
                break;
            }
            self.swap(parent, index);
            index = parent;
        }
        index
    }

    fn sift_down(&mut self, mut index: usize) -> usize {
        loop {
            let left = 2 * index + 1;
            let right = left + 1;
            let Some(left_slot) = self.slots.get(left) else {
                return index;
            };
            let smaller = match self.slots.get(right) {
                Some(right_slot) if right_slot.count < left_slot.count => right,
                _ => left,
            };
            if self.slots[smaller].count >= self.slots[index].count {
                return index;
            }
            self.swap(smaller, index);
            index = smaller;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.slots.swap(a, b);
        for index in [a, b] {
            if let Some(position) = self.position.get_mut(&*self.slots[index].key) {
                *position = index;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_is_exact_until_full_then_keeps_heavy_keys() {
        let mut top: TopK<u64> = TopK::new(4);
        for key in ["a", "b", "a", "c", "a", "b"] {
            *top.add(key) += 1;
        }
        assert!(!top.approximate());
        let ranked: Vec<_> = top
            .ranked()
            .iter()
            .map(|s| (s.key.to_string(), s.count))
            .collect();
        assert_eq!(ranked, [("a".into(), 3), ("b".into(), 2), ("c".into(), 1)]);
        for i in 0..1000 {
            top.add("heavy");
            top.add(&format!("noise{i}"));
        }
        assert!(top.approximate());
        let first = top.ranked()[0];
        assert_eq!(&*first.key, "heavy");
        assert!(first.count >= 1000 && first.count - first.overcount <= 1000);
    }
}
