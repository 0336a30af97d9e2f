//! A config's compiled form: what [`super::simple_rules`] took out of its text (the simple
//! `[[rules]]` tables, field by field, with their places) and the rest of the text, written
//! once in the container of [`crate::compiled`] so that the next process that loads the same
//! config reads these fields instead of scanning megabytes of TOML. It holds the text's
//! strings as written, not their meaning: every process still validates them (environment,
//! gateways and lists are its own), and any error is reported from the file's text.
//!
//! Body, little-endian: the length of a text area and the area (every string below, one
//! after the other, checked as UTF-8 once), then the number of `[[rules]]` tables, the rest of
//! the text, the number of rules taken, and per rule its place among the tables, a flag byte
//! (1: `host` is held in the form the rule parser makes of it, so that reading it back needs no
//! second check) and its nine fields in `RuleFields` order. A string is its length (`u32::MAX`:
//! absent), its text the next that many bytes of the area; `port` is a tag (0 absent, 1
//! integer and eight bytes, 2 text).
#![forbid(unsafe_code)]

use super::{PortValue, RuleFields};
use crate::rules::HostMatch;

const ABSENT: u32 = u32::MAX;

/// What a compiled form holds, borrowed from its bytes.
pub struct Parts<'t> {
    pub tables: usize,
    pub rest: &'t str,
    pub taken: Vec<(usize, RuleFields<'t>)>,
}

/// The body for `rest` and `taken`, or `None` if a field cannot be held (a `port` of another
/// TOML type, which the scanner never takes).
pub fn encode(tables: usize, rest: &str, taken: &[(usize, RuleFields<'_>)]) -> Option<Vec<u8>> {
    let mut out = Writer {
        records: Vec::with_capacity(taken.len() * 48 + 16),
        area: String::with_capacity(rest.len() + taken.len() * 32),
    };
    out.word(tables)?;
    out.text(Some(rest))?;
    out.word(taken.len())?;
    for (place, rule) in taken {
        out.word(*place)?;
        // The host as the rule parser leaves it, when it accepts it (else as written: the
        // text's own error is then reported by whoever validates it).
        let normal = rule
            .host
            .and_then(|h| HostMatch::parse_host(h).ok()?.normal_text());
        out.records.push(u8::from(normal.is_some()));
        out.text(normal.as_deref().or(rule.host))?;
        for field in [rule.host_regex, rule.host_list, rule.cidr, rule.cidr_list] {
            out.text(field)?;
        }
        match rule.port {
            None => out.records.push(0),
            Some(PortValue::Integer(n)) => {
                out.records.push(1);
                out.records.extend_from_slice(&n.to_le_bytes());
            }
            Some(PortValue::Text(t)) => {
                out.records.push(2);
                out.text(Some(t))?;
            }
            Some(PortValue::Other(_)) => return None,
        }
        for field in [rule.process, rule.via, rule.action] {
            out.text(field)?;
        }
    }
    let mut body = Vec::with_capacity(4 + out.area.len() + out.records.len());
    body.extend_from_slice(&u32::try_from(out.area.len()).ok()?.to_le_bytes());
    body.extend_from_slice(out.area.as_bytes());
    body.extend_from_slice(&out.records);
    Some(body)
}

/// The parts in `body`, or `None` if it is not a whole, well-formed body.
pub fn decode(body: &[u8]) -> Option<Parts<'_>> {
    let area_len = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let area = std::str::from_utf8(body.get(4..4usize.checked_add(area_len)?)?).ok()?;
    let mut reader = Reader {
        bytes: body,
        at: 4 + area_len,
        area,
        area_at: 0,
    };
    let tables = reader.word()? as usize;
    let rest = reader.text()??;
    let count = reader.word()? as usize;
    // Each rule takes at least 38 bytes of records: a count beyond that is a damaged body.
    let mut taken = Vec::with_capacity(count.min(body.len() / 38));
    for _ in 0..count {
        let place = reader.word()? as usize;
        let host_is_normal = match reader.byte()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let mut rule = RuleFields {
            host_is_normal,
            host: reader.text()?,
            host_regex: reader.text()?,
            host_list: reader.text()?,
            cidr: reader.text()?,
            cidr_list: reader.text()?,
            ..RuleFields::default()
        };
        rule.port = match reader.byte()? {
            0 => None,
            1 => Some(PortValue::Integer(i64::from_le_bytes(
                reader.take(8)?.try_into().ok()?,
            ))),
            2 => Some(PortValue::Text(reader.text()??)),
            _ => return None,
        };
        rule.process = reader.text()?;
        rule.via = reader.text()?;
        rule.action = reader.text()?;
        taken.push((place, rule));
    }
    (reader.at == body.len() && reader.area_at == area.len()).then_some(Parts {
        tables,
        rest,
        taken,
    })
}

/// A body being written: the fixed-size records and the text area their strings point into.
struct Writer {
    records: Vec<u8>,
    area: String,
}

impl Writer {
    fn word(&mut self, value: usize) -> Option<()> {
        let value = u32::try_from(value).ok().filter(|&v| v != ABSENT)?;
        self.records.extend_from_slice(&value.to_le_bytes());
        Some(())
    }

    fn text(&mut self, value: Option<&str>) -> Option<()> {
        match value {
            None => self.records.extend_from_slice(&ABSENT.to_le_bytes()),
            Some(t) => {
                self.word(t.len())?;
                self.area.push_str(t);
            }
        }
        Some(())
    }
}

/// A cursor over a body; every read is bounds-checked.
struct Reader<'t> {
    bytes: &'t [u8],
    at: usize,
    /// The text area, already checked as UTF-8, and how much of it the strings read so far
    /// took.
    area: &'t str,
    area_at: usize,
}

impl<'t> Reader<'t> {
    fn take(&mut self, len: usize) -> Option<&'t [u8]> {
        let bytes = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(bytes)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn word(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    /// `Some(None)` for an absent field, `None` for a damaged body.
    fn text(&mut self) -> Option<Option<&'t str>> {
        match self.word()? {
            ABSENT => Some(None),
            len => {
                let end = self.area_at.checked_add(len as usize)?;
                // `get` refuses a range that would cut a character: a damaged length.
                let text = self.area.get(self.area_at..end)?;
                self.area_at = end;
                Some(Some(text))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_reads_back_as_written_and_a_damaged_one_not_at_all() {
        let rules = [
            (
                0,
                RuleFields {
                    host: Some("*.Example.test."),
                    via: Some("corp"),
                    port: Some(PortValue::Integer(443)),
                    ..RuleFields::default()
                },
            ),
            (
                2,
                RuleFields {
                    cidr: Some("10.0.0.0/8"),
                    action: Some("deny"),
                    port: Some(PortValue::Text("8000-8999")),
                    process: Some("node"),
                    ..RuleFields::default()
                },
            ),
        ];
        let body = encode(3, "[log]\npath = \"off\"\n", &rules).unwrap();
        let parts = decode(&body).unwrap();
        assert_eq!(parts.tables, 3);
        assert_eq!(parts.rest, "[log]\npath = \"off\"\n");
        let normal = RuleFields {
            host: Some("*.example.test"),
            host_is_normal: true,
            ..rules[0].1
        };
        assert_eq!(parts.taken, [(0, normal), rules[1]]);
        for cut in 0..body.len() {
            assert!(decode(&body[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(decode(&longer).is_none());
        let other = RuleFields {
            port: Some(PortValue::Other("array")),
            ..RuleFields::default()
        };
        assert!(encode(1, "", &[(0, other)]).is_none());
    }
}
