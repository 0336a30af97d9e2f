//! `mcp-redirect wrap FILE` and `unwrap FILE`: put every local (stdio) server of an MCP
//! client's config under `mcp-redirect run --config CONFIG --`, and take them out again.
//!
//! An MCP client starts each local server itself, from the entry's `command` and `args`, with a
//! filtered environment: what a shell exports never reaches the server. So the entry itself must
//! start `mcp-redirect run`. `wrap` rewrites each such entry: `command` becomes this program
//! (an absolute path) and `args` becomes `["run", "--config", CONFIG, "--", COMMAND, ARGS...]`.
//! The original command and arguments are exactly what follows `--`, which is all `unwrap`
//! needs to give them back.
//!
//! Owns: finding the format, the report, the backup and the atomic replacement. The edits are
//! the JSON and TOML modules'; what to do with an entry is `entry`'s.
//!
//! - Left alone: entries already wrapped (idempotent), remote servers (a URL: the client itself
//!   connects to them, so no process of theirs could be put under `run`), and anything that is
//!   not a command to start; each with a line saying why.
//! - Everything else in the file stays as it was written: comments, key order, indentation,
//!   trailing commas, escapes. An entry's own `env` is kept, `LD_PRELOAD` included (run puts the
//!   library first and keeps the rest).
//! - The file is replaced atomically: a temporary file in its directory, synced, renamed over it
//!   (over the file a symlink points to, so the link stays a link), with the original's mode and
//!   owner; and only if the file did not change meanwhile (a client rewriting it). The original
//!   goes first to `FILE.mcp-redirect.bak`; an existing backup with other content is kept and
//!   the next free `FILE.mcp-redirect.bak.N` used, and said.
//! - `unwrap` gives the file back byte for byte when nothing else changed, and otherwise still
//!   gives each entry its own command and arguments back.

#![forbid(unsafe_code)]

mod entry;
mod json;
mod toml;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::discover;

/// The suffix of the original's copy.
const BACKUP_SUFFIX: &str = ".mcp-redirect.bak";
/// Bigger files are refused: an MCP client's config is a few kilobytes; `~/.claude.json`, which
/// keeps history, can reach megabytes.
const FILE_LIMIT: u64 = 64 * 1024 * 1024;

#[derive(clap::Args)]
pub struct WrapArgs {
    /// The MCP client's config file
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The config the servers run with (default: $MCP_REDIRECT_CONFIG, else
    /// $XDG_CONFIG_HOME/mcp-redirect/config.toml, else /etc/mcp-redirect/mcp-redirect.toml; one
    /// is needed)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print what would change as a unified diff, and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::Args)]
pub struct UnwrapArgs {
    /// The MCP client's config file
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print what would change as a unified diff, and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// What a wrapped entry runs: this program, with this config (both absolute, as text for the
/// client's file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wrapper {
    pub program: String,
    pub config: String,
}

/// A change to the text: `range` replaced by `text`.
#[derive(Debug)]
pub struct Edit {
    range: std::ops::Range<usize>,
    text: String,
}

impl Edit {
    fn replace(range: std::ops::Range<usize>, text: String) -> Edit {
        Edit { range, text }
    }
    fn insert(at: usize, text: String) -> Edit {
        Edit {
            range: at..at,
            text,
        }
    }
    fn delete(range: std::ops::Range<usize>) -> Edit {
        Edit {
            range,
            text: String::new(),
        }
    }
}

/// Applies edits that do not overlap (an insertion may touch a replaced range's end).
fn apply(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| (e.range.start, e.range.end));
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0;
    for edit in edits {
        assert!(edit.range.start >= at, "overlapping edits");
        out.push_str(&text[at..edit.range.start]);
        out.push_str(&edit.text);
        at = edit.range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// What happened to one entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Now runs under `mcp-redirect run`; the command line it had.
    Wrapped(String),
    Already,
    /// A remote server: what says so.
    Remote(String),
    Skipped(String),
    /// Given its own command back: the command line.
    Unwrapped(String),
    NotWrapped,
}

#[derive(Debug)]
pub struct EntryReport {
    name: String,
    outcome: Outcome,
    notes: Vec<String>,
    /// For an entry unwrapped: the program and config it ran with.
    run: Option<Wrapper>,
}

impl EntryReport {
    fn new(name: String, outcome: Outcome) -> EntryReport {
        EntryReport {
            name,
            outcome,
            notes: Vec::new(),
            run: None,
        }
    }

    /// The report on an entry `wrap` wrapped or left (`outcome`), with the notes a wrapped one
    /// needs.
    fn wrapped(name: String, outcome: Outcome, view: &entry::View) -> EntryReport {
        let mut report = EntryReport::new(name, outcome);
        if matches!(report.outcome, Outcome::Wrapped(_)) {
            report.notes = entry::env_notes(view);
        }
        report
    }

    /// The report on an entry unwrapped at `at` (where [`entry::wrapped_at`] found this
    /// program): the command it runs again, and the program and config it ran with.
    fn unwrapped(name: String, view: &entry::View, at: usize) -> EntryReport {
        let entry::Args::List(items) = &view.args else {
            unreachable!("wrapped_at found a list")
        };
        let original: Vec<String> = items[at + 1..]
            .iter()
            .map(|a| a.clone().unwrap_or_default())
            .collect();
        let mut report = EntryReport::new(name, Outcome::Unwrapped(original.join(" ")));
        report.run = entry::run_of(view, at);
        report
    }

    /// The line saying what happened, and its notes.
    fn print(&self) {
        let name = &self.name;
        match &self.outcome {
            Outcome::Wrapped(command) => crate::complain(format!("{name}: wrapped: {command}")),
            Outcome::Already => crate::complain(format!(
                "{name}: already runs under mcp-redirect run: left alone"
            )),
            Outcome::Remote(reason) => crate::complain(format!(
                "{name}: a remote server ({reason}): left alone; the client itself connects \
                 to it, so its traffic leaves from the client, not from a process the client \
                 starts (to route it, run the client itself under mcp-redirect run)"
            )),
            Outcome::Skipped(reason) => {
                crate::complain(format!("{name}: left alone: {reason}"));
            }
            Outcome::Unwrapped(command) => {
                crate::complain(format!("{name}: unwrapped: {command}"));
            }
            Outcome::NotWrapped => {}
        }
        for note in &self.notes {
            crate::complain(format!("{name}: note: {note}"));
        }
    }
}

/// The file's syntax: TOML (Codex) or JSON with comments (every other client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Syntax {
    Json,
    Toml,
}

/// From the name when it says `.toml`, `.json` or `.jsonc`; else from the content: JSON (with
/// comments) if it parses as such or starts with `{` or a `//` comment, else TOML (whose table
/// headers start with `[`, as a JSON array would).
fn syntax_of(path: &Path, text: &str) -> Syntax {
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => Syntax::Toml,
        Some("json" | "jsonc") => Syntax::Json,
        _ if json::is_json(text) => Syntax::Json,
        _ if text.trim_start().starts_with(['{', '/']) => Syntax::Json,
        _ => Syntax::Toml,
    }
}

/// `text` with every local server wrapped, and what happened to each entry.
pub fn wrap_text(
    path: &Path,
    text: &str,
    wrapper: &Wrapper,
) -> Result<(String, Vec<EntryReport>), String> {
    match syntax_of(path, text) {
        Syntax::Json => {
            let (edits, reports) = json::wrap(text, wrapper)?;
            Ok((apply(text, edits), reports))
        }
        Syntax::Toml => toml::wrap(text, wrapper),
    }
}

/// `text` with every wrapped server given its command back.
pub fn unwrap_text(path: &Path, text: &str) -> Result<(String, Vec<EntryReport>), String> {
    match syntax_of(path, text) {
        Syntax::Json => {
            let (edits, reports) = json::unwrap(text)?;
            Ok((apply(text, edits), reports))
        }
        Syntax::Toml => toml::unwrap(text),
    }
}

/// The programs and configs the file's wrapped entries run with, each once.
fn wrappers(reports: &[EntryReport]) -> Vec<Wrapper> {
    let mut found: Vec<Wrapper> = Vec::new();
    for run in reports.iter().filter_map(|r| r.run.as_ref()) {
        if !found.contains(run) {
            found.push(run.clone());
        }
    }
    found
}

pub fn wrap(args: WrapArgs) -> u8 {
    let discovery = discover::config_file(args.config.as_deref());
    let Some(config) = discovery.path().map(Path::to_path_buf) else {
        crate::complain(format!(
            "wrap needs a config file for the servers ({}); the proxy environment cannot \
             stand for one: MCP clients start their servers without this shell's variables",
            discovery.why_none()
        ));
        return 2;
    };
    let Some(config_bytes) = crate::install::validated_config(&config) else {
        crate::complain("nothing was changed");
        return 2;
    };
    let Ok(program) = crate::run::this_program().map_err(crate::complain) else {
        return 2;
    };
    let (Some(program), Some(config_text)) = (program.to_str(), config.to_str()) else {
        crate::complain(
            "the program's and the config's paths must be UTF-8 to be written in the client's file",
        );
        return 2;
    };
    let wrapper = Wrapper {
        program: program.to_string(),
        config: config_text.to_string(),
    };
    let Some(file) = read(&args.file) else {
        return 2;
    };
    let (new, reports) = match wrap_text(&args.file, &file.text, &wrapper) {
        Ok(result) => result,
        Err(message) => {
            crate::complain(format!("{}: {message}", args.file.display()));
            return 2;
        }
    };
    for report in &reports {
        report.print();
    }
    let wrapped = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Wrapped(_)))
        .count();
    if wrapped > 0 {
        let text = String::from_utf8_lossy(&config_bytes);
        for name in crate::install::password_variables(&text) {
            crate::complain(format!(
                "note: the config reads a gateway password from ${name}: MCP clients give a \
                 server only a few variables of their own (HOME, PATH...) and its entry's env, \
                 so add {name} to the env of each wrapped entry"
            ));
        }
    }
    let summary = summary(&reports);
    finish(&args.file, &file, &new, args.dry_run, true, &summary)
}

pub fn unwrap(args: UnwrapArgs) -> u8 {
    let Some(file) = read(&args.file) else {
        return 2;
    };
    let (new, reports) = match unwrap_text(&args.file, &file.text) {
        Ok(result) => result,
        Err(message) => {
            crate::complain(format!("{}: {message}", args.file.display()));
            return 2;
        }
    };
    // The backup wrap made, when wrapping it gives exactly this file: nothing changed since, so
    // it is the original, byte for byte. (An `"args": []` and no `args` at all wrap alike, and
    // an entry that was wrapped before that wrap stays wrapped.)
    let restored = wrappers(&reports)
        .iter()
        .find_map(|wrapper| matching_backup(&args.file, &file.text, wrapper));
    if let Some((backup, original)) = restored {
        let summary = format!(
            "what wrap made of {}, unchanged since: that original is put back",
            backup.display()
        );
        return finish(&args.file, &file, &original, args.dry_run, false, &summary);
    }
    for report in &reports {
        report.print();
    }
    let summary = summary(&reports);
    finish(&args.file, &file, &new, args.dry_run, false, &summary)
}

/// The newest backup of `path` that `wrapper` wraps into exactly `text`, and its content.
fn matching_backup(path: &Path, text: &str, wrapper: &Wrapper) -> Option<(PathBuf, String)> {
    backups(path)
        .into_iter()
        .rev()
        .filter_map(|backup| Some((backup.clone(), fs::read_to_string(backup).ok()?)))
        .find(|(_, original)| {
            wrap_text(path, original, wrapper).is_ok_and(|(wrapped, _)| wrapped == text)
        })
}

/// `FILE.mcp-redirect.bak`, `FILE.mcp-redirect.bak.1`... as far as they exist.
fn backups(path: &Path) -> Vec<PathBuf> {
    (0..)
        .map(|n| backup_name(path, n))
        .take_while(|p| p.exists())
        .collect()
}

fn backup_name(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(BACKUP_SUFFIX);
    if n > 0 {
        name.push(format!(".{n}"));
    }
    PathBuf::from(name)
}

/// `2 wrapped, 1 already wrapped, 1 remote left alone`.
fn summary(reports: &[EntryReport]) -> String {
    let count = |f: fn(&Outcome) -> bool| reports.iter().filter(|r| f(&r.outcome)).count();
    let parts = [
        (count(|o| matches!(o, Outcome::Wrapped(_))), "wrapped"),
        (count(|o| matches!(o, Outcome::Unwrapped(_))), "unwrapped"),
        (count(|o| matches!(o, Outcome::Already)), "already wrapped"),
        (
            count(|o| matches!(o, Outcome::Remote(_))),
            "remote left alone",
        ),
        (count(|o| matches!(o, Outcome::Skipped(_))), "left alone"),
        (count(|o| matches!(o, Outcome::NotWrapped)), "not wrapped"),
    ];
    let said: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if said.is_empty() {
        "no servers".to_string()
    } else {
        said.join(", ")
    }
}

/// A client's config as read: its text, and what to compare and replace.
struct ClientFile {
    text: String,
    /// The file itself (a symlink's target): what is replaced.
    target: PathBuf,
    metadata: fs::Metadata,
}

fn read(path: &Path) -> Option<ClientFile> {
    let fail = |message: String| {
        crate::complain(format!("{}: {message}", path.display()));
        None
    };
    let target = match fs::canonicalize(path) {
        Ok(target) => target,
        Err(e) => return fail(format!("cannot open: {e}")),
    };
    let metadata = match fs::metadata(&target) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return fail("not a regular file".into()),
        Err(e) => return fail(format!("cannot open: {e}")),
    };
    if metadata.len() > FILE_LIMIT {
        return fail(format!(
            "bigger than {FILE_LIMIT} bytes: not an MCP client's config"
        ));
    }
    let bytes = match fs::read(&target) {
        Ok(bytes) => bytes,
        Err(e) => return fail(format!("cannot read: {e}")),
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(ClientFile {
            text,
            target,
            metadata,
        }),
        Err(_) => fail("not UTF-8 text".into()),
    }
}

/// Prints the diff (`--dry-run`) or writes the new text (after a backup, when `backup`), and
/// says what was done.
fn finish(
    path: &Path,
    file: &ClientFile,
    new: &str,
    dry_run: bool,
    backup: bool,
    summary: &str,
) -> u8 {
    let shown = path.display();
    if new == file.text {
        crate::complain(format!("{shown}: {summary}; nothing to change"));
        return 0;
    }
    if dry_run {
        let name = shown.to_string();
        print!(
            "{}",
            similar::TextDiff::from_lines(file.text.as_str(), new)
                .unified_diff()
                .header(&name, &name)
        );
        crate::complain(format!(
            "{shown}: {summary}; --dry-run: nothing was changed"
        ));
        return 0;
    }
    let mut saved = String::new();
    if backup {
        match make_backup(path, file) {
            Ok((copy, earlier)) => {
                if let Some(earlier) = earlier {
                    crate::complain(format!(
                        "{} holds another version of the file: kept; this original goes to {}",
                        earlier.display(),
                        copy.display()
                    ));
                }
                saved = format!("; the original is in {}", copy.display());
            }
            Err(e) => {
                crate::complain(format!(
                    "{shown}: cannot write the backup: {e}; nothing was changed"
                ));
                return 2;
            }
        }
    }
    match replace(file, new.as_bytes()) {
        Ok(()) => {
            crate::complain(format!("{shown}: {summary}{saved}"));
            0
        }
        Err(e) => {
            crate::complain(format!("{shown}: {e}; nothing was changed"));
            2
        }
    }
}

/// Copies the original next to `path`: `FILE.mcp-redirect.bak`, or the first free
/// `FILE.mcp-redirect.bak.N` when that holds something else (a backup with the same bytes is
/// used as it is). Returns the copy, and the earlier backup it did not overwrite.
fn make_backup(path: &Path, file: &ClientFile) -> io::Result<(PathBuf, Option<PathBuf>)> {
    let mut earlier = None;
    for n in 0.. {
        let candidate = backup_name(path, n);
        match fs::read(&candidate) {
            Ok(bytes) if bytes == file.text.as_bytes() => return Ok((candidate, earlier)),
            Ok(_) => {
                earlier.get_or_insert(candidate);
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.metadata.mode() & 0o777)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&candidate)?;
        out.write_all(file.text.as_bytes())?;
        out.sync_all()?;
        return Ok((candidate, earlier));
    }
    unreachable!("the loop returns")
}

/// Replaces the file atomically, with the original's mode and owner, unless it changed since
/// it was read.
fn replace(file: &ClientFile, new: &[u8]) -> Result<(), String> {
    let target = &file.target;
    let dir = target.parent().unwrap_or(Path::new("/"));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.mcp-redirect-{}.tmp", std::process::id()));
    let result = (|| -> Result<(), String> {
        let io = |what: &str, e: io::Error| format!("cannot {what} {}: {e}", temporary.display());
        match fs::remove_file(&temporary) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io("remove", e)),
            _ => {}
        }
        let mut out = crate::install::create_private(&temporary).map_err(|e| io("create", e))?;
        out.write_all(new).map_err(|e| io("write", e))?;
        let (uid, gid) = (file.metadata.uid(), file.metadata.gid());
        let ours = out.metadata().map_err(|e| io("stat", e))?;
        if (ours.uid(), ours.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(&out, Some(uid), Some(gid)).map_err(|e| {
                format!("cannot give the new file the original's owner ({uid}:{gid}): {e}")
            })?;
        }
        out.set_permissions(fs::Permissions::from_mode(file.metadata.mode() & 0o7777))
            .map_err(|e| io("chmod", e))?;
        out.sync_all().map_err(|e| io("sync", e))?;
        // A client may have rewritten its config meanwhile: its change must not be lost.
        let now = fs::read(target).map_err(|e| format!("cannot read it again: {e}"))?;
        if now != file.text.as_bytes() {
            return Err("it changed while it was being edited (by the client?); run again".into());
        }
        fs::rename(&temporary, target).map_err(|e| io("rename", e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}
