//! Address-to-name memory for hosts resolved for real (direct hosts, and every host in
//! `dns.mode = "local"`): `connect()` to such an address still knows the hostname, so host rules
//! apply and a gateway is sent the name, not the address.
//!
//! A direct-mapped cache of `capacity` slots, each a seqlock over inline words: bounded,
//! overwriting (the newest name for an address wins, which is the one about to connect), and
//! lock-free for readers and writers alike. A writer that finds a slot being written skips it;
//! a reader that finds one being written treats it as a miss. So a `fork()` in the middle of a
//! write costs the child one slot, never a hang.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::names::{hash_bytes, load_name, store_name, HostBuf, NAME_WORDS};

/// Word 0: sequence (odd while being written); 1-2: the address as IPv6 (IPv4 mapped);
/// 3: name length; then the name.
const SLOT_WORDS: usize = 4 + NAME_WORDS;

pub struct NameMemory {
    words: Box<[AtomicU64]>,
    capacity: usize,
}

fn key(addr: IpAddr) -> u128 {
    match addr.to_canonical() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl NameMemory {
    pub fn new(capacity: usize) -> NameMemory {
        NameMemory {
            words: crate::sys::zeroed_atomic_words(capacity * SLOT_WORDS),
            capacity,
        }
    }

    fn slot(&self, addr_key: u128) -> Option<&[AtomicU64]> {
        if self.capacity == 0 {
            return None;
        }
        let index = (hash_bytes(&addr_key.to_le_bytes()) % self.capacity as u64) as usize;
        Some(&self.words[index * SLOT_WORDS..(index + 1) * SLOT_WORDS])
    }

    /// Remembers that `addr` is `host`.
    pub fn remember(&self, addr: IpAddr, host: &str) {
        let addr_key = key(addr);
        let Some(slot) = self.slot(addr_key) else {
            return;
        };
        let seq = slot[0].load(Ordering::Relaxed);
        if seq & 1 == 1 {
            return;
        }
        if slot[0]
            .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        slot[1].store((addr_key >> 64) as u64, Ordering::Relaxed);
        slot[2].store(addr_key as u64, Ordering::Relaxed);
        slot[3].store(host.len() as u64, Ordering::Relaxed);
        store_name(&slot[4..], host);
        slot[0].store(seq + 2, Ordering::Release);
    }

    /// The name last remembered for `addr`.
    pub fn recall(&self, addr: IpAddr) -> Option<HostBuf> {
        let addr_key = key(addr);
        let slot = self.slot(addr_key)?;
        let before = slot[0].load(Ordering::Acquire);
        if before == 0 || before & 1 == 1 {
            return None;
        }
        let stored = ((slot[1].load(Ordering::Relaxed) as u128) << 64)
            | slot[2].load(Ordering::Relaxed) as u128;
        let len = slot[3].load(Ordering::Relaxed) as usize;
        let name = load_name(&slot[4..], len);
        fence(Ordering::Acquire);
        let after = slot[0].load(Ordering::Relaxed);
        (before == after && stored == addr_key && len > 0).then_some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_overwrites() {
        let m = NameMemory::new(256);
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(m.recall(a).is_none());
        m.remember(a, "one.example");
        assert_eq!(m.recall(a).unwrap().as_str(), "one.example");
        assert_eq!(
            m.recall("::ffff:10.1.2.3".parse().unwrap())
                .unwrap()
                .as_str(),
            "one.example"
        );
        m.remember(a, "two.example");
        assert_eq!(m.recall(a).unwrap().as_str(), "two.example");
        assert!(m
            .recall("10.1.2.4".parse().unwrap())
            .map_or(true, |n| n.as_str() != "two.example"));
    }
}
