//! The fake-address table: routed and denied hosts get a synthetic address instead of a DNS
//! answer, and `connect()` to that address recovers the host.
//!
//! - The slot index *is* the address (`base + 1 + index` in both the IPv4 and the IPv6 range),
//!   so address-to-host is arithmetic, not a search.
//! - Host-to-slot is open addressing from a hash of the name: the same host gets the same
//!   address for the life of the process, and usually in every process with the same ranges.
//! - Bounded (`dns.max_hosts`), never evicts (an address handed out stays valid), lock-free:
//!   a slot goes EMPTY -> WRITING -> READY once, by compare-and-swap.
//! - `fork()`-safe: a child inherits the table. A slot a now-vanished thread was writing stays
//!   WRITING; lookups wait for it only briefly, then skip it.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::names::{hash_bytes, load_name, name_equals, store_name, HostBuf, NAME_WORDS};
use crate::net::Cidr;

const EMPTY: u64 = 0;
const WRITING: u64 = 1;
const READY: u64 = 2;
/// Word 0: state in the low byte, name length above it; then the name.
const SLOT_WORDS: usize = 1 + NAME_WORDS;
/// How long a lookup waits for a slot another thread is filling (it may be the same host).
const WAIT_FOR_WRITER_SPINS: u32 = 10_000;

pub struct FakeTable {
    words: Box<[AtomicU64]>,
    capacity: usize,
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
    /// A table of `capacity` slots over the two ranges (the config checks that the IPv4 range
    /// holds `capacity + 2` addresses).
    pub fn new(ipv4: Cidr, ipv6: Cidr, capacity: usize) -> FakeTable {
        FakeTable {
            words: crate::sys::zeroed_atomic_words(capacity * SLOT_WORDS),
            capacity,
            used: AtomicUsize::new(0),
            ipv4,
            ipv6,
        }
    }

    fn slot(&self, index: usize) -> &[AtomicU64] {
        &self.words[index * SLOT_WORDS..(index + 1) * SLOT_WORDS]
    }

    /// The slot of `host` (lower-case, at most 253 bytes), taking a new one if needed.
    pub fn assign(&self, host: &str) -> Result<usize, FakeError> {
        if self.capacity == 0 {
            return Err(FakeError::TableFull(0));
        }
        let start = (hash_bytes(host.as_bytes()) % self.capacity as u64) as usize;
        for probe in 0..self.capacity {
            let index = (start + probe) % self.capacity;
            let slot = self.slot(index);
            let mut spins = 0;
            loop {
                let header = slot[0].load(Ordering::Acquire);
                match header & 0xff {
                    READY => {
                        if name_equals(&slot[1..], (header >> 8) as usize, host) {
                            return Ok(index);
                        }
                        break;
                    }
                    WRITING if spins < WAIT_FOR_WRITER_SPINS => {
                        spins += 1;
                        std::thread::yield_now();
                    }
                    WRITING => break,
                    _ => {
                        if self.used.load(Ordering::Relaxed) >= self.capacity {
                            return Err(FakeError::TableFull(self.capacity));
                        }
                        if slot[0]
                            .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed)
                            .is_err()
                        {
                            continue; // someone else took it; look again
                        }
                        store_name(&slot[1..], host);
                        slot[0].store(READY | ((host.len() as u64) << 8), Ordering::Release);
                        self.used.fetch_add(1, Ordering::Relaxed);
                        return Ok(index);
                    }
                }
            }
        }
        Err(FakeError::TableFull(self.capacity))
    }

    /// The host behind slot `index`, if the slot is filled.
    pub fn host(&self, index: usize) -> Option<HostBuf> {
        if index >= self.capacity {
            return None;
        }
        let slot = self.slot(index);
        let header = slot[0].load(Ordering::Acquire);
        (header & 0xff == READY).then(|| load_name(&slot[1..], (header >> 8) as usize))
    }

    pub fn ipv4(&self, index: usize) -> Ipv4Addr {
        let IpAddr::V4(base) = self.ipv4.network() else {
            unreachable!("validated IPv4")
        };
        Ipv4Addr::from(u32::from(base) + 1 + index as u32)
    }

    pub fn ipv6(&self, index: usize) -> Ipv6Addr {
        let IpAddr::V6(base) = self.ipv6.network() else {
            unreachable!("validated IPv6")
        };
        Ipv6Addr::from(u128::from(base) + 1 + index as u128)
    }

    /// Whether `addr` lies in either fake range (handed out or not). IPv4-mapped counts.
    pub fn in_range(&self, addr: IpAddr) -> bool {
        self.ipv4.contains(addr) || self.ipv6.contains(addr)
    }

    /// The slot an address in our ranges stands for.
    pub fn index_of(&self, addr: IpAddr) -> Option<usize> {
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
        let index = offset.checked_sub(1)?;
        (index < self.capacity as u128).then_some(index as usize)
    }

    /// The host a fake address stands for, if it was handed out.
    pub fn host_of(&self, addr: IpAddr) -> Option<HostBuf> {
        self.host(self.index_of(addr)?)
    }

    pub fn len(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    fn bounded_and_says_so_when_full() {
        let t = table(16);
        for i in 0..16 {
            t.assign(&format!("h{i}.test")).unwrap();
        }
        assert_eq!(t.assign("one-more.test"), Err(FakeError::TableFull(16)));
        assert!(t.assign("h3.test").is_ok(), "known hosts still resolve");
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
        let results: Vec<Vec<usize>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(t.len(), 500);
    }
}
