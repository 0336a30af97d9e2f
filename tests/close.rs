//! What each connection carried (issue 16): one `close` line per connection the library
//! decided, with its duration and the program's payload each way, whether the program closes
//! it, exits with it open, or shares it with a fork child. Real clients (curl, Python, Node)
//! fetch known sizes from a loopback origin, direct and through real gateway listeners.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::support::*;
use serde_json::Value;

/// An HTTP origin on 127.0.0.1 that answers `GET /<n>` (or a POST to it) with a response of
/// exactly `n` bytes, head included, and records each exchange's bytes as (request, response).
struct SizedOrigin {
    addr: SocketAddr,
    exchanges: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl SizedOrigin {
    fn start() -> SizedOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let seen = exchanges.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                thread::spawn(move || serve(stream, &seen));
            }
        });
        SizedOrigin { addr, exchanges }
    }

    fn exchanges(&self) -> Vec<(u64, u64)> {
        self.exchanges.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, seen: &Mutex<Vec<(u64, u64)>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let head = read_head(&mut stream);
    let mut request = head.len() as u64;
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<u64>().ok())?
        })
        .unwrap_or(0);
    let mut body = Vec::new();
    let _ = (&mut stream).take(length).read_to_end(&mut body);
    request += body.len() as u64;
    let size: usize = head
        .split_whitespace()
        .nth(1)
        .and_then(|path| path.trim_start_matches('/').parse().ok())
        .unwrap_or(200);
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\nContent-Length: {:010}\r\n\r\n",
        0
    );
    let body_length = size.saturating_sub(reply.len());
    reply = reply.replace("0000000000", &format!("{body_length:010}"));
    let mut bytes = reply.into_bytes();
    bytes.resize(bytes.len() + body_length, b'x');
    let _ = stream.write_all(&bytes);
    seen.lock().unwrap().push((request, bytes.len() as u64));
    // The end of the response, for clients that read to the end; then wait for the client's
    // close, so that the socket is not reset under it.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.read(&mut [0u8; 1]);
}

struct Gateways {
    origin: SizedOrigin,
    http: ConnectProxy,
    socks: Socks5Server,
}

impl Gateways {
    fn start() -> Gateways {
        let origin = SizedOrigin::start();
        let http = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
        let socks = Socks5Server::start(origin.addr, None, 0);
        Gateways {
            origin,
            http,
            socks,
        }
    }

    /// A config that sends `*.gw.test` through the HTTP CONNECT gateway and `*.socks.test`
    /// through the SOCKS5 one, logging to the scratch directory; the rest goes direct.
    fn config(&self, scratch: &Scratch) -> Config {
        Config::new()
            .default("direct")
            .log(scratch.log_path())
            .gateway("corp", "http", &[self.http.addr])
            .gateway("sock", "socks5", &[self.socks.addr])
            .via("*.gw.test", "corp")
            .via("*.socks.test", "sock")
    }
}

/// Asserts that `close` carries `connect`'s identity, and the payload of `exchange`.
fn assert_close_matches(connect: &Value, close: &Value, exchange: (u64, u64)) {
    for key in [
        "pid", "exe", "proto", "host", "port", "dst", "rule", "action", "gateway",
    ] {
        assert_eq!(connect[key], close[key], "{key}: {connect}\n{close}");
    }
    if connect["action"] == "gateway" {
        assert!(close["endpoint"].is_string(), "{close}");
        assert_eq!(connect["endpoint"].is_string(), connect["result"] == "ok");
    }
    assert_eq!(close["bytes_sent"], exchange.0, "{close}");
    assert_eq!(close["bytes_received"], exchange.1, "{close}");
    assert!(close["duration_ms"].as_u64().is_some(), "{close}");
    let ended = close["ended"].as_str().unwrap();
    assert!(
        [
            "closed by the program",
            "closed by the peer",
            "reset",
            "exit"
        ]
        .contains(&ended),
        "{close}"
    );
}

/// The one `connect` line and the one `close` line for `host`.
fn pair<'a>(log: &'a [Value], host: &str) -> (&'a Value, &'a Value) {
    let of = |kind: &str| -> Vec<&'a Value> {
        log.iter()
            .filter(|e| e["event"] == kind && e["host"] == host)
            .collect()
    };
    let (connects, closes) = (of("connect"), of("close"));
    assert_eq!(connects.len(), 1, "{host}: {log:#?}");
    assert_eq!(closes.len(), 1, "{host}: {log:#?}");
    (connects[0], closes[0])
}

#[test]
fn curl_direct_and_through_both_gateways_logs_the_payload_each_way() {
    let g = Gateways::start();
    let scratch = Scratch::new("close-curl");
    let config = g.config(&scratch).write(&scratch);
    let upload = scratch.dir.join("upload");
    std::fs::write(&upload, vec![b'u'; 5000]).unwrap();
    let port = g.origin.addr.port();
    for (url, name) in [
        (format!("http://direct.test:{port}/100000"), "direct.test"),
        (
            format!("http://files.gw.test:{port}/100000"),
            "files.gw.test",
        ),
        (
            format!("http://files.socks.test:{port}/100000"),
            "files.socks.test",
        ),
    ] {
        let out = Run::new(
            "curl",
            &[
                "-sS",
                "--max-time",
                "20",
                "-o",
                "/dev/null",
                "--data-binary",
                &format!("@{}", upload.display()),
                &url,
            ],
        )
        .host_entry("127.0.0.1", "direct.test")
        .config(&config)
        .output();
        out.success();
        let exchanges = g.origin.exchanges();
        let exchange = *exchanges.last().unwrap();
        assert!(exchange.0 > 5000 && exchange.1 == 100_000, "{exchange:?}");
        let log = scratch.log();
        let (connect, close) = pair(&log, name);
        assert_close_matches(connect, close, exchange);
        assert_eq!(close["exe"], "curl");
    }
    assert_eq!(g.origin.exchanges().len(), 3);
}

#[test]
fn python_blocking_and_asyncio_connections_through_gateways_are_counted_exactly() {
    let g = Gateways::start();
    let scratch = Scratch::new("close-python");
    let config = g.config(&scratch).write(&scratch);
    let port = g.origin.addr.port();
    // A blocking socket (the synchronous handshake, bytes counted on the program's socket less
    // the handshake) and asyncio (the relay, less its filler).
    let script = format!(
        r#"
import asyncio, socket
def blocking(host, size):
    # No timeout: Python makes a socket with one non-blocking (and so relayed).
    s = socket.create_connection((host, {port}))
    s.sendall(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    got = 0
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        got += len(chunk)
    s.close()
    return got
async def nonblocking(host, size):
    r, w = await asyncio.open_connection(host, {port})
    w.write(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    data = await r.read()
    w.close()
    await w.wait_closed()
    return len(data)
print(blocking("sync.gw.test", 70000), blocking("sync.socks.test", 3000))
print(asyncio.run(nonblocking("async.gw.test", 250000)), asyncio.run(nonblocking("async.socks.test", 999)))
"#
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(out.success(), "70000 3000\n250000 999\n");
    let log = scratch.log();
    let exchanges = g.origin.exchanges();
    assert_eq!(exchanges.len(), 4);
    for (host, size) in [
        ("sync.gw.test", 70000),
        ("sync.socks.test", 3000),
        ("async.gw.test", 250000),
        ("async.socks.test", 999),
    ] {
        let exchange = *exchanges.iter().find(|e| e.1 == size).unwrap();
        let (connect, close) = pair(&log, host);
        assert_close_matches(connect, close, exchange);
        let relayed = host.starts_with("async");
        assert_eq!(connect["handshake"] == "relay", relayed, "{connect}");
    }
}

#[test]
fn node_fetch_through_a_gateway_is_counted_and_its_exit_writes_what_stayed_open() {
    let g = Gateways::start();
    let scratch = Scratch::new("close-node");
    let config = g.config(&scratch).write(&scratch);
    let port = g.origin.addr.port();
    // Node's fetch pools the connection (keep-alive); the origin's `Connection: close` ends it.
    // A second, raw socket is left open when the process exits: its line says `exit`.
    let script = format!(
        r#"
const net = require('net');
(async () => {{
  const r = await fetch('http://api.gw.test:{port}/123456');
  const body = await r.arrayBuffer();
  console.log(body.byteLength);
  const s = net.connect({port}, 'open.socks.test', () => {{
    s.write('GET /777 HTTP/1.1\r\nHost: x\r\n\r\n');
  }});
  let got = 0;
  s.on('data', d => {{
    got += d.length;
    if (got === 777) {{ console.log(got); process.exit(0); }}
  }});
}})();
"#
    );
    let out = Run::node(&script).config(&config).output();
    let exchanges = g.origin.exchanges();
    let log = scratch.log();
    let fetched = *exchanges.iter().find(|e| e.1 == 123456).unwrap();
    assert!(out.success().starts_with("123"), "{}", out.describe());
    let (connect, close) = pair(&log, "api.gw.test");
    assert_close_matches(connect, close, fetched);
    let open = *exchanges.iter().find(|e| e.1 == 777).unwrap();
    let (connect, close) = pair(&log, "open.socks.test");
    assert_close_matches(connect, close, open);
    assert_eq!(close["ended"], "exit", "{close}");
}

#[test]
fn a_program_that_exits_with_sockets_open_gets_their_lines_and_dup2_over_one_writes_it() {
    let g = Gateways::start();
    let scratch = Scratch::new("close-exit");
    let config = g.config(&scratch).write(&scratch);
    let port = g.origin.addr.port();
    // libc's exit() without Python closing anything first: the library's exit handler writes
    // the lines. dup2 over a connected socket ends that connection for the program.
    let script = format!(
        r#"
import ctypes, os, socket
def fetch(host, size):
    s = socket.create_connection((host, {port}), timeout=10)
    s.sendall(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    got = 0
    while got < size:
        got += len(s.recv(65536))
    return s
kept = [fetch("kept.gw.test", 4321), fetch("kept.socks.test", 1234)]
replaced = fetch("replaced.gw.test", 555)
null = os.open("/dev/null", os.O_RDONLY)
os.dup2(null, replaced.fileno())
print("done", flush=True)
ctypes.CDLL(None).exit(0)
"#
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(out.success(), "done\n");
    let log = scratch.log();
    let exchanges = g.origin.exchanges();
    for (host, size, ended) in [
        ("kept.gw.test", 4321, Some("exit")),
        ("kept.socks.test", 1234, Some("exit")),
        ("replaced.gw.test", 555, None),
    ] {
        let exchange = *exchanges.iter().find(|e| e.1 == size).unwrap();
        let (connect, close) = pair(&log, host);
        assert_close_matches(connect, close, exchange);
        match ended {
            Some(ended) => assert_eq!(close["ended"], ended),
            None => assert_ne!(close["ended"], "exit"),
        }
    }
}

#[test]
fn a_fork_child_closing_an_inherited_socket_writes_no_second_line() {
    let g = Gateways::start();
    let scratch = Scratch::new("close-fork");
    let config = g.config(&scratch).write(&scratch);
    let port = g.origin.addr.port();
    let script = format!(
        r#"
import os, socket, sys
s = socket.create_connection(("shared.gw.test", {port}), timeout=10)
pid = os.fork()
if pid == 0:
    # The child closes its copy and exits normally (exit handlers run).
    s.close()
    sys.exit(0)
os.waitpid(pid, 0)
s.sendall(b"GET /2048 HTTP/1.1\r\nHost: x\r\n\r\n")
got = 0
while got < 2048:
    got += len(s.recv(65536))
s.close()
print(got)
"#
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(out.success(), "2048\n");
    let log = scratch.log();
    let exchange = *g.origin.exchanges().iter().find(|e| e.1 == 2048).unwrap();
    let (connect, close) = pair(&log, "shared.gw.test");
    // The parent's line (`pair` found only one), with everything the parent carried.
    assert_close_matches(connect, close, exchange);
}

#[test]
fn the_ecs_format_maps_duration_and_bytes() {
    let g = Gateways::start();
    let scratch = Scratch::new("close-ecs");
    let config = g
        .config(&scratch)
        .log_option("format = \"ecs\"")
        .write(&scratch);
    let port = g.origin.addr.port();
    let out = Run::new(
        "curl",
        &[
            "-sS",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            &format!("http://ecs.gw.test:{port}/65000"),
        ],
    )
    .config(&config)
    .output();
    out.success();
    let (request, response) = g.origin.exchanges()[0];
    let log = scratch.log();
    let closes: Vec<&Value> = log
        .iter()
        .filter(|e| e["event.action"] == "close-redirected")
        .collect();
    assert_eq!(closes.len(), 1, "{log:#?}");
    let close = closes[0];
    assert_eq!(close["source.bytes"], request, "{close}");
    assert_eq!(close["destination.bytes"], response, "{close}");
    assert_eq!(close["network.bytes"], request + response, "{close}");
    assert!(close["event.duration"].as_u64().is_some(), "{close}");
    assert_eq!(close["destination.domain"], "ecs.gw.test");
    assert_eq!(close["mcp_redirect.gateway.name"], "corp");
    assert_eq!(
        close["event.type"],
        serde_json::json!(["connection", "end"])
    );
    assert!(close["mcp_redirect.ended"].is_string(), "{close}");
}

#[test]
fn close_lines_can_be_turned_off_and_follow_log_direct() {
    let g = Gateways::start();
    let port = g.origin.addr.port();
    let fetch = |config: &std::path::Path| {
        let script = format!(
            r#"
import socket
for host in ["off.gw.test", "direct.test"]:
    s = socket.create_connection((host, {port}), timeout=10)
    s.sendall(b"GET /300 HTTP/1.1\r\nHost: x\r\n\r\n")
    while s.recv(65536): pass
    s.close()
"#
        );
        Run::python(&script)
            .host_entry("127.0.0.1", "direct.test")
            .config(config)
            .output()
            .success()
            .to_string();
    };
    let kinds = |log: &[Value]| -> Vec<(String, String)> {
        log.iter()
            .map(|e| {
                (
                    e["event"].as_str().unwrap_or("").to_string(),
                    e["host"].as_str().unwrap_or("").to_string(),
                )
            })
            .filter(|(event, _)| event != "resolve")
            .collect()
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };

    let scratch = Scratch::new("close-off");
    let config = g
        .config(&scratch)
        .log_option("close = false")
        .write(&scratch);
    fetch(&config);
    assert_eq!(
        kinds(&scratch.log()),
        pairs(&[("connect", "off.gw.test"), ("connect", "direct.test")])
    );

    let scratch = Scratch::new("close-no-direct");
    let config = g
        .config(&scratch)
        .log_option("direct = false")
        .write(&scratch);
    fetch(&config);
    assert_eq!(
        kinds(&scratch.log()),
        pairs(&[("connect", "off.gw.test"), ("close", "off.gw.test")])
    );
}

#[test]
fn report_totals_bytes_per_host_gateway_and_process_in_both_formats() {
    let g = Gateways::start();
    let port = g.origin.addr.port();
    for format in ["native", "ecs"] {
        let scratch = Scratch::new("close-report");
        let config = g
            .config(&scratch)
            .log_option(&format!("format = \"{format}\""))
            .write(&scratch);
        let script = format!(
            r#"
import socket
for host, size in [("a.gw.test", 1000), ("a.gw.test", 3000), ("b.socks.test", 500)]:
    s = socket.create_connection((host, {port}))
    s.sendall(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    while s.recv(65536): pass
    s.close()
"#
        );
        Run::python(&script).config(&config).output().success();
        let exchanges = g.origin.exchanges();
        let last = &exchanges[exchanges.len() - 3..];
        let sent_a = last[0].0 + last[1].0;
        let sent_b = last[2].0;

        let out = std::process::Command::new(cli_exe())
            .args(["report", "--json"])
            .arg(scratch.log_path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let traffic = &report["traffic"];
        assert_eq!(traffic["closes"], 3, "{format}: {traffic:#}");
        assert_eq!(traffic["bytes_sent"], sent_a + sent_b, "{traffic:#}");
        assert_eq!(traffic["bytes_received"], 4500, "{traffic:#}");
        let hosts = &traffic["by_host"]["entries"];
        assert_eq!(hosts[0]["host"], "a.gw.test", "{traffic:#}");
        assert_eq!(hosts[0]["sent"], sent_a);
        assert_eq!(hosts[0]["received"], 4000);
        assert_eq!(hosts[0]["connections"], 2);
        assert_eq!(hosts[1]["host"], "b.socks.test");
        assert_eq!(hosts[1]["received"], 500);
        let gateways = &traffic["by_gateway"]["entries"];
        assert_eq!(gateways[0]["gateway"], "corp");
        assert_eq!(gateways[0]["received"], 4000);
        assert_eq!(gateways[1]["gateway"], "sock");
        assert_eq!(traffic["by_process"]["entries"][0]["received"], 4500);
        assert_eq!(traffic["longest"].as_array().unwrap().len(), 3);

        let out = std::process::Command::new(cli_exe())
            .arg("report")
            .arg(scratch.log_path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let expected = format!(
            "Traffic: 3 connections closed, {} bytes sent, 4500 received",
            sent_a + sent_b
        );
        assert!(text.contains(&expected), "{text}");
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with("a.gw.test") && l.contains(" 4000"))
            .unwrap_or_else(|| panic!("{text}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells, ["a.gw.test", "2", &sent_a.to_string(), "4000"]);
    }
}
