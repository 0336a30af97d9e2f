//! Zero-config: with no config file, the conventional proxy variables route programs that ignore
//! them (raw sockets, Node's fetch), and NO_PROXY entries go direct.

use crate::support::*;

/// A Python script that opens a raw socket (which never looks at proxy variables), speaks HTTP,
/// and prints the body.
fn raw_get(host: &str, port: u16) -> String {
    format!(
        r#"
import socket
s = socket.create_connection(("{host}", {port}), timeout=20)
s.sendall(b"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk: break
    data += chunk
print(data.decode().split("\r\n\r\n", 1)[1])
"#
    )
}

#[test]
fn https_proxy_routes_programs_that_ignore_it() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("env");
    let proxy_url = format!("http://{}", proxy.addr);

    let out = Run::python(&raw_get("api.example.test", 443))
        .env("HTTPS_PROXY", &proxy_url)
        .env("MCP_REDIRECT_LOG", scratch.log_path())
        .output();
    assert_eq!(out.success().trim(), "hello from origin");

    // Node's fetch ignores HTTPS_PROXY by itself.
    let out = Run::node("fetch('http://node.example.test/').then(r => r.text()).then(t => console.log(t), e => { console.error(e); process.exit(1); })")
        .env("https_proxy", &proxy_url)
        .env("MCP_REDIRECT_LOG", scratch.log_path())
        .output();
    assert_eq!(out.success().trim(), "hello from origin");
    assert_eq!(
        proxy.request_lines(),
        [
            "CONNECT api.example.test:443 HTTP/1.1",
            "CONNECT node.example.test:80 HTTP/1.1"
        ]
    );
    let log = scratch.log();
    assert!(
        events(&log, "connect")
            .iter()
            .all(|e| e["gateway"] == "https_proxy"),
        "{log:#?}"
    );
}

#[test]
fn no_proxy_entries_and_loopback_go_direct() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("no-proxy");
    // db.internal.test matches NO_PROXY, so it is resolved for real instead of faked: the child's
    // DNS (127.0.0.1, no server) has no answer, which shows it was asked and the proxy was not.
    let script = format!(
        r#"
import socket
try:
    socket.getaddrinfo("db.internal.test", 5432)
    print("resolved")
except socket.gaierror:
    print("no answer")
{}
{}
"#,
        raw_get("localhost", origin.addr.port()),
        raw_get("routed.example.test", 443)
    );
    let out = Run::python(&script)
        .env("ALL_PROXY", format!("http://{}", proxy.addr))
        .env("NO_PROXY", "example.org, .internal.test")
        .env("MCP_REDIRECT_LOG", scratch.log_path())
        .output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        ["no answer", "hello from origin", "hello from origin"]
    );
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT routed.example.test:443 HTTP/1.1"]
    );
    let log = scratch.log();
    let db = events(&log, "resolve")
        .into_iter()
        .find(|e| e["host"] == "db.internal.test")
        .unwrap()
        .clone();
    assert_eq!(
        (db["action"].as_str(), db["rule"]["pattern"].as_str()),
        (Some("direct"), Some("host=.internal.test"))
    );
    let local = events(&log, "connect")
        .into_iter()
        .find(|e| e["host"] == "localhost")
        .unwrap()
        .clone();
    assert_eq!(local["action"], "direct");
}

#[test]
fn a_socks5h_all_proxy_with_credentials() {
    let origin = Origin::start("origin");
    let socks = Socks5Server::start(origin.addr, Some(("u", "p@ss")), 0);
    let out = Run::python(&raw_get("api.example.test", 443))
        .env("ALL_PROXY", format!("socks5h://u:p%40ss@{}", socks.addr))
        .env("MCP_REDIRECT_LOG", "off")
        .output();
    assert_eq!(out.success().trim(), "hello from origin");
    let request = &socks.requests()[0];
    assert_eq!(
        (request.host.as_str(), request.credentials.clone()),
        ("api.example.test", Some(("u".into(), "p@ss".into())))
    );
}

#[test]
fn nothing_configured_means_untouched_and_silent() {
    let origin = Origin::start("origin");
    let url = format!("http://127.0.0.1:{}/", origin.addr.port());
    let out = Run::curl(&url).output();
    assert_eq!(out.success(), "hello from origin");
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn a_bad_proxy_variable_fails_closed_without_echoing_the_password() {
    let origin = Origin::start("origin");
    let url = format!("http://127.0.0.1:{}/", origin.addr.port());
    let out = Run::new("curl", &["-sS", "--noproxy", "*", "--max-time", "20", &url])
        .env("HTTPS_PROXY", "ftp://user:hunter2@proxy.test:21")
        .output();
    assert_eq!(out.code, Some(7), "{}", out.describe());
    assert!(
        out.stderr
            .contains("HTTPS_PROXY: proxy scheme \"ftp\" is not supported"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("hunter2"));
}
