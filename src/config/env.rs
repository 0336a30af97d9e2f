//! The zero-config path: the conventional proxy environment, for binaries that ignore it.
//!
//! - `ALL_PROXY`, else `HTTPS_PROXY`, else `HTTP_PROXY` is the default gateway; `HTTPS_PROXY`
//!   and `HTTP_PROXY`, when they differ from it, also get rules for ports 443 and 80.
//!   Lower-case forms win over upper-case ones, as in curl.
//! - URLs: `http://`, `socks5://`, `socks5h://` (both SOCKS forms send the hostname), with
//!   optional percent-encoded `user:password@`; no scheme means `http://`; no port means 1080
//!   (curl's default).
//! - `NO_PROXY` with curl's semantics becomes `direct` rules: `*` alone turns the proxy off;
//!   `example.com` and `.example.com` match the domain and its subdomains; addresses and CIDR
//!   prefixes match destination addresses.
//! - Loopback (`localhost`, `*.localhost`, 127.0.0.0/8, ::1) always goes direct, as in Go's
//!   `ProxyFromEnvironment`: a local service is never behind the corporate proxy.
#![forbid(unsafe_code)]

use super::{
    Config, ConfigError, ConfigSource, Credentials, DnsConfig, Gateway, GatewayKind, LogFormat,
    LogTarget, OnConfigError, Secret, DEFAULT_CONNECT_TIMEOUT_MS,
};
use crate::net::{Cidr, HostPort, PortRange};
use crate::rules::{Action, AddressMatch, HostMatch, Rule, RuleTable};

/// The proxy variables we read, lower-case form first.
fn proxy_var(getenv: &dyn Fn(&str) -> Option<String>, lower: &str) -> Option<(String, String)> {
    let upper = lower.to_ascii_uppercase();
    let found = [lower, upper.as_str()].into_iter().find_map(|name| {
        getenv(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (name.to_string(), v.trim().to_string()))
    });
    found
}

/// Builds a configuration from the proxy environment; with no proxy variable set, a
/// configuration that sends everything direct and logs nothing.
pub fn from_environment(getenv: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let fail = |message: String| ConfigError {
        source: ConfigSource::Environment,
        message,
        on_error: OnConfigError::Deny,
        log: LogTarget::Stderr,
        log_format: LogFormat::Native,
    };
    let all = proxy_var(getenv, "all_proxy");
    let https = proxy_var(getenv, "https_proxy");
    let http = proxy_var(getenv, "http_proxy");
    if all.is_none() && https.is_none() && http.is_none() {
        return Ok(Config {
            source: ConfigSource::Nothing,
            gateways: Vec::new(),
            rules: RuleTable::new(Vec::new(), Action::Direct),
            dns: DnsConfig::default(),
            discovery: Default::default(),
            log: LogTarget::Off,
            log_format: LogFormat::Native,
            strict: false,
            log_direct: true,
            notices: true,
            log_close: true,
            audit: false,
        });
    }

    let mut gateways: Vec<Gateway> = Vec::new();
    let mut add_gateway = |var: &(String, String)| -> Result<usize, ConfigError> {
        let gateway =
            parse_proxy_url(&var.1, &var.0).map_err(|m| fail(format!("{}: {m}", var.0)))?;
        if let Some(i) = gateways.iter().position(|g| same_gateway(g, &gateway)) {
            return Ok(i);
        }
        gateways.push(gateway);
        Ok(gateways.len() - 1)
    };
    let default_var = all
        .as_ref()
        .or(https.as_ref())
        .or(http.as_ref())
        .expect("one is set");
    let default_gateway = add_gateway(default_var)?;
    let https_gateway = https.as_ref().map(&mut add_gateway).transpose()?;
    let http_gateway = http.as_ref().map(&mut add_gateway).transpose()?;

    let mut rules = loopback_rules();
    let mut default = Action::Gateway(default_gateway);
    if let Some((_, no_proxy)) = proxy_var(getenv, "no_proxy") {
        for entry in no_proxy.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                default = Action::Direct;
                continue;
            }
            // Loopback is direct already (the rules above).
            if matches!(
                entry,
                "localhost" | ".localhost" | "127.0.0.1" | "::1" | "[::1]"
            ) {
                continue;
            }
            if let Some(rule) = no_proxy_rule(entry) {
                rules.push(rule);
            }
        }
    }
    if default != Action::Direct {
        for (gateway, port) in [(https_gateway, 443), (http_gateway, 80)] {
            if let Some(index) = gateway.filter(|&i| i != default_gateway) {
                let ports = PortRange {
                    first: port,
                    last: port,
                };
                rules.push(Rule::new(
                    None,
                    None,
                    Some(ports),
                    None,
                    Action::Gateway(index),
                ));
            }
        }
    }
    Ok(Config {
        source: ConfigSource::Environment,
        gateways,
        rules: RuleTable::new(rules, default),
        dns: DnsConfig::default(),
        discovery: Default::default(),
        log: LogTarget::Stderr,
        log_format: LogFormat::Native,
        strict: false,
        log_direct: true,
        notices: true,
        log_close: true,
        audit: false,
    })
}

fn same_gateway(a: &Gateway, b: &Gateway) -> bool {
    a.kind == b.kind
        && a.endpoints == b.endpoints
        && a.credentials.as_ref().map(|c| (&c.username, &c.password))
            == b.credentials.as_ref().map(|c| (&c.username, &c.password))
}

fn loopback_rules() -> Vec<Rule> {
    let direct = |host: Option<&str>, cidr: Option<&str>| {
        Rule::new(
            host.map(|h| HostMatch::parse_host(h).expect("valid")),
            cidr.map(|c| AddressMatch::Prefix(Cidr::parse(c).expect("valid"))),
            None,
            None,
            Action::Direct,
        )
    };
    vec![
        direct(Some(".localhost"), None),
        direct(None, Some("127.0.0.0/8")),
        direct(None, Some("::1/128")),
    ]
}

/// One `NO_PROXY` entry as a direct rule; entries we cannot read are skipped, as curl does.
fn no_proxy_rule(entry: &str) -> Option<Rule> {
    let unbracketed = entry.trim_start_matches('[').trim_end_matches(']');
    if let Ok(cidr) = Cidr::parse(unbracketed) {
        return Some(Rule::new(
            None,
            Some(AddressMatch::Prefix(cidr)),
            None,
            None,
            Action::Direct,
        ));
    }
    let domain = entry.trim_start_matches("*.").trim_start_matches('.');
    let host = HostMatch::parse_host(&format!(".{domain}")).ok()?;
    Some(Rule::new(Some(host), None, None, None, Action::Direct))
}

/// Reads `scheme://user:password@host:port/` into a gateway named after the variable.
pub fn parse_proxy_url(url: &str, name: &str) -> Result<Gateway, String> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("http".to_string(), url),
    };
    let kind = match scheme.as_str() {
        "http" => GatewayKind::Http,
        "socks5" | "socks5h" => GatewayKind::Socks5,
        other => {
            return Err(format!(
                "proxy scheme \"{other}\" is not supported (use http://, socks5:// or socks5h://)"
            ))
        }
    };
    // The user info ends at the last '@' (a raw '/', '?' or '#' in a password is common enough
    // in real variables); the host ends at the first '/', '?' or '#' after it. Nothing from
    // before the '@' is ever echoed in a message.
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let hostport = after.split(['/', '?', '#']).next().unwrap_or("");
    let with_port = if hostport.ends_with(']') || !hostport.contains(':') {
        format!("{hostport}:1080")
    } else {
        hostport.to_string()
    };
    let endpoint = HostPort::parse(&with_port)
        .map_err(|_| format!("the proxy address \"{hostport}\" is not host[:port]"))?;
    let credentials = match userinfo {
        None => None,
        Some(info) => {
            let (user, password) = info.split_once(':').unwrap_or((info, ""));
            let user = percent_decode(user).ok_or("the user name is not valid percent-encoding")?;
            let password =
                percent_decode(password).ok_or("the password is not valid percent-encoding")?;
            if kind == GatewayKind::Socks5 && (user.len() > 255 || password.len() > 255) {
                return Err("SOCKS5 user names and passwords are at most 255 bytes".into());
            }
            if user
                .bytes()
                .chain(password.bytes())
                .any(|b| b.is_ascii_control())
            {
                return Err("the user name or password contains control characters".into());
            }
            if kind == GatewayKind::Http && user.contains(':') {
                return Err("an HTTP proxy user name cannot contain ':'".into());
            }
            Some(Credentials {
                username: user,
                password: Secret::new(password),
            })
        }
    };
    Ok(Gateway {
        name: name.to_ascii_lowercase(),
        kind,
        endpoints: vec![super::Endpoint::At(endpoint)],
        strategy: super::Strategy::Failover,
        max_attempts: 1,
        cooldown_s: super::DEFAULT_COOLDOWN_S,
        proxy_protocol: false,
        credentials,
        headers: Vec::new(),
        connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
        async_handshake: true,
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Target;

    fn config(vars: &[(&str, &str)]) -> Config {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let getenv = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        from_environment(&getenv).unwrap()
    }

    fn action(c: &Config, host: Option<&str>, addr: Option<&str>, port: u16) -> Action {
        c.rules
            .decide(&Target {
                host,
                addr: addr.map(|a| a.parse().unwrap()),
                port: Some(port),
                exe: "x",
            })
            .action
    }

    #[test]
    fn nothing_set_means_direct_and_silent() {
        let c = config(&[]);
        assert_eq!(c.source, ConfigSource::Nothing);
        assert_eq!(c.log, LogTarget::Off);
        assert_eq!(action(&c, Some("a.com"), None, 443), Action::Direct);
    }

    #[test]
    fn https_proxy_with_no_proxy() {
        let c = config(&[
            ("HTTPS_PROXY", "http://user:p%40ss@proxy.corp:3128"),
            ("no_proxy", "internal.corp, 10.0.0.0/8,.svc"),
        ]);
        assert_eq!(c.gateways.len(), 1);
        let gw = &c.gateways[0];
        assert_eq!(gw.kind, GatewayKind::Http);
        assert_eq!(gw.endpoints[0].to_string(), "proxy.corp:3128");
        assert_eq!(gw.credentials.as_ref().unwrap().password.expose(), "p@ss");
        assert_eq!(
            action(&c, Some("api.github.com"), None, 443),
            Action::Gateway(0)
        );
        assert_eq!(action(&c, Some("internal.corp"), None, 443), Action::Direct);
        assert_eq!(
            action(&c, Some("a.internal.corp"), None, 443),
            Action::Direct
        );
        assert_eq!(action(&c, Some("x.svc"), None, 443), Action::Direct);
        assert_eq!(action(&c, None, Some("10.9.9.9"), 22), Action::Direct);
        assert_eq!(action(&c, Some("localhost"), None, 80), Action::Direct);
        assert_eq!(action(&c, None, Some("127.0.0.1"), 80), Action::Direct);
    }

    #[test]
    fn all_proxy_is_default_and_others_take_their_ports() {
        let c = config(&[
            ("ALL_PROXY", "socks5h://127.0.0.1:1080"),
            ("http_proxy", "127.0.0.1:3128"),
        ]);
        assert_eq!(c.gateways.len(), 2);
        assert_eq!(c.gateways[0].kind, GatewayKind::Socks5);
        assert_eq!(action(&c, Some("a.com"), None, 443), Action::Gateway(0));
        assert_eq!(action(&c, Some("a.com"), None, 80), Action::Gateway(1));
    }

    #[test]
    fn no_proxy_star_turns_it_off() {
        let c = config(&[("HTTPS_PROXY", "http://p:8080"), ("NO_PROXY", "*")]);
        assert_eq!(action(&c, Some("a.com"), None, 443), Action::Direct);
    }

    #[test]
    fn bad_urls_never_echo_the_password() {
        let getenv = |k: &str| (k == "HTTPS_PROXY").then(|| "ftp://u:hunter2@p:1".to_string());
        let e = from_environment(&getenv).err().unwrap().to_string();
        assert!(e.contains("ftp") && !e.contains("hunter2"), "{e}");
        let getenv =
            |k: &str| (k == "HTTPS_PROXY").then(|| "http://u:hunter2@bad host:1".to_string());
        let e = from_environment(&getenv).err().unwrap().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert_eq!(
            parse_proxy_url("http://[::1]", "x").unwrap().endpoints[0].to_string(),
            "[::1]:1080"
        );
    }

    #[test]
    fn raw_slashes_and_at_signs_in_passwords() {
        let gw = parse_proxy_url("http://alice:s3cr/et?p#w@127.0.0.1:3128/", "x").unwrap();
        assert_eq!(gw.endpoints[0].to_string(), "127.0.0.1:3128");
        let creds = gw.credentials.unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.expose()),
            ("alice", "s3cr/et?p#w")
        );
        let gw = parse_proxy_url("http://alice:1234/x@proxy.corp:8080", "x").unwrap();
        assert_eq!(gw.endpoints[0].to_string(), "proxy.corp:8080");
        let e = parse_proxy_url("http://alice:s3cr/et@bad host:1", "x").unwrap_err();
        assert!(!e.contains("s3cr") && !e.contains("alice"), "{e}");
        let long = "p".repeat(300);
        assert!(parse_proxy_url(&format!("socks5://u:{long}@127.0.0.1:1080"), "x").is_err());
    }
}
