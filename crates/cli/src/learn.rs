//! `mcp-redirect learn`: run a program in audit mode on top of a configuration, and print that
//! configuration with the `[[rules]]` that would have let through exactly what the program
//! reached and the configuration denied. The way from "npx under default deny fails" to an
//! allow-list someone can read, check and enforce.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;

use mcp_redirect_core::config::{self, ConfigSource, LOG_ENV};

use crate::suggest::{insert_rules, Reached};

#[derive(clap::Args)]
pub struct LearnArgs {
    /// The configuration to start from (default: $MCP_REDIRECT_CONFIG, else
    /// $XDG_CONFIG_HOME/mcp-redirect/config.toml, else /etc/mcp-redirect/mcp-redirect.toml;
    /// without one, `default = "deny"`)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write the learned configuration here instead of standard output (the program's own
    /// standard output then stays its own; without this option it goes to standard error, so
    /// that standard output holds the configuration alone)
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Keep the run's log in this file (default: a temporary file, removed afterwards)
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// The command and its arguments
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// A directory of our own for the run's config (and log), removed on drop.
struct Workspace(PathBuf);

impl Workspace {
    fn new() -> std::io::Result<Workspace> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("mcp-redirect-learn-{}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Workspace(dir))
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn learn(args: LearnArgs) -> u8 {
    let base_path = crate::config_path(args.config.as_ref());
    let base = match &base_path {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                crate::complain(format!("learn: cannot read {}: {e}", path.display()));
                return 2;
            }
        },
        None => "default = \"deny\"\n".to_string(),
    };
    let source = base_path
        .clone()
        .map_or(ConfigSource::Nothing, ConfigSource::File);
    if let Err(error) = config::parse(&base, source, &crate::getenv) {
        crate::complain(&error);
        return 2;
    }
    let workspace = match Workspace::new() {
        Ok(workspace) => workspace,
        Err(e) => {
            crate::complain(format!("learn: cannot make a temporary directory: {e}"));
            return 2;
        }
    };
    let log = args
        .log
        .as_ref()
        .map(|p| crate::absolute(p))
        .unwrap_or_else(|| workspace.0.join("events.jsonl"));
    let audit = match audit_config(&base, &log) {
        Ok(text) => text,
        Err(message) => {
            crate::complain(format!("learn: {message}"));
            return 2;
        }
    };
    let audit_path = workspace.0.join("audit.toml");
    if let Err(e) = std::fs::write(&audit_path, audit) {
        crate::complain(format!("learn: cannot write {}: {e}", audit_path.display()));
        return 2;
    }
    let Ok(this) =
        crate::run::this_program().map_err(|message| crate::complain(format!("learn: {message}")))
    else {
        return 2;
    };
    let mut run = std::process::Command::new(this);
    run.arg("run")
        .arg("--config")
        .arg(&audit_path)
        .arg("--")
        .args(&args.command)
        .env_remove(LOG_ENV);
    if args.output.is_none() {
        // Standard output is for the configuration: the program's goes to standard error.
        use std::os::fd::AsFd;
        match std::io::stderr().as_fd().try_clone_to_owned() {
            Ok(stderr) => {
                run.stdout(stderr);
            }
            Err(e) => {
                crate::complain(format!("learn: {e}"));
                return 2;
            }
        }
    }
    let status = run.status();
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            crate::complain(format!("learn: cannot start mcp-redirect run: {e}"));
            return 2;
        }
    };
    let mut reached = Reached::default();
    if let Err(e) = reached.read_log(&log) {
        if e.kind() != std::io::ErrorKind::NotFound {
            crate::complain(format!("learn: cannot read {}: {e}", log.display()));
            return 2;
        }
    }
    let learned = if reached.is_empty() {
        base.clone()
    } else {
        insert_rules(&base, &reached.rules())
    };
    if let Err(error) = config::parse(&learned, ConfigSource::Nothing, &crate::getenv) {
        crate::complain(format!(
            "learn: the learned configuration is invalid ({error})"
        ));
        return 2;
    }
    let program = args.command[0].to_string_lossy();
    let ended = match status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    };
    crate::complain(if reached.is_empty() {
        format!("learn: {program} ({ended}) reached nothing this configuration denies")
    } else {
        format!(
            "learn: {program} ({ended}) reached what the rules below allow; check, then enforce"
        )
    });
    match &args.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, learned) {
                crate::complain(format!("learn: cannot write {}: {e}", path.display()));
                return 2;
            }
        }
        None => print!("{learned}"),
    }
    0
}

/// `base` in audit mode, logging natively to `log`, without notices (the learned rules say it
/// all at the end).
fn audit_config(base: &str, log: &std::path::Path) -> Result<String, String> {
    let mut table: toml::Table = base
        .parse()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    table.insert("mode".into(), "audit".into());
    table.remove("log_format");
    let mut log_table = toml::Table::new();
    log_table.insert("path".into(), log.display().to_string().into());
    log_table.insert("format".into(), "native".into());
    log_table.insert("notices".into(), false.into());
    table.insert("log".into(), log_table.into());
    toml::to_string(&table).map_err(|e| e.to_string())
}
