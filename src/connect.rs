//! What happens to one intercepted `connect()` on an `AF_INET`/`AF_INET6` socket: recover the
//! hostname, decide by the rules, act (direct, deny, or through a gateway), log.
//!
//! The pass-through cost, for a program with nothing configured: one atomic load. With rules:
//! one `getsockopt(SO_TYPE)`, one rule-table walk, a table lookup for the hostname (arithmetic
//! for fake addresses), the real `connect`, and one log line (`fstat` + `write`).

use std::net::SocketAddr;

use crate::gateway::{self, Destination};
use crate::log::{Event, LogResult};
use crate::resolver::NameOrigin;
use crate::rules::{Action, Decision, Target};
use crate::runtime::{self, Mode, Runtime};
use crate::sys::{self, socket};

/// What the hook should do.
pub enum Outcome {
    /// Call the real `connect` with the program's own arguments; nothing to decide.
    PassThrough,
    /// We did the work: return 0, or -1 with this errno.
    Done(Result<(), i32>),
}

/// Decides and acts for a `connect(fd, dst)`; `dst` is exactly what the program passed.
pub fn on_connect(fd: i32, dst: SocketAddr) -> Outcome {
    let rt = runtime::get();
    if matches!(rt.mode, Mode::Inactive | Mode::FailOpen(_)) {
        return Outcome::PassThrough;
    }
    let proto = match socket::socket_type(fd) {
        Some(libc::SOCK_STREAM) => "tcp",
        Some(libc::SOCK_DGRAM) => "udp",
        _ => return Outcome::PassThrough,
    };
    match &rt.mode {
        Mode::Inactive | Mode::FailOpen(_) => return Outcome::PassThrough,
        Mode::FailClosed(reason) => {
            rt.log.write(
                &Event {
                    proto: Some(proto),
                    port: Some(dst.port()),
                    dst: Some(dst),
                    action: Some("deny"),
                    rule: Some((None, "invalid configuration")),
                    result: LogResult::Errno(libc::EACCES),
                    error: Some(reason),
                    ..Default::default()
                },
                &rt.exe,
            );
            return Outcome::Done(Err(libc::EACCES));
        }
        Mode::Active => {}
    }
    let started = sys::monotonic_us();
    let ip = dst.ip().to_canonical();
    let known = rt.resolver.host_of(ip);
    let host = known.as_ref().map(|(name, _)| name.as_str());
    let is_fake = matches!(known, Some((_, NameOrigin::Fake)));

    let mut event = Event {
        proto: Some(proto),
        host,
        port: Some(dst.port()),
        dst: Some(dst),
        ..Default::default()
    };

    // Built-in rules first: a program talking to the gateway itself, or to the system's DNS.
    let builtin = if rt.is_gateway_endpoint(dst) {
        Some("gateway endpoint")
    } else if dst.port() == 53 && rt.nameservers.contains(&ip) {
        Some("system resolver")
    } else {
        None
    };
    let decision = match builtin {
        Some(pattern) => {
            event.rule = Some((None, pattern));
            Decision {
                action: Action::Direct,
                rule_index: None,
            }
        }
        None => {
            let mut decision = rt.rules.decide(&Target {
                host,
                addr: (!is_fake).then_some(ip),
                port: Some(dst.port()),
                exe: &rt.exe,
            });
            event.rule = Some(match decision.rule_index {
                Some(i) => (Some(i), rt.rules.rules()[i].pattern.as_str()),
                // A default gateway never gets loopback traffic: it cannot reach this machine's
                // loopback, and "CONNECT 127.0.0.1:port" would hit the gateway's own services.
                None if ip.is_loopback() && matches!(decision.action, Action::Gateway(_)) => {
                    decision.action = Action::Direct;
                    (None, "loopback (a default gateway does not apply)")
                }
                None => (None, "default"),
            });
            decision
        }
    };
    event.action = Some(decision.action.name());

    let mut error_text = String::new();
    let result = match decision.action {
        Action::Direct if is_fake => {
            // A fake address for a host that goes direct on this port: resolve it for real now.
            direct_to_host(fd, host.unwrap_or(""), dst, rt, &mut error_text)
        }
        Action::Direct => {
            socket::connect_once(fd, &dst).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
        }
        Action::Deny => {
            error_text = "denied by rule".into();
            Err(libc::EACCES)
        }
        Action::Gateway(index) if proto == "udp" => {
            event.gateway = Some(rt.gateways[index].name.as_str());
            error_text = "UDP cannot go through a gateway".into();
            Err(libc::EACCES)
        }
        Action::Gateway(index) => {
            let gw = &rt.gateways[index];
            event.gateway = Some(gw.name.as_str());
            let dest = Destination {
                host,
                addr: (!is_fake).then_some(ip),
                port: dst.port(),
            };
            let family = if dst.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            };
            match gateway_endpoint(rt, index, family) {
                Ok(endpoint) => {
                    event.endpoint = Some(endpoint);
                    gateway::establish(fd, gw, endpoint, &dest).map_err(|e| {
                        error_text = e.message;
                        e.errno
                    })
                }
                Err(e) => {
                    error_text = e.message;
                    Err(e.errno)
                }
            }
        }
    };
    if !error_text.is_empty() {
        event.error = Some(&error_text);
    }
    event.result = result.into();
    event.elapsed_us = Some(sys::monotonic_us().saturating_sub(started));
    rt.log.write(&event, &rt.exe);
    Outcome::Done(result)
}

/// The first endpoint of the gateway with an address usable from a socket of `family`. (Failover
/// over several endpoints comes with the gateway-availability work.)
fn gateway_endpoint(
    rt: &Runtime,
    index: usize,
    family: i32,
) -> Result<SocketAddr, gateway::GatewayError> {
    let gw = &rt.gateways[index];
    let endpoint = &gw.endpoints[0];
    let known = &rt.endpoint_addrs[index][0];
    let candidates = if known.is_empty() {
        runtime::resolve_endpoint(endpoint)
    } else {
        known.clone()
    };
    if candidates.is_empty() {
        return Err(gateway::GatewayError::new(
            libc::EHOSTUNREACH,
            format!("gateway endpoint {endpoint} does not resolve"),
        ));
    }
    gateway::endpoint_for_family(&candidates, family).ok_or_else(|| {
        gateway::GatewayError::new(
            libc::ENETUNREACH,
            format!("gateway endpoint {endpoint} has no address usable from an IPv4 socket"),
        )
    })
}

/// Connects to the real address of `host`, for a fake address whose connection goes direct.
fn direct_to_host(
    fd: i32,
    host: &str,
    dst: SocketAddr,
    rt: &Runtime,
    error_text: &mut String,
) -> Result<(), i32> {
    let addrs = match sys::resolve_real(host, dst.port()) {
        Ok(addrs) => addrs,
        Err(code) => {
            *error_text = format!("{host} does not resolve ({})", crate::log::eai_name(code));
            return Err(libc::EHOSTUNREACH);
        }
    };
    let family = if dst.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let Some(real) = gateway::endpoint_for_family(&addrs, family) else {
        *error_text = format!("{host} has no address usable from this socket");
        return Err(libc::ENETUNREACH);
    };
    for addr in &addrs {
        rt.resolver.memory.remember(addr.ip(), host);
    }
    socket::connect_once(fd, &real).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}
