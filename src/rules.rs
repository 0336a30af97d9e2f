//! The compiled rule table and the one decision function that the `connect` hook, the resolver
//! and (later) the CLI's `explain` all call. Rules are ordered; the first match wins; an
//! unmatched connection takes the default action. No I/O, no `unsafe`, no locks: a table is
//! immutable once built and shared by reference.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::IpAddr;

use regex_automata::dfa::{dense, regex::Regex as DfaRegex};
use regex_automata::{util::syntax, Input};

use crate::net::{Cidr, PortRange};

/// What happens to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Direct,
    Deny,
    /// Through the gateway at this index of the config's gateway list.
    Gateway(usize),
}

impl Action {
    /// The log's `action` field.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Direct => "direct",
            Action::Deny => "deny",
            Action::Gateway(_) => "gateway",
        }
    }
}

/// How a rule matches the destination's hostname.
pub enum HostMatch {
    /// `api.openai.com`: this name only.
    Exact(String),
    /// `*.openai.com`: any subdomain, not the apex. Holds the suffix with its dot.
    Subdomains(String),
    /// `.openai.com` (the `NO_PROXY` convention): the apex and any subdomain. Holds the apex.
    Domain(String),
    /// `host_regex`: anchored at both ends, case-insensitive. Searched through a prebuilt DFA,
    /// which needs no mutable cache: the `regex` crate's cache pool takes a mutex, which a
    /// `fork()` in another thread could leave held in the child.
    Regex { source: String, dfa: Box<DfaRegex> },
}

impl HostMatch {
    /// Parses a `host` value: `name`, `*.suffix` or `.domain`.
    pub fn parse_host(text: &str) -> Result<HostMatch, String> {
        let lowered = text.to_ascii_lowercase();
        let check = |name: &str| {
            crate::net::normalize_host(name)
                .ok_or_else(|| format!("\"{text}\" is not a valid host name or pattern"))
        };
        if lowered == "*" {
            return Err("\"*\" matches everything: leave `host` out instead".into());
        }
        if let Some(suffix) = lowered.strip_prefix("*.") {
            return Ok(HostMatch::Subdomains(format!(".{}", check(suffix)?)));
        }
        if let Some(apex) = lowered.strip_prefix('.') {
            return Ok(HostMatch::Domain(check(apex)?));
        }
        if lowered.contains('*') {
            return Err(format!(
                "\"{text}\": a wildcard is allowed only as a leading \"*.\"; use host_regex for more"
            ));
        }
        Ok(HostMatch::Exact(check(&lowered)?))
    }

    /// Compiles a `host_regex` value.
    pub fn parse_regex(source: &str) -> Result<HostMatch, String> {
        let syntax = syntax::Config::new()
            .case_insensitive(true)
            .unicode(false)
            .utf8(false);
        // Parse the pattern as written first, so that an error points into it, not into the
        // anchored wrapper below.
        syntax::parse_with(source, &syntax).map_err(|e| regex_error_text(&e.to_string()))?;
        let dfa = DfaRegex::builder()
            .syntax(syntax)
            .dense(
                dense::Config::new()
                    .dfa_size_limit(Some(4 << 20))
                    .determinize_size_limit(Some(4 << 20)),
            )
            .build(&format!("^(?:{source})$"))
            .map_err(|e| regex_error_text(&e.to_string()))?;
        Ok(HostMatch::Regex {
            source: source.to_string(),
            dfa: Box::new(dfa),
        })
    }

    /// Whether `name` (already lower-case, without trailing dot) matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HostMatch::Exact(exact) => name == exact,
            HostMatch::Subdomains(suffix) => {
                name.len() > suffix.len() && name.ends_with(suffix.as_str())
            }
            HostMatch::Domain(apex) => {
                name == apex
                    || (name.len() > apex.len()
                        && name.ends_with(apex.as_str())
                        && name.as_bytes()[name.len() - apex.len() - 1] == b'.')
            }
            HostMatch::Regex { dfa, .. } => {
                matches!(dfa.try_search(&Input::new(name.as_bytes())), Ok(Some(_)))
            }
        }
    }
}

/// The regex crate's errors span several lines with a caret diagram; the log and stderr get one.
fn regex_error_text(full: &str) -> String {
    let last = full
        .lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .unwrap_or(full);
    last.trim_start_matches("error:").trim().to_string()
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMatch::Exact(name) => write!(f, "host={name}"),
            HostMatch::Subdomains(suffix) => write!(f, "host=*{suffix}"),
            HostMatch::Domain(apex) => write!(f, "host=.{apex}"),
            HostMatch::Regex { source, .. } => write!(f, "host_regex={source}"),
        }
    }
}

/// One rule: every condition present must hold.
pub struct Rule {
    pub host: Option<HostMatch>,
    pub cidr: Option<Cidr>,
    pub ports: Option<PortRange>,
    /// The executable's base name, exact (`node`, `python3.12`).
    pub process: Option<String>,
    pub action: Action,
    /// `host=*.openai.com port=443`: what the log and `explain` print for this rule.
    pub pattern: String,
}

impl Rule {
    pub fn new(
        host: Option<HostMatch>,
        cidr: Option<Cidr>,
        ports: Option<PortRange>,
        process: Option<String>,
        action: Action,
    ) -> Rule {
        let mut parts = Vec::new();
        if let Some(h) = &host {
            parts.push(h.to_string());
        }
        if let Some(c) = &cidr {
            parts.push(format!("cidr={c}"));
        }
        if let Some(p) = &ports {
            parts.push(format!("port={p}"));
        }
        if let Some(p) = &process {
            parts.push(format!("process={p}"));
        }
        let pattern = if parts.is_empty() {
            "any".to_string()
        } else {
            parts.join(" ")
        };
        Rule {
            host,
            cidr,
            ports,
            process,
            action,
            pattern,
        }
    }

    fn matches(&self, target: &Target<'_>) -> bool {
        self.mismatch(target).is_none()
    }

    /// The first condition of this rule that `target` fails, or `None` if the rule matches.
    /// The decision function and `explain` both use this, so they cannot disagree.
    pub fn mismatch(&self, target: &Target<'_>) -> Option<Mismatch> {
        if let Some(process) = &self.process {
            if process != target.exe {
                return Some(Mismatch::Process);
            }
        }
        if let Some(ports) = &self.ports {
            match target.port {
                Some(port) if ports.contains(port) => {}
                Some(_) => return Some(Mismatch::Port),
                None => return Some(Mismatch::PortUnknown),
            }
        }
        if let Some(cidr) = &self.cidr {
            match target.addr {
                Some(addr) if cidr.contains(addr) => {}
                Some(_) => return Some(Mismatch::Cidr),
                None => return Some(Mismatch::AddressUnknown),
            }
        }
        if let Some(host) = &self.host {
            if !target.with_host_text(|name| host.matches(name)) {
                return Some(Mismatch::Host);
            }
        }
        None
    }
}

impl Rule {
    /// Whether every connection `later` matches is already matched by `self` (so `later`, placed
    /// after it, can never decide anything). Conservative: `false` when unsure (regexes).
    pub fn covers(&self, later: &Rule) -> bool {
        let host = match (&self.host, &later.host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a.covers(b),
        };
        let cidr = match (&self.cidr, &later.cidr) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a.prefix_len() <= b.prefix_len() && a.contains(b.network()),
        };
        let ports = match (&self.ports, &later.ports) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a.first <= b.first && b.last <= a.last,
        };
        let process = match (&self.process, &later.process) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a == b,
        };
        host && cidr && ports && process
    }
}

impl HostMatch {
    /// Whether every name `other` matches, `self` matches too (regexes: only identical ones).
    fn covers(&self, other: &HostMatch) -> bool {
        use HostMatch::*;
        match (self, other) {
            (Regex { source: a, .. }, Regex { source: b, .. }) => a == b,
            (Regex { .. }, _) | (_, Regex { .. }) => false,
            (Exact(a), Exact(b)) => a == b,
            (Exact(_), _) => false,
            (Subdomains(_) | Domain(_), Exact(name)) => self.matches(name),
            // *.a.com covers *.x.a.com and .x.a.com; .a.com covers both forms under a.com.
            (Subdomains(suffix), Subdomains(other_suffix)) => {
                other_suffix.ends_with(suffix.as_str())
            }
            (Subdomains(suffix), Domain(apex)) => {
                format!(".{apex}").ends_with(suffix.as_str()) && apex.len() + 1 > suffix.len()
            }
            (Domain(_), Subdomains(other_suffix)) => self.matches(&other_suffix[1..]),
            (Domain(_), Domain(other_apex)) => self.matches(other_apex),
        }
    }
}

/// Why a rule did not match, for `explain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    Process,
    Port,
    /// A port condition, and no port is known yet (at lookup time).
    PortUnknown,
    Cidr,
    /// A `cidr` condition, and the real address is not known (a fake address, or not resolved).
    AddressUnknown,
    Host,
}

impl Mismatch {
    pub fn describe(&self) -> &'static str {
        match self {
            Mismatch::Process => "the process name differs",
            Mismatch::Port => "the port is outside the rule's ports",
            Mismatch::PortUnknown => "no port is known at lookup time",
            Mismatch::Cidr => "the address is outside the rule's prefix",
            Mismatch::AddressUnknown => {
                "the destination address is not known (a fake address, which the gateway resolves, or a name not resolved)"
            }
            Mismatch::Host => "the host does not match",
        }
    }
}

/// What a decision is about. At `connect()` the port is known and either the hostname (recovered
/// from a fake address or remembered from a lookup) or the address or both; at lookup time only
/// the hostname is.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// Lower-case, without trailing dot.
    pub host: Option<&'a str>,
    /// The real destination address; `None` for a fake address (the real one is the gateway's
    /// business).
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    pub exe: &'a str,
}

impl Target<'_> {
    /// Host conditions see the hostname when one is known, else the address as text: a
    /// connection to a literal address matches `host = "10.1.2.3"` as `NO_PROXY` entries do.
    fn with_host_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match (self.host, self.addr) {
            (Some(name), _) => f(name),
            (None, Some(addr)) => {
                let mut buf = [0u8; 64];
                f(format_ip(addr, &mut buf))
            }
            (None, None) => f(""),
        }
    }
}

/// Formats an address without allocating (the connect path runs on other people's threads).
fn format_ip(addr: IpAddr, buf: &mut [u8; 64]) -> &str {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{}", addr.to_canonical());
    let len = cursor.position() as usize;
    std::str::from_utf8(&buf[..len]).unwrap_or("")
}

/// The outcome of matching: an action and which rule gave it (`None`: the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub rule_index: Option<usize>,
}

/// How a name lookup is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolvePlan {
    /// Resolve for real: the host goes direct, by this decision (its connections are decided
    /// again at `connect()`, with the address).
    Real(Decision),
    /// Do not query DNS: hand out a fake address; `connect()` recovers the name. The decision is
    /// the rule that makes the host routed or denied.
    Fake(Decision),
    /// Resolve for real because a rule ties this host to addresses (`host` with `cidr`) or
    /// `dns.mode = "local"`; fall back to a fake address if DNS has no answer (names only the
    /// gateway can resolve).
    RealOrFake(Decision),
}

/// The ordered rules and the default.
pub struct RuleTable {
    rules: Vec<Rule>,
    default: Action,
}

impl RuleTable {
    pub fn new(rules: Vec<Rule>, default: Action) -> RuleTable {
        RuleTable { rules, default }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn default_action(&self) -> Action {
        self.default
    }

    /// Every rule before the one that decides `target`, with the reason it did not match.
    pub fn trace(&self, target: &Target<'_>) -> Vec<(usize, Mismatch)> {
        self.rules
            .iter()
            .enumerate()
            .map_while(|(index, rule)| rule.mismatch(target).map(|why| (index, why)))
            .collect()
    }

    /// The decision for a connection: first matching rule, else the default.
    pub fn decide(&self, target: &Target<'_>) -> Decision {
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.matches(target) {
                return Decision {
                    action: rule.action,
                    rule_index: Some(index),
                };
            }
        }
        Decision {
            action: self.default,
            rule_index: None,
        }
    }

    /// How to answer a lookup of `host` before any port is known: fake when a rule that could
    /// match (any port) routes or denies the host, real when the host certainly goes direct.
    /// Rules with only a `cidr` condition are about addresses and cannot see a host whose
    /// address we never look up; they are skipped here and apply at `connect()` to hosts
    /// resolved for real.
    pub fn plan_lookup(&self, host: &str, exe: &str) -> ResolvePlan {
        let target = Target {
            host: Some(host),
            addr: None,
            port: None,
            exe,
        };
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.process.as_deref().is_some_and(|p| p != exe) {
                continue;
            }
            let decision = Decision {
                action: rule.action,
                rule_index: Some(index),
            };
            match (&rule.host, &rule.cidr) {
                (None, Some(_)) => continue,
                (Some(h), cidr) => {
                    if !target.with_host_text(|n| h.matches(n)) {
                        continue;
                    }
                    if cidr.is_some() {
                        // Which addresses the host has decides; ask DNS.
                        return ResolvePlan::RealOrFake(self.first_routing_after(index, host, exe));
                    }
                }
                (None, None) => {}
            }
            match rule.action {
                Action::Direct if rule.ports.is_none() => return ResolvePlan::Real(decision),
                Action::Direct => continue,
                // A port-limited deny rule that does not look at the name denies the real
                // address just as well: no reason to fake every name for it.
                Action::Deny if rule.host.is_none() && rule.ports.is_some() => continue,
                _ => return ResolvePlan::Fake(decision),
            }
        }
        let decision = Decision {
            action: self.default,
            rule_index: None,
        };
        match self.default {
            Action::Direct => ResolvePlan::Real(decision),
            _ => ResolvePlan::Fake(decision),
        }
    }

    /// For `RealOrFake`: the decision a fake address would stand for if DNS has no answer.
    fn first_routing_after(&self, start: usize, host: &str, exe: &str) -> Decision {
        let target = Target {
            host: Some(host),
            addr: None,
            port: None,
            exe,
        };
        for (index, rule) in self.rules.iter().enumerate().skip(start) {
            if rule.cidr.is_some() || rule.ports.is_some() || !rule.matches(&target) {
                continue;
            }
            return Decision {
                action: rule.action,
                rule_index: Some(index),
            };
        }
        Decision {
            action: self.default,
            rule_index: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(host: Option<&str>, cidr: Option<&str>, port: Option<&str>, action: Action) -> Rule {
        Rule::new(
            host.map(|h| HostMatch::parse_host(h).unwrap()),
            cidr.map(|c| Cidr::parse(c).unwrap()),
            port.map(|p| PortRange::parse(p).unwrap()),
            None,
            action,
        )
    }

    fn at<'a>(host: Option<&'a str>, addr: Option<&str>, port: u16) -> Target<'a> {
        Target {
            host,
            addr: addr.map(|a| a.parse().unwrap()),
            port: Some(port),
            exe: "curl",
        }
    }

    #[test]
    fn host_patterns() {
        let exact = HostMatch::parse_host("API.openai.com").unwrap();
        assert!(exact.matches("api.openai.com") && !exact.matches("x.api.openai.com"));
        let sub = HostMatch::parse_host("*.openai.com").unwrap();
        assert!(sub.matches("api.openai.com") && sub.matches("a.b.openai.com"));
        assert!(!sub.matches("openai.com") && !sub.matches("evilopenai.com"));
        let dom = HostMatch::parse_host(".openai.com").unwrap();
        assert!(dom.matches("openai.com") && dom.matches("api.openai.com"));
        assert!(!dom.matches("evilopenai.com"));
        let re = HostMatch::parse_regex(r"api[0-9]+\.example\.com").unwrap();
        assert!(re.matches("api12.example.com"));
        assert!(
            !re.matches("api12.example.com.evil.org"),
            "anchored at the end"
        );
        assert!(!re.matches("xapi1.example.com"), "anchored at the start");
        let ci = HostMatch::parse_regex("API\\.X\\.COM").unwrap();
        assert!(ci.matches("api.x.com"), "case-insensitive");
        assert!(HostMatch::parse_regex("(unclosed").is_err());
        assert!(HostMatch::parse_host("a*.b").is_err());
        assert!(HostMatch::parse_host("*").is_err());
    }

    #[test]
    fn first_match_wins_then_default() {
        let table = RuleTable::new(
            vec![
                rule(Some("blocked.example.com"), None, None, Action::Deny),
                rule(Some("*.example.com"), None, Some("443"), Action::Gateway(0)),
                rule(None, Some("10.0.0.0/8"), None, Action::Direct),
            ],
            Action::Gateway(1),
        );
        let d = table.decide(&at(Some("blocked.example.com"), None, 443));
        assert_eq!((d.action, d.rule_index), (Action::Deny, Some(0)));
        let d = table.decide(&at(Some("api.example.com"), None, 443));
        assert_eq!((d.action, d.rule_index), (Action::Gateway(0), Some(1)));
        let d = table.decide(&at(Some("api.example.com"), None, 80));
        assert_eq!((d.action, d.rule_index), (Action::Gateway(1), None));
        let d = table.decide(&at(None, Some("10.2.3.4"), 22));
        assert_eq!((d.action, d.rule_index), (Action::Direct, Some(2)));
        let d = table.decide(&at(None, Some("::ffff:10.2.3.4"), 22));
        assert_eq!(d.action, Action::Direct, "v4-mapped is v4");
    }

    #[test]
    fn host_rules_see_literal_addresses_as_text() {
        let table = RuleTable::new(
            vec![rule(Some("10.1.2.3"), None, None, Action::Deny)],
            Action::Direct,
        );
        assert_eq!(
            table.decide(&at(None, Some("10.1.2.3"), 80)).action,
            Action::Deny
        );
    }

    #[test]
    fn process_condition() {
        let table = RuleTable::new(
            vec![Rule::new(
                None,
                None,
                None,
                Some("node".into()),
                Action::Deny,
            )],
            Action::Direct,
        );
        let mut t = at(Some("x.com"), None, 443);
        assert_eq!(table.decide(&t).action, Action::Direct);
        t.exe = "node";
        assert_eq!(table.decide(&t).action, Action::Deny);
    }

    #[test]
    fn lookup_plans() {
        let table = RuleTable::new(
            vec![
                rule(None, Some("127.0.0.0/8"), None, Action::Direct),
                rule(Some("localhost"), None, None, Action::Direct),
                rule(Some("*.example.com"), None, Some("22"), Action::Direct),
                rule(Some("*.example.com"), None, Some("443"), Action::Gateway(0)),
                rule(Some("db.corp"), Some("10.0.0.0/8"), None, Action::Direct),
                rule(Some("bad.org"), None, None, Action::Deny),
            ],
            Action::Direct,
        );
        assert_eq!(
            table.plan_lookup("localhost", "curl"),
            ResolvePlan::Real(Decision {
                action: Action::Direct,
                rule_index: Some(1)
            })
        );
        assert_eq!(
            table.plan_lookup("api.example.com", "curl"),
            ResolvePlan::Fake(Decision {
                action: Action::Gateway(0),
                rule_index: Some(3)
            }),
            "a port-limited direct rule does not settle the host; a later routing rule could match"
        );
        assert!(matches!(
            table.plan_lookup("db.corp", "curl"),
            ResolvePlan::RealOrFake(_)
        ));
        assert!(
            matches!(table.plan_lookup("bad.org", "curl"), ResolvePlan::Fake(d) if d.action == Action::Deny)
        );
        assert!(matches!(
            table.plan_lookup("other.org", "curl"),
            ResolvePlan::Real(Decision {
                rule_index: None,
                ..
            })
        ));
    }

    #[test]
    fn shadowing() {
        let r = |host: Option<&str>, cidr: Option<&str>, port: Option<&str>| {
            rule(host, cidr, port, Action::Deny)
        };
        assert!(r(None, None, None).covers(&r(Some("a.com"), None, Some("443"))));
        assert!(r(Some("*.a.com"), None, None).covers(&r(Some("x.a.com"), None, None)));
        assert!(!r(Some("*.a.com"), None, None).covers(&r(Some("a.com"), None, None)));
        assert!(r(Some(".a.com"), None, None).covers(&r(Some("a.com"), None, None)));
        assert!(r(Some(".a.com"), None, None).covers(&r(Some("*.x.a.com"), None, None)));
        assert!(r(Some("*.a.com"), None, None).covers(&r(Some(".x.a.com"), None, None)));
        assert!(!r(Some("*.a.com"), None, None).covers(&r(Some(".a.com"), None, None)));
        assert!(r(None, Some("10.0.0.0/8"), None).covers(&r(None, Some("10.1.0.0/16"), None)));
        assert!(!r(None, Some("10.1.0.0/16"), None).covers(&r(None, Some("10.0.0.0/8"), None)));
        assert!(r(None, None, Some("1-1000")).covers(&r(None, None, Some("443"))));
        assert!(!r(None, None, Some("443")).covers(&r(None, None, None)));
        assert!(!r(Some("a.com"), None, None).covers(&r(None, Some("10.0.0.0/8"), None)));
    }
}
