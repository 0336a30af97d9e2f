//! Gateways: getting the caller's socket connected through an HTTP CONNECT proxy, a SOCKS5
//! proxy, or (rewrite) straight to an API gateway in place of the destination, optionally with a
//! PROXY v2 header ([`proxy_protocol`]). Which endpoint to try, and in what order, is
//! [`health`]'s; `srv:` endpoints are found by [`discovery`].
//!
//! The handshake runs on the caller's own fd (borrowed, never replaced) under a deadline of
//! `connect_timeout_ms` for the whole exchange, without changing its file flags (a blocking
//! socket connects with `SO_SNDTIMEO` as the bound, and every read and write is `MSG_DONTWAIT`
//! after a wait). On failure the socket is disconnected again (`AF_UNSPEC`), so the caller
//! holds an unconnected socket and an errno, as after any refused `connect()`.
#![deny(unsafe_code)]

pub mod discovery;
pub mod health;
pub mod http_connect;
pub mod proxy_protocol;
pub mod socks5;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::config::{Gateway, GatewayKind};
use crate::sys::socket::{self, ConnectMode, Deadline, Waiter};

/// Where the program wanted to go. The hostname is sent when known, so that the gateway
/// resolves it and applies its own host ACLs.
#[derive(Clone, Copy, Debug)]
pub struct Destination<'a> {
    pub host: Option<&'a str>,
    pub addr: Option<IpAddr>,
    pub port: u16,
}

impl Destination<'_> {
    /// `host:port`, `a.b.c.d:port` or `[v6]:port`, for a CONNECT line. Refuses a hostname that
    /// is not a plain DNS name (CR, LF, spaces...): it would split the request.
    pub fn authority(&self) -> Result<String, GatewayError> {
        match (self.host, self.addr) {
            (Some(host), _) => {
                if crate::net::normalize_host(host).as_deref() != Some(host) {
                    return Err(GatewayError::new(
                        libc::EINVAL,
                        "the hostname is not a valid DNS name",
                    ));
                }
                Ok(if host.contains(':') {
                    format!("[{host}]:{}", self.port)
                } else {
                    format!("{host}:{}", self.port)
                })
            }
            (None, Some(addr)) => Ok(SocketAddr::new(addr.to_canonical(), self.port).to_string()),
            (None, None) => Err(GatewayError::new(libc::EINVAL, "no destination")),
        }
    }
}

/// A failed gateway connection: the errno the caller sees, the text the log carries (never a
/// password or an auth header), and whether the fault is the endpoint's (unreachable, broken,
/// overloaded: another endpoint may do better) or the answer would be the same anywhere (a
/// policy refusal, an unreachable destination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub errno: i32,
    pub message: String,
    pub endpoint_fault: bool,
}

impl GatewayError {
    /// A final answer: the same from any endpoint; never retried elsewhere.
    pub fn new(errno: i32, message: impl Into<String>) -> Self {
        GatewayError {
            errno,
            message: message.into(),
            endpoint_fault: false,
        }
    }

    /// The endpoint's own trouble: the next endpoint is tried.
    pub fn endpoint_fault(errno: i32, message: impl Into<String>) -> Self {
        GatewayError {
            endpoint_fault: true,
            ..GatewayError::new(errno, message)
        }
    }

    fn io(context: &str, e: io::Error) -> Self {
        let errno = e.raw_os_error().unwrap_or(libc::ECONNREFUSED);
        let detail = if errno == libc::ETIMEDOUT {
            "timed out".to_string()
        } else {
            crate::errno::errno_text(&e)
        };
        GatewayError::endpoint_fault(errno, format!("{context}: {detail}"))
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The endpoint address to use for a socket of `family`: the same family, or an IPv4 endpoint
/// mapped into IPv6 for an `AF_INET6` socket.
pub fn endpoint_for_family(candidates: &[SocketAddr], family: i32) -> Option<SocketAddr> {
    let same = candidates.iter().find(|a| match family {
        libc::AF_INET => a.is_ipv4(),
        _ => a.is_ipv6(),
    });
    if let Some(addr) = same {
        return Some(*addr);
    }
    if family == libc::AF_INET6 {
        return candidates.iter().find_map(|a| match a {
            SocketAddr::V4(v4) => Some(SocketAddr::new(
                IpAddr::V6(v4.ip().to_ipv6_mapped()),
                v4.port(),
            )),
            SocketAddr::V6(_) => None,
        });
    }
    None
}

/// Connects `fd` through `gateway`, via `endpoint`, to `dest`, before `deadline`, waiting the
/// way `waiter` waits (and inside `connect()` for a blocking socket: `mode`).
pub async fn establish(
    waiter: &dyn Waiter,
    fd: i32,
    mode: ConnectMode,
    gateway: &Gateway,
    endpoint: SocketAddr,
    dest: &Destination<'_>,
    deadline: Deadline,
) -> Result<(), GatewayError> {
    let connected = match mode {
        ConnectMode::Blocking(program) => {
            socket::connect_blocking(fd, &endpoint, deadline, program)
        }
        ConnectMode::NonBlocking => socket::connect_until(waiter, fd, &endpoint, deadline).await,
    };
    match connected {
        Ok(()) => {}
        // The program called connect() again on a socket we already connected: say so, and
        // leave the established tunnel alone.
        Err(e) if e.raw_os_error() == Some(libc::EISCONN) => {
            return Err(GatewayError::new(libc::EISCONN, "already connected"));
        }
        Err(e) => {
            socket::disconnect(fd);
            return Err(GatewayError::io(
                &format!("cannot reach gateway endpoint {endpoint}"),
                e,
            ));
        }
    }
    let result = match gateway.kind {
        GatewayKind::Http => http_connect::handshake(waiter, fd, gateway, dest, deadline).await,
        GatewayKind::Socks5 => socks5::handshake(waiter, fd, gateway, dest, deadline).await,
        GatewayKind::Rewrite if gateway.proxy_protocol => {
            let source = socket::local_address(fd)
                .map_err(|e| GatewayError::io("reading the socket's local address", e))?;
            let destination = SocketAddr::new(dest.addr.unwrap_or(endpoint.ip()), dest.port);
            let header = proxy_protocol::header(source, destination, dest.host);
            socket::send_all(waiter, fd, &header, deadline)
                .await
                .map_err(|e| GatewayError::io("sending the PROXY protocol header", e))
        }
        GatewayKind::Rewrite => Ok(()),
    };
    if result.is_err() {
        socket::disconnect(fd);
    }
    result
}
