//! The process-wide state: configuration, rule table, resolver tables and log writer, loaded
//! lazily on the first hooked call (a process that never connects or resolves pays nothing).
//!
//! Publication is one compare-and-swap on an atomic pointer, with no lock: threads that race to
//! load each build a state, one wins, the others drop theirs. So a `fork()` at any moment leaves
//! the child either a finished state or none, never a held lock. The state is never freed: hooks
//! on other threads may use it until the process ends.

use std::ffi::CString;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::config::{self, Config, ConfigError, ConfigSource, Gateway, LogTarget, OnConfigError};
use crate::gateway::health::GatewayHealth;
use crate::log::{Event, LogResult, LogWriter};
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
    pub resolver: Resolver,
    pub log: LogWriter,
    /// Base name of the executable, for `process` rules and the log.
    pub exe: String,
    /// The system's DNS servers (`/etc/resolv.conf`): port 53 to them is always allowed.
    pub nameservers: Vec<IpAddr>,
}

static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(std::ptr::null_mut());

thread_local! {
    /// Set on the thread that is loading the state: its own calls (a name-service module that
    /// connects, say) pass straight through instead of loading again. Const-initialised, no
    /// destructor.
    static LOADING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Stack for the loading thread: parsing TOML and compiling regexes runs deep, and the first
/// hooked call may come from a thread with a tiny stack (16 KiB in some servers).
const LOADER_STACK: usize = 4 << 20;

/// The loaded state, loading it on first use; `None` on the loading thread itself, and in a
/// program that links this crate rather than preloading it: their calls pass straight through.
pub fn get() -> Option<&'static Runtime> {
    if crate::hooks::inert() {
        return None;
    }
    let current = RUNTIME.load(Ordering::Acquire);
    if !current.is_null() {
        // SAFETY: a non-null pointer was published by the CAS below from Box::into_raw and is
        // never freed.
        return Some(unsafe { &*current });
    }
    if LOADING.try_with(|l| l.get()).unwrap_or(true) {
        return None;
    }
    let load = || {
        let _ = LOADING.try_with(|l| l.set(true));
        Runtime::load()
    };
    // Load on a thread of our own with a roomy stack; if no thread can be made, here.
    let fresh = std::thread::Builder::new()
        .name("mcp-redirect-load".into())
        .stack_size(LOADER_STACK)
        .spawn(load)
        .ok()
        .and_then(|handle| handle.join().ok())
        .unwrap_or_else(|| {
            let runtime = load();
            let _ = LOADING.try_with(|l| l.set(false));
            runtime
        });
    let fresh = Box::into_raw(Box::new(fresh));
    match RUNTIME.compare_exchange(
        std::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => {
            // SAFETY: we just published fresh; it is never freed.
            let runtime = unsafe { &*fresh };
            runtime.announce();
            Some(runtime)
        }
        Err(winner) => {
            // SAFETY: fresh came from Box::into_raw above and was never shared.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: as for `current`.
            Some(unsafe { &*winner })
        }
    }
}

/// `getenv` for the config loader, through libc (see `sys::getenv`).
fn env_lookup(name: &str) -> Option<String> {
    let name = CString::new(name).ok()?;
    sys::getenv(&name)
}

impl Runtime {
    fn load() -> Runtime {
        let exe = sys::exe_base_name();
        match config::load(&env_lookup) {
            Ok(config) => Runtime::from_config(config, exe),
            Err(error) => Runtime::from_error(error, exe),
        }
    }

    /// The state for a valid configuration.
    pub fn from_config(config: Config, exe: String) -> Runtime {
        let mode = if config.source == ConfigSource::Nothing {
            Mode::Inactive
        } else {
            Mode::Active
        };
        let endpoint_addrs = config
            .gateways
            .iter()
            .map(|g| g.endpoints.iter().map(resolve_endpoint).collect())
            .collect();
        let health = config
            .gateways
            .iter()
            .map(|g| GatewayHealth::new(g.endpoints.len()))
            .collect();
        Runtime {
            mode,
            source: config.source,
            health,
            resolver: Resolver::new(&config.dns),
            rules: config.rules,
            gateways: config.gateways,
            endpoint_addrs,
            log: LogWriter::new(config.log),
            exe,
            nameservers: read_nameservers(),
        }
    }

    fn from_error(error: ConfigError, exe: String) -> Runtime {
        let reason = error.to_string();
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
            resolver: Resolver::new(&config::DnsConfig::default()),
            log: LogWriter::new(log),
            exe,
            nameservers: Vec::new(),
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
            .any(|e| e.host == host)
    }

    /// Whether `addr` is one of the configured gateway endpoints.
    pub fn is_gateway_endpoint(&self, addr: SocketAddr) -> bool {
        let addr = crate::net::canonical(addr);
        self.endpoint_addrs
            .iter()
            .flatten()
            .flatten()
            .any(|e| crate::net::canonical(*e) == addr)
    }
}

/// The addresses of an endpoint: the literal, or what DNS says at load time (empty if nothing;
/// `connect` then retries the lookup and fails closed if it still has no answer).
pub fn resolve_endpoint(endpoint: &crate::net::HostPort) -> Vec<SocketAddr> {
    if let Some(addr) = endpoint.literal() {
        return vec![addr];
    }
    sys::resolve_real(&endpoint.host, endpoint.port).unwrap_or_default()
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
