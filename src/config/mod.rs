//! The configuration: a TOML file named by `MCP_REDIRECT_CONFIG`, or, without one, the
//! conventional proxy environment (`HTTPS_PROXY`, `NO_PROXY`, ...; see [`env`]). Validation
//! happens here, once, and every problem names the file, the key and what is wrong. Secrets
//! (proxy passwords) are read from the environment variables the file names and never printed.
#![forbid(unsafe_code)]

mod compiled_rules;
pub mod env;
mod problem;
mod simple_rules;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::compiled;
use crate::lists::{CidrList, HostList};
use crate::net::{Cidr, HostPort, PortRange};
use crate::rules::{Action, AddressMatch, HostMatch, Rule, RuleTable};
use problem::line_column;
pub use problem::{ConfigProblem, KeyPath, KeySegment};

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "MCP_REDIRECT_CONFIG";
/// Environment variable overriding the log target (a path or `stderr`).
pub const LOG_ENV: &str = "MCP_REDIRECT_LOG";
/// Downward-API variables naming the pod, for the `ecs` log format's `k8s.*` fields. Ours, not
/// the conventional `POD_NAME`: the library lives in someone else's process, whose own
/// variables of that name may mean something else.
pub const POD_NAME_ENV: &str = "MCP_REDIRECT_POD_NAME";
pub const POD_NAMESPACE_ENV: &str = "MCP_REDIRECT_POD_NAMESPACE";
pub const POD_UID_ENV: &str = "MCP_REDIRECT_POD_UID";
/// Largest config file we read: room for about a million inline rules; anything bigger is a
/// mistake, not a config (large lists go in list files, which have their own limit).
const MAX_CONFIG_BYTES: usize = 64 << 20;

/// A validated configuration.
pub struct Config {
    pub source: ConfigSource,
    pub gateways: Vec<Gateway>,
    pub rules: RuleTable,
    pub dns: DnsConfig,
    pub discovery: DiscoveryConfig,
    pub log: LogTarget,
    /// `[log] format`: how each line names its fields.
    pub log_format: LogFormat,
    /// Refuse UDP datagrams to routed or denied destinations (and the like); see docs/leak-proofing.md.
    pub strict: bool,
    /// Log direct connections and real lookups too (the default); `false` logs only what is
    /// denied, routed or refused, and leaves direct connections without any cost of ours.
    pub log_direct: bool,
    /// `[log] notices`: one line on stderr per refused host (see `notice`).
    pub notices: bool,
    /// `[log] close`: a `close` line for each connection decided (see `connections`).
    pub log_close: bool,
    /// `mode = "audit"`: denials are logged (`"enforced": false`) and not enforced.
    pub audit: bool,
}

/// Where the configuration came from, for messages and `check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY`.
    Environment,
    /// Nothing configured: every connection goes direct and nothing is logged.
    Nothing,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "{}", p.display()),
            ConfigSource::Environment => f.write_str("proxy environment variables"),
            ConfigSource::Nothing => f.write_str("no configuration"),
        }
    }
}

/// Where log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    File(PathBuf),
    Off,
}

impl LogTarget {
    /// Parses a log target: `stderr`, `off`, or an absolute path.
    pub fn parse(text: &str) -> Result<LogTarget, String> {
        match text {
            "stderr" => Ok(LogTarget::Stderr),
            "off" => Ok(LogTarget::Off),
            path if Path::new(path).is_absolute() => Ok(LogTarget::File(PathBuf::from(path))),
            other => Err(format!(
                "\"{other}\" must be an absolute path, \"stderr\" or \"off\" (a relative path would differ between processes)"
            )),
        }
    }
}

/// How log lines name their fields (`[log] format`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// The project's own line: `ts`, `event`, `rule`, ..., every key on every line.
    #[default]
    Native,
    /// Elastic Common Schema names (`@timestamp`, `event.action`, ...), with the pod's identity
    /// as read from the environment when the configuration was loaded (boxed: errors carry
    /// this too, and stay small).
    Ecs(Box<PodIdentity>),
}

impl LogFormat {
    pub fn name(&self) -> &'static str {
        match self {
            LogFormat::Native => "native",
            LogFormat::Ecs(_) => "ecs",
        }
    }

    /// `"native"` or `"ecs"` (the pod's identity read with `getenv`).
    fn parse(text: &str, getenv: &dyn Fn(&str) -> Option<String>) -> Option<LogFormat> {
        match text {
            "native" => Some(LogFormat::Native),
            "ecs" => Some(LogFormat::Ecs(Box::new(PodIdentity::from_env(getenv)))),
            _ => None,
        }
    }
}

/// The Kubernetes pod a process runs in, as the Downward API puts it in the environment
/// (`MCP_REDIRECT_POD_NAME`, `_NAMESPACE`, `_UID`); each `None` when unset or empty. Read once
/// per configuration load, never per line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodIdentity {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
}

impl PodIdentity {
    pub fn from_env(getenv: &dyn Fn(&str) -> Option<String>) -> PodIdentity {
        let read = |name: &str| getenv(name).filter(|value| !value.is_empty());
        PodIdentity {
            name: read(POD_NAME_ENV),
            namespace: read(POD_NAMESPACE_ENV),
            uid: read(POD_UID_ENV),
        }
    }
}

/// How names of routed hosts are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsMode {
    /// Routed and denied hosts get a synthetic address; DNS is never asked for them.
    Fake,
    /// Every name is resolved for real; addresses are remembered to recover the name.
    Local,
}

#[derive(Clone, Debug)]
pub struct DnsConfig {
    pub mode: DnsMode,
    pub fake_ipv4: Cidr,
    pub fake_ipv6: Cidr,
    /// Capacity of the fake-address table and of the address-to-name memory.
    pub max_hosts: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            mode: DnsMode::Fake,
            fake_ipv4: Cidr::parse(DEFAULT_FAKE_IPV4).expect("valid default"),
            fake_ipv6: Cidr::parse(DEFAULT_FAKE_IPV6).expect("valid default"),
            max_hosts: DEFAULT_MAX_HOSTS,
        }
    }
}

/// RFC 2544's benchmarking range: never routed on the internet, not multicast.
pub const DEFAULT_FAKE_IPV4: &str = "198.18.0.0/15";
/// A unique-local /64 ("mcprd" in the global id).
pub const DEFAULT_FAKE_IPV6: &str = "fd6d:6370:7264::/64";
/// A quarter of the default IPv4 range: slots get three generations, so an evicted entry's
/// address can be retired (with one generation, at 65536 or more, nothing is ever evicted).
pub const DEFAULT_MAX_HOSTS: usize = 32768;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayKind {
    /// HTTP/1.1 `CONNECT host:port`.
    Http,
    /// RFC 1928, with RFC 1929 username/password when configured.
    Socks5,
    /// Connect to the gateway instead of the destination; send nothing.
    Rewrite,
}

impl GatewayKind {
    pub fn name(&self) -> &'static str {
        match self {
            GatewayKind::Http => "http",
            GatewayKind::Socks5 => "socks5",
            GatewayKind::Rewrite => "rewrite",
        }
    }
}

/// A secret from the environment. Its `Debug` and `Display` print a placeholder, so that no
/// message or log line can carry it by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    /// The value, for the one place that puts it on the wire to the gateway.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Debug)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

/// How a gateway's endpoints are chosen for a connection (healthy endpoints first, always).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// In the order written: the first healthy endpoint takes everything.
    Failover,
    /// Each connection starts at the next endpoint.
    RoundRobin,
    /// Each connection starts at a random endpoint.
    Random,
    /// The same destination host starts at the same endpoint (sticky sessions, warm caches).
    Hash,
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Failover => "failover",
            Strategy::RoundRobin => "round_robin",
            Strategy::Random => "random",
            Strategy::Hash => "hash",
        }
    }
}

pub const DEFAULT_COOLDOWN_S: u64 = 300;

/// One entry of a gateway's `endpoints`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port` or `[v6]:port`.
    At(HostPort),
    /// `srv:_gateway._tcp.service.consul`: the endpoints a DNS SRV lookup finds (RFC 2782),
    /// refreshed as their TTL runs out.
    Srv(String),
}

impl Endpoint {
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        match text.strip_prefix("srv:") {
            Some(name) => crate::net::normalize_host(name)
                .map(Endpoint::Srv)
                .ok_or_else(|| format!("\"{name}\" is not a DNS name for an SRV lookup")),
            None => HostPort::parse(text).map(Endpoint::At),
        }
    }

    /// The fixed address, for an `At` endpoint.
    pub fn host_port(&self) -> Option<&HostPort> {
        match self {
            Endpoint::At(hp) => Some(hp),
            Endpoint::Srv(_) => None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::At(hp) => write!(f, "{hp}"),
            Endpoint::Srv(name) => write!(f, "srv:{name}"),
        }
    }
}

/// Where SRV endpoints are looked up, and how long answers are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// A DNS server (`127.0.0.1:8600` for Consul), or `None` for the system's first nameserver.
    pub nameserver: Option<SocketAddr>,
    /// Answers are kept at least this long (and retried no sooner after a failure)...
    pub min_ttl_s: u64,
    /// ...and at most this long, whatever their TTL says.
    pub max_ttl_s: u64,
    /// Bounds one query (UDP, then TCP if the answer was truncated).
    pub timeout_ms: u64,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            nameserver: None,
            min_ttl_s: 5,
            max_ttl_s: 300,
            timeout_ms: 1000,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Gateway {
    pub name: String,
    pub kind: GatewayKind,
    pub endpoints: Vec<Endpoint>,
    pub strategy: Strategy,
    /// Endpoints tried for one connection, at most (default: all of them once).
    pub max_attempts: usize,
    /// How long a failed endpoint is skipped while a healthy one remains.
    pub cooldown_s: u64,
    /// `rewrite` only: send a PROXY protocol v2 header first.
    pub proxy_protocol: bool,
    pub credentials: Option<Credentials>,
    /// Extra request headers for `http` gateways, validated free of CR/LF.
    pub headers: Vec<(String, String)>,
    /// Bounds the whole connect + handshake.
    pub connect_timeout_ms: u64,
    /// On a non-blocking socket, hand the handshake to the relay (`connect()` returns
    /// `EINPROGRESS` at once; see `docs/nonblocking.md`) rather than run it inside `connect()`.
    pub async_handshake: bool,
}

/// What to do when the configuration is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConfigError {
    /// Fail closed: every intercepted connect fails with `EACCES` (the default).
    Deny,
    /// Fail open: every connection goes direct.
    Direct,
}

/// An invalid configuration: the message names the source, the key and the problem; the rest
/// says how to behave, from whatever parts of the file were still readable.
#[derive(Clone, Debug)]
pub struct ConfigError {
    pub source: ConfigSource,
    pub message: String,
    pub on_error: OnConfigError,
    pub log: LogTarget,
    pub log_format: LogFormat,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config {}: {}", self.source, self.message)
    }
}

// ---- The file schema, as serde reads it. ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSchema {
    default: Option<String>,
    on_config_error: Option<String>,
    strict: Option<bool>,
    mode: Option<String>,
    async_handshake: Option<bool>,
    log: Option<LogSchema>,
    /// The issue's spelling of `log.format`, accepted too.
    log_format: Option<String>,
    dns: Option<DnsSchema>,
    discovery: Option<DiscoverySchema>,
    #[serde(default)]
    gateways: BTreeMap<String, GatewaySchema>,
    #[serde(default)]
    rules: Vec<RuleSchema>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSchema {
    path: Option<String>,
    direct: Option<bool>,
    format: Option<String>,
    notices: Option<bool>,
    close: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscoverySchema {
    nameserver: Option<String>,
    min_ttl_s: Option<i64>,
    max_ttl_s: Option<i64>,
    timeout_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsSchema {
    mode: Option<String>,
    fake_ipv4: Option<String>,
    fake_ipv6: Option<String>,
    max_hosts: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewaySchema {
    kind: String,
    endpoints: Vec<String>,
    username: Option<String>,
    password_env: Option<String>,
    /// Present only to refuse it with a useful message: passwords belong in the environment.
    password: Option<toml::Value>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    connect_timeout_ms: Option<i64>,
    strategy: Option<String>,
    max_attempts: Option<i64>,
    cooldown_s: Option<i64>,
    proxy_protocol: Option<String>,
    async_handshake: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSchema {
    host: Option<String>,
    host_regex: Option<String>,
    host_list: Option<String>,
    cidr: Option<String>,
    cidr_list: Option<String>,
    port: Option<toml::Value>,
    process: Option<String>,
    via: Option<String>,
    action: Option<String>,
}

/// One `[[rules]]` table's keys as `validate` reads them, borrowed: from a parsed
/// [`RuleSchema`], or straight from the file's text for a simple table ([`simple_rules`]), which
/// then needs no owned copy of its strings.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct RuleFields<'a> {
    host: Option<&'a str>,
    host_regex: Option<&'a str>,
    host_list: Option<&'a str>,
    cidr: Option<&'a str>,
    cidr_list: Option<&'a str>,
    port: Option<PortValue<'a>>,
    process: Option<&'a str>,
    via: Option<&'a str>,
    action: Option<&'a str>,
    /// `host` is already in the form `HostMatch::parse_host` makes (read from a compiled
    /// form, which holds it so): it is taken as it is, not checked and lowered again.
    host_is_normal: bool,
}

/// A rule's `port` value: `443`, `"8000-8999"`, or another TOML type (refused by `validate`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum PortValue<'a> {
    Integer(i64),
    Text(&'a str),
    Other(&'static str),
}

impl RuleSchema {
    fn fields(&self) -> RuleFields<'_> {
        RuleFields {
            host: self.host.as_deref(),
            host_regex: self.host_regex.as_deref(),
            host_list: self.host_list.as_deref(),
            cidr: self.cidr.as_deref(),
            cidr_list: self.cidr_list.as_deref(),
            port: self.port.as_ref().map(|value| match value {
                toml::Value::Integer(n) => PortValue::Integer(*n),
                toml::Value::String(text) => PortValue::Text(text),
                other => PortValue::Other(other.type_str()),
            }),
            process: self.process.as_deref(),
            via: self.via.as_deref(),
            action: self.action.as_deref(),
            host_is_normal: false,
        }
    }
}

/// A config file read into its schema; the simple `[[rules]]` tables that the scanner took
/// from the text are held apart, with their place among all the file's rules.
struct ParsedFile<'t> {
    schema: FileSchema,
    taken: Vec<(usize, RuleFields<'t>)>,
    tables: usize,
    /// The text the schema was parsed from, when rules were taken out of it (for the
    /// compiled form); empty otherwise.
    rest: String,
}

impl<'t> ParsedFile<'t> {
    fn whole(schema: FileSchema) -> ParsedFile<'t> {
        let tables = schema.rules.len();
        ParsedFile {
            schema,
            taken: Vec::new(),
            tables,
            rest: String::new(),
        }
    }

    /// The file whose simple rules were `taken` out and whose other text parsed into `schema`,
    /// if the two add up to its `tables` rules.
    fn of_parts(
        schema: FileSchema,
        taken: Vec<(usize, RuleFields<'t>)>,
        tables: usize,
        rest: String,
    ) -> Option<ParsedFile<'t>> {
        (schema.rules.len() + taken.len() == tables).then_some(ParsedFile {
            schema,
            taken,
            tables,
            rest,
        })
    }

    /// The parsed file a compiled form stands for, if its parts add up.
    fn from_compiled(parts: compiled_rules::Parts<'t>) -> Option<ParsedFile<'t>> {
        let schema = toml::from_str::<FileSchema>(parts.rest).ok()?;
        ParsedFile::of_parts(schema, parts.taken, parts.tables, String::new())
    }

    /// Every rule, in file order.
    fn rules(&self) -> impl Iterator<Item = RuleFields<'_>> {
        let mut others = self.schema.rules.iter();
        let mut taken = self.taken.iter().peekable();
        (0..self.tables).filter_map(move |index| match taken.next_if(|(at, _)| *at == index) {
            Some((_, rule)) => Some(*rule),
            None => others.next().map(RuleSchema::fields),
        })
    }
}

/// Loads the configuration the environment points at: the file in `MCP_REDIRECT_CONFIG`, else
/// the proxy variables, else nothing. `MCP_REDIRECT_LOG` overrides the log target in all three.
pub fn load(getenv: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let log_override = getenv(LOG_ENV).filter(|v| !v.is_empty());
    let override_log = |log: LogTarget| -> Result<LogTarget, String> {
        match &log_override {
            Some(text) => LogTarget::parse(text).map_err(|e| format!("{LOG_ENV}: {e}")),
            None => Ok(log),
        }
    };
    let result = match getenv(CONFIG_ENV).filter(|v| !v.is_empty()) {
        Some(path) => load_file(Path::new(&path), getenv),
        None => env::from_environment(getenv),
    };
    match result {
        Ok(mut config) => match override_log(config.log.clone()) {
            Ok(log) => {
                config.log = log;
                Ok(config)
            }
            Err(message) => Err(ConfigError {
                source: config.source,
                message,
                on_error: OnConfigError::Deny,
                log: LogTarget::Stderr,
                log_format: config.log_format,
            }),
        },
        Err(mut error) => {
            error.log = override_log(error.log.clone()).unwrap_or(LogTarget::Stderr);
            Err(error)
        }
    }
}

/// Reads and validates a config file.
pub fn load_file(
    path: &Path,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let source = ConfigSource::File(path.to_path_buf());
    let fail = |message: String| ConfigError {
        source: source.clone(),
        message,
        on_error: OnConfigError::Deny,
        log: LogTarget::Stderr,
        log_format: LogFormat::Native,
    };
    if !path.is_absolute() {
        return Err(fail(format!(
            "{CONFIG_ENV} must be an absolute path (a relative one would differ between processes)"
        )));
    }
    // A compiled form of this version of the file, if one was written: its rules are read,
    // not scanned. Anything it does not validate to is read again from the text, which
    // reports the error in the file's own lines.
    let cache = compiled::cache_dir(getenv);
    let identity = compiled::Identity::now(path);
    if identity != compiled::Identity::default() {
        if let Some((_, _, mapping)) =
            compiled::find(path, cache.as_deref(), compiled::Kind::Rules, &identity)
        {
            let parsed = compiled_rules::decode(&mapping.bytes()[compiled::HEADER..])
                .and_then(ParsedFile::from_compiled);
            if let Some(Ok(config)) = parsed.map(|p| validate(p, source.clone(), getenv)) {
                return Ok(config);
            }
        }
    }
    let bytes = crate::sys::read_small_file(path, MAX_CONFIG_BYTES).map_err(|e| {
        fail(format!(
            "cannot read the file: {}",
            crate::errno::errno_text(&e)
        ))
    })?;
    let text = String::from_utf8(bytes).map_err(|_| fail("the file is not UTF-8".into()))?;
    // What was read is what the compiled form stands for: if the file changed since the stat,
    // no form is written under the older identity.
    let fresh = text.len() as u64 == identity.size() && identity != Default::default();
    let write = fresh.then_some(move |count: u64, body: &[u8]| {
        let (kind, cache) = (compiled::Kind::Rules, cache.as_deref());
        compiled::write_compiled(path, cache, kind, &identity, count, body);
    });
    parse_then(&text, source.clone(), getenv, write)
}

/// Parses and validates config text. On error, still honours `on_config_error` and `log.path`
/// when those two keys are readable.
pub fn parse(
    text: &str,
    source: ConfigSource,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    parse_then(text, source, getenv, None::<fn(u64, &[u8])>)
}

/// [`parse`], and when it took simple rules out of a text that validates, hands their
/// compiled form (the rule count and the body) to `compiled`, which writes it.
fn parse_then(
    text: &str,
    source: ConfigSource,
    getenv: &dyn Fn(&str) -> Option<String>,
    compiled: Option<impl FnOnce(u64, &[u8])>,
) -> Result<Config, ConfigError> {
    let schema = parse_schema(text, true);
    let result = schema.and_then(|schema| {
        let body = match (&compiled, schema.taken.is_empty()) {
            (Some(_), false) => compiled_rules::encode(schema.tables, &schema.rest, &schema.taken)
                .map(|body| (schema.taken.len() as u64, body)),
            _ => None,
        };
        let config =
            validate(schema, source.clone(), getenv).map_err(|problem| problem.describe(text))?;
        if let (Some(write), Some((count, body))) = (compiled, body) {
            write(count, &body);
        }
        Ok(config)
    });
    result.map_err(|message| {
        let (on_error, log, log_format) = readable_fallbacks(text, getenv);
        ConfigError {
            source,
            message,
            on_error,
            log,
            log_format,
        }
    })
}

/// The file's TOML, read into the schema; with `scan`, simple `[[rules]]` tables are taken out
/// of the text first ([`simple_rules`]) when that adds up, which gives the same schema faster.
/// Errors always come from parsing the whole text, so that they name the file's own lines.
fn parse_schema(text: &str, scan: bool) -> Result<ParsedFile<'_>, String> {
    if let Some(split) = scan.then(|| simple_rules::split(text)).flatten() {
        if let Ok(schema) = toml::from_str::<FileSchema>(&split.rest) {
            if let Some(file) = ParsedFile::of_parts(schema, split.taken, split.tables, split.rest)
            {
                return Ok(file);
            }
        }
    }
    toml::from_str(text)
        .map(ParsedFile::whole)
        .map_err(|e| describe_toml_error(text, &e))
}

/// The list files a config file's rules name (`host_list`, `cidr_list`), read leniently: for a
/// config that failed validation, whose lists are watched so that fixing one is noticed.
pub fn list_files(path: &Path) -> Vec<PathBuf> {
    let Ok(bytes) = crate::sys::read_small_file(path, MAX_CONFIG_BYTES) else {
        return Vec::new();
    };
    let Some(table) = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
    else {
        return Vec::new();
    };
    let base = path.parent().unwrap_or(Path::new("/"));
    let rules = table.get("rules").and_then(|r| r.as_array());
    rules
        .into_iter()
        .flatten()
        .flat_map(|rule| ["host_list", "cidr_list"].map(|key| rule.get(key)))
        .flatten()
        .filter_map(|value| value.as_str())
        .map(|text| base.join(text))
        .collect()
}

/// `on_config_error`, `log.path` and `log.format` from a file that failed validation, if TOML
/// can read them.
fn readable_fallbacks(
    text: &str,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> (OnConfigError, LogTarget, LogFormat) {
    let value: Option<toml::Table> = text.parse().ok();
    let on_error = match value
        .as_ref()
        .and_then(|t| t.get("on_config_error"))
        .and_then(|v| v.as_str())
    {
        Some("direct") => OnConfigError::Direct,
        _ => OnConfigError::Deny,
    };
    let log = value
        .as_ref()
        .and_then(|t| t.get("log"))
        .and_then(|l| l.get("path"))
        .and_then(|p| p.as_str())
        .and_then(|p| LogTarget::parse(p).ok())
        .unwrap_or(LogTarget::Stderr);
    let log_format = value
        .as_ref()
        .and_then(|t| {
            t.get("log")
                .and_then(|l| l.get("format"))
                .or(t.get("log_format"))
        })
        .and_then(|f| f.as_str())
        .and_then(|f| LogFormat::parse(f, getenv))
        .unwrap_or_default();
    (on_error, log, log_format)
}

/// One line: `rules[3]: line 14, column 1: unknown field `hots`, expected one of ...`.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            let key = problem::table_at(text, span.start);
            if key.segments().is_empty() {
                format!("line {line}, column {column}: {message}")
            } else {
                format!("{key}: line {line}, column {column}: {message}")
            }
        }
        None => message,
    }
}

fn validate(
    file: ParsedFile<'_>,
    source: ConfigSource,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigProblem> {
    let schema = &file.schema;
    let mut gateways = Vec::new();
    for (name, gw) in &schema.gateways {
        let mut gateway = validate_gateway(name, gw, getenv)?;
        gateway.async_handshake = gw
            .async_handshake
            .or(schema.async_handshake)
            .unwrap_or(true);
        gateways.push(gateway);
    }
    // The key is made only for an error: a table of 70,000 rules builds no key paths.
    let gateway_index = |name: &str, key: &dyn Fn() -> KeyPath| -> Result<usize, ConfigProblem> {
        gateways.iter().position(|g| g.name == name).ok_or_else(|| {
            let known: Vec<&str> = gateways.iter().map(|g| g.name.as_str()).collect();
            let message = if known.is_empty() {
                format!("no gateway named \"{name}\" (no [gateways.*] are defined)")
            } else {
                format!(
                    "no gateway named \"{name}\" (defined: {})",
                    known.join(", ")
                )
            };
            ConfigProblem::new(key(), message)
        })
    };

    let default = match schema.default.as_deref() {
        None | Some("direct") => Action::Direct,
        Some("deny") => Action::Deny,
        Some(name) => Action::Gateway(gateway_index(name, &|| KeyPath::top("default"))?),
    };

    if let Some(value) = schema.on_config_error.as_deref() {
        if value != "deny" && value != "direct" {
            return Err(ConfigProblem::new(
                KeyPath::top("on_config_error"),
                format!("\"{value}\" must be \"deny\" or \"direct\""),
            ));
        }
    }

    let mut rules = Vec::with_capacity(file.tables);
    let mut lists = Lists::new(&source, getenv);
    for (index, rule) in file.rules().enumerate() {
        // Made only for an error: a table of 70,000 rules builds no key paths.
        let key = || KeyPath::rule(index);
        let field = |name: &str| KeyPath::rule(index).key(name);
        let action = match (rule.via, rule.action) {
            (Some(_), Some(_)) => {
                return Err(ConfigProblem::new(
                    key(),
                    "give either `via` or `action`, not both",
                ))
            }
            (None, None) => {
                return Err(ConfigProblem::new(
                    key(),
                    "needs `via = \"<gateway>\"` or `action = \"direct\"` / \"deny\"",
                ))
            }
            (Some(name), None) => Action::Gateway(gateway_index(name, &|| field("via"))?),
            (None, Some("direct")) => Action::Direct,
            (None, Some("deny")) => Action::Deny,
            (None, Some(other)) => {
                return Err(ConfigProblem::new(
                    field("action"),
                    format!("\"{other}\" must be \"direct\" or \"deny\" (to use a gateway: via = \"<name>\")"),
                ))
            }
        };
        let host = match (rule.host, rule.host_regex, rule.host_list) {
            (Some(h), None, None) if rule.host_is_normal => Some(HostMatch::from_normal(h)),
            (Some(h), None, None) => {
                Some(HostMatch::parse_host(h).map_err(|e| ConfigProblem::new(field("host"), e))?)
            }
            (None, Some(r), None) => Some(
                HostMatch::parse_regex(r)
                    .map_err(|e| ConfigProblem::new(field("host_regex"), e))?,
            ),
            (None, None, Some(path)) => Some(HostMatch::List(
                lists
                    .hosts(path)
                    .map_err(|e| ConfigProblem::new(field("host_list"), e))?,
            )),
            (None, None, None) => None,
            _ => {
                return Err(ConfigProblem::new(
                    key(),
                    "give one of `host`, `host_regex` and `host_list`, not several",
                ))
            }
        };
        let cidr = match (rule.cidr, rule.cidr_list) {
            (Some(c), None) => Some(AddressMatch::Prefix(
                Cidr::parse(c).map_err(|e| ConfigProblem::new(field("cidr"), e))?,
            )),
            (None, Some(path)) => Some(AddressMatch::List(
                lists
                    .cidrs(path)
                    .map_err(|e| ConfigProblem::new(field("cidr_list"), e))?,
            )),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(ConfigProblem::new(
                    key(),
                    "give either `cidr` or `cidr_list`, not both",
                ))
            }
        };
        let ports = match rule.port {
            None => None,
            Some(PortValue::Integer(n)) => Some(
                PortRange::parse(&n.to_string())
                    .map_err(|e| ConfigProblem::new(field("port"), e))?,
            ),
            Some(PortValue::Text(s)) => {
                Some(PortRange::parse(s).map_err(|e| ConfigProblem::new(field("port"), e))?)
            }
            Some(PortValue::Other(type_name)) => {
                return Err(ConfigProblem::new(
                    field("port"),
                    format!("expected a number or a \"first-last\" string, found {type_name}"),
                ))
            }
        };
        if let Some(process) = rule.process {
            if process.is_empty() || process.contains('/') {
                return Err(ConfigProblem::new(
                    field("process"),
                    format!("\"{process}\" must be an executable's base name, like \"node\""),
                ));
            }
        }
        rules.push(Rule::new(
            host,
            cidr,
            ports,
            rule.process.map(str::to_string),
            action,
        ));
    }

    let audit = match schema.mode.as_deref() {
        None | Some("enforce") => false,
        Some("audit") => true,
        Some(other) => {
            return Err(ConfigProblem::new(
                KeyPath::top("mode"),
                format!("\"{other}\" must be \"enforce\" or \"audit\""),
            ))
        }
    };
    let dns = validate_dns(schema.dns.as_ref())?;
    let discovery = validate_discovery(schema.discovery.as_ref())?;
    let log = match schema.log.as_ref().and_then(|l| l.path.as_deref()) {
        Some(path) => LogTarget::parse(path)
            .map_err(|e| ConfigProblem::new(KeyPath::top("log").key("path"), e))?,
        None => LogTarget::Stderr,
    };
    let format_key = match (
        schema.log.as_ref().and_then(|l| l.format.as_deref()),
        schema.log_format.as_deref(),
    ) {
        (Some(_), Some(_)) => {
            return Err(ConfigProblem::new(
                KeyPath::top("log_format"),
                "give log.format or log_format, not both",
            ))
        }
        (Some(text), None) => Some((KeyPath::top("log").key("format"), text)),
        (None, Some(text)) => Some((KeyPath::top("log_format"), text)),
        (None, None) => None,
    };
    let log_format = match format_key {
        None => LogFormat::Native,
        Some((key, text)) => LogFormat::parse(text, getenv).ok_or_else(|| {
            ConfigProblem::new(key, format!("\"{text}\" must be \"native\" or \"ecs\""))
        })?,
    };
    Ok(Config {
        source,
        gateways,
        rules: RuleTable::new(rules, default),
        dns,
        discovery,
        log_direct: schema.log.as_ref().and_then(|l| l.direct).unwrap_or(true),
        notices: schema.log.as_ref().and_then(|l| l.notices).unwrap_or(true),
        log_close: schema.log.as_ref().and_then(|l| l.close).unwrap_or(true),
        audit,
        log,
        log_format,
        strict: schema.strict.unwrap_or(false),
    })
}

/// The list files of a config's rules, each loaded once however many rules name it. Relative
/// paths are the config file's directory's.
struct Lists {
    base: Option<PathBuf>,
    cache: Option<PathBuf>,
    hosts: Vec<(PathBuf, std::sync::Arc<HostList>)>,
    cidrs: Vec<(PathBuf, std::sync::Arc<CidrList>)>,
}

impl Lists {
    fn new(source: &ConfigSource, getenv: &dyn Fn(&str) -> Option<String>) -> Lists {
        let base = match source {
            ConfigSource::File(path) => path.parent().map(Path::to_path_buf),
            _ => None,
        };
        Lists {
            base,
            cache: crate::lists::cache_dir(getenv),
            hosts: Vec::new(),
            cidrs: Vec::new(),
        }
    }

    fn path(&self, text: &str) -> Result<PathBuf, String> {
        let path = Path::new(text);
        if path.is_absolute() {
            return Ok(path.to_path_buf());
        }
        match &self.base {
            Some(base) => Ok(base.join(path)),
            None => Err(format!(
                "\"{text}\" must be an absolute path (there is no config file to be relative to)"
            )),
        }
    }

    fn hosts(&mut self, text: &str) -> Result<std::sync::Arc<HostList>, String> {
        let path = self.path(text)?;
        if let Some((_, list)) = self.hosts.iter().find(|(p, _)| *p == path) {
            return Ok(list.clone());
        }
        let list = std::sync::Arc::new(HostList::load(&path, self.cache.as_deref())?);
        self.hosts.push((path, list.clone()));
        Ok(list)
    }

    fn cidrs(&mut self, text: &str) -> Result<std::sync::Arc<CidrList>, String> {
        let path = self.path(text)?;
        if let Some((_, list)) = self.cidrs.iter().find(|(p, _)| *p == path) {
            return Ok(list.clone());
        }
        let list = std::sync::Arc::new(CidrList::load(&path, self.cache.as_deref())?);
        self.cidrs.push((path, list.clone()));
        Ok(list)
    }
}

fn validate_gateway(
    name: &str,
    gw: &GatewaySchema,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<Gateway, ConfigProblem> {
    // Made only for an error.
    let key = || KeyPath::gateway(name);
    let field = |field: &str| KeyPath::gateway(name).key(field);
    if matches!(name, "direct" | "deny") {
        return Err(ConfigProblem::new(
            key(),
            format!("\"{name}\" is an action and cannot name a gateway"),
        ));
    }
    let kind = match gw.kind.as_str() {
        "http" => GatewayKind::Http,
        "socks5" => GatewayKind::Socks5,
        "rewrite" => GatewayKind::Rewrite,
        other => {
            return Err(ConfigProblem::new(
                field("kind"),
                format!("\"{other}\" must be \"http\", \"socks5\" or \"rewrite\""),
            ))
        }
    };
    if gw.endpoints.is_empty() {
        return Err(ConfigProblem::new(
            field("endpoints"),
            "at least one \"host:port\" or \"srv:NAME\" is needed",
        ));
    }
    let endpoints = gw
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Endpoint::parse(e).map_err(|m| ConfigProblem::new(field("endpoints").index(i), m))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if gw.password.is_some() {
        return Err(ConfigProblem::new(field("password"), "passwords are not kept in the config file; put it in an environment variable and name it with password_env"));
    }
    let credentials = match (&gw.username, &gw.password_env) {
        (None, None) => None,
        (None, Some(_)) => return Err(ConfigProblem::new(key(), "password_env without username")),
        (Some(username), password_env) => {
            if kind == GatewayKind::Rewrite {
                return Err(ConfigProblem::new(
                    field("username"),
                    "a rewrite gateway sends nothing, so it takes no credentials",
                ));
            }
            let password = match password_env {
                Some(var) => getenv(var).ok_or_else(|| {
                    ConfigProblem::new(
                        field("password_env"),
                        format!("environment variable {var} is not set"),
                    )
                })?,
                None => String::new(),
            };
            if kind == GatewayKind::Socks5 && (username.len() > 255 || password.len() > 255) {
                return Err(ConfigProblem::new(
                    key(),
                    "SOCKS5 usernames and passwords are at most 255 bytes",
                ));
            }
            if username.contains(':') && kind == GatewayKind::Http {
                return Err(ConfigProblem::new(
                    field("username"),
                    "Basic auth usernames cannot contain ':'",
                ));
            }
            if username.bytes().any(|b| b.is_ascii_control())
                || password.bytes().any(|b| b.is_ascii_control())
            {
                return Err(ConfigProblem::new(
                    key(),
                    "username and password cannot contain control characters",
                ));
            }
            Some(Credentials {
                username: username.clone(),
                password: Secret::new(password),
            })
        }
    };
    if !gw.headers.is_empty() && kind != GatewayKind::Http {
        return Err(ConfigProblem::new(
            field("headers"),
            "only http gateways send headers",
        ));
    }
    let mut headers = Vec::new();
    for (header, value) in &gw.headers {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if header.is_empty() || !header.bytes().all(token) {
            return Err(ConfigProblem::new(
                field("headers"),
                format!("\"{header}\" is not a valid header name"),
            ));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ConfigProblem::new(
                field("headers").key(header),
                "the value contains CR, LF or NUL",
            ));
        }
        if header.eq_ignore_ascii_case("host") {
            return Err(ConfigProblem::new(
                field("headers"),
                "Host is set from the destination",
            ));
        }
        headers.push((header.clone(), value.clone()));
    }
    let connect_timeout_ms = match gw.connect_timeout_ms {
        None => DEFAULT_CONNECT_TIMEOUT_MS,
        Some(ms) if (1..=600_000).contains(&ms) => ms as u64,
        Some(ms) => {
            return Err(ConfigProblem::new(
                field("connect_timeout_ms"),
                format!("{ms} must be from 1 to 600000"),
            ))
        }
    };
    let strategy = match gw.strategy.as_deref() {
        None | Some("failover") => Strategy::Failover,
        Some("round_robin") => Strategy::RoundRobin,
        Some("random") => Strategy::Random,
        Some("hash") => Strategy::Hash,
        Some(other) => {
            return Err(ConfigProblem::new(
                field("strategy"),
                format!(
                    "\"{other}\" must be \"failover\", \"round_robin\", \"random\" or \"hash\""
                ),
            ))
        }
    };
    // An SRV entry can stand for any number of endpoints: then any positive count is fine.
    let has_srv = endpoints.iter().any(|e| matches!(e, Endpoint::Srv(_)));
    let max_attempts = match gw.max_attempts {
        None if has_srv => usize::MAX,
        None => endpoints.len(),
        Some(n) if n >= 1 && (has_srv || n as usize <= endpoints.len()) => n as usize,
        Some(n) => {
            return Err(ConfigProblem::new(
                field("max_attempts"),
                format!(
                    "{n} must be from 1 to the number of endpoints ({})",
                    endpoints.len()
                ),
            ))
        }
    };
    let cooldown_s = match gw.cooldown_s {
        None => DEFAULT_COOLDOWN_S,
        Some(s) if (0..=86_400).contains(&s) => s as u64,
        Some(s) => {
            return Err(ConfigProblem::new(
                field("cooldown_s"),
                format!("{s} must be from 0 to 86400"),
            ))
        }
    };
    let proxy_protocol = match gw.proxy_protocol.as_deref() {
        None => false,
        Some("v2") if kind == GatewayKind::Rewrite => true,
        Some("v2") => {
            return Err(ConfigProblem::new(field("proxy_protocol"), "only rewrite gateways send a PROXY header (http and socks5 gateways learn the destination from their handshake)"))
        }
        Some(other) => return Err(ConfigProblem::new(field("proxy_protocol"), format!("\"{other}\" must be \"v2\""))),
    };
    Ok(Gateway {
        name: name.to_string(),
        kind,
        endpoints,
        strategy,
        proxy_protocol,
        max_attempts,
        cooldown_s,
        credentials,
        headers,
        connect_timeout_ms,
        async_handshake: true,
    })
}

fn validate_discovery(schema: Option<&DiscoverySchema>) -> Result<DiscoveryConfig, ConfigProblem> {
    let mut config = DiscoveryConfig::default();
    let Some(schema) = schema else {
        return Ok(config);
    };
    let field = |name: &str| KeyPath::top("discovery").key(name);
    if let Some(text) = &schema.nameserver {
        let hp = HostPort::parse(text).map_err(|e| ConfigProblem::new(field("nameserver"), e))?;
        config.nameserver = Some(hp.literal().ok_or_else(|| {
            ConfigProblem::new(
                field("nameserver"),
                format!("\"{text}\" must be an address (a name would need DNS to find DNS)"),
            )
        })?);
    }
    let seconds = |value: Option<i64>, key: &str, default: u64| match value {
        None => Ok(default),
        Some(s) if (0..=86_400).contains(&s) => Ok(s as u64),
        Some(s) => Err(ConfigProblem::new(
            field(key),
            format!("{s} must be from 0 to 86400"),
        )),
    };
    config.min_ttl_s = seconds(schema.min_ttl_s, "min_ttl_s", config.min_ttl_s)?;
    config.max_ttl_s = seconds(schema.max_ttl_s, "max_ttl_s", config.max_ttl_s)?;
    if config.min_ttl_s > config.max_ttl_s {
        return Err(ConfigProblem::new(
            field("min_ttl_s"),
            format!(
                "{} is more than max_ttl_s ({})",
                config.min_ttl_s, config.max_ttl_s
            ),
        ));
    }
    config.timeout_ms = match schema.timeout_ms {
        None => config.timeout_ms,
        Some(ms) if (1..=60_000).contains(&ms) => ms as u64,
        Some(ms) => {
            return Err(ConfigProblem::new(
                field("timeout_ms"),
                format!("{ms} must be from 1 to 60000"),
            ))
        }
    };
    Ok(config)
}

fn validate_dns(dns: Option<&DnsSchema>) -> Result<DnsConfig, ConfigProblem> {
    let mut config = DnsConfig::default();
    let Some(dns) = dns else { return Ok(config) };
    let field = |name: &str| KeyPath::top("dns").key(name);
    config.mode = match dns.mode.as_deref() {
        None | Some("fake") => DnsMode::Fake,
        Some("local") => DnsMode::Local,
        Some(other) => {
            return Err(ConfigProblem::new(
                field("mode"),
                format!("\"{other}\" must be \"fake\" or \"local\""),
            ))
        }
    };
    if let Some(text) = &dns.fake_ipv4 {
        let cidr = Cidr::parse(text).map_err(|e| ConfigProblem::new(field("fake_ipv4"), e))?;
        if !cidr.network().is_ipv4() || cidr.prefix_len() > 28 {
            return Err(ConfigProblem::new(
                field("fake_ipv4"),
                format!("\"{text}\" must be an IPv4 prefix of /28 or wider"),
            ));
        }
        config.fake_ipv4 = cidr;
    }
    if let Some(text) = &dns.fake_ipv6 {
        let cidr = Cidr::parse(text).map_err(|e| ConfigProblem::new(field("fake_ipv6"), e))?;
        if cidr.network().is_ipv4() || cidr.prefix_len() > 112 {
            return Err(ConfigProblem::new(
                field("fake_ipv6"),
                format!("\"{text}\" must be an IPv6 prefix of /112 or wider"),
            ));
        }
        config.fake_ipv6 = cidr;
    }
    if let Some(n) = dns.max_hosts {
        if !(16..=1 << 20).contains(&n) {
            return Err(ConfigProblem::new(
                field("max_hosts"),
                format!("{n} must be from 16 to 1048576"),
            ));
        }
        config.max_hosts = n as usize;
    }
    // Two addresses of each range are never handed out (network and broadcast style ends), and
    // a slot has an address in both ranges: the smaller range bounds the table.
    let usable = config
        .fake_ipv4
        .size()
        .min(config.fake_ipv6.size())
        .saturating_sub(2);
    config.max_hosts = config.max_hosts.min(usable as usize);
    Ok(config)
}

#[cfg(test)]
mod tests {

    /// The scanner of simple [[rules]] tables gives the schema the TOML parser gives, for
    /// files that mix simple tables with every shape it must leave alone, and the same error
    /// for files that are wrong.
    /// The schema with its rules in file order, as `validate` sees them.
    fn described(mut file: ParsedFile<'_>) -> String {
        let rules = format!("{:?}", file.rules().collect::<Vec<_>>());
        file.schema.rules.clear();
        format!("{:?} {rules}", file.schema)
    }

    #[test]
    fn scanned_rules_are_the_rules_the_toml_parser_reads() {
        let shapes = [
            "[[rules]]\nhost = \"h{i}.example.test\"\naction = \"deny\"\n",
            "[[rules]]  # a comment\n# another\nhost = \"*.s{i}.test\"   # why\n\nvia = \"corp\"\n",
            "[[rules]]\r\ncidr = \"10.{i}.0.0/16\"\r\nport = 443\r\naction = \"direct\"\r\n",
            "[[rules]]\nhost = \".d{i}.test\"\nport = \"8000-8999\"\nprocess = \"node\"\nvia = \"corp\"\n",
            // Left to the TOML parser: a literal string, an escape, a regex, a quoted key, a
            // comment with quotes, a leading zero, a tab in the string.
            "[[rules]]\nhost = 'lit{i}.test'\naction = \"deny\"\n",
            "[[rules]]\nhost = \"e{i}\\u0041.test\"\naction = \"deny\"\n",
            "[[rules]]\nhost_regex = '^r{i}\\.test$'\naction = \"deny\"\n",
            "[[rules]]\n\"host\" = \"q{i}.test\"\naction = \"deny\"\n",
            "[[rules]]\nhost = \"x{i}.test\" # \"quoted\" comment\naction = \"deny\"\n",
            "[[rules]]\nhost = \"z{i}.test\"\nport = 0443\naction = \"deny\"\n",
            "[[rules]]\nhost = \"t{i}\t.test\"\naction = \"deny\"\n",
            "[gateways.g{i}]\nkind = \"http\"\nendpoints = [\n  \"127.0.0.1:3128\",\n]\n",
            "[log]\npath = \"off\"\n",
        ];
        let head =
            "default = \"direct\"\n[gateways.corp]\nkind = \"http\"\nendpoints = [\"127.0.0.1:3128\"]\n";
        let mut seed: u64 = 7;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        for round in 0..60 {
            let mut text = head.to_string();
            let mut has_log = false;
            let mut has_zero = false;
            for i in 0..(120 + next(60)) {
                // Mostly simple tables, so that the scanner takes them.
                let shape = if next(4) == 0 {
                    next(shapes.len())
                } else {
                    next(4)
                };
                if shape == shapes.len() - 1 {
                    if has_log {
                        continue;
                    }
                    has_log = true;
                }
                has_zero |= shape == 9 || shape == 10;
                text.push_str(&shapes[shape].replace("{i}", &i.to_string()));
            }
            if round % 7 == 3 {
                // A duplicate key in a simple table.
                text.push_str("[[rules]]\nhost = \"a.test\"\nhost = \"b.test\"\n");
            }
            if round % 11 == 5 {
                text.push_str("[[rules]]\nhots = \"a.test\"\naction = \"deny\"\n");
            }
            let scanned = parse_schema(&text, true).map(described);
            let parsed = parse_schema(&text, false).map(described);
            assert_eq!(scanned, parsed, "round {round}:\n{text}");
            if round % 7 != 3 && round % 11 != 5 && !has_zero {
                assert!(parsed.is_ok(), "round {round}: {parsed:?}");
            }
            assert!(
                simple_rules::split(&text).is_some(),
                "round {round}: scanned"
            );
        }
        // Files the scanner must not touch at all.
        let many = "[[rules]]\nhost = \"m.test\"\naction = \"deny\"\n".repeat(100);
        for other in [
            "x = '''\n[[rules]]\n'''\n",
            "rules = []\n",
            "[rules]\n",
            "[[rules.x]]\n",
        ] {
            assert!(
                simple_rules::split(&format!("{other}{many}")).is_none(),
                "{other}"
            );
        }
    }
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_err(text: &str) -> String {
        match parse(text, ConfigSource::File("/etc/x.toml".into()), &no_env) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_full_config_parses() {
        let text = r#"
            default = "corp"
            [log]
            path = "/tmp/x.jsonl"
            [dns]
            mode = "local"
            [gateways.corp]
            kind = "http"
            endpoints = ["127.0.0.1:3128", "proxy.corp:3128"]
            username = "u"
            password_env = "PW"
            headers = { "X-Route" = "mcp" }
            [[rules]]
            host = "*.openai.com"
            port = 443
            via = "corp"
            [[rules]]
            cidr = "10.0.0.0/8"
            port = "8000-8999"
            action = "deny"
        "#;
        let env = |k: &str| (k == "PW").then(|| "s3cret".to_string());
        let c = parse(text, ConfigSource::File("/x".into()), &env).unwrap();
        assert_eq!(c.gateways.len(), 1);
        assert_eq!(
            c.gateways[0]
                .credentials
                .as_ref()
                .unwrap()
                .password
                .expose(),
            "s3cret"
        );
        assert_eq!(c.rules.rules().len(), 2);
        assert_eq!(c.rules.rules()[0].pattern, "host=*.openai.com port=443");
        assert_eq!(c.rules.default_action(), Action::Gateway(0));
        assert_eq!(c.dns.mode, DnsMode::Local);
        assert_eq!(c.log, LogTarget::File("/tmp/x.jsonl".into()));
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_problem() {
        let e = parse_err(
            "[[rules]]\nhost = \"a.com\"\naction = \"direct\"\n[[rules]]\nhots = \"b.com\"\n",
        );
        assert!(e.starts_with("config /etc/x.toml: rules[1]: line 5"), "{e}");
        assert!(e.contains("unknown field `hots`"), "{e}");
        let e = parse_err("[[rules]]\nhost_regex = \"(a\"\naction = \"deny\"\n");
        assert!(e.contains("rules[0].host_regex:"), "{e}");
        let e = parse_err("[[rules]]\ncidr = \"10.0.0.0/40\"\naction = \"deny\"\n");
        assert!(e.contains("rules[0].cidr:"), "{e}");
        let e = parse_err("[[rules]]\nhost = \"a.com\"\nvia = \"nope\"\n");
        assert!(
            e.contains("rules[0].via: line 3, column 1: no gateway named \"nope\""),
            "{e}"
        );
        let e = parse_err("default = \"nope\"\n");
        assert!(
            e.contains("default: line 1, column 1: no gateway named"),
            "{e}"
        );
        let e = parse_err("[gateways.g]\nkind = \"http\"\nendpoints = [\"p:1\"]\nusername = \"u\"\npassword_env = \"MISSING_PW\"\n");
        assert!(
            e.contains("gateways.g.password_env: line 5, column 1: environment variable MISSING_PW is not set"),
            "{e}"
        );
        let e = parse_err("[gateways.g]\nkind = \"http\"\nendpoints = [\"p:1\"]\nheaders = { \"X-A\" = \"a\\r\\nb\" }\n");
        assert!(e.contains("CR, LF"), "{e}");
        let e = parse_err("this is not toml");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn fallbacks_are_read_from_an_invalid_file() {
        let text = "on_config_error = \"direct\"\n[log]\npath = \"/tmp/l\"\n[[rules]]\nbogus = 1\n";
        let e = parse(text, ConfigSource::Nothing, &no_env).err().unwrap();
        assert_eq!(e.on_error, OnConfigError::Direct);
        assert_eq!(e.log, LogTarget::File("/tmp/l".into()));
    }

    #[test]
    fn log_format_takes_either_spelling_and_reads_the_pod_once() {
        let env = |k: &str| match k {
            POD_NAME_ENV => Some("fetch-0".to_string()),
            POD_NAMESPACE_ENV => Some("mcp".to_string()),
            POD_UID_ENV => Some(String::new()),
            _ => None,
        };
        let pod = PodIdentity {
            name: Some("fetch-0".into()),
            namespace: Some("mcp".into()),
            uid: None,
        };
        for text in ["[log]\nformat = \"ecs\"\n", "log_format = \"ecs\"\n"] {
            let c = parse(text, ConfigSource::Nothing, &env).ok().unwrap();
            assert_eq!(
                c.log_format,
                LogFormat::Ecs(Box::new(pod.clone())),
                "{text}"
            );
        }
        let c = parse("[log]\nformat = \"native\"\n", ConfigSource::Nothing, &env).ok();
        assert_eq!(c.unwrap().log_format, LogFormat::Native);
        let c = parse("", ConfigSource::Nothing, &env).ok().unwrap();
        assert_eq!(c.log_format, LogFormat::Native);

        let e = parse_err("default = \"direct\"\n[log]\nformat = \"gelf\"\n");
        assert!(
            e.contains("log.format: line 3, column 1: \"gelf\" must be \"native\" or \"ecs\""),
            "{e}"
        );
        let e = parse_err("log_format = \"ecs\"\n[log]\nformat = \"ecs\"\n");
        assert!(
            e.contains("log_format: line 1, column 1: give log.format or log_format"),
            "{e}"
        );
        // An invalid file still names its format, so that its config_error line is in it.
        let text = "[log]\npath = \"/tmp/l\"\nformat = \"ecs\"\n[[rules]]\nbogus = 1\n";
        let e = parse(text, ConfigSource::Nothing, &env).err().unwrap();
        assert_eq!(e.log_format, LogFormat::Ecs(Box::new(pod)));
    }

    #[test]
    fn async_handshake_is_on_unless_turned_off_and_a_gateway_overrides_the_top_level() {
        let gateway = |name: &str, extra: &str| {
            format!("[gateways.{name}]\nkind = \"http\"\nendpoints = [\"127.0.0.1:1\"]\n{extra}")
        };
        let on = |text: &str| -> Vec<(String, bool)> {
            let config = parse(text, ConfigSource::Nothing, &no_env).ok().unwrap();
            config
                .gateways
                .iter()
                .map(|g| (g.name.clone(), g.async_handshake))
                .collect()
        };
        assert_eq!(on(&gateway("a", "")), [("a".to_string(), true)]);
        let text = format!(
            "async_handshake = false\n{}{}",
            gateway("a", ""),
            gateway("b", "async_handshake = true\n")
        );
        assert_eq!(
            on(&text),
            [("a".to_string(), false), ("b".to_string(), true)]
        );
        assert!(parse_err("async_handshake = \"no\"\n").contains("expected a boolean"));
    }

    #[test]
    fn inline_passwords_are_refused_without_echoing_them() {
        let e = parse_err("[gateways.g]\nkind = \"http\"\nendpoints = [\"p:1\"]\nusername = \"u\"\npassword = \"hunter2\"\n");
        assert!(e.contains("password_env") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn the_smaller_fake_range_bounds_the_table() {
        let text = "[dns]\nfake_ipv6 = \"fd00:1::/112\"\nmax_hosts = 131070\n";
        let c = parse(text, ConfigSource::Nothing, &no_env).ok().unwrap();
        assert_eq!(c.dns.max_hosts, 65534);
    }

    #[test]
    fn validation_errors_carry_line_and_column() {
        let text = "default = \"direct\"\n\n[[rules]]\nhost = \"a.test\"\naction = \"deny\"\n\n[[rules]]\n  cidr = \"10.0.0.1/8\"\naction = \"deny\"\n";
        let e = parse_err(text);
        assert!(e.contains("rules[1].cidr: line 8, column 3: "), "{e}");
        let e = parse_err("[gateways.corp]\nkind = \"http\"\nendpoints = [\"nope\"]\n");
        assert!(
            e.contains("gateways.corp.endpoints[0]: line 3, column 1: "),
            "{e}"
        );
        let e = parse_err("default = \"missing\"\n");
        assert!(e.contains("default: line 1, column 1: "), "{e}");
        let e = parse_err("[[rules]]\nhost = \"a.test\"\n");
        assert!(e.contains("rules[0]: line 1, column 1: needs"), "{e}");
        let dns_mode = KeyPath::top("dns").key("mode");
        assert_eq!(
            problem::locate("[dns]\nmode = \"x\"\n", &dns_mode),
            Some((2, 1))
        );
    }
}
