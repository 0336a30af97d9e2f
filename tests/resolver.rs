//! Name lookups: routed and denied hosts get a fake address (DNS is never asked), direct hosts a
//! real one; the fake address is stable, reverses to its host, and survives fork; the answers
//! have the shape libc gives (service names, socket types, canonical names, the gethostbyname
//! family); hostile names are refused.

use crate::support::*;

/// `*.example.test` through a gateway at 127.0.0.1:9, `denied.test` denied.
fn routing_config(scratch: &Scratch) -> std::path::PathBuf {
    Config::new()
        .log(scratch.log_path())
        .gateway("corp", "http", &["127.0.0.1:9"])
        .via("*.example.test", "corp")
        .deny("denied.test")
        .write(scratch)
}

#[test]
fn routed_hosts_get_fake_addresses_and_direct_hosts_real_ones() {
    let scratch = Scratch::new("fake-real");
    let config = routing_config(&scratch);
    let script = r#"
import socket, ipaddress
def addrs(host, family=0):
    return sorted({ai[4][0] for ai in socket.getaddrinfo(host, 443, family, socket.SOCK_STREAM)})
routed = addrs("api.example.test")
assert len(routed) == 1 and ipaddress.ip_address(routed[0]) in ipaddress.ip_network("198.18.0.0/15"), routed
assert addrs("API.Example.Test.") == routed, "case and trailing dot do not matter"
assert addrs("api.example.test") == routed, "stable"
other = addrs("other.example.test")
assert other != routed
denied = addrs("denied.test")
assert ipaddress.ip_address(denied[0]) in ipaddress.ip_network("198.18.0.0/15")
v6 = addrs("api.example.test", socket.AF_INET6)
assert len(v6) == 1 and ipaddress.ip_address(v6[0]) in ipaddress.ip_network("fd6d:6370:7264::/64"), v6
assert int(ipaddress.ip_address(v6[0])) & 0xffffffff == int(ipaddress.ip_address(routed[0])) - int(ipaddress.ip_address("198.18.0.0")), "same slot in both ranges"
assert addrs("localhost", socket.AF_INET) == ["127.0.0.1"]
assert addrs("127.0.0.1") == ["127.0.0.1"]
print("ok")
"#;
    assert_eq!(
        Run::python(script)
            .config(&config)
            .output()
            .success()
            .trim(),
        "ok"
    );
    let log = scratch.log();
    let resolves = events(&log, "resolve");
    let api = resolves
        .iter()
        .find(|e| e["host"] == "api.example.test")
        .unwrap();
    assert_eq!(
        (api["action"].as_str(), api["gateway"].as_str()),
        (Some("gateway"), Some("corp"))
    );
    assert!(api["answer"].as_str().unwrap().starts_with("198.1"));
    let local = resolves.iter().find(|e| e["host"] == "localhost").unwrap();
    assert_eq!(
        (local["action"].as_str(), local["answer"].as_str()),
        (Some("direct"), None)
    );
    assert!(
        !resolves.iter().any(|e| e["host"] == "127.0.0.1"),
        "numeric hosts are not lookups"
    );
}

#[test]
fn answers_have_the_shape_libc_gives() {
    let scratch = Scratch::new("shape");
    let config = routing_config(&scratch);
    let script = r#"
import socket
# Service names resolve as libc would, and unknown ones fail as libc would.
ai = socket.getaddrinfo("api.example.test", "https", socket.AF_INET, socket.SOCK_STREAM)
assert [a[4][1] for a in ai] == [443], ai
try:
    socket.getaddrinfo("api.example.test", "no-such-service", socket.AF_INET, socket.SOCK_STREAM)
    raise SystemExit("expected EAI_SERVICE")
except socket.gaierror as e:
    assert e.errno == socket.EAI_SERVICE, e
# No hints: one entry per socket type, like glibc.
kinds = sorted((a[1], a[2]) for a in socket.getaddrinfo("api.example.test", 80))
assert kinds == sorted([(socket.SOCK_STREAM, 6), (socket.SOCK_DGRAM, 17), (socket.SOCK_RAW, 0)]), kinds
# No service at all.
assert socket.getaddrinfo("api.example.test", None, socket.AF_INET, socket.SOCK_STREAM)[0][4][1] == 0
# AI_CANONNAME.
canon = socket.getaddrinfo("API.example.test", 80, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)
assert canon[0][3] == "api.example.test", canon
# Protocol and type combinations, and invalid flags, exactly as glibc answers a real name.
def shape(*args):
    try:
        return sorted((a[1], a[2]) for a in socket.getaddrinfo(*args))
    except socket.gaierror as e:
        return e.errno
for args in [(None, 0, 0, socket.IPPROTO_TCP), (None, 0, 0, socket.IPPROTO_SCTP),
             (80, 0, socket.SOCK_STREAM, socket.IPPROTO_SCTP), (80, 0, socket.SOCK_SEQPACKET),
             (80, 0, 0, 0, 0x10000), (80, socket.AF_INET, socket.SOCK_DGRAM)]:
    assert shape("api.example.test", *args) == shape("localhost", *args), (args, shape("api.example.test", *args), shape("localhost", *args))
# AI_NUMERICHOST with a name fails in libc, untouched by us.
try:
    socket.getaddrinfo("api.example.test", 80, 0, 0, 0, socket.AI_NUMERICHOST)
    raise SystemExit("expected a failure")
except socket.gaierror as e:
    assert e.errno == socket.EAI_NONAME, e
print("ok")
"#;
    assert_eq!(
        Run::python(script)
            .config(&config)
            .output()
            .success()
            .trim(),
        "ok"
    );
}

#[test]
fn fake_addresses_reverse_to_their_host() {
    let scratch = Scratch::new("reverse");
    let config = routing_config(&scratch);
    let script = r#"
import socket
a = socket.getaddrinfo("api.example.test", 443, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
assert socket.getnameinfo((a, 443), 0) == ("api.example.test", "https")
assert socket.getnameinfo((a, 443), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV) == (a, "443")
v6 = socket.getaddrinfo("api.example.test", 443, socket.AF_INET6, socket.SOCK_STREAM)[0][4][0]
assert socket.getnameinfo((v6, 443, 0, 0), socket.NI_NUMERICSERV) == ("api.example.test", "443")
print("ok")
"#;
    assert_eq!(
        Run::python(script)
            .config(&config)
            .output()
            .success()
            .trim(),
        "ok"
    );
}

#[test]
fn the_gethostbyname_family_answers_too() {
    let scratch = Scratch::new("gethostbyname");
    let config = routing_config(&scratch);
    let script = r#"
import ctypes, socket
libc = ctypes.CDLL(None)
class hostent(ctypes.Structure):
    _fields_ = [("h_name", ctypes.c_char_p), ("h_aliases", ctypes.POINTER(ctypes.c_char_p)),
                ("h_addrtype", ctypes.c_int), ("h_length", ctypes.c_int),
                ("h_addr_list", ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)))]
libc.gethostbyname.restype = ctypes.POINTER(hostent)
libc.gethostbyname2.restype = ctypes.POINTER(hostent)
expected = socket.getaddrinfo("api.example.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
h = libc.gethostbyname(b"api.example.test").contents
assert (h.h_name, h.h_addrtype, h.h_length) == (b"api.example.test", socket.AF_INET, 4)
assert socket.inet_ntop(socket.AF_INET, bytes(h.h_addr_list[0][:4])) == expected
assert not h.h_addr_list[1]
h6 = libc.gethostbyname2(b"api.example.test", socket.AF_INET6).contents
assert (h6.h_addrtype, h6.h_length) == (socket.AF_INET6, 16)
assert socket.inet_ntop(socket.AF_INET6, bytes(h6.h_addr_list[0][:16])).startswith("fd6d:6370:7264::")
# gethostbyname_ex uses gethostbyname_r in CPython.
assert socket.gethostbyname_ex("api.example.test") == ("api.example.test", [], [expected])
assert socket.gethostbyname("api.example.test") == expected
assert socket.gethostbyname_ex("localhost")[2] == ["127.0.0.1"]
# A buffer too small for the answer: ERANGE, as glibc does.
res = ctypes.POINTER(hostent)(); herr = ctypes.c_int(); buf = ctypes.create_string_buffer(8); ret = hostent()
libc_e = ctypes.CDLL(None, use_errno=True)
ctypes.set_errno(0)
rc = libc_e.gethostbyname_r(b"api.example.test", ctypes.byref(ret), buf, 8, ctypes.byref(res), ctypes.byref(herr))
assert rc == 34 and not res and ctypes.get_errno() == 34, (rc, ctypes.get_errno())
buf = ctypes.create_string_buffer(256)
rc = libc.gethostbyname_r(b"api.example.test", ctypes.byref(ret), buf, 256, ctypes.byref(res), ctypes.byref(herr))
assert rc == 0 and res.contents.h_name == b"api.example.test", rc
print("ok")
"#;
    assert_eq!(
        Run::python(script)
            .config(&config)
            .output()
            .success()
            .trim(),
        "ok"
    );
}

#[test]
fn hostile_names_are_refused_and_never_forwarded() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("hostile");
    let config = Config::new()
        .default("corp")
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy.addr])
        .write(&scratch);
    let script = r#"
import socket
# Bytes, so that Python's IDNA codec does not refuse them before libc sees them. The last is
# "vm" in fullwidth letters, which glibc's AI_IDN would turn into a name the rules never saw.
for name in [b"evil.test\r\nX-Injected: 1", b"a b.test", b"x" * 300 + b".test", b"tab\there.test", "ｖｍ".encode(), b"\xff\xfe.test"]:
    try:
        socket.getaddrinfo(name, 443, socket.AF_INET, socket.SOCK_STREAM)
        print("resolved", repr(name))
    except socket.gaierror as e:
        print(e.errno)
"#;
    let out = Run::python(script).config(&config).output();
    let noname = libc::EAI_NONAME.to_string();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [noname.as_str(); 6]
    );
    assert!(proxy.requests().is_empty());
    let log = scratch.log();
    let refused = events(&log, "resolve");
    assert_eq!(refused.len(), 6);
    assert!(refused[4..].iter().all(|e| e["error"]
        .as_str()
        .unwrap()
        .starts_with("non-ASCII hostname refused")));
    assert!(refused[..4]
        .iter()
        .all(|e| e["result"] == "EAI_NONAME" && e["error"] == "invalid hostname refused"));
}

#[test]
fn a_forked_child_sees_the_same_fake_address_and_connects_through_the_gateway() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("fork");
    let config = Config::new()
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy.addr])
        .via("*.example.test", "corp")
        .write(&scratch);
    let script = r#"
import os, socket
parent = socket.getaddrinfo("api.example.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
pid = os.fork()
if pid == 0:
    child = socket.getaddrinfo("api.example.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    s = socket.create_connection((child, 80), timeout=20)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    reply = s.recv(4096).decode()
    os._exit(0 if child == parent and reply.endswith("hello from origin") else 1)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"#;
    assert_eq!(
        Run::python(script)
            .config(&config)
            .output()
            .success()
            .trim(),
        "0"
    );
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT api.example.test:80 HTTP/1.1"]
    );
    let log = scratch.log();
    let pids: std::collections::HashSet<_> =
        log.iter().map(|e| e["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 2, "parent and child both logged");
}

#[test]
fn local_dns_mode_resolves_for_real_and_still_sends_the_hostname() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("local-mode");
    let config = Config::new()
        .log(scratch.log_path())
        .table("dns", &[r#"mode = "local""#])
        .gateway("corp", "http", &[proxy.addr])
        .via("*.example.test", "corp")
        .write(&scratch);
    // api.example.test has a real (private /etc/hosts) address: an SSRF guard that resolves it
    // sees that address, not a fake one; the connection still goes through the gateway by name.
    // (A loopback address stands in for a public one: nothing could leave the machine even if
    // the library let the connection go direct.)
    // gone.example.test resolves nowhere (DNS is 127.0.0.1 with no server): it gets a fake
    // address so that the gateway can resolve it.
    let script = r#"
import socket
real = socket.getaddrinfo("api.example.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
assert real == "127.20.3.7", real
s = socket.create_connection((real, 80), timeout=20)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
assert s.recv(4096).decode().endswith("hello from origin")
fallback = socket.getaddrinfo("gone.example.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
assert fallback.startswith("198.1"), fallback
print("ok")
"#;
    let out = Run::python(script)
        .config(&config)
        .host_entry("127.20.3.7", "api.example.test")
        .output();
    assert_eq!(out.success().trim(), "ok");
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT api.example.test:80 HTTP/1.1"]
    );
    let log = scratch.log();
    let c = events(&log, "connect")[0];
    assert_eq!(
        (c["host"].as_str(), c["dst"].as_str()),
        (Some("api.example.test"), Some("127.20.3.7:80"))
    );
    let fallback = events(&log, "resolve")
        .into_iter()
        .find(|e| e["host"] == "gone.example.test")
        .unwrap();
    assert!(
        fallback["error"]
            .as_str()
            .unwrap()
            .contains("DNS had no answer"),
        "{fallback}"
    );
}

#[test]
fn an_invalid_config_lets_no_name_reach_dns() {
    let scratch = Scratch::new("fail-closed-dns");
    let config = scratch.config(&format!(
        "[log]\npath = \"{}\"\n[[rules]]\nbogus = 1\n",
        scratch.log_path().display()
    ));
    let script = r#"
import socket
a = socket.getaddrinfo("secret-data.exfil.test", 443, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
assert a.startswith("198.1"), a
try:
    socket.create_connection((a, 443))
except PermissionError:
    print("refused")
"#;
    let out = Run::python(script).config(&config).output();
    assert_eq!(out.success().trim(), "refused");
    let log = scratch.log();
    let r = events(&log, "resolve")[0];
    assert_eq!(
        (r["action"].as_str(), r["rule"]["pattern"].as_str()),
        (Some("deny"), Some("invalid configuration"))
    );
}

#[test]
fn the_gateway_name_itself_resolves_for_real() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("gateway-name");
    // Everything goes through "proxy.corp.test" (in the private /etc/hosts as 127.0.0.1 here,
    // but the point holds for a DNS name): a program that resolves the proxy's name to talk to
    // it must get its real address, not a fake one routed through the proxy to itself.
    let config = Config::new()
        .default("corp")
        .log(scratch.log_path())
        .gateway(
            "corp",
            "http",
            &[format!("proxy.corp.test:{}", proxy.addr.port())],
        )
        .write(&scratch);
    let out = Run::new(
        "curl",
        &[
            "-sS",
            "--max-time",
            "20",
            "-x",
            &format!("http://proxy.corp.test:{}", proxy.addr.port()),
            "-p",
            "http://api.example.test/",
        ],
    )
    .config(&config)
    .host_entry("127.0.0.1", "proxy.corp.test")
    .output();
    assert_eq!(out.success(), "hello from origin");
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT api.example.test:80 HTTP/1.1"]
    );
}

#[test]
fn an_address_with_a_trailing_dot_is_not_a_name_to_fake() {
    let scratch = Scratch::new("trailing-dot");
    let config = Config::new()
        .default("corp")
        .log(scratch.log_path())
        .gateway("corp", "http", &["127.0.0.1:9"])
        .write(&scratch);
    // libc takes "127.0.0.2." as a DNS name (and finds nothing); it must not become a fake
    // address that sends "CONNECT 127.0.0.2" to the gateway.
    let script = r#"
import socket
try:
    print(socket.getaddrinfo(b"127.0.0.2.", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
except socket.gaierror:
    print("no answer")
"#;
    assert_eq!(
        Run::python(script)
            .config(&config)
            .output()
            .success()
            .trim(),
        "no answer"
    );
}

#[test]
fn a_fake_address_this_process_does_not_know_fails_closed() {
    let scratch = Scratch::new("stale-fake");
    let config = Config::new()
        .default("direct")
        .log(scratch.log_path())
        .gateway("corp", "http", &["127.0.0.1:9"])
        .via("*.example.test", "corp")
        .write(&scratch);
    // An address from the fake range that this process never handed out (another process's,
    // or one evicted since): with a direct default it must still not go out.
    let script = r#"
import socket
s = socket.socket()
try:
    s.connect(("198.19.200.1", 443))
    print("connected")
except OSError as e:
    print(e.errno)
"#;
    let out = Run::python(script).config(&config).no_network().output();
    assert_eq!(out.success().trim(), libc::EHOSTUNREACH.to_string());
    let log = scratch.log();
    assert_eq!(
        events(&log, "connect")[0]["rule"]["pattern"],
        "unknown fake address"
    );
}

#[test]
fn strict_mode_keeps_routed_names_out_of_raw_dns_queries() {
    let scratch = Scratch::new("raw-dns");
    let config_text = |strict: bool| {
        Config::new()
            .top(&format!("strict = {strict}"))
            .log(scratch.log_path())
            .gateway("corp", "http", &["127.0.0.1:9"])
            .via("*.example.test", "corp")
            .text()
    };
    // res_query (and its pre-2.34 name) go around getaddrinfo: in strict mode a routed name is
    // refused before any query is sent; other names go to libc (whose DNS here is 127.0.0.1 with
    // no server, so they fail there, unlogged). getaddrinfo_a answers routed names itself
    // (getaddrinfo_a_answers_routed_names_itself).
    let script = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(512)
for fn in (libc.res_query, libc.__res_query):
    print(fn(b"api.example.test", 1, 16, buf, 512), fn(b"direct.test", 1, 16, buf, 512))
"#;
    let strict = scratch.config(&config_text(true));
    let out = Run::python(script).config(&strict).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        ["-1 -1", "-1 -1"]
    );
    let log = scratch.log();
    let refused: Vec<_> = events(&log, "resolve")
        .into_iter()
        .filter(|e| {
            e["error"]
                .as_str()
                .is_some_and(|t| t.contains("refused (strict)"))
        })
        .map(|e| {
            e["error"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        refused,
        ["res_query", "res_query"],
        "the routed name, twice (__res_query under its modern name); never the direct one"
    );

    std::fs::remove_file(scratch.log_path()).unwrap();
    let relaxed = scratch.config(&config_text(false));
    let out = Run::python(script).config(&relaxed).output();
    out.success();
    assert!(
        events(&scratch.log(), "resolve").is_empty(),
        "not strict: nothing refused"
    );
}

#[test]
fn getaddrinfo_a_answers_routed_names_itself() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("gai-a");
    let config = Config::new()
        .top("strict = true")
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy.addr])
        .via("*.example.test", "corp")
        .deny("denied.test")
        .write(&scratch);
    // glibc resolves getaddrinfo_a batches on threads of its own, where our getaddrinfo is not
    // called: a routed name must still get a fake address (never a DNS query, strict or not),
    // the program must see it done whichever way it waits, and the address must route.
    let script = r#"
import ctypes, signal, socket, time
from ctypes import POINTER, c_char_p, c_int, c_uint32, c_void_p
libc = ctypes.CDLL(None, use_errno=True)
class addrinfo(ctypes.Structure):
    pass
addrinfo._fields_ = [("ai_flags", c_int), ("ai_family", c_int), ("ai_socktype", c_int),
                     ("ai_protocol", c_int), ("ai_addrlen", c_uint32), ("ai_addr", c_void_p),
                     ("ai_canonname", c_char_p), ("ai_next", POINTER(addrinfo))]
class gaicb(ctypes.Structure):
    _fields_ = [("ar_name", c_char_p), ("ar_service", c_char_p), ("ar_request", c_void_p),
                ("ar_result", POINTER(addrinfo)), ("ret", c_int), ("reserved", c_int * 5)]
class sigevent(ctypes.Structure):
    _fields_ = [("value", c_void_p), ("signo", c_int), ("notify", c_int), ("pad", c_int * 12)]
libc.gai_error.argtypes = [POINTER(gaicb)]
hints = addrinfo(ai_family=socket.AF_INET, ai_socktype=socket.SOCK_STREAM)
def batch(*names):
    cbs = [gaicb(n, b"80", ctypes.cast(ctypes.pointer(hints), c_void_p)) for n in names]
    return cbs, (POINTER(gaicb) * len(cbs))(*[ctypes.pointer(c) for c in cbs])
def address(cb):
    raw = ctypes.string_at(cb.ar_result.contents.ai_addr, 8)
    return socket.inet_ntoa(raw[4:8]), int.from_bytes(raw[2:4], "big")
def wait(cbs):
    deadline = time.time() + 20
    while any(libc.gai_error(ctypes.byref(c)) == -100 for c in cbs) and time.time() < deadline:
        time.sleep(0.01)
# GAI_WAIT, a routed name and one for libc (localhost, from /etc/hosts), and a denied one.
cbs, items = batch(b"api.example.test", b"localhost", b"denied.test")
print("wait", libc.getaddrinfo_a(0, items, 3, None))
wait(cbs)
routed, local, denied = [address(c) for c in cbs]
libc_done = (POINTER(gaicb) * 1)(ctypes.pointer(cbs[1]))  # libc's own request, finished
print("routed", routed[0].startswith("198.1"), routed[1], libc.gai_error(ctypes.byref(cbs[0])))
print("local", local[0])
print("denied", denied[0].startswith("198.1"))
finished = libc.gai_suspend(libc_done, 1, None)
for c in cbs:
    libc.freeaddrinfo(c.ar_result)
# GAI_NOWAIT with SIGEV_SIGNAL, nothing left for libc: the signal still comes.
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
cbs, items = batch(b"www.example.test")
event = sigevent(signo=signal.SIGUSR1, notify=0)
print("nowait", libc.getaddrinfo_a(1, items, 1, ctypes.byref(event)))
deadline = time.time() + 10
while not got and time.time() < deadline:
    time.sleep(0.01)
print("signalled", bool(got), libc.gai_error(ctypes.byref(cbs[0])))
# GAI_NOWAIT with SIGEV_THREAD: the function runs on a thread of its own, with its value.
class sigevent_thread(ctypes.Structure):
    _fields_ = [("value", c_void_p), ("signo", c_int), ("notify", c_int),
                ("function", c_void_p), ("attributes", c_void_p), ("pad", c_int * 8)]
called = []
NOTIFY = ctypes.CFUNCTYPE(None, c_void_p)
callback = NOTIFY(lambda value: called.append(value))
cbs2, items2 = batch(b"cdn.example.test")
event2 = sigevent_thread(value=42, notify=2, function=ctypes.cast(callback, c_void_p))
print("thread", libc.getaddrinfo_a(1, items2, 1, ctypes.byref(event2)))
deadline = time.time() + 10
while not called and time.time() < deadline:
    time.sleep(0.01)
print("called", called)
# gai_suspend and gai_cancel see it as they see a finished request of libc's own.
print("suspend", libc.gai_suspend(items, 1, None), finished, "cancel", libc.gai_cancel(items[0]))
# The fake address routes by name.
s = socket.create_connection(routed, timeout=20)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
print("fetched", s.recv(4096).decode().endswith("hello from origin"))
"#;
    let out = Run::python(script).config(&config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "wait 0",
            "routed True 80 0",
            "local 127.0.0.1",
            "denied True",
            "nowait 0",
            "signalled True 0",
            "thread 0",
            "called [42]",
            "suspend -103 -103 cancel -103", // EAI_ALLDONE
            "fetched True",
        ]
    );
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT api.example.test:80 HTTP/1.1"]
    );
    let log = scratch.log();
    let resolved: Vec<_> = events(&log, "resolve")
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap_or("").to_string(),
                e["action"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        resolved.contains(&("api.example.test".into(), "gateway".into()))
            && resolved.contains(&("denied.test".into(), "deny".into()))
            && !resolved.iter().any(|(_, a)| a.is_empty()),
        "{resolved:?}"
    );
}
