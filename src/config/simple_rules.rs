//! A config of tens of thousands of `[[rules]]` is almost all tables of one shape: a header
//! and a few `key = "string"` lines. Parsing those with the TOML parser costs every process
//! hundreds of milliseconds and tens of megabytes at its first connection (a token vector and a
//! value tree for the whole file). This scanner takes such tables out of the text itself, and
//! leaves blank lines in their place (so that line numbers in errors are unchanged), for the
//! TOML parser to read the rest.
//!
//! It is conservative: a table is taken only when every line of it is blank, a comment, or
//! `KEY = "TEXT"` (KEY a rule key; TEXT without `\` or `"`), or `port = DIGITS`; any other line
//! leaves the whole table to the TOML parser. A file with a multi-line string, a `rules` key
//! spelled otherwise (`rules = [...]`, `[rules]`, dotted keys) or anything unusual about its
//! headers is not scanned at all. The caller checks that the two parts add up, and parses the
//! whole text the usual way whenever anything disagrees or an error is to be reported.

#![forbid(unsafe_code)]

use super::RuleSchema;

/// The text without the tables taken, and the rules taken with their place among all
/// `[[rules]]` tables of the file (`None`: nothing taken, parse the text as it is).
pub struct Split {
    pub rest: String,
    pub taken: Vec<(usize, RuleSchema)>,
    pub tables: usize,
}

/// Fewer rules than this are not worth a second look at the text.
const WORTH_IT: usize = 64;

pub fn split(text: &str) -> Option<Split> {
    if text.contains("'''") || text.contains("\"\"\"") {
        return None;
    }
    let mut rest = String::with_capacity(text.len());
    let mut taken = Vec::new();
    let mut tables = 0;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let line = bare(lines[i]);
        if is_rules_header(line) {
            // The table: this header up to the next line that starts another.
            let end = (i + 1..lines.len())
                .find(|&j| bare(lines[j]).starts_with('['))
                .unwrap_or(lines.len());
            match simple_table(&lines[i + 1..end]) {
                Some(rule) => {
                    taken.push((tables, rule));
                    for line in &lines[i..end] {
                        rest.push_str(if line.ends_with('\n') { "\n" } else { "" });
                    }
                }
                None => lines[i..end].iter().for_each(|l| rest.push_str(l)),
            }
            tables += 1;
            i = end;
            continue;
        }
        // `rules` other than as [[rules]] headers: the text is not for us.
        if mentions_rules(line) {
            return None;
        }
        rest.push_str(lines[i]);
        i += 1;
    }
    (taken.len() >= WORTH_IT).then_some(Split {
        rest,
        taken,
        tables,
    })
}

/// A line without its end and surrounding white space.
fn bare(line: &str) -> &str {
    line.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\n')
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
fn simple_table(body: &[&str]) -> Option<RuleSchema> {
    let mut rule = RuleSchema::default();
    for line in body {
        let line = bare(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=')?;
        let (key, value) = (key.trim_end(), value.trim_start());
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
        *slot = Some(basic_string(value)?.to_string());
    }
    Some(rule)
}

/// `"TEXT"` with nothing but a comment after it, TEXT without escapes or quotes.
fn basic_string(value: &str) -> Option<&str> {
    let inner = value.strip_prefix('"')?;
    let end = inner.find('"')?;
    let (text, after) = (&inner[..end], inner[end + 1..].trim_start());
    let plain = !text.contains('\\') && !text.chars().any(|c| c.is_control());
    (plain && (after.is_empty() || after.starts_with('#'))).then_some(text)
}

/// `port = 443` or `port = "8000-8999"`, as the TOML parser would give them.
fn port(value: &str) -> Option<toml::Value> {
    if let Some(text) = basic_string(value) {
        return Some(toml::Value::String(text.to_string()));
    }
    let digits = value.split('#').next()?.trim_end();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 6 {
        return None;
    }
    // TOML forbids leading zeros: leave "0443" to the parser, which says so.
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    Some(toml::Value::Integer(digits.parse().ok()?))
}
