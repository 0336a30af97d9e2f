//! Gateways that misbehave: garbage, a 200 with no blank line, 64 KiB of headers, a reply one
//! byte at a time, a reply that never ends, a close in mid-handshake. Every case ends within the
//! budget with a clear errno and log line, and leaves the caller's socket unconnected.

use crate::support::*;

fn config(scratch: &Scratch, kind: &str, endpoint: std::net::SocketAddr) -> std::path::PathBuf {
    Config::new()
        .log(scratch.log_path())
        .gateway("g", kind, &[endpoint])
        .gateway_option("connect_timeout_ms = 1500")
        .via("*.example.test", "g")
        .write(scratch)
}

/// Connects to api.example.test:80 and prints the errno (or "ok" and the body), then whether
/// the socket is still connected.
const CLIENT: &str = r#"
import socket
s = socket.socket()
try:
    s.connect(("api.example.test", 80))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    print("ok", s.recv(4096).decode().split("\r\n\r\n")[-1])
except OSError as e:
    print(e.errno)
    try:
        s.getpeername()
        print("still connected")
    except OSError:
        print("unconnected")
"#;

fn outcome(behaviour: ProxyBehaviour) -> (Vec<String>, serde_json::Value) {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, behaviour);
    let scratch = Scratch::new("hostile");
    let out = Run::python(CLIENT)
        .config(&config(&scratch, "http", proxy.addr))
        .output();
    let lines = out.success().lines().map(str::to_string).collect();
    let event = events(&scratch.log(), "connect")[0].clone();
    (lines, event)
}

fn refused(lines: &[String]) {
    assert_eq!(
        lines,
        [libc::ECONNREFUSED.to_string(), "unconnected".to_string()]
    );
}

#[test]
fn garbage() {
    let (lines, event) = outcome(ProxyBehaviour::Raw(b"\x00\xffgarbage\r\n\r\n".to_vec()));
    refused(&lines);
    assert!(
        event["error"].as_str().unwrap().contains("malformed"),
        "{event}"
    );
}

#[test]
fn a_200_with_no_blank_line() {
    let (lines, event) = outcome(ProxyBehaviour::Raw(
        b"HTTP/1.1 200 Connection established\r\nVia: x\r\n".to_vec(),
    ));
    refused(&lines);
    assert!(
        event["error"]
            .as_str()
            .unwrap()
            .contains("without ending the reply"),
        "{event}"
    );
}

#[test]
fn sixty_four_kib_of_headers() {
    let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
    while reply.len() < 64 * 1024 {
        reply.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    reply.extend_from_slice(b"\r\n");
    let (lines, event) = outcome(ProxyBehaviour::Raw(reply));
    refused(&lines);
    assert!(
        event["error"]
            .as_str()
            .unwrap()
            .contains("longer than 16384 bytes"),
        "{event}"
    );
}

#[test]
fn a_reply_one_byte_at_a_time_still_works() {
    let (lines, event) = outcome(ProxyBehaviour::Trickle {
        bytes: b"HTTP/1.1 200 Connection established\r\nVia: slow\r\n\r\n".to_vec(),
        pause_ms: 5,
        then_hang: false,
    });
    assert_eq!(lines, ["ok hello from origin"]);
    assert_eq!(event["result"], "ok");
}

#[test]
fn a_reply_that_never_ends_times_out_within_the_budget() {
    let (lines, event) = outcome(ProxyBehaviour::Trickle {
        bytes: b"HTTP/1.1 200 OK\r\nX-Slow: ".to_vec(),
        pause_ms: 1,
        then_hang: true,
    });
    assert_eq!(
        lines,
        [libc::ETIMEDOUT.to_string(), "unconnected".to_string()]
    );
    assert!(
        event["elapsed_us"].as_u64().unwrap() < 1_500_000 + 500_000,
        "bounded by connect_timeout_ms: {event}"
    );
}

#[test]
fn a_close_in_mid_handshake() {
    let (lines, event) = outcome(ProxyBehaviour::Raw(b"HTTP/1.1 20".to_vec()));
    refused(&lines);
    assert!(
        event["error"]
            .as_str()
            .unwrap()
            .contains("gateway closed the connection"),
        "{event}"
    );
}

#[test]
fn socks5_servers_that_misbehave() {
    for (reply, expect) in [
        (b"\x04\x5a".to_vec(), "not a SOCKS5 server"),
        (
            b"\x05\x00\x05\x00\x00".to_vec(),
            "gateway closed the connection",
        ),
        (b"\x05\x00\x05\x00\x00\x07".to_vec(), "address type 7"),
    ] {
        let gateway = raw_responder(reply);
        let scratch = Scratch::new("hostile-socks");
        let out = Run::python(CLIENT)
            .config(&config(&scratch, "socks5", gateway))
            .output();
        let lines: Vec<String> = out.success().lines().map(str::to_string).collect();
        refused(&lines);
        let event = events(&scratch.log(), "connect")[0].clone();
        assert!(
            event["error"].as_str().unwrap().contains(expect),
            "{expect}: {event}"
        );
    }
}

#[test]
fn so_sndtimeo_bounds_a_blocking_handshake_and_signals_do_not_break_it() {
    let silent = silent_listener();
    let origin = Origin::start("origin");
    let slow = ConnectProxy::start(
        origin.addr,
        ProxyBehaviour::Trickle {
            bytes: b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec(),
            pause_ms: 20,
            then_hang: false,
        },
    );
    let scratch = Scratch::new("sndtimeo");
    // A 10 s budget, but the program asks for 300 ms with SO_SNDTIMEO.
    let config = Config::new()
        .log(scratch.log_path())
        .gateway("g", "http", &[silent])
        .gateway("slow", "http", &[slow.addr])
        .via("slow.example.test", "slow")
        .via("*.example.test", "g")
        .write(&scratch);
    let script = r#"
import signal, socket, struct, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 300000))
started = time.monotonic()
try:
    s.connect(("api.example.test", 80))
    print("connected")
except OSError as e:
    print(e.errno, "fast" if time.monotonic() - started < 5 else "slow")
# Signals arriving during a (slow, 0.8 s) handshake: it completes, as with SA_RESTART.
fired = []
signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
t = socket.socket()
t.connect(("slow.example.test", 80))
signal.setitimer(signal.ITIMER_REAL, 0)
t.sendall(b"GET / HTTP/1.0\r\n\r\n")
print(t.recv(4096).decode().split("\r\n\r\n")[-1], len(fired) > 0)
"#;
    let out = Run::python(script).config(&config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            format!("{} fast", libc::ETIMEDOUT).as_str(),
            "hello from origin True"
        ]
    );
}
