//! The launchers MCP servers are started with (`npx`, `uvx`, `docker run`...) and the registries
//! they fetch packages from before the server itself runs. Under a default-deny config those
//! fetches fail first, with the launcher's own error; `run` says beforehand which host the
//! config denies and the rule that would allow it, and `init` offers such rules.

#![forbid(unsafe_code)]

use std::ffi::OsString;

use mcp_redirect_core::connect;
use mcp_redirect_core::rules::Action;
use mcp_redirect_core::runtime::Runtime;

/// A host a launcher fetches from.
pub struct Registry {
    pub host: String,
    pub port: u16,
    /// What is fetched from it ("npm packages").
    pub what: &'static str,
}

fn registry(host: &str, port: u16, what: &'static str) -> Registry {
    Registry {
        host: host.to_string(),
        port,
        what,
    }
}

/// `https://host[:port]/...` -> `(host, port)`.
fn url_host(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default = if scheme == "http" { 80 } else { 443 };
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            Some((host.to_string(), port.parse().ok()?))
        }
        _ => Some((authority.to_string(), default)),
    }
    .map(|(h, p)| (h.trim_matches(['[', ']']).to_ascii_lowercase(), p))
}

fn npm(env: &dyn Fn(&str) -> Option<String>) -> Vec<Registry> {
    let configured = env("NPM_CONFIG_REGISTRY")
        .or_else(|| env("npm_config_registry"))
        .and_then(|url| url_host(&url));
    match configured {
        Some((host, port)) => vec![Registry {
            host,
            port,
            what: "npm packages",
        }],
        None => vec![registry("registry.npmjs.org", 443, "npm packages")],
    }
}

fn pypi(env: &dyn Fn(&str) -> Option<String>) -> Vec<Registry> {
    let configured = ["UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"]
        .iter()
        .find_map(|name| env(name))
        .and_then(|url| url_host(&url));
    match configured {
        Some((host, port)) => vec![Registry {
            host,
            port,
            what: "Python packages",
        }],
        None => vec![
            registry("pypi.org", 443, "the Python package index"),
            registry("files.pythonhosted.org", 443, "Python packages"),
        ],
    }
}

/// The launcher `command` starts with and what it fetches from, if it is one we know.
pub fn registries(
    command: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(String, Vec<Registry>)> {
    let program = command.first()?.to_string_lossy();
    let name = program.rsplit('/').next().unwrap_or(&program).to_string();
    let sub = command.get(1).map(|a| a.to_string_lossy().into_owned());
    let sub = sub.as_deref().unwrap_or("");
    let fetched = match (name.as_str(), sub) {
        ("npx" | "bunx", _) => npm(env),
        ("npm", "exec" | "x" | "install" | "i" | "ci") => npm(env),
        ("pnpm", "dlx" | "install") | ("yarn", "dlx") => npm(env),
        ("uvx", _) | ("uv", "run" | "tool") | ("pipx", "run" | "install") => pypi(env),
        ("pip" | "pip3", "install") => pypi(env),
        ("deno", "run" | "install") => vec![
            registry("jsr.io", 443, "JSR packages"),
            registry("registry.npmjs.org", 443, "npm packages"),
            registry("deno.land", 443, "deno.land modules"),
        ],
        ("docker" | "podman", "run" | "pull") => vec![
            registry("registry-1.docker.io", 443, "Docker Hub images"),
            registry("auth.docker.io", 443, "Docker Hub tokens"),
            registry("production.cloudflare.docker.com", 443, "Docker Hub layers"),
        ],
        _ => return None,
    };
    let launcher = if sub.is_empty() || matches!(name.as_str(), "npx" | "bunx" | "uvx") {
        name
    } else {
        format!("{name} {sub}")
    };
    Some((launcher, fetched))
}

/// The registries among `fetched` that `rt`'s rules deny, each with the rule that does.
pub fn denied<'a>(rt: &Runtime, fetched: &'a [Registry]) -> Vec<(&'a Registry, String)> {
    fetched
        .iter()
        .filter_map(|registry| {
            let names = [registry.host.as_str()];
            let chosen = connect::choose(rt, &rt.exe, &names, true, None, registry.port);
            (chosen.decision.action == Action::Deny).then(|| {
                let rule = match chosen.decision.rule_index {
                    Some(i) => format!("rules[{i}]: {}", chosen.pattern),
                    None => "default = \"deny\"".to_string(),
                };
                (registry, rule)
            })
        })
        .collect()
}

/// A `[[rules]]` entry letting `registry` go direct.
pub fn allow_rule(registry: &Registry) -> String {
    format!(
        "[[rules]]\nhost = \"{}\"\nport = {}\naction = \"direct\"\n",
        registry.host, registry.port
    )
}

/// The commented block `init` prints: the registries the usual launchers fetch from.
pub fn init_block() -> String {
    let none = |_: &str| None;
    let mut out = String::from(
        "# Registries that MCP server launchers fetch packages from when they start (npx, uvx,\n\
         # docker run...). Under default = \"deny\" the launcher fails before the server runs;\n\
         # uncomment what your servers need (or route them through a gateway with `via`).\n",
    );
    let launchers: [(&str, &[&str]); 3] = [
        ("npx, npm exec, bunx", &["npx"]),
        ("uvx, uv run, pipx run", &["uvx"]),
        ("docker run", &["docker", "run"]),
    ];
    for (label, command) in launchers {
        let command: Vec<OsString> = command.iter().map(OsString::from).collect();
        let (_, fetched) = registries(&command, &none).expect("a launcher we know");
        out.push_str(&format!("#\n# {label}\n"));
        for registry in &fetched {
            for line in allow_rule(registry).lines() {
                out.push_str(&format!("# {line}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launchers_and_their_registries() {
        let env = |name: &str| match name {
            "NPM_CONFIG_REGISTRY" => Some("https://npm.corp.example:8443/repo/".to_string()),
            _ => None,
        };
        let command =
            |words: &[&str]| -> Vec<OsString> { words.iter().map(OsString::from).collect() };
        let (launcher, npm) = registries(&command(&["/usr/bin/npx", "-y", "x"]), &env).unwrap();
        assert_eq!(launcher, "npx");
        assert_eq!(
            (npm[0].host.as_str(), npm[0].port),
            ("npm.corp.example", 8443)
        );
        let (launcher, pypi) = registries(&command(&["uv", "run", "x"]), &|_| None).unwrap();
        assert_eq!(launcher, "uv run");
        assert_eq!(pypi.len(), 2);
        assert!(registries(&command(&["node", "server.js"]), &|_| None).is_none());
        assert!(registries(&command(&["npm", "test"]), &|_| None).is_none());
        assert_eq!(
            url_host("http://u:p@[::1]:81/x"),
            Some(("::1".to_string(), 81))
        );
    }
}
