//! The one way the integration tests write a config file: a small builder over the TOML text, so
//! that each test says what it routes and not how the file is laid out.
//!
//! The text it writes is always valid in shape: top-level keys first, then `[log]`, the other
//! tables, the `[gateways.*]` tables and the `[[rules]]`, each kind in the order it was added.
//! Tests that need a broken or unusual file on purpose (an error message naming a line, an
//! unknown key) write it as literal text instead.

#![forbid(unsafe_code)]

use std::fmt::Display;
use std::path::{Path, PathBuf};

use super::Scratch;

/// A config being built; `text()` gives the TOML, `write()` puts it in a scratch directory.
#[derive(Clone)]
pub struct Config {
    /// Top-level `key = value` lines (`default`, `strict`...).
    top: Vec<String>,
    /// The `[log]` table's lines, when the config has one.
    log: Option<Vec<String>>,
    /// Other tables (`[discovery]`...): the header's name and its lines.
    tables: Vec<(String, Vec<String>)>,
    /// `[gateways.NAME]` tables: the name and its lines (kind and endpoints first).
    gateways: Vec<(String, Vec<String>)>,
    /// Each `[[rules]]` entry's lines.
    rules: Vec<Vec<String>>,
}

impl Config {
    pub fn new() -> Config {
        Config {
            top: Vec::new(),
            log: None,
            tables: Vec::new(),
            gateways: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// `default = "ACTION"`.
    pub fn default(self, action: &str) -> Config {
        self.top(&format!("default = \"{action}\""))
    }

    /// A top-level `key = value` line (or several, one per line). An empty string adds nothing.
    pub fn top(mut self, line: &str) -> Config {
        if !line.is_empty() {
            self.top.push(line.to_string());
        }
        self
    }

    /// `[log] path = "PATH"` (a file, or `off`, or `stderr`).
    pub fn log(mut self, path: impl AsRef<Path>) -> Config {
        let line = format!("path = \"{}\"", path.as_ref().display());
        self.log.get_or_insert_with(Vec::new).insert(0, line);
        self
    }

    /// A line of the `[log]` table besides its path (`format = "ecs"`, `close = false`).
    pub fn log_option(mut self, line: &str) -> Config {
        self.log.get_or_insert_with(Vec::new).push(line.to_string());
        self
    }

    /// A table of its own, `[NAME]` with `lines`.
    pub fn table(mut self, name: &str, lines: &[&str]) -> Config {
        self.tables.push((
            name.to_string(),
            lines.iter().map(|l| l.to_string()).collect(),
        ));
        self
    }

    /// `[gateways.NAME]` of `kind` (`http`, `socks5`, `rewrite`) with these endpoints.
    pub fn gateway<E: Display>(mut self, name: &str, kind: &str, endpoints: &[E]) -> Config {
        let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
        self.gateways.push((
            name.to_string(),
            vec![
                format!("kind = \"{kind}\""),
                format!("endpoints = [{}]", list.join(", ")),
            ],
        ));
        self
    }

    /// A line (or several) of the gateway added last: `connect_timeout_ms = 300`, headers,
    /// credentials. An empty string adds nothing.
    pub fn gateway_option(mut self, line: &str) -> Config {
        let (_, lines) = self
            .gateways
            .last_mut()
            .expect("gateway_option comes after a gateway");
        if !line.is_empty() {
            lines.push(line.to_string());
        }
        self
    }

    /// A `[[rules]]` entry: what it matches (`host = "..."`) and what it does (`via = "corp"`,
    /// `action = "deny"`); `and` adds more conditions.
    pub fn rule(mut self, when: &str, then: &str) -> Config {
        self.rules.push(vec![when.to_string(), then.to_string()]);
        self
    }

    /// One more key of the rule added last: a further condition (`port = 443`,
    /// `process = "curl"`).
    pub fn and(mut self, line: &str) -> Config {
        self.rules
            .last_mut()
            .expect("and comes after a rule")
            .push(line.to_string());
        self
    }

    /// A rule sending `host` through `gateway`.
    pub fn via(self, host: &str, gateway: &str) -> Config {
        self.rule(
            &format!("host = \"{host}\""),
            &format!("via = \"{gateway}\""),
        )
    }

    /// A rule denying `host`.
    pub fn deny(self, host: &str) -> Config {
        self.rule(&format!("host = \"{host}\""), "action = \"deny\"")
    }

    /// The config's TOML.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for line in &self.top {
            out.push_str(line);
            out.push('\n');
        }
        let mut table = |header: String, lines: &[String]| {
            out.push_str(&header);
            out.push('\n');
            for line in lines {
                out.push_str(line);
                out.push('\n');
            }
        };
        if let Some(lines) = &self.log {
            table("[log]".to_string(), lines);
        }
        for (name, lines) in &self.tables {
            table(format!("[{name}]"), lines);
        }
        for (name, lines) in &self.gateways {
            table(format!("[gateways.{name}]"), lines);
        }
        for lines in &self.rules {
            table("[[rules]]".to_string(), lines);
        }
        out
    }

    /// Writes the config as the scratch directory's config file and returns its path.
    pub fn write(&self, scratch: &Scratch) -> PathBuf {
        scratch.config(&self.text())
    }
}
