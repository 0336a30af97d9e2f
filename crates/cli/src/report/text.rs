//! The summary as aligned plain text, for a person: one section per concern, names left and
//! numbers right, and every string from the log made safe for a terminal.
#![forbid(unsafe_code)]

use std::fmt::{self, Write as _};

use super::histogram::Histogram;
use super::summary::{split_pair, Action, Summary, HOSTS_SHOWN, ROWS_SHOWN};
use super::time::format_time;
use super::top_k::TopK;

/// Prints the summary as aligned plain text.
pub(super) fn render_text(s: &Summary, out: &mut impl fmt::Write) -> fmt::Result {
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
    if s.results.is_empty() {
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
        if table.is_empty() {
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
            let capacity = table.capacity();
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
