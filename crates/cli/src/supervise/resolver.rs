//! The supervisor's DNS resolver, for programs with their own (Go, static glibc, musl, c-ares):
//! their connects to port 53 are connected here instead. Routed and denied names get fake
//! addresses (the library's lookup decision, `lookup::decide_lookup`); other queries go to the
//! system's nameservers, and the addresses they answer are remembered, so later connects are
//! decided by name.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;

use mcp_redirect_core::dns;
use mcp_redirect_core::lookup::{self, Answer};
use mcp_redirect_core::runtime::Runtime;
use mcp_redirect_core::sys::socket;

/// The supervisor's DNS resolver, on loopback (UDP and TCP).
pub struct Resolver {
    udp: SocketAddr,
    tcp: SocketAddr,
}

/// How long an answer from us may be cached: short, so that rule changes show.
const ANSWER_TTL: u32 = 5;

impl Resolver {
    pub fn start(rt: Arc<Runtime>) -> std::io::Result<Resolver> {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        let resolver = Resolver {
            udp: udp.local_addr()?,
            tcp: tcp.local_addr()?,
        };
        let udp_rt = rt.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = udp.recv_from(&mut buf) {
                if let Some(reply) = answer(&udp_rt, &buf[..n]) {
                    let _ = udp.send_to(&reply, peer);
                }
            }
        });
        std::thread::spawn(move || {
            for stream in tcp.incoming().flatten() {
                let rt = rt.clone();
                std::thread::spawn(move || serve_tcp(&rt, stream));
            }
        });
        Ok(resolver)
    }

    /// Connects the caller's socket (our copy) to the resolver of its kind, in its family.
    pub fn connect(&self, fd: i32, asked: SocketAddr) -> Result<i64, i32> {
        let ours = match socket::socket_type(fd) {
            Some(libc::SOCK_DGRAM) => self.udp,
            _ => self.tcp,
        };
        let target = match (asked, ours) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
                SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
            }
            _ => ours,
        };
        socket::connect_once(fd, &target)
            .map(|()| 0)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// DNS over TCP: two-byte length, message; as many as the client sends.
fn serve_tcp(rt: &Runtime, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    loop {
        let mut length = [0u8; 2];
        if stream.read_exact(&mut length).is_err() {
            return;
        }
        let mut query = vec![0u8; u16::from_be_bytes(length) as usize];
        if stream.read_exact(&mut query).is_err() {
            return;
        }
        let Some(reply) = answer(rt, &query) else {
            return;
        };
        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).is_err() {
            return;
        }
    }
}

/// The answer to one query: fake addresses for routed and denied names, the system's
/// nameservers' answer for the rest (whose addresses are remembered for later connects).
fn answer(rt: &Runtime, query: &[u8]) -> Option<Vec<u8>> {
    let question = dns::parse_query(query).ok()?;
    if question.qclass != dns::CLASS_IN {
        return forward(rt, query);
    }
    match lookup::decide_lookup(rt, question.name.as_bytes()) {
        Answer::PassThrough => forward(rt, query),
        Answer::Refuse(_) => Some(dns::build_answer(
            query,
            &question,
            &[],
            0,
            dns::RCODE_NXDOMAIN,
        )),
        Answer::Fake { fake, .. } => {
            let addresses = [fake.ipv4.into(), fake.ipv6.into()];
            Some(dns::build_answer(
                query, &question, &addresses, ANSWER_TTL, 0,
            ))
        }
        Answer::Real { host, decision } => {
            let reply = forward(rt, query)?;
            if let Ok((rcode, addresses)) = dns::answer_addresses(&reply) {
                lookup::remember_in(
                    rt,
                    &host,
                    decision,
                    &addresses,
                    if rcode == 0 { 0 } else { libc::EAI_NONAME },
                );
            }
            Some(reply)
        }
        Answer::RealOrFake { host, decision } => {
            let reply = forward(rt, query);
            match reply.as_deref().map(dns::answer_addresses) {
                Some(Ok((0, addresses))) if !addresses.is_empty() => {
                    lookup::remember_in(rt, &host, decision, &addresses, 0);
                    reply
                }
                _ => {
                    let fake = lookup::fake_fallback_in(rt, &host, decision).ok()?;
                    let addresses = [fake.ipv4.into(), fake.ipv6.into()];
                    Some(dns::build_answer(
                        query, &question, &addresses, ANSWER_TTL, 0,
                    ))
                }
            }
        }
    }
}

/// The system's nameservers' answer to `query`, or SERVFAIL-less silence when none answers
/// (the client then retries or gives up, as with any dead nameserver).
pub fn forward(rt: &Runtime, query: &[u8]) -> Option<Vec<u8>> {
    for server in &rt.nameservers {
        let server = SocketAddr::new(*server, 53);
        let deadline = socket::Deadline::after_ms(2000);
        let Ok(reply) = socket::exchange_udp(&server, query, 4096, deadline) else {
            continue;
        };
        let truncated = reply.get(2).is_some_and(|b| b & 0x02 != 0);
        if truncated {
            if let Ok(full) = socket::exchange_tcp(&server, query, deadline) {
                return Some(full);
            }
        }
        return Some(reply);
    }
    None
}
