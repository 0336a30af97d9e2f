//! `mcp-redirect report`: summarise JSON-lines security logs (files, or stdin) in one pass.
//!
//! Logs grow without bound, so the report reads them line by line into one reused buffer and
//! keeps only fixed-size state: counters, log-scale histograms for connect times, and
//! Space-Saving top-k tables for hosts, processes, gateways, denials and results (and, from
//! `close` lines, bytes per host, gateway and process, and the longest connections). A table is
//! exact until it meets more distinct keys than it has counters; from then on it is approximate
//! and the report says so. A 1 GB log takes the same memory as a 1 MB one.
//!
//! This file owns the command: its options, its inputs and exit codes, and the one pass that
//! takes each line through the others:
//! - `lines`: a line at a time in bounded memory;
//! - `log_line`: a line (native or `ecs`) into a typed event, or why it is malformed;
//! - `time`: RFC 3339 times (`ts`, `--since`) to microseconds and back;
//! - `summary`: the counts, built one event at a time, with `histogram` and `top_k`;
//! - `text` and `json`: the summary printed for a person or for a program.
//!
//! Does not own the log's formats: `mcp_redirect_core::log` writes them (and `log::ecs` maps
//! `event.action` back).
#![forbid(unsafe_code)]

mod histogram;
mod json;
mod lines;
mod log_line;
mod summary;
mod text;
mod time;
mod top_k;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use mcp_redirect_core::errno::errno_text;

use lines::next_line;
use log_line::parse_line;
use summary::Summary;
use time::parse_rfc3339;

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

/// Keys are cut to this many bytes, so a hostile log cannot make a counter large. Hostnames
/// (253) and executable names (255) fit whole.
const MAX_KEY: usize = 512;
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
            Ok(us) => Some(us),
            Err(why) => {
                crate::complain(format!(
                    "report: --since {text:?} is not an RFC 3339 time \
                     (such as 2026-11-27T00:00:00Z or 2026-11-27T08:00:00.5+02:00): {why}"
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
        let mut text = serde_json::to_string_pretty(&json::render_json(&summary))
            .expect("a JSON value always serialises");
        text.push('\n');
        text
    } else {
        let mut text = String::new();
        text::render_text(&summary, &mut text).expect("writing to a String cannot fail");
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
