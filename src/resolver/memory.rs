//! Address-to-name memory for hosts resolved for real (direct hosts, names from `/etc/hosts`,
//! and every host in `dns.mode = "local"`): `connect()` to such an address still knows the
//! hostname, so host rules apply and a gateway is sent the name, not the address.
//!
//! Several names can share an address (a CDN, or two `/etc/hosts` aliases), and trusting only
//! the last one looked up would let a program pass a denied host off as an allowed one. So each
//! address keeps up to [`WAYS`] names, and `connect()` applies the strictest decision among
//! them.
//!
//! A set-associative cache: `capacity / WAYS` buckets of [`WAYS`] slots, each slot a seqlock over
//! inline words. Bounded (the least recently remembered name in a bucket is overwritten), and
//! lock-free for readers and writers alike: a writer that finds a slot being written skips it, a
//! reader treats it as a miss. So a `fork()` in the middle of a write costs the child one slot,
//! never a hang.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::names::{hash_bytes, load_name, name_equals, store_name, HostBuf, NAME_WORDS};

/// Names kept per address (and slots per bucket).
pub const WAYS: usize = 4;

/// Word 0: sequence (odd while being written); 1-2: the address as IPv6 (IPv4 mapped);
/// 3: name length; 4: when it was remembered (a counter); then the name.
const SLOT_WORDS: usize = 5 + NAME_WORDS;

pub struct NameMemory {
    words: Box<[AtomicU64]>,
    buckets: usize,
    clock: AtomicU64,
}

/// The names remembered for one address, most recent first.
pub struct Recalled {
    names: [Option<HostBuf>; WAYS],
}

impl Recalled {
    pub fn iter(&self) -> impl Iterator<Item = &HostBuf> {
        self.names.iter().flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.names[0].is_none()
    }
}

fn key(addr: IpAddr) -> u128 {
    match addr.to_canonical() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl NameMemory {
    /// Room for about `capacity` names.
    pub fn new(capacity: usize) -> NameMemory {
        let buckets = capacity.div_ceil(WAYS);
        NameMemory {
            words: crate::sys::zeroed_atomic_words(buckets * WAYS * SLOT_WORDS),
            buckets,
            clock: AtomicU64::new(1),
        }
    }

    fn bucket(&self, addr_key: u128) -> Option<impl Iterator<Item = &[AtomicU64]>> {
        if self.buckets == 0 {
            return None;
        }
        let index = (hash_bytes(&addr_key.to_le_bytes()) % self.buckets as u64) as usize;
        let start = index * WAYS * SLOT_WORDS;
        Some(self.words[start..start + WAYS * SLOT_WORDS].chunks(SLOT_WORDS))
    }

    /// Remembers that `addr` is (also) `host`.
    pub fn remember(&self, addr: IpAddr, host: &str) {
        let addr_key = key(addr);
        let Some(bucket) = self.bucket(addr_key) else {
            return;
        };
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut victim: Option<(&[AtomicU64], u64)> = None;
        for slot in bucket {
            let seq = slot[0].load(Ordering::Acquire);
            if seq & 1 == 1 {
                continue;
            }
            if seq != 0
                && slot_key(slot) == addr_key
                && name_equals(&slot[5..], slot[3].load(Ordering::Relaxed) as usize, host)
            {
                slot[4].store(now, Ordering::Relaxed);
                return;
            }
            let stamp = if seq == 0 {
                0
            } else {
                slot[4].load(Ordering::Relaxed)
            };
            if victim.is_none_or(|(_, oldest)| stamp < oldest) {
                victim = Some((slot, stamp));
            }
        }
        let Some((slot, _)) = victim else { return };
        let seq = slot[0].load(Ordering::Relaxed);
        if seq & 1 == 1
            || slot[0]
                .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        slot[1].store((addr_key >> 64) as u64, Ordering::Relaxed);
        slot[2].store(addr_key as u64, Ordering::Relaxed);
        slot[3].store(host.len() as u64, Ordering::Relaxed);
        slot[4].store(now, Ordering::Relaxed);
        store_name(&slot[5..], host);
        slot[0].store(seq + 2, Ordering::Release);
    }

    /// Whether any name is remembered for `addr`: asked first, so that the common answer (none)
    /// does not build and move a `Recalled` (about 1 KiB) at all.
    pub fn knows(&self, addr: IpAddr) -> bool {
        let addr_key = key(addr);
        self.bucket(addr_key).is_some_and(|mut bucket| {
            bucket.any(|slot| {
                let seq = slot[0].load(Ordering::Acquire);
                seq != 0 && seq & 1 == 0 && slot_key(slot) == addr_key
            })
        })
    }

    /// The names remembered for `addr`, most recently remembered first.
    ///
    /// Every `connect()` asks, and for most addresses the answer is none: that case touches only
    /// the bucket's sequence words and keys, and copies no name buffer (a `Recalled` is about
    /// 1 KiB; sorting or moving it per call was a measurable part of a direct connect).
    pub fn recall(&self, addr: IpAddr) -> Recalled {
        let mut recalled = Recalled {
            names: Default::default(),
        };
        let addr_key = key(addr);
        let Some(bucket) = self.bucket(addr_key) else {
            return recalled;
        };
        let mut stamps = [0u64; WAYS];
        let mut count = 0;
        for slot in bucket {
            let before = slot[0].load(Ordering::Acquire);
            // Empty, being written, or another address's: skipped before any name is copied.
            if before == 0 || before & 1 == 1 || slot_key(slot) != addr_key {
                continue;
            }
            let len = slot[3].load(Ordering::Relaxed) as usize;
            let stamp = slot[4].load(Ordering::Relaxed);
            let name = load_name(&slot[5..], len);
            fence(Ordering::Acquire);
            if slot[0].load(Ordering::Relaxed) != before || len == 0 {
                continue;
            }
            // Insert by stamp, newest first; equal stamps keep the bucket's order.
            let mut at = count;
            while at > 0 && stamps[at - 1] < stamp {
                at -= 1;
            }
            for i in (at..count).rev() {
                recalled.names[i + 1] = recalled.names[i].take();
                stamps[i + 1] = stamps[i];
            }
            recalled.names[at] = Some(name);
            stamps[at] = stamp;
            count += 1;
        }
        recalled
    }
}

fn slot_key(slot: &[AtomicU64]) -> u128 {
    ((slot[1].load(Ordering::Relaxed) as u128) << 64) | slot[2].load(Ordering::Relaxed) as u128
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(m: &NameMemory, addr: &str) -> Vec<String> {
        m.recall(addr.parse().unwrap())
            .iter()
            .map(|n| n.as_str().to_string())
            .collect()
    }

    #[test]
    fn remembers_every_name_of_an_address_newest_first() {
        let m = NameMemory::new(256);
        assert!(m.recall("10.1.2.3".parse().unwrap()).is_empty());
        m.remember("10.1.2.3".parse().unwrap(), "one.example");
        assert_eq!(names(&m, "10.1.2.3"), ["one.example"]);
        assert_eq!(names(&m, "::ffff:10.1.2.3"), ["one.example"]);
        m.remember("10.1.2.3".parse().unwrap(), "two.example");
        assert_eq!(names(&m, "10.1.2.3"), ["two.example", "one.example"]);
        m.remember("10.1.2.3".parse().unwrap(), "one.example");
        assert_eq!(
            names(&m, "10.1.2.3"),
            ["one.example", "two.example"],
            "refreshed, not duplicated"
        );
        assert!(names(&m, "10.1.2.4").is_empty());
    }

    #[test]
    fn bounded_per_address_and_overall() {
        let m = NameMemory::new(WAYS);
        for i in 0..10 {
            m.remember("10.0.0.1".parse().unwrap(), &format!("n{i}.example"));
        }
        assert_eq!(
            names(&m, "10.0.0.1"),
            ["n9.example", "n8.example", "n7.example", "n6.example"]
        );
        m.remember("10.0.0.2".parse().unwrap(), "other.example");
        assert_eq!(names(&m, "10.0.0.2"), ["other.example"]);
        assert_eq!(
            names(&m, "10.0.0.1").len(),
            WAYS - 1,
            "the oldest name gave way"
        );
    }
}
