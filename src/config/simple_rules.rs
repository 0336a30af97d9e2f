//! A config of tens of thousands of `[[rules]]` is almost all tables of one shape: a header
//! and a few `key = "string"` lines. Parsing those with the TOML parser costs every process
//! hundreds of milliseconds and tens of megabytes at its first connection (a token vector and a
//! value tree for the whole file), and building a schema value of owned strings for each
//! costs again. This scanner takes such tables out of the text itself, as fields borrowed from
//! the text, and leaves the rest of the file for the TOML parser.
//!
//! It is conservative: a table is taken only when every line of it is blank, a comment, or
//! `KEY = "TEXT"` (KEY a rule key; TEXT without `\` or `"`), or `port = DIGITS`; any other line
//! leaves the whole table to the TOML parser. A file with a multi-line string, a `rules` key
//! spelled otherwise (`rules = [...]`, `[rules]`, dotted keys) or anything unusual about its
//! headers is not scanned at all. The caller checks that the two parts add up, and parses the
//! whole text the usual way whenever anything disagrees or an error is to be reported.

#![forbid(unsafe_code)]

use super::{PortValue, RuleFields};

/// The text without the tables taken, and the rules taken, borrowed from the text, with their
/// place among all `[[rules]]` tables of the file (`None`: nothing taken, parse the text as it
/// is). `rest` holds no trace of the tables taken: its line numbers are not the file's, which
/// does not matter, because every error is reported from a parse of the whole text.
pub struct Split<'t> {
    pub rest: String,
    pub taken: Vec<(usize, RuleFields<'t>)>,
    pub tables: usize,
}

/// Fewer rules than this are not worth a second look at the text.
const WORTH_IT: usize = 64;

/// One pass over the lines: a `[[rules]]` table runs from its header up to the next line that
/// starts with `[`; a simple one is taken, any other goes to `rest` as it is written.
pub fn split(text: &str) -> Option<Split<'_>> {
    let mut split = Split {
        rest: String::new(),
        taken: Vec::new(),
        tables: 0,
    };
    // The open table: where its header starts, and its lines after the header.
    let mut open: Option<usize> = None;
    let mut body: Vec<&str> = Vec::new();
    let mut offset = 0;
    for line in lines(text) {
        let at = offset;
        offset += line.len();
        let bare_line = bare(line);
        if let Some(start) = open {
            if !bare_line.starts_with('[') {
                body.push(line);
                continue;
            }
            split.close_table(&text[start..at], &body)?;
            open = None;
        }
        if is_rules_header(bare_line) {
            open = Some(at);
            body.clear();
            continue;
        }
        // `rules` other than as [[rules]] headers, or a multi-line string (whose lines could
        // look like anything): the text is not for us.
        if mentions_rules(bare_line) || opens_multiline_string(line) {
            return None;
        }
        split.rest.push_str(line);
    }
    if let Some(start) = open {
        split.close_table(&text[start..], &body)?;
    }
    (split.taken.len() >= WORTH_IT).then_some(split)
}

impl<'t> Split<'t> {
    /// Takes the table (header and `body`, `whole` as written) if it is simple.
    fn close_table(&mut self, whole: &'t str, body: &[&'t str]) -> Option<()> {
        match simple_table(body) {
            Some(rule) => self.taken.push((self.tables, rule)),
            // A simple table holds no multi-line string; any other table is looked at whole.
            None if opens_multiline_string(whole) => return None,
            None => self.rest.push_str(whole),
        }
        self.tables += 1;
        Some(())
    }
}

/// Whether `text` has a `'''` or `"""` in it (looked for in what the scanner does not take:
/// a multi-line string there could hold lines that look like tables).
fn opens_multiline_string(text: &str) -> bool {
    text.contains("'''") || text.contains("\"\"\"")
}

/// The lines of `text`, each with its `\n`. This and [`byte_position`] are plain loops over
/// the bytes: for lines of a few dozen bytes they are faster than `memchr`'s setup per call.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = byte_position(rest, b'\n').map_or(rest.len(), |i| i + 1);
        let (line, after) = rest.split_at(end);
        rest = after;
        Some(line)
    })
}

/// Where the ASCII byte `byte` first is in `text` (a character boundary, being ASCII).
fn byte_position(text: &str, byte: u8) -> Option<usize> {
    // A plain loop: the lines and values are short, where memchr's set-up costs more.
    text.bytes().position(|b| b == byte)
}

/// A line without its end and surrounding white space.
fn bare(line: &str) -> &str {
    let end = |b: &&u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let bytes = line.as_bytes();
    let start = bytes.iter().take_while(end).count();
    let stop = bytes.len() - bytes[start..].iter().rev().take_while(end).count();
    // Only ASCII bytes are cut: both ends stay on character boundaries.
    &line[start..stop]
}

/// `text` without the spaces and tabs it starts with: TOML's only white space within a line.
/// (A wider trim would take a table the TOML parser refuses.)
fn trim_start_blank(text: &str) -> &str {
    &text[text
        .bytes()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count()..]
}

/// `text` without the spaces and tabs it ends with.
fn trim_end_blank(text: &str) -> &str {
    let blanks = text.bytes().rev().take_while(|b| matches!(b, b' ' | b'\t'));
    &text[..text.len() - blanks.count()]
}

/// `[[rules]]`, optionally followed by a comment.
fn is_rules_header(line: &str) -> bool {
    line.strip_prefix("[[rules]]")
        .is_some_and(|after| after.trim_start().is_empty() || after.trim_start().starts_with('#'))
}

/// A line that could make `rules` something other than a list of [[rules]] tables.
fn mentions_rules(line: &str) -> bool {
    let key = line.trim_start_matches(['[', ' ', '\t', '"', '\'']);
    key.starts_with("rules")
        && key[5..]
            .trim_start()
            .starts_with(['=', '.', ']', '"', '\''])
}

/// The rule of a table whose every line is blank, a comment or a simple key; `None` for any
/// other table.
fn simple_table<'t>(body: &[&'t str]) -> Option<RuleFields<'t>> {
    let mut rule = RuleFields::default();
    for line in body {
        let line = bare(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let equals = byte_position(line, b'=')?;
        let (key, value) = (&line[..equals], &line[equals + 1..]);
        let (key, value) = (trim_end_blank(key), trim_start_blank(value));
        let slot = match key {
            "host" => &mut rule.host,
            "host_list" => &mut rule.host_list,
            "cidr" => &mut rule.cidr,
            "cidr_list" => &mut rule.cidr_list,
            "process" => &mut rule.process,
            "via" => &mut rule.via,
            "action" => &mut rule.action,
            "port" => {
                if rule.port.is_some() {
                    return None;
                }
                rule.port = Some(port(value)?);
                continue;
            }
            _ => return None,
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(basic_string(value)?);
    }
    Some(rule)
}

/// `"TEXT"` with nothing but a comment after it, TEXT without escapes or quotes.
fn basic_string(value: &str) -> Option<&str> {
    let inner = value.strip_prefix('"')?;
    let end = byte_position(inner, b'"')?;
    let (text, after) = (&inner[..end], trim_start_blank(&inner[end + 1..]));
    // Printable ASCII at a glance; otherwise by characters (C1 controls are two bytes).
    let printable = |b: u8| (0x20..0x7f).contains(&b) && b != b'\\';
    let plain = text.bytes().all(printable)
        || (!text.contains('\\') && !text.chars().any(|c| c.is_control()));
    (plain && (after.is_empty() || after.starts_with('#'))).then_some(text)
}

/// `port = 443` or `port = "8000-8999"`, as the TOML parser would give them.
fn port(value: &str) -> Option<PortValue<'_>> {
    if let Some(text) = basic_string(value) {
        return Some(PortValue::Text(text));
    }
    let digits = value.split('#').next()?.trim_end();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 6 {
        return None;
    }
    // TOML forbids leading zeros: leave "0443" to the parser, which says so.
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    Some(PortValue::Integer(digits.parse().ok()?))
}
