//! Endpoint health and the order in which a connection tries a gateway's endpoints.
//!
//! Health is kept per endpoint *address* (fixed endpoints and those SRV discovery finds alike),
//! process-wide and lock-free: a small fixed table per gateway whose slots hold three atomics
//! (which address, down until, last failure, on the monotonic clock), plus a round-robin counter.
//! A `fork()` child inherits the marks with the rest of memory, which is what it should know;
//! nothing can be left locked. If the table is full, further addresses simply count as healthy.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::config::Strategy;
use crate::resolver::names::hash_bytes;

/// Addresses whose health one gateway remembers.
const SLOTS: usize = 64;

#[derive(Default)]
struct Slot {
    /// A hash of the address (never 0 once taken).
    key: AtomicU64,
    down_until: AtomicU64,
    last_failure: AtomicU64,
}

/// The health of one gateway's endpoints.
pub struct GatewayHealth {
    slots: Vec<Slot>,
    next: AtomicUsize,
}

impl Default for GatewayHealth {
    fn default() -> Self {
        GatewayHealth {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }
}

fn key_of(addr: &SocketAddr) -> u64 {
    let canonical = crate::net::canonical(*addr);
    hash_bytes(canonical.to_string().as_bytes()) | 1
}

impl GatewayHealth {
    /// The slot of `addr`; with `claim`, takes a free one if it has none.
    fn slot(&self, addr: &SocketAddr, claim: bool) -> Option<&Slot> {
        let key = key_of(addr);
        let start = (key % SLOTS as u64) as usize;
        for probe in 0..SLOTS {
            let slot = &self.slots[(start + probe) % SLOTS];
            match slot.key.load(Ordering::Acquire) {
                k if k == key => return Some(slot),
                0 if claim => {
                    match slot
                        .key
                        .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Ok(_) => return Some(slot),
                        Err(k) if k == key => return Some(slot),
                        Err(_) => continue,
                    }
                }
                0 => return None,
                _ => continue,
            }
        }
        None
    }

    /// Marks `addr` failed at `now`: skipped until `now + cooldown`.
    pub fn mark_down(&self, addr: &SocketAddr, now: u64, cooldown_us: u64) {
        if let Some(slot) = self.slot(addr, true) {
            slot.down_until
                .store(now.saturating_add(cooldown_us), Ordering::Relaxed);
            slot.last_failure.store(now, Ordering::Relaxed);
        }
    }

    /// Marks `addr` healthy again (it just worked).
    pub fn mark_up(&self, addr: &SocketAddr) {
        if let Some(slot) = self.slot(addr, false) {
            slot.down_until.store(0, Ordering::Relaxed);
        }
    }

    pub fn is_down(&self, addr: &SocketAddr, now: u64) -> bool {
        self.slot(addr, false)
            .is_some_and(|slot| now < slot.down_until.load(Ordering::Relaxed))
    }

    fn last_failure(&self, addr: &SocketAddr) -> u64 {
        self.slot(addr, false)
            .map_or(0, |slot| slot.last_failure.load(Ordering::Relaxed))
    }

    /// The candidates to try, as indexes, at most `max_attempts`: the healthy ones in the
    /// strategy's order, then the ones marked down, least recently failed first (so stale marks
    /// never turn into a hard outage). `candidates` come in configured order (SRV targets in RFC
    /// 2782 order); `key` is the destination (for `hash`), `random` a fresh random number.
    pub fn order(
        &self,
        strategy: Strategy,
        candidates: &[SocketAddr],
        max_attempts: usize,
        key: u64,
        random: u64,
        now: u64,
    ) -> Vec<usize> {
        let n = candidates.len();
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
            .filter(|&i| !self.is_down(&candidates[i], now))
            .collect();
        let mut down: Vec<usize> = rotation
            .filter(|&i| self.is_down(&candidates[i], now))
            .collect();
        down.sort_by_key(|&i| self.last_failure(&candidates[i]));
        order.extend(down);
        order.truncate(max_attempts.max(1));
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<SocketAddr> {
        ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect()
    }

    #[test]
    fn failover_skips_down_endpoints_until_the_cooldown_ends() {
        let (h, a) = (GatewayHealth::default(), addrs());
        assert_eq!(h.order(Strategy::Failover, &a, 3, 0, 0, 1000), [0, 1, 2]);
        h.mark_down(&a[0], 1000, 500);
        assert_eq!(h.order(Strategy::Failover, &a, 3, 0, 0, 1200), [1, 2, 0]);
        assert_eq!(h.order(Strategy::Failover, &a, 2, 0, 0, 1200), [1, 2]);
        assert_eq!(
            h.order(Strategy::Failover, &a, 3, 0, 0, 1500),
            [0, 1, 2],
            "cool-down over"
        );
    }

    #[test]
    fn all_down_tries_the_least_recently_failed_first() {
        let (h, a) = (GatewayHealth::default(), addrs());
        h.mark_down(&a[2], 100, 10_000);
        h.mark_down(&a[0], 200, 10_000);
        h.mark_down(&a[1], 300, 10_000);
        assert_eq!(h.order(Strategy::Failover, &a, 3, 0, 0, 400), [2, 0, 1]);
        h.mark_up(&a[1]);
        assert_eq!(h.order(Strategy::Failover, &a, 1, 0, 0, 400), [1]);
    }

    #[test]
    fn round_robin_rotates_and_hash_sticks() {
        let (h, a) = (GatewayHealth::default(), addrs());
        let firsts: Vec<usize> = (0..6)
            .map(|_| h.order(Strategy::RoundRobin, &a, 3, 0, 0, 0)[0])
            .collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        assert_eq!(h.order(Strategy::Hash, &a, 3, 7, 0, 0), [1, 2, 0]);
        assert_eq!(h.order(Strategy::Hash, &a, 3, 7, 99, 0), [1, 2, 0]);
        assert_eq!(h.order(Strategy::Random, &a, 3, 0, 5, 0), [2, 0, 1]);
    }

    #[test]
    fn a_full_table_counts_new_addresses_as_healthy() {
        let h = GatewayHealth::default();
        for port in 1..=SLOTS as u16 {
            h.mark_down(&SocketAddr::from(([10, 0, 0, 1], port)), 0, 1_000_000);
        }
        let extra = SocketAddr::from(([10, 0, 0, 2], 1));
        h.mark_down(&extra, 0, 1_000_000);
        assert!(!h.is_down(&extra, 10));
        assert!(h.is_down(&SocketAddr::from(([10, 0, 0, 1], 5)), 10));
    }
}
