//! Rules decide: denied hosts fail with EACCES, direct hosts go direct, conditions combine
//! (host, regex, cidr, port, process), UDP to a routed host is refused, AF_UNIX is untouched,
//! and an invalid config fails closed with a message that says why.

use crate::support::*;

/// A config whose gateway `corp` is a CONNECT proxy that records every request; tests add the
/// default and their rules.
fn corp(scratch: &Scratch, proxy: std::net::SocketAddr) -> Config {
    Config::new()
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy])
}

/// A Python script that connects to each (host, port) and prints `ok` or the errno.
fn try_connects(targets: &[(&str, u16)]) -> String {
    let list: Vec<String> = targets
        .iter()
        .map(|(h, p)| format!("(\"{h}\", {p})"))
        .collect();
    format!(
        r#"
import socket
for host, port in [{}]:
    try:
        s = socket.create_connection((host, port), timeout=20)
        print("ok")
        s.close()
    except OSError as e:
        print(e.errno)
"#,
        list.join(", ")
    )
}

#[test]
fn denied_hosts_fail_with_eacces_everywhere() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("deny");
    let config = corp(&scratch, proxy.addr)
        .default("direct")
        .deny("evil.example.test")
        .via("*.example.test", "corp")
        .write(&scratch);
    let out = Run::python(&try_connects(&[
        ("evil.example.test", 443),
        ("EVIL.Example.TEST.", 80),
        ("good.example.test", 443),
    ]))
    .config(&config)
    .output();
    let eacces = libc::EACCES.to_string();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [eacces.as_str(), eacces.as_str(), "ok"]
    );
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT good.example.test:443 HTTP/1.1"],
        "denied hosts never reach the gateway"
    );

    let out = Run::curl("http://evil.example.test/")
        .config(&config)
        .output();
    assert_eq!(out.code, Some(7), "{}", out.describe());
    assert!(
        out.stderr.contains("Permission denied") || out.stderr.contains("Couldn't connect"),
        "{}",
        out.stderr
    );

    let log = scratch.log();
    let denied: Vec<_> = events(&log, "connect")
        .into_iter()
        .filter(|e| e["action"] == "deny")
        .collect();
    assert_eq!(denied.len(), 3);
    assert!(denied
        .iter()
        .all(|e| e["result"] == "EACCES" && e["host"] == "evil.example.test"));
}

#[test]
fn direct_hosts_go_direct() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("direct");
    // Everything else goes through the proxy; localhost is direct by rule.
    let config = corp(&scratch, proxy.addr)
        .default("corp")
        .rule(r#"host = "localhost""#, r#"action = "direct""#)
        .write(&scratch);
    let script = format!(
        "import urllib.request\nprint(urllib.request.urlopen('http://localhost:{}/direct', timeout=20).read().decode())",
        origin.addr.port()
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(out.success().trim(), "hello from origin");
    assert!(
        proxy.requests().is_empty(),
        "the proxy saw {:?}",
        proxy.request_lines()
    );
    let log = scratch.log();
    let c = events(&log, "connect")[0];
    assert_eq!(
        (
            c["host"].as_str(),
            c["action"].as_str(),
            c["rule"]["index"].as_u64()
        ),
        (Some("localhost"), Some("direct"), Some(0))
    );
    assert_eq!(c["dst"], format!("127.0.0.1:{}", origin.addr.port()));
}

#[test]
fn a_default_gateway_never_gets_loopback_traffic() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("loopback");
    let config = corp(&scratch, proxy.addr).default("corp").write(&scratch);
    // curl answers "localhost" itself, without the resolver: connect() sees only 127.0.0.1.
    let url = format!("http://localhost:{}/", origin.addr.port());
    let out = Run::curl(&url).config(&config).output();
    assert_eq!(out.success(), "hello from origin");
    assert!(
        proxy.requests().is_empty(),
        "the proxy saw {:?}",
        proxy.request_lines()
    );
    let log = scratch.log();
    let c = events(&log, "connect")[0];
    assert_eq!(c["action"], "direct");
    assert_eq!(
        c["rule"]["pattern"],
        "loopback (a default gateway does not apply)"
    );
    // An explicit rule still applies to loopback.
    let config = corp(&scratch, proxy.addr)
        .default("corp")
        .rule(r#"cidr = "127.0.0.0/8""#, r#"action = "deny""#)
        .write(&scratch);
    let out = Run::curl(&url).config(&config).output();
    assert_eq!(out.code, Some(7));
}

#[test]
fn literal_addresses_are_routed_by_cidr_and_sent_as_addresses() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("cidr");
    let config = corp(&scratch, proxy.addr)
        .default("deny")
        .rule(r#"cidr = "127.10.0.0/16""#, r#"via = "corp""#)
        .rule(r#"cidr = "127.20.0.0/16""#, r#"action = "deny""#)
        .write(&scratch);
    // Loopback addresses only, so that a broken library could not send a packet anywhere else:
    // the gateway's, a denied one, and one only the (deny) default matches.
    let out = Run::python(&try_connects(&[
        ("127.10.8.7", 8080),
        ("127.20.0.1", 80),
        ("127.30.0.1", 80),
    ]))
    .config(&config)
    .output();
    let eacces = libc::EACCES.to_string();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        ["ok", eacces.as_str(), eacces.as_str()]
    );
    assert_eq!(proxy.request_lines(), ["CONNECT 127.10.8.7:8080 HTTP/1.1"]);
    let log = scratch.log();
    let actions: Vec<_> = events(&log, "connect")
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["gateway", "deny", "deny"]);
    assert_eq!(events(&log, "connect")[2]["rule"]["pattern"], "default");
}

#[test]
fn ports_regexes_and_processes_combine() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("combine");
    let config = corp(&scratch, proxy.addr)
        .default("direct")
        .rule(
            r#"host_regex = "api[0-9]+\\.example\\.test""#,
            r#"via = "corp""#,
        )
        .and(r#"port = "8000-8999""#)
        .via("*.example.test", "corp")
        .and(r#"process = "curl""#)
        .deny(".example.test")
        .write(&scratch);
    let out = Run::python(&try_connects(&[
        ("api7.example.test", 8443),
        ("API7.example.test", 9000),
        ("apix.example.test", 8443),
        ("www.example.test", 443),
    ]))
    .config(&config)
    .output();
    let eacces = libc::EACCES.to_string();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        ["ok", eacces.as_str(), eacces.as_str(), eacces.as_str()]
    );
    // The same host from curl matches the process rule.
    let out = Run::curl("http://www.example.test/")
        .config(&config)
        .output();
    assert_eq!(out.success(), "hello from origin");
    assert_eq!(
        proxy.request_lines(),
        [
            "CONNECT api7.example.test:8443 HTTP/1.1",
            "CONNECT www.example.test:80 HTTP/1.1"
        ]
    );
    let log = scratch.log();
    let patterns: Vec<_> = events(&log, "connect")
        .iter()
        .map(|e| e["rule"]["pattern"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        patterns,
        [
            "host_regex=api[0-9]+\\.example\\.test port=8000-8999",
            "host=.example.test",
            "host=.example.test",
            "host=.example.test",
            "host=*.example.test process=curl"
        ]
    );
}

#[test]
fn a_host_routed_on_one_port_goes_direct_on_another() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("port-direct");
    let config = corp(&scratch, proxy.addr)
        .default("deny")
        .via("svc.example.test", "corp")
        .and("port = 443")
        .rule(r#"host = "svc.example.test""#, r#"action = "direct""#)
        .write(&scratch);
    // The name gets a fake address (a rule could route it). Connecting on a port that goes
    // direct makes the library resolve it for real; for that the test gives the name a real
    // address in the private /etc/hosts, rewritten after the library has read the original.
    let script = format!(
        r#"
import socket, urllib.request
fake = socket.getaddrinfo("svc.example.test", 80, type=socket.SOCK_STREAM)[0][4][0]
assert fake.startswith("198.18.") or fake.startswith("198.19."), fake
with open("/etc/hosts", "a") as hosts:
    hosts.write("127.0.0.1 svc.example.test\n")
print(urllib.request.urlopen("http://svc.example.test:{port}/", timeout=20).read().decode())
"#,
        port = origin.addr.port()
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(out.success().trim(), "hello from origin");
    assert!(proxy.requests().is_empty());
    let log = scratch.log();
    let c = events(&log, "connect")[0];
    assert_eq!(
        (
            c["host"].as_str(),
            c["action"].as_str(),
            c["rule"]["index"].as_u64()
        ),
        (Some("svc.example.test"), Some("direct"), Some(1))
    );
    // urllib's timeout makes the socket non-blocking: a direct connect is then in progress.
    assert_eq!(c["result"], "EINPROGRESS");
    assert_eq!(
        c["dst"],
        format!("198.18.0.0:{}", origin.addr.port()).replace("198.18.0.0", fake_of(&log))
    );
}

/// The fake address the log shows was handed out.
fn fake_of(log: &[serde_json::Value]) -> &str {
    events(log, "resolve")
        .iter()
        .find_map(|e| e["answer"].as_str())
        .expect("a fake answer was logged")
}

#[test]
fn udp_to_routed_or_denied_hosts_is_refused() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("udp");
    let config = corp(&scratch, proxy.addr)
        .default("direct")
        .via("quic.example.test", "corp")
        .deny("bad.example.test")
        .write(&scratch);
    let script = r#"
import socket
for host in ["quic.example.test", "bad.example.test", "127.0.0.1"]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((host, 443))
        print("ok")
    except OSError as e:
        print(e.errno)
"#;
    let out = Run::python(script).config(&config).output();
    let eacces = libc::EACCES.to_string();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [eacces.as_str(), eacces.as_str(), "ok"]
    );
    let log = scratch.log();
    let udp: Vec<_> = events(&log, "connect")
        .into_iter()
        .filter(|e| e["proto"] == "udp")
        .collect();
    assert_eq!(udp.len(), 3);
    assert_eq!(udp[0]["error"], "UDP cannot go through a gateway");
    assert_eq!(udp[2]["result"], "ok");
}

#[test]
fn unix_sockets_are_untouched_and_unlogged() {
    let scratch = Scratch::new("unix");
    // Even a config that denies everything leaves AF_UNIX alone.
    let config = Config::new()
        .default("deny")
        .log(scratch.log_path())
        .write(&scratch);
    let sock = scratch.dir.join("s.sock");
    let script = format!(
        r#"
import socket
srv = socket.socket(socket.AF_UNIX); srv.bind("{0}"); srv.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect("{0}")
a, _ = srv.accept(); c.sendall(b"ping"); print(a.recv(4).decode())
"#,
        sock.display()
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(out.success().trim(), "ping");
    assert!(events(&scratch.log(), "connect").is_empty());
}

#[test]
fn an_invalid_config_fails_closed_and_says_why() {
    let origin = Origin::start("origin");
    let scratch = Scratch::new("invalid");
    let config = scratch.config(&format!(
        "[log]\npath = \"{}\"\n[[rules]]\nhost = \"a.test\"\naction = \"direct\"\n[[rules]]\ncidr = \"10.0.0.0/33\"\naction = \"deny\"\n",
        scratch.log_path().display()
    ));
    let url = format!("http://127.0.0.1:{}/", origin.addr.port());
    let out = Run::curl(&url).config(&config).output();
    assert_eq!(out.code, Some(7), "{}", out.describe());
    let message = format!("mcp-redirect: config {}: rules[1].cidr: line 7, column 1: prefix length \"33\" must be a number from 0 to 32", config.display());
    assert!(out.stderr.contains(&message), "{}", out.stderr);
    assert!(out.stderr.contains("fail closed"), "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("mcp-redirect: config").count(),
        1,
        "said once"
    );
    assert!(origin.requests().is_empty());
    let log = scratch.log();
    assert_eq!(events(&log, "config_error").len(), 1);
    assert_eq!(events(&log, "connect")[0]["result"], "EACCES");

    // A missing file is as invalid as a broken one.
    let out = Run::curl(&url)
        .env("MCP_REDIRECT_CONFIG", scratch.dir.join("missing.toml"))
        .output();
    assert_eq!(out.code, Some(7));
    assert!(
        out.stderr.contains("missing.toml: cannot read the file"),
        "{}",
        out.stderr
    );

    // Unknown keys are errors too, with line and column.
    let typo = scratch.config("[[rules]]\nhots = \"a.test\"\naction = \"deny\"\n");
    let out = Run::curl(&url).config(&typo).output();
    assert!(
        out.stderr
            .contains("rules[0]: line 2, column 1: unknown field `hots`"),
        "{}",
        out.stderr
    );
}

#[test]
fn on_config_error_direct_fails_open() {
    let origin = Origin::start("origin");
    let scratch = Scratch::new("fail-open");
    let config = scratch
        .config("on_config_error = \"direct\"\n[[rules]]\nhost = \"a.test\"\nvia = \"nowhere\"\n");
    let url = format!("http://127.0.0.1:{}/", origin.addr.port());
    let out = Run::curl(&url).config(&config).output();
    assert_eq!(out.success(), "hello from origin");
    assert!(
        out.stderr
            .contains("rules[0].via: line 4, column 1: no gateway named \"nowhere\""),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("every connection goes direct"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_process_that_never_connects_never_loads_the_config() {
    // Loading is lazy: a broken config does not even print for a program that makes no call.
    let scratch = Scratch::new("lazy");
    let config = scratch.config("this is not toml");
    let out = Run::new("true", &[]).config(&config).output();
    out.success();
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn an_ipv6_address_in_its_short_rfc2133_form_is_still_decided() {
    // The kernel takes a 24-byte sockaddr_in6 (no scope id); so must the rules.
    let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let scratch = Scratch::new("short-v6");
    let config = Config::new()
        .default("deny")
        .log(scratch.log_path())
        .write(&scratch);
    let script = format!(
        r#"
import ctypes, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
sa = struct.pack("<H", socket.AF_INET6) + struct.pack(">H", {port}) + bytes(4) + socket.inet_pton(socket.AF_INET6, "::1")
for length in (28, 24, 20):
    s = socket.socket(socket.AF_INET6)
    buf = ctypes.create_string_buffer(sa + bytes(4), 28)
    rc = libc.connect(s.fileno(), buf, length)
    print(length, rc, ctypes.get_errno() if rc else 0)
"#
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            format!("28 -1 {}", libc::EACCES),
            format!("24 -1 {}", libc::EACCES),
            format!("20 -1 {}", libc::EINVAL)
        ]
    );
    assert_eq!(events(&scratch.log(), "connect").len(), 2);
}

#[test]
fn names_sharing_an_address_cannot_launder_a_denied_one() {
    let origin = Origin::start("origin");
    let scratch = Scratch::new("shared-ip");
    let config = Config::new()
        .log(scratch.log_path())
        .deny("denied.test")
        .write(&scratch);
    // Both names are 127.0.0.1. Looking up the allowed one last must not make the address pass.
    let script = format!(
        r#"
import socket
socket.getaddrinfo("denied.test", {port})
socket.getaddrinfo("allowed.test", {port})
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=20)
    print("connected")
except OSError as e:
    print(e.errno)
"#,
        port = origin.addr.port()
    );
    let out = Run::python(&script)
        .config(&config)
        .host_entry("127.0.0.1", "denied.test")
        .host_entry("127.0.0.1", "allowed.test")
        .output();
    assert_eq!(out.success().trim(), libc::EACCES.to_string());
    let log = scratch.log();
    let c = events(&log, "connect")[0];
    assert_eq!(
        (c["host"].as_str(), c["action"].as_str()),
        (Some("denied.test"), Some("deny"))
    );
}

#[test]
fn strict_mode_refuses_datagrams_to_routed_and_denied_destinations() {
    let scratch = Scratch::new("strict-udp");
    let config_text = |strict: bool| {
        Config::new()
            .top(&format!("strict = {strict}"))
            .log(scratch.log_path())
            .gateway("corp", "http", &["127.0.0.1:9"])
            .via("quic.example.test", "corp")
            .rule(r#"cidr = "10.0.0.0/8""#, r#"action = "deny""#)
            .text()
    };
    // The child has a network of its own (loopback only), where its own UDP receiver stands in
    // for "direct": datagrams to it must still go, and a refused one could not leave anyway.
    let script = r#"
import socket
receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
receiver.bind(("127.0.0.1", 0))
quic = socket.getaddrinfo("quic.example.test", 443, socket.AF_INET, socket.SOCK_DGRAM)[0][4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for dst in [quic, ("10.9.9.9", 53), ("::ffff:10.9.9.9", 53), receiver.getsockname()]:
    try:
        if ":" in dst[0]:
            t = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            t.sendto(b"x", (dst[0], dst[1], 0, 0))
        else:
            s.sendto(b"x", dst)
        print("sent")
    except OSError as e:
        print(e.errno)
assert receiver.recv(8) == b"x"
# sendmsg with an address.
try:
    s.sendmsg([b"y"], [], 0, quic)
    print("sent")
except OSError as e:
    print(e.errno)
"#;
    let strict = scratch.config(&config_text(true));
    let out = Run::python(script).config(&strict).no_network().output();
    let eacces = libc::EACCES.to_string();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            eacces.as_str(),
            eacces.as_str(),
            eacces.as_str(),
            "sent",
            eacces.as_str()
        ]
    );
    let log = scratch.log();
    let refused: Vec<_> = events(&log, "connect")
        .into_iter()
        .filter(|e| e["proto"] == "udp")
        .collect();
    assert_eq!(
        refused.len(),
        4,
        "refusals are logged, datagrams that go are not"
    );

    // Without strict, datagrams are not checked (UDP connect() still is).
    let relaxed = scratch.config(&config_text(false));
    let out = Run::python(script).config(&relaxed).no_network().output();
    // (In the child's loopback-only network the kernel itself says ENETUNREACH for 10.9.9.9.)
    assert!(
        !out.success().lines().any(|l| l == eacces),
        "{}",
        out.stdout
    );
}

#[test]
fn nat64_and_ipv4_compatible_spellings_of_a_denied_address_are_denied() {
    let scratch = Scratch::new("nat64");
    let config = Config::new()
        .log(scratch.log_path())
        .rule(r#"cidr = "192.0.2.0/24""#, r#"action = "deny""#)
        .write(&scratch);
    // Each spelling is refused before the kernel sees it: EACCES only comes from the library
    // (and the child's network of its own has nowhere to send a packet if it did not).
    let script = r#"
import socket
for addr in ["::ffff:192.0.2.7", "::192.0.2.7", "64:ff9b::192.0.2.7", "64:ff9b::c000:207"]:
    s = socket.socket(socket.AF_INET6)
    s.settimeout(5)
    try:
        s.connect((addr, 80, 0, 0))
        print("connected")
    except OSError as e:
        print(e.errno)
"#;
    let out = Run::python(script).config(&config).no_network().output();
    let eacces = libc::EACCES.to_string();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [eacces.as_str(); 4]
    );
}

#[test]
fn dunder_connect_is_decided_too() {
    let scratch = Scratch::new("dunder-connect");
    let config = Config::new()
        .default("deny")
        .log(scratch.log_path())
        .write(&scratch);
    let origin = Origin::start("origin");
    let script = format!(
        r#"
import ctypes, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
s = socket.socket()
sa = struct.pack("<H", socket.AF_INET) + struct.pack(">H", {port}) + socket.inet_aton("127.0.0.1") + bytes(8)
print(libc.__connect(s.fileno(), sa, len(sa)), ctypes.get_errno())
"#,
        port = origin.addr.port()
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(out.success().trim(), format!("-1 {}", libc::EACCES));
}

#[test]
fn children_started_with_vfork_or_posix_spawn_are_decided_too() {
    let origin = Origin::start("origin");
    let scratch = Scratch::new("spawn");
    let config = Config::new()
        .default("deny")
        .log(scratch.log_path())
        .write(&scratch);
    // Python's subprocess uses vfork/posix_spawn; os.posix_spawn is the libc call itself. The
    // children inherit LD_PRELOAD and the config, and are decided like their parent.
    let url = format!("http://127.0.0.1:{}/", origin.addr.port());
    let script = format!(
        r#"
import os, subprocess
print(subprocess.run(["curl", "-s", "--max-time", "5", "{url}"]).returncode)
pid = os.posix_spawnp("curl", ["curl", "-s", "--max-time", "5", "{url}"], os.environ)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"#
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        ["7", "7"],
        "curl: couldn't connect"
    );
    assert!(origin.requests().is_empty());
    let log = scratch.log();
    let curl_denials = events(&log, "connect")
        .iter()
        .filter(|e| e["exe"] == "curl" && e["action"] == "deny")
        .count();
    assert_eq!(curl_denials, 2);
}

#[test]
fn msg_fastopen_on_a_datagram_is_still_a_datagram() {
    let scratch = Scratch::new("udp-fastopen");
    let config = Config::new()
        .default("deny")
        .top("strict = true")
        .log(scratch.log_path())
        .write(&scratch);
    // The flag means nothing on UDP; it must not carry the datagram past the check.
    let script = r#"
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"x", socket.MSG_FASTOPEN, ("10.9.9.9", 53))
    print("sent")
except OSError as e:
    print(e.errno)
"#;
    let out = Run::python(script).config(&config).no_network().output();
    assert_eq!(out.success().trim(), libc::EACCES.to_string());
}
