//! What the report counts, one event at a time in fixed memory: connections by action and
//! outcome, connect times, gateways, hosts, processes, denials, results other than ok, traffic
//! from `close` lines, lookups and config errors. Does not read lines (`log_line`) or print
//! (`text`, `json`).
#![forbid(unsafe_code)]

use std::fmt::Write as _;

use super::histogram::Histogram;
use super::log_line::{Flaw, LogLine};
use super::top_k::TopK;
use super::{bounded, MAX_KEY};

/// Malformed lines listed by position; the rest are only counted.
const MALFORMED_LISTED: usize = 20;
/// Counters per top-k table: enough to be exact for any ordinary log.
const HOST_COUNTERS: usize = 4096;
const PROCESS_COUNTERS: usize = 1024;
const GATEWAY_COUNTERS: usize = 1024;
const RULE_COUNTERS: usize = 1024;
const RESULT_COUNTERS: usize = 256;
const CONFIG_TEXT_COUNTERS: usize = 32;
/// Rows shown per table.
pub(super) const HOSTS_SHOWN: usize = 10;
pub(super) const ROWS_SHOWN: usize = 20;

/// The `action` of a connect, as the report groups it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Direct,
    Gateway,
    Deny,
    /// Absent, or a name this version does not know.
    Other,
}

impl Action {
    pub(super) const ALL: [Action; 4] =
        [Action::Direct, Action::Gateway, Action::Deny, Action::Other];

    fn of(name: Option<&str>) -> Action {
        match name {
            Some("direct") => Action::Direct,
            Some("gateway") => Action::Gateway,
            Some("deny") => Action::Deny,
            _ => Action::Other,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Action::Direct => "direct",
            Action::Gateway => "gateway",
            Action::Deny => "deny",
            Action::Other => "other",
        }
    }
}

/// What a connect's `result` means for the counts. `EINPROGRESS` is a non-blocking connect
/// under way, not an error: its outcome is the program's to see.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    InProgress,
    NotOk,
}

impl Outcome {
    fn of(result: Option<&str>) -> Outcome {
        match result {
            Some("ok") => Outcome::Ok,
            Some("EINPROGRESS") => Outcome::InProgress,
            _ => Outcome::NotOk,
        }
    }
}

/// Connects with one action.
#[derive(Default)]
pub(super) struct ActionStats {
    pub(super) connects: u64,
    pub(super) ok: u64,
    pub(super) in_progress: u64,
    pub(super) not_ok: u64,
    pub(super) elapsed: Histogram,
}

#[derive(Default)]
pub(super) struct HostDetail {
    pub(super) direct: u64,
    pub(super) gateway: u64,
    pub(super) deny: u64,
    pub(super) failed: u64,
}

/// "Failed" everywhere it is a column: a result other than ok or EINPROGRESS that was not a
/// denial (denials have their own column).
#[derive(Default)]
pub(super) struct ProcessDetail {
    pub(super) denied: u64,
    pub(super) failed: u64,
}

#[derive(Default)]
pub(super) struct GatewayDetail {
    pub(super) ok: u64,
    pub(super) in_progress: u64,
    pub(super) failed: u64,
}

#[derive(Default)]
pub(super) struct ResultDetail {
    pub(super) connect: u64,
    pub(super) resolve: u64,
}

/// Resolve events: failed (a result other than ok), else a fake answer handed out, else a real
/// lookup.
#[derive(Default)]
pub(super) struct Resolves {
    pub(super) total: u64,
    pub(super) fake: u64,
    pub(super) real: u64,
    pub(super) failed: u64,
}

/// Closed connections of one host, gateway or process (their table ranks by bytes sent).
#[derive(Default)]
pub(super) struct Traffic {
    pub(super) closes: u64,
    pub(super) received: u64,
}

/// One of the longest connections.
pub(super) struct Long {
    pub(super) duration_ms: u64,
    pub(super) host: String,
    pub(super) exe: String,
    pub(super) sent: u64,
    pub(super) received: u64,
    pub(super) ts: i64,
}

/// What `close` lines say, all together.
#[derive(Default)]
pub(super) struct Closes {
    pub(super) total: u64,
    pub(super) sent: u64,
    pub(super) received: u64,
    /// The longest connections, longest first (at most `ROWS_SHOWN`).
    pub(super) longest: Vec<Long>,
}

impl Closes {
    fn longest(&mut self, long: Long) {
        if self.longest.len() == ROWS_SHOWN
            && self
                .longest
                .last()
                .is_some_and(|l| l.duration_ms >= long.duration_ms)
        {
            return;
        }
        let at = self
            .longest
            .partition_point(|l| l.duration_ms >= long.duration_ms);
        self.longest.insert(at, long);
        self.longest.truncate(ROWS_SHOWN);
    }
}

/// Every malformed line is counted; the first few are kept with their position.
#[derive(Default)]
pub(super) struct Malformed {
    pub(super) count: u64,
    pub(super) truncated: u64,
    /// (source index, line number, why)
    pub(super) listed: Vec<(usize, u64, Flaw)>,
}

impl Malformed {
    pub(super) fn add(&mut self, source: usize, line: u64, flaw: Flaw) {
        self.count += 1;
        if matches!(flaw, Flaw::Truncated) {
            self.truncated += 1;
        }
        if self.listed.len() < MALFORMED_LISTED {
            self.listed.push((source, line, flaw));
        }
    }
}

/// Everything the report says, built one event at a time in fixed memory.
pub(super) struct Summary {
    /// Input names for `file:line` positions (`<stdin>` for standard input).
    pub(super) sources: Vec<String>,
    pub(super) since: Option<i64>,
    pub(super) lines: u64,
    pub(super) skipped_before_since: u64,
    /// Events counted (after `--since`).
    pub(super) events: u64,
    pub(super) first_ts: Option<i64>,
    pub(super) last_ts: Option<i64>,
    pub(super) malformed: Malformed,

    pub(super) connects: u64,
    pub(super) tcp: u64,
    pub(super) udp: u64,
    pub(super) by_action: [ActionStats; 4],
    pub(super) elapsed: Histogram,
    pub(super) gateways: TopK<GatewayDetail>,
    pub(super) hosts: TopK<HostDetail>,
    pub(super) processes: TopK<ProcessDetail>,
    pub(super) denials: u64,
    pub(super) deny_rules: TopK<()>,
    pub(super) denied_hosts: TopK<()>,
    /// Results other than ok and EINPROGRESS, of connects and resolves.
    pub(super) results: TopK<ResultDetail>,
    pub(super) in_progress: u64,

    pub(super) closes: Closes,
    /// Bytes sent (the rank) and received, per host, gateway and process.
    pub(super) host_bytes: TopK<Traffic>,
    pub(super) gateway_bytes: TopK<Traffic>,
    pub(super) process_bytes: TopK<Traffic>,
    pub(super) endings: TopK<()>,

    pub(super) resolves: Resolves,
    pub(super) config_errors: u64,
    pub(super) config_texts: TopK<()>,
    /// Events of a kind this version does not know.
    pub(super) other_events: u64,

    /// Reused to build two-part keys without an allocation per event.
    key: String,
}

impl Summary {
    pub(super) fn new(sources: Vec<String>, since: Option<i64>) -> Summary {
        Summary {
            sources,
            since,
            lines: 0,
            skipped_before_since: 0,
            events: 0,
            first_ts: None,
            last_ts: None,
            malformed: Malformed::default(),
            connects: 0,
            tcp: 0,
            udp: 0,
            by_action: Default::default(),
            elapsed: Histogram::default(),
            gateways: TopK::new(GATEWAY_COUNTERS),
            hosts: TopK::new(HOST_COUNTERS),
            processes: TopK::new(PROCESS_COUNTERS),
            denials: 0,
            deny_rules: TopK::new(RULE_COUNTERS),
            denied_hosts: TopK::new(HOST_COUNTERS),
            results: TopK::new(RESULT_COUNTERS),
            in_progress: 0,
            closes: Closes::default(),
            host_bytes: TopK::new(HOST_COUNTERS),
            gateway_bytes: TopK::new(GATEWAY_COUNTERS),
            process_bytes: TopK::new(PROCESS_COUNTERS),
            endings: TopK::new(RESULT_COUNTERS),
            resolves: Resolves::default(),
            config_errors: 0,
            config_texts: TopK::new(CONFIG_TEXT_COUNTERS),
            other_events: 0,
            key: String::new(),
        }
    }

    /// Counts one event that passed `--since`.
    pub(super) fn add(&mut self, event: &LogLine<'_>, ts: i64) {
        self.events += 1;
        self.first_ts = Some(self.first_ts.map_or(ts, |t| t.min(ts)));
        self.last_ts = Some(self.last_ts.map_or(ts, |t| t.max(ts)));
        match &*event.event {
            "connect" => self.add_connect(event),
            "close" => self.add_close(event, ts),
            "resolve" => self.add_resolve(event),
            "config_error" => {
                self.config_errors += 1;
                self.config_texts
                    .add(event.error.as_deref().unwrap_or("(no text)"));
            }
            _ => self.other_events += 1,
        }
    }

    fn add_connect(&mut self, event: &LogLine<'_>) {
        let action = Action::of(event.action.as_deref());
        let outcome = Outcome::of(event.result.as_deref());
        let failed = outcome == Outcome::NotOk && action != Action::Deny;
        self.connects += 1;
        match event.proto.as_deref() {
            Some("tcp") => self.tcp += 1,
            Some("udp") => self.udp += 1,
            _ => {}
        }

        let stats = &mut self.by_action[action as usize];
        stats.connects += 1;
        match outcome {
            Outcome::Ok => stats.ok += 1,
            Outcome::InProgress => stats.in_progress += 1,
            Outcome::NotOk => stats.not_ok += 1,
        }
        if let Some(us) = event.elapsed_us {
            stats.elapsed.record(us);
            self.elapsed.record(us);
        }
        match outcome {
            Outcome::Ok => {}
            Outcome::InProgress => self.in_progress += 1,
            Outcome::NotOk => {
                self.results
                    .add(event.result.as_deref().unwrap_or("(none)"))
                    .connect += 1
            }
        }

        let host = host_of(event);
        let host_detail = self.hosts.add(host);
        match action {
            Action::Direct => host_detail.direct += 1,
            Action::Gateway => host_detail.gateway += 1,
            Action::Deny => host_detail.deny += 1,
            Action::Other => {}
        }
        host_detail.failed += u64::from(failed);

        let process = self
            .processes
            .add(event.exe.as_deref().unwrap_or("(unknown)"));
        process.denied += u64::from(action == Action::Deny);
        process.failed += u64::from(failed);

        if action == Action::Gateway {
            let gateway = event.gateway.as_deref().unwrap_or("(none)");
            let endpoint = event.endpoint.as_deref().unwrap_or("(none)");
            let detail = self
                .gateways
                .add(pair_key(&mut self.key, gateway, endpoint));
            match outcome {
                Outcome::Ok => detail.ok += 1,
                Outcome::InProgress => detail.in_progress += 1,
                Outcome::NotOk => detail.failed += 1,
            }
        }

        if action == Action::Deny {
            self.denials += 1;
            let pattern = event.rule.as_deref().unwrap_or("(no rule)");
            self.deny_rules.add(pattern);
            self.denied_hosts
                .add(pair_key(&mut self.key, host, pattern));
        }
    }

    fn add_close(&mut self, event: &LogLine<'_>, ts: i64) {
        let sent = event.bytes_sent.unwrap_or(0);
        let received = event.bytes_received.unwrap_or(0);
        let c = &mut self.closes;
        c.total += 1;
        c.sent = c.sent.saturating_add(sent);
        c.received = c.received.saturating_add(received);
        let host = host_of(event);
        let exe = event.exe.as_deref().unwrap_or("(unknown)");
        if let Some(duration_ms) = event.duration_ms {
            c.longest(Long {
                duration_ms,
                host: bounded(host, MAX_KEY).to_string(),
                exe: bounded(exe, MAX_KEY).to_string(),
                sent,
                received,
                ts,
            });
        }
        let mut tables = vec![(&mut self.host_bytes, host), (&mut self.process_bytes, exe)];
        if let Some(gateway) = event.gateway.as_deref() {
            tables.push((&mut self.gateway_bytes, gateway));
        }
        for (table, key) in tables {
            let traffic = table.add_weighted(key, sent);
            traffic.closes += 1;
            traffic.received = traffic.received.saturating_add(received);
        }
        self.endings
            .add(event.ended.as_deref().unwrap_or("(not said)"));
    }

    fn add_resolve(&mut self, event: &LogLine<'_>) {
        self.resolves.total += 1;
        let ok = event.result.as_deref() == Some("ok");
        if !ok {
            self.resolves.failed += 1;
        } else if event.answer {
            self.resolves.fake += 1;
        } else {
            self.resolves.real += 1;
        }
        if !ok {
            self.results
                .add(event.result.as_deref().unwrap_or("(none)"))
                .resolve += 1;
        }
    }
}

/// The host a line is about; direct connects to an address have no hostname, and the address
/// stands in for it.
fn host_of<'e>(event: &'e LogLine<'_>) -> &'e str {
    event.host.as_deref().unwrap_or_else(|| {
        event.dst.as_deref().map_or("(unknown)", |dst| {
            dst.rsplit_once(':').map_or(dst, |(address, _port)| address)
        })
    })
}

/// Two strings as one key, `"<len of first>:<first><second>"`: unambiguous whatever they hold.
fn pair_key<'k>(key: &'k mut String, first: &str, second: &str) -> &'k str {
    let (first, second) = (bounded(first, MAX_KEY / 2), bounded(second, MAX_KEY / 2));
    key.clear();
    let _ = write!(key, "{}:{first}{second}", first.len());
    key
}

/// The two strings of a `pair_key`.
pub(super) fn split_pair(key: &str) -> (&str, &str) {
    let Some((length, rest)) = key.split_once(':') else {
        return (key, "");
    };
    match length.parse::<usize>() {
        Ok(n) if rest.is_char_boundary(n) => rest.split_at(n),
        _ => (key, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_keys_split_back() {
        let mut key = String::new();
        for (a, b) in [("x", "y"), ("", "1:2"), ("a:b", ""), ("é", "ü")] {
            assert_eq!(split_pair(pair_key(&mut key, a, b)), (a, b));
        }
    }
}
