//! Gateways that take their time, and gateways that fail in each way a gateway can, behind one
//! config: for the tests of routed connects on non-blocking sockets (the relay).

use std::path::PathBuf;

use super::*;

/// How long the slow gateways hold each handshake.
pub const DELAY_MS: u64 = 1000;

/// An origin behind slow gateways of each kind, and gateways that fail in each way.
pub struct Slow {
    pub origin: Origin,
    /// Listens and never accepts: past its backlog, connects to it are never answered.
    _void: std::net::TcpListener,
    pub http: ConnectProxy,
    pub socks: Socks5Server,
    /// The gateway of `*.refused.test`.
    pub refusing: ConnectProxy,
    pub scratch: Scratch,
    pub config: PathBuf,
}

/// `*.http.test` through a CONNECT proxy and `*.socks.test` through a SOCKS5 server, both
/// holding each handshake `DELAY_MS`; `*.refused.test` through one that answers 403 after the
/// delay, `*.hang.test` through one that never answers (`connect_timeout_ms` 1500),
/// `*.closing.test` through one that closes mid-reply, `*.void.test` through one that never
/// accepts (`connect_timeout_ms` 3000); `top` starts the config.
pub fn slow(name: &str, top: &str) -> Slow {
    let origin = Origin::start("origin");
    let delayed = |then| ProxyBehaviour::Delayed(DELAY_MS, Box::new(then));
    let http = ConnectProxy::start(origin.addr, delayed(ProxyBehaviour::Tunnel));
    let refusing = ConnectProxy::start(
        origin.addr,
        delayed(ProxyBehaviour::Refuse("HTTP/1.1 403 Forbidden")),
    );
    let socks = Socks5Server::start_delayed(origin.addr, None, 0, DELAY_MS);
    let void = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let scratch = Scratch::new(name);
    let config = Config::new()
        .top(top)
        .log(scratch.log_path())
        .gateway("http", "http", &[http.addr])
        .gateway("socks", "socks5", &[socks.addr])
        .gateway("refusing", "http", &[refusing.addr])
        .gateway("hanging", "http", &[silent_listener()])
        .gateway_option("connect_timeout_ms = 1500")
        .gateway(
            "closing",
            "http",
            &[raw_responder(b"HTTP/1.1 200 Conn".to_vec())],
        )
        .gateway("void", "http", &[void.local_addr().unwrap()])
        .gateway_option("connect_timeout_ms = 3000")
        .via("*.http.test", "http")
        .via("*.socks.test", "socks")
        .via("*.refused.test", "refusing")
        .via("*.hang.test", "hanging")
        .via("*.closing.test", "closing")
        .via("*.void.test", "void")
        .write(&scratch);
    Slow {
        origin,
        _void: void,
        http,
        socks,
        refusing,
        scratch,
        config,
    }
}
