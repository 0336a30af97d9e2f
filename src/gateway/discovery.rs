//! Gateway endpoints from DNS SRV records (RFC 2782): `endpoints = ["srv:_gateway._tcp.NAME"]`,
//! looked up on Consul's DNS interface (`[discovery] nameserver`) or the system's nameserver.
//!
//! Answers are cached for their TTL, clamped to `min_ttl_s..=max_ttl_s`, and refreshed lazily by
//! the connection that finds them stale. When the nameserver fails, the last good answer is kept
//! (and the lookup not retried for `min_ttl_s`): a DNS outage does not become a gateway outage.
//! The cache is one atomic pointer per SRV entry (`arc-swap`), lock-free like the rest.
//!
//! The SRV answer is read here with the wire-format primitives of [`crate::dns`] (which says why
//! they are written by hand).
#![deny(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::config::DiscoveryConfig;
use crate::dns::{self, Reader, CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_SRV};
use crate::sys::{self, socket};

/// Largest UDP answer we read (EDNS is not used; a truncated answer is asked again over TCP).
const UDP_MAX: usize = 4096;

/// One endpoint an SRV record names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvTarget {
    pub priority: u16,
    pub weight: u16,
    pub host: String,
    pub port: u16,
    /// From the answer's additional section, else from the system resolver.
    pub addrs: Vec<SocketAddr>,
}

/// A cached answer.
#[derive(Debug)]
pub struct SrvAnswer {
    pub targets: Vec<SrvTarget>,
    /// When to ask again (monotonic microseconds).
    pub refresh_at: u64,
}

/// The cache of one SRV endpoint.
#[derive(Default)]
pub struct SrvCache {
    answer: ArcSwapOption<SrvAnswer>,
}

impl SrvCache {
    /// The current targets of `name`, asking DNS when the cached answer is stale, waiting the
    /// way `waiter` waits. `lookups`: a target the answer gives no address for may be looked up
    /// with `getaddrinfo`, which blocks (not on the relay's thread). `Err` only when no answer
    /// was ever had.
    pub async fn targets(
        &self,
        waiter: &dyn socket::Waiter,
        name: &str,
        config: &DiscoveryConfig,
        system: &[IpAddr],
        lookups: bool,
    ) -> Result<Arc<SrvAnswer>, String> {
        let now = sys::monotonic_us();
        let cached = self.answer.load_full();
        if let Some(answer) = &cached {
            if now < answer.refresh_at {
                return Ok(answer.clone());
            }
        }
        let server = match config
            .nameserver
            .or_else(|| system.first().map(|ip| SocketAddr::new(*ip, 53)))
        {
            Some(server) => server,
            None => return cached.ok_or_else(|| "no nameserver for SRV lookups".to_string()),
        };
        match query(waiter, name, server, config.timeout_ms, lookups).await {
            Ok((targets, ttl)) => {
                let ttl = (ttl as u64).clamp(config.min_ttl_s, config.max_ttl_s);
                let fresh = Arc::new(SrvAnswer {
                    targets,
                    refresh_at: now + ttl * 1_000_000,
                });
                self.answer.store(Some(fresh.clone()));
                Ok(fresh)
            }
            Err(error) => match cached {
                // Keep the last good answer; ask again after the minimum TTL.
                Some(old) => {
                    let kept = Arc::new(SrvAnswer {
                        targets: old.targets.clone(),
                        refresh_at: now + config.min_ttl_s.max(1) * 1_000_000,
                    });
                    self.answer.store(Some(kept.clone()));
                    Ok(kept)
                }
                None => Err(format!("SRV lookup of {name} at {server} failed: {error}")),
            },
        }
    }

    /// The targets of the last answer, without asking DNS (for "is this a gateway?" checks).
    pub fn known(&self) -> Option<Arc<SrvAnswer>> {
        self.answer.load_full()
    }
}

/// Asks `server` for the SRV records of `name`; the targets and the smallest TTL. A target
/// without an address in the answer is looked up with `getaddrinfo` only if `lookups`.
pub async fn query(
    waiter: &dyn socket::Waiter,
    name: &str,
    server: SocketAddr,
    timeout_ms: u64,
    lookups: bool,
) -> Result<(Vec<SrvTarget>, u32), String> {
    let deadline = socket::Deadline::after_ms(timeout_ms);
    let id = (sys::monotonic_us() as u16) ^ 0x5a5a;
    let question = dns::encode_query(id, name, TYPE_SRV)?;
    let mut reply = socket::exchange_udp_waiting(waiter, &server, &question, UDP_MAX, deadline)
        .await
        .map_err(|e| crate::errno::errno_text(&e))?;
    if parse(&reply, id)?.truncated {
        reply = socket::exchange_tcp_waiting(waiter, &server, &question, deadline)
            .await
            .map_err(|e| crate::errno::errno_text(&e))?;
    }
    let answer = parse(&reply, id)?;
    if answer.rcode != 0 {
        return Err(format!(
            "the nameserver answered with code {}",
            answer.rcode
        ));
    }
    let mut ttl = u32::MAX;
    let mut targets = Vec::new();
    for record in &answer.srv {
        ttl = ttl.min(record.ttl);
        let mut addrs: Vec<SocketAddr> = answer
            .addresses
            .iter()
            .filter(|(owner, _)| owner.eq_ignore_ascii_case(&record.target))
            .map(|(_, ip)| SocketAddr::new(*ip, record.port))
            .collect();
        if addrs.is_empty() && lookups {
            addrs = sys::resolve_real(&record.target, record.port).unwrap_or_default();
        }
        targets.push(SrvTarget {
            priority: record.priority,
            weight: record.weight,
            host: record.target.clone(),
            port: record.port,
            addrs,
        });
    }
    if targets.is_empty() {
        return Err("no SRV records".into());
    }
    Ok((targets, ttl))
}

/// RFC 2782 order: by priority; within a priority, a weighted random order (`random` seeds it).
pub fn rfc2782_order(targets: &[SrvTarget], mut random: u64) -> Vec<&SrvTarget> {
    let mut by_priority: Vec<&SrvTarget> = targets.iter().collect();
    by_priority.sort_by_key(|t| t.priority);
    let mut ordered = Vec::with_capacity(targets.len());
    for group in by_priority.chunk_by(|a, b| a.priority == b.priority) {
        let mut pool: Vec<&SrvTarget> = group.to_vec();
        while !pool.is_empty() {
            let total: u64 = pool.iter().map(|t| t.weight as u64 + 1).sum();
            random = random
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut pick = (random >> 33) % total;
            let index = pool
                .iter()
                .position(|t| {
                    let w = t.weight as u64 + 1;
                    if pick < w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(0);
            ordered.push(pool.remove(index));
        }
    }
    ordered
}

struct SrvRecord {
    priority: u16,
    weight: u16,
    port: u16,
    target: String,
    ttl: u32,
}

struct Parsed {
    truncated: bool,
    rcode: u8,
    srv: Vec<SrvRecord>,
    addresses: Vec<(String, IpAddr)>,
}

fn parse(buf: &[u8], id: u16) -> Result<Parsed, String> {
    let mut r = Reader::new(buf);
    if r.u16()? != id {
        return Err("the DNS answer is for another query".into());
    }
    let flags = r.u16()?;
    if flags & 0x8000 == 0 {
        return Err("the DNS message is not an answer".into());
    }
    let (questions, answers, authority, additional) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    let mut parsed = Parsed {
        truncated: flags & 0x0200 != 0,
        rcode: (flags & 0x000f) as u8,
        srv: Vec::new(),
        addresses: Vec::new(),
    };
    for _ in 0..questions {
        r.name()?;
        r.bytes(4)?;
    }
    for section in 0..3 {
        let count = [answers, authority, additional][section];
        for _ in 0..count {
            let owner = r.name()?;
            let (kind, class, ttl, length) = (r.u16()?, r.u16()?, r.u32()?, r.u16()? as usize);
            let start = r.position();
            let data = r.bytes(length)?;
            if class != CLASS_IN {
                continue;
            }
            match kind {
                TYPE_SRV if length >= 7 => {
                    let mut rd = Reader::at(buf, start);
                    let (priority, weight, port) = (rd.u16()?, rd.u16()?, rd.u16()?);
                    let target = rd.name()?;
                    if port != 0 && !target.is_empty() {
                        parsed.srv.push(SrvRecord {
                            priority,
                            weight,
                            port,
                            target,
                            ttl,
                        });
                    }
                }
                TYPE_A if length == 4 => {
                    parsed.addresses.push((
                        owner,
                        IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
                    ));
                }
                TYPE_AAAA if length == 16 => {
                    let octets: [u8; 16] = data.try_into().expect("16 bytes");
                    parsed
                        .addresses
                        .push((owner, IpAddr::V6(Ipv6Addr::from(octets))));
                }
                _ => {}
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer for `_gw._tcp.x` with two SRV records (the second target compressed) and an A
    /// record for the first target in the additional section.
    fn answer(id: u16) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&0x8180u16.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 2, 0, 0, 0, 1]);
        let question_at = m.len();
        m.extend_from_slice(b"\x03_gw\x04_tcp\x01x\x00");
        m.extend_from_slice(&[0, 33, 0, 1]);
        // SRV 1: priority 10 weight 5 port 3128 target gw1.x
        m.extend_from_slice(&[0xc0, question_at as u8, 0, 33, 0, 1, 0, 0, 0, 30]);
        let target1 = b"\x03gw1\x01x\x00";
        m.extend_from_slice(&((6 + target1.len()) as u16).to_be_bytes());
        m.extend_from_slice(&[0, 10, 0, 5, 0x0c, 0x38]);
        let target1_at = m.len();
        m.extend_from_slice(target1);
        // SRV 2: priority 20 weight 0 port 3129 target gw2 + pointer to ".x"
        m.extend_from_slice(&[0xc0, question_at as u8, 0, 33, 0, 1, 0, 0, 0, 60]);
        m.extend_from_slice(&(6 + 4 + 2u16).to_be_bytes());
        m.extend_from_slice(&[0, 20, 0, 0, 0x0c, 0x39]);
        m.extend_from_slice(b"\x03gw2");
        m.extend_from_slice(&[0xc0, (target1_at + 4) as u8]);
        // A gw1.x 127.0.0.7
        m.extend_from_slice(&[
            0xc0,
            target1_at as u8,
            0,
            1,
            0,
            1,
            0,
            0,
            0,
            30,
            0,
            4,
            127,
            0,
            0,
            7,
        ]);
        m
    }

    #[test]
    fn parses_srv_with_compression_and_additional_addresses() {
        let parsed = parse(&answer(7), 7).unwrap();
        assert_eq!(parsed.srv.len(), 2);
        assert_eq!(
            (
                parsed.srv[0].priority,
                parsed.srv[0].port,
                parsed.srv[0].target.as_str()
            ),
            (10, 3128, "gw1.x")
        );
        assert_eq!(parsed.srv[1].target, "gw2.x");
        assert_eq!(
            parsed.addresses,
            [("gw1.x".to_string(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7)))]
        );
        assert!(parse(&answer(7), 8).is_err(), "another query's answer");
    }

    #[test]
    fn hostile_answers_are_errors_not_panics() {
        let good = answer(9);
        for cut in 0..good.len() {
            let _ = parse(&good[..cut], 9);
        }
        let mut looping = good.clone();
        let at = looping.len() - 16;
        looping[at + 1] = at as u8; // a pointer to itself
        assert!(parse(&looping, 9).is_err());
        for i in 12..good.len() {
            let mut flipped = good.clone();
            flipped[i] ^= 0xff;
            let _ = parse(&flipped, 9);
        }
    }

    #[test]
    fn rfc2782_priority_then_weight() {
        let t = |priority, weight, host: &str| SrvTarget {
            priority,
            weight,
            host: host.into(),
            port: 1,
            addrs: vec![],
        };
        let targets = [t(20, 0, "backup"), t(10, 100, "heavy"), t(10, 0, "light")];
        let mut heavy_first = 0;
        for seed in 0..1000u64 {
            let order = rfc2782_order(&targets, seed.wrapping_mul(0x9e3779b97f4a7c15));
            assert_eq!(
                order[2].host, "backup",
                "a lower priority always comes last"
            );
            if order[0].host == "heavy" {
                heavy_first += 1;
            }
        }
        assert!(
            heavy_first > 900,
            "weight 100 vs 0 goes first almost always ({heavy_first}/1000)"
        );
    }
}
