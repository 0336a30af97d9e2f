//! `mcp-redirect check`: validate a configuration the way the library will, print what it says,
//! warn about rules that can never match and gateways nothing uses, and optionally try each
//! gateway endpoint.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use mcp_redirect_core::config::{
    self, Config, ConfigSource, DnsMode, Endpoint, GatewayKind, LogFormat, LogTarget,
};
use mcp_redirect_core::gateway::discovery::SrvCache;
use mcp_redirect_core::gateway::{self, Destination};
use mcp_redirect_core::net::HostPort;
use mcp_redirect_core::rules::{Action, AddressMatch, HostMatch};
use mcp_redirect_core::sys::socket;

use crate::discover::{self, Discovery};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Configuration file (default: $MCP_REDIRECT_CONFIG, else
    /// $XDG_CONFIG_HOME/mcp-redirect/config.toml, else /etc/mcp-redirect/mcp-redirect.toml, else
    /// the proxy environment)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Also open a TCP connection to every gateway endpoint and report latency or the error
    #[arg(long)]
    pub connect: bool,
    /// With --connect: complete an HTTP CONNECT / SOCKS5 handshake to this harmless HOST:PORT
    #[arg(long, value_name = "HOST:PORT", requires = "connect")]
    pub probe: Option<String>,
    /// Exit 1 when there are warnings
    #[arg(long)]
    pub deny_warnings: bool,
}

/// Loads the configuration `run` and the library would use; prints the error and returns `None`
/// when it is invalid.
pub fn load(flag: Option<&PathBuf>) -> Option<Config> {
    load_from(&discover::config_file(flag.map(PathBuf::as_path)))
}

/// Loads what `discover` found: that file, or the proxy environment.
pub fn load_from(discovery: &Discovery) -> Option<Config> {
    // Lists the command compiles go beside the list, where the operator keeps them, for every
    // process to map (the library writes only to the user's cache).
    mcp_redirect_core::compiled::write_beside_sources();
    let result = match discovery.path() {
        Some(path) => config::load_file(path, &crate::getenv),
        None => config::env::from_environment(&crate::getenv),
    };
    match result {
        Ok(config) => Some(config),
        Err(error) => {
            crate::complain(&error);
            None
        }
    }
}

pub fn check(args: CheckArgs) -> u8 {
    let discovery = discover::config_file(args.config.as_deref());
    let Some(config) = load_from(&discovery) else {
        return 2;
    };
    print_summary(&config, &discovery);
    let warnings = warnings(&config);
    for warning in &warnings {
        println!("warning: {warning}");
    }
    let mut failures = 0;
    if args.connect {
        let probe = match args.probe.as_deref().map(HostPort::parse) {
            Some(Ok(probe)) => Some(probe),
            Some(Err(e)) => {
                crate::complain(format!("--probe: {e}"));
                return 2;
            }
            None => None,
        };
        failures = connect_all(&config, probe.as_ref());
    }
    if failures > 0 {
        2
    } else if args.deny_warnings && !warnings.is_empty() {
        1
    } else {
        0
    }
}

/// `ecs (k8s.pod.name fetch-0, k8s.namespace.name mcp)`: the format and the pod fields every
/// line will carry, as this environment sets them.
fn format_text(format: &LogFormat) -> String {
    let LogFormat::Ecs(pod) = format else {
        return format.name().to_string();
    };
    let fields: Vec<String> = [
        ("k8s.pod.name", &pod.name),
        ("k8s.namespace.name", &pod.namespace),
        ("k8s.pod.uid", &pod.uid),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some(format!("{key} {}", value.as_deref()?)))
    .collect();
    if fields.is_empty() {
        format!(
            "ecs (no k8s.* fields: {}, {} and {} are unset here)",
            config::POD_NAME_ENV,
            config::POD_NAMESPACE_ENV,
            config::POD_UID_ENV
        )
    } else {
        format!("ecs ({})", fields.join(", "))
    }
}

fn print_summary(config: &Config, discovery: &Discovery) {
    // Which file, and why that one; or why none.
    match &discovery.found {
        Some(found) => println!("source: {} ({})", config.source, found.origin),
        None => println!("source: {} ({})", config.source, discovery.why_none()),
    }
    if config.source == ConfigSource::Nothing {
        println!(
            "nothing is configured: the library lets every connection through and logs nothing"
        );
        return;
    }
    println!("gateways:");
    if config.gateways.is_empty() {
        println!("  (none)");
    }
    for gw in &config.gateways {
        let endpoints: Vec<String> = gw.endpoints.iter().map(|e| e.to_string()).collect();
        let mut extras = vec![format!("timeout {} ms", gw.connect_timeout_ms)];
        if let Some(creds) = &gw.credentials {
            extras.push(format!(
                "user {} (password from the environment)",
                creds.username
            ));
        }
        if !gw.headers.is_empty() {
            let names: Vec<&str> = gw.headers.iter().map(|(n, _)| n.as_str()).collect();
            extras.push(format!("headers {}", names.join(", ")));
        }
        if !gw.async_handshake {
            extras.push("handshake inside connect() on non-blocking sockets too".to_string());
        }
        println!(
            "  {} ({}): {}; {}",
            gw.name,
            gw.kind.name(),
            endpoints.join(", "),
            extras.join("; ")
        );
    }
    println!("rules (first match wins):");
    if config.rules.rules().is_empty() {
        println!("  (none)");
    }
    for (index, rule) in config.rules.rules().iter().enumerate() {
        println!(
            "  [{index}] {} -> {}",
            rule.pattern,
            action_text(config, rule.action)
        );
        let host_list = match &rule.host {
            Some(HostMatch::List(list)) => Some(&list.info),
            _ => None,
        };
        let cidr_list = match &rule.cidr {
            Some(AddressMatch::List(list)) => Some(&list.info),
            _ => None,
        };
        for info in host_list.into_iter().chain(cidr_list) {
            println!("      {} entries; {}", info.entries, info.compiled);
        }
    }
    println!(
        "default: {}",
        action_text(config, config.rules.default_action())
    );
    let log = match &config.log {
        LogTarget::Stderr => "stderr".to_string(),
        LogTarget::File(path) => path.display().to_string(),
        LogTarget::Off => "off".to_string(),
    };
    let direct = if config.log_direct {
        ""
    } else {
        " (direct connections not logged)"
    };
    // The native format is the default and goes unsaid, as direct connections being logged do.
    let format = match &config.log_format {
        LogFormat::Native => String::new(),
        ecs => format!("; format {}", format_text(ecs)),
    };
    let notices = if config.notices || config.log == LogTarget::Stderr {
        ""
    } else {
        " (no notices on stderr)"
    };
    println!("log: {log}{direct}{format}{notices}");
    if config.audit {
        println!("mode: audit: denials are logged (\"enforced\": false) and not enforced");
    }
    if config.strict {
        println!(
            "strict: datagrams and raw DNS queries to routed or denied destinations are refused"
        );
    }
    let dns = &config.dns;
    match dns.mode {
        DnsMode::Fake => println!(
            "dns: fake addresses for routed and denied names ({}, {}; {} names at most)",
            dns.fake_ipv4, dns.fake_ipv6, dns.max_hosts
        ),
        DnsMode::Local => println!(
            "dns: local (every name resolved for real; fake addresses {}, {} only when DNS has no answer)",
            dns.fake_ipv4, dns.fake_ipv6
        ),
    }
}

/// `direct`, `deny` or `gateway NAME`.
pub fn action_text(config: &Config, action: Action) -> String {
    match action {
        Action::Gateway(i) => format!("gateway {}", config.gateways[i].name),
        other => other.name().to_string(),
    }
}

/// Rules that can never match (an earlier rule matches everything they match) and gateways
/// that nothing routes to.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let rules = config.rules.rules();
    for (index, earlier) in config.rules.shadowed() {
        out.push(format!(
            "rules[{index}] ({}) can never match: rules[{earlier}] ({}) matches everything it does",
            rules[index].pattern, rules[earlier].pattern
        ));
    }
    for (index, gw) in config.gateways.iter().enumerate() {
        let used = config.rules.default_action() == Action::Gateway(index)
            || rules.iter().any(|r| r.action == Action::Gateway(index));
        if !used {
            out.push(format!(
                "gateways.{} is used by no rule and not by default",
                gw.name
            ));
        }
    }
    out
}

/// Tries every endpoint; returns how many failed.
fn connect_all(config: &Config, probe: Option<&HostPort>) -> usize {
    println!("endpoints:");
    let mut failures = 0;
    let nameservers = mcp_redirect_core::runtime::system_nameservers();
    for gw in &config.gateways {
        for endpoint in &gw.endpoints {
            // Every address to try for this entry, with its label: a fixed endpoint's first
            // address, or each target an SRV lookup finds.
            let targets: Vec<(String, Result<SocketAddr, String>)> = match endpoint {
                Endpoint::At(fixed) => {
                    let addr = match fixed.literal() {
                        Some(addr) => Ok(addr),
                        None => resolve(&fixed.host, fixed.port),
                    };
                    let label = match addr {
                        Ok(a) if fixed.literal() != Some(a) => format!("{fixed} ({a})"),
                        _ => fixed.to_string(),
                    };
                    vec![(label, addr)]
                }
                Endpoint::Srv(name) => {
                    let answer = socket::block_on(SrvCache::default().targets(
                        &socket::PollWaiter,
                        name,
                        &config.discovery,
                        &nameservers,
                        true,
                    ));
                    match answer {
                        Ok(answer) => answer
                            .targets
                            .iter()
                            .map(|t| {
                                (
                                    format!(
                                        "{endpoint} -> {}:{} (priority {}, weight {})",
                                        t.host, t.port, t.priority, t.weight
                                    ),
                                    t.addrs
                                        .first()
                                        .copied()
                                        .ok_or_else(|| unresolved("no address")),
                                )
                            })
                            .collect(),
                        Err(message) => {
                            println!("  {} {endpoint}: {message}", gw.name);
                            failures += 1;
                            continue;
                        }
                    }
                }
            };
            for (label, addr) in targets {
                let label = format!("  {} {label}", gw.name);
                let addr = match addr {
                    Ok(addr) => addr,
                    Err(text) => {
                        println!("{label}: {text}");
                        failures += 1;
                        continue;
                    }
                };
                match try_endpoint(gw, addr, probe) {
                    Ok(text) => println!("{label}: {text}"),
                    Err(text) => {
                        println!("{label}: {text}");
                        failures += 1;
                    }
                }
            }
        }
    }
    failures
}

/// A gateway's name, looked up as the library does; the first address, or why there is none.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    match mcp_redirect_core::sys::resolve_real(host, port) {
        Ok(addrs) => addrs
            .first()
            .copied()
            .ok_or_else(|| unresolved("no address")),
        Err(code) => Err(unresolved(mcp_redirect_core::errno::eai_name(code))),
    }
}

/// `does not resolve (EAI_NONAME)`, and for the static build, where the answer comes from.
fn unresolved(reason: &str) -> String {
    if crate::STATIC {
        format!("does not resolve ({reason}; this mcp-redirect is statically linked and reads /etc/hosts and DNS only, not other /etc/nsswitch.conf sources)")
    } else {
        format!("does not resolve ({reason})")
    }
}

/// Connects to one endpoint (and, with a probe, completes the gateway's handshake to it with the
/// library's own handshake code).
fn try_endpoint(
    gw: &config::Gateway,
    addr: SocketAddr,
    probe: Option<&HostPort>,
) -> Result<String, String> {
    let started = Instant::now();
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = socket::blocking_tcp_socket(family).map_err(|e| format!("socket: {e}"))?;
    let handshake = match (gw.kind, probe) {
        (GatewayKind::Http | GatewayKind::Socks5, Some(probe)) => Some(probe),
        _ => None,
    };
    let mut bare = gw.clone();
    if handshake.is_none() {
        // Only the TCP connection: a rewrite gateway never handshakes, and without a probe
        // there is nothing harmless to ask a proxy for.
        bare.kind = GatewayKind::Rewrite;
    }
    let literal = handshake.and_then(|p| p.literal());
    let dest = Destination {
        host: handshake
            .filter(|_| literal.is_none())
            .map(|p| p.host.as_str()),
        addr: literal.map(|a| a.ip()),
        port: handshake.map_or(0, |p| p.port),
    };
    let deadline = socket::Deadline::after_ms(gw.connect_timeout_ms);
    let result = socket::block_on(gateway::establish(
        &socket::PollWaiter,
        fd,
        socket::ConnectMode::of(fd),
        &bare,
        addr,
        &dest,
        deadline,
    ));
    mcp_redirect_core::sys::close(fd);
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    match (result, handshake) {
        (Ok(()), Some(p)) => Ok(format!(
            "ok, {} handshake to {p} in {elapsed:.1} ms",
            gw.kind.name()
        )),
        (Ok(()), None) => Ok(format!("ok, TCP connect in {elapsed:.1} ms")),
        (Err(e), _) => Err(format!("FAILED after {elapsed:.1} ms: {e}")),
    }
}
