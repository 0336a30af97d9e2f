//! `mcp-redirect run`: put the library under a program and `exec` it, so that the program's
//! stdin/stdout (an MCP stdio transport), signals and exit status are exactly its own.
//!
//! Before that: find the library, make every path absolute (the program may change directory),
//! validate the config (an invalid one never reaches production: exit 2), and look at the
//! program's ELF to say whether it will honour `LD_PRELOAD` at all.

#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use mcp_redirect_core::config::{self, Config, GatewayKind, LogTarget, CONFIG_ENV, LOG_ENV};
use mcp_redirect_core::rules::{Action, AddressMatch, HostMatch};

use crate::inspect;

/// The library's file name, and the variable that may point at it.
pub const LIBRARY: &str = "libmcp_redirect.so";
const LIBRARY_ENV: &str = "MCP_REDIRECT_LIB";

#[derive(clap::Args)]
pub struct RunArgs {
    /// Configuration file (default: $MCP_REDIRECT_CONFIG, else
    /// $XDG_CONFIG_HOME/mcp-redirect/config.toml, else /etc/mcp-redirect/mcp-redirect.toml, else
    /// the proxy environment); passed to the program as MCP_REDIRECT_CONFIG
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the library writes its log: a path, `stderr` or `off` (sets MCP_REDIRECT_LOG)
    #[arg(long, value_name = "FILE|stderr")]
    pub log: Option<String>,
    /// Refuse to start a program that would ignore the library (exit 3)
    #[arg(long)]
    pub strict: bool,
    /// Print the environment and command that would run, and exit
    #[arg(long)]
    pub dry_run: bool,
    /// How to put the program under the rules: the preloaded library, the seccomp supervisor
    /// (static, Go and musl binaries too), or auto (the library where it works, else the
    /// supervisor)
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    /// Run the program in a network namespace of its own, with only loopback, under the
    /// supervisor: the connections the rules allow are made from outside and handed in
    /// (implies --mode supervise)
    #[arg(long)]
    pub isolate: bool,
    /// With --isolate: let connections to ADDRESS:PORT (default address 127.0.0.1) outside
    /// reach port PORT on the namespace's loopback, where an MCP server over HTTP listens
    /// (repeatable)
    #[arg(long, value_name = "[ADDRESS:]PORT", requires = "isolate")]
    pub publish: Vec<String>,
    /// The command and its arguments
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Auto,
    Preload,
    Supervise,
}

/// `--publish [ADDRESS:]PORT`: the address outside (127.0.0.1 when only a port is given).
fn parse_publish(text: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse()
        .map_err(|_| "expected PORT, IPv4:PORT or [IPv6]:PORT".to_string())
}

/// This program's own path (to run it again, write it into a file, or find the library beside
/// it), or the sentence saying why it is not known.
pub fn this_program() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot locate this program: {e}"))
}

/// Where the library is: next to this binary, then `../lib/`, then `$MCP_REDIRECT_LIB`.
pub fn find_library() -> Result<PathBuf, String> {
    let exe = this_program()?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let mut candidates = vec![dir.join(LIBRARY), dir.join("../lib").join(LIBRARY)];
    if let Some(path) = std::env::var_os(LIBRARY_ENV).filter(|p| !p.is_empty()) {
        candidates.push(crate::absolute(Path::new(&path)));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .ok_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            format!(
                "cannot find {LIBRARY} (tried {}; set {LIBRARY_ENV})",
                tried.join(", ")
            )
        })
}

/// `LD_PRELOAD` with the library first and any earlier mention of it removed.
pub fn preload_value(library: &Path, existing: Option<&OsStr>) -> OsString {
    let mut value = OsString::from(library);
    for entry in existing
        .map(|v| v.as_bytes())
        .unwrap_or_default()
        .split(|&b| b == b':' || b == b' ')
        .filter(|e| !e.is_empty())
    {
        let entry = OsStr::from_bytes(entry);
        if Path::new(entry) == library {
            continue;
        }
        value.push(":");
        value.push(entry);
    }
    value
}

/// One variable to set, with a copy fit to print (secrets redacted).
struct Setting {
    name: &'static str,
    value: OsString,
    shown: String,
}

impl Setting {
    fn plain(name: &'static str, value: impl Into<OsString>) -> Setting {
        let value = value.into();
        let shown = value.to_string_lossy().into_owned();
        Setting { name, value, shown }
    }
}

pub fn run(args: RunArgs) -> u8 {
    let library = match find_library() {
        Ok(path) => path,
        Err(message) => {
            crate::complain(message);
            return 2;
        }
    };
    // The file found is named to the library explicitly, wherever it was found: the library
    // itself reads only MCP_REDIRECT_CONFIG and the proxy environment.
    let discovery = crate::discover::config_file(args.config.as_deref());
    let config_file = discovery.path().map(Path::to_path_buf);
    // Validate exactly as the library will, before anything starts.
    let Some(config) = crate::check::load_from(&discovery) else {
        crate::complain("the command was not started");
        return 2;
    };
    let mut settings = vec![Setting::plain(
        "LD_PRELOAD",
        preload_value(&library, std::env::var_os("LD_PRELOAD").as_deref()),
    )];
    if let Some(path) = &config_file {
        settings.push(Setting::plain(CONFIG_ENV, path.clone()));
    }
    if let Some(log) = &args.log {
        let log = if log == "stderr" || log == "off" {
            log.clone()
        } else {
            crate::absolute(Path::new(log)).display().to_string()
        };
        if let Err(e) = LogTarget::parse(&log) {
            crate::complain(format!("--log: {e}"));
            return 2;
        }
        settings.push(Setting::plain(LOG_ENV, log));
    }

    if !launcher_registries_allowed(config_file.as_ref(), &args.command, args.strict) {
        crate::complain("--strict: the command was not started");
        return 3;
    }

    let program = &args.command[0];
    let inspection = match inspect::inspect(program, std::env::var_os("PATH").as_deref()) {
        Ok(inspection) => inspection,
        Err(error) => {
            crate::complain(&error);
            return exit_code(&error);
        }
    };
    // This very program (the Docker image's default command, `mcp-redirect check`, goes through
    // its entrypoint, `mcp-redirect run --`): it redirects nothing and reaches only gateways and
    // DNS, so it starts as it is. The static build is no program to supervise or warn about.
    let itself = inspection.chain.last().is_some_and(|p| is_this_program(p));
    // auto: the supervisor for what the loader will not preload into, when the supervisor can
    // hold it (not a foreign architecture, and not setuid: no_new_privs would drop privileges).
    if args.isolate && args.mode == Mode::Preload {
        crate::complain("--isolate needs the supervisor: it cannot go with --mode preload");
        return 2;
    }
    let supervise = match args.mode {
        _ if args.isolate => true,
        Mode::Supervise => true,
        Mode::Preload => false,
        Mode::Auto => {
            use inspect::Obstacle::*;
            let needs = inspection
                .obstacles
                .iter()
                .any(|o| matches!(o, Static | Go | Musl));
            let cannot = inspection
                .obstacles
                .iter()
                .any(|o| matches!(o, Architecture | SetId | Capabilities));
            needs && !cannot && !itself
        }
    };
    if supervise {
        // The supervisor decides for the whole tree; the library must not decide a second time.
        settings.retain(|s| s.name != "LD_PRELOAD");
        let rest = preload_value(&library, std::env::var_os("LD_PRELOAD").as_deref());
        let rest = rest.to_string_lossy();
        let rest = rest
            .strip_prefix(&library.to_string_lossy().into_owned())
            .unwrap_or("")
            .trim_start_matches(':')
            .to_string();
        settings.push(Setting::plain("LD_PRELOAD", rest));
        if args.dry_run {
            println!(
                "mode: supervise{}",
                if args.isolate { ", isolated" } else { "" }
            );
            print_dry_run(&settings, &args.command);
            return 0;
        }
        let env: Vec<(&'static str, OsString)> =
            settings.iter().map(|s| (s.name, s.value.clone())).collect();
        let mut publish = Vec::new();
        for text in &args.publish {
            match parse_publish(text) {
                Ok(address) => publish.push(address),
                Err(message) => {
                    crate::complain(format!("--publish {text}: {message}"));
                    return 2;
                }
            }
        }
        return crate::supervise::run(config, &args.command, &env, args.isolate, &publish);
    }
    if !inspection.honours_preload() && !itself {
        let file = inspection
            .chain
            .last()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        for obstacle in &inspection.obstacles {
            crate::complain(format!(
                "warning: {file} will not load the library: {}",
                obstacle.explain()
            ));
        }
        if args.strict {
            crate::complain("--strict: the command was not started");
            return 3;
        }
        let fallback = proxy_environment(&config);
        if fallback.is_empty() {
            crate::complain("fallback: none (no default http or socks5 gateway to name in proxy variables); its connections are not decided");
        } else {
            let names: Vec<&str> = fallback.iter().map(|s| s.name).collect();
            crate::complain(format!(
                "fallback: {} set from the default gateway, for programs that honour them; nothing else is enforced",
                names.join(", ")
            ));
        }
        settings.extend(fallback);
    }

    if args.strict {
        // What --strict cannot check: the program's own children.
        crate::complain(
            "note: --strict checks this program only; children that clear LD_PRELOAD or are static, Go or setuid are not covered",
        );
    }
    if args.dry_run {
        print_dry_run(&settings, &args.command);
        return 0;
    }
    let mut command = std::process::Command::new(program);
    command.args(&args.command[1..]);
    for setting in &settings {
        command.env(setting.name, &setting.value);
    }
    let error = command.exec();
    crate::complain(format!("{}: {error}", program.to_string_lossy()));
    if error.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// What a shell exits with when it cannot run a command: 127 when there is nothing by that
/// name to execute, 126 when there is but it cannot be run.
fn exit_code(error: &inspect::InspectError) -> u8 {
    match error {
        inspect::InspectError::NotFound(_) => 127,
        inspect::InspectError::NotExecutable(_) | inspect::InspectError::Invalid(_) => 126,
    }
}

/// When `command` is a launcher (`npx`, `uvx`, `docker run`...) whose registries the config
/// denies: says so and which rules would allow them; `false` if `strict` refuses to start it.
fn launcher_registries_allowed(
    config_file: Option<&PathBuf>,
    command: &[OsString],
    strict: bool,
) -> bool {
    let Some((launcher, fetched)) = crate::launchers::registries(command, &crate::getenv) else {
        return true;
    };
    // A second load of the config (the first was moved into the run): cheap, and the same.
    let Some(config) = crate::check::load(config_file) else {
        return true;
    };
    if config.audit {
        // Denials are not enforced (`learn` runs programs so): nothing to warn about.
        return true;
    }
    let rt = mcp_redirect_core::runtime::Runtime::from_config(config, String::new());
    let denied = crate::launchers::denied(&rt, &fetched);
    if denied.is_empty() {
        return true;
    }
    let mut rules = String::new();
    for (registry, rule) in &denied {
        crate::complain(format!(
            "warning: {launcher} fetches {} from {}:{}, which this config denies ({rule})",
            registry.what, registry.host, registry.port
        ));
        rules.push_str(&crate::launchers::allow_rule(registry));
    }
    crate::complain(format!(
        "to allow them, add before the other rules (or route them with via = \"GATEWAY\"):\n{}",
        rules.trim_end()
    ));
    !strict
}

/// Whether `path` is the file this process runs (same device and inode).
fn is_this_program(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let identity = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let this = std::env::current_exe().ok();
    this.is_some_and(|exe| identity(&exe).is_some() && identity(&exe) == identity(path))
}

/// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY` equivalent to the config's default gateway
/// and direct rules, for a program the library cannot enter. Only what those variables can say:
/// no deny rules, no per-host gateways.
fn proxy_environment(config: &Config) -> Vec<Setting> {
    let Action::Gateway(index) = config.rules.default_action() else {
        return Vec::new();
    };
    let gw = &config.gateways[index];
    // Proxy variables can name one fixed address only.
    let Some(endpoint) = gw.endpoints.iter().find_map(|e| e.host_port()) else {
        return Vec::new();
    };
    let scheme = match gw.kind {
        GatewayKind::Http => "http",
        GatewayKind::Socks5 => "socks5h",
        GatewayKind::Rewrite => return Vec::new(),
    };
    let (url, shown) = match &gw.credentials {
        Some(creds) => (
            format!(
                "{scheme}://{}:{}@{endpoint}",
                percent_encode(&creds.username),
                percent_encode(creds.password.expose())
            ),
            format!(
                "{scheme}://{}:<redacted>@{endpoint}",
                percent_encode(&creds.username)
            ),
        ),
        None => {
            let url = format!("{scheme}://{endpoint}");
            (url.clone(), url)
        }
    };
    let proxy = |name| Setting {
        name,
        value: url.clone().into(),
        shown: shown.clone(),
    };
    // Both spellings: curl prefers the lower-case ones, and an inherited one must not win.
    let names: &[&'static str] = match gw.kind {
        GatewayKind::Http => &[
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ],
        _ => &["ALL_PROXY", "all_proxy"],
    };
    let mut settings: Vec<Setting> = names.iter().map(|&name| proxy(name)).collect();
    let mut no_proxy = vec![
        "localhost".to_string(),
        "127.0.0.0/8".to_string(),
        "::1".to_string(),
    ];
    for rule in config.rules.rules() {
        if rule.action != Action::Direct || rule.ports.is_some() || rule.process.is_some() {
            continue;
        }
        match (&rule.host, &rule.cidr) {
            (Some(HostMatch::Exact(name)), None) => no_proxy.push(name.clone()),
            (Some(HostMatch::Subdomains(suffix)), None) => no_proxy.push(suffix.clone()),
            (Some(HostMatch::Domain(apex)), None) => no_proxy.push(format!(".{apex}")),
            (None, Some(AddressMatch::Prefix(cidr))) => no_proxy.push(cidr.to_string()),
            _ => {}
        }
    }
    settings.push(Setting::plain("NO_PROXY", no_proxy.join(",")));
    settings.push(Setting::plain("no_proxy", no_proxy.join(",")));
    settings
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Quotes a word for display as a shell would need it (and for `env`'s lines, which a shell
/// evaluates).
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Used by `init --from-env` too: the config the proxy environment stands for.
pub fn environment_config() -> Result<Config, config::ConfigError> {
    config::env::from_environment(&crate::getenv)
}

/// `--dry-run`: the variables as they would be set (each as its `shown` text) and the command line.
fn print_dry_run(settings: &[Setting], command: &[OsString]) {
    for setting in settings {
        println!("{}={}", setting.name, setting.shown);
    }
    let words: Vec<String> = command
        .iter()
        .map(|w| shell_quote(&w.to_string_lossy()))
        .collect();
    println!("exec {}", words.join(" "));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_is_prepended_once() {
        let lib = Path::new("/opt/lib/libmcp_redirect.so");
        assert_eq!(
            preload_value(lib, None),
            OsString::from("/opt/lib/libmcp_redirect.so")
        );
        let existing = OsString::from("/usr/lib/libjemalloc.so /opt/lib/libmcp_redirect.so:/x.so");
        assert_eq!(
            preload_value(lib, Some(&existing)),
            OsString::from("/opt/lib/libmcp_redirect.so:/usr/lib/libjemalloc.so:/x.so")
        );
    }

    #[test]
    fn quoting_and_encoding() {
        assert_eq!(shell_quote("node"), "node");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(percent_encode("p@ss/w:rd"), "p%40ss%2Fw%3Ard");
    }
}
