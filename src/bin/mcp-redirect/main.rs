//! `mcp-redirect`: wrap a program with the library (`run`), validate a config (`check`), see
//! which rule a host hits (`explain`), read the security log (`report`), learn the rules a
//! program needs (`learn`), start a config (`init`), copy itself and the library into a
//! directory (`install`). Thin: every decision
//! comes from the library crate, never a second copy.
//!
//! Exit codes: 0 success; 1 `check --deny-warnings` found warnings, or `report` met malformed
//! lines; 2 invalid configuration or usage, an endpoint `check --connect` could not reach, a
//! log `report` could not read, or a file `install` could not write; 3 `run --strict` refused a
//! program that would ignore the library; 126/127 the command cannot be run / was not found (as
//! in a shell).

mod check;
mod discover;
mod elf;
mod env;
mod explain;
mod init;
mod install;
mod launchers;
mod learn;
mod report;
mod run;
mod suggest;
mod supervise;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mcp-redirect",
    version,
    about = "Route an unmodified program's outbound connections through gateways by host rules",
    long_about = "Route an unmodified program's outbound connections through gateways by host rules.\n\n\
        The work is done by libmcp_redirect.so, preloaded into the program. This tool wraps a program \
        with it, validates a configuration, explains decisions and summarises the security log.\n\n\
        Exit codes: 0 ok; 1 warnings (check --deny-warnings) or malformed log lines (report); \
        2 invalid configuration or usage, an unreachable endpoint (check --connect), an unreadable \
        log (report) or a file install could not write; 3 run --strict refused the program; \
        126/127 the command cannot be run / was not found."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a program under the library (exec: its stdio, signals and exit status are the program's)
    #[command(
        after_help = "Example:\n  mcp-redirect run --config /etc/mcp-redirect.toml -- npx -y @modelcontextprotocol/server-github"
    )]
    Run(run::RunArgs),
    /// Validate a configuration and print what it says
    #[command(
        after_help = "Example:\n  mcp-redirect check --config /etc/mcp-redirect.toml --connect --probe example.org:443"
    )]
    Check(check::CheckArgs),
    /// Show which rule a host (and port) hits, and why earlier rules did not match
    #[command(
        after_help = "Example:\n  mcp-redirect explain --config /etc/mcp-redirect.toml api.github.com:443 10.1.2.3:5432"
    )]
    Explain(explain::ExplainArgs),
    /// Summarise JSON-lines security logs (files, or stdin)
    #[command(
        after_help = "Example:\n  mcp-redirect report /var/log/mcp-redirect/events.jsonl --since 2026-11-27T00:00:00Z"
    )]
    Report(report::ReportArgs),
    /// Run a program in audit mode and print the config with the rules it would have needed
    #[command(
        after_help = "Example:\n  mcp-redirect learn --config deny.toml -- npx -y @modelcontextprotocol/server-everything --help > allowed.toml"
    )]
    Learn(learn::LearnArgs),
    /// Print a commented starter configuration
    #[command(
        after_help = "Example:\n  HTTPS_PROXY=http://proxy.corp:3128 NO_PROXY=.corp mcp-redirect init --from-env > mcp-redirect.toml"
    )]
    Init(init::InitArgs),
    /// Copy the library, this program and a config into a directory (an init container's job)
    #[command(
        after_help = "Example:\n  mcp-redirect install --to /mcp-redirect --config /etc/mcp-redirect/mcp-redirect.toml"
    )]
    Install(install::InstallArgs),
    /// Print the export lines that put every program a shell starts under the library (for eval)
    #[command(
        long_about = "Print the lines that put every program this shell starts afterwards under \
            the library: `export LD_PRELOAD=...` (the library first, other entries kept) and \
            `export MCP_REDIRECT_CONFIG=...` (the config found as `run` finds it). With --off, the \
            lines that undo it. For POSIX shells (sh, bash, zsh), like `. torsocks on` and `off`.\n\n\
            The config is checked first: an invalid one prints nothing and exits 2. MCP clients \
            start their servers with a filtered environment, so this does not reach them: make \
            `mcp-redirect run` a server entry's command instead. Static, Go and musl programs ignore \
            LD_PRELOAD: start them with `mcp-redirect run`.",
        after_help = "Examples:\n  eval \"$(mcp-redirect env --config ~/corp.toml)\"\n  eval \"$(mcp-redirect env --off)\""
    )]
    Env(env::EnvArgs),
}

/// Whether this program is statically linked (scripts/build-static-cli.sh): it then runs in any
/// image, and looks names up in `/etc/hosts` and DNS only.
pub const STATIC: bool = cfg!(target_feature = "crt-static");

/// The configuration file to use (absolute): `--config`, `MCP_REDIRECT_CONFIG`, the user's or
/// the system's (see `discover`). `None` means the proxy environment, as the library itself
/// would read it.
pub fn config_path(flag: Option<&PathBuf>) -> Option<PathBuf> {
    discover::config_file(flag.map(PathBuf::as_path))
        .found
        .map(|found| found.path)
}

/// The process environment as the library's loader reads it.
pub fn getenv(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Makes a path absolute against the current directory (without resolving symlinks).
pub fn absolute(path: &std::path::Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Prints `mcp-redirect: message` on stderr.
pub fn complain(message: impl std::fmt::Display) {
    eprintln!("mcp-redirect: {message}");
}

fn main() -> ExitCode {
    if STATIC {
        // Before any lookup: another name service module would need a static dlopen.
        mcp_redirect::sys::hosts_from_files_and_dns();
    }
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::Explain(args) => explain::explain(args),
        Command::Report(args) => report::report(args),
        Command::Learn(args) => learn::learn(args),
        Command::Init(args) => init::init(args),
        Command::Install(args) => install::install(args),
        Command::Env(args) => env::env(args),
    };
    ExitCode::from(code)
}

/// Arguments after `--`, as given.
pub type CommandLine = Vec<OsString>;
