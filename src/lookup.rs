//! What happens to one intercepted name lookup (`getaddrinfo`, `gethostbyname*`): plan the answer
//! (fake address or real DNS), remember real answers, log the decision. The hooks turn the
//! answer into C structures.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::log::{Event, LogResult};
use crate::net;
use crate::rules::{Action, Decision, ResolvePlan};
use crate::runtime::{self, Mode, Runtime};

/// How the hook should answer.
pub enum Answer {
    /// Call the real function with the program's arguments; nothing to do afterwards.
    PassThrough,
    /// Call the real function, then report its addresses with [`remember`].
    Real { host: String, decision: Decision },
    /// Call the real function; if it finds nothing, ask [`fake_fallback`] for a fake address.
    RealOrFake { host: String, decision: Decision },
    /// Answer with a fake address; DNS is not asked. `host` is the normalised name, for
    /// `AI_CANONNAME` and `h_name`.
    Fake { host: String, fake: FakeAnswer },
    /// Refuse with this `EAI_*` code.
    Refuse(i32),
}

/// A fake address pair for a host (same slot in both ranges).
#[derive(Clone, Copy, Debug)]
pub struct FakeAnswer {
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
}

/// Plans the answer to a lookup of `name` as the program spelled it (bytes: a name that is not
/// UTF-8 is refused like any other name we would never forward).
pub fn on_lookup(name: &[u8]) -> Answer {
    let Some(current) = runtime::get() else {
        return Answer::PassThrough;
    };
    decide_lookup(&current, name)
}

/// The lookup decision with a given state: used inside the program (`on_lookup`) and by the
/// supervisor's resolver outside it.
pub fn decide_lookup(rt: &Runtime, name: &[u8]) -> Answer {
    let fail_closed = matches!(rt.mode, Mode::FailClosed(_));
    if !(rt.mode == Mode::Active || fail_closed) {
        return Answer::PassThrough;
    }
    let text = std::str::from_utf8(name).unwrap_or("\u{fffd}");
    // A numeric host is no lookup; nor is one with a trailing dot ("127.0.0.1."), which libc
    // takes as a DNS name but we would read as the address.
    if net::is_numeric_host(text.strip_suffix('.').unwrap_or(text)) {
        return Answer::PassThrough;
    }
    let Some(host) = net::normalize_host(text) else {
        // Names we would never forward: control characters, spaces, oversized, and non-ASCII
        // (IDNA spellings, which glibc would turn into an ASCII name our rules never saw).
        // Refused and logged.
        let reason = if text.is_ascii() {
            "invalid hostname refused"
        } else {
            "non-ASCII hostname refused (IDNA names must be converted by the program)"
        };
        log_lookup(
            rt,
            None,
            None,
            None,
            LogResult::Eai(libc::EAI_NONAME),
            Some(reason),
        );
        return Answer::Refuse(libc::EAI_NONAME);
    };
    match plan(rt, &host) {
        ResolvePlan::Real(decision) => Answer::Real { host, decision },
        ResolvePlan::RealOrFake(decision) => Answer::RealOrFake { host, decision },
        ResolvePlan::Fake(decision) => match fake_for(rt, &host, decision, None) {
            Ok(fake) => Answer::Fake { host, fake },
            Err(code) => Answer::Refuse(code),
        },
    }
}

/// How a lookup of `host` (normalised) is answered: the whole of the lookup-time decision,
/// which `mcp-redirect explain` calls too.
pub fn plan(rt: &Runtime, host: &str) -> ResolvePlan {
    if matches!(rt.mode, Mode::FailClosed(_)) {
        // Every connection is refused anyway; do not let the names leak to DNS either.
        return ResolvePlan::Fake(Decision {
            action: Action::Deny,
            rule_index: None,
        });
    }
    if rt.is_gateway_host(host) {
        // The program talks to the gateway itself: it needs the gateway's real address.
        return ResolvePlan::Real(Decision {
            action: Action::Direct,
            rule_index: None,
        });
    }
    rt.resolver.plan(&rt.rules, host, &rt.exe)
}

/// Whether a raw DNS query (`res_query` and kin) may go out for `name`: in
/// `strict` mode, not for a name the rules route or deny (it would reach DNS, which our
/// `getaddrinfo` never lets happen); refusals are logged. Outside strict mode, always.
pub fn raw_dns_allowed(name: &[u8], via: &'static str) -> bool {
    let Some(current) = runtime::get() else {
        return true;
    };
    let rt: &Runtime = &current;
    let checked = (rt.mode == Mode::Active && rt.strict) || matches!(rt.mode, Mode::FailClosed(_));
    if !checked {
        return true;
    }
    let text = String::from_utf8_lossy(name);
    let Some(host) = net::normalize_host(text.trim_end_matches('.')) else {
        return !rt.strict;
    };
    let decision = match plan(rt, &host) {
        ResolvePlan::Fake(decision) => decision,
        _ => return true,
    };
    let error = format!("{via} refused (strict): the name is routed or denied and would reach DNS");
    log_lookup(
        rt,
        Some(&host),
        Some(decision),
        None,
        LogResult::Eai(libc::EAI_NONAME),
        Some(&error),
    );
    false
}

/// For `RealOrFake` after DNS found nothing: the fake address that stands in, so that the
/// gateway resolves a name only it knows.
pub fn fake_fallback(host: &str, decision: Decision) -> Result<FakeAnswer, i32> {
    let Some(current) = runtime::get() else {
        return Err(libc::EAI_FAIL);
    };
    fake_fallback_in(&current, host, decision)
}

/// `fake_fallback` with a given state.
pub fn fake_fallback_in(rt: &Runtime, host: &str, decision: Decision) -> Result<FakeAnswer, i32> {
    let note = "DNS had no answer; a fake address stands in for the gateway to resolve";
    fake_for(rt, host, decision, Some(note))
}

/// A fake address for `host`, logged as the decision `decision`.
fn fake_for(
    rt: &Runtime,
    host: &str,
    decision: Decision,
    note: Option<&str>,
) -> Result<FakeAnswer, i32> {
    match rt.resolver.fake.assign(host) {
        Ok(slot) => {
            let fake = FakeAnswer {
                ipv4: rt.resolver.fake.ipv4(slot),
                ipv6: rt.resolver.fake.ipv6(slot),
            };
            log_lookup(
                rt,
                Some(host),
                Some(decision),
                Some(IpAddr::V4(fake.ipv4)),
                LogResult::Ok,
                note,
            );
            Ok(fake)
        }
        Err(crate::resolver::fake::FakeError::TableFull(n)) => {
            let text = format!("fake-address table is full ({n} hosts; raise dns.max_hosts)");
            log_lookup(
                rt,
                Some(host),
                Some(decision),
                None,
                LogResult::Eai(libc::EAI_FAIL),
                Some(&text),
            );
            Err(libc::EAI_FAIL)
        }
    }
}

/// After a real lookup of `host` (decided by `decision`): remember its addresses, so that
/// `connect()` knows the name, and log.
pub fn remember(host: &str, decision: Decision, addrs: &[IpAddr], rc: i32) {
    let Some(current) = runtime::get() else {
        return;
    };
    remember_in(&current, host, decision, addrs, rc);
}

/// `remember` with a given state.
pub fn remember_in(rt: &Runtime, host: &str, decision: Decision, addrs: &[IpAddr], rc: i32) {
    for addr in addrs {
        rt.resolver.memory.remember(*addr, host);
    }
    if decision.action == Action::Direct && !rt.log_direct {
        return;
    }
    let result = if rc == 0 {
        LogResult::Ok
    } else {
        LogResult::Eai(rc)
    };
    log_lookup(rt, Some(host), Some(decision), None, result, None);
}

fn log_lookup(
    rt: &Runtime,
    host: Option<&str>,
    decision: Option<Decision>,
    answer: Option<IpAddr>,
    result: LogResult,
    error: Option<&str>,
) {
    if !rt.log.enabled() {
        return;
    }
    let rule = decision.map(|d| match d.rule_index {
        Some(i) => (Some(i), rt.rules.rules()[i].pattern.as_str()),
        None if matches!(rt.mode, Mode::FailClosed(_)) => (None, "invalid configuration"),
        None if d.action == Action::Direct && host.is_some_and(|h| rt.is_gateway_host(h)) => {
            (None, "gateway endpoint")
        }
        None if d.action == Action::Direct
            && host.is_some_and(|h| rt.resolver.is_local_name(h)) =>
        {
            (None, "local name (localhost or /etc/hosts)")
        }
        None => (None, "default"),
    });
    let gateway = match decision.map(|d| d.action) {
        Some(Action::Gateway(i)) => Some(rt.gateways[i].name.as_str()),
        _ => None,
    };
    rt.log.write(
        &Event {
            event: "resolve",
            host,
            rule,
            action: decision.map(|d| d.action.name()),
            gateway,
            answer,
            result,
            error,
            ..Default::default()
        },
        &rt.exe,
    );
}
