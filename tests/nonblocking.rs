//! Non-blocking sockets (event loops: Node, Python asyncio, curl, tokio): a routed `connect()`
//! returns `EINPROGRESS` at once and the gateway handshake runs on the relay's thread
//! (`docs/nonblocking.md`). Real programs through gateways of the tests' own that wait before
//! answering and count how many handshakes they hold at once: a program whose event loop is
//! blocked inside `connect()` never has more than one waiting.

use crate::support::*;

use crate::support::slow::{slow, DELAY_MS};

#[test]
fn node_fetch_and_http_wait_together_and_the_event_loop_keeps_running() {
    let world = slow("node", "");
    let script = r#"
const http = require("http");
const { monitorEventLoopDelay } = require("perf_hooks");
const get = (url) => new Promise((resolve, reject) => {
  http.get(url, (res) => { let body = ""; res.on("data", (d) => body += d); res.on("end", () => resolve(body)); })
    .on("error", (e) => reject(e));
});
const code = (e) => (e.cause && e.cause.code) || e.code;
(async () => {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const fetches = [...Array(8).keys()].map((i) => fetch(`http://a${i}.http.test/`).then((r) => r.text()));
  const gets = [...Array(4).keys()].map((i) => get(`http://b${i}.socks.test/`));
  const bodies = await Promise.all([...fetches, ...gets]);
  delay.disable();
  console.log(bodies.filter((b) => b === "hello from origin").length);
  console.log(`loop delay ${Math.round(delay.max / 1e6)} ms`);
  for (const url of ["http://x.refused.test/", "http://x.hang.test/", "http://x.closing.test/"]) {
    await fetch(url).then(() => console.log("connected?!"), (e) => console.log(code(e)));
  }
  await get("http://y.refused.test/").then(() => console.log("connected?!"), (e) => console.log(e.code));
})();
"#;
    let out = Run::node(script).config(&world.config).output();
    let lines: Vec<&str> = out.success().lines().collect();
    assert_eq!(lines[0], "12", "{}", out.describe());
    // Sequential handshakes would hold at most one at a time, and stall the loop a second each.
    assert_eq!(world.http.waiting.most(), 8, "{}", out.describe());
    assert_eq!(world.socks.waiting.most(), 4, "{}", out.describe());
    let stalled: u64 = lines[1]
        .trim_start_matches("loop delay ")
        .trim_end_matches(" ms")
        .parse()
        .unwrap();
    assert!(stalled < DELAY_MS / 2, "{}", out.describe());
    assert_eq!(
        lines[2..],
        ["ECONNREFUSED", "ETIMEDOUT", "ECONNREFUSED", "ECONNREFUSED"]
    );
    let log = world.scratch.log();
    let connects = events(&log, "connect");
    assert_eq!(connects.len(), 16);
    for line in &connects {
        assert_eq!(line["handshake"], "relay", "{line}");
    }
    let refused = connects
        .iter()
        .find(|l| l["host"] == "x.refused.test")
        .unwrap();
    assert_eq!(refused["result"], "ECONNREFUSED");
    assert!(
        refused["error"].as_str().unwrap().contains("403"),
        "{refused}"
    );
    // The whole handshake, the gateway's delay included.
    assert!(refused["elapsed_us"].as_u64().unwrap() >= DELAY_MS * 1000);
    let hung = connects
        .iter()
        .find(|l| l["host"] == "x.hang.test")
        .unwrap();
    assert_eq!(hung["result"], "ETIMEDOUT", "{hung}");
}

#[test]
fn python_asyncio_connects_in_parallel_and_sees_each_failure_as_its_own_error() {
    let world = slow("asyncio", "");
    let script = r#"
import asyncio
async def fetch(host):
    reader, writer = await asyncio.open_connection(host, 80)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    body = (await reader.read()).decode().split("\r\n\r\n")[1]
    writer.close()
    return body
async def failure(host):
    try:
        await asyncio.open_connection(host, 443)
        return "connected?!"
    except OSError as e:
        return type(e).__name__
async def main():
    bodies = await asyncio.gather(*[fetch(f"a{i}.socks.test") for i in range(8)],
                                  *[fetch(f"b{i}.http.test") for i in range(8)])
    print(sum(b == "hello from origin" for b in bodies))
    for host in ("x.refused.test", "x.hang.test", "x.closing.test"):
        print(await failure(host))
asyncio.run(main())
"#;
    let out = Run::python(script).config(&world.config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "16",
            "ConnectionRefusedError",
            "TimeoutError",
            "ConnectionRefusedError"
        ]
    );
    assert_eq!(world.socks.waiting.most(), 8, "{}", out.describe());
    assert_eq!(world.http.waiting.most(), 8, "{}", out.describe());
}

#[test]
fn cpython_sockets_with_a_timeout_connect_through_the_relay() {
    // CPython makes a socket with a timeout non-blocking and waits in poll(): what `requests`
    // and `urllib3` do.
    let world = slow("timeouts", "");
    let script = r#"
import socket
s = socket.create_connection(("a.http.test", 80), timeout=10)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
print(s.recv(4096).decode().split("\r\n\r\n")[1])
for host in ("x.refused.test", "x.closing.test"):
    try:
        socket.create_connection((host, 80), timeout=10)
    except OSError as e:
        print(type(e).__name__)
# The program's own timeout ends the wait first; the relay finishes the handshake alone.
try:
    socket.create_connection(("y.http.test", 80), timeout=0.2)
except TimeoutError as e:
    print("timed out")
"#;
    let out = Run::python(script).config(&world.config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "hello from origin",
            "ConnectionRefusedError",
            "ConnectionRefusedError",
            "timed out"
        ]
    );
}

#[test]
fn curl_parallel_transfers_wait_together() {
    let world = slow("curl", "");
    let urls: Vec<String> = (0..4).map(|i| format!("http://c{i}.http.test/")).collect();
    let mut args = vec!["-sS", "--max-time", "20", "-Z", "--parallel-immediate"];
    args.extend(urls.iter().map(String::as_str));
    let out = Run::new("curl", &args).config(&world.config).output();
    assert_eq!(out.success(), "hello from origin".repeat(4));
    assert_eq!(world.http.waiting.most(), 4, "{}", out.describe());
    let refused = Run::curl("http://x.refused.test/")
        .config(&world.config)
        .output();
    // curl's "Couldn't connect to server": a failed connect, not a reset after a success.
    assert_eq!(refused.code, Some(7), "{}", refused.describe());
}

#[test]
fn a_tokio_program_connects_in_parallel_on_edge_triggered_epoll() {
    let world = slow("tokio", "");
    let client = example("tokio-client");
    let mut hosts: Vec<String> = (0..6).map(|i| format!("t{i}.http.test")).collect();
    hosts.extend((0..6).map(|i| format!("u{i}.socks.test")));
    hosts.extend(["x.refused.test", "x.hang.test", "x.closing.test"].map(String::from));
    let args: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let out = Run::new(client.to_str().unwrap(), &args)
        .config(&world.config)
        .output();
    let lines: Vec<&str> = out.success().lines().collect();
    assert_eq!(lines[..12], ["hello from origin"; 12], "{}", out.describe());
    assert_eq!(
        lines[12..],
        ["ConnectionRefused", "TimedOut", "ConnectionRefused"]
    );
    assert_eq!(world.http.waiting.most(), 6, "{}", out.describe());
    assert_eq!(world.socks.waiting.most(), 6, "{}", out.describe());
}

#[test]
fn a_stalled_handshake_costs_the_program_no_cpu() {
    let world = slow("cpu", "");
    let script = r#"
import resource, select, socket, errno
addr = socket.getaddrinfo("x.void.test", 80, socket.AF_INET)[0][4]
s = socket.socket()
s.setblocking(False)
assert s.connect_ex(addr) == errno.EINPROGRESS
before = resource.getrusage(resource.RUSAGE_SELF)
ready = select.select([], [s], [], 2.0)[1]
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print("writable" if ready else "not writable", "%.3f" % cpu)
select.select([], [s], [], 5)
print(errno.errorcode[s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)])
"#;
    let out = Run::python(script).config(&world.config).output();
    let lines: Vec<&str> = out.success().lines().collect();
    let (state, cpu) = lines[0].rsplit_once(' ').unwrap();
    assert_eq!(state, "not writable", "{}", out.describe());
    // The process's whole CPU time (the relay's thread included) over 2 s of waiting for a
    // gateway that never answers: busy waiting would be the whole 2 s.
    let cpu: f64 = cpu.parse().unwrap();
    assert!(cpu < 0.1, "{}", out.describe());
    assert_eq!(lines[1], "ETIMEDOUT");
}

#[test]
fn a_relayed_socket_answers_getpeername_connect_and_keeps_its_options() {
    let world = slow("sockapi", "");
    let script = r#"
import ctypes, errno, select, socket, struct, subprocess
libc = ctypes.CDLL(None, use_errno=True)
addr = socket.getaddrinfo("a.http.test", 80, socket.AF_INET)[0][4]
s = socket.socket()
s.setblocking(False)
assert s.connect_ex(addr) == errno.EINPROGRESS
def again():
    sa = struct.pack("<H", socket.AF_INET) + struct.pack(">H", addr[1]) + socket.inet_aton(addr[0]) + bytes(8)
    rc = libc.connect(s.fileno(), sa, len(sa))
    return "0" if rc == 0 else errno.errorcode[ctypes.get_errno()]
def peer():
    try:
        return "%s:%d" % s.getpeername()
    except OSError as e:
        return errno.errorcode[e.errno]
print(peer(), again())
assert select.select([], [s], [], 10)[1]
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
print(peer() == "%s:%d" % addr, again(), again())
TCP_NOTSENT_LOWAT = 25
print("lowat", s.getsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT))
def keepalive_timers():
    out = subprocess.run(["ss", "-tnoH", "state", "established", "dst", "%s"], capture_output=True, text=True).stdout
    return out.count("keepalive")
before = keepalive_timers()
s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 600)
import time; time.sleep(0.3)
print("keepalive towards the gateway", before, keepalive_timers())
s.setblocking(True)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
print(s.recv(4096).decode().split("\r\n\r\n")[1])
"#
    .replace("%s\"], capture", &format!("{}\"], capture", world.http.addr));
    let out = Run::python(&script).config(&world.config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "ENOTCONN EALREADY",
            "True EISCONN EISCONN",
            "lowat 0",
            "keepalive towards the gateway 0 1",
            "hello from origin",
        ]
    );
}

#[test]
fn nothing_the_program_writes_before_the_tunnel_is_up_is_sent_anywhere() {
    let world = slow("early-write", "");
    let script = r#"
import errno, select, socket
for host in ("a.http.test", "x.refused.test"):
    addr = socket.getaddrinfo(host, 80, socket.AF_INET)[0][4]
    s = socket.socket()
    s.setblocking(False)
    assert s.connect_ex(addr) == errno.EINPROGRESS
    try:
        s.send(b"GET /early HTTP/1.0\r\n\r\n")
        print("sent early?!")
    except BlockingIOError:
        print("early write: EAGAIN")
    select.select([], [s], [], 10)
    print(host, errno.errorcode.get(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), "0"))
"#;
    let out = Run::python(script).config(&world.config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "early write: EAGAIN",
            "a.http.test 0",
            "early write: EAGAIN",
            "x.refused.test ECONNREFUSED"
        ]
    );
    // Each gateway got its CONNECT and nothing more; the origin (reached through the tunnel
    // that came up, then closed by the program) saw no request.
    for gateway in [&world.http, &world.refusing] {
        let requests = gateway.requests();
        assert_eq!(requests.len(), 1);
        assert!(requests[0].starts_with("CONNECT "), "{requests:?}");
        assert!(!requests[0].contains("/early"), "{requests:?}");
    }
    let seen = world.origin.requests();
    assert!(seen.iter().all(|r| r.is_empty()), "{seen:?}");
}

#[test]
fn setting_async_handshake_off_keeps_the_handshake_inside_connect() {
    let world = slow("inline", "async_handshake = false\n");
    let script = r#"
import errno, socket
addr = socket.getaddrinfo("a.http.test", 80, socket.AF_INET)[0][4]
s = socket.socket()
s.setblocking(False)
print(errno.errorcode.get(s.connect_ex(addr), "0"))
"#;
    let out = Run::python(script).config(&world.config).output();
    assert_eq!(out.success().trim(), "0");
    let log = world.scratch.log();
    let connect = events(&log, "connect")[0];
    assert_eq!(connect["result"], "ok");
    assert!(connect.get("handshake").is_none(), "{connect}");
}

#[test]
fn python_setblocking_false_connects_through_the_gateway() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("nonblocking");
    let script = r#"
import errno, fcntl, os, select, socket
s = socket.socket()
s.setblocking(False)
addr = socket.getaddrinfo("api.example.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4]
try:
    s.connect(addr)
except BlockingIOError:
    select.select([], [s], [], 20)
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
assert fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK, "still non-blocking"
s.setblocking(True)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
print(s.recv(4096).decode().split("\r\n\r\n")[1])
b = socket.socket()
b.connect(addr)
assert not fcntl.fcntl(b.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK, "a blocking socket stays blocking"
"#;
    let out = Run::python(script)
        .config(&example_test_via(&scratch, proxy.addr))
        .output();
    assert_eq!(out.success().trim(), "hello from origin");
    let log = scratch.log();
    let connects = events(&log, "connect");
    assert_eq!(connects[0]["handshake"], "relay");
    // The blocking socket's handshake ran inside connect(), as before.
    assert!(connects[1].get("handshake").is_none(), "{}", connects[1]);
}

#[test]
fn node_net_socket_and_a_denied_host_reach_the_event_loop_as_errors() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(
        origin.addr,
        ProxyBehaviour::Refuse("HTTP/1.1 403 Forbidden"),
    );
    let scratch = Scratch::new("node-refused");
    let config = Config::new()
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy.addr])
        .via("*.example.test", "corp")
        .deny("denied.example")
        .write(&scratch);
    let script = r#"
const net = require("net");
const s = net.connect(443, "api.example.test");
s.on("connect", () => { console.log("connected?!"); process.exit(1); });
s.on("error", e => { console.log(e.code); });
const d = net.connect(443, "denied.example");
d.on("error", e => { console.log(e.code); });
"#;
    let out = Run::node(script).config(&config).output();
    let mut codes: Vec<_> = out.success().lines().collect();
    codes.sort();
    assert_eq!(codes, ["EACCES", "ECONNREFUSED"]);
}
