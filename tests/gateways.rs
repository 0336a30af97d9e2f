//! Routed hostnames reach their target through each gateway kind, and the gateway is told the
//! hostname, not an address. Real clients (curl, Python, Node) under the library.

use crate::support::*;

fn http_gateway_config(
    scratch: &Scratch,
    proxy: std::net::SocketAddr,
    options: &str,
) -> std::path::PathBuf {
    Config::new()
        .default("direct")
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy])
        .gateway_option(options)
        .via("*.example.test", "corp")
        .write(scratch)
}

#[test]
fn curl_through_http_connect_sends_the_hostname() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("curl-http");
    let config = http_gateway_config(&scratch, proxy.addr, "");

    let out = Run::new(
        "curl",
        &[
            "-sS",
            "--max-time",
            "20",
            "http://api.example.test/v1/models",
        ],
    )
    .config(&config)
    .output();
    assert_eq!(out.success(), "hello from origin");

    assert_eq!(
        proxy.request_lines(),
        ["CONNECT api.example.test:80 HTTP/1.1"]
    );
    let request = &origin.requests()[0];
    assert!(request.starts_with("GET /v1/models HTTP/1.1"), "{request}");
    assert!(request.contains("Host: api.example.test"), "{request}");

    let log = scratch.log();
    let connects = events(&log, "connect");
    assert_eq!(connects.len(), 1, "{log:#?}");
    let c = connects[0];
    assert_eq!(c["host"], "api.example.test");
    assert_eq!(c["action"], "gateway");
    assert_eq!(c["gateway"], "corp");
    assert_eq!(c["endpoint"], proxy.addr.to_string());
    assert_eq!(c["rule"]["index"], 0);
    assert_eq!(c["rule"]["pattern"], "host=*.example.test");
    assert_eq!(c["result"], "ok");
    assert_eq!(c["exe"], "curl");
}

#[test]
fn python_urllib_and_socket_through_http_connect() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("py-http");
    let config = http_gateway_config(
        &scratch,
        proxy.addr,
        "headers = { \"X-Route\" = \"mcp\", \"X-MCP-Client\" = \"test\" }",
    );

    let script = r#"
import socket, urllib.request
print(urllib.request.urlopen("http://docs.example.test:8080/page", timeout=20).read().decode())
s = socket.create_connection(("raw.example.test", 9000), timeout=20)
s.sendall(b"GET /raw HTTP/1.0\r\nHost: raw.example.test\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk: break
    data += chunk
print(data.decode().split("\r\n\r\n", 1)[1])
"#;
    let out = Run::python(script).config(&config).output();
    assert_eq!(out.success(), "hello from origin\nhello from origin\n");
    assert_eq!(
        proxy.request_lines(),
        [
            "CONNECT docs.example.test:8080 HTTP/1.1",
            "CONNECT raw.example.test:9000 HTTP/1.1"
        ]
    );
    let head = &proxy.requests()[0];
    assert!(
        head.contains("\r\nHost: docs.example.test:8080\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\nX-Route: mcp\r\n") && head.contains("\r\nX-MCP-Client: test\r\n"),
        "{head}"
    );
}

#[test]
fn node_fetch_and_http_through_http_connect() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("node-http");
    let config = http_gateway_config(&scratch, proxy.addr, "");
    let script = r#"
const http = require("http");
(async () => {
  const r = await fetch("http://api.example.test/fetch");
  console.log(await r.text());
  await new Promise((resolve, reject) => {
    http.get("http://other.example.test:81/http", res => {
      let body = ""; res.on("data", c => body += c); res.on("end", () => { console.log(body); resolve(); });
    }).on("error", reject);
  });
})().catch(e => { console.error(e); process.exit(1); });
"#;
    let out = Run::node(script).config(&config).output();
    assert_eq!(out.success(), "hello from origin\nhello from origin\n");
    let mut lines = proxy.request_lines();
    lines.sort();
    assert_eq!(
        lines,
        [
            "CONNECT api.example.test:80 HTTP/1.1",
            "CONNECT other.example.test:81 HTTP/1.1"
        ]
    );
    assert!(events(&scratch.log(), "connect")
        .iter()
        .all(|e| e["exe"] == "node" && e["result"] == "ok"));
}

#[test]
fn basic_auth_reaches_the_proxy_and_never_the_log() {
    let origin = Origin::start("origin");
    // base64("mcp:s3cret-pw")
    let proxy = ConnectProxy::start(
        origin.addr,
        ProxyBehaviour::RequireBasic("bWNwOnMzY3JldC1wdw==".into()),
    );
    let scratch = Scratch::new("auth");
    let config = http_gateway_config(
        &scratch,
        proxy.addr,
        "username = \"mcp\"\npassword_env = \"TEST_PROXY_PW\"",
    );
    let out = Run::curl("http://api.example.test/")
        .config(&config)
        .env("TEST_PROXY_PW", "s3cret-pw")
        .output();
    assert_eq!(out.success(), "hello from origin");
    let log_text = std::fs::read_to_string(scratch.log_path()).unwrap();
    assert!(
        !log_text.contains("s3cret-pw") && !log_text.contains("bWNwOnMzY3JldC1wdw"),
        "{log_text}"
    );
    assert!(!out.stderr.contains("s3cret-pw"));

    // The wrong password: the proxy says 407; the program sees ECONNREFUSED; the log carries the
    // status line, still no secret.
    let out = Run::python("import socket\ntry:\n socket.create_connection(('api.example.test', 443), timeout=20)\nexcept OSError as e:\n print(e.errno)")
        .config(&config)
        .env("TEST_PROXY_PW", "wrong-pw")
        .output();
    assert_eq!(out.success().trim(), libc::ECONNREFUSED.to_string());
    let log = scratch.log();
    let last = events(&log, "connect").into_iter().last().unwrap().clone();
    assert_eq!(last["result"], "ECONNREFUSED");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("HTTP/1.1 407 Proxy Authentication Required"),
        "{last}"
    );
    assert!(!std::fs::read_to_string(scratch.log_path())
        .unwrap()
        .contains("wrong-pw"));
}

#[test]
fn proxy_refusal_is_econnrefused_with_the_status_line_logged() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(
        origin.addr,
        ProxyBehaviour::Refuse("HTTP/1.1 403 Forbidden by policy"),
    );
    let scratch = Scratch::new("refuse");
    let config = http_gateway_config(&scratch, proxy.addr, "");
    // The socket is left as after a refused connect: unconnected, with no stale SO_ERROR.
    let script = r#"
import socket
s = socket.socket()
try:
    s.connect(("blocked.example.test", 443))
except OSError as e:
    print(e.errno)
print(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
try:
    s.getpeername()
except OSError as e:
    print("unconnected")
"#;
    let out = Run::python(script).config(&config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [libc::ECONNREFUSED.to_string().as_str(), "0", "unconnected"]
    );
    let log = scratch.log();
    let c = events(&log, "connect")[0];
    assert_eq!(c["result"], "ECONNREFUSED");
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .contains("\"HTTP/1.1 403 Forbidden by policy\""),
        "{c}"
    );
}

#[test]
fn malformed_and_truncated_proxy_replies_fail_cleanly() {
    let origin = Origin::start("origin");
    for (reply, expect) in [
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec(), "malformed"),
        (
            b"HTTP/1.1 200 OK\r\nX: y".to_vec(),
            "without ending the reply",
        ),
        (Vec::new(), "without a reply"),
    ] {
        let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Raw(reply));
        let scratch = Scratch::new("malformed");
        let config = http_gateway_config(&scratch, proxy.addr, "");
        let out = Run::python("import socket\ntry:\n socket.create_connection(('x.example.test', 443), timeout=20)\nexcept OSError as e:\n print(e.errno)")
            .config(&config)
            .output();
        assert_eq!(
            out.success().trim(),
            libc::ECONNREFUSED.to_string(),
            "{}",
            out.describe()
        );
        let log = scratch.log();
        let error = events(&log, "connect")[0]["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(error.contains(expect), "{error}");
    }
}

#[test]
fn a_silent_gateway_times_out_within_the_budget() {
    let hang = silent_listener();
    let scratch = Scratch::new("timeout");
    let config = http_gateway_config(&scratch, hang, "connect_timeout_ms = 300");
    let out = Run::python("import socket\ntry:\n socket.create_connection(('slow.example.test', 443))\nexcept OSError as e:\n print(e.errno)")
        .config(&config)
        .output();
    assert_eq!(out.success().trim(), libc::ETIMEDOUT.to_string());
    let log = scratch.log();
    assert_eq!(events(&log, "connect")[0]["result"], "ETIMEDOUT");
}

#[test]
fn an_unreachable_gateway_fails_closed() {
    let scratch = Scratch::new("unreachable");
    let config = http_gateway_config(&scratch, closed_port(), "");
    let out = Run::curl("http://api.example.test/")
        .config(&config)
        .output();
    assert_eq!(
        out.code,
        Some(7),
        "curl: couldn't connect\n{}",
        out.describe()
    );
    let log = scratch.log();
    let c = events(&log, "connect")[0];
    assert_eq!(c["result"], "ECONNREFUSED");
    assert!(c["error"]
        .as_str()
        .unwrap()
        .starts_with("cannot reach gateway endpoint"));
}

fn socks_config(
    scratch: &Scratch,
    server: std::net::SocketAddr,
    options: &str,
) -> std::path::PathBuf {
    Config::new()
        .log(scratch.log_path())
        .gateway("socks", "socks5", &[server])
        .gateway_option(options)
        .via(".example.test", "socks")
        .rule(r#"cidr = "127.10.0.0/16""#, r#"via = "socks""#)
        .write(scratch)
}

#[test]
fn socks5_sends_the_domain_name() {
    let origin = Origin::start("origin");
    let socks = Socks5Server::start(origin.addr, None, 0);
    let scratch = Scratch::new("socks");
    let config = socks_config(&scratch, socks.addr, "");
    let out = Run::curl("http://example.test:8443/")
        .config(&config)
        .output();
    assert_eq!(out.success(), "hello from origin");
    let requests = socks.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (
            requests[0].atyp,
            requests[0].host.as_str(),
            requests[0].port
        ),
        (3, "example.test", 8443)
    );
    assert_eq!(requests[0].methods, vec![0]);

    // A literal address goes as an address (ATYP 1): nothing to resolve. A loopback one, so
    // that nothing could leave the machine even if the library let it go direct; the test SOCKS
    // server connects to the origin whatever it is asked.
    let out = Run::python("import socket\ns = socket.create_connection(('127.10.2.3', 80), timeout=20)\ns.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\nprint(s.recv(4096).decode().split('\\r\\n\\r\\n')[1])")
        .config(&config)
        .output();
    assert_eq!(out.success().trim(), "hello from origin");
    let last = socks.requests().pop().unwrap();
    assert_eq!(
        (last.atyp, last.host.as_str(), last.port),
        (1, "127.10.2.3", 80)
    );
}

#[test]
fn socks5_username_password() {
    let origin = Origin::start("origin");
    let socks = Socks5Server::start(origin.addr, Some(("agent", "pa55")), 0);
    let scratch = Scratch::new("socks-auth");
    let config = socks_config(
        &scratch,
        socks.addr,
        "username = \"agent\"\npassword_env = \"SOCKS_PW\"",
    );
    let out = Run::curl("http://api.example.test/")
        .config(&config)
        .env("SOCKS_PW", "pa55")
        .output();
    assert_eq!(out.success(), "hello from origin");
    assert_eq!(
        socks.requests()[0].credentials,
        Some(("agent".into(), "pa55".into()))
    );
    assert!(!std::fs::read_to_string(scratch.log_path())
        .unwrap()
        .contains("pa55"));

    let out = Run::python("import socket\ntry:\n socket.create_connection(('api.example.test', 80), timeout=20)\nexcept OSError as e:\n print(e.errno)")
        .config(&config)
        .env("SOCKS_PW", "nope")
        .output();
    assert_eq!(out.success().trim(), libc::EACCES.to_string());
}

#[test]
fn socks5_failure_replies_map_to_errnos() {
    let origin = Origin::start("origin");
    for (code, errno) in [
        (2u8, libc::EACCES),
        (3, libc::ENETUNREACH),
        (4, libc::EHOSTUNREACH),
        (5, libc::ECONNREFUSED),
    ] {
        let socks = Socks5Server::start(origin.addr, None, code);
        let scratch = Scratch::new("socks-fail");
        let config = socks_config(&scratch, socks.addr, "");
        let out = Run::python("import socket\ntry:\n socket.create_connection(('x.example.test', 80), timeout=20)\nexcept OSError as e:\n print(e.errno)")
            .config(&config)
            .output();
        assert_eq!(out.success().trim(), errno.to_string(), "reply {code}");
    }
}

#[test]
fn rewrite_connects_to_the_api_gateway_instead() {
    // The "API gateway" is an origin that routes on the Host header.
    let api_gateway = Origin::start("api-gateway");
    let scratch = Scratch::new("rewrite");
    let config = Config::new()
        .log(scratch.log_path())
        .gateway("kong", "rewrite", &[api_gateway.addr])
        .via("api.openai.test", "kong")
        .and("port = 80")
        .write(&scratch);
    let out = Run::curl("http://api.openai.test/v1/chat")
        .config(&config)
        .output();
    assert_eq!(out.success(), "hello from api-gateway");
    let request = &api_gateway.requests()[0];
    assert!(
        request.starts_with("GET /v1/chat HTTP/1.1") && request.contains("Host: api.openai.test"),
        "{request}"
    );
    let log = scratch.log();
    assert_eq!(
        events(&log, "connect")[0]["endpoint"],
        api_gateway.addr.to_string()
    );
}

#[test]
fn a_program_that_talks_to_the_proxy_itself_is_not_proxied_twice() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("endpoint-direct");
    // Even with everything routed through the proxy by default...
    let config = Config::new()
        .default("corp")
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy.addr])
        .write(&scratch);
    // ...curl's own -x connection to the proxy goes straight to it.
    let out = Run::new(
        "curl",
        &[
            "-sS",
            "--max-time",
            "20",
            "-x",
            &format!("http://{}", proxy.addr),
            "-p",
            "http://api.example.test/",
        ],
    )
    .config(&config)
    .output();
    assert_eq!(out.success(), "hello from origin");
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT api.example.test:80 HTTP/1.1"]
    );
    let log = scratch.log();
    let c = events(&log, "connect")[0];
    assert_eq!(
        (c["action"].as_str(), c["rule"]["pattern"].as_str()),
        (Some("direct"), Some("gateway endpoint"))
    );
}

#[test]
fn ipv6_sockets_reach_the_gateway_with_v6_and_v4_mapped_fake_addresses() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("ipv6");
    let config = http_gateway_config(&scratch, proxy.addr, "");
    // An AF_INET6 socket to the IPv6 fake, and (as Java does) to the IPv4 fake in v4-mapped form;
    // the IPv4 gateway endpoint is reached v4-mapped from the IPv6 socket.
    let script = r#"
import socket
def get(addr):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(addr)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk: break
        data += chunk
    return data.decode().split("\r\n\r\n")[1]
v6 = socket.getaddrinfo("six.example.test", 80, socket.AF_INET6, socket.SOCK_STREAM)[0][4]
print(get(v6))
v4 = socket.getaddrinfo("four.example.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
print(get(("::ffff:" + v4, 80, 0, 0)))
"#;
    let out = Run::python(script).config(&config).output();
    assert_eq!(out.success(), "hello from origin\nhello from origin\n");
    assert_eq!(
        proxy.request_lines(),
        [
            "CONNECT six.example.test:80 HTTP/1.1",
            "CONNECT four.example.test:80 HTTP/1.1"
        ]
    );
    let log = scratch.log();
    assert!(events(&log, "connect")
        .iter()
        .all(|e| e["endpoint"] == format!("[::ffff:{}]:{}", proxy.addr.ip(), proxy.addr.port())));
}

#[test]
fn tcp_fast_open_sends_are_decided_like_connects() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("fastopen");
    let config = Config::new()
        .default("deny")
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy.addr])
        .via("*.example.test", "corp")
        .write(&scratch);
    // sendto(MSG_FASTOPEN) opens a TCP connection without connect(): a denied destination must
    // refuse it, and a routed one must go through the gateway with its payload.
    let script = format!(
        r#"
import socket
s = socket.socket()
try:
    s.sendto(b"GET / HTTP/1.0\r\n\r\n", socket.MSG_FASTOPEN, ("127.0.0.1", {port}))
    print("sent direct!")
except OSError as e:
    print(e.errno)
addr = socket.getaddrinfo("api.example.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4]
s = socket.socket()
s.settimeout(20)
s.sendto(b"GET / HTTP/1.0\r\n\r\n", socket.MSG_FASTOPEN, addr)
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk: break
    data += chunk
print(data.decode().split("\r\n\r\n")[1])
"#,
        port = origin.addr.port()
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [libc::EACCES.to_string().as_str(), "hello from origin"]
    );
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT api.example.test:80 HTTP/1.1"]
    );
    assert_eq!(
        origin.requests().len(),
        1,
        "only the tunneled request reached the origin"
    );
}

#[test]
fn a_rewrite_gateway_can_receive_a_proxy_v2_header() {
    use std::io::{Read, Write};
    // An API gateway that speaks PROXY v2: the header first, then the client's bytes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gateway = listener.local_addr().unwrap();
    let seen = std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().unwrap();
        let mut head = [0u8; 16];
        conn.read_exact(&mut head).unwrap();
        let mut rest = vec![0u8; u16::from_be_bytes([head[14], head[15]]) as usize];
        conn.read_exact(&mut rest).unwrap();
        let request = read_head(&mut conn);
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
            .unwrap();
        (head, rest, request, peer)
    });
    let scratch = Scratch::new("proxy-v2");
    let config = Config::new()
        .log(scratch.log_path())
        .gateway("kong", "rewrite", &[gateway])
        .gateway_option(r#"proxy_protocol = "v2""#)
        .via("api.openai.test", "kong")
        .write(&scratch);
    let out = Run::curl("http://api.openai.test:8080/v1/models")
        .config(&config)
        .output();
    assert_eq!(out.success(), "hi");
    let (head, rest, request, peer) = seen.join().unwrap();
    assert_eq!(&head[..12], b"\r\n\r\n\0\r\nQUIT\n", "the v2 signature");
    assert_eq!(
        (head[12], head[13]),
        (0x21, 0x11),
        "PROXY command, TCP over IPv4"
    );
    assert_eq!(
        &rest[0..4],
        &[127, 0, 0, 1],
        "source: the client's own address"
    );
    assert_eq!(
        u16::from_be_bytes([rest[8], rest[9]]),
        peer.port(),
        "source port: the client's"
    );
    assert_eq!(
        u16::from_be_bytes([rest[10], rest[11]]),
        8080,
        "destination port: the original"
    );
    assert_eq!(rest[12], 0x02, "an AUTHORITY TLV");
    assert_eq!(&rest[15..], b"api.openai.test", "carrying the hostname");
    assert!(request.starts_with("GET /v1/models HTTP/1.1"), "{request}");
}
