//! Rules learned from what a program reached: the `[[rules]]` that would have let exactly those
//! destinations through, grouped by registrable domain (the Public Suffix List, from the `psl`
//! crate, which embeds the list and follows its updates: `a.github.io` and `b.github.io` are two
//! sites, `api.github.com` and `uploads.github.com` one). Used by `learn` and
//! `report --suggest`.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::net::IpAddr;
use std::path::Path;

use crate::log_schema::LogLine;

/// Where a program went (or wanted to go) and how often: a hostname or an address, a port.
#[derive(Default)]
pub struct Reached {
    /// `(host or address, port)` -> connects.
    destinations: BTreeMap<(String, u16), u64>,
}

impl Reached {
    /// Adds the denials found in a JSON-lines log (either format): every `connect` a rule or
    /// the default denied, enforced or not (audit mode). Malformed lines are skipped.
    pub fn read_log(&mut self, path: &Path) -> std::io::Result<()> {
        let file = std::fs::File::open(path)?;
        for line in std::io::BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            let Ok(event) = LogLine::read(line.as_bytes()) else {
                continue;
            };
            self.add_event(&event);
        }
        Ok(())
    }

    fn add_event(&mut self, event: &LogLine<'_>) {
        // An ecs `connect-blocked` reads as this too.
        if event.event != "connect" || event.action.as_deref() != Some("deny") {
            return;
        }
        // An unknown fake address or a broken config is no destination a rule could allow.
        let rule = event.rule.as_deref().unwrap_or("");
        if rule == "unknown fake address" || rule == "invalid configuration" {
            return;
        }
        let port = event.port.unwrap_or(0);
        // An ecs line's address as written; a native `dst` read back to its address, canonical.
        let address = match &event.destination_ip {
            Some(ip) => Some(ip.to_string()),
            None => event
                .dst
                .as_deref()
                .and_then(|d| d.parse::<std::net::SocketAddr>().ok())
                .map(|a| a.ip().to_canonical().to_string()),
        };
        let Some(target) = event.host.as_deref().map(str::to_string).or(address) else {
            return;
        };
        *self.destinations.entry((target, port)).or_default() += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.destinations.is_empty()
    }

    /// The `[[rules]]` (TOML text, each with a comment saying what it covers) that let every
    /// destination go `direct`.
    pub fn rules(&self) -> String {
        // registrable domain (or address) -> names -> ports -> connects
        let mut groups: BTreeMap<String, BTreeMap<String, BTreeMap<u16, u64>>> = BTreeMap::new();
        for ((target, port), count) in &self.destinations {
            let key = if target.parse::<IpAddr>().is_ok() {
                target.clone()
            } else {
                registrable(target)
            };
            *groups
                .entry(key)
                .or_default()
                .entry(target.clone())
                .or_default()
                .entry(*port)
                .or_default() += count;
        }
        let mut out = String::new();
        for (site, names) in &groups {
            let ports: BTreeSet<u16> = names.values().flat_map(|p| p.keys().copied()).collect();
            let connects: u64 = names.values().flat_map(|p| p.values()).sum();
            let covered: Vec<String> = names
                .iter()
                .flat_map(|(name, ports)| ports.keys().map(move |port| format!("{name}:{port}")))
                .collect();
            out.push_str(&format!(
                "# learned: {} ({connects} connect{})\n[[rules]]\n",
                covered.join(", "),
                if connects == 1 { "" } else { "s" }
            ));
            if site.parse::<IpAddr>().is_ok() {
                let prefix = if site.contains(':') { 128 } else { 32 };
                out.push_str(&format!("cidr = \"{site}/{prefix}\"\n"));
            } else if names.len() == 1 {
                out.push_str(&format!("host = \"{}\"\n", names.keys().next().unwrap()));
            } else if names.contains_key(site) {
                // The registrable domain itself and names under it.
                out.push_str(&format!("host = \".{site}\"\n"));
            } else {
                out.push_str(&format!("host = \"*.{site}\"\n"));
            }
            match ports.len() {
                1 => out.push_str(&format!("port = {}\n", ports.iter().next().unwrap())),
                _ => {
                    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                    out.push_str(&format!("# ports seen: {}\n", list.join(", ")));
                }
            }
            out.push_str("action = \"direct\"\n\n");
        }
        out
    }
}

/// The registrable domain of `host` (`raw.githubusercontent.com` for
/// `x.raw.githubusercontent.com`: `githubusercontent.com` is a public suffix), or the host
/// itself when the list has none for it.
fn registrable(host: &str) -> String {
    psl::domain_str(host).unwrap_or(host).to_string()
}

/// `base` with the learned `rules` placed before its first `[[rules]]` (first match wins: they
/// must come before a rule that denies the same hosts), or at its end.
pub fn insert_rules(base: &str, rules: &str) -> String {
    let mut position = None;
    let mut offset = 0;
    for line in base.split_inclusive('\n') {
        if line.trim_start().starts_with("[[rules]]") {
            position = Some(offset);
            break;
        }
        offset += line.len();
    }
    let block = format!(
        "# Rules learned by mcp-redirect learn: each lets what the program reached go direct.\n{rules}"
    );
    match position {
        Some(at) => format!("{}{block}{}", &base[..at], &base[at..]),
        None if base.is_empty() || base.ends_with('\n') => format!("{base}\n{block}"),
        None => format!("{base}\n\n{block}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reached(list: &[(&str, u16)]) -> Reached {
        let mut r = Reached::default();
        for (target, port) in list {
            *r.destinations
                .entry((target.to_string(), *port))
                .or_default() += 1;
        }
        r
    }

    #[test]
    fn subdomains_group_by_registrable_domain_and_public_suffixes_keep_sites_apart() {
        let rules = reached(&[
            ("a.github.io", 443),
            ("b.github.io", 443),
            ("api.github.com", 443),
            ("uploads.github.com", 443),
            ("10.1.2.3", 5432),
        ])
        .rules();
        assert!(rules.contains("host = \"a.github.io\"\n"), "{rules}");
        assert!(rules.contains("host = \"b.github.io\"\n"), "{rules}");
        assert!(
            rules.contains("host = \"*.github.com\"\nport = 443\n"),
            "{rules}"
        );
        assert!(
            rules.contains("cidr = \"10.1.2.3/32\"\nport = 5432\n"),
            "{rules}"
        );
        assert!(
            rules.contains("# learned: api.github.com:443, uploads.github.com:443 (2 connects)"),
            "{rules}"
        );
    }

    /// The denials of a native and an `ecs` log count alike; allowed connects and denials no
    /// rule could lift do not count.
    #[test]
    fn denials_are_read_from_either_log_format() {
        let lines = [
            r#"{"ts":"2026-12-03T14:05:50Z","event":"connect","host":null,"port":5432,"dst":"[::ffff:10.1.2.3]:5432","rule":{"index":null,"pattern":"default"},"action":"deny","result":"EACCES"}"#,
            r#"{"ts":"2026-12-03T14:05:50Z","event":"connect","host":"a.test","port":443,"dst":"198.18.0.1:443","rule":{"index":0,"pattern":"host=a.test"},"action":"direct","result":"ok"}"#,
            r#"{"@timestamp":"2026-12-03T14:05:51Z","event.action":"connect-blocked","destination.domain":"api.github.com","destination.ip":"198.18.0.7","destination.port":443,"rule.name":"default","error.code":"EACCES"}"#,
            r#"{"@timestamp":"2026-12-03T14:05:51Z","event.action":"connect-blocked","destination.ip":"10.9.9.9","destination.port":80,"rule.name":"invalid configuration","error.code":"EACCES"}"#,
            r#"{"@timestamp":"2026-12-03T14:05:52Z","event.action":"connect-direct","destination.ip":"10.0.0.1","destination.port":80,"rule.name":"default"}"#,
        ];
        let mut reached = Reached::default();
        for line in lines {
            reached.add_event(&LogLine::read(line.as_bytes()).unwrap());
        }
        let found: Vec<_> = reached.destinations.into_iter().collect();
        assert_eq!(
            found,
            [
                (("10.1.2.3".to_string(), 5432), 1),
                (("api.github.com".to_string(), 443), 1)
            ]
        );
    }

    #[test]
    fn learned_rules_go_before_the_base_rules() {
        let base = "default = \"deny\"\n\n[[rules]]\nhost = \"x.test\"\naction = \"deny\"\n";
        let merged = insert_rules(
            base,
            "[[rules]]\nhost = \"y.test\"\naction = \"direct\"\n\n",
        );
        let y = merged.find("y.test").unwrap();
        let x = merged.find("x.test").unwrap();
        assert!(y < x, "{merged}");
        assert!(merged.starts_with("default = \"deny\"\n"), "{merged}");
    }
}
