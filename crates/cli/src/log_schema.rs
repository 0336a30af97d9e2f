//! One line of the security log as the CLI reads it (`report`, and `learn` and `report
//! --suggest` through `suggest`): the fields it uses, from either format the library writes
//! (native or `ecs`, each line by its own keys, so a file whose format changed on a reload reads
//! whole). Does not own the formats: `mcp_redirect_core::log` writes them (and `log::ecs` maps
//! `event.action` back).
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use mcp_redirect_core::log::ecs;
use serde::de::IgnoredAny;
use serde::Deserialize;

/// The fields of a log line the CLI uses, in either format the library writes; others (`pid`,
/// `event.kind`, ...) are skipped. Strings borrow from the line unless they hold escapes (or, for
/// an `ecs` line's `dst`, are rebuilt from two fields).
pub struct LogLine<'a> {
    pub ts: Cow<'a, str>,
    pub event: Cow<'a, str>,
    pub exe: Option<Cow<'a, str>>,
    pub proto: Option<Cow<'a, str>>,
    pub host: Option<Cow<'a, str>>,
    pub port: Option<u16>,
    pub dst: Option<Cow<'a, str>>,
    /// An `ecs` line's `destination.ip` as written (`dst` is rebuilt from it and the port).
    pub destination_ip: Option<Cow<'a, str>>,
    pub rule: Option<Cow<'a, str>>,
    pub action: Option<Cow<'a, str>>,
    pub gateway: Option<Cow<'a, str>>,
    pub endpoint: Option<Cow<'a, str>>,
    /// Whether a fake address was handed out (`answer`, `dns.resolved_ip`).
    pub answer: bool,
    pub result: Option<Cow<'a, str>>,
    pub error: Option<Cow<'a, str>>,
    pub elapsed_us: Option<u64>,
    /// `close` lines: how long the connection lived, its payload each way, how it ended.
    pub duration_ms: Option<u64>,
    pub bytes_sent: Option<u64>,
    pub bytes_received: Option<u64>,
    pub ended: Option<Cow<'a, str>>,
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
    port: Option<u16>,
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
    /// The event, by the names of the line's format.
    fn into_line(mut self) -> Result<LogLine<'a>, ReadError> {
        match self.timestamp.take() {
            Some(ts) => Ok(Self::from_ecs(ts, self)),
            None => Self::from_native(self),
        }
    }

    fn from_native(raw: RawLine<'a>) -> Result<LogLine<'a>, ReadError> {
        let (Some(ts), Some(event)) = (raw.ts, raw.event) else {
            return Err(ReadError::NoEvent);
        };
        Ok(LogLine {
            ts,
            event,
            exe: raw.exe,
            proto: raw.proto,
            host: raw.host,
            port: raw.port,
            dst: raw.dst,
            destination_ip: None,
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
        let dst = raw.destination_ip.as_ref().map(|ip| {
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
            port: raw.destination_port,
            dst,
            destination_ip: raw.destination_ip,
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

impl<'a> LogLine<'a> {
    /// The event on one line (JSON, in either format), borrowing from it.
    pub fn read(line: &'a [u8]) -> Result<LogLine<'a>, ReadError> {
        let raw: RawLine = serde_json::from_slice(line).map_err(ReadError::Json)?;
        raw.into_line()
    }
}

/// Why a line is not a log line.
#[derive(Debug)]
pub enum ReadError {
    /// Not JSON, or not the log's shape (a key of the wrong type).
    Json(serde_json::Error),
    /// Neither format's keys for when and what.
    NoEvent,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Json(e) => e.fmt(f),
            ReadError::NoEvent => {
                f.write_str("neither `ts` and `event` (native) nor `@timestamp` (ecs)")
            }
        }
    }
}
