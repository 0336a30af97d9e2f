//! The process-wide state: configuration, rule table, resolver tables and log writer, loaded
//! lazily on the first hooked call (a process that never connects or resolves pays nothing).
//!
//! The state is an immutable snapshot behind an atomic pointer (`arc-swap`, no lock): threads
//! that race to load each build one and the first to publish wins; a `fork()` at any moment
//! leaves the child a finished snapshot or none, never a held lock. A hooked call holds the
//! snapshot it started with until it returns, so a reload never changes the rules under an
//! in-flight `connect()`.
//!
//! Hot reload: at most once a second, the first hooked call to notice it checks the config
//! file's identity (device, inode, size, modification time). A changed file is loaded and
//! validated like the first one; a valid one is swapped in, an invalid one is rejected (the old
//! rules stay, one line on stderr and a `config_rejected` event) and not tried again until the
//! file changes once more. The resolver's tables outlive reloads, so fake addresses already
//! handed out stay valid; `[dns]` settings apply to new processes.

#![forbid(unsafe_code)]

use std::ffi::CString;
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::config::DiscoveryConfig;
use crate::config::{self, Config, ConfigError, ConfigSource, Gateway, LogTarget, OnConfigError};
use crate::gateway::discovery::SrvCache;
use crate::gateway::health::GatewayHealth;
use crate::log::{Event, LogResult, LogWriter};
use crate::notice::Notices;
use crate::resolver::Resolver;
use crate::rules::{Action, RuleTable};
use crate::sys;

/// How the library behaves in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Nothing configured: every call passes straight through.
    Inactive,
    /// Rules apply.
    Active,
    /// The configuration is invalid and says to fail closed: every intercepted connect fails with
    /// `EACCES`. Holds the one-line reason.
    FailClosed(String),
    /// The configuration is invalid and says `on_config_error = "direct"`.
    FailOpen(String),
}

pub struct Runtime {
    pub mode: Mode,
    pub source: ConfigSource,
    pub rules: RuleTable,
    pub gateways: Vec<Gateway>,
    /// `[gateway][endpoint]` -> its addresses, resolved once at load.
    pub endpoint_addrs: Vec<Vec<Vec<SocketAddr>>>,
    /// `[gateway]` -> its endpoints' health, shared by every connection of the process.
    pub health: Vec<GatewayHealth>,
    /// `[gateway][endpoint]` -> the SRV answers of `srv:` endpoints.
    pub discovered: Vec<Vec<SrvCache>>,
    pub discovery: DiscoveryConfig,
    /// `strict = true`: datagrams to routed or denied destinations are refused too.
    pub strict: bool,
    /// `[log] direct`: whether direct connections and real lookups are logged.
    pub log_direct: bool,
    /// `[log] close`: whether a `close` line follows each decided connection.
    pub log_close: bool,
    /// `mode = "audit"`: a denial is logged, and the connection goes where it would have gone
    /// without the rule.
    pub audit: bool,
    /// Lines on stderr for refusals (`[log] notices`).
    pub notices: Notices,
    /// Shared by every snapshot of the process: fake addresses survive reloads.
    pub resolver: Arc<Resolver>,
    pub log: LogWriter,
    /// Base name of the executable, for `process` rules and the log.
    pub exe: String,
    /// The system's DNS servers (`/etc/resolv.conf`): port 53 to them is always allowed.
    pub nameservers: Vec<IpAddr>,
    /// The config file this snapshot came from, and what it and its rules' list files were
    /// then (for hot reload).
    pub file: Option<(PathBuf, u64)>,
    /// The list files its rules read (`host_list`, `cidr_list`): a change to one is a change
    /// to the config.
    pub lists: Vec<PathBuf>,
}

static RUNTIME: ArcSwapOption<Runtime> = ArcSwapOption::const_empty();
/// When the config file was last looked at (coarse monotonic microseconds).
static LAST_CHECK_US: AtomicU64 = AtomicU64::new(0);
/// The identity of a file version that failed validation: not tried again until it changes.
static REJECTED: AtomicU64 = AtomicU64::new(0);
const RELOAD_CHECK_US: u64 = 1_000_000;

/// The snapshot a hooked call works with, held until the call returns.
pub struct Current(arc_swap::Guard<Option<Arc<Runtime>>>);

impl Current {
    /// The snapshot itself, for work that outlives the hooked call (a relayed handshake).
    pub fn arc(&self) -> Arc<Runtime> {
        self.0
            .as_ref()
            .expect("Current holds a loaded snapshot")
            .clone()
    }
}

impl Deref for Current {
    type Target = Runtime;
    fn deref(&self) -> &Runtime {
        self.0.as_deref().expect("Current holds a loaded snapshot")
    }
}

thread_local! {
    /// Set on the thread that is loading the state: its own calls (a name-service module that
    /// connects, say) pass straight through instead of loading again. Const-initialised, no
    /// destructor.
    static LOADING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Stack for the loading thread: parsing TOML and compiling regexes runs deep, and the first
/// hooked call may come from a thread with a tiny stack (16 KiB in some servers).
const LOADER_STACK: usize = 4 << 20;

/// Set when this crate is linked into a program (the `mcp-redirect` tool) instead of preloaded
/// as `libmcp_redirect.so`: there nothing is decided. It starts false, so that a hook called
/// before the library's constructor has said where it lives (from another library's initialiser)
/// is still decided; only the hooks (`crates/preload`) call [`get`], and a program that links
/// this crate says so with [`link_into_program`].
static LINKED: AtomicBool = AtomicBool::new(false);

/// Called once by the library's constructor: whether this crate is linked into the program
/// rather than preloaded. From then on a linked crate's [`get`] answers `None`.
pub fn set_linked(linked: bool) {
    LINKED.store(linked, Ordering::Relaxed);
}

/// For a program that links this crate instead of preloading it (the `mcp-redirect` command,
/// static or dynamic), called first thing in its `main`: nothing is decided here ([`get`]
/// answers `None`), and the real functions are libc's own ([`crate::sys::real::link_libc`]), as
/// no hook of ours stands in front of them.
pub fn link_into_program() {
    crate::sys::real::link_libc();
    set_linked(true);
}

/// The loaded state, loading it on first use and reloading a changed config file; `None` on the
/// loading thread itself, and in a program that links this crate rather than preloading it:
/// their calls pass straight through.
pub fn get() -> Option<Current> {
    if LINKED.load(Ordering::Relaxed) {
        return None;
    }
    let current = RUNTIME.load();
    if let Some(runtime) = current.as_deref() {
        if let Some((path, identity)) = &runtime.file {
            if reload_due() {
                check_file(runtime, path, &runtime.lists, *identity);
                return Some(Current(RUNTIME.load()));
            }
        }
        return Some(Current(current));
    }
    if LOADING.try_with(|l| l.get()).unwrap_or(true) {
        return None;
    }
    let fresh = Arc::new(on_loader_thread(Runtime::load));
    let previous = RUNTIME.compare_and_swap(&None::<Arc<Runtime>>, Some(fresh.clone()));
    if previous.is_none() {
        fresh.announce();
    }
    Some(Current(RUNTIME.load()))
}

/// Runs `load` on a thread of our own with a roomy stack (parsing TOML and compiling regexes
/// runs deep, and hooked calls may come from 16 KiB thread stacks); here if no thread can be
/// made. Calls made while loading pass straight through.
fn on_loader_thread<T: Send + 'static>(load: fn() -> T) -> T {
    let guarded = move || {
        let _ = LOADING.try_with(|l| l.set(true));
        load()
    };
    let value = std::thread::Builder::new()
        .name("mcp-redirect-load".into())
        .stack_size(LOADER_STACK)
        .spawn(guarded)
        .ok()
        .and_then(|handle| handle.join().ok())
        .unwrap_or_else(|| {
            let value = guarded();
            let _ = LOADING.try_with(|l| l.set(false));
            value
        });
    // Parsing a large config leaves megabytes of freed memory in the loader thread's arena:
    // give it back, so that the program does not carry it for its whole life.
    sys::trim_heap();
    value
}

/// Whether this call should look at the config file: at most once a second, process-wide, and
/// never on the loading thread.
fn reload_due() -> bool {
    if LOADING.try_with(|l| l.get()).unwrap_or(true) {
        return false;
    }
    let now = sys::coarse_monotonic_us();
    let last = LAST_CHECK_US.load(Ordering::Relaxed);
    now.saturating_sub(last) >= RELOAD_CHECK_US
        && LAST_CHECK_US
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Reloads the config file if it changed since `runtime` was built from it.
fn check_file(runtime: &Runtime, path: &Path, lists: &[PathBuf], loaded_identity: u64) {
    let identity = files_identity(path, lists);
    if identity == loaded_identity || identity == REJECTED.load(Ordering::Relaxed) {
        return;
    }
    let resolver = runtime.resolver.clone();
    let exe = runtime.exe.clone();
    let nameservers = runtime.nameservers.clone();
    // Parsed and validated on the loader thread, like the first load.
    let loaded = on_loader_thread(|| config::load(&env_lookup));
    match loaded {
        Ok(config) => {
            let mut fresh = Runtime::assemble(config, exe, resolver, nameservers);
            fresh.file = Some((path.to_path_buf(), files_identity(path, &fresh.lists)));
            fresh.log.write(
                &Event {
                    event: "config_reloaded",
                    error: None,
                    ..Default::default()
                },
                &fresh.exe,
            );
            RUNTIME.store(Some(Arc::new(fresh)));
        }
        Err(error) => {
            REJECTED.store(identity, Ordering::Relaxed);
            let reason = error.to_string();
            sys::stderr_line(&format!(
                "{reason}; the change is rejected and the rules loaded before stay in force"
            ));
            if *runtime.log.target() != LogTarget::Stderr {
                runtime.log.write(
                    &Event {
                        event: "config_rejected",
                        result: LogResult::Errno(libc::EINVAL),
                        error: Some(&reason),
                        ..Default::default()
                    },
                    &runtime.exe,
                );
            }
        }
    }
}

/// What a file is now, as one number: device, inode, size and modification time hashed
/// together (0 reserved for "never rejected"; a missing file is 1).
fn file_identity(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => {
            let parts = [
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime() as u64,
                m.mtime_nsec() as u64,
            ];
            let bytes: Vec<u8> = parts.iter().flat_map(|p| p.to_le_bytes()).collect();
            crate::resolver::names::hash_bytes(&bytes) | 2
        }
        Err(_) => 1,
    }
}

/// The identity of the config file and of the list files its rules read, as one number.
fn files_identity(path: &Path, lists: &[PathBuf]) -> u64 {
    let mut identity = file_identity(path);
    for list in lists {
        identity = crate::resolver::names::hash_bytes(
            &[identity.to_le_bytes(), file_identity(list).to_le_bytes()].concat(),
        ) | 2;
    }
    identity
}

/// `getenv` for the config loader, through libc (see `sys::getenv`).
fn env_lookup(name: &str) -> Option<String> {
    let name = CString::new(name).ok()?;
    sys::getenv(&name)
}

impl Runtime {
    fn load() -> Runtime {
        let exe = sys::exe_base_name();
        let file = match config::load(&env_lookup) {
            Ok(config) => Runtime::from_config(config, exe),
            Err(error) => Runtime::from_error(error, exe),
        };
        file.watched()
    }

    /// Notes the config file's identity, for reloads.
    fn watched(mut self) -> Runtime {
        if let ConfigSource::File(path) = &self.source {
            self.file = Some((path.clone(), files_identity(path, &self.lists)));
        }
        self
    }

    /// The state for a valid configuration.
    pub fn from_config(config: Config, exe: String) -> Runtime {
        let resolver = Arc::new(Resolver::new(&config.dns));
        Runtime::assemble(config, exe, resolver, read_nameservers())
    }

    /// A snapshot from a configuration and the parts that outlive reloads.
    fn assemble(
        config: Config,
        exe: String,
        resolver: Arc<Resolver>,
        nameservers: Vec<IpAddr>,
    ) -> Runtime {
        let mode = if config.source == ConfigSource::Nothing {
            Mode::Inactive
        } else {
            Mode::Active
        };
        let endpoint_addrs = config
            .gateways
            .iter()
            .map(|g| {
                g.endpoints
                    .iter()
                    .map(|e| e.host_port().map(resolve_endpoint).unwrap_or_default())
                    .collect()
            })
            .collect();
        let health = config
            .gateways
            .iter()
            .map(|_| GatewayHealth::default())
            .collect();
        let discovered = config
            .gateways
            .iter()
            .map(|g| g.endpoints.iter().map(|_| SrvCache::default()).collect())
            .collect();
        let lists = config.rules.list_files();
        Runtime {
            mode,
            source: config.source,
            lists,
            health,
            discovered,
            discovery: config.discovery,
            strict: config.strict,
            log_direct: config.log_direct,
            audit: config.audit,
            log_close: config.log_close,
            notices: Notices::new(config.notices, &config.log),
            resolver,
            rules: config.rules,
            gateways: config.gateways,
            endpoint_addrs,
            log: LogWriter::new(config.log, &config.log_format),
            exe,
            nameservers,
            file: None,
        }
    }

    fn from_error(error: ConfigError, exe: String) -> Runtime {
        let reason = error.to_string();
        // A list that could not be read is fixed in the list, not the config.
        let lists = match &error.source {
            ConfigSource::File(path) => config::list_files(path),
            _ => Vec::new(),
        };
        let mode = match error.on_error {
            OnConfigError::Deny => Mode::FailClosed(reason),
            OnConfigError::Direct => Mode::FailOpen(reason),
        };
        let log = if error.log == LogTarget::Off {
            LogTarget::Stderr
        } else {
            error.log.clone()
        };
        Runtime {
            mode,
            source: error.source,
            rules: RuleTable::new(Vec::new(), Action::Deny),
            gateways: Vec::new(),
            endpoint_addrs: Vec::new(),
            health: Vec::new(),
            discovered: Vec::new(),
            discovery: Default::default(),
            strict: true,
            log_direct: true,
            audit: false,
            log_close: false,
            // The invalid configuration was announced on stderr already.
            notices: Notices::off(),
            resolver: Arc::new(Resolver::new(&config::DnsConfig::default())),
            log: LogWriter::new(log, &error.log_format),
            exe,
            nameservers: Vec::new(),
            file: None,
            lists,
        }
    }

    /// Says once, on stderr and in the log, that the configuration is invalid and what follows.
    fn announce(&self) {
        let (reason, consequence) = match &self.mode {
            Mode::FailClosed(reason) => (reason, "every connection will be refused (fail closed; set on_config_error = \"direct\" to fail open)"),
            Mode::FailOpen(reason) => (reason, "every connection goes direct (on_config_error = \"direct\")"),
            _ => return,
        };
        sys::stderr_line(&format!("{reason}; {consequence}"));
        if *self.log.target() != LogTarget::Stderr {
            self.log.write(
                &Event {
                    event: "config_error",
                    result: LogResult::Errno(libc::EINVAL),
                    error: Some(reason),
                    ..Default::default()
                },
                &self.exe,
            );
        }
    }

    /// Whether `host` names a gateway endpoint (lower-case).
    pub fn is_gateway_host(&self, host: &str) -> bool {
        self.gateways
            .iter()
            .flat_map(|g| &g.endpoints)
            .filter_map(|e| e.host_port())
            .any(|e| e.host == host)
    }

    /// Whether `addr` is one of the configured gateway endpoints.
    pub fn is_gateway_endpoint(&self, addr: SocketAddr) -> bool {
        let addr = crate::net::canonical(addr);
        let fixed = self
            .endpoint_addrs
            .iter()
            .flatten()
            .flatten()
            .any(|e| crate::net::canonical(*e) == addr);
        fixed
            || self
                .discovered
                .iter()
                .flatten()
                .filter_map(SrvCache::known)
                .any(|answer| {
                    answer
                        .targets
                        .iter()
                        .flat_map(|t| &t.addrs)
                        .any(|e| crate::net::canonical(*e) == addr)
                })
    }
}

/// The addresses of an endpoint: the literal, or what DNS says at load time (empty if nothing;
/// `connect` then retries the lookup and fails closed if it still has no answer). `localhost`
/// and `*.localhost` that nothing resolves are loopback (RFC 6761): a sandbox that hides
/// `/etc/hosts` (srt with `denyRead`) still names its proxy `localhost`.
pub fn resolve_endpoint(endpoint: &crate::net::HostPort) -> Vec<SocketAddr> {
    if let Some(addr) = endpoint.literal() {
        return vec![addr];
    }
    let found = sys::resolve_real(&endpoint.host, endpoint.port).unwrap_or_default();
    if found.is_empty() && crate::net::is_localhost_name(&endpoint.host) {
        return vec![
            SocketAddr::from(([127, 0, 0, 1], endpoint.port)),
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, endpoint.port)),
        ];
    }
    found
}

/// The system's DNS servers, from `/etc/resolv.conf`.
pub fn system_nameservers() -> Vec<IpAddr> {
    read_nameservers()
}

fn read_nameservers() -> Vec<IpAddr> {
    let Ok(bytes) = sys::read_small_file(std::path::Path::new("/etc/resolv.conf"), 64 * 1024)
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|addr| addr.split('%').next()?.parse().ok())
        .collect()
}
