//! What happens to one intercepted `connect()` (or TCP Fast Open `sendto`/`sendmsg`, which
//! connects too) on an `AF_INET`/`AF_INET6` socket: recover the hostname, decide by the rules,
//! act (direct, deny, or through a gateway), log.
//!
//! The pass-through cost, for a program with nothing configured: one atomic load. With rules:
//! one `getsockopt(SO_TYPE)`, one rule-table walk per known hostname, a table lookup for the
//! hostname (arithmetic for fake addresses), the real `connect`, and one log line (`fstat` +
//! `write`).

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use crate::config::Endpoint;
use crate::gateway::{self, discovery, Destination};
use crate::log::{Attempt, Event, LogResult};
use crate::notice::Reason;
use crate::relay;
use crate::resolver::memory::WAYS;
use crate::resolver::names::hash_bytes;
use crate::resolver::KnownNames;
use crate::rules::{Action, Decision, Target};
use crate::runtime::{self, Mode, Runtime};
use crate::sys::socket::{ConnectMode, Deadline, PollWaiter, Waiter};
use crate::sys::{self, socket};

/// What the hook should do.
pub enum Outcome {
    /// Call the real function with the program's own arguments; nothing to decide.
    PassThrough,
    /// We did the work: return this value (0 for `connect`, a byte count for a send), or -1
    /// with this errno.
    Done(Result<isize, i32>),
}

/// How to carry out the program's call once decided.
pub struct Act<'a> {
    /// The program's own call, towards this address: the one it passed, or the real address of
    /// a host it reached through a fake one.
    pub direct: &'a mut dyn FnMut(&SocketAddr) -> Result<isize, i32>,
    /// What remains once a gateway tunnel is up (nothing for `connect`; the payload for fast open).
    pub tunneled: &'a mut dyn FnMut() -> Result<isize, i32>,
    /// For a `connect()` inside the program: the snapshot it was decided with, which a relayed
    /// handshake keeps (see [`crate::relay`]) and a followed connection's `close` line uses (see
    /// [`crate::connections`]). `None` for calls that are neither (fast open carries a payload
    /// and is not followed; the supervisor answers for another process).
    pub snapshot: Option<&'a runtime::Current>,
}

/// Decides and acts for `connect(fd, dst)`; `dst` is exactly what the program passed.
pub fn on_connect(fd: i32, dst: SocketAddr) -> Outcome {
    let mut direct = |addr: &SocketAddr| {
        socket::connect_once(fd, addr)
            .map(|()| 0)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    };
    let mut tunneled = || Ok(0);
    let Some(current) = runtime::get() else {
        return Outcome::PassThrough;
    };
    let caller = Caller {
        exe: &current.exe,
        via: None,
        pid: None,
    };
    let act = Act {
        direct: &mut direct,
        tunneled: &mut tunneled,
        snapshot: Some(&current),
    };
    decide_connect(&current, caller, fd, dst, act)
}

/// Who made the call being decided: the executable (for `process` rules and the log) and, when
/// the decision is not made inside the program itself, by what (`"supervisor"`).
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub exe: &'a str,
    pub via: Option<&'static str>,
    /// Its process id, when that is not ours.
    pub pid: Option<u32>,
}

/// Decides and acts for a call that connects `fd` to `dst` (`connect`, or a fast-open send).
pub fn on_connecting_call(fd: i32, dst: SocketAddr, act: Act<'_>) -> Outcome {
    let Some(current) = runtime::get() else {
        return Outcome::PassThrough;
    };
    let rt: &Runtime = &current;
    let caller = Caller {
        exe: &rt.exe,
        via: None,
        pid: None,
    };
    decide_connect(rt, caller, fd, dst, act)
}

/// The whole of a connect decision and its action, given the state to decide with: used by the
/// hooks (inside the program) and by the supervisor (outside it, on a copy of its socket).
pub fn decide_connect(
    rt: &Runtime,
    caller: Caller<'_>,
    fd: i32,
    dst: SocketAddr,
    act: Act<'_>,
) -> Outcome {
    if matches!(rt.mode, Mode::Inactive | Mode::FailOpen(_)) {
        return Outcome::PassThrough;
    }
    // Raw and other socket types are never ours to decide.
    let proto_of = |fd| match socket::socket_type(fd) {
        Some(libc::SOCK_STREAM) => Some("tcp"),
        Some(libc::SOCK_DGRAM) => Some("udp"),
        _ => None,
    };
    if let Mode::FailClosed(reason) = &rt.mode {
        let Some(proto) = proto_of(fd) else {
            return Outcome::PassThrough;
        };
        rt.log.write(
            &Event {
                proto: Some(proto),
                port: Some(dst.port()),
                dst: Some(dst),
                action: Some("deny"),
                rule: Some((None, "invalid configuration")),
                result: LogResult::Errno(libc::EACCES),
                error: Some(reason),
                via: caller.via,
                pid: caller.pid,
                ..Default::default()
            },
            caller.exe,
        );
        return Outcome::Done(Err(libc::EACCES));
    }
    let started = sys::monotonic_us();
    let ip = dst.ip().to_canonical();
    let known = rt.resolver.names_of(ip);
    if matches!(known, KnownNames::UnknownFake) {
        let Some(proto) = proto_of(fd) else {
            return Outcome::PassThrough;
        };
        return Outcome::Done(Err(stale_fake(rt, caller, proto, dst)));
    }
    let chosen = choose_known(rt, caller.exe, &known, ip, dst.port());
    let host = chosen.host;
    // A direct connection to a real address that is not to be logged (`log.direct = false`, or
    // no log at all) costs no syscall of ours: the program's own call goes to libc as it made it.
    if chosen.decision.action == Action::Direct
        && !chosen.is_fake
        && !(rt.log_direct && rt.log.enabled())
    {
        return Outcome::PassThrough;
    }
    // The socket type matters from here: UDP cannot use a gateway, and the log says which.
    let Some(proto) = proto_of(fd) else {
        return Outcome::PassThrough;
    };

    let mut event = Event {
        proto: Some(proto),
        host,
        port: Some(dst.port()),
        dst: Some(dst),
        rule: Some((chosen.decision.rule_index, chosen.pattern)),
        action: Some(chosen.decision.action.name()),
        via: caller.via,
        pid: caller.pid,
        ..Default::default()
    };
    // Fixed texts are borrowed: a refusal's line is its only allocation.
    let mut error_text: Cow<'static, str> = Cow::Borrowed("");
    let mut attempts: Vec<Attempt> = Vec::new();
    // What the kernel counts on the program's socket that is not the program's payload: the SYN
    // (counted as one byte acknowledged), or all of a gateway handshake made on it.
    let mut ours = (1, 0);
    let result = match chosen.decision.action {
        Action::Direct if chosen.is_fake => {
            // A fake address for a host that goes direct on this port: resolve it for real now.
            direct_to_host(rt, host.unwrap_or(""), dst, act.direct, &mut error_text)
        }
        Action::Direct => (act.direct)(&dst),
        Action::Deny if rt.audit => {
            // Audit mode: decided and logged as a denial, carried out as if no rule had denied
            // it (a fake address is resolved for real, as for a direct host).
            event.enforced = Some(false);
            notice(rt, host, dst, || Reason::WouldDeny {
                rule: chosen.decision.rule_index,
                pattern: chosen.pattern,
            });
            if chosen.is_fake {
                direct_to_host(rt, host.unwrap_or(""), dst, act.direct, &mut error_text)
            } else {
                (act.direct)(&dst)
            }
        }
        Action::Deny => {
            error_text = "denied by rule".into();
            notice(rt, host, dst, || Reason::Denied {
                rule: chosen.decision.rule_index,
                pattern: chosen.pattern,
            });
            Err(libc::EACCES)
        }
        Action::Gateway(index) if proto == "udp" => {
            // Logged, but no notice: a UDP connect sends nothing, and glibc's getaddrinfo and
            // Go make one to each address they sort (to learn the source address), so under the
            // supervisor every lookup of a routed name would print one.
            event.gateway = Some(rt.gateways[index].name.as_str());
            error_text = "UDP cannot go through a gateway".into();
            Err(libc::EACCES)
        }
        Action::Gateway(index) => {
            let gw = &rt.gateways[index];
            event.gateway = Some(gw.name.as_str());
            let dest = Destination {
                host,
                addr: (!chosen.is_fake).then_some(ip),
                port: dst.port(),
            };
            // A TCP socket's family is its destination's (an AF_INET6 socket takes only
            // AF_INET6 addresses, v4-mapped ones included).
            let family = if dst.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            };
            let mode = ConnectMode::of(fd);
            if let (ConnectMode::NonBlocking, Some(current)) =
                (mode, act.snapshot.filter(|_| gw.async_handshake))
            {
                match relay(current, caller, fd, dst, index, &chosen, started) {
                    Ok(()) => return Outcome::Done(Err(libc::EINPROGRESS)),
                    Err(reason) => event.handshake = Some(reason),
                }
            }
            let route = Route {
                waiter: &PollWaiter,
                fd,
                family,
                mode,
                started,
                lookups: true,
            };
            let established =
                socket::block_on(through_gateway(rt, index, &route, &dest, &mut attempts));
            event.endpoint = attempts.iter().rev().find_map(|a| a.address);
            match established {
                Ok(()) => {
                    // The handshake's bytes are on the program's socket too: not its payload.
                    if let Some(info) = socket::tcp_info(fd) {
                        ours = (info.tcpi_bytes_acked, info.tcpi_bytes_received);
                    }
                    (act.tunneled)()
                }
                Err(e) => {
                    notice(rt, host, dst, || Reason::Gateway {
                        name: &gw.name,
                        error: &e.message,
                    });
                    error_text = e.message.into();
                    Err(e.errno)
                }
            }
        }
    };
    if !error_text.is_empty() {
        event.error = Some(&error_text);
    }
    if !attempts.is_empty() {
        event.attempts = Some(&attempts);
    }
    event.result = result.map(|_| ()).into();
    event.elapsed_us = Some(sys::monotonic_us().saturating_sub(started));
    rt.log.write(&event, caller.exe);
    let under_way = matches!(result, Ok(_) | Err(libc::EINPROGRESS));
    if let (Some(current), true, "tcp") = (act.snapshot, under_way, proto) {
        follow(current, fd, &event, ours);
    }
    Outcome::Done(result)
}

/// Follows the connection `event` describes until the program lets go of `fd`, for its
/// `close` line (`[log] close`, on by default, and only where its `connect` was logged).
/// `ours`: bytes of the library's own on the socket.
fn follow(current: &runtime::Current, fd: i32, event: &Event<'_>, ours: (u64, u64)) {
    if let Some(followed) = to_follow(
        current,
        fd,
        event,
        crate::connections::Endpoint::known(event.endpoint),
    ) {
        followed.set_ours(ours.0, ours.1);
        crate::connections::follow(fd, &followed);
    }
}

/// The record for following the connection `event` describes, if its `close` line is due;
/// `endpoint` is where its tunnel went, or will say so once the relay knows.
fn to_follow(
    current: &runtime::Current,
    fd: i32,
    event: &Event<'_>,
    endpoint: crate::connections::Endpoint,
) -> Option<crate::connections::Followed> {
    let rt: &Runtime = current;
    if !rt.log_close || !rt.log.enabled() || (event.action == Some("direct") && !rt.log_direct) {
        return None;
    }
    let (Some(dst), Some(ino)) = (event.dst, sys::inode(fd)) else {
        return None;
    };
    let rule = event.rule.unwrap_or((None, "default"));
    Some(crate::connections::Followed::new(
        crate::connections::Record {
            rt: current.arc(),
            ino,
            opened_us: sys::monotonic_us(),
            host: event.host.map(str::to_owned),
            dst,
            rule: (rule.0, rule.1.to_owned()),
            action: event.action.unwrap_or("direct"),
            gateway: event.gateway.map(str::to_owned),
            endpoint,
            ours: Default::default(),
        },
    ))
}

/// For a datagram to `dst` sent with `sendto`/`sendmsg`/`sendmmsg` on an unconnected socket:
/// `Err(EACCES)` when `strict = true` and the destination is routed or denied (UDP cannot go
/// through a gateway: QUIC, or DNS to an arbitrary server). Refusals are logged; datagrams that
/// go are not (one line per packet would drown the log). Outside strict mode, nothing is checked.
pub fn on_datagram(fd: i32, dst: SocketAddr) -> Result<(), i32> {
    let Some(current) = runtime::get() else {
        return Ok(());
    };
    let caller = Caller {
        exe: &current.exe,
        via: None,
        pid: None,
    };
    decide_datagram(&current, caller, fd, dst)
}

/// `on_datagram` with a given state and caller (the supervisor's).
pub fn decide_datagram(
    rt: &Runtime,
    caller: Caller<'_>,
    fd: i32,
    dst: SocketAddr,
) -> Result<(), i32> {
    let checked = matches!(rt.mode, Mode::Active | Mode::FailClosed(_)) && rt.strict;
    if !checked || socket::socket_type(fd) != Some(libc::SOCK_DGRAM) {
        return Ok(());
    }
    let ip = dst.ip().to_canonical();
    let known = rt.resolver.names_of(ip);
    if matches!(known, KnownNames::UnknownFake) {
        return Err(stale_fake(rt, caller, "udp", dst));
    }
    let chosen = choose_known(rt, caller.exe, &known, ip, dst.port());
    // The log line of a datagram that is not simply let through, but for what differs.
    let event = |action, error| Event {
        proto: Some("udp"),
        host: chosen.host,
        port: Some(dst.port()),
        dst: Some(dst),
        rule: Some((chosen.decision.rule_index, chosen.pattern)),
        action: Some(action),
        error: Some(error),
        via: caller.via,
        pid: caller.pid,
        ..Default::default()
    };
    let gateway = match chosen.decision.action {
        Action::Direct => return Ok(()),
        // Audit mode: a denial is not enforced (a routed datagram still cannot go: UDP has no
        // gateway to go through).
        Action::Deny if rt.audit => {
            notice(rt, chosen.host, dst, || Reason::WouldDeny {
                rule: chosen.decision.rule_index,
                pattern: chosen.pattern,
            });
            rt.log.write(
                &Event {
                    enforced: Some(false),
                    ..event("deny", "datagram let through: audit mode")
                },
                caller.exe,
            );
            return Ok(());
        }
        Action::Deny => None,
        Action::Gateway(i) => Some(rt.gateways[i].name.as_str()),
    };
    notice(rt, chosen.host, dst, || {
        Reason::Refused("a datagram to a routed or denied destination (strict = true)")
    });
    rt.log.write(
        &Event {
            gateway,
            result: LogResult::Errno(libc::EACCES),
            ..event(
                chosen.decision.action.name(),
                "datagram refused (strict): UDP cannot go through a gateway",
            )
        },
        caller.exe,
    );
    Err(libc::EACCES)
}

/// A fake address this process does not know (its entry was evicted, or another process handed
/// it out): there is no host to send to the gateway, and the address itself leads nowhere.
/// Refused (`EHOSTUNREACH`) and logged: never sent direct.
fn stale_fake(rt: &Runtime, caller: Caller<'_>, proto: &'static str, dst: SocketAddr) -> i32 {
    notice(rt, None, dst, || {
        Reason::Refused("a fake address this process no longer knows")
    });
    rt.log.write(
        &Event {
            proto: Some(proto),
            port: Some(dst.port()),
            dst: Some(dst),
            rule: Some((None, "unknown fake address")),
            action: Some("deny"),
            result: LogResult::Errno(libc::EHOSTUNREACH),
            error: Some("a fake address this process no longer knows (evicted, or handed out elsewhere): refused"),
            via: caller.via,
            pid: caller.pid,
            ..Default::default()
        },
        caller.exe,
    );
    libc::EHOSTUNREACH
}

/// Tells the person running the program, once, that `host` (or the address) was refused; the
/// reason is built only when a notice is due.
fn notice<'a>(
    rt: &Runtime,
    host: Option<&str>,
    dst: SocketAddr,
    reason: impl FnOnce() -> Reason<'a>,
) {
    if !rt.notices.enabled() {
        return;
    }
    let what = match host {
        Some(host) => format!("{host}:{}", dst.port()),
        None => crate::net::canonical(dst).to_string(),
    };
    rt.notices.say(&what, reason());
}

/// The decision for a destination, and the name and rule it was made with.
pub struct Chosen<'a> {
    pub decision: Decision,
    /// The hostname the decision was made with (one of the candidates).
    pub host: Option<&'a str>,
    /// Whether the destination is a fake address (the real one is the gateway's to find).
    pub is_fake: bool,
    /// The log's rule pattern: the rule's text, `default`, or a built-in rule's name.
    pub pattern: &'a str,
}

/// How strict an action is: when several names share an address, the strictest decision
/// among them applies, so that no name can be used to pass off another one's address.
fn severity(action: Action) -> u8 {
    match action {
        Action::Direct => 0,
        Action::Gateway(_) => 1,
        Action::Deny => 2,
    }
}

/// [`choose`] for a connection to `ip` and `port`, with the hostnames the process knows behind
/// the address (`known`) as the candidates.
fn choose_known<'a>(
    rt: &'a Runtime,
    exe: &str,
    known: &'a KnownNames,
    ip: IpAddr,
    port: u16,
) -> Chosen<'a> {
    let (names, count, is_fake) = candidates(known);
    choose(rt, exe, &names[..count], is_fake, Some(ip), port)
}

/// The hostnames behind an address, as candidates for [`choose`].
fn candidates(known: &KnownNames) -> ([&str; WAYS], usize, bool) {
    let mut names = [""; WAYS];
    match known {
        KnownNames::None | KnownNames::UnknownFake => (names, 0, false),
        KnownNames::Fake(name) => {
            names[0] = name.as_str();
            (names, 1, true)
        }
        KnownNames::Remembered(recalled) => {
            let mut count = 0;
            for (slot, name) in names.iter_mut().zip(recalled.iter()) {
                *slot = name.as_str();
                count += 1;
            }
            (names, count, false)
        }
    }
}

/// The decision for a connection to `ip` (when known) and `port`, made with each candidate
/// hostname (none, one, or several sharing the address): built-in rules first, then the rule
/// table, the strictest result among the candidates, and the loopback exception. This is the
/// whole of the connect-time decision; `mcp-redirect explain` calls it too.
pub fn choose<'a>(
    rt: &'a Runtime,
    exe: &str,
    names: &[&'a str],
    is_fake: bool,
    ip: Option<IpAddr>,
    port: u16,
) -> Chosen<'a> {
    let direct = Decision {
        action: Action::Direct,
        rule_index: None,
    };
    let builtin = |pattern| Chosen {
        decision: direct,
        host: None,
        is_fake: false,
        pattern,
    };
    if let Some(ip) = ip.filter(|_| !is_fake) {
        // A program talking to the gateway itself, or to the system's DNS.
        if rt.is_gateway_endpoint(SocketAddr::new(ip, port)) {
            return builtin("gateway endpoint");
        }
        if port == 53 && rt.nameservers.contains(&ip) {
            return builtin("system resolver");
        }
    }
    let decide = |host: Option<&str>| {
        rt.rules.decide(&Target {
            host,
            addr: if is_fake { None } else { ip },
            port: Some(port),
            exe,
        })
    };
    let mut best: Option<(Decision, Option<&'a str>)> = None;
    for name in names {
        let d = decide(Some(name));
        if best.is_none_or(|(b, _)| severity(d.action) > severity(b.action)) {
            best = Some((d, Some(name)));
        }
    }
    let (mut decision, host) = best.unwrap_or_else(|| (decide(None), None));
    let pattern = match decision.rule_index {
        Some(i) => rt.rules.rules()[i].pattern.as_str(),
        // A default gateway never gets loopback traffic: it cannot reach this machine's
        // loopback, and "CONNECT 127.0.0.1:port" would hit the gateway's own services.
        None if !is_fake
            && ip.is_some_and(|ip| ip.is_loopback())
            && matches!(decision.action, Action::Gateway(_)) =>
        {
            decision.action = Action::Direct;
            "loopback (a default gateway does not apply)"
        }
        None => "default",
    };
    Chosen {
        decision,
        host,
        is_fake,
        pattern,
    }
}

/// Connects `fd` through gateway `index`: its endpoints in the order its strategy and their
/// health give, each attempt with an equal share of what is left of `connect_timeout_ms`, the
/// next endpoint only after a fault of the endpoint's own (unreachable, broken reply, 502-504,
/// SOCKS general failure), never after a refusal that any endpoint would repeat. Every attempt
/// goes into `attempts` for the log.
/// How one connection reaches its gateway: on which socket, waiting how, and what it may do.
struct Route<'a> {
    waiter: &'a dyn Waiter,
    /// The socket the handshake runs on: the program's own, or the relay's.
    fd: i32,
    family: i32,
    mode: ConnectMode,
    /// When the program called `connect()`: the budget counts from there.
    started: u64,
    /// Whether names may be looked up with `getaddrinfo`, which blocks: not on the relay's
    /// thread, where it would hold up every other connection.
    lookups: bool,
}

async fn through_gateway(
    rt: &Runtime,
    index: usize,
    route: &Route<'_>,
    dest: &Destination<'_>,
    attempts: &mut Vec<Attempt>,
) -> Result<(), gateway::GatewayError> {
    let Route {
        waiter,
        fd,
        mode,
        started,
        ..
    } = *route;
    let gw = &rt.gateways[index];
    let health = &rt.health[index];
    let now = sys::monotonic_us();
    let key = match (dest.host, dest.addr) {
        (Some(host), _) => hash_bytes(host.as_bytes()),
        (None, Some(addr)) => hash_bytes(addr.to_string().as_bytes()),
        (None, None) => 0,
    };
    let random = hash_bytes(&now.to_le_bytes()) ^ (fd as u64);
    let mut last_error = None;
    let (labels, addresses) =
        gateway_candidates(rt, index, route, random, attempts, &mut last_error).await;
    let order = health.order(gw.strategy, &addresses, gw.max_attempts, key, random, now);
    // The program's own bound on a blocking connect (SO_SNDTIMEO), if tighter, wins.
    let budget_ms = mode
        .program_timeout_ms()
        .map_or(gw.connect_timeout_ms, |ms| ms.min(gw.connect_timeout_ms));
    let budget_end = started + budget_ms * 1000;
    for (tried, &candidate) in order.iter().enumerate() {
        let started = sys::monotonic_us();
        if started >= budget_end {
            break;
        }
        let share = (budget_end - started) / (order.len() - tried) as u64;
        let deadline = Deadline::after_ms(share.div_ceil(1000));
        let address = addresses[candidate];
        let outcome = gateway::establish(waiter, fd, mode, gw, address, dest, deadline).await;
        attempts.push(Attempt {
            endpoint: labels[candidate].clone(),
            address: Some(address),
            result: match &outcome {
                Ok(()) => LogResult::Ok,
                Err(e) => LogResult::Errno(e.errno),
            },
            elapsed_us: sys::monotonic_us().saturating_sub(started),
        });
        match outcome {
            Ok(()) => {
                health.mark_up(&address);
                return Ok(());
            }
            Err(e) if !e.endpoint_fault => return Err(e),
            Err(e) => {
                health.mark_down(&address, sys::monotonic_us(), gw.cooldown_s * 1_000_000);
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| {
        gateway::GatewayError::new(
            libc::ETIMEDOUT,
            format!("no endpoint of gateway {} answered in time", gw.name),
        )
    }))
}

/// Hands a routed `connect()` on a non-blocking socket to the relay: `Ok` when the relay has
/// it (the program gets `EINPROGRESS`, and the handshake's future writes the log line when the
/// outcome is known); else why not, for the log (the handshake then runs here).
fn relay(
    current: &runtime::Current,
    caller: Caller<'_>,
    fd: i32,
    dst: SocketAddr,
    index: usize,
    chosen: &Chosen<'_>,
    started: u64,
) -> Result<(), &'static str> {
    let rt = current.arc();
    let family = if dst.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let host = chosen.host.map(str::to_owned);
    let addr = (!chosen.is_fake).then_some(dst.ip().to_canonical());
    let rule_index = chosen.decision.rule_index;
    let pattern = chosen.pattern.to_owned();
    let (via, pid) = (caller.via, caller.pid);
    let endpoint = crate::connections::Endpoint::later();
    let reached = endpoint.clone();
    let handshake: relay::Handshake = Box::new(move |socket, waiter| {
        Box::pin(async move {
            let mut attempts = Vec::new();
            let outcome = match socket {
                Ok(gateway_fd) => {
                    let dest = Destination {
                        host: host.as_deref(),
                        addr,
                        port: dst.port(),
                    };
                    let route = Route {
                        waiter: &*waiter,
                        fd: gateway_fd,
                        family,
                        mode: ConnectMode::NonBlocking,
                        started,
                        lookups: false,
                    };
                    through_gateway(&rt, index, &route, &dest, &mut attempts).await
                }
                Err(errno) => Err(gateway::GatewayError::new(
                    errno,
                    "the relay has no descriptor for its gateway socket",
                )),
            };
            let error = outcome.as_ref().err().map(|e| e.message.as_str());
            reached.set(attempts.iter().rev().find_map(|a| a.address));
            if let Some(error) = error {
                notice(&rt, host.as_deref(), dst, || Reason::Gateway {
                    name: &rt.gateways[index].name,
                    error,
                });
            }
            rt.log.write(
                &Event {
                    proto: Some("tcp"),
                    host: host.as_deref(),
                    port: Some(dst.port()),
                    dst: Some(dst),
                    rule: Some((rule_index, &pattern)),
                    action: Some("gateway"),
                    gateway: Some(rt.gateways[index].name.as_str()),
                    endpoint: attempts.iter().rev().find_map(|a| a.address),
                    result: outcome.as_ref().map(|_| ()).map_err(|e| e.errno).into(),
                    error,
                    elapsed_us: Some(sys::monotonic_us().saturating_sub(started)),
                    attempts: (!attempts.is_empty()).then_some(&attempts[..]),
                    via,
                    pid,
                    handshake: Some("relay"),
                    ..Default::default()
                },
                &rt.exe,
            );
            outcome.map_err(|e| e.errno)
        })
    });
    let event = Event {
        host: chosen.host,
        dst: Some(dst),
        rule: Some((chosen.decision.rule_index, chosen.pattern)),
        action: Some("gateway"),
        gateway: Some(current.gateways[index].name.as_str()),
        ..Default::default()
    };
    relay::begin(relay::Request {
        fd,
        dst,
        family,
        handshake,
        followed: to_follow(current, fd, &event, endpoint),
    })
}

/// The addresses gateway `index` can be reached at from a socket of `family`, with the label
/// each has in the log: fixed endpoints in their order, SRV entries expanded to their targets
/// (RFC 2782 order). An entry with no usable address is logged as a failed attempt.
async fn gateway_candidates(
    rt: &Runtime,
    index: usize,
    route: &Route<'_>,
    random: u64,
    attempts: &mut Vec<Attempt>,
    last_error: &mut Option<gateway::GatewayError>,
) -> (Vec<String>, Vec<SocketAddr>) {
    let family = route.family;
    let gw = &rt.gateways[index];
    let (mut labels, mut addresses) = (Vec::new(), Vec::new());
    let mut unusable = |label: String, error: gateway::GatewayError| {
        attempts.push(Attempt {
            endpoint: label,
            address: None,
            result: LogResult::Errno(error.errno),
            elapsed_us: 0,
        });
        *last_error = Some(error);
    };
    for (endpoint_index, endpoint) in gw.endpoints.iter().enumerate() {
        match endpoint {
            Endpoint::At(fixed) => match endpoint_address(rt, index, endpoint_index, route) {
                Ok(address) => {
                    labels.push(fixed.to_string());
                    addresses.push(address);
                }
                Err(e) => unusable(fixed.to_string(), e),
            },
            Endpoint::Srv(name) => {
                let cache = &rt.discovered[index][endpoint_index];
                let answer = cache
                    .targets(
                        route.waiter,
                        name,
                        &rt.discovery,
                        &rt.nameservers,
                        route.lookups,
                    )
                    .await;
                match answer {
                    Ok(answer) => {
                        for target in discovery::rfc2782_order(&answer.targets, random) {
                            let label = format!("{}:{} (srv:{name})", target.host, target.port);
                            match gateway::endpoint_for_family(&target.addrs, family) {
                                Some(address) => {
                                    labels.push(label);
                                    addresses.push(address);
                                }
                                None => unusable(
                                    label,
                                    gateway::GatewayError::endpoint_fault(
                                        libc::EHOSTUNREACH,
                                        format!(
                                            "SRV target {}:{} has no usable address",
                                            target.host, target.port
                                        ),
                                    ),
                                ),
                            }
                        }
                    }
                    Err(message) => unusable(
                        endpoint.to_string(),
                        gateway::GatewayError::endpoint_fault(libc::EHOSTUNREACH, message),
                    ),
                }
            }
        }
    }
    (labels, addresses)
}

/// The address of fixed endpoint `endpoint_index` of gateway `index` usable from the route's
/// socket: resolved at load, or now if that found nothing and the route may look names up.
fn endpoint_address(
    rt: &Runtime,
    index: usize,
    endpoint_index: usize,
    route: &Route<'_>,
) -> Result<SocketAddr, gateway::GatewayError> {
    let family = route.family;
    let Some(endpoint) = rt.gateways[index].endpoints[endpoint_index].host_port() else {
        return Err(gateway::GatewayError::endpoint_fault(
            libc::EHOSTUNREACH,
            "not a fixed endpoint",
        ));
    };
    let known = &rt.endpoint_addrs[index][endpoint_index];
    let candidates = if known.is_empty() && route.lookups {
        runtime::resolve_endpoint(endpoint)
    } else {
        known.clone()
    };
    if candidates.is_empty() {
        let when = if route.lookups {
            ""
        } else {
            " (it did not when the config was loaded, and the relay looks no names up)"
        };
        return Err(gateway::GatewayError::endpoint_fault(
            libc::EHOSTUNREACH,
            format!("gateway endpoint {endpoint} does not resolve{when}"),
        ));
    }
    gateway::endpoint_for_family(&candidates, family).ok_or_else(|| {
        gateway::GatewayError::endpoint_fault(
            libc::ENETUNREACH,
            format!("gateway endpoint {endpoint} has no address of this socket's family"),
        )
    })
}

/// Carries out a direct call to the real address of `host`, for a fake address whose
/// connection goes direct.
fn direct_to_host(
    rt: &Runtime,
    host: &str,
    dst: SocketAddr,
    direct: &mut dyn FnMut(&SocketAddr) -> Result<isize, i32>,
    error_text: &mut Cow<'static, str>,
) -> Result<isize, i32> {
    let addrs = match sys::resolve_real(host, dst.port()) {
        Ok(addrs) => addrs,
        Err(code) => {
            *error_text =
                format!("{host} does not resolve ({})", crate::errno::eai_name(code)).into();
            return Err(libc::EHOSTUNREACH);
        }
    };
    let family = if dst.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let Some(real) = gateway::endpoint_for_family(&addrs, family) else {
        *error_text = format!("{host} has no address usable from this socket").into();
        return Err(libc::ENETUNREACH);
    };
    for addr in &addrs {
        rt.resolver.memory.remember(addr.ip(), host);
    }
    direct(&real)
}
