//! Codex's `~/.codex/config.toml` (and a project's `.codex/config.toml`): a server is a table
//! `[mcp_servers.NAME]` (or an inline table) with `command`, `args` and `env`, or `url` for a
//! remote one.
//!
//! Edited with toml_edit, which keeps everything it does not touch as it was written. The values
//! `wrap` adds are given their spacing explicitly, after the array's own, and the original
//! command's value is moved into the array as it was written (quotes and escapes included), so
//! that `unwrap` gives the file back byte for byte.

#![forbid(unsafe_code)]

use toml_edit::{Array, Decor, DocumentMut, Item, RawString, TableLike, Value};

use super::entry::{self, Args, Plan, View};
use super::{EntryReport, Outcome, Wrapper};

fn parse(text: &str) -> Result<DocumentMut, String> {
    text.parse::<DocumentMut>()
        .map_err(|e| format!("not valid TOML: {e}"))
}

/// The servers' table, and the label messages give them.
fn servers(document: &mut DocumentMut) -> Result<&mut dyn TableLike, String> {
    document
        .get_mut("mcp_servers")
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| "no MCP servers in this file: it has no [mcp_servers] table (Codex)".into())
}

fn view_of(entry: &dyn TableLike) -> View {
    let command = entry.get("command");
    let mut view = View {
        command: command.and_then(Item::as_str).map(str::to_string),
        command_not_text: command.is_some_and(|c| c.as_str().is_none()),
        ..View::default()
    };
    view.args = match entry.get("args") {
        None => Args::Absent,
        Some(item) => match item.as_array() {
            Some(array) => Args::List(
                array
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect(),
            ),
            None => Args::NotList,
        },
    };
    if let Some(env) = entry.get("env").and_then(Item::as_table_like) {
        view.env = env.iter().map(|(k, _)| k.to_string()).collect();
    }
    view.remote = entry
        .get("type")
        .and_then(Item::as_str)
        .and_then(entry::remote_type)
        .or_else(|| {
            entry::REMOTE_KEYS
                .iter()
                .find(|key| entry.contains_key(key))
                .map(|key| entry::Remote::Key(key))
        });
    view
}

/// Calls `act` on every server entry; entries that are not tables are reported as skipped.
fn each_entry(
    document: &mut DocumentMut,
    mut act: impl FnMut(&str, &mut dyn TableLike) -> EntryReport,
) -> Result<Vec<EntryReport>, String> {
    let servers = servers(document)?;
    let mut reports = Vec::new();
    for (name, item) in servers.iter_mut() {
        let label = format!("mcp_servers.{}", name.get());
        match item.as_table_like_mut() {
            Some(entry) => reports.push(act(&label, entry)),
            None => reports.push(EntryReport::new(
                label,
                Outcome::Skipped("not a table".into()),
            )),
        }
    }
    Ok(reports)
}

pub fn wrap(text: &str, wrapper: &Wrapper) -> Result<(String, Vec<EntryReport>), String> {
    let mut document = parse(text)?;
    let reports = each_entry(&mut document, |name, entry| {
        let view = view_of(entry);
        let outcome = match entry::plan(&view) {
            Plan::Wrap => {
                wrap_entry(entry, wrapper);
                Outcome::Wrapped(entry::command_line(&view))
            }
            Plan::Already => Outcome::Already,
            Plan::Remote(reason) => Outcome::Remote(reason),
            Plan::Skip(reason) => Outcome::Skipped(reason),
        };
        EntryReport::wrapped(name.to_string(), outcome, &view)
    })?;
    Ok((document.to_string(), reports))
}

pub fn unwrap(text: &str) -> Result<(String, Vec<EntryReport>), String> {
    let mut document = parse(text)?;
    let reports = each_entry(&mut document, |name, entry| {
        let view = view_of(entry);
        let outcome = match entry::wrapped_at(&view) {
            Some(at) => {
                unwrap_entry(entry, at);
                return EntryReport::unwrapped(name.to_string(), &view, at);
            }
            None => Outcome::NotWrapped,
        };
        EntryReport::new(name.to_string(), outcome)
    })?;
    Ok((document.to_string(), reports))
}

/// A decor with exactly these parts (`None`: toml_edit's default for the place).
fn decor(prefix: Option<&RawString>, suffix: Option<&RawString>) -> Decor {
    let mut decor = Decor::default();
    if let Some(prefix) = prefix {
        decor.set_prefix(prefix.clone());
    }
    if let Some(suffix) = suffix {
        decor.set_suffix(suffix.clone());
    }
    decor
}

fn raw(decor_part: Option<&RawString>) -> &str {
    decor_part.and_then(RawString::as_str).unwrap_or("")
}

/// A value with the given spacing around it.
fn spaced(mut value: Value, prefix: &str) -> Value {
    *value.decor_mut() = Decor::new(prefix, "");
    value
}

fn wrap_entry(entry: &mut dyn TableLike, wrapper: &Wrapper) {
    let command = entry
        .get_mut("command")
        .and_then(Item::as_value_mut)
        .expect("planned: a command");
    let original = command.clone();
    *command = Value::from(wrapper.program.as_str()).decorated_like(&original);
    let mut words: Vec<Value> = ["run", "--config", wrapper.config.as_str(), "--"]
        .into_iter()
        .map(Value::from)
        .collect();
    words.push(original);
    match entry.get_mut("args").and_then(Item::as_array_mut) {
        Some(args) => wrap_args(args, words),
        None => {
            let mut args = Array::new();
            for (i, word) in words.into_iter().enumerate() {
                args.push_formatted(spaced(word, if i == 0 { "" } else { " " }));
            }
            entry.insert("args", Item::Value(Value::Array(args)));
        }
    }
}

trait DecoratedLike {
    fn decorated_like(self, other: &Value) -> Value;
}

impl DecoratedLike for Value {
    /// This value with `other`'s spacing and comments around it.
    fn decorated_like(mut self, other: &Value) -> Value {
        *self.decor_mut() = other.decor().clone();
        self
    }
}

/// The words go first, separated as the array's elements are; the element that was first takes
/// the separator, and the first word its spacing.
fn wrap_args(args: &mut Array, words: Vec<Value>) {
    if args.is_empty() {
        for (i, word) in words.into_iter().enumerate() {
            args.insert_formatted(i, spaced(word, if i == 0 { "" } else { " " }));
        }
        return;
    }
    let first = args.get(0).expect("not empty").decor().clone();
    let learned = match args.get(1) {
        Some(second) => raw(second.decor().prefix()).to_string(),
        None => raw(first.prefix()).to_string(),
    };
    // One element on the line of the bracket: a space. Else the spacing before the second
    // element (or the only one), without a comment it may hold: that stays where it was.
    let separator = match learned.rfind('\n') {
        None if args.len() == 1 => " ".to_string(),
        Some(at) if args.len() == 1 || learned.contains('#') => learned[at..].to_string(),
        _ => learned,
    };
    for (i, word) in words.into_iter().enumerate() {
        let word = if i == 0 {
            let mut word = word;
            *word.decor_mut() = decor(first.prefix(), Some(&RawString::from("")));
            word
        } else {
            spaced(word, &separator)
        };
        args.insert_formatted(i, word);
    }
    let moved = args.get_mut(5).expect("the element that was first");
    let suffix = moved.decor().suffix().cloned();
    *moved.decor_mut() = decor(Some(&RawString::from(separator)), suffix.as_ref());
}

/// The inverse of `wrap_entry`.
fn unwrap_entry(entry: &mut dyn TableLike, at: usize) {
    // The keys with values (not sub-tables, which come after them whatever their place).
    let keys: Vec<String> = entry
        .iter()
        .filter(|(_, item)| item.is_value())
        .map(|(k, _)| k.to_string())
        .collect();
    let args = entry
        .get_mut("args")
        .and_then(Item::as_array_mut)
        .expect("wrapped: args");
    let original = args.get(at + 1).expect("wrapped: a command").clone();
    let first_prefix = args.get(0).and_then(|v| v.decor().prefix().cloned());
    let kept = args.len() > at + 2;
    // Added by wrap (the table's last key, spaced as wrap spaces it), or an array it filled?
    let as_wrap_writes = keys.last().map(String::as_str) == Some("args")
        && args
            .decor()
            .prefix()
            .is_none_or(|p| p.as_str() == Some(" "))
        && args.trailing().as_str() == Some("")
        && !args.trailing_comma()
        && args.iter().enumerate().all(|(i, v)| {
            raw(v.decor().prefix()) == if i == 0 { "" } else { " " }
                && raw(v.decor().suffix()).is_empty()
        });
    for _ in 0..=at + 1 {
        args.remove(0);
    }
    if kept {
        let first = args.get_mut(0).expect("kept");
        let suffix = first.decor().suffix().cloned();
        *first.decor_mut() = decor(first_prefix.as_ref(), suffix.as_ref());
    } else if as_wrap_writes {
        entry.remove("args");
    }
    let command = entry
        .get_mut("command")
        .and_then(Item::as_value_mut)
        .expect("wrapped: a command");
    *command = original.decorated_like(command);
}
