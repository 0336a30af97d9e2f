//! `mcp-redirect`: wrap a program with the library (`run`), validate a config (`check`), see
//! which rule a host hits (`explain`), read the security log (`report`), learn the rules a
//! program needs (`learn`), start a config (`init`), copy itself and the library into a
//! directory (`install`), put a shell (`env`) or an MCP client's servers (`wrap`, `unwrap`)
//! under it, and describe itself (`completions`, `man`). Thin: every decision comes from the
//! library crate, never a second copy.
//!
//! Exit codes: 0 success; 1 `check --deny-warnings` found warnings, or `report` met malformed
//! lines; 2 invalid configuration or usage, an endpoint `check --connect` could not reach, a
//! log `report` could not read, a file `install` could not write, or a client's config `wrap`
//! could not read, parse or write; 3 `run --strict` refused a
//! program that would ignore the library; 126/127 the command cannot be run / was not found (as
//! in a shell).

#![forbid(unsafe_code)]

mod check;
mod completions;
mod discover;
mod env;
mod explain;
mod init;
mod inspect;
mod install;
mod launchers;
mod learn;
mod log_schema;
mod report;
mod run;
mod suggest;
mod supervise;
mod wrap;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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
        log (report), a file install could not write or a client's config wrap could not read, \
        parse or write; 3 run --strict refused the program; \
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
            start their servers with a filtered environment, so this does not reach them: \
            `mcp-redirect wrap` puts a client's servers under `mcp-redirect run` instead. \
            Static, Go and musl programs ignore LD_PRELOAD: start them with `mcp-redirect run`.",
        after_help = "Examples:\n  eval \"$(mcp-redirect env --config ~/corp.toml)\"\n  eval \"$(mcp-redirect env --off)\""
    )]
    Env(env::EnvArgs),
    /// Rewrite an MCP client's config so that every local server runs under mcp-redirect run
    #[command(long_about = WRAP_HELP, after_help = WRAP_EXAMPLES)]
    Wrap(wrap::WrapArgs),
    /// Give every server that wrap put under mcp-redirect run its own command back
    #[command(
        long_about = "Give every server entry of an MCP client's config that runs under \
            `mcp-redirect run ... -- CMD ARGS...` its own command and arguments back: CMD and ARGS \
            are exactly what follows `--`. When nothing else changed since `wrap`, the file is \
            byte for byte what it was (the backup wrap made is used when wrapping it gives this \
            file). The file is replaced atomically; --dry-run prints the diff instead.",
        after_help = "Example:\n  mcp-redirect unwrap ~/.config/Claude/claude_desktop_config.json"
    )]
    Unwrap(wrap::UnwrapArgs),
    /// Print shell completions (bash, zsh or fish) for this command
    #[command(
        after_help = "Examples:\n  mcp-redirect completions bash > ~/.local/share/bash-completion/completions/mcp-redirect\n  mcp-redirect completions zsh > ~/.zfunc/_mcp-redirect\n  mcp-redirect completions fish > ~/.config/fish/completions/mcp-redirect.fish"
    )]
    Completions(completions::CompletionsArgs),
    /// Print the man page (or write one per subcommand with --dir)
    #[command(
        after_help = "Examples:\n  mcp-redirect man | man -l -\n  mcp-redirect man --dir /usr/local/share/man/man1"
    )]
    Man(completions::ManArgs),
    /// The helper of `run --isolate --publish` (started by the supervisor, not by hand)
    #[command(hide = true)]
    PublishHelper {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

const WRAP_HELP: &str = "Rewrite an MCP client's config so that every local (stdio) server \
runs under `mcp-redirect run --config CONFIG --`. MCP clients start their servers with a \
filtered environment, so the entry itself must start mcp-redirect run.

Each such entry's command becomes this program (an absolute path) and its args become \
[\"run\", \"--config\", CONFIG, \"--\", COMMAND, ARGS...]: the original command and arguments are \
exactly what follows --, which is what unwrap gives back. CONFIG is --config, else the config run \
would find ($MCP_REDIRECT_CONFIG, $XDG_CONFIG_HOME/mcp-redirect/config.toml, \
/etc/mcp-redirect/mcp-redirect.toml), made absolute; without one, nothing is done. It is checked \
first.

Formats, told by their content (and the name, for TOML): mcpServers (Claude Desktop's \
claude_desktop_config.json, Cursor's .cursor/mcp.json, Windsurf's mcp_config.json, Claude Code's \
project .mcp.json); projects.*.mcpServers and mcpServers (Claude Code's ~/.claude.json); servers \
and mcp.servers (VS Code's .vscode/mcp.json, JSON with comments, or its settings.json); \
context_servers (Zed's settings.json: command a string, or {path, args, env}); \
[mcp_servers.NAME] (Codex's ~/.codex/config.toml).

Left alone, each with a line on stderr saying why: entries already under mcp-redirect run (wrap \
twice = wrap once), remote servers (url, serverUrl, type http/sse: the client itself connects to \
them, so their traffic leaves from the client, not from a process it starts), and entries with \
nothing to start. An entry's env is kept, LD_PRELOAD included (run puts the library first and \
keeps the rest after it). Everything else in the file stays as written: comments, key order, \
spacing, trailing commas.

The file is replaced atomically (a synced temporary file renamed over it, with its mode and \
owner; a symlink stays a link), and only if the client did not rewrite it meanwhile. The original \
is copied first to FILE.mcp-redirect.bak (an existing backup holding something else is kept, and \
FILE.mcp-redirect.bak.1, .2... used). --dry-run prints a unified diff and changes nothing. Restart \
the client (or reload its servers) afterwards.

Exit status: 0 done (or nothing to do), 2 no config or an invalid one, a file that cannot be read, \
parsed or written. Each client's file before and after: docs/mcp-clients.md.";

const WRAP_EXAMPLES: &str = "Examples:
  mcp-redirect wrap --dry-run ~/.config/Claude/claude_desktop_config.json
  mcp-redirect wrap --config /etc/mcp-redirect/mcp-redirect.toml .vscode/mcp.json
  mcp-redirect unwrap ~/.codex/config.toml";

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
    // No hook of ours in this program: the library's calls go to libc's own functions.
    mcp_redirect_core::runtime::link_into_program();
    if STATIC {
        // Before any lookup: another name service module would need a static dlopen.
        mcp_redirect_core::sys::hosts_from_files_and_dns();
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
        Command::Wrap(args) => wrap::wrap(args),
        Command::Unwrap(args) => wrap::unwrap(args),
        Command::Completions(args) => completions::completions(args, Cli::command()),
        Command::Man(args) => completions::man(args, Cli::command()),
        Command::PublishHelper { args } => supervise::publish::helper(&args),
    };
    ExitCode::from(code)
}

/// Arguments after `--`, as given.
pub type CommandLine = Vec<OsString>;
