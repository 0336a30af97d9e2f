//! Endpoint health and the order in which a connection tries a gateway's endpoints.
//!
//! Health is process-wide and lock-free: per endpoint, two atomics (down until, last failure)
//! on the monotonic clock, plus a round-robin counter per gateway. A `fork()` child inherits the
//! marks with the rest of memory, which is what it should know; nothing can be left locked.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::config::Strategy;

/// One endpoint's marks, in microseconds of the monotonic clock (0: never).
#[derive(Default)]
struct EndpointHealth {
    down_until: AtomicU64,
    last_failure: AtomicU64,
}

/// The health of one gateway's endpoints.
pub struct GatewayHealth {
    endpoints: Vec<EndpointHealth>,
    next: AtomicUsize,
}

impl GatewayHealth {
    pub fn new(endpoints: usize) -> GatewayHealth {
        GatewayHealth {
            endpoints: (0..endpoints).map(|_| EndpointHealth::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Marks endpoint `index` failed at `now`: skipped until `now + cooldown`.
    pub fn mark_down(&self, index: usize, now: u64, cooldown_us: u64) {
        let endpoint = &self.endpoints[index];
        endpoint
            .down_until
            .store(now.saturating_add(cooldown_us), Ordering::Relaxed);
        endpoint.last_failure.store(now, Ordering::Relaxed);
    }

    /// Marks endpoint `index` healthy again (it just worked).
    pub fn mark_up(&self, index: usize) {
        self.endpoints[index].down_until.store(0, Ordering::Relaxed);
    }

    pub fn is_down(&self, index: usize, now: u64) -> bool {
        now < self.endpoints[index].down_until.load(Ordering::Relaxed)
    }

    /// The endpoints to try, in order, at most `max_attempts`: the healthy ones in the strategy's
    /// order, then (only if none is healthy, or to fill the attempts) the ones marked down, least
    /// recently failed first. So stale marks never turn into a hard outage.
    /// `key` is the destination (for `hash`), `random` a fresh random number (for `random`).
    pub fn order(
        &self,
        strategy: Strategy,
        max_attempts: usize,
        key: u64,
        random: u64,
        now: u64,
    ) -> Vec<usize> {
        let n = self.endpoints.len();
        if n == 0 {
            return Vec::new();
        }
        let start = match strategy {
            Strategy::Failover => 0,
            Strategy::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n,
            Strategy::Random => (random % n as u64) as usize,
            Strategy::Hash => (key % n as u64) as usize,
        };
        let rotation = (0..n).map(|i| (start + i) % n);
        let mut order: Vec<usize> = rotation
            .clone()
            .filter(|&i| !self.is_down(i, now))
            .collect();
        let mut down: Vec<usize> = rotation.filter(|&i| self.is_down(i, now)).collect();
        down.sort_by_key(|&i| self.endpoints[i].last_failure.load(Ordering::Relaxed));
        order.extend(down);
        order.truncate(max_attempts.max(1));
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_skips_down_endpoints_until_the_cooldown_ends() {
        let h = GatewayHealth::new(3);
        assert_eq!(h.order(Strategy::Failover, 3, 0, 0, 1000), [0, 1, 2]);
        h.mark_down(0, 1000, 500);
        assert_eq!(h.order(Strategy::Failover, 3, 0, 0, 1200), [1, 2, 0]);
        assert_eq!(h.order(Strategy::Failover, 2, 0, 0, 1200), [1, 2]);
        assert_eq!(
            h.order(Strategy::Failover, 3, 0, 0, 1500),
            [0, 1, 2],
            "cool-down over"
        );
    }

    #[test]
    fn all_down_tries_the_least_recently_failed_first() {
        let h = GatewayHealth::new(3);
        h.mark_down(2, 100, 10_000);
        h.mark_down(0, 200, 10_000);
        h.mark_down(1, 300, 10_000);
        assert_eq!(h.order(Strategy::Failover, 3, 0, 0, 400), [2, 0, 1]);
        h.mark_up(1);
        assert_eq!(h.order(Strategy::Failover, 1, 0, 0, 400), [1]);
    }

    #[test]
    fn round_robin_rotates_and_hash_sticks() {
        let h = GatewayHealth::new(3);
        let firsts: Vec<usize> = (0..6)
            .map(|_| h.order(Strategy::RoundRobin, 3, 0, 0, 0)[0])
            .collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        assert_eq!(h.order(Strategy::Hash, 3, 7, 0, 0), [1, 2, 0]);
        assert_eq!(h.order(Strategy::Hash, 3, 7, 99, 0), [1, 2, 0]);
        assert_eq!(h.order(Strategy::Random, 3, 0, 5, 0), [2, 0, 1]);
    }
}
