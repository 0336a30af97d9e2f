//! A problem validation finds in a config file: the key it is about, as typed segments, and
//! what is wrong; and the table a TOML error falls in. The line and column are looked up from the
//! TOML parser's spans only when the problem is reported, so that a valid file of 70,000 rules is
//! never parsed for spans.
#![forbid(unsafe_code)]

use std::fmt;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a key path: a key in a table, or an index into an array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySegment {
    Key(String),
    Index(usize),
}

/// Where a value is in the file, as `rules[3].host` or `gateways.corp.endpoints[0]` names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<KeySegment>);

impl KeyPath {
    /// A top-level key: `default`, `dns`, `rules`.
    pub fn top(name: &str) -> KeyPath {
        KeyPath(vec![KeySegment::Key(name.to_string())])
    }

    /// `rules[index]`, the key path of a rule.
    pub fn rule(index: usize) -> KeyPath {
        KeyPath::top("rules").index(index)
    }

    /// `gateways.name`, the key path of a gateway.
    pub fn gateway(name: &str) -> KeyPath {
        KeyPath::top("gateways").key(name)
    }

    /// This path followed by the key `name`.
    pub fn key(mut self, name: &str) -> KeyPath {
        self.0.push(KeySegment::Key(name.to_string()));
        self
    }

    /// This path followed by the array index `index`.
    pub fn index(mut self, index: usize) -> KeyPath {
        self.0.push(KeySegment::Index(index));
        self
    }

    pub fn segments(&self) -> &[KeySegment] {
        &self.0
    }
}

/// Written as the messages write it: keys joined by `.`, indices in brackets, keys unquoted.
impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                KeySegment::Key(name) if i == 0 => write!(f, "{name}")?,
                KeySegment::Key(name) => write!(f, ".{name}")?,
                KeySegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A validation problem: the key and what is wrong with it (`"\"x\" must be \"v2\""`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: KeyPath,
    pub message: String,
}

impl ConfigProblem {
    pub fn new(key: KeyPath, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            key,
            message: message.into(),
        }
    }

    /// The one-line message, with the line and column of the key in `text` when it is written
    /// there: `rules[1].cidr: line 9, column 1: bad`, else `rules[1].cidr: bad`.
    pub fn describe(&self, text: &str) -> String {
        match locate(text, &self.key) {
            Some((line, column)) => {
                format!(
                    "{}: line {line}, column {column}: {}",
                    self.key, self.message
                )
            }
            None => self.to_string(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The line and column (from 1) where `key` is written in `text`, from the TOML parser's spans:
/// a key's own position (`cidr = ...`), a table's header (`[gateways.corp]`, `[[rules]]`). An
/// element of an array of values is reported at its array's key, as the line that holds it. `None`
/// when the text is not TOML or does not write the key (a default validated against another key).
pub fn locate(text: &str, key: &KeyPath) -> Option<(usize, usize)> {
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    let mut offset = None;
    for segment in key.segments() {
        match segment {
            KeySegment::Key(name) => {
                if let Some(found) = value {
                    table = found.get_ref().as_table()?;
                }
                let (k, v) = table.iter().find(|(k, _)| k.get_ref() == name)?;
                // A `[table]` header holds its own key: the header is where the table starts.
                offset = Some(k.span().start.min(v.span().start));
                value = Some(v);
            }
            KeySegment::Index(index) => {
                let element = value?.get_ref().as_array()?.get(*index)?;
                if element.get_ref().is_table() {
                    offset = Some(element.span().start);
                }
                value = Some(element);
            }
        }
    }
    offset.map(|offset| line_column(text, offset))
}

/// The table a byte offset of `text` falls in, as the messages name it (`rules[2]`,
/// `gateways.corp`; no segments at the top level): for an error the TOML parser reports at that
/// offset, of a text that may not parse (the parser recovers and reads on). From the parser's
/// spans: a `[table]` or `[[array]]` header owns the text up to the next header, an inline table
/// the text between its braces.
pub fn table_at(text: &str, offset: usize) -> KeyPath {
    let (root, _errors) = DeTable::parse_recoverable(text);
    let mut owner = None;
    find_owner(
        text,
        root.get_ref(),
        offset,
        &KeyPath::default(),
        &mut owner,
    );
    owner.map(|(_, key)| key).unwrap_or_default()
}

/// Walks the tables under `table` (at `key`), keeping in `owner` the one that owns `offset` and
/// starts last, with where it starts.
fn find_owner(
    text: &str,
    table: &DeTable<'_>,
    offset: usize,
    key: &KeyPath,
    owner: &mut Option<(usize, KeyPath)>,
) {
    let mut visit = |value: &Spanned<DeValue<'_>>, key: KeyPath| {
        let DeValue::Table(inner) = value.get_ref() else {
            return;
        };
        let span = value.span();
        // A table made by a dotted key, or named by a longer header, owns no text of its own.
        let owns = match text.as_bytes().get(span.start) {
            Some(b'[') => span.start <= offset,
            Some(b'{') => span.contains(&offset),
            _ => false,
        };
        if owns && owner.as_ref().is_none_or(|(start, _)| span.start > *start) {
            *owner = Some((span.start, key.clone()));
        }
        find_owner(text, inner, offset, &key, owner);
    };
    for (name, value) in table.iter() {
        let key = key.clone().key(name.get_ref());
        match value.get_ref().as_array() {
            Some(elements) => {
                for (index, element) in elements.iter().enumerate() {
                    visit(element, key.clone().index(index));
                }
            }
            None => visit(value, key),
        }
    }
}

/// The line and column (from 1, the column in bytes) of a byte offset into `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, key: KeyPath) -> Option<(usize, usize)> {
        locate(text, &key)
    }

    #[test]
    fn key_paths_are_written_as_the_messages_name_them() {
        let path = KeyPath::gateway("a.b").key("endpoints").index(2);
        assert_eq!(path.to_string(), "gateways.a.b.endpoints[2]");
        assert_eq!(KeyPath::rule(3).key("host").to_string(), "rules[3].host");
        let problem = ConfigProblem::new(KeyPath::top("default"), "bad");
        assert_eq!(problem.to_string(), "default: bad");
        assert_eq!(
            problem.describe("default = 1\n"),
            "default: line 1, column 1: bad"
        );
        assert_eq!(problem.describe("not toml ["), "default: bad");
    }

    /// An error is placed in the table whose header (or braces) its offset falls under, read
    /// from the parser's spans, for a syntax error too.
    #[test]
    fn errors_are_placed_in_the_table_that_owns_their_offset() {
        let table = |text: &str, at: &str| table_at(text, text.find(at).unwrap()).to_string();
        let text = "top = 1\n[gateways.corp]\nkind = \"x\"\n\n[[rules]]\nhost = \"a\"\n[[ rules ]] # b\nhots = \"b\"\n";
        assert_eq!(table(text, "top"), "");
        assert_eq!(table(text, "kind"), "gateways.corp");
        assert_eq!(
            table(text, "[gateways"),
            "gateways.corp",
            "a header owns itself"
        );
        assert_eq!(table(text, "hots"), "rules[1]");
        let inline = "rules = [{ host = \"a\" }, { hots = \"b\" }]\nx = 1\n";
        assert_eq!(table(inline, "hots"), "rules[1]");
        assert_eq!(
            table(inline, "x ="),
            "",
            "an inline table owns only its braces"
        );
        let multiline = "a = \"\"\"\n[not.a.header]\n\"\"\"\nb = 1\n";
        assert_eq!(
            table(multiline, "b ="),
            "",
            "a header inside a string is not one"
        );
        // Syntax errors: the text before the (first) error is read, the error is placed in it.
        let at_error = |text: &str| {
            let error = text.parse::<toml::Table>().unwrap_err();
            table_at(text, error.span().unwrap().start).to_string()
        };
        assert_eq!(
            at_error("[[rules]]\nhost = \"a\"\n\n  junk\n[[rules]]\n"),
            "rules[0]",
            "a header owns the text up to the next header"
        );
        assert_eq!(at_error("[[rules]]\n[dns]\nmode =\n[log]\n"), "dns");
        assert_eq!(
            at_error("[[rules]]\n[[rules]]\nhost = \"a\"\nhost = 1\n"),
            "rules[1]"
        );
    }

    /// Keys are found by what the parser read, not by how a line looks: headers, quoted and
    /// dotted keys, inline tables and arrays of them.
    #[test]
    fn keys_are_located_from_the_parsers_spans() {
        let text = "top = 1\n\n[gateways.\"a.b\"]\n  kind = \"x\"\nendpoints = [\n  \"p:1\",\n]\nheaders = { \"X-A\" = \"v\" }\n\n[[rules]]\nhost = \"a\"\n  [[ rules ]]\n\"cidr\" = \"b\"\n";
        assert_eq!(at(text, KeyPath::top("top")), Some((1, 1)));
        assert_eq!(at(text, KeyPath::gateway("a.b")), Some((3, 1)));
        assert_eq!(at(text, KeyPath::gateway("a.b").key("kind")), Some((4, 3)));
        // An element of an array of values is reported at the array's key.
        let endpoint = KeyPath::gateway("a.b").key("endpoints").index(0);
        assert_eq!(at(text, endpoint), Some((5, 1)));
        let header = KeyPath::gateway("a.b").key("headers").key("X-A");
        assert_eq!(at(text, header), Some((8, 13)));
        assert_eq!(at(text, KeyPath::rule(0)), Some((10, 1)));
        assert_eq!(at(text, KeyPath::rule(1)), Some((12, 3)));
        assert_eq!(at(text, KeyPath::rule(1).key("cidr")), Some((13, 1)));
        assert_eq!(
            at("dns.mode = 1\n", KeyPath::top("dns").key("mode")),
            Some((1, 5))
        );
        let inline = "rules = [{ host = \"a\" }]\n";
        assert_eq!(at(inline, KeyPath::rule(0).key("host")), Some((1, 12)));
        // Keys that are not written (a default validated against another key), or out of range.
        assert_eq!(at(text, KeyPath::rule(0).key("port")), None);
        assert_eq!(at(text, KeyPath::rule(2)), None);
        assert_eq!(at(text, KeyPath::top("top").key("x")), None);
        assert_eq!(at(text, KeyPath::top("top").index(0)), None);
    }
}
