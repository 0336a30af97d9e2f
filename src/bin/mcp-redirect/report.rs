//! `mcp-redirect report`: summarise JSON-lines security logs (files, or stdin) in one pass.
//!
//! Logs grow without bound, so the report reads them line by line into one reused buffer and
//! keeps only fixed-size state: counters, log-scale histograms for connect times, and
//! Space-Saving top-k tables for hosts, processes, gateways, denials and results (and, from
//! `close` lines, bytes per host, gateway and process, and the longest connections). A table is
//! exact until it meets more distinct keys than it has counters; from then on it is approximate
//! and the report says so. A 1 GB log takes the same memory as a 1 MB one.
//!
//! Owns: reading and checking log lines, summarising them, and printing the summary (aligned
//! text, or one JSON object). Reads both line formats, native and `ecs`, each line by its own
//! keys, so a file whose format changed on a reload reads whole. Does not own the formats:
//! `mcp_redirect::log` writes them (and `log::ecs` maps `event.action` back).
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use mcp_redirect::errno::errno_text;
use mcp_redirect::log::{ecs, rfc3339_micros};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Log files to read (`-` or none: standard input)
    pub logs: Vec<PathBuf>,
    /// Only events at or after this time (RFC 3339, e.g. 2026-11-27T00:00:00Z)
    #[arg(long)]
    pub since: Option<String>,
    /// Print the summary as one JSON object
    #[arg(long)]
    pub json: bool,
    /// Print instead the [[rules]] that would let through what the logs show denied (grouped by
    /// registrable domain), for a config
    #[arg(long, conflicts_with_all = ["json", "since"])]
    pub suggest: bool,
}

/// Malformed lines listed by position; the rest are only counted.
const MALFORMED_LISTED: usize = 20;
/// A longer line is malformed (the library writes a few hundred bytes); its excess is skipped
/// without being kept, so one runaway line cannot take the memory.
const MAX_LINE: usize = 1 << 20;
/// Keys are cut to this many bytes, so a hostile log cannot make a counter large. Hostnames
/// (253) and executable names (255) fit whole.
const MAX_KEY: usize = 512;
/// Counters per top-k table: enough to be exact for any ordinary log.
const HOST_COUNTERS: usize = 4096;
const PROCESS_COUNTERS: usize = 1024;
const GATEWAY_COUNTERS: usize = 1024;
const RULE_COUNTERS: usize = 1024;
const RESULT_COUNTERS: usize = 256;
const CONFIG_TEXT_COUNTERS: usize = 32;
/// Rows shown per table.
const HOSTS_SHOWN: usize = 10;
const ROWS_SHOWN: usize = 20;
/// The name used for standard input in `file:line` positions.
const STDIN_NAME: &str = "<stdin>";

/// Runs the subcommand; returns the exit code: 0 every line parsed, 1 some were malformed,
/// 2 a usage error or a file that could not be read.
pub fn report(args: ReportArgs) -> u8 {
    if args.suggest {
        return suggest(&args.logs);
    }
    let since = match args.since.as_deref() {
        None => None,
        Some(text) => match parse_rfc3339(text) {
            Some(us) => Some(us),
            None => {
                crate::complain(format!(
                    "report: --since {text:?} is not an RFC 3339 time \
                     (such as 2026-11-27T00:00:00Z or 2026-11-27T08:00:00.5+02:00)"
                ));
                return 2;
            }
        },
    };
    let sources: Vec<Option<&Path>> = if args.logs.is_empty() {
        vec![None]
    } else {
        let stdin = Path::new("-");
        args.logs
            .iter()
            .map(|p| (p != stdin).then_some(p.as_path()))
            .collect()
    };
    // Check every file before reading any, so a mistyped name fails at once, not after a long read.
    let mut unreadable = false;
    for path in sources.iter().flatten() {
        if let Err(e) = check_readable(path) {
            crate::complain(format!("report: cannot read {}: {e}", path.display()));
            unreadable = true;
        }
    }
    if unreadable {
        return 2;
    }

    let names = sources
        .iter()
        .map(|s| s.map_or(STDIN_NAME.to_string(), |p| p.display().to_string()))
        .collect();
    let mut summary = Summary::new(names, since);
    let read_failed = !summarise_all(&sources, &mut summary);

    let output = if args.json {
        let mut text = serde_json::to_string_pretty(&render_json(&summary))
            .expect("a JSON value always serialises");
        text.push('\n');
        text
    } else {
        let mut text = String::new();
        render_text(&summary, &mut text).expect("writing to a String cannot fail");
        text
    };
    if !print(&output) {
        return 2;
    }

    if read_failed {
        2
    } else if let Some((source, line, _)) = summary.malformed.listed.first() {
        crate::complain(format!(
            "report: {} malformed line(s), the first at {}:{line}",
            summary.malformed.count, summary.sources[*source]
        ));
        1
    } else {
        0
    }
}

/// Reads every source into `summary`, in order (`None`: standard input). False if one could not
/// be read to its end (said on stderr); the others are still read.
fn summarise_all(sources: &[Option<&Path>], summary: &mut Summary) -> bool {
    let mut all_read = true;
    for (source, path) in sources.iter().enumerate() {
        let result = match path {
            None => summarise_stream(&mut io::stdin().lock(), source, summary),
            Some(path) => File::open(path).and_then(|file| {
                summarise_stream(
                    &mut BufReader::with_capacity(1 << 16, file),
                    source,
                    summary,
                )
            }),
        };
        if let Err(e) = result {
            let name = &summary.sources[source];
            crate::complain(format!("report: cannot read {name}: {}", errno_text(&e)));
            all_read = false;
        }
    }
    all_read
}

/// Writes the report to stdout; false (said on stderr) if it could not be written.
fn print(output: &str) -> bool {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => true,
        // A reader that stopped early (`| head`) wanted no more.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => true,
        Err(e) => {
            crate::complain(format!(
                "report: cannot write the report: {}",
                errno_text(&e)
            ));
            false
        }
    }
}

/// Fails for a file that cannot be opened, or a directory (which opens, then fails to read).
fn check_readable(path: &Path) -> io::Result<()> {
    if std::fs::metadata(path).map_err(plain)?.is_dir() {
        return Err(io::Error::other("is a directory"));
    }
    File::open(path).map(drop).map_err(plain)
}

/// An I/O error whose text is a sentence without Rust's " (os error N)".
fn plain(error: io::Error) -> io::Error {
    io::Error::new(error.kind(), errno_text(&error))
}

// ---------------------------------------------------------------------------------------------
// Reading lines

/// How a line ended. The last line of a file may lack its newline: a writer mid-append, or a
/// crash.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LineEnd {
    Newline,
    EndOfInput,
    TooLong,
}

/// Feeds every line of `reader` to `summary`, counting positions for `source`.
fn summarise_stream(
    reader: &mut impl BufRead,
    source: usize,
    summary: &mut Summary,
) -> io::Result<()> {
    let mut line = Vec::with_capacity(4096);
    let mut line_number = 0u64;
    while let Some(end) = next_line(reader, &mut line)? {
        line_number += 1;
        summary.lines += 1;
        match parse_line(&line, end) {
            Ok((event, ts)) => {
                if summary.since.is_some_and(|since| ts < since) {
                    summary.skipped_before_since += 1;
                } else {
                    summary.add(&event, ts);
                }
            }
            Err(flaw) => summary.malformed.add(source, line_number, flaw),
        }
    }
    Ok(())
}

/// Reads one line into `line` (newline stripped), never letting it grow past `MAX_LINE`.
/// `None` at the end of input.
fn next_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<Option<LineEnd>> {
    line.clear();
    let read = reader
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Some(LineEnd::Newline));
    }
    if line.len() <= MAX_LINE {
        return Ok(Some(LineEnd::EndOfInput));
    }
    skip_past_newline(reader)?;
    Ok(Some(LineEnd::TooLong))
}

/// Drops input up to and including the next newline, a buffer at a time.
fn skip_past_newline(reader: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let all = buffer.len();
                reader.consume(all);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing lines

/// The fields of a log line the report uses, in either format the library writes; others
/// (`pid`, `port`, `event.kind`, ...) are skipped. Strings borrow from the line unless they hold
/// escapes (or, for an `ecs` line's `dst`, are rebuilt from two fields).
struct LogLine<'a> {
    ts: Cow<'a, str>,
    event: Cow<'a, str>,
    exe: Option<Cow<'a, str>>,
    proto: Option<Cow<'a, str>>,
    host: Option<Cow<'a, str>>,
    dst: Option<Cow<'a, str>>,
    rule: Option<Cow<'a, str>>,
    action: Option<Cow<'a, str>>,
    gateway: Option<Cow<'a, str>>,
    endpoint: Option<Cow<'a, str>>,
    /// Whether a fake address was handed out (`answer`, `dns.resolved_ip`).
    answer: bool,
    result: Option<Cow<'a, str>>,
    error: Option<Cow<'a, str>>,
    elapsed_us: Option<u64>,
    /// `close` lines: how long the connection lived, its payload each way, how it ended.
    duration_ms: Option<u64>,
    bytes_sent: Option<u64>,
    bytes_received: Option<u64>,
    ended: Option<Cow<'a, str>>,
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
enum Flaw {
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
fn parse_line(line: &[u8], end: LineEnd) -> Result<(LogLine<'_>, i64), Flaw> {
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
        Some(ts) => Ok((event, ts)),
        None => Err(Flaw::BadTime(bounded(&event.ts, 64).to_string())),
    }
}

/// Microseconds since the Unix epoch for an RFC 3339 date-time (`2026-11-27T06:02:41.123456Z`,
/// `2026-11-27T08:02:41+02:00`), or `None`. Digits past microseconds are dropped; a leap second
/// (`:60`) counts as the next second's start.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<i64> {
        b.get(from..to)?.iter().try_fold(0i64, |value, &digit| {
            digit
                .is_ascii_digit()
                .then(|| value * 10 + i64::from(digit - b'0'))
        })
    };
    let separators_ok = b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && b.get(13) == Some(&b':')
        && b.get(16) == Some(&b':');
    if !separators_ok {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut micros = 0;
    let mut rest = 19;
    if b.get(19) == Some(&b'.') {
        let digits = b[20..].iter().take_while(|d| d.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for place in 0..6 {
            let digit = if place < digits {
                b[20 + place] - b'0'
            } else {
                0
            };
            micros = micros * 10 + i64::from(digit);
        }
        rest = 20 + digits;
    }
    let offset_seconds = match &b[rest..] {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (number(rest + 1, rest + 3)?, number(rest + 4, rest + 6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'+' {
                seconds
            } else {
                -seconds
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_seconds;
    Some(seconds * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's days-from-civil; the inverse of the log's writer).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A time for the report: the log's own format.
fn format_time(us: i64) -> String {
    rfc3339_micros(us.max(0) as u64)
}

/// The longest prefix of `text` of at most `limit` bytes that ends on a character boundary.
fn bounded(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

// ---------------------------------------------------------------------------------------------
// Summarising

/// The `action` of a connect, as the report groups it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Direct,
    Gateway,
    Deny,
    /// Absent, or a name this version does not know.
    Other,
}

impl Action {
    const ALL: [Action; 4] = [Action::Direct, Action::Gateway, Action::Deny, Action::Other];

    fn of(name: Option<&str>) -> Action {
        match name {
            Some("direct") => Action::Direct,
            Some("gateway") => Action::Gateway,
            Some("deny") => Action::Deny,
            _ => Action::Other,
        }
    }

    fn name(self) -> &'static str {
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
struct ActionStats {
    connects: u64,
    ok: u64,
    in_progress: u64,
    not_ok: u64,
    elapsed: Histogram,
}

#[derive(Default)]
struct HostDetail {
    direct: u64,
    gateway: u64,
    deny: u64,
    failed: u64,
}

/// "Failed" everywhere it is a column: a result other than ok or EINPROGRESS that was not a
/// denial (denials have their own column).
#[derive(Default)]
struct ProcessDetail {
    denied: u64,
    failed: u64,
}

#[derive(Default)]
struct GatewayDetail {
    ok: u64,
    in_progress: u64,
    failed: u64,
}

#[derive(Default)]
struct ResultDetail {
    connect: u64,
    resolve: u64,
}

/// Resolve events: failed (a result other than ok), else a fake answer handed out, else a real
/// lookup.
#[derive(Default)]
struct Resolves {
    total: u64,
    fake: u64,
    real: u64,
    failed: u64,
}

/// Closed connections of one host, gateway or process (their table ranks by bytes sent).
#[derive(Default)]
struct Traffic {
    closes: u64,
    received: u64,
}

/// One of the longest connections.
struct Long {
    duration_ms: u64,
    host: String,
    exe: String,
    sent: u64,
    received: u64,
    ts: i64,
}

/// What `close` lines say, all together.
#[derive(Default)]
struct Closes {
    total: u64,
    sent: u64,
    received: u64,
    /// The longest connections, longest first (at most `ROWS_SHOWN`).
    longest: Vec<Long>,
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
struct Malformed {
    count: u64,
    truncated: u64,
    /// (source index, line number, why)
    listed: Vec<(usize, u64, Flaw)>,
}

impl Malformed {
    fn add(&mut self, source: usize, line: u64, flaw: Flaw) {
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
struct Summary {
    /// Input names for `file:line` positions (`<stdin>` for standard input).
    sources: Vec<String>,
    since: Option<i64>,
    lines: u64,
    skipped_before_since: u64,
    /// Events counted (after `--since`).
    events: u64,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    malformed: Malformed,

    connects: u64,
    tcp: u64,
    udp: u64,
    by_action: [ActionStats; 4],
    elapsed: Histogram,
    gateways: TopK<GatewayDetail>,
    hosts: TopK<HostDetail>,
    processes: TopK<ProcessDetail>,
    denials: u64,
    deny_rules: TopK<()>,
    denied_hosts: TopK<()>,
    /// Results other than ok and EINPROGRESS, of connects and resolves.
    results: TopK<ResultDetail>,
    in_progress: u64,

    closes: Closes,
    /// Bytes sent (the rank) and received, per host, gateway and process.
    host_bytes: TopK<Traffic>,
    gateway_bytes: TopK<Traffic>,
    process_bytes: TopK<Traffic>,
    endings: TopK<()>,

    resolves: Resolves,
    config_errors: u64,
    config_texts: TopK<()>,
    /// Events of a kind this version does not know.
    other_events: u64,

    /// Reused to build two-part keys without an allocation per event.
    key: String,
}

impl Summary {
    fn new(sources: Vec<String>, since: Option<i64>) -> Summary {
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
    fn add(&mut self, event: &LogLine<'_>, ts: i64) {
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
fn split_pair(key: &str) -> (&str, &str) {
    let Some((length, rest)) = key.split_once(':') else {
        return (key, "");
    };
    match length.parse::<usize>() {
        Ok(n) if rest.is_char_boundary(n) => rest.split_at(n),
        _ => (key, ""),
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded structures

/// Sub-buckets per power of two: a bucket spans at most 1/16 (6.25 %) of its smallest value.
const SUB_BUCKET_BITS: u32 = 4;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;
/// Values below 16 get a bucket each; then 16 per power of two up to 2^64.
const BUCKETS: usize = ((64 - SUB_BUCKET_BITS as usize) + 1) * SUB_BUCKETS as usize;

/// A log-linear histogram of microseconds over all of u64, in 7.8 KiB. Percentiles are reported
/// as the upper bound of the bucket holding the nearest-rank value (capped at the largest value
/// seen): never below the true value, at most 6.25 % above it. The maximum is exact.
struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn record(&mut self, value: u64) {
        self.counts[Self::bucket(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    fn bucket(value: u64) -> usize {
        if value < SUB_BUCKETS {
            return value as usize;
        }
        let shift = 63 - value.leading_zeros() - SUB_BUCKET_BITS;
        let sub_bucket = (value >> shift) & (SUB_BUCKETS - 1);
        ((u64::from(shift) + 1) * SUB_BUCKETS + sub_bucket) as usize
    }

    /// The largest value that falls into `bucket`.
    fn upper_bound(bucket: usize) -> u64 {
        let bucket = bucket as u64;
        if bucket < SUB_BUCKETS {
            return bucket;
        }
        let shift = bucket / SUB_BUCKETS - 1;
        let lowest = (SUB_BUCKETS + bucket % SUB_BUCKETS) << shift;
        lowest + ((1 << shift) - 1)
    }

    /// The `per_mille`th percentile (500: median), or `None` with no values.
    fn percentile(&self, per_mille: u64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = (self.total * per_mille).div_ceil(1000).max(1);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Self::upper_bound(bucket).min(self.max));
            }
        }
        Some(self.max)
    }
}

/// Approximate top-k counting in fixed memory: Space-Saving (Metwally, Agrawal, El Abbadi,
/// 2005). With `capacity` counters it is exact until a key arrives when all are taken; that key
/// then takes over the smallest counter and inherits its count, which may overstate the
/// newcomer's by at most that much (kept as `overcount`). Any key seen more often than the
/// smallest counter is guaranteed a counter.
struct TopK<D> {
    capacity: usize,
    /// A binary min-heap on `count`, so the counter to take over is always `slots[0]`.
    slots: Vec<Slot<D>>,
    /// Each key's index in `slots`.
    position: HashMap<Rc<str>, usize>,
    takeovers: u64,
}

struct Slot<D> {
    key: Rc<str>,
    count: u64,
    /// How much of `count` may belong to keys this counter held before.
    overcount: u64,
    /// Per-key breakdown, counted only since this key got the counter.
    detail: D,
}

impl<D: Default> TopK<D> {
    fn new(capacity: usize) -> Self {
        TopK {
            capacity,
            slots: Vec::new(),
            position: HashMap::new(),
            takeovers: 0,
        }
    }

    /// Counts one occurrence of `key` (cut to `MAX_KEY` bytes); returns its detail to update.
    fn add(&mut self, key: &str) -> &mut D {
        self.add_weighted(key, 1)
    }

    /// Counts `weight` for `key` (bytes, where a table ranks by bytes).
    fn add_weighted(&mut self, key: &str, weight: u64) -> &mut D {
        let key = bounded(key, MAX_KEY);
        let index = if let Some(&index) = self.position.get(key) {
            self.slots[index].count = self.slots[index].count.saturating_add(weight);
            self.sift_down(index)
        } else if self.slots.len() < self.capacity {
            let key: Rc<str> = Rc::from(key);
            self.position.insert(Rc::clone(&key), self.slots.len());
            self.slots.push(Slot {
                key,
                count: weight,
                overcount: 0,
                detail: D::default(),
            });
            self.sift_up(self.slots.len() - 1)
        } else {
            self.takeovers += 1;
            let key: Rc<str> = Rc::from(key);
            let smallest = &mut self.slots[0];
            self.position.remove(&smallest.key);
            self.position.insert(Rc::clone(&key), 0);
            *smallest = Slot {
                key,
                count: smallest.count.saturating_add(weight),
                overcount: smallest.count,
                detail: D::default(),
            };
            self.sift_down(0)
        };
        &mut self.slots[index].detail
    }
}

impl<D> TopK<D> {
    /// Whether some key was counted in a taken-over counter, making counts approximate.
    fn approximate(&self) -> bool {
        self.takeovers > 0
    }

    /// The number of distinct keys, when known.
    fn distinct(&self) -> Option<usize> {
        (!self.approximate()).then_some(self.slots.len())
    }

    /// Counters, largest count first (ties by key, for a stable report).
    fn ranked(&self) -> Vec<&Slot<D>> {
        let mut ranked: Vec<&Slot<D>> = self.slots.iter().collect();
        ranked.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        ranked
    }

    fn sift_up(&mut self, mut index: usize) -> usize {
        while index > 0 {
            let parent = (index - 1) / 2;
            if self.slots[parent].count <= self.slots[index].count {
                break;
            }
            self.swap(parent, index);
            index = parent;
        }
        index
    }

    fn sift_down(&mut self, mut index: usize) -> usize {
        loop {
            let left = 2 * index + 1;
            let right = left + 1;
            let Some(left_slot) = self.slots.get(left) else {
                return index;
            };
            let smaller = match self.slots.get(right) {
                Some(right_slot) if right_slot.count < left_slot.count => right,
                _ => left,
            };
            if self.slots[smaller].count >= self.slots[index].count {
                return index;
            }
            self.swap(smaller, index);
            index = smaller;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.slots.swap(a, b);
        for index in [a, b] {
            if let Some(position) = self.position.get_mut(&*self.slots[index].key) {
                *position = index;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering: text

/// Prints the summary as aligned plain text.
fn render_text(s: &Summary, out: &mut impl fmt::Write) -> fmt::Result {
    writeln!(out, "mcp-redirect report")?;
    let mut overview = Table::new(2, &[]);
    let inputs = s
        .sources
        .iter()
        .map(|n| printable(n))
        .collect::<Vec<_>>()
        .join(", ");
    overview.row(&["input", &inputs]);
    overview.row(&["lines", &s.lines.to_string()]);
    let mut events = s.events.to_string();
    if let (Some(first), Some(last)) = (s.first_ts, s.last_ts) {
        let _ = write!(events, ", {} to {}", format_time(first), format_time(last));
    }
    overview.row(&["events", &events]);
    if let Some(since) = s.since {
        let skipped = format!(
            "{} before {} (--since)",
            s.skipped_before_since,
            format_time(since)
        );
        overview.row(&["skipped", &skipped]);
    }
    let mut malformed = s.malformed.count.to_string();
    if s.malformed.truncated > 0 {
        let _ = write!(
            malformed,
            ", {} of them a truncated last line",
            s.malformed.truncated
        );
    }
    overview.row(&["malformed lines", &malformed]);
    overview.write(out, "  ")?;

    if !s.malformed.listed.is_empty() {
        writeln!(
            out,
            "\nMalformed lines (first {} of {})",
            s.malformed.listed.len(),
            s.malformed.count
        )?;
        let mut table = Table::new(2, &[]);
        for (source, line, flaw) in &s.malformed.listed {
            let position = format!("{}:{line}", printable(&s.sources[*source]));
            table.row(&[&position, &printable(&flaw.to_string())]);
        }
        table.write(out, "  ")?;
    }

    writeln!(
        out,
        "\nConnections: {} (tcp {}, udp {})",
        s.connects, s.tcp, s.udp
    )?;
    if s.connects > 0 {
        let mut table = Table::new(1, &["action", "connects", "ok", "in progress", "not ok"]);
        for action in Action::ALL {
            let a = &s.by_action[action as usize];
            if a.connects > 0 || action != Action::Other {
                table.row(&[
                    action.name(),
                    &n(a.connects),
                    &n(a.ok),
                    &n(a.in_progress),
                    &n(a.not_ok),
                ]);
            }
        }
        table.write(out, "  ")?;
    }

    writeln!(
        out,
        "\nConnect time in microseconds ({} connects with elapsed_us)",
        s.elapsed.total
    )?;
    if s.elapsed.total > 0 {
        let mut table = Table::new(1, &["action", "count", "p50", "p99", "max"]);
        let mut times = |name: &str, h: &Histogram| {
            let p = |per_mille| h.percentile(per_mille).map_or("-".into(), n);
            table.row(&[name, &n(h.total), &p(500), &p(990), &n(h.max)]);
        };
        times("all", &s.elapsed);
        for action in Action::ALL {
            let h = &s.by_action[action as usize].elapsed;
            if h.total > 0 {
                times(action.name(), h);
            }
        }
        table.write(out, "  ")?;
        writeln!(
            out,
            "  (p50 and p99 are histogram bucket upper bounds: at most 6.25% high)"
        )?;
    }

    let gateway_connects = s.by_action[Action::Gateway as usize].connects;
    writeln!(out, "\nGateways: {gateway_connects} connects")?;
    if gateway_connects > 0 {
        let mut table = Table::new(
            2,
            &[
                "gateway",
                "endpoint",
                "connects",
                "ok",
                "in progress",
                "failed",
            ],
        );
        for slot in s.gateways.ranked().into_iter().take(ROWS_SHOWN) {
            let (gateway, endpoint) = split_pair(&slot.key);
            let d = &slot.detail;
            table.row(&[
                &printable(gateway),
                &printable(endpoint),
                &n(slot.count),
                &n(d.ok),
                &n(d.in_progress),
                &n(d.failed),
            ]);
        }
        table.write(out, "  ")?;
        shown_note(out, &s.gateways, ROWS_SHOWN, "gateway endpoints")?;
    }

    if s.connects > 0 {
        writeln!(out, "\nTop hosts by connections")?;
        let mut table = Table::new(
            1,
            &["host", "connects", "direct", "gateway", "deny", "failed"],
        );
        for slot in s.hosts.ranked().into_iter().take(HOSTS_SHOWN) {
            let d = &slot.detail;
            table.row(&[
                &printable(&slot.key),
                &n(slot.count),
                &n(d.direct),
                &n(d.gateway),
                &n(d.deny),
                &n(d.failed),
            ]);
        }
        table.write(out, "  ")?;
        shown_note(out, &s.hosts, HOSTS_SHOWN, "hosts")?;
    }

    writeln!(out, "\nDenials: {}", s.denials)?;
    if s.denials > 0 {
        let mut table = Table::new(1, &["rule", "denials"]);
        for slot in s.deny_rules.ranked().into_iter().take(ROWS_SHOWN) {
            table.row(&[&printable(&slot.key), &n(slot.count)]);
        }
        table.write(out, "  ")?;
        shown_note(out, &s.deny_rules, ROWS_SHOWN, "rules")?;
        writeln!(out)?;
        let mut table = Table::new(2, &["denied host", "rule", "denials"]);
        for slot in s.denied_hosts.ranked().into_iter().take(HOSTS_SHOWN) {
            let (host, rule) = split_pair(&slot.key);
            table.row(&[&printable(host), &printable(rule), &n(slot.count)]);
        }
        table.write(out, "  ")?;
        shown_note(out, &s.denied_hosts, HOSTS_SHOWN, "denied hosts")?;
    }

    writeln!(out, "\nResults other than ok")?;
    if s.results.slots.is_empty() {
        writeln!(out, "  none")?;
    } else {
        let mut table = Table::new(1, &["result", "connect", "resolve"]);
        for slot in s.results.ranked().into_iter().take(ROWS_SHOWN) {
            table.row(&[
                &printable(&slot.key),
                &n(slot.detail.connect),
                &n(slot.detail.resolve),
            ]);
        }
        table.write(out, "  ")?;
        shown_note(out, &s.results, ROWS_SHOWN, "results")?;
    }
    writeln!(
        out,
        "  in progress (EINPROGRESS, not an error): {} connects",
        s.in_progress
    )?;

    if s.connects > 0 {
        writeln!(out, "\nProcesses by connections")?;
        let mut table = Table::new(1, &["exe", "connects", "denied", "failed"]);
        for slot in s.processes.ranked().into_iter().take(ROWS_SHOWN) {
            let d = &slot.detail;
            table.row(&[
                &printable(&slot.key),
                &n(slot.count),
                &n(d.denied),
                &n(d.failed),
            ]);
        }
        table.write(out, "  ")?;
        shown_note(out, &s.processes, ROWS_SHOWN, "processes")?;
        writeln!(
            out,
            "  (failed: a result other than ok or EINPROGRESS, denials not included)"
        )?;
    }

    render_traffic(s, out)?;

    let r = &s.resolves;
    writeln!(
        out,
        "\nResolves: {} (fake answers {}, real lookups {}, failed {})",
        r.total, r.fake, r.real, r.failed
    )?;

    writeln!(out, "\nConfig errors: {}", s.config_errors)?;
    if s.config_errors > 0 {
        let mut table = Table::new(0, &[]);
        for slot in s.config_texts.ranked().into_iter().take(ROWS_SHOWN) {
            table.row(&[&n(slot.count), &printable(&slot.key)]);
        }
        table.write(out, "  ")?;
        shown_note(out, &s.config_texts, ROWS_SHOWN, "error texts")?;
    }

    if s.other_events > 0 {
        writeln!(out, "\nEvents of other kinds: {}", s.other_events)?;
    }
    Ok(())
}

/// What `close` lines say: bytes per host, gateway and process, and the longest connections.
fn render_traffic(s: &Summary, out: &mut impl fmt::Write) -> fmt::Result {
    let c = &s.closes;
    writeln!(
        out,
        "\nTraffic: {} connections closed, {} bytes sent, {} received",
        c.total, c.sent, c.received
    )?;
    if c.total == 0 {
        return Ok(());
    }
    let endings = s
        .endings
        .ranked()
        .iter()
        .map(|slot| format!("{} {}", printable(&slot.key), slot.count))
        .collect::<Vec<_>>()
        .join(", ");
    writeln!(out, "  ended: {endings}")?;
    for (title, column, table, shown, what) in [
        (
            "Hosts by bytes sent",
            "host",
            &s.host_bytes,
            HOSTS_SHOWN,
            "hosts",
        ),
        (
            "Gateways by bytes sent",
            "gateway",
            &s.gateway_bytes,
            ROWS_SHOWN,
            "gateways",
        ),
        (
            "Processes by bytes sent",
            "exe",
            &s.process_bytes,
            ROWS_SHOWN,
            "processes",
        ),
    ] {
        if table.slots.is_empty() {
            continue;
        }
        writeln!(out, "\n{title}")?;
        let mut rows = Table::new(1, &[column, "connections", "sent", "received"]);
        for slot in table.ranked().into_iter().take(shown) {
            rows.row(&[
                &printable(&slot.key),
                &n(slot.detail.closes),
                &n(slot.count),
                &n(slot.detail.received),
            ]);
        }
        rows.write(out, "  ")?;
        shown_note(out, table, shown, what)?;
    }
    writeln!(out, "\nLongest connections")?;
    let mut rows = Table::new(3, &["host", "exe", "closed at", "ms", "sent", "received"]);
    for long in &c.longest {
        rows.row(&[
            &printable(&long.host),
            &printable(&long.exe),
            &format_time(long.ts),
            &n(long.duration_ms),
            &n(long.sent),
            &n(long.received),
        ]);
    }
    rows.write(out, "  ")
}

/// Says how many rows a table left out, and whether its counts are approximate.
fn shown_note<D>(
    out: &mut impl fmt::Write,
    table: &TopK<D>,
    shown: usize,
    what: &str,
) -> fmt::Result {
    match table.distinct() {
        Some(distinct) if distinct > shown => {
            writeln!(out, "  ({shown} of {distinct} {what} shown)")
        }
        Some(_) => Ok(()),
        None => {
            let capacity = table.capacity;
            let missing = "rarer ones may be missing";
            writeln!(
                out,
                "  (approximate: more than {capacity} distinct {what}, {missing};"
            )?;
            // A counter never taken over has counted its key from the first sighting: exact.
            let overcount = table.ranked().iter().take(shown).map(|s| s.overcount).max();
            match overcount.unwrap_or(0) {
                0 => writeln!(out, "   the counts shown are exact)"),
                most => writeln!(
                    out,
                    "   a count shown may be up to {most} too high, and its breakdown covers \
                     only the events since its key last took over a counter)"
                ),
            }
        }
    }
}

fn n(value: u64) -> String {
    value.to_string()
}

/// Log strings come from programs and configs: control and bidi-override characters are
/// escaped so that a hostile hostname cannot drive the terminal or reorder the report.
fn printable(text: &str) -> String {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if unsafe_char(c) {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// Rows printed in aligned columns: the first `text_columns` left-aligned (names), the rest
/// right-aligned (numbers). Widths count characters.
struct Table {
    text_columns: usize,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(text_columns: usize, header: &[&str]) -> Table {
        let mut table = Table {
            text_columns,
            rows: Vec::new(),
        };
        if !header.is_empty() {
            table.row(header);
        }
        table
    }

    fn row(&mut self, cells: &[&str]) {
        self.rows
            .push(cells.iter().map(|c| c.to_string()).collect());
    }

    fn write(&self, out: &mut impl fmt::Write, indent: &str) -> fmt::Result {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::from(indent);
            for (c, cell) in row.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                let pad = widths[c] - cell.chars().count();
                if c < self.text_columns {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                } else {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering: JSON

/// The summary as one JSON object, with the text report's content.
fn render_json(s: &Summary) -> Value {
    let malformed_listed: Vec<Value> = s
        .malformed
        .listed
        .iter()
        .map(|(source, line, flaw)| {
            json!({"file": s.sources[*source], "line": line, "reason": flaw.to_string()})
        })
        .collect();
    let by_action: serde_json::Map<String, Value> = Action::ALL
        .iter()
        .map(|&action| {
            let a = &s.by_action[action as usize];
            let counts = json!({
                "connects": a.connects,
                "ok": a.ok,
                "in_progress": a.in_progress,
                "not_ok": a.not_ok,
            });
            (action.name().to_string(), counts)
        })
        .collect();
    let times = |h: &Histogram| {
        json!({
            "count": h.total,
            "p50": h.percentile(500),
            "p99": h.percentile(990),
            "max": (h.total > 0).then_some(h.max),
        })
    };
    let mut elapsed = serde_json::Map::new();
    let note = "p50 and p99 are histogram bucket upper bounds, at most 6.25% high";
    elapsed.insert("percentiles".into(), note.into());
    elapsed.insert("all".into(), times(&s.elapsed));
    for action in Action::ALL {
        elapsed.insert(
            action.name().into(),
            times(&s.by_action[action as usize].elapsed),
        );
    }
    let r = &s.resolves;
    json!({
        "inputs": s.sources,
        "since": s.since.map(format_time),
        "lines": s.lines,
        "skipped_before_since": s.skipped_before_since,
        "events": s.events,
        "first_ts": s.first_ts.map(format_time),
        "last_ts": s.last_ts.map(format_time),
        "malformed": {
            "count": s.malformed.count,
            "truncated_last_lines": s.malformed.truncated,
            "first": malformed_listed,
        },
        "connects": {
            "total": s.connects,
            "tcp": s.tcp,
            "udp": s.udp,
            "in_progress": s.in_progress,
            "by_action": by_action,
        },
        "elapsed_us": elapsed,
        "gateways": top_json(&s.gateways, ROWS_SHOWN, |key, d| {
            let (gateway, endpoint) = split_pair(key);
            json!({
                "gateway": gateway,
                "endpoint": endpoint,
                "ok": d.ok,
                "in_progress": d.in_progress,
                "failed": d.failed,
            })
        }),
        "hosts": top_json(&s.hosts, HOSTS_SHOWN, |key, d| {
            json!({
                "host": key,
                "direct": d.direct,
                "gateway": d.gateway,
                "deny": d.deny,
                "failed": d.failed,
            })
        }),
        "denials": {
            "total": s.denials,
            "by_rule": top_json(&s.deny_rules, ROWS_SHOWN, |key, ()| json!({"rule": key})),
            "by_host": top_json(&s.denied_hosts, HOSTS_SHOWN, |key, ()| {
                let (host, rule) = split_pair(key);
                json!({"host": host, "rule": rule})
            }),
        },
        "results": top_json(&s.results, ROWS_SHOWN, |key, d| {
            json!({"result": key, "connect": d.connect, "resolve": d.resolve})
        }),
        "processes": top_json(&s.processes, ROWS_SHOWN, |key, d| {
            json!({"exe": key, "denied": d.denied, "failed": d.failed})
        }),
        "traffic": traffic_json(s),
        "resolves": {"total": r.total, "fake": r.fake, "real": r.real, "failed": r.failed},
        "config_errors": {
            "total": s.config_errors,
            "texts": top_json(&s.config_texts, ROWS_SHOWN, |key, ()| json!({"error": key})),
        },
        "other_events": s.other_events,
    })
}

/// `close` lines: totals, bytes per host, gateway and process (`count` is bytes sent), the
/// longest connections.
fn traffic_json(s: &Summary) -> Value {
    let c = &s.closes;
    let bytes = |name: &'static str| move |key: &str, d: &Traffic| json!({name: key, "connections": d.closes, "received": d.received});
    let longest: Vec<Value> = c
        .longest
        .iter()
        .map(|l| {
            json!({
                "host": l.host,
                "exe": l.exe,
                "closed_at": format_time(l.ts),
                "duration_ms": l.duration_ms,
                "sent": l.sent,
                "received": l.received,
            })
        })
        .collect();
    json!({
        "closes": c.total,
        "bytes_sent": c.sent,
        "bytes_received": c.received,
        "ended": top_json(&s.endings, ROWS_SHOWN, |key, ()| json!({"ended": key})),
        "by_host": sent_json(top_json(&s.host_bytes, HOSTS_SHOWN, bytes("host"))),
        "by_gateway": sent_json(top_json(&s.gateway_bytes, ROWS_SHOWN, bytes("gateway"))),
        "by_process": sent_json(top_json(&s.process_bytes, ROWS_SHOWN, bytes("exe"))),
        "longest": longest,
    })
}

/// A bytes table's entries say `sent` (and `sent_overcount`) where others say `count`.
fn sent_json(mut table: Value) -> Value {
    if let Some(entries) = table["entries"].as_array_mut() {
        for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
            for (from, to) in [("count", "sent"), ("overcount", "sent_overcount")] {
                if let Some(value) = entry.remove(from) {
                    entry.insert(to.into(), value);
                }
            }
        }
    }
    table
}

/// A top-k table as `{approximate, distinct, entries: [{<fields>, count, overcount}]}`;
/// `distinct` is null when approximate, `overcount` bounds how much too high `count` may be.
fn top_json<D>(table: &TopK<D>, shown: usize, fields: impl Fn(&str, &D) -> Value) -> Value {
    let entries: Vec<Value> = table
        .ranked()
        .into_iter()
        .take(shown)
        .map(|slot| {
            let mut entry = fields(&slot.key, &slot.detail);
            if let Value::Object(map) = &mut entry {
                map.insert("count".into(), slot.count.into());
                map.insert("overcount".into(), slot.overcount.into());
            }
            entry
        })
        .collect();
    json!({"approximate": table.approximate(), "distinct": table.distinct(), "entries": entries})
}

/// `report --suggest LOG...`: the rules that would allow what the logs show denied.
fn suggest(logs: &[PathBuf]) -> u8 {
    if logs.is_empty() {
        crate::complain("report --suggest: name the log files to read");
        return 2;
    }
    let mut reached = crate::suggest::Reached::default();
    for log in logs {
        if let Err(e) = reached.read_log(log) {
            crate::complain(format!("report: cannot read {}: {e}", log.display()));
            return 2;
        }
    }
    if reached.is_empty() {
        println!("# Nothing in these logs was denied.");
    } else {
        print!("{}", reached.rules());
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_with_the_writer() {
        for us in [
            0,
            951_782_400_000_001,
            1_795_759_361_123_456,
            4_102_444_799_999_999,
        ] {
            assert_eq!(parse_rfc3339(&rfc3339_micros(us)), Some(us as i64));
        }
        let utc = parse_rfc3339("2026-11-27T06:02:41Z").unwrap();
        assert_eq!(parse_rfc3339("2026-11-27T08:02:41+02:00"), Some(utc));
        assert_eq!(parse_rfc3339("2026-11-27t06:02:41.5z"), Some(utc + 500_000));
        assert_eq!(
            parse_rfc3339("2026-11-27T06:02:41.1234567Z"),
            Some(utc + 123_456)
        );
        for bad in [
            "",
            "2026-11-27",
            "2026-11-27T06:02:41",
            "2026-11-27T06:02:41.Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T06:02:41+0200",
            "2026-11-27T06:02:41Z ",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn histogram_buckets_cover_u64_and_bound_the_error() {
        for value in [0, 1, 15, 16, 17, 31, 32, 33, 1000, 123_456_789, u64::MAX] {
            let bucket = Histogram::bucket(value);
            assert!(bucket < BUCKETS);
            let upper = Histogram::upper_bound(bucket);
            assert!(upper >= value, "{value}");
            assert!(upper - value <= value / 16, "{value}: {upper}");
            if bucket > 0 {
                assert!(Histogram::upper_bound(bucket - 1) < value, "{value}");
            }
        }
        let mut h = Histogram::default();
        for value in 1..=1000 {
            h.record(value);
        }
        let p50 = h.percentile(500).unwrap();
        assert!((500..=500 + 500 / 16).contains(&p50), "{p50}");
        assert_eq!(h.percentile(1000), Some(1000));
    }

    #[test]
    fn top_k_is_exact_until_full_then_keeps_heavy_keys() {
        let mut top: TopK<u64> = TopK::new(4);
        for key in ["a", "b", "a", "c", "a", "b"] {
            *top.add(key) += 1;
        }
        assert!(!top.approximate());
        let ranked: Vec<_> = top
            .ranked()
            .iter()
            .map(|s| (s.key.to_string(), s.count))
            .collect();
        assert_eq!(ranked, [("a".into(), 3), ("b".into(), 2), ("c".into(), 1)]);
        for i in 0..1000 {
            top.add("heavy");
            top.add(&format!("noise{i}"));
        }
        assert!(top.approximate());
        let first = top.ranked()[0];
        assert_eq!(&*first.key, "heavy");
        assert!(first.count >= 1000 && first.count - first.overcount <= 1000);
    }

    #[test]
    fn pair_keys_split_back() {
        let mut key = String::new();
        for (a, b) in [("x", "y"), ("", "1:2"), ("a:b", ""), ("é", "ü")] {
            assert_eq!(split_pair(pair_key(&mut key, a, b)), (a, b));
        }
    }
}
