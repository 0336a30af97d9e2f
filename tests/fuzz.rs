//! Property tests ("fuzzing on stable") for everything that parses input we do not control:
//! config text, rule patterns, addresses, proxy URLs, and gateway replies read off a real
//! socket by the real handshake code. Properties: never panic; hostile names never come out
//! valid; a handshake that succeeds consumed exactly the reply head; the rule table's indexed
//! decisions are the ones a walk through the rules gives.
//!
//! Cases per property: PROPTEST_CASES (256 by default here; `scripts/fuzz.sh` runs many more).

use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;

use proptest::prelude::*;

use mcp_redirect_core::config::{self, ConfigSource, Gateway, GatewayKind};
use mcp_redirect_core::gateway::{http_connect, socks5, Destination};
use mcp_redirect_core::net::{self, Cidr, HostPort, PortRange};
use mcp_redirect_core::rules::{
    Action, AddressMatch, Decision, HostMatch, ResolvePlan, Rule, RuleTable, Target,
};
use mcp_redirect_core::sys::socket::{block_on, Deadline, PollWaiter};

fn no_env(_: &str) -> Option<String> {
    Some("pw".into())
}

/// Config-shaped text: sections, keys and values drawn from the schema's vocabulary and noise.
fn config_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("default"),
        Just("on_config_error"),
        Just("strict"),
        Just("host"),
        Just("host_regex"),
        Just("cidr"),
        Just("port"),
        Just("process"),
        Just("via"),
        Just("action"),
        Just("kind"),
        Just("endpoints"),
        Just("username"),
        Just("password_env"),
        Just("strategy"),
        Just("mode"),
        Just("path"),
        Just("proxy_protocol"),
        Just("nameserver"),
        Just("max_hosts"),
        Just("bogus"),
    ];
    let value = prop_oneof![
        "\"[a-z*.\\\\()\\[\\]0-9:/_-]{0,24}\"",
        "-?[0-9]{1,6}",
        Just("true".to_string()),
        Just("[\"127.0.0.1:3128\", \"srv:_g._tcp.x\"]".to_string()),
        "\\{ [a-z]{1,5} = \"[a-z]{0,5}\" \\}",
        "[^\\n]{0,12}",
    ];
    let header = prop_oneof![
        Just("[[rules]]"),
        Just("[gateways.g]"),
        Just("[gateways.direct]"),
        Just("[dns]"),
        Just("[log]"),
        Just("[discovery]"),
        Just(""),
    ];
    prop::collection::vec((header, prop::collection::vec((key, value), 0..5)), 0..6).prop_map(
        |sections| {
            let mut text = String::new();
            for (header, pairs) in sections {
                text.push_str(header);
                text.push('\n');
                for (key, value) in pairs {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
            text
        },
    )
}

proptest! {
    #[test]
    fn config_text_never_panics(text in config_text()) {
        let _ = config::parse(&text, ConfigSource::Nothing, &no_env);
    }

    #[test]
    fn arbitrary_bytes_as_config_never_panic(text in "\\PC{0,200}") {
        let _ = config::parse(&text, ConfigSource::Nothing, &no_env);
    }

    #[test]
    fn rule_patterns_never_panic(pattern in "\\PC{0,40}", name in "[a-zA-Z0-9.-]{0,40}") {
        if let Ok(host) = HostMatch::parse_regex(&pattern) {
            let _ = host.matches(&name.to_ascii_lowercase());
        }
        if let Ok(host) = HostMatch::parse_host(&pattern) {
            let _ = host.matches(&name.to_ascii_lowercase());
        }
        let _ = Cidr::parse(&pattern);
        let _ = PortRange::parse(&pattern);
        let _ = HostPort::parse(&pattern);
        let _ = net::parse_ipv4_any(&pattern);
    }

    #[test]
    fn normalized_names_are_never_hostile(raw in "\\PC{0,300}") {
        if let Some(name) = net::normalize_host(&raw) {
            prop_assert!(name.len() <= net::MAX_HOST_LEN);
            prop_assert!(!name.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'/'));
            prop_assert_eq!(net::normalize_host(&name), Some(name.clone()), "normalising is idempotent");
        }
    }

    #[test]
    fn proxy_urls_never_echo_their_password(user in "[a-z]{1,8}", password in "[!-~]{6,20}", rest in "\\PC{0,30}") {
        let url = format!("http://{user}:{password}@{rest}");
        if let Err(message) = config::env::parse_proxy_url(&url, "x") {
            prop_assert!(!message.contains(&password), "{}", message);
        }
    }

    #[test]
    fn http_replies_are_parsed_safely_and_exactly(reply in reply_bytes(), tail in prop::collection::vec(any::<u8>(), 0..16)) {
        let mut bytes = reply.clone();
        bytes.extend_from_slice(&tail);
        let (ours, theirs) = UnixStream::pair().unwrap();
        // The gateway's side writes its reply and hangs up; ours is non-blocking, as the
        // library makes a socket for a handshake.
        let writer = std::thread::spawn(move || {
            let mut theirs = theirs;
            let _ = theirs.write_all(&bytes);
        });
        ours.set_nonblocking(true).unwrap();
        let dest = Destination { host: Some("api.example.test"), addr: None, port: 443 };
        let result = block_on(http_connect::handshake(&PollWaiter, ours.as_raw_fd(), &gateway(GatewayKind::Http), &dest, Deadline::after_ms(2000)));
        writer.join().unwrap();
        if result.is_ok() {
            // Success means a 2xx head ending in a blank line, consumed to the byte: what
            // follows it is still in the socket, for the program.
            let end = find(&reply, b"\r\n\r\n").unwrap() + 4;
            let mut rest = vec![0u8; 4096];
            let n = std::io::Read::read(&mut &ours, &mut rest).unwrap_or(0);
            let mut expected = reply[end..].to_vec();
            expected.extend_from_slice(&tail);
            prop_assert_eq!(&rest[..n], &expected[..n.min(expected.len())]);
            prop_assert!(reply.starts_with(b"HTTP/1."));
        }
    }

    #[test]
    fn socks5_replies_never_panic(reply in prop::collection::vec(any::<u8>(), 0..40), prefix in prop::bool::ANY) {
        let mut bytes = if prefix { vec![5, 0] } else { Vec::new() };
        bytes.extend_from_slice(&reply);
        let (ours, theirs) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            let mut theirs = theirs;
            let _ = theirs.write_all(&bytes);
        });
        ours.set_nonblocking(true).unwrap();
        let dest = Destination { host: Some("api.example.test"), addr: None, port: 443 };
        let _ = block_on(socks5::handshake(&PollWaiter, ours.as_raw_fd(), &gateway(GatewayKind::Socks5), &dest, Deadline::after_ms(2000)));
        let _ = writer.join();
    }
}

/// Names from a small alphabet, so that rules and targets meet: nested labels, address literals
/// (host conditions see an address as text), and a few malformed ones.
const NAMES: &[&str] = &[
    "a", "b", "ab", "a.b", "b.a", "a.a", "ab.b", "a.ab.b", "b.a.b", "x.a.b", "a.b.c", "c",
    "10.0.0.1", "0.0.1", "0.1", "::1", "fd00::1", "", ".", "a..b", ".a", "a.", "A.b",
];

/// Regexes over the same alphabet; some match address text, one matches only the empty name.
const REGEXES: &[&str] = &[
    "a",
    "a.*",
    r"[ab]+\.b",
    r"(a|b)\.(a|b)",
    ".*b",
    "a?",
    "",
    r"\d+(\.\d+){3}",
    r"10\..*",
    r"x\.a\.b|a",
    r"[^.]+",
    r"(?m)^a$",
    r"\w+\.\w+",
    r"[:0-9a-f]+",
];

const PREFIXES: &[&str] = &[
    "10.0.0.0/8",
    "10.0.0.1/32",
    "10.0.0.0/30",
    "10.0.0.2/31",
    "0.0.0.0/0",
    "192.0.2.0/24",
    "::ffff:10.0.0.0/104",
    "::/0",
    "fd00::/8",
    "::1/128",
    "64:ff9b::/96",
];

const ADDRESSES: &[&str] = &[
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.3",
    "192.0.2.1",
    "::ffff:10.0.0.1",
    "64:ff9b::a00:1",
    "::a00:1",
    "fd00::1",
    "::1",
    "2001:db8::1",
];

const EXES: &[&str] = &["curl", "node"];

/// A rule as plain data (a `Rule` is not `Clone`): host kind (0 none, 1 exact, 2 `*.`, 3 `.`,
/// 4 regex) and which entry of the lists above each present condition takes.
#[derive(Clone, Debug)]
struct RuleSpec {
    host: (u8, usize),
    cidr: Option<usize>,
    ports: Option<usize>,
    process: Option<usize>,
    action: u8,
}

impl RuleSpec {
    fn rule(&self) -> Rule {
        let (kind, pick) = self.host;
        let name = NAMES[pick % NAMES.len()];
        let host = match kind {
            1 => HostMatch::parse_host(name).ok(),
            2 => HostMatch::parse_host(&format!("*.{name}")).ok(),
            3 => HostMatch::parse_host(&format!(".{name}")).ok(),
            4 => HostMatch::parse_regex(REGEXES[pick % REGEXES.len()]).ok(),
            _ => None,
        };
        let ports = ["443", "80", "1-1000"];
        Rule::new(
            host,
            self.cidr.map(|pick| {
                AddressMatch::Prefix(Cidr::parse(PREFIXES[pick % PREFIXES.len()]).unwrap())
            }),
            self.ports
                .map(|pick| PortRange::parse(ports[pick % ports.len()]).unwrap()),
            self.process.map(|pick| EXES[pick % EXES.len()].to_string()),
            action(self.action),
        )
    }
}

fn action(pick: u8) -> Action {
    match pick % 4 {
        0 => Action::Direct,
        1 => Action::Deny,
        2 => Action::Gateway(0),
        _ => Action::Gateway(1),
    }
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        (0u8..5, any::<usize>()),
        prop::option::weighted(0.3, any::<usize>()),
        prop::option::weighted(0.3, any::<usize>()),
        prop::option::weighted(0.2, any::<usize>()),
        any::<u8>(),
    )
        .prop_map(|(host, cidr, ports, process, action)| RuleSpec {
            host,
            cidr,
            ports,
            process,
            action,
        })
}

/// A target: (host pick, address pick, port, exe pick); `None` host/address are absent.
type TargetSpec = (Option<usize>, Option<usize>, Option<u16>, usize);

fn target_spec() -> impl Strategy<Value = TargetSpec> {
    (
        prop::option::of(any::<usize>()),
        prop::option::of(any::<usize>()),
        prop::option::of(prop_oneof![Just(22u16), Just(80), Just(443), Just(5000)]),
        any::<usize>(),
    )
}

/// The decision as a walk through the rules: the first that matches, else the default.
fn walk_decide(table: &RuleTable, target: &Target<'_>) -> Decision {
    let first = table
        .rules()
        .iter()
        .position(|rule| rule.mismatch(target).is_none());
    Decision {
        action: first.map_or(table.default_action(), |index| table.rules()[index].action),
        rule_index: first,
    }
}

/// `RuleTable::plan_lookup` as the walk it was written as, before the table had an index.
fn walk_plan_lookup(table: &RuleTable, host: &str, exe: &str) -> ResolvePlan {
    let rules = table.rules();
    let target = Target {
        host: Some(host),
        addr: None,
        port: None,
        exe,
    };
    let decision = |index: Option<usize>| Decision {
        action: index.map_or(table.default_action(), |index| rules[index].action),
        rule_index: index,
    };
    for (index, rule) in rules.iter().enumerate() {
        if rule.process.as_deref().is_some_and(|p| p != exe) {
            continue;
        }
        match (&rule.host, &rule.cidr) {
            (None, Some(_)) => continue,
            (Some(h), cidr) => {
                if !h.matches(host) {
                    continue;
                }
                if cidr.is_some() {
                    let fallback = (index..rules.len()).find(|&later| {
                        let rule = &rules[later];
                        rule.cidr.is_none()
                            && rule.ports.is_none()
                            && rule.mismatch(&target).is_none()
                    });
                    return ResolvePlan::RealOrFake(decision(fallback));
                }
            }
            (None, None) => {}
        }
        match rule.action {
            Action::Direct if rule.ports.is_none() => {
                return ResolvePlan::Real(decision(Some(index)))
            }
            Action::Direct => continue,
            Action::Deny if rule.host.is_none() && rule.ports.is_some() => continue,
            _ => return ResolvePlan::Fake(decision(Some(index))),
        }
    }
    match table.default_action() {
        Action::Direct => ResolvePlan::Real(decision(None)),
        _ => ResolvePlan::Fake(decision(None)),
    }
}

proptest! {
    #[test]
    fn indexed_decisions_equal_a_walk(
        specs in prop::collection::vec(rule_spec(), 0..40),
        default in any::<u8>(),
        targets in prop::collection::vec(target_spec(), 1..24),
    ) {
        let table = RuleTable::new(specs.iter().map(RuleSpec::rule).collect(), action(default));
        for (host, addr, port, exe) in targets {
            let exe = EXES[exe % EXES.len()];
            let target = Target {
                host: host.map(|pick| NAMES[pick % NAMES.len()]),
                addr: addr.map(|pick| ADDRESSES[pick % ADDRESSES.len()].parse().unwrap()),
                port,
                exe,
            };
            let decision = table.decide(&target);
            prop_assert_eq!(decision, walk_decide(&table, &target), "{:?}", target);
            // `explain` walks: it passes over exactly the rules before the deciding one.
            let passed = table.trace(&target).len();
            prop_assert_eq!(passed, decision.rule_index.unwrap_or(table.rules().len()));
            if let Some(host) = target.host {
                prop_assert_eq!(
                    table.plan_lookup(host, exe),
                    walk_plan_lookup(&table, host, exe),
                    "lookup of {:?} by {}", host, exe
                );
            }
        }
    }
}

/// Reply heads: mostly near-HTTP, sometimes garbage.
fn reply_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            "HTTP/1\\.[01] [0-9]{3}[ -~]{0,20}",
            prop::collection::vec("[A-Za-z-]{1,10}: [ -~]{0,20}", 0..4),
            prop::bool::ANY
        )
            .prop_map(|(status, headers, terminated)| {
                let mut text = format!("{status}\r\n");
                for header in headers {
                    text.push_str(&header);
                    text.push_str("\r\n");
                }
                if terminated {
                    text.push_str("\r\n");
                }
                text.into_bytes()
            }),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn gateway(kind: GatewayKind) -> Gateway {
    let mut gw = config::env::parse_proxy_url("http://127.0.0.1:9", "g").unwrap();
    gw.kind = kind;
    gw
}
