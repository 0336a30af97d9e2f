//! One log line for the report: its event (read by [`crate::log_schema`]) and time, or why the
//! line is not counted.
#![forbid(unsafe_code)]

use std::fmt;

pub(super) use crate::log_schema::LogLine;
use crate::log_schema::ReadError;

use super::bounded;
use super::lines::{LineEnd, MAX_LINE};
use super::time::parse_rfc3339;

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
    let event = LogLine::read(line).map_err(|e| match e {
        ReadError::Json(e) => json_flaw(&e, end),
        ReadError::NoEvent => Flaw::Invalid(e.to_string()),
    })?;
    match parse_rfc3339(&event.ts) {
        Ok(ts) => Ok((event, ts)),
        Err(_) => Err(Flaw::BadTime(bounded(&event.ts, 64).to_string())),
    }
}

/// What serde found wrong with a line.
fn json_flaw(e: &serde_json::Error, end: LineEnd) -> Flaw {
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
}
