//! One log line into a typed event: the fields the report uses, read from either format the
//! library writes (native or `ecs`, each line by its own keys, so a file whose format changed
//! on a reload reads whole), or why the line is malformed. Does not own the formats:
//! `mcp_redirect_core::log` writes them (and `log::ecs` maps `event.action` back).
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use mcp_redirect_core::log::ecs;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::bounded;
use super::lines::{LineEnd, MAX_LINE};
use super::time::parse_rfc3339;

/// The fields of a log line the report uses, in either format the library writes; others
/// (`pid`, `port`, `event.kind`, ...) are skipped. Strings borrow from the line unless they hold
/// escapes (or, for an `ecs` line's `dst`, are rebuilt from two fields).
pub(super) struct LogLine<'a> {
    ts: Cow<'a, str>,
    pub(super) event: Cow<'a, str>,
    pub(super) exe: Option<Cow<'a, str>>,
    pub(super) proto: Option<Cow<'a, str>>,
    pub(super) host: Option<Cow<'a, str>>,
    pub(super) dst: Option<Cow<'a, str>>,
    pub(super) rule: Option<Cow<'a, str>>,
    pub(super) action: Option<Cow<'a, str>>,
    pub(super) gateway: Option<Cow<'a, str>>,
    pub(super) endpoint: Option<Cow<'a, str>>,
    /// Whether a fake address was handed out (`answer`, `dns.resolved_ip`).
    pub(super) answer: bool,
    pub(super) result: Option<Cow<'a, str>>,
    pub(super) error: Option<Cow<'a, str>>,
    pub(super) elapsed_us: Option<u64>,
    /// `close` lines: how long the connection lived, its payload each way, how it ended.
    pub(super) duration_ms: Option<u64>,
    pub(super) bytes_sent: Option<u64>,
    pub(super) bytes_received: Option<u64>,
    pub(super) ended: Option<Cow<'a, str>>,
}

/// A line as serde reads it: the native keys and the `ecs` ones side by side. A line with
/// `@timestamp` is read by the `ecs` names, any other by the native ones, so each line may be
/// in either format (a reload can change it in the middle of a file).
#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(borrow)]
    ts: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    exe: Option<Cow<'a, str>>,
    #[serde(borrow)]
    proto: Option<Cow<'a, str>>,
    #[serde(borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dst: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rule: Option<RuleField<'a>>,
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    gateway: Option<Cow<'a, str>>,
    #[serde(borrow)]
    endpoint: Option<Cow<'a, str>>,
    answer: Option<IgnoredAny>,
    #[serde(borrow)]
    result: Option<Cow<'a, str>>,
    #[serde(borrow)]
    error: Option<Cow<'a, str>>,
    elapsed_us: Option<u64>,
    duration_ms: Option<u64>,
    bytes_sent: Option<u64>,
    bytes_received: Option<u64>,
    #[serde(borrow)]
    ended: Option<Cow<'a, str>>,

    #[serde(borrow, rename = "@timestamp")]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "event.action")]
    event_action: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "process.name")]
    process_name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "network.transport")]
    network_transport: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "destination.domain")]
    destination_domain: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "dns.question.name")]
    dns_question_name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "destination.ip")]
    destination_ip: Option<Cow<'a, str>>,
    #[serde(rename = "destination.port")]
    destination_port: Option<u16>,
    #[serde(borrow, rename = "rule.name")]
    rule_name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "mcp_redirect.gateway.name")]
    gateway_name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "mcp_redirect.gateway.endpoint")]
    gateway_endpoint: Option<Cow<'a, str>>,
    #[serde(rename = "dns.resolved_ip")]
    dns_resolved_ip: Option<IgnoredAny>,
    #[serde(borrow, rename = "error.code")]
    error_code: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "error.message")]
    error_message: Option<Cow<'a, str>>,
    /// Nanoseconds, as ECS has it.
    #[serde(rename = "event.duration")]
    event_duration: Option<u64>,
    #[serde(rename = "source.bytes")]
    source_bytes: Option<u64>,
    #[serde(rename = "destination.bytes")]
    destination_bytes: Option<u64>,
    #[serde(borrow, rename = "mcp_redirect.ended")]
    mcp_redirect_ended: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RuleField<'a> {
    #[serde(borrow)]
    pattern: Cow<'a, str>,
}

impl<'a> RawLine<'a> {
    /// The event, by the names of the line's format; the error names a missing required key.
    fn into_line(mut self) -> Result<LogLine<'a>, String> {
        match self.timestamp.take() {
            Some(ts) => Ok(Self::from_ecs(ts, self)),
            None => Self::from_native(self),
        }
    }

    fn from_native(raw: RawLine<'a>) -> Result<LogLine<'a>, String> {
        let (Some(ts), Some(event)) = (raw.ts, raw.event) else {
            return Err("neither `ts` and `event` (native) nor `@timestamp` (ecs)".to_string());
        };
        Ok(LogLine {
            ts,
            event,
            exe: raw.exe,
            proto: raw.proto,
            host: raw.host,
            dst: raw.dst,
            rule: raw.rule.map(|r| r.pattern),
            action: raw.action,
            gateway: raw.gateway,
            endpoint: raw.endpoint,
            answer: raw.answer.is_some(),
            result: raw.result,
            error: raw.error,
            elapsed_us: raw.elapsed_us,
            duration_ms: raw.duration_ms,
            bytes_sent: raw.bytes_sent,
            bytes_received: raw.bytes_received,
            ended: raw.ended,
        })
    }

    /// `event.action` back to the native `event` and `action` (`connect-redirected` is a
    /// `connect` through a `gateway`); `error.code` is the result, and its absence `ok`.
    fn from_ecs(ts: Cow<'a, str>, raw: RawLine<'a>) -> LogLine<'a> {
        let ecs_action = raw.event_action.unwrap_or_default();
        let (event, action) = match ecs::native_event(&ecs_action) {
            Some((event, action)) => (Cow::Borrowed(event), action.map(Cow::Borrowed)),
            None => (ecs_action, None),
        };
        let dst = raw.destination_ip.map(|ip| {
            let port = raw.destination_port.unwrap_or(0);
            match ip.parse::<IpAddr>() {
                Ok(ip) => Cow::Owned(SocketAddr::new(ip, port).to_string()),
                Err(_) => Cow::Owned(format!("{ip}:{port}")),
            }
        });
        // `event.duration` is a connect's time to connect, or a closed connection's life.
        let (elapsed_us, duration_ms) = match (&*event, raw.event_duration) {
            ("close", ns) => (None, ns.map(|ns| ns / 1_000_000)),
            (_, ns) => (ns.map(|ns| ns / 1000), None),
        };
        LogLine {
            ts,
            event,
            exe: raw.process_name,
            proto: raw.network_transport,
            host: raw.destination_domain.or(raw.dns_question_name),
            dst,
            rule: raw.rule_name,
            action,
            gateway: raw.gateway_name,
            endpoint: raw.gateway_endpoint,
            answer: raw.dns_resolved_ip.is_some(),
            result: Some(raw.error_code.unwrap_or(Cow::Borrowed("ok"))),
            error: raw.error_message,
            elapsed_us,
            duration_ms,
            bytes_sent: raw.source_bytes,
            bytes_received: raw.destination_bytes,
            ended: raw.mcp_redirect_ended,
        }
    }
}

/// Why a line was not counted.
pub(super) enum Flaw {
    /// The file's last line, without a newline, cut off mid-object.
    Truncated,
    TooLong,
    Empty,
    /// Not JSON, or not the log's shape (serde's words).
    Invalid(String),
    BadTime(String),
}

impl fmt::Display for Flaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flaw::Truncated => f.write_str("truncated last line"),
            Flaw::TooLong => write!(f, "longer than {} MiB", MAX_LINE >> 20),
            Flaw::Empty => f.write_str("empty line"),
            Flaw::Invalid(reason) => f.write_str(reason),
            Flaw::BadTime(ts) => write!(f, "ts {ts:?} is not an RFC 3339 time"),
        }
    }
}

/// The event on one line and its time in microseconds since the epoch, or what is wrong with it.
pub(super) fn parse_line(line: &[u8], end: LineEnd) -> Result<(LogLine<'_>, i64), Flaw> {
    if end == LineEnd::TooLong {
        return Err(Flaw::TooLong);
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(Flaw::Empty);
    }
    let raw: RawLine = serde_json::from_slice(line).map_err(|e| {
        use serde_json::error::Category;
        // serde's text ends in " at line 1 column N": the line is ours to name, the column is kept.
        let text = e.to_string();
        let text = text.split(" at line ").next().unwrap_or_default();
        match e.classify() {
            Category::Eof if end == LineEnd::EndOfInput => Flaw::Truncated,
            Category::Eof => Flaw::Invalid(format!("cut short ({text})")),
            Category::Syntax => Flaw::Invalid(format!("not JSON: {text} (column {})", e.column())),
            Category::Data | Category::Io => Flaw::Invalid(text.to_string()),
        }
    })?;
    let event = raw.into_line().map_err(Flaw::Invalid)?;
    match parse_rfc3339(&event.ts) {
        Ok(ts) => Ok((event, ts)),
        Err(_) => Err(Flaw::BadTime(bounded(&event.ts, 64).to_string())),
    }
}
