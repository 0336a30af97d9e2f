//! What a name lookup answers. Routed and denied hosts get a fake address from [`fake`] (DNS is
//! never asked for them); direct hosts resolve for real and their addresses are remembered in
//! [`memory`], so that `connect()` knows the hostname either way.
//!
//! Names the machine itself defines (`localhost`, `*.localhost`, and every name in
//! `/etc/hosts`) always resolve for real: no gateway could know them, and `connect()` then
//! decides with both the name and the real address.
#![forbid(unsafe_code)]

pub mod fake;
pub mod memory;
pub mod names;

use std::collections::HashSet;
use std::net::IpAddr;

use crate::config::{DnsConfig, DnsMode};
use crate::rules::{Action, Decision, ResolvePlan, RuleTable};
use fake::FakeTable;
use memory::NameMemory;
use names::HostBuf;

const HOSTS_FILE: &str = "/etc/hosts";
const MAX_HOSTS_FILE_BYTES: usize = 1 << 20;

pub struct Resolver {
    pub fake: FakeTable,
    pub memory: NameMemory,
    mode: DnsMode,
    local_names: HashSet<String>,
}

/// What `connect()` knows of the hostname behind an address. Lives on the stack of one
/// `connect()`: the size of the inline names is the price of not allocating.
#[allow(clippy::large_enum_variant)]
pub enum KnownNames {
    None,
    /// The address is one of our fake addresses, handed out for this host.
    Fake(HostBuf),
    /// The address is in our fake ranges, but neither the fake table nor a real lookup we saw
    /// names it (another process's fake address, or one evicted since): it must not go out.
    UnknownFake,
    /// The address came from real lookups we saw, of these hosts (newest first).
    Remembered(memory::Recalled),
}

impl Resolver {
    pub fn new(dns: &DnsConfig) -> Resolver {
        Resolver {
            fake: FakeTable::new(dns.fake_ipv4, dns.fake_ipv6, dns.max_hosts),
            memory: NameMemory::new(dns.max_hosts.min(16384)),
            mode: dns.mode,
            local_names: read_hosts_file(),
        }
    }

    /// How to answer a lookup of `host` (lower-case, validated).
    pub fn plan(&self, rules: &RuleTable, host: &str, exe: &str) -> ResolvePlan {
        if self.is_local_name(host) {
            return ResolvePlan::Real(Decision {
                action: Action::Direct,
                rule_index: None,
            });
        }
        match (self.mode, rules.plan_lookup(host, exe)) {
            (DnsMode::Local, ResolvePlan::Fake(decision)) => ResolvePlan::RealOrFake(decision),
            (_, plan) => plan,
        }
    }

    /// `localhost`, `*.localhost`, or a name in `/etc/hosts`.
    pub fn is_local_name(&self, host: &str) -> bool {
        host == "localhost" || host.ends_with(".localhost") || self.local_names.contains(host)
    }

    /// The hostnames behind a destination address, as far as we know them.
    pub fn names_of(&self, addr: IpAddr) -> KnownNames {
        let in_range = self.fake.in_range(addr);
        if in_range {
            if let Some(name) = self.fake.host_of(addr) {
                return KnownNames::Fake(name);
            }
        }
        let recalled = if self.memory.knows(addr) {
            Some(self.memory.recall(addr)).filter(|r| !r.is_empty())
        } else {
            None
        };
        match recalled {
            Some(recalled) => KnownNames::Remembered(recalled),
            None if in_range => KnownNames::UnknownFake,
            None => KnownNames::None,
        }
    }
}

/// The names in `/etc/hosts` (lower-case). A missing or unreadable file means none.
fn read_hosts_file() -> HashSet<String> {
    let Ok(bytes) =
        crate::sys::read_small_file(std::path::Path::new(HOSTS_FILE), MAX_HOSTS_FILE_BYTES)
    else {
        return HashSet::new();
    };
    parse_hosts(&String::from_utf8_lossy(&bytes))
}

fn parse_hosts(text: &str) -> HashSet<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.split_whitespace().skip(1))
        .filter_map(crate::net::normalize_host)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_names() {
        let names = parse_hosts(
            "127.0.0.1 localhost\n# 10.0.0.1 commented\n10.0.0.2 Db.Internal db # alias\n",
        );
        assert!(
            names.contains("db.internal") && names.contains("db") && names.contains("localhost")
        );
        assert!(!names.contains("commented") && !names.contains("alias"));
    }
}
