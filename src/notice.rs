//! Notices: one short line on stderr when the library refuses a connection, or a gateway does,
//! so that the person running the program sees what was refused and where the full story is
//! (`mcp-redirect: denied registry.npmjs.org:443 (default = "deny"); see /var/log/events.jsonl`),
//! instead of the program's own puzzled message (npm: "The operation was rejected by your
//! operating system").
//!
//! At most once per host and reason per process: a fixed table of hashes, lock-free, so memory
//! is bounded however many hosts are refused (past its size, nothing more is noticed). Only into
//! the stderr the process started with (`sys::write_stderr` checks), never when the log itself
//! goes to stderr (its line says it all), and not with `[log] notices = false`.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::LogTarget;
use crate::resolver::names::hash_bytes;
use crate::sys;

/// Distinct (host, reason) pairs noticed per process, at most.
const SLOTS: usize = 512;

/// Why something was refused, for the line and for "once per host and reason".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason<'a> {
    /// A rule or the default denied it: the rule as the log names it.
    Denied {
        rule: Option<usize>,
        pattern: &'a str,
    },
    /// As `Denied`, in audit mode: logged, not enforced.
    WouldDeny {
        rule: Option<usize>,
        pattern: &'a str,
    },
    /// The gateway refused, or could not be reached: its name and the error's text.
    Gateway { name: &'a str, error: &'a str },
    /// Refused for another reason (an unknown fake address, a datagram in strict mode).
    Refused(&'a str),
}

impl Reason<'_> {
    /// What "the same reason" means: the kind and, for gateways, the gateway.
    fn key(&self) -> u64 {
        match self {
            Reason::Denied { .. } => 1,
            Reason::WouldDeny { .. } => 2,
            Reason::Gateway { name, .. } => 3 ^ hash_bytes(name.as_bytes()).rotate_left(7),
            Reason::Refused(text) => 4 ^ hash_bytes(text.as_bytes()).rotate_left(7),
        }
    }
}

/// The rule as a person would look it up in the config.
fn rule_text(rule: Option<usize>, pattern: &str) -> String {
    match rule {
        Some(index) => format!("rules[{index}]: {pattern}"),
        None if pattern == "default" => "default = \"deny\"".to_string(),
        None => pattern.to_string(),
    }
}

pub struct Notices {
    /// Where the full log is, for the line's "see ..."; `None`: notices are off.
    see: Option<String>,
    seen: Box<[AtomicU64]>,
}

impl Notices {
    /// Notices for a log going to `log`, unless `enabled` is false or the log is stderr.
    pub fn new(enabled: bool, log: &LogTarget) -> Notices {
        let see = match log {
            _ if !enabled => None,
            LogTarget::Stderr => None,
            LogTarget::File(path) => Some(format!("see {}", path.display())),
            LogTarget::Off => Some("the log is off".to_string()),
        };
        let slots = if see.is_some() { SLOTS } else { 0 };
        let seen: Box<[AtomicU64]> = (0..slots).map(|_| AtomicU64::new(0)).collect();
        Notices { see, seen }
    }

    /// Off: no line, ever.
    pub fn off() -> Notices {
        Notices {
            see: None,
            seen: Box::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.see.is_some()
    }

    /// Says once per process that `what` (`host:port`, or an address) was refused for `reason`.
    pub fn say(&self, what: &str, reason: Reason<'_>) {
        let Some(see) = &self.see else {
            return;
        };
        if !self.first_time(what, &reason) {
            return;
        }
        let line = match reason {
            Reason::Denied { rule, pattern } => {
                format!("denied {what} ({}); {see}", rule_text(rule, pattern))
            }
            Reason::WouldDeny { rule, pattern } => format!(
                "would deny {what} ({}), let through: audit mode; {see}",
                rule_text(rule, pattern)
            ),
            Reason::Gateway { name, error } => {
                format!("gateway {name} failed for {what}: {error}; {see}")
            }
            Reason::Refused(why) => format!("refused {what}: {why}; {see}"),
        };
        sys::stderr_line(&line);
    }

    /// Marks (`what`, `reason`) as noticed; `false` if it already was, or the table is full.
    fn first_time(&self, what: &str, reason: &Reason<'_>) -> bool {
        // 0 marks an empty slot.
        let key = (hash_bytes(what.as_bytes()) ^ reason.key()).max(1);
        let start = (key as usize) % self.seen.len();
        for probe in 0..self.seen.len() {
            let slot = &self.seen[(start + probe) % self.seen.len()];
            match slot.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(existing) if existing == key => return false,
                Err(_) => {}
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_host_and_reason_and_bounded() {
        let notices = Notices::new(true, &LogTarget::Off);
        let denied = Reason::Denied {
            rule: None,
            pattern: "default",
        };
        assert!(notices.first_time("a.test:443", &denied));
        assert!(!notices.first_time("a.test:443", &denied));
        let gateway = Reason::Gateway {
            name: "corp",
            error: "timed out",
        };
        assert!(notices.first_time("a.test:443", &gateway));
        assert!(notices.first_time("b.test:443", &denied));
        for n in 0..SLOTS * 2 {
            notices.first_time(&format!("h{n}.test:1"), &denied);
        }
        // Full: nothing more is noticed, nothing grows.
        assert!(!notices.first_time("new.test:1", &denied));
        assert_eq!(notices.seen.len(), SLOTS);
    }

    #[test]
    fn no_notices_when_the_log_is_stderr_or_they_are_off() {
        assert!(!Notices::new(true, &LogTarget::Stderr).enabled());
        assert!(!Notices::new(false, &LogTarget::Off).enabled());
        assert_eq!(
            rule_text(Some(3), "host=*.example.com"),
            "rules[3]: host=*.example.com"
        );
        assert_eq!(rule_text(None, "default"), "default = \"deny\"");
    }
}
