//! The compiled rule table and the one decision function that the `connect` hook, the resolver
//! and (later) the CLI's `explain` all call. Rules are ordered; the first match wins; an
//! unmatched connection takes the default action. No I/O, no `unsafe`, no locks: a table is
//! immutable once built and shared by reference.
//!
//! "First match wins" is the meaning; the table does not walk every rule to find it. An index
//! built with the table (exact names, wildcard suffixes and CIDR prefixes by hash, regexes
//! compiled together into a few multi-pattern DFAs) names the rules that could match a target,
//! and the lowest-numbered of those that matches in full decides, as a walk would.
#![forbid(unsafe_code)]

use crate::hash::{fnv_step, FNV_OFFSET};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use regex_automata::dfa::{dense, sparse, Automaton};
use regex_automata::dfa::{OverlappingState, StartKind};
use regex_automata::{util::syntax, Anchored, Input, MatchError, MatchKind};

use std::sync::Arc;

use crate::lists::{CidrList, HostList};
use crate::net::{self, Cidr, PortRange};

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
    /// `fork()` in another thread could leave held in the child. Forward-only, anchored and
    /// sparse: whether the name matches is all a rule asks, and a sparse DFA is about a tenth
    /// of a dense one (10,000 regex rules: about 5 MB, where a dense regex each took 120 MB).
    Regex {
        source: String,
        dfa: Box<sparse::DFA<Vec<u8>>>,
    },
    /// `host_list`: any pattern of a list file (see [`crate::lists`]).
    List(Arc<HostList>),
}

/// How a rule matches the destination's address.
pub enum AddressMatch {
    /// `cidr`: one prefix.
    Prefix(Cidr),
    /// `cidr_list`: any prefix of a list file.
    List(Arc<CidrList>),
}

impl AddressMatch {
    pub fn contains(&self, addr: IpAddr) -> bool {
        match self {
            AddressMatch::Prefix(cidr) => cidr.contains(addr),
            AddressMatch::List(list) => list.find(addr).is_some(),
        }
    }
}

impl fmt::Display for AddressMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressMatch::Prefix(cidr) => write!(f, "cidr={cidr}"),
            AddressMatch::List(list) => write!(f, "cidr_list={}", list.info.path.display()),
        }
    }
}

impl HostMatch {
    /// Parses a `host` value: `name`, `*.suffix` or `.domain`.
    pub fn parse_host(text: &str) -> Result<HostMatch, String> {
        // `normalize_host` lowers the case; `*` and `.` have none.
        let check = |name: &str| {
            crate::net::normalize_host(name)
                .ok_or_else(|| format!("\"{text}\" is not a valid host name or pattern"))
        };
        if text == "*" {
            return Err("\"*\" matches everything: leave `host` out instead".into());
        }
        if let Some(suffix) = text.strip_prefix("*.") {
            let mut dotted = check(suffix)?;
            dotted.insert(0, '.');
            return Ok(HostMatch::Subdomains(dotted));
        }
        if let Some(apex) = text.strip_prefix('.') {
            return Ok(HostMatch::Domain(check(apex)?));
        }
        if text.contains('*') {
            return Err(format!(
                "\"{text}\": a wildcard is allowed only as a leading \"*.\"; use host_regex for more"
            ));
        }
        Ok(HostMatch::Exact(check(text)?))
    }

    /// A `host` value already in the form [`HostMatch::parse_host`] makes of it (see
    /// [`HostMatch::normal_text`]): taken as it is, without checking it again.
    pub fn from_normal(text: &str) -> HostMatch {
        if let Some(suffix) = text.strip_prefix('*') {
            HostMatch::Subdomains(suffix.to_owned())
        } else if let Some(apex) = text.strip_prefix('.') {
            HostMatch::Domain(apex.to_owned())
        } else {
            HostMatch::Exact(text.to_owned())
        }
    }

    /// The `host` value that [`HostMatch::parse_host`] reads back as this pattern, for the
    /// three plain forms (`None` for the others).
    pub fn normal_text(&self) -> Option<String> {
        match self {
            HostMatch::Exact(name) => Some(name.clone()),
            HostMatch::Subdomains(suffix) => Some(format!("*{suffix}")),
            HostMatch::Domain(apex) => Some(format!(".{apex}")),
            _ => None,
        }
    }

    /// Compiles a `host_regex` value.
    pub fn parse_regex(source: &str) -> Result<HostMatch, String> {
        // Parse the pattern as written first, so that an error points into it, not into the
        // anchored wrapper below.
        syntax::parse_with(source, &regex_syntax())
            .map_err(|e| regex_error_text(&e.to_string()))?;
        let error = |e: dense::BuildError| regex_error_text(&e.to_string());
        let dfa = dense::Builder::new()
            .syntax(regex_syntax())
            .configure(
                dense::Config::new()
                    .start_kind(StartKind::Anchored)
                    .dfa_size_limit(Some(REGEX_DFA_LIMIT))
                    .determinize_size_limit(Some(REGEX_DFA_LIMIT)),
            )
            .build(&anchored_regex(source))
            .map_err(error)?
            .to_sparse()
            .map_err(error)?;
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
                let input = Input::new(name).anchored(Anchored::Yes);
                matches!(dfa.try_search_fwd(&input), Ok(Some(_)))
            }
            HostMatch::List(list) => list.find(name).is_some(),
        }
    }
}

/// How `host_regex` patterns are read. The rule's own DFA and the table's combined ones (see
/// `RegexSet`) are both built from this and `anchored_regex`, so they accept the same names.
fn regex_syntax() -> syntax::Config {
    syntax::Config::new()
        .case_insensitive(true)
        .unicode(false)
        .utf8(false)
}

/// A `host_regex` must match the whole name.
fn anchored_regex(source: &str) -> String {
    format!("^(?:{source})$")
}

/// The most memory one rule's regex DFA may take (and take while being built).
const REGEX_DFA_LIMIT: usize = 4 << 20;

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
            HostMatch::List(list) => write!(f, "host_list={}", list.info.path.display()),
        }
    }
}

/// One rule: every condition present must hold.
pub struct Rule {
    pub host: Option<HostMatch>,
    pub cidr: Option<AddressMatch>,
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
        cidr: Option<AddressMatch>,
        ports: Option<PortRange>,
        process: Option<String>,
        action: Action,
    ) -> Rule {
        // One string, written in place: a table of 70,000 rules builds 70,000 of them.
        use std::fmt::Write;
        let mut pattern = String::with_capacity(match &host {
            // `host=` and the name: a host-only rule's pattern, in one allocation.
            Some(
                HostMatch::Exact(name) | HostMatch::Subdomains(name) | HostMatch::Domain(name),
            ) => name.len() + 6,
            _ => 32,
        });
        let space = |p: &mut String| {
            if !p.is_empty() {
                p.push(' ');
            }
        };
        match &host {
            // The common forms without the formatting machinery: 70,000 rules, 70,000 calls.
            Some(HostMatch::Exact(name)) => pattern.extend(["host=", name]),
            Some(HostMatch::Subdomains(suffix)) => pattern.extend(["host=*", suffix]),
            Some(HostMatch::Domain(apex)) => pattern.extend(["host=.", apex]),
            Some(h) => {
                let _ = write!(pattern, "{h}");
            }
            None => {}
        }
        if let Some(c) = &cidr {
            space(&mut pattern);
            let _ = write!(pattern, "{c}");
        }
        if let Some(p) = &ports {
            space(&mut pattern);
            let _ = write!(pattern, "port={p}");
        }
        if let Some(p) = &process {
            space(&mut pattern);
            let _ = write!(pattern, "process={p}");
        }
        if pattern.is_empty() {
            pattern.push_str("any");
        }
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
    /// For a rule that reads a list file: the file, and the line of the entry `target` matches.
    pub fn list_entry(&self, target: &Target<'_>) -> Option<(&std::path::Path, u64)> {
        if let Some(HostMatch::List(list)) = &self.host {
            let line = target.with_host_text(|name| list.find(name))?;
            return Some((&list.info.path, line));
        }
        if let (Some(AddressMatch::List(list)), Some(addr)) = (&self.cidr, target.addr) {
            return Some((&list.info.path, list.find(addr)?));
        }
        None
    }

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
            (Some(AddressMatch::Prefix(a)), Some(AddressMatch::Prefix(b))) => {
                a.prefix_len() <= b.prefix_len() && a.contains(b.network())
            }
            (Some(AddressMatch::List(a)), Some(AddressMatch::List(b))) => {
                a.info.path == b.info.path
            }
            (Some(_), Some(_)) => false,
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
            (List(a), List(b)) => a.info.path == b.info.path,
            (List(_), _) | (_, List(_)) => false,
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
/// IPv4, what nearly every direct connect has, by hand: `core::fmt` was a visible part of a
/// direct connect's cost in a profile; IPv6 through `Display`.
fn format_ip(addr: IpAddr, buf: &mut [u8; 64]) -> &str {
    let len = match addr.to_canonical() {
        IpAddr::V4(v4) => {
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    buf[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    buf[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                buf[len] = b'0' + octet % 10;
                len += 1;
            }
            len
        }
        v6 => {
            use std::io::Write;
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            let _ = write!(cursor, "{v6}");
            cursor.position() as usize
        }
    };
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

impl ResolvePlan {
    /// The decision the plan was made with.
    pub fn decision(self) -> Decision {
        match self {
            ResolvePlan::Real(d) | ResolvePlan::Fake(d) | ResolvePlan::RealOrFake(d) => d,
        }
    }
}

/// The ordered rules and the default.
pub struct RuleTable {
    rules: Vec<Rule>,
    default: Action,
    index: RuleIndex,
}

impl RuleTable {
    pub fn new(rules: Vec<Rule>, default: Action) -> RuleTable {
        let index = RuleIndex::build(&rules, REGEX_SET_BUDGET);
        RuleTable {
            rules,
            default,
            index,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn default_action(&self) -> Action {
        self.default
    }

    /// Rules that can never match, each with the first earlier rule that matches everything it
    /// does (see [`Rule::covers`]). Each rule is compared only with the earlier rules that
    /// could cover it, found by its host's labels and its prefix's lengths, so that a table of
    /// a hundred thousand rules is checked in well under a second, not in hours.
    pub fn shadowed(&self) -> Vec<(usize, usize)> {
        let mut earlier = CoverIndex::default();
        let mut found = Vec::new();
        let mut candidates = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            candidates.clear();
            earlier.candidates(rule, &mut candidates);
            candidates.sort_unstable();
            if let Some(&first) = candidates.iter().find(|&&c| self.rules[c].covers(rule)) {
                found.push((index, first));
            }
            earlier.add(index, rule);
        }
        found
    }

    /// The list files the rules read, each once.
    pub fn list_files(&self) -> Vec<std::path::PathBuf> {
        let mut files: Vec<std::path::PathBuf> = Vec::new();
        for rule in &self.rules {
            let host = match &rule.host {
                Some(HostMatch::List(list)) => Some(&list.info.path),
                _ => None,
            };
            let cidr = match &rule.cidr {
                Some(AddressMatch::List(list)) => Some(&list.info.path),
                _ => None,
            };
            for path in host.into_iter().chain(cidr) {
                if !files.contains(path) {
                    files.push(path.clone());
                }
            }
        }
        files
    }

    /// Every rule before the one that decides `target`, with the reason it did not match.
    /// A walk on purpose: `explain` wants every rule passed over, not just the candidates.
    pub fn trace(&self, target: &Target<'_>) -> Vec<(usize, Mismatch)> {
        self.rules
            .iter()
            .enumerate()
            .map_while(|(index, rule)| rule.mismatch(target).map(|why| (index, why)))
            .collect()
    }

    /// The decision for a connection: first matching rule, else the default.
    pub fn decide(&self, target: &Target<'_>) -> Decision {
        let first = target.with_host_text(|name| {
            self.index.first(name, target.addr, 0, |index| {
                self.rules[index].matches(target)
            })
        });
        self.decision(first)
    }

    /// The decision that rule `rule_index` gives, or the default's for `None`.
    fn decision(&self, rule_index: Option<usize>) -> Decision {
        Decision {
            action: rule_index.map_or(self.default, |index| self.rules[index].action),
            rule_index,
        }
    }

    /// How to answer a lookup of `host` before any port is known: fake when a rule that could
    /// match (any port) routes or denies the host, real when the host certainly goes direct.
    /// Rules with only a `cidr` condition are about addresses and cannot see a host whose
    /// address we never look up; they are skipped here and apply at `connect()` to hosts
    /// resolved for real.
    pub fn plan_lookup(&self, host: &str, exe: &str) -> ResolvePlan {
        let settled = self
            .index
            .first(host, None, 0, |index| {
                lookup_step(&self.rules[index], host, exe).is_some()
            })
            .and_then(|index| Some((index, lookup_step(&self.rules[index], host, exe)?)));
        let Some((index, step)) = settled else {
            let decision = self.decision(None);
            return match self.default {
                Action::Direct => ResolvePlan::Real(decision),
                _ => ResolvePlan::Fake(decision),
            };
        };
        let decision = self.decision(Some(index));
        match step {
            LookupStep::Real => ResolvePlan::Real(decision),
            LookupStep::Fake => ResolvePlan::Fake(decision),
            LookupStep::RealOrFake => {
                ResolvePlan::RealOrFake(self.first_routing_after(index, host, exe))
            }
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
        let first = self.index.first(host, None, start, |index| {
            let rule = &self.rules[index];
            rule.cidr.is_none() && rule.ports.is_none() && rule.matches(&target)
        });
        self.decision(first)
    }
}

/// Rules seen so far, by what could make one of them cover a later rule: its host pattern's
/// text, or (for rules without a host) its address condition.
#[derive(Default)]
struct CoverIndex {
    exact: HashMap<String, Vec<usize>>,
    subdomains: HashMap<String, Vec<usize>>,
    domains: HashMap<String, Vec<usize>>,
    /// Regexes by source, lists by path: only an identical one covers.
    same: HashMap<String, Vec<usize>>,
    /// Rules without a host condition: with no address condition, or by prefix (family,
    /// length, network), or by address list path.
    anywhere: Vec<usize>,
    prefixes: HashMap<(bool, u8, IpAddr), Vec<usize>>,
    address_lists: HashMap<String, Vec<usize>>,
}

impl CoverIndex {
    fn add(&mut self, index: usize, rule: &Rule) {
        let bucket = match &rule.host {
            Some(HostMatch::Exact(name)) => self.exact.entry(name.clone()),
            Some(HostMatch::Subdomains(suffix)) => self.subdomains.entry(suffix.clone()),
            Some(HostMatch::Domain(apex)) => self.domains.entry(apex.clone()),
            Some(host) => self.same.entry(host.to_string()),
            None => match &rule.cidr {
                None => return self.anywhere.push(index),
                Some(AddressMatch::Prefix(cidr)) => {
                    let key = (cidr.network().is_ipv4(), cidr.prefix_len(), cidr.network());
                    return self.prefixes.entry(key).or_default().push(index);
                }
                Some(list) => self.address_lists.entry(list.to_string()),
            },
        };
        bucket.or_default().push(index);
    }

    /// Every earlier rule that could cover `rule` (a superset; `covers` decides).
    fn candidates(&self, rule: &Rule, out: &mut Vec<usize>) {
        // A rule without a host condition covers on its address condition alone.
        out.extend_from_slice(&self.anywhere);
        match &rule.cidr {
            Some(AddressMatch::Prefix(cidr)) => {
                for len in 0..=cidr.prefix_len() {
                    let Ok(wider) = Cidr::parse(&format!("{}/{len}", mask(cidr.network(), len)))
                    else {
                        continue;
                    };
                    let key = (cidr.network().is_ipv4(), len, wider.network());
                    out.extend(self.prefixes.get(&key).into_iter().flatten());
                }
            }
            Some(list) => out.extend(
                self.address_lists
                    .get(&list.to_string())
                    .into_iter()
                    .flatten(),
            ),
            None => {}
        }
        let mut take = |map: &HashMap<String, Vec<usize>>, key: &str| {
            out.extend(map.get(key).into_iter().flatten());
        };
        // The label-wise suffixes of a name: `a.b.c`, `b.c`, `c`.
        let suffixes = |name: &str| -> Vec<String> {
            let mut all = vec![name.to_string()];
            let mut rest = name;
            while let Some((_, tail)) = rest.split_once('.') {
                all.push(tail.to_string());
                rest = tail;
            }
            all
        };
        match &rule.host {
            None => {}
            Some(HostMatch::Exact(name)) => {
                take(&self.exact, name);
                for (i, suffix) in suffixes(name).iter().enumerate() {
                    take(&self.domains, suffix);
                    if i > 0 {
                        take(&self.subdomains, &format!(".{suffix}"));
                    }
                }
            }
            Some(HostMatch::Subdomains(suffix)) => {
                for tail in suffixes(&suffix[1..]) {
                    take(&self.domains, &tail);
                    take(&self.subdomains, &format!(".{tail}"));
                }
            }
            Some(HostMatch::Domain(apex)) => {
                for (i, tail) in suffixes(apex).iter().enumerate() {
                    take(&self.domains, tail);
                    if i > 0 {
                        take(&self.subdomains, &format!(".{tail}"));
                    }
                }
            }
            Some(host) => take(&self.same, &host.to_string()),
        }
    }
}

/// `addr` with all but its first `len` bits cleared.
fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & kept))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & kept))
        }
    }
}

/// What a rule that settles a lookup makes of it (see `RuleTable::plan_lookup`).
enum LookupStep {
    Real,
    Fake,
    /// A rule ties the host to addresses: DNS decides.
    RealOrFake,
}

/// Pushes `label` unless it is the last one pushed: neighbouring rules mostly share a top-level
/// label, so the list to sort and deduplicate stays short.
fn push_new(labels: &mut Vec<u64>, label: u64) {
    if labels.last() != Some(&label) {
        labels.push(label);
    }
}

/// Whether `rule`, met in order at lookup time, settles how `host` is resolved; `None`: look
/// further down the table.
fn lookup_step(rule: &Rule, host: &str, exe: &str) -> Option<LookupStep> {
    if rule.process.as_deref().is_some_and(|p| p != exe) {
        return None;
    }
    match (&rule.host, &rule.cidr) {
        (None, Some(_)) => return None,
        (Some(h), cidr) => {
            if !h.matches(host) {
                return None;
            }
            if cidr.is_some() {
                // Which addresses the host has decides; ask DNS.
                return Some(LookupStep::RealOrFake);
            }
        }
        (None, None) => {}
    }
    match rule.action {
        Action::Direct if rule.ports.is_none() => Some(LookupStep::Real),
        Action::Direct => None,
        // A port-limited deny rule that does not look at the name denies the real
        // address just as well: no reason to fake every name for it.
        Action::Deny if rule.host.is_none() && rule.ports.is_some() => None,
        _ => Some(LookupStep::Fake),
    }
}

/// Where the rules that could match a target are, so that a decision checks those instead of
/// walking the table. A lookup yields a superset of the rules whose host (or, for rules without
/// a host, cidr) condition holds; each candidate is then checked in full by the caller, so the
/// index never decides anything itself: a hash collision costs a wasted check, not a wrong
/// answer. Every rule is in exactly one place: keyed by its host, in a regex set, keyed by its
/// prefix (cidr without host), or unkeyed.
struct RuleIndex {
    /// Exact names, `*.suffix` suffixes, `.domain` apexes and cidr prefixes, by `key` (a hash
    /// of kind and value); each names a run of `postings`.
    keyed: HashMap<u64, Postings, BuildHasherDefault<KeyHasher>>,
    /// Rule indices, ascending within each run.
    postings: Vec<usize>,
    /// The prefix lengths of the keyed cidr rules: an address costs one probe per length.
    v4_prefix_lens: Vec<u8>,
    v6_prefix_lens: Vec<u8>,
    /// Regex rules, compiled together, in rule order.
    regex_sets: Vec<RegexSet>,
    /// Rules that every target is checked against: neither host nor cidr condition (only port
    /// or process), or a host condition the index has no key for. Ascending.
    unkeyed: Vec<usize>,
    /// `text_hash` of the last label of every keyed name, suffix and apex, sorted: a name whose
    /// last label is not among them (`127.0.0.1` as text, `api.github.com` against rules for
    /// `*.example.test`) can match none of them, and skips the probes of the name walk.
    last_labels: Vec<u64>,
}

#[derive(Clone, Copy)]
struct Postings {
    start: usize,
    len: usize,
}

/// The most memory a combined regex DFA may take while being built: sets are split until each
/// fits (a regex that fits nowhere is checked on its own, unkeyed).
const REGEX_SET_BUDGET: usize = 8 << 20;

/// A combined DFA up to this size is kept dense (fastest); a larger one is kept sparse, about
/// a tenth the memory for a few times the search cost.
const REGEX_SET_DENSE_MAX: usize = 512 << 10;

impl RuleIndex {
    fn build(rules: &[Rule], regex_budget: usize) -> RuleIndex {
        let mut keyed_rules: Vec<(u64, usize)> = Vec::with_capacity(rules.len());
        let mut last_labels = Vec::new();
        let mut regex_rules: Vec<(usize, &str, usize)> = Vec::new();
        let mut unkeyed = Vec::new();
        let mut v4_lens = [false; 33];
        let mut v6_lens = [false; 129];
        for (index, rule) in rules.iter().enumerate() {
            match (&rule.host, &rule.cidr) {
                (Some(HostMatch::Exact(name)), _) => {
                    keyed_rules.push((key(KeyKind::Exact, text_hash(name)), index));
                    push_new(&mut last_labels, last_label_hash(name));
                }
                // `*.suffix` is kept with its dot; one without (not made by `parse_host`)
                // matches where no dot splits the name, which the name walk does not visit.
                (Some(HostMatch::Subdomains(suffix)), _) if suffix.starts_with('.') => {
                    keyed_rules.push((key(KeyKind::Subdomains, text_hash(suffix)), index));
                    push_new(&mut last_labels, last_label_hash(suffix));
                }
                (Some(HostMatch::Domain(apex)), _) => {
                    keyed_rules.push((key(KeyKind::Domain, text_hash(apex)), index));
                    push_new(&mut last_labels, last_label_hash(apex));
                }
                (Some(HostMatch::Regex { source, dfa }), _) => {
                    // What the regex adds to a combined DFA, which is built dense: about
                    // eight times its own sparse one.
                    regex_rules.push((index, source, dfa.memory_usage() * 8));
                }
                (Some(HostMatch::Subdomains(_) | HostMatch::List(_)), _)
                | (None, None | Some(AddressMatch::List(_))) => unkeyed.push(index),
                (None, Some(AddressMatch::Prefix(cidr))) => {
                    let len = cidr.prefix_len();
                    let prefix_key = match cidr.network() {
                        IpAddr::V4(network) => {
                            v4_lens[usize::from(len)] = true;
                            v4_prefix_key(len, network)
                        }
                        IpAddr::V6(network) => {
                            v6_lens[usize::from(len)] = true;
                            v6_prefix_key(len, network)
                        }
                    };
                    keyed_rules.push((prefix_key, index));
                }
            }
        }
        // Each key's postings without sorting the pairs: count the rules of each key, give
        // each key its run, then fill the runs in table order (so each stays ascending).
        let mut keyed: HashMap<u64, Postings, _> =
            HashMap::with_capacity_and_hasher(keyed_rules.len(), Default::default());
        for &(key, _) in &keyed_rules {
            keyed
                .entry(key)
                .or_insert(Postings { start: 0, len: 0 })
                .len += 1;
        }
        let mut start = 0;
        for run in keyed.values_mut() {
            run.start = start;
            start += run.len;
            run.len = 0;
        }
        let mut postings = vec![0; keyed_rules.len()];
        for &(key, index) in &keyed_rules {
            if let Some(run) = keyed.get_mut(&key) {
                postings[run.start + run.len] = index;
                run.len += 1;
            }
        }
        let regex_sets = RegexSet::build_all(&regex_rules, regex_budget, &mut unkeyed);
        unkeyed.sort_unstable();
        last_labels.sort_unstable();
        last_labels.dedup();
        let lens = |present: &[bool]| {
            (0u8..)
                .zip(present)
                .filter_map(|(len, &p)| p.then_some(len))
                .collect()
        };
        RuleIndex {
            keyed,
            postings,
            v4_prefix_lens: lens(&v4_lens),
            v6_prefix_lens: lens(&v6_lens),
            regex_sets,
            unkeyed,
            last_labels,
        }
    }

    /// The lowest rule index, `from` or later, among the candidates for host text `name` and
    /// address `addr` that `accept` takes (`accept` must check the rule's host condition).
    /// Allocates nothing: this runs inside the `connect` hook.
    fn first(
        &self,
        name: &str,
        addr: Option<IpAddr>,
        from: usize,
        accept: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let mut found = FirstMatch {
            best: usize::MAX,
            from,
            accept,
        };
        // The name, then each suffix a dot starts, walked from the right so that one pass
        // hashes them all: `a.b.c` probes `c` and `b.c` (apexes), `.c` and `.b.c` (suffixes of
        // `*.` rules, which need a label before them), and `a.b.c` (exact and apex). A name
        // matches an exact name, a `*.` suffix or an apex only if its last label is that
        // pattern's last label: when no keyed pattern ends like the name, the walk is skipped.
        if self
            .last_labels
            .binary_search(&last_label_hash(name))
            .is_ok()
        {
            let bytes = name.as_bytes();
            let mut hash = FNV_OFFSET;
            for (position, &byte) in bytes.iter().enumerate().rev() {
                if byte == b'.' {
                    self.probe(key(KeyKind::Domain, hash), &mut found);
                }
                hash = fnv_step(hash, byte);
                if byte == b'.' && position > 0 {
                    self.probe(key(KeyKind::Subdomains, hash), &mut found);
                }
            }
            self.probe(key(KeyKind::Exact, hash), &mut found);
            self.probe(key(KeyKind::Domain, hash), &mut found);
        }
        found.scan(&self.unkeyed);
        if let Some(addr) = addr {
            // As `Cidr::contains` sees it: an IPv4 prefix holds the IPv6 spellings of its
            // addresses, an IPv6 prefix sees IPv4 addresses mapped.
            if let Some(v4) = net::embedded_ipv4(addr) {
                for &len in &self.v4_prefix_lens {
                    let network = Ipv4Addr::from(u32::from(v4) & v4_mask(len));
                    self.probe(v4_prefix_key(len, network), &mut found);
                }
            }
            let v6 = match addr {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            for &len in &self.v6_prefix_lens {
                let network = Ipv6Addr::from(u128::from(v6) & v6_mask(len));
                self.probe(v6_prefix_key(len, network), &mut found);
            }
        }
        // Regexes last, the dearest: sets are in rule order, so once one starts after the best
        // candidate so far, none after it can win.
        for set in &self.regex_sets {
            if set.rules[0] >= found.best {
                break;
            }
            if set.rules[set.rules.len() - 1] >= from {
                set.offer_matches(name, &mut found);
            }
        }
        (found.best != usize::MAX).then_some(found.best)
    }

    fn probe<F: Fn(usize) -> bool>(&self, key: u64, found: &mut FirstMatch<F>) {
        if let Some(run) = self.keyed.get(&key) {
            found.scan(&self.postings[run.start..run.start + run.len]);
        }
    }
}

/// The search state of `RuleIndex::first`: the lowest accepted rule index so far.
struct FirstMatch<F> {
    best: usize,
    from: usize,
    accept: F,
}

impl<F: Fn(usize) -> bool> FirstMatch<F> {
    /// Candidates in ascending order: the first accepted one is this run's best.
    fn scan(&mut self, ascending: &[usize]) {
        let start = ascending.partition_point(|&index| index < self.from);
        for &index in &ascending[start..] {
            if index >= self.best {
                return;
            }
            if (self.accept)(index) {
                self.best = index;
                return;
            }
        }
    }

    fn offer(&mut self, index: usize) {
        if index >= self.from && index < self.best && (self.accept)(index) {
            self.best = index;
        }
    }
}

/// Several `host_regex` rules in one DFA whose search reports every pattern that matches the
/// whole name (`MatchKind::All`, overlapping search). Like each rule's own DFA it is searched
/// through `&self`, with no cache and no lock.
struct RegexSet {
    automaton: SetAutomaton,
    /// The rule each pattern ID stands for; ascending.
    rules: Vec<usize>,
}

enum SetAutomaton {
    Dense(dense::DFA<Vec<u32>>),
    Sparse(sparse::DFA<Vec<u8>>),
}

impl SetAutomaton {
    fn search_overlapping(
        &self,
        input: &Input<'_>,
        state: &mut OverlappingState,
    ) -> Result<(), MatchError> {
        match self {
            SetAutomaton::Dense(dfa) => dfa.try_search_overlapping_fwd(input, state),
            SetAutomaton::Sparse(dfa) => dfa.try_search_overlapping_fwd(input, state),
        }
    }
}

impl RegexSet {
    /// Compiles `regex_rules` (index, source, size guess; in rule order) into sets in rule
    /// order. Consecutive rules are packed by their guessed sizes up to the budget; a set that
    /// still does not fit is halved; a rule that fits in no set is left to be checked unkeyed.
    fn build_all(
        regex_rules: &[(usize, &str, usize)],
        budget: usize,
        unkeyed: &mut Vec<usize>,
    ) -> Vec<RegexSet> {
        let mut sets = Vec::new();
        let mut run_start = 0;
        let mut run_size = 0;
        for (position, &(_, _, size)) in regex_rules.iter().enumerate() {
            if position > run_start && run_size + size > budget {
                let run = &regex_rules[run_start..position];
                RegexSet::build_split(run, budget, &mut sets, unkeyed);
                run_start = position;
                run_size = 0;
            }
            run_size += size;
        }
        if run_start < regex_rules.len() {
            RegexSet::build_split(&regex_rules[run_start..], budget, &mut sets, unkeyed);
        }
        sets
    }

    fn build_split(
        regex_rules: &[(usize, &str, usize)],
        budget: usize,
        sets: &mut Vec<RegexSet>,
        unkeyed: &mut Vec<usize>,
    ) {
        match RegexSet::build(regex_rules, budget) {
            Some(set) => sets.push(set),
            None if regex_rules.len() == 1 => unkeyed.push(regex_rules[0].0),
            None => {
                let (left, right) = regex_rules.split_at(regex_rules.len() / 2);
                RegexSet::build_split(left, budget, sets, unkeyed);
                RegexSet::build_split(right, budget, sets, unkeyed);
            }
        }
    }

    fn build(regex_rules: &[(usize, &str, usize)], budget: usize) -> Option<RegexSet> {
        let patterns: Vec<String> = regex_rules
            .iter()
            .map(|&(_, source, _)| anchored_regex(source))
            .collect();
        let dfa = dense::Builder::new()
            .syntax(regex_syntax())
            .configure(
                dense::Config::new()
                    .match_kind(MatchKind::All)
                    .start_kind(StartKind::Anchored)
                    .dfa_size_limit(Some(budget))
                    .determinize_size_limit(Some(budget)),
            )
            .build_many(&patterns)
            .ok()?;
        let automaton = if dfa.memory_usage() <= REGEX_SET_DENSE_MAX {
            SetAutomaton::Dense(dfa)
        } else {
            SetAutomaton::Sparse(dfa.to_sparse().ok()?)
        };
        Some(RegexSet {
            automaton,
            rules: regex_rules.iter().map(|&(index, _, _)| index).collect(),
        })
    }

    /// Offers every rule of this set whose regex matches `name`.
    fn offer_matches<F: Fn(usize) -> bool>(&self, name: &str, found: &mut FirstMatch<F>) {
        let input = Input::new(name).anchored(Anchored::Yes);
        let mut state = OverlappingState::start();
        loop {
            if self
                .automaton
                .search_overlapping(&input, &mut state)
                .is_err()
            {
                // Not expected (no quit bytes are configured), but a search that stops early
                // may have missed a rule: check them all, one by one.
                self.rules.iter().for_each(|&index| found.offer(index));
                return;
            }
            match state.get_match() {
                Some(hit) => found.offer(self.rules[hit.pattern().as_usize()]),
                None => return,
            }
        }
    }
}

/// What an index key stands for, mixed into the key so that `a.com` as an exact name and as
/// an apex are different keys.
#[derive(Clone, Copy)]
enum KeyKind {
    Exact = 1,
    Subdomains = 2,
    Domain = 3,
    V4Prefix = 4,
    V6Prefix = 5,
}

/// FNV-1a of `text` read from its last byte to its first, as `RuleIndex::first` walks a name.
fn text_hash(text: &str) -> u64 {
    text.bytes().rev().fold(FNV_OFFSET, fnv_step)
}

/// `text_hash` of what follows the last dot of `text` (all of it without a dot): the first
/// hash `RuleIndex::first`'s walk of a name has when it meets a dot.
fn last_label_hash(text: &str) -> u64 {
    text.bytes()
        .rev()
        .take_while(|&byte| byte != b'.')
        .fold(FNV_OFFSET, fnv_step)
}

/// The index key: `hash` and `kind`, mixed (murmur3's finaliser) so that the map can use the
/// key as its own hash.
fn key(kind: KeyKind, hash: u64) -> u64 {
    let mut x = hash ^ (kind as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    x = (x ^ (x >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn v4_prefix_key(len: u8, network: Ipv4Addr) -> u64 {
    key(
        KeyKind::V4Prefix,
        u64::from(len) << 32 | u64::from(u32::from(network)),
    )
}

fn v6_prefix_key(len: u8, network: Ipv6Addr) -> u64 {
    let bits = u128::from(network);
    let high = key(KeyKind::V6Prefix, (bits >> 64) as u64 ^ u64::from(len));
    key(KeyKind::V6Prefix, high ^ bits as u64)
}

fn v4_mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn v6_mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// The index's keys are already mixed (see `key`): the map takes them as their own hash.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut buf = [0u8; 64];
        for a in [0u8, 1, 9, 10, 99, 100, 199, 200, 255] {
            for b in [0u8, 7, 42, 255] {
                let v4 = std::net::Ipv4Addr::new(a, b, 100 - b % 100, 255 - a);
                assert_eq!(format_ip(IpAddr::V4(v4), &mut buf), v4.to_string());
                // An IPv4-mapped IPv6 address reads as the IPv4 address.
                let mapped = IpAddr::V6(v4.to_ipv6_mapped());
                assert_eq!(format_ip(mapped, &mut buf), v4.to_string());
            }
        }
        for text in [
            "::1",
            "fe80::1",
            "2001:db8::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(format_ip(ip, &mut buf), text);
        }
    }

    fn rule(host: Option<&str>, cidr: Option<&str>, port: Option<&str>, action: Action) -> Rule {
        Rule::new(
            host.map(|h| HostMatch::parse_host(h).unwrap()),
            cidr.map(|c| AddressMatch::Prefix(Cidr::parse(c).unwrap())),
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
    fn regex_rules_match_as_a_full_regex_does() {
        // A rule keeps only a forward DFA; the regex (forward and reverse, searched unanchored,
        // as rules once were) is the reference.
        use regex_automata::dfa::regex::Regex;
        let patterns = [
            "a",
            "a.*",
            r"[ab]+\.b",
            r"(a|b)\.(a|b)",
            ".*b",
            "a?",
            "",
            r"\d+(\.\d+)*",
            r"(?m)^a$",
            r"[^.]+",
            r"\w+\.\w",
            "A1",
            r"(?-i)A1",
            r"a\b.*",
            r"\Ba",
            "b|",
            "^a",
            "a$",
        ];
        // Every name of up to three characters from a small alphabet.
        let mut level = vec![String::new()];
        let mut names = level.clone();
        for _ in 0..3 {
            level = level
                .iter()
                .flat_map(|n| ["a", "b", ".", "1", "A"].map(|c| format!("{n}{c}")))
                .collect();
            names.extend(level.iter().cloned());
        }
        for pattern in patterns {
            let rule = HostMatch::parse_regex(pattern).unwrap();
            let full = Regex::builder()
                .syntax(regex_syntax())
                .build(&anchored_regex(pattern))
                .unwrap();
            for name in &names {
                let expected = full.is_match(Input::new(name));
                assert_eq!(rule.matches(name), expected, "{pattern:?} on {name:?}");
            }
        }
    }

    /// The index's answer for `name` checked against a walk, with any rule set.
    fn assert_index_walks(rules: &[Rule], index: &RuleIndex, names: &[&str]) {
        for &name in names {
            let target = at(Some(name), None, 443);
            let walked = rules.iter().position(|rule| rule.matches(&target));
            let indexed = index.first(name, None, 0, |i| rules[i].matches(&target));
            assert_eq!(indexed, walked, "{name}");
        }
    }

    #[test]
    fn regex_sets_split_to_fit_and_agree_with_a_walk() {
        let rules: Vec<Rule> = (0..40)
            .map(|n| {
                let source = match n % 4 {
                    0 => format!(r"api{n}[0-9]*\.example"),
                    1 => format!(r"[a-z]+-{n}\.(x|y)\.example"),
                    2 => format!(r"(.*\.)?n{n}\.example"),
                    _ => r"[a-z]{1,3}[0-9]a".to_string(),
                };
                let host = HostMatch::parse_regex(&source).unwrap();
                Rule::new(Some(host), None, None, None, Action::Deny)
            })
            .collect();
        let names = [
            "api0.example",
            "api8123.example",
            "ab-13.y.example",
            "q.n38.example",
            "n2.example",
            "ab9a",
            "abcd9a",
            "nothing.example",
            "",
        ];
        let whole = RuleIndex::build(&rules, REGEX_SET_BUDGET);
        assert_eq!((whole.regex_sets.len(), whole.unkeyed.len()), (1, 0));
        assert_index_walks(&rules, &whole, &names);
        let split = RuleIndex::build(&rules, 64 << 10);
        assert!(split.regex_sets.len() > 1, "a small budget splits the set");
        assert!(split
            .regex_sets
            .windows(2)
            .all(|w| w[0].rules[0] < w[1].rules[0]));
        assert_index_walks(&rules, &split, &names);
        let none = RuleIndex::build(&rules, 1);
        assert_eq!((none.regex_sets.len(), none.unkeyed.len()), (0, 40));
        assert_index_walks(&rules, &none, &names);
    }

    #[test]
    fn large_regex_sets_are_kept_sparse() {
        let rules: Vec<Rule> = (0..400)
            .map(|n| {
                let host = HostMatch::parse_regex(&format!(r"[a-z]+-{n}\.(x|y)\.example"));
                Rule::new(Some(host.unwrap()), None, None, None, Action::Deny)
            })
            .collect();
        let index = RuleIndex::build(&rules, REGEX_SET_BUDGET);
        assert!(matches!(
            index.regex_sets[..],
            [RegexSet {
                automaton: SetAutomaton::Sparse(_),
                ..
            }]
        ));
        assert_index_walks(
            &rules,
            &index,
            &["ab-399.x.example", "ab-0.y.example", "b-4.z"],
        );
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

    #[test]
    fn shadowed_finds_what_comparing_every_pair_finds() {
        let hosts = [
            None,
            Some("a.com"),
            Some("x.a.com"),
            Some("*.a.com"),
            Some(".a.com"),
            Some("*.x.a.com"),
            Some(".x.a.com"),
            Some("b.com"),
            Some("xa.com"),
            Some("com"),
            Some(".com"),
        ];
        let cidrs = [
            None,
            Some("10.0.0.0/8"),
            Some("10.1.0.0/16"),
            Some("10.1.2.3"),
            Some("fd00::/8"),
        ];
        let ports = [None, Some("443"), Some("1-1000")];
        // Every combination, in an order that mixes them: each rule meets earlier ones of every
        // kind.
        let mut rules = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            for (j, cidr) in cidrs.iter().enumerate() {
                for (k, port) in ports.iter().enumerate() {
                    if (i + 2 * j + 3 * k) % 4 != 0 {
                        rules.push(rule(*host, *cidr, *port, Action::Deny));
                    }
                }
            }
        }
        rules.rotate_left(37);
        let naive: Vec<(usize, usize)> = rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, rules[..i].iter().position(|e| e.covers(r))?)))
            .collect();
        let table = RuleTable::new(rules, Action::Direct);
        assert!(naive.len() > 20, "{}", naive.len());
        assert_eq!(table.shadowed(), naive);
    }
}
