//! The fake-address table: routed and denied hosts get a synthetic address instead of a DNS
//! answer, and `connect()` to that address recovers the host.
//!
//! - An address encodes a slot and the slot's generation (`base + 1 + generation * capacity +
//!   index`, in both ranges), so address-to-host is arithmetic, not a search.
//! - Host-to-slot is a 16-way set: the same host gets the same address while it stays in the
//!   table (and usually the same in every process with the same ranges).
//! - Bounded (`dns.max_hosts`): when a host's set is full, its least recently used entry that
//!   has not been used for a minute is evicted and the slot's generation moves on, so the old
//!   address no longer names anything: a `connect()` to it fails closed, never reaches another
//!   host. (With one generation only, because the IPv4 range is not at least twice the table,
//!   nothing is evicted and a full set answers "table full".)
//! - Lock-free: a slot goes EMPTY/READY -> WRITING -> READY by compare-and-swap. A `fork()`
//!   child inherits the table; a slot a vanished thread was writing stays WRITING, and is
//!   waited for only briefly, then skipped.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::names::{hash_bytes, load_name, name_equals, store_name, HostBuf, NAME_WORDS};
use crate::net::Cidr;

const EMPTY: u64 = 0;
const WRITING: u64 = 1;
const READY: u64 = 2;
/// Word 0: state (8 bits), name length (16), generation (32). Word 1: when last used (coarse
/// seconds). Word 2: the name's hash (a cheap first comparison). Then the name.
const SLOT_WORDS: usize = 3 + NAME_WORDS;
/// Slots a host may live in.
const WAYS: usize = 16;
/// An entry used this recently is never evicted.
const QUARANTINE_S: u64 = 60;
/// How long a lookup waits for a slot another thread is filling (it may be the same host).
const WAIT_FOR_WRITER_SPINS: u32 = 10_000;

fn header(state: u64, len: usize, generation: u32) -> u64 {
    state | ((len as u64) << 8) | ((generation as u64) << 24)
}

fn state_of(header: u64) -> u64 {
    header & 0xff
}

fn len_of(header: u64) -> usize {
    ((header >> 8) & 0xffff) as usize
}

fn generation_of(header: u64) -> u32 {
    (header >> 24) as u32
}

/// Where a host lives: its slot and the slot's generation. Both fake addresses follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FakeSlot {
    pub index: usize,
    pub generation: u32,
}

pub struct FakeTable {
    words: Box<[AtomicU64]>,
    capacity: usize,
    generations: u32,
    used: AtomicUsize,
    ipv4: Cidr,
    ipv6: Cidr,
}

/// Why a host got no fake address.
#[derive(Debug, PartialEq, Eq)]
pub enum FakeError {
    TableFull(usize),
}

impl FakeTable {
    /// A table of `capacity` slots over the two ranges (the config checks that the smaller range
    /// holds `capacity + 2` addresses; each further `capacity` addresses make a generation).
    pub fn new(ipv4: Cidr, ipv6: Cidr, capacity: usize) -> FakeTable {
        let usable = ipv4.size().min(ipv6.size()).saturating_sub(2);
        let generations = (usable / capacity.max(1) as u64).clamp(1, u32::MAX as u64) as u32;
        FakeTable {
            words: crate::sys::zeroed_atomic_words(capacity * SLOT_WORDS),
            capacity,
            generations,
            used: AtomicUsize::new(0),
            ipv4,
            ipv6,
        }
    }

    fn slot(&self, index: usize) -> &[AtomicU64] {
        &self.words[index * SLOT_WORDS..(index + 1) * SLOT_WORDS]
    }

    fn now_s() -> u64 {
        crate::sys::coarse_monotonic_us() / 1_000_000 + 1
    }

    /// The slot of `host` (lower-case, at most 253 bytes), taking or reclaiming one if needed.
    pub fn assign(&self, host: &str) -> Result<FakeSlot, FakeError> {
        if self.capacity == 0 {
            return Err(FakeError::TableFull(0));
        }
        let hash = hash_bytes(host.as_bytes());
        let start = (hash % self.capacity as u64) as usize;
        let ways = WAYS.min(self.capacity);
        let now = Self::now_s();
        // Slots left WRITING by a thread that is gone (a fork child's inheritance): skipped.
        let mut stuck = [false; WAYS];
        // Each retry follows another thread's change to the set; bounded all the same.
        for _ in 0..64 {
            // Is it there already? (Waits briefly for slots being written: it may be us.)
            for (way, stuck) in stuck.iter_mut().enumerate().take(ways) {
                let index = (start + way) % self.capacity;
                let slot = self.slot(index);
                let mut spins = 0;
                loop {
                    let current = slot[0].load(Ordering::Acquire);
                    match state_of(current) {
                        READY
                            if slot[2].load(Ordering::Relaxed) == hash
                                && name_equals(&slot[3..], len_of(current), host) =>
                        {
                            slot[1].store(now, Ordering::Relaxed);
                            return Ok(FakeSlot {
                                index,
                                generation: generation_of(current),
                            });
                        }
                        WRITING if !*stuck && spins < WAIT_FOR_WRITER_SPINS => {
                            spins += 1;
                            std::thread::yield_now();
                        }
                        WRITING => {
                            *stuck = true;
                            break;
                        }
                        _ => break,
                    }
                }
            }
            // No: an empty slot of the set, else the least recently used evictable one.
            let mut victim: Option<(usize, u64, u64)> = None;
            let mut busy = false;
            for (way, stuck) in stuck.iter().enumerate().take(ways) {
                let index = (start + way) % self.capacity;
                let slot = self.slot(index);
                let current = slot[0].load(Ordering::Acquire);
                match state_of(current) {
                    EMPTY => {
                        victim = Some((index, current, 0));
                        break;
                    }
                    // Someone is writing here since we looked, or wrote our host here since:
                    // look again.
                    WRITING if !*stuck => {
                        busy = true;
                        break;
                    }
                    READY
                        if slot[2].load(Ordering::Relaxed) == hash
                            && name_equals(&slot[3..], len_of(current), host) =>
                    {
                        busy = true;
                        break;
                    }
                    READY if self.generations > 1 => {
                        let used = slot[1].load(Ordering::Relaxed);
                        let evictable = now.saturating_sub(used) >= QUARANTINE_S;
                        if evictable && victim.is_none_or(|(_, _, oldest)| used < oldest) {
                            victim = Some((index, current, used));
                        }
                    }
                    _ => {}
                }
            }
            if busy {
                continue;
            }
            let Some((index, current, _)) = victim else {
                return Err(FakeError::TableFull(self.capacity));
            };
            let generation = if state_of(current) == EMPTY {
                generation_of(current)
            } else {
                (generation_of(current) + 1) % self.generations
            };
            let slot = self.slot(index);
            if slot[0]
                .compare_exchange(
                    current,
                    header(WRITING, 0, generation),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue; // someone else took or changed it: look again
            }
            store_name(&slot[3..], host);
            slot[2].store(hash, Ordering::Relaxed);
            slot[1].store(now, Ordering::Relaxed);
            slot[0].store(header(READY, host.len(), generation), Ordering::Release);
            if state_of(current) == EMPTY {
                self.used.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(FakeSlot { index, generation });
        }
        Err(FakeError::TableFull(self.capacity))
    }

    /// The host behind a slot, if it is filled and still of that generation.
    pub fn host(&self, at: FakeSlot) -> Option<HostBuf> {
        if at.index >= self.capacity {
            return None;
        }
        let slot = self.slot(at.index);
        let current = slot[0].load(Ordering::Acquire);
        if state_of(current) != READY || generation_of(current) != at.generation {
            return None;
        }
        slot[1].store(Self::now_s(), Ordering::Relaxed);
        Some(load_name(&slot[3..], len_of(current)))
    }

    fn offset(&self, at: FakeSlot) -> u64 {
        1 + at.generation as u64 * self.capacity as u64 + at.index as u64
    }

    pub fn ipv4(&self, at: FakeSlot) -> Ipv4Addr {
        let IpAddr::V4(base) = self.ipv4.network() else {
            unreachable!("validated IPv4")
        };
        Ipv4Addr::from(u32::from(base).wrapping_add(self.offset(at) as u32))
    }

    pub fn ipv6(&self, at: FakeSlot) -> Ipv6Addr {
        let IpAddr::V6(base) = self.ipv6.network() else {
            unreachable!("validated IPv6")
        };
        Ipv6Addr::from(u128::from(base) + self.offset(at) as u128)
    }

    /// Whether `addr` lies in either fake range (handed out or not). IPv4-mapped counts.
    pub fn in_range(&self, addr: IpAddr) -> bool {
        self.ipv4.contains(addr) || self.ipv6.contains(addr)
    }

    /// The slot and generation an address in our ranges stands for.
    pub fn slot_of(&self, addr: IpAddr) -> Option<FakeSlot> {
        let offset = match addr.to_canonical() {
            IpAddr::V4(v4) if self.ipv4.contains(IpAddr::V4(v4)) => {
                let IpAddr::V4(base) = self.ipv4.network() else {
                    return None;
                };
                (u32::from(v4) - u32::from(base)) as u128
            }
            IpAddr::V6(v6) if self.ipv6.contains(IpAddr::V6(v6)) => {
                let IpAddr::V6(base) = self.ipv6.network() else {
                    return None;
                };
                u128::from(v6) - u128::from(base)
            }
            _ => return None,
        };
        let offset = offset.checked_sub(1)?;
        let capacity = self.capacity.max(1) as u128;
        let generation = offset / capacity;
        (generation < self.generations as u128).then_some(FakeSlot {
            index: (offset % capacity) as usize,
            generation: generation as u32,
        })
    }

    /// The host a fake address stands for, if it was handed out and not evicted since.
    pub fn host_of(&self, addr: IpAddr) -> Option<HostBuf> {
        self.host(self.slot_of(addr)?)
    }

    /// Slots in use.
    pub fn len(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many generations a slot cycles through (1: no eviction).
    pub fn generations(&self) -> u32 {
        self.generations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(capacity: usize) -> FakeTable {
        FakeTable::new(
            Cidr::parse("198.18.0.0/15").unwrap(),
            Cidr::parse("fd6d:6370:7264::/64").unwrap(),
            capacity,
        )
    }

    #[test]
    fn same_host_same_address_and_back() {
        let t = table(1024);
        let a = t.assign("api.example.com").unwrap();
        let b = t.assign("other.example.com").unwrap();
        assert_ne!(a, b);
        assert_eq!(t.assign("api.example.com").unwrap(), a);
        let v4 = t.ipv4(a);
        assert_eq!(
            t.host_of(IpAddr::V4(v4)).unwrap().as_str(),
            "api.example.com"
        );
        assert_eq!(
            t.host_of(IpAddr::V6(v4.to_ipv6_mapped())).unwrap().as_str(),
            "api.example.com"
        );
        assert_eq!(
            t.host_of(IpAddr::V6(t.ipv6(a))).unwrap().as_str(),
            "api.example.com"
        );
        assert!(t.host_of("198.18.0.0".parse().unwrap()).is_none());
        assert!(t.host_of("10.0.0.1".parse().unwrap()).is_none());
    }

    #[test]
    fn without_room_for_a_second_generation_a_full_set_says_so() {
        let t = FakeTable::new(
            Cidr::parse("198.18.0.0/27").unwrap(),
            Cidr::parse("fd00::/64").unwrap(),
            16,
        );
        assert_eq!(t.generations(), 1);
        for i in 0..16 {
            t.assign(&format!("h{i}.test")).unwrap();
        }
        assert_eq!(t.assign("one-more.test"), Err(FakeError::TableFull(16)));
        assert!(t.assign("h3.test").is_ok(), "known hosts still resolve");
    }

    #[test]
    fn recently_used_entries_are_not_evicted() {
        let t = table(16);
        assert!(t.generations() > 1);
        for i in 0..16 {
            t.assign(&format!("h{i}.test")).unwrap();
        }
        assert_eq!(
            t.assign("one-more.test"),
            Err(FakeError::TableFull(16)),
            "all used within the minute"
        );
    }

    #[test]
    fn an_evicted_address_names_nothing_afterwards() {
        let t = table(16);
        let old = t.assign("old.test").unwrap();
        let old_address = IpAddr::V4(t.ipv4(old));
        for i in 0..15 {
            t.assign(&format!("h{i}.test")).unwrap();
        }
        // Age every entry past the quarantine, then make room for a new host.
        for index in 0..16 {
            t.slot(index)[1].store(1, Ordering::Relaxed);
        }
        let new = t.assign("new.test").unwrap();
        assert_ne!(
            IpAddr::V4(t.ipv4(new)),
            old_address,
            "a new generation, a new address"
        );
        if new.index == old.index {
            assert!(
                t.host_of(old_address).is_none(),
                "the old address fails closed"
            );
        }
        assert_eq!(
            t.host_of(IpAddr::V4(t.ipv4(new))).unwrap().as_str(),
            "new.test"
        );
        assert_eq!(t.len(), 16, "bounded");
    }

    #[test]
    fn a_million_names_stay_within_the_table() {
        let t = table(4096);
        for i in 0..1_000_000u32 {
            // Pretend time passes (a minute every 256 names) so entries become evictable.
            if i % 256 == 0 {
                for index in 0..4096 {
                    t.slot(index)[1].store(1, Ordering::Relaxed);
                }
            }
            let slot = t.assign(&format!("host-{i}.example.test")).unwrap();
            assert_eq!(
                t.host_of(IpAddr::V4(t.ipv4(slot))).unwrap().as_str(),
                format!("host-{i}.example.test")
            );
        }
        assert_eq!(t.len(), 4096);
    }

    #[test]
    fn long_names_round_trip() {
        let t = table(64);
        let name = ["abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0"; 4].join(".")
            [..253]
            .to_string();
        let i = t.assign(&name).unwrap();
        assert_eq!(t.host(i).unwrap().as_str(), name);
    }

    #[test]
    fn threads_agree_on_addresses() {
        let t = std::sync::Arc::new(table(4096));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    (0..500)
                        .map(|i| t.assign(&format!("h{i}.test")).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<Vec<FakeSlot>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(t.len(), 500);
    }
}
