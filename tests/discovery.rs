//! Gateway endpoints found by DNS SRV (RFC 2782) from a nameserver of the test's own: priority
//! order, failover between targets, refresh after the TTL, and the last good answer kept when
//! the nameserver goes quiet.

use std::io::{BufRead, BufReader};

use crate::support::dns::{SrvRecord, SrvServer};
use crate::support::*;

fn config(scratch: &Scratch, dns: std::net::SocketAddr, ttl_bounds: &str) -> std::path::PathBuf {
    Config::new()
        .log(scratch.log_path())
        .table(
            "discovery",
            &[
                &format!("nameserver = \"{dns}\""),
                "timeout_ms = 300",
                ttl_bounds,
            ],
        )
        .gateway("corp", "http", &["srv:_gateway._tcp.proxy.service.consul"])
        .gateway_option("connect_timeout_ms = 3000")
        .via("*.example.test", "corp")
        .write(scratch)
}

fn record(priority: u16, weight: u16, target: std::net::SocketAddr) -> SrvRecord {
    SrvRecord {
        priority,
        weight,
        target,
    }
}

/// One request per line read on stdin (so the test decides when), each printing the body or
/// the errno.
const ON_DEMAND: &str = r#"
import sys, urllib.request
for line in sys.stdin:
    try:
        print(urllib.request.urlopen("http://api.example.test/", timeout=20).read().decode(), flush=True)
    except OSError as e:
        print("error", getattr(getattr(e, "reason", e), "errno", None), flush=True)
"#;

/// A program under the library that makes a request whenever `request()` is called.
struct Client {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Client {
    fn start(config: &std::path::Path) -> Client {
        let mut child = Run::python(ON_DEMAND).config(config).stdin_piped().spawn();
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Client {
            child,
            stdin,
            lines,
        }
    }

    fn request(&mut self) -> String {
        use std::io::Write;
        writeln!(self.stdin, "go").unwrap();
        self.lines.next().expect("an answer").unwrap()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn endpoints_used(scratch: &Scratch) -> Vec<String> {
    events(&scratch.log(), "connect")
        .iter()
        .map(|e| e["endpoint"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn srv_targets_in_priority_order_with_failover() {
    let origin = Origin::start("origin");
    let primary = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let backup = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let dead = closed_port();
    let dns = SrvServer::start(
        vec![record(20, 0, backup.addr), record(10, 0, primary.addr)],
        60,
    );
    let scratch = Scratch::new("srv");
    let mut client = Client::start(&config(&scratch, dns.addr, ""));
    assert_eq!(client.request(), "hello from origin");
    assert_eq!(primary.request_lines().len(), 1, "priority 10 before 20");
    drop(client);

    // A dead priority-10 target: the connection fails over to the priority-20 one.
    let dns = SrvServer::start(vec![record(10, 0, dead), record(20, 0, backup.addr)], 60);
    let scratch = Scratch::new("srv-failover");
    let mut client = Client::start(&config(&scratch, dns.addr, ""));
    assert_eq!(client.request(), "hello from origin");
    let log = scratch.log();
    let attempts = events(&log, "connect")[0]["attempts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts[0]["endpoint"],
        "gw0.test:".to_string()
            + &dead.port().to_string()
            + " (srv:_gateway._tcp.proxy.service.consul)"
    );
    assert_eq!(attempts[0]["result"], "ECONNREFUSED");
    assert_eq!(attempts[1]["result"], "ok");
}

#[test]
fn answers_are_refreshed_after_their_ttl_and_kept_when_dns_goes_quiet() {
    let origin = Origin::start("origin");
    let first = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let second = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let dns = SrvServer::start(vec![record(10, 0, first.addr)], 1);
    let scratch = Scratch::new("srv-ttl");
    let mut client = Client::start(&config(&scratch, dns.addr, "min_ttl_s = 1\nmax_ttl_s = 1"));
    assert_eq!(client.request(), "hello from origin");
    assert_eq!(client.request(), "hello from origin");
    assert_eq!(dns.queries(), 1, "the answer is cached for its TTL");

    // The service moves: after the TTL the next connection asks again and follows it.
    dns.set_records(vec![record(10, 0, second.addr)]);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(client.request(), "hello from origin");
    assert_eq!(second.request_lines().len(), 1);

    // The nameserver goes quiet: the last good answer keeps working.
    dns.go_silent();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(client.request(), "hello from origin");
    assert_eq!(second.request_lines().len(), 2);
    let used = endpoints_used(&scratch);
    assert_eq!(
        used,
        [
            first.addr.to_string(),
            first.addr.to_string(),
            second.addr.to_string(),
            second.addr.to_string()
        ]
    );
}

#[test]
fn with_no_answer_ever_the_connection_fails_closed() {
    let origin = Origin::start("origin");
    let dns = SrvServer::start(vec![], 60);
    dns.go_silent();
    let scratch = Scratch::new("srv-none");
    let mut client = Client::start(&config(&scratch, dns.addr, ""));
    assert_eq!(client.request(), format!("error {}", libc::EHOSTUNREACH));
    let log = scratch.log();
    let c = events(&log, "connect")[0].clone();
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .contains("SRV lookup of _gateway._tcp.proxy.service.consul"),
        "{c}"
    );
    assert!(origin.requests().is_empty());
}
