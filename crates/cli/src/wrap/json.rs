//! The JSON shapes (JSON with comments and trailing commas too): `mcpServers` (Claude Desktop,
//! Claude Code's `.mcp.json`, Cursor, Windsurf), Claude Code's `~/.claude.json` (`mcpServers` and
//! `projects.<path>.mcpServers`), VS Code's `servers` (`.vscode/mcp.json`, or `mcp.servers` in
//! its settings) and Zed's `context_servers` (the command a string with `args` beside it, or the
//! older `{"path", "args", "env"}` object).
//!
//! Edits are splices into the text at the byte ranges the parser reports: every byte outside
//! the values changed stays as it was (comments, blank lines, key order, indentation, trailing
//! commas, escapes). What `wrap` inserts is shaped after what surrounds it (the separator between
//! an array's elements, the indentation of the entry's keys), and `unwrap` deletes exactly what
//! `wrap` inserted, so that a round trip gives the file back byte for byte.
//!
//! The parser is jsonc-parser's: its abstract syntax tree carries the range of every value. (Its
//! concrete syntax tree can edit too, but formats what it inserts in its own way, and what it
//! removes does not give the original back.)

#![forbid(unsafe_code)]

use jsonc_parser::ast::{Array, Object, ObjectProp, Value};
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions};

use super::entry::{self, Args, Plan, View};
use super::{Edit, EntryReport, Outcome, Wrapper};

/// One object of servers in the file, and how it names them in messages.
struct ServerMap<'t, 'a> {
    label: String,
    servers: &'t Object<'a>,
}

/// Parses `text` as JSON with comments; `Ok(None)` when it is not JSON at all.
fn parse(text: &str) -> Result<Object<'_>, String> {
    let parsed =
        jsonc_parser::parse_to_ast(text, &CollectOptions::default(), &ParseOptions::default())
            .map_err(|e| format!("not valid JSON: {e}"))?;
    match parsed.value {
        Some(Value::Object(root)) => Ok(root),
        Some(_) => Err("the file's top level is not a JSON object".into()),
        None => Err("the file is empty".into()),
    }
}

/// Whether the text parses as JSON (with comments): how a file is told from TOML.
pub fn is_json(text: &str) -> bool {
    jsonc_parser::parse_to_ast(text, &CollectOptions::default(), &ParseOptions::default()).is_ok()
}

/// The last property of that name (as JavaScript's JSON.parse, which the clients use, keeps).
fn prop<'t, 'a>(object: &'t Object<'a>, name: &str) -> Option<&'t ObjectProp<'a>> {
    object
        .properties
        .iter()
        .rev()
        .find(|p| p.name.as_str() == name)
}

fn object_at<'t, 'a>(object: &'t Object<'a>, name: &str) -> Option<&'t Object<'a>> {
    match prop(object, name).map(|p| &p.value) {
        Some(Value::Object(inner)) => Some(inner),
        _ => None,
    }
}

/// A name as messages show it: bare, or quoted when it has characters that would confuse.
fn shown(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        name.to_string()
    } else {
        serde_json::to_string(name).unwrap_or_default()
    }
}

/// Every object of servers the file has, in the file's order of kinds.
fn server_maps<'t, 'a>(root: &'t Object<'a>) -> Vec<ServerMap<'t, 'a>> {
    let mut maps = Vec::new();
    if let Some(servers) = object_at(root, "mcpServers") {
        maps.push(ServerMap {
            label: "mcpServers".into(),
            servers,
        });
    }
    if let Some(projects) = object_at(root, "projects") {
        for project in &projects.properties {
            if let Value::Object(settings) = &project.value {
                if let Some(servers) = object_at(settings, "mcpServers") {
                    maps.push(ServerMap {
                        label: format!("projects.{}.mcpServers", shown(project.name.as_str())),
                        servers,
                    });
                }
            }
        }
    }
    if let Some(servers) = object_at(root, "servers") {
        maps.push(ServerMap {
            label: "servers".into(),
            servers,
        });
    }
    if let Some(servers) = object_at(root, "mcp").and_then(|mcp| object_at(mcp, "servers")) {
        maps.push(ServerMap {
            label: "mcp.servers".into(),
            servers,
        });
    }
    if let Some(servers) = object_at(root, "context_servers") {
        maps.push(ServerMap {
            label: "context_servers".into(),
            servers,
        });
    }
    maps
}

/// Where an entry's command lives: the entry itself (`command`), or Zed's older command object
/// (`command: {"path", "args", "env"}`).
struct Holder<'t, 'a> {
    object: &'t Object<'a>,
    key: &'static str,
}

fn holder<'t, 'a>(entry: &'t Object<'a>) -> Holder<'t, 'a> {
    match object_at(entry, "command") {
        Some(inner) => Holder {
            object: inner,
            key: "path",
        },
        None => Holder {
            object: entry,
            key: "command",
        },
    }
}

fn string<'t>(value: &'t Value) -> Option<&'t str> {
    match value {
        Value::StringLit(lit) => Some(lit.value.as_ref()),
        _ => None,
    }
}

/// Reads an entry into the common view.
fn view_of(entry: &Object, holder: &Holder) -> View {
    let command = prop(holder.object, holder.key);
    let mut view = View {
        command: command.and_then(|p| string(&p.value)).map(str::to_string),
        command_not_text: command.is_some_and(|p| string(&p.value).is_none()),
        ..View::default()
    };
    view.args = match prop(holder.object, "args").map(|p| &p.value) {
        None => Args::Absent,
        Some(Value::Array(array)) => Args::List(
            array
                .elements
                .iter()
                .map(|e| string(e).map(str::to_string))
                .collect(),
        ),
        Some(_) => Args::NotList,
    };
    if let Some(env) = object_at(holder.object, "env") {
        view.env = env
            .properties
            .iter()
            .map(|p| p.name.as_str().to_string())
            .collect();
    }
    view.remote = prop(entry, "type")
        .and_then(|p| string(&p.value))
        .and_then(entry::remote_type)
        .or_else(|| {
            entry::REMOTE_KEYS
                .iter()
                .find(|key| prop(entry, key).is_some())
                .map(|key| entry::Remote::Key(key))
        });
    view
}

/// Walks every entry of every server map, calling `act` with the entry's name (as messages show
/// it), the entry and its holder; entries that are not objects are reported as skipped.
fn each_entry(
    root: &Object,
    reports: &mut Vec<EntryReport>,
    mut act: impl FnMut(String, &Object, &Holder) -> EntryReport,
) -> Result<(), String> {
    let maps = server_maps(root);
    if maps.is_empty() {
        return Err(
            "no MCP servers in this file: it has none of mcpServers (Claude Desktop, \
                    Claude Code, Cursor, Windsurf), projects.*.mcpServers (~/.claude.json), \
                    servers (VS Code), context_servers (Zed)"
                .into(),
        );
    }
    for map in maps {
        for server in &map.servers.properties {
            let name = format!("{}.{}", map.label, shown(server.name.as_str()));
            match &server.value {
                Value::Object(entry) => {
                    let holder = holder(entry);
                    reports.push(act(name, entry, &holder));
                }
                _ => reports.push(EntryReport::new(
                    name,
                    Outcome::Skipped("not an object".into()),
                )),
            }
        }
    }
    Ok(())
}

/// The edits that put every local server of the file under `mcp-redirect run`.
pub fn wrap(text: &str, wrapper: &Wrapper) -> Result<(Vec<Edit>, Vec<EntryReport>), String> {
    let root = parse(text)?;
    let mut edits = Vec::new();
    let mut reports = Vec::new();
    each_entry(&root, &mut reports, |name, entry, holder| {
        let view = view_of(entry, holder);
        let outcome = match entry::plan(&view) {
            Plan::Wrap => {
                wrap_entry(text, holder, wrapper, &mut edits);
                Outcome::Wrapped(entry::command_line(&view))
            }
            Plan::Already => Outcome::Already,
            Plan::Remote(reason) => Outcome::Remote(reason),
            Plan::Skip(reason) => Outcome::Skipped(reason),
        };
        EntryReport::wrapped(name, outcome, &view)
    })?;
    Ok((edits, reports))
}

/// The edits that give every wrapped entry its own command back.
pub fn unwrap(text: &str) -> Result<(Vec<Edit>, Vec<EntryReport>), String> {
    let root = parse(text)?;
    let mut edits = Vec::new();
    let mut reports = Vec::new();
    each_entry(&root, &mut reports, |name, entry, holder| {
        let view = view_of(entry, holder);
        let outcome = match entry::wrapped_at(&view) {
            Some(at) => {
                unwrap_entry(text, holder, at, &mut edits);
                return EntryReport::unwrapped(name, &view, at);
            }
            None => Outcome::NotWrapped,
        };
        EntryReport::new(name, outcome)
    })?;
    Ok((edits, reports))
}

/// The newline the file uses.
fn newline(text: &str) -> &'static str {
    if text.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    }
}

/// The whitespace that starts the line `at` is on.
fn indent_of(text: &str, at: usize) -> &str {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[start..];
    let end = line
        .find(|c: char| c != ' ' && c != '\t')
        .unwrap_or(line.len());
    &line[..end]
}

/// The text between two values as a separator to repeat: as it is when it holds only a comma
/// and whitespace; else a comma and a line break with `next`'s indentation (or a space).
fn separator(text: &str, gap: std::ops::Range<usize>, next: usize) -> String {
    let between = &text[gap];
    if !between.contains('/') && between.trim_start().starts_with(',') {
        between.to_string()
    } else if between.contains('\n') {
        format!(",{}{}", newline(text), indent_of(text, next))
    } else {
        ", ".to_string()
    }
}

/// A separator for a list that has one item (or none) to learn from: a line break and the
/// item's indentation when the item starts its own line, else `in_line`.
fn separator_before(text: &str, opening: usize, first: usize, in_line: &str) -> String {
    if text[opening..first].contains('\n') {
        format!(",{}{}", newline(text), indent_of(text, first))
    } else {
        in_line.to_string()
    }
}

/// How the object separates its keys' values from one another in one line: `,` in a compact
/// object, else `, `. Words `wrap` writes in one line are separated alike.
fn item_separator(text: &str, object: &Object) -> &'static str {
    let compact = object.properties.windows(2).any(|pair| {
        let (a, b) = (pair[0].range().end, pair[1].range().start);
        &text[a..b] == ","
    });
    if compact {
        ","
    } else {
        ", "
    }
}

/// What is between a key and its value (`: `, `:`), as the command's key has it.
fn colon(text: &str, property: &ObjectProp) -> String {
    let between = &text[property.name.range().end..property.value.range().start];
    if between.contains('/') {
        ": ".to_string()
    } else {
        between.to_string()
    }
}

fn quoted(word: &str) -> String {
    serde_json::to_string(word).expect("a string serializes")
}

/// The words `wrap` puts before the original command (JSON strings, in the file's syntax).
fn prefix_words(wrapper: &Wrapper) -> [String; 4] {
    [
        quoted("run"),
        quoted("--config"),
        quoted(&wrapper.config),
        quoted("--"),
    ]
}

/// `command` becomes this program; `args` gets `run --config CONFIG -- COMMAND` in front (the
/// original command's text copied as it was written), or is added after `command` when there
/// was none.
fn wrap_entry(text: &str, holder: &Holder, wrapper: &Wrapper, edits: &mut Vec<Edit>) {
    let object = holder.object;
    let command = prop(object, holder.key).expect("planned: a command");
    let command_range = command.value.range();
    let original = &text[command_range.start..command_range.end];
    edits.push(Edit::replace(
        command_range.start..command_range.end,
        quoted(&wrapper.program),
    ));
    let mut words: Vec<String> = prefix_words(wrapper).to_vec();
    words.push(original.to_string());
    let in_line = item_separator(text, object);
    match prop(object, "args").map(|p| &p.value) {
        Some(Value::Array(array)) => wrap_args(text, array, &words, in_line, edits),
        Some(_) => unreachable!("planned: args is an array"),
        None => {
            let rendered = format!("\"args\"{}[{}]", colon(text, command), words.join(in_line));
            let index = object
                .properties
                .iter()
                .position(|p| std::ptr::eq(p, command))
                .expect("the command is a property of its object");
            let command_end = command.range().end;
            match object.properties.get(index + 1) {
                // Before the next key, separated from it as the command is from it.
                Some(next) => {
                    let next_start = next.range().start;
                    let sep = separator(text, command_end..next_start, next_start);
                    edits.push(Edit::insert(next_start, format!("{rendered}{sep}")));
                }
                // The last key: after it, separated as the keys before it are.
                None => {
                    let command_start = command.range().start;
                    let sep = match index.checked_sub(1).map(|i| &object.properties[i]) {
                        Some(previous) => {
                            separator(text, previous.range().end..command_start, command_start)
                        }
                        None => {
                            separator_before(text, object.range().start + 1, command_start, in_line)
                        }
                    };
                    edits.push(Edit::insert(command_end, format!("{sep}{rendered}")));
                }
            }
        }
    }
}

/// Inserts `words` before the first element of `array`, separated as its elements are (or, in
/// an empty array, with `in_line`).
fn wrap_args(text: &str, array: &Array, words: &[String], in_line: &str, edits: &mut Vec<Edit>) {
    let elements = &array.elements;
    let Some(first) = elements.first() else {
        edits.push(Edit::insert(array.range().start + 1, words.join(in_line)));
        return;
    };
    let first_start = first.range().start;
    let sep = match elements.get(1) {
        Some(second) => {
            let second_start = second.range().start;
            separator(text, first.range().end..second_start, second_start)
        }
        None => separator_before(text, array.range().start + 1, first_start, in_line),
    };
    edits.push(Edit::insert(
        first_start,
        format!("{}{sep}", words.join(&sep)),
    ));
}

/// The inverse of `wrap_entry`: the command's text back from after `--`, and what was inserted
/// before the original arguments deleted. When the original had no arguments, the `args` key is
/// removed if it sits where `wrap` would have added it, as `wrap` would have written it; else
/// the array is emptied.
fn unwrap_entry(text: &str, holder: &Holder, at: usize, edits: &mut Vec<Edit>) {
    let object = holder.object;
    let command = prop(object, holder.key).expect("wrapped: a command");
    let args_prop = prop(object, "args").expect("wrapped: args");
    let Value::Array(array) = &args_prop.value else {
        unreachable!("wrapped: args is an array")
    };
    let elements = &array.elements;
    let original = elements[at + 1].range();
    let command_range = command.value.range();
    edits.push(Edit::replace(
        command_range.start..command_range.end,
        text[original.start..original.end].to_string(),
    ));
    let first = elements[0].range().start;
    if let Some(kept) = elements.get(at + 2) {
        edits.push(Edit::delete(first..kept.range().start));
        return;
    }
    // No arguments of its own: added by wrap, or an empty array it filled?
    let array_range = array.range();
    let rendered: Vec<&str> = elements
        .iter()
        .map(|e| {
            let r = e.range();
            &text[r.start..r.end]
        })
        .collect();
    let as_wrap_writes = text[array_range.start..array_range.end]
        == format!("[{}]", rendered.join(item_separator(text, object)));
    let index = |p: &ObjectProp| {
        object
            .properties
            .iter()
            .position(|q| std::ptr::eq(q, p))
            .expect("a property of its object")
    };
    let (command_index, args_index) = (index(command), index(args_prop));
    let (command_end, args_range) = (command.range().end, args_prop.range());
    let plain = |range: std::ops::Range<usize>| {
        let between = &text[range];
        !between.contains('/') && between.trim_start().starts_with(',')
    };
    if as_wrap_writes && args_index == command_index + 1 && plain(command_end..args_range.start) {
        match object.properties.get(args_index + 1) {
            Some(next) => {
                let next_start = next.range().start;
                if text[command_end..args_range.start] == text[args_range.end..next_start] {
                    edits.push(Edit::delete(args_range.start..next_start));
                    return;
                }
            }
            None => {
                edits.push(Edit::delete(command_end..args_range.end));
                return;
            }
        }
    }
    let last = elements[at + 1].range().end;
    edits.push(Edit::delete(first..last));
}
