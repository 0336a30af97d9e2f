//! A tiny DNS server for SRV discovery tests: on 127.0.0.1 (UDP), it answers SRV queries with
//! the records it is given (each target's A record in the additional section), counts queries,
//! and can be told to go silent.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// One SRV record: priority, weight, and the target's address (its name is made up).
#[derive(Clone, Debug)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub target: SocketAddr,
}

pub struct SrvServer {
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<SrvRecord>>>,
    silent: Arc<AtomicBool>,
    queries: Arc<AtomicUsize>,
}

impl SrvServer {
    pub fn start(records: Vec<SrvRecord>, ttl: u32) -> SrvServer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let records = Arc::new(Mutex::new(records));
        let silent = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let (r, s, q) = (records.clone(), silent.clone(), queries.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                q.fetch_add(1, Ordering::Relaxed);
                if s.load(Ordering::Relaxed) || n < 12 {
                    continue;
                }
                let reply = answer(&buf[..n], &r.lock().unwrap(), ttl);
                let _ = socket.send_to(&reply, peer);
            }
        });
        SrvServer {
            addr,
            records,
            silent,
            queries,
        }
    }

    pub fn set_records(&self, records: Vec<SrvRecord>) {
        *self.records.lock().unwrap() = records;
    }

    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::Relaxed);
    }

    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }
}

fn name(labels: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for label in labels {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// The answer to `query` (its question echoed), uncompressed.
fn answer(query: &[u8], records: &[SrvRecord], ttl: u32) -> Vec<u8> {
    let question_end = {
        let mut pos = 12;
        while pos < query.len() && query[pos] != 0 {
            pos += 1 + query[pos] as usize;
        }
        (pos + 5).min(query.len())
    };
    let mut m = Vec::new();
    m.extend_from_slice(&query[..2]);
    m.extend_from_slice(&[0x81, 0x80, 0, 1]);
    m.extend_from_slice(&(records.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&(records.len() as u16).to_be_bytes());
    let owner = query[12..question_end - 4].to_vec();
    m.extend_from_slice(&query[12..question_end]);
    let target_name = |i: usize| name(&[&format!("gw{i}"), "test"]);
    for (i, record) in records.iter().enumerate() {
        let target = target_name(i);
        m.extend_from_slice(&owner);
        m.extend_from_slice(&[0, 33, 0, 1]);
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&((6 + target.len()) as u16).to_be_bytes());
        m.extend_from_slice(&record.priority.to_be_bytes());
        m.extend_from_slice(&record.weight.to_be_bytes());
        m.extend_from_slice(&record.target.port().to_be_bytes());
        m.extend_from_slice(&target);
    }
    for (i, record) in records.iter().enumerate() {
        m.extend_from_slice(&target_name(i));
        m.extend_from_slice(&[0, 1, 0, 1]);
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&[0, 4]);
        let ip = match record.target.ip() {
            std::net::IpAddr::V4(v4) => v4,
            _ => Ipv4Addr::LOCALHOST,
        };
        m.extend_from_slice(&ip.octets());
    }
    m
}
