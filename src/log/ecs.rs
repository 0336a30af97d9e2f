//! The `ecs` line format (`[log] format = "ecs"`): the same events as the native line, under
//! Elastic Common Schema names (`@timestamp`, `event.action`, `destination.domain`, ...), with
//! OpenTelemetry's `k8s.*` names for the pod. Owns the field mapping and the bound on a line;
//! the writer, its descriptor and the native line are `log`'s.
//!
//! Keys are dotted at the top level (`"event.action":...`), never nested objects, on every line:
//! the ecs-logging spec asks that of `log.level` and `ecs.version`, Elasticsearch maps a dotted
//! key to the same field as the nested form, and an OpenTelemetry collector's JSON parser turns
//! each key into an attribute of that exact name (`network.transport`, `process.pid`,
//! `k8s.pod.name` are also semantic-convention names). Mixing the two forms in one line would
//! let one field arrive twice. A value that is absent is left out rather than written `null`.
//!
//! Every string is cut to `MAX_STRING` bytes and at most `MAX_ATTEMPTS` gateway attempts are
//! listed, so a line is bounded whatever a program names itself or a gateway replies.
#![forbid(unsafe_code)]

use super::{Event, JsonLine, LogResult};
use crate::config::PodIdentity;
use crate::sys;

/// The schema version the lines follow (`ecs.version`). Every field used here is in ECS 8.x.
pub const ECS_VERSION: &str = "8.11.0";
/// Longest string value, in bytes of its text before escaping; a longer one is cut on a
/// character boundary and ends with `…`.
pub const MAX_STRING: usize = 1024;
/// Gateway attempts listed on one line; more are counted in `attempts_omitted`.
pub const MAX_ATTEMPTS: usize = 16;
/// Room in a line for everything but its text fields and the pod's: keys, numbers,
/// addresses, the timestamp (see `Event::text_len`; a test holds the widest line to it).
const ECS_ROOM: usize = 1152;

/// `event.action` for each native `event` and `action`. The report reads it back with
/// [`native_event`], so the two directions cannot drift apart.
const ACTIONS: [(&str, Option<&str>, &str); 15] = [
    ("connect", Some("direct"), "connect-direct"),
    ("close", Some("direct"), "close-direct"),
    ("close", Some("gateway"), "close-redirected"),
    ("close", Some("deny"), "close-unenforced"),
    ("close", None, "close"),
    ("connect", Some("gateway"), "connect-redirected"),
    ("connect", Some("deny"), "connect-blocked"),
    ("connect", None, "connect"),
    ("resolve", Some("direct"), "resolve-direct"),
    ("resolve", Some("gateway"), "resolve-redirected"),
    ("resolve", Some("deny"), "resolve-blocked"),
    ("resolve", None, "resolve"),
    ("config_error", None, "config-error"),
    ("config_reloaded", None, "config-reloaded"),
    ("config_rejected", None, "config-rejected"),
];

/// `connect-redirected` for (`connect`, `gateway`); the event's own name for one this table
/// does not know.
pub fn ecs_action<'a>(event: &'a str, action: Option<&str>) -> &'a str {
    ACTIONS
        .iter()
        .find(|(e, a, _)| *e == event && *a == action)
        .or_else(|| ACTIONS.iter().find(|(e, a, _)| *e == event && a.is_none()))
        .map_or(event, |(_, _, name)| name)
}

/// The native `event` and `action` an `event.action` stands for: (`connect`, `gateway`) for
/// `connect-redirected`.
pub fn native_event(ecs_action: &str) -> Option<(&'static str, Option<&'static str>)> {
    ACTIONS
        .iter()
        .find(|(_, _, name)| *name == ecs_action)
        .map(|(event, action, _)| (*event, *action))
}

/// `event.outcome`: whether the program's call succeeded. A non-blocking connect under way
/// (`EINPROGRESS`) is the program's to see through: `unknown`.
pub fn outcome(result: LogResult) -> &'static str {
    match result {
        LogResult::Ok => "success",
        LogResult::Errno(libc::EINPROGRESS) => "unknown",
        _ => "failure",
    }
}

/// `event.category` and `event.type`, as JSON arrays.
fn categorization(event: &str, action: Option<&str>) -> (&'static str, &'static str) {
    let verdict = match action {
        Some("deny") => "denied",
        Some(_) => "allowed",
        None => "",
    };
    match (event, verdict) {
        ("connect", "denied") => (r#"["network"]"#, r#"["connection","denied"]"#),
        ("connect", "allowed") => (r#"["network"]"#, r#"["connection","allowed"]"#),
        ("connect", _) => (r#"["network"]"#, r#"["connection"]"#),
        ("close", _) => (r#"["network"]"#, r#"["connection","end"]"#),
        ("resolve", "denied") => (r#"["network"]"#, r#"["protocol","denied"]"#),
        ("resolve", "allowed") => (r#"["network"]"#, r#"["protocol","allowed"]"#),
        ("resolve", _) => (r#"["network"]"#, r#"["protocol"]"#),
        ("config_error", _) => (r#"["configuration"]"#, r#"["error"]"#),
        _ => (r#"["configuration"]"#, r#"["change"]"#),
    }
}

/// The `k8s.*` fields of every line, rendered once per configuration load: a JSON fragment
/// starting with a comma, or nothing outside a pod.
pub fn pod_fields(pod: &PodIdentity) -> Box<[u8]> {
    let mut out = JsonLine::with_capacity(0);
    for (key, value) in [
        ("k8s.namespace.name", &pod.namespace),
        ("k8s.pod.name", &pod.name),
        ("k8s.pod.uid", &pod.uid),
    ] {
        if let Some(value) = value {
            out.key(key);
            out.bounded_string(value, MAX_STRING);
        }
    }
    out.0.into_boxed_slice()
}

impl Event<'_> {
    /// The ECS line, with its newline; `pod` is [`pod_fields`]'s fragment.
    pub fn to_ecs_line(&self, exe: &str, pod: &[u8]) -> Vec<u8> {
        let room = ECS_ROOM + pod.len() + self.text_len(exe, MAX_STRING, MAX_ATTEMPTS);
        let mut out = JsonLine::with_capacity(room);
        let text = |out: &mut JsonLine, key: &str, value: &str| {
            out.key(key);
            out.bounded_string(value, MAX_STRING);
        };
        out.raw("{\"@timestamp\":\"");
        out.timestamp(sys::realtime_us());
        out.raw("\"");
        let outcome = outcome(self.result);
        let level = match (self.event, outcome) {
            ("config_error" | "config_rejected", _) => "error",
            (_, "failure") => "warn",
            _ => "info",
        };
        out.key("log.level");
        out.string(level);
        out.key("ecs.version");
        out.string(ECS_VERSION);
        out.key("event.kind");
        out.string("event");
        let (category, kind) = categorization(self.event, self.action);
        out.key("event.category");
        out.raw(category);
        out.key("event.type");
        out.raw(kind);
        out.key("event.action");
        out.string(ecs_action(self.event, self.action));
        out.key("event.outcome");
        out.string(outcome);
        if let Some(us) = self.elapsed_us {
            out.key("event.duration");
            out.number(us.saturating_mul(1000));
        }
        if let Some(ms) = self.duration_ms {
            out.key("event.duration");
            out.number(ms.saturating_mul(1_000_000));
        }
        if let (Some(sent), Some(received)) = (self.bytes_sent, self.bytes_received) {
            out.key("source.bytes");
            out.number(sent);
            out.key("destination.bytes");
            out.number(received);
            out.key("network.bytes");
            out.number(sent.saturating_add(received));
        }
        out.key("process.pid");
        out.number(self.pid.unwrap_or_else(sys::pid) as u64);
        text(&mut out, "process.name", exe);
        if let Some(proto) = self.proto {
            out.key("network.transport");
            out.string(proto);
        }
        if self.event == "resolve" {
            if let Some(host) = self.host {
                text(&mut out, "dns.question.name", host);
            }
            if let Some(answer) = self.answer {
                out.key("dns.resolved_ip");
                out.raw("[");
                out.ip(answer);
                out.raw("]");
            }
        } else {
            if let Some(dst) = self.dst {
                out.key("network.type");
                out.string(if dst.is_ipv4() { "ipv4" } else { "ipv6" });
            }
            if let Some(host) = self.host {
                text(&mut out, "destination.domain", host);
            }
            if let Some(dst) = self.dst {
                out.key("destination.ip");
                out.ip(dst.ip());
            }
            if let Some(port) = self.port {
                out.key("destination.port");
                out.number(port.into());
            }
        }
        if let Some((index, pattern)) = self.rule {
            if let Some(index) = index {
                out.key("rule.id");
                out.raw("\"");
                out.number(index as u64);
                out.raw("\"");
            }
            text(&mut out, "rule.name", pattern);
        }
        if self.result != LogResult::Ok {
            out.key("error.code");
            out.result(self.result);
        }
        if let Some(error) = self.error {
            text(&mut out, "error.message", error);
        }
        if let Some(gateway) = self.gateway {
            text(&mut out, "mcp_redirect.gateway.name", gateway);
        }
        if let Some(endpoint) = self.endpoint {
            out.key("mcp_redirect.gateway.endpoint");
            out.socket_addr(endpoint);
        }
        if let Some(attempts) = self.attempts {
            out.key("mcp_redirect.gateway.attempts");
            out.attempts(attempts, MAX_ATTEMPTS, MAX_STRING);
            if attempts.len() > MAX_ATTEMPTS {
                out.key("mcp_redirect.gateway.attempts_omitted");
                out.number((attempts.len() - MAX_ATTEMPTS) as u64);
            }
        }
        if let Some(via) = self.via {
            text(&mut out, "mcp_redirect.via", via);
        }
        if let Some(handshake) = self.handshake {
            text(&mut out, "mcp_redirect.handshake", handshake);
        }
        if let Some(ended) = self.ended {
            text(&mut out, "mcp_redirect.ended", ended);
        }
        if let Some(enforced) = self.enforced {
            out.key("mcp_redirect.enforced");
            out.raw(if enforced { "true" } else { "false" });
        }
        if let Some(dropped) = self.dropped {
            out.key("mcp_redirect.dropped");
            out.number(dropped);
        }
        out.0.extend_from_slice(pod);
        out.raw("}\n");
        out.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::tests::{
        masked, samples, two_attempts, widest, widest_attempts, HOSTILE, HOSTILE_JSON,
    };
    use crate::log::Attempt;
    use serde_json::Value;

    fn parse(line: &[u8]) -> Value {
        assert!(line.ends_with(b"}\n"));
        serde_json::from_slice(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(line)))
    }

    #[test]
    fn every_action_reads_back_as_the_event_it_came_from() {
        for (event, action, name) in ACTIONS {
            assert_eq!(ecs_action(event, action), name);
            assert_eq!(native_event(name), Some((event, action)));
        }
        // An action the table does not pair with the event falls back to the event's entry.
        assert_eq!(ecs_action("config_error", Some("deny")), "config-error");
        assert_eq!(native_event("connect-sideways"), None);
    }

    #[test]
    fn a_redirected_connect_names_every_field() {
        let attempts = [
            Attempt {
                endpoint: "10.0.0.1:3128".into(),
                address: Some("10.0.0.1:3128".parse().unwrap()),
                result: LogResult::Errno(libc::ECONNREFUSED),
                elapsed_us: 90,
            },
            Attempt {
                endpoint: "127.0.0.1:3128".into(),
                address: Some("127.0.0.1:3128".parse().unwrap()),
                result: LogResult::Ok,
                elapsed_us: 310,
            },
        ];
        let event = Event {
            proto: Some("tcp"),
            host: Some("api.example.test"),
            port: Some(443),
            dst: Some("198.18.0.7:443".parse().unwrap()),
            rule: Some((Some(2), "host=*.example.test")),
            action: Some("gateway"),
            gateway: Some("corp"),
            endpoint: Some("127.0.0.1:3128".parse().unwrap()),
            elapsed_us: Some(412),
            attempts: Some(&attempts),
            via: Some("supervisor"),
            pid: Some(77),
            dropped: Some(3),
            ..Default::default()
        };
        let pod = pod_fields(&PodIdentity {
            name: Some("fetch-0".into()),
            namespace: Some("mcp".into()),
            uid: None,
        });
        let line = parse(&event.to_ecs_line("node", &pod));
        let expected = serde_json::json!({
            "log.level": "info",
            "ecs.version": ECS_VERSION,
            "event.kind": "event",
            "event.category": ["network"],
            "event.type": ["connection", "allowed"],
            "event.action": "connect-redirected",
            "event.outcome": "success",
            "event.duration": 412000,
            "process.pid": 77,
            "process.name": "node",
            "network.transport": "tcp",
            "network.type": "ipv4",
            "destination.domain": "api.example.test",
            "destination.ip": "198.18.0.7",
            "destination.port": 443,
            "rule.id": "2",
            "rule.name": "host=*.example.test",
            "mcp_redirect.gateway.name": "corp",
            "mcp_redirect.gateway.endpoint": "127.0.0.1:3128",
            "mcp_redirect.gateway.attempts": [
                {"endpoint": "10.0.0.1:3128", "result": "ECONNREFUSED", "elapsed_us": 90},
                {"endpoint": "127.0.0.1:3128", "result": "ok", "elapsed_us": 310},
            ],
            "mcp_redirect.via": "supervisor",
            "mcp_redirect.dropped": 3,
            "k8s.namespace.name": "mcp",
            "k8s.pod.name": "fetch-0",
        });
        let mut without_time = line.as_object().unwrap().clone();
        let ts = without_time.remove("@timestamp").unwrap();
        assert_eq!(ts.as_str().unwrap().len(), 27, "{ts}");
        assert_eq!(Value::Object(without_time), expected);
    }

    #[test]
    fn refusals_and_lookups() {
        let denied = Event {
            proto: Some("tcp"),
            port: Some(80),
            dst: Some("[fd6d:6370:7264::9]:80".parse().unwrap()),
            host: Some("evil.test"),
            rule: Some((None, "default")),
            action: Some("deny"),
            result: LogResult::Errno(libc::EACCES),
            error: Some("denied by rule"),
            elapsed_us: Some(4),
            ..Default::default()
        };
        let line = parse(&denied.to_ecs_line("curl", &[]));
        assert_eq!(line["event.action"], "connect-blocked");
        assert_eq!(
            line["event.type"],
            serde_json::json!(["connection", "denied"])
        );
        assert_eq!(line["event.outcome"], "failure");
        assert_eq!(line["log.level"], "warn");
        assert_eq!(line["error.code"], "EACCES");
        assert_eq!(line["error.message"], "denied by rule");
        assert_eq!(line["network.type"], "ipv6");
        assert_eq!(line["destination.ip"], "fd6d:6370:7264::9");
        assert_eq!(line["rule.name"], "default");
        assert!(line.get("rule.id").is_none() && line.get("k8s.pod.name").is_none());

        let resolved = Event {
            event: "resolve",
            host: Some("api.example.test"),
            rule: Some((Some(0), "host=*.example.test")),
            action: Some("gateway"),
            gateway: Some("corp"),
            answer: Some("198.18.0.7".parse().unwrap()),
            ..Default::default()
        };
        let line = parse(&resolved.to_ecs_line("curl", &[]));
        assert_eq!(line["event.action"], "resolve-redirected");
        assert_eq!(
            line["event.type"],
            serde_json::json!(["protocol", "allowed"])
        );
        assert_eq!(line["dns.question.name"], "api.example.test");
        assert_eq!(line["dns.resolved_ip"], serde_json::json!(["198.18.0.7"]));
        assert!(line.get("destination.domain").is_none() && line.get("event.duration").is_none());

        let rejected = Event {
            event: "config_rejected",
            result: LogResult::Errno(libc::EINVAL),
            error: Some("config /x: rules[0]: bad"),
            ..Default::default()
        };
        let line = parse(&rejected.to_ecs_line("curl", &[]));
        assert_eq!(line["event.action"], "config-rejected");
        assert_eq!(line["event.category"], serde_json::json!(["configuration"]));
        assert_eq!(line["log.level"], "error");
        assert_eq!(line["error.code"], "EINVAL");

        let in_progress = Event {
            result: LogResult::Errno(libc::EINPROGRESS),
            action: Some("direct"),
            ..Default::default()
        };
        let line = parse(&in_progress.to_ecs_line("curl", &[]));
        assert_eq!(line["event.outcome"], "unknown");
        assert_eq!(line["error.code"], "EINPROGRESS");
    }

    /// The ECS lines of the native test's samples, byte for byte as the formatter that built
    /// them from `format!` and `to_string` wrote them (`{H}` stands for `HOSTILE_JSON`).
    #[test]
    fn lines_keep_their_exact_bytes() {
        let attempts = two_attempts();
        let pod = pod_fields(&PodIdentity {
            name: Some("fetch-0".into()),
            namespace: Some(HOSTILE.into()),
            uid: None,
        });
        let expected = [
            r#"{"@timestamp":"TS","log.level":"info","ecs.version":"8.11.0","event.kind":"event","event.category":["network"],"event.type":["connection","allowed"],"event.action":"connect-direct","event.outcome":"success","event.duration":57000,"process.pid":4242,"process.name":"node","network.transport":"tcp","network.type":"ipv4","destination.ip":"93.184.216.34","destination.port":443,"rule.name":"default","k8s.namespace.name":"{H}","k8s.pod.name":"fetch-0"}"#,
            r#"{"@timestamp":"TS","log.level":"info","ecs.version":"8.11.0","event.kind":"event","event.category":["network"],"event.type":["connection","allowed"],"event.action":"connect-redirected","event.outcome":"success","event.duration":412000,"process.pid":77,"process.name":"node","network.transport":"tcp","network.type":"ipv6","destination.domain":"api.example.test","destination.ip":"fe80::1","destination.port":443,"rule.id":"2","rule.name":"host=*.example.test","mcp_redirect.gateway.name":"corp","mcp_redirect.gateway.endpoint":"[::ffff:127.0.0.1]:1080","mcp_redirect.gateway.attempts":[{"endpoint":"proxy.corp:3128","result":"ECONNREFUSED","elapsed_us":90},{"endpoint":"{H}","result":"ok","elapsed_us":0}],"mcp_redirect.via":"supervisor","mcp_redirect.dropped":3,"k8s.namespace.name":"{H}","k8s.pod.name":"fetch-0"}"#,
            r#"{"@timestamp":"TS","log.level":"info","ecs.version":"8.11.0","event.kind":"event","event.category":["network"],"event.type":["protocol","allowed"],"event.action":"resolve-redirected","event.outcome":"success","process.pid":1,"process.name":"node","dns.question.name":"api.routed.test","dns.resolved_ip":["198.18.0.7"],"rule.id":"0","rule.name":"host=*.routed.test","mcp_redirect.gateway.name":"s","k8s.namespace.name":"{H}","k8s.pod.name":"fetch-0"}"#,
            r#"{"@timestamp":"TS","log.level":"warn","ecs.version":"8.11.0","event.kind":"event","event.category":["network"],"event.type":["protocol","allowed"],"event.action":"resolve-redirected","event.outcome":"failure","process.pid":1,"process.name":"node","dns.question.name":"v6.routed.test","dns.resolved_ip":["fd6d:6370:7264::9"],"rule.id":"1","rule.name":"host=v6.routed.test","error.code":"EAI_NONAME","k8s.namespace.name":"{H}","k8s.pod.name":"fetch-0"}"#,
            r#"{"@timestamp":"TS","log.level":"warn","ecs.version":"8.11.0","event.kind":"event","event.category":["network"],"event.type":["connection","denied"],"event.action":"connect-blocked","event.outcome":"failure","event.duration":18446744073709551615,"process.pid":4294967295,"process.name":"node","network.transport":"udp","network.type":"ipv6","destination.domain":"{H}","destination.ip":"2001:db8::","destination.port":0,"rule.id":"18446744073709551615","rule.name":"{H}","error.code":"E123","error.message":"{H}","mcp_redirect.via":"{H}","mcp_redirect.dropped":18446744073709551615,"k8s.namespace.name":"{H}","k8s.pod.name":"fetch-0"}"#,
            r#"{"@timestamp":"TS","log.level":"error","ecs.version":"8.11.0","event.kind":"event","event.category":["configuration"],"event.type":["error"],"event.action":"config-error","event.outcome":"failure","process.pid":9,"process.name":"node","error.code":"E-5","error.message":"config /x: rules[0]: bad","k8s.namespace.name":"{H}","k8s.pod.name":"fetch-0"}"#,
            r#"{"@timestamp":"TS","log.level":"warn","ecs.version":"8.11.0","event.kind":"event","event.category":["network"],"event.type":["protocol"],"event.action":"resolve","event.outcome":"failure","process.pid":9,"process.name":"node","error.code":"EAI_UNKNOWN","k8s.namespace.name":"{H}","k8s.pod.name":"fetch-0"}"#,
            r#"{"@timestamp":"TS","log.level":"info","ecs.version":"8.11.0","event.kind":"event","event.category":["network"],"event.type":["connection"],"event.action":"connect","event.outcome":"unknown","process.pid":PID,"process.name":"node","network.transport":"tcp","network.type":"ipv4","destination.ip":"0.0.0.0","destination.port":65535,"error.code":"EINPROGRESS","k8s.namespace.name":"{H}","k8s.pod.name":"fetch-0"}"#,
        ];
        let events = samples(&attempts);
        assert_eq!(events.len(), expected.len());
        for (event, expected) in events.iter().zip(expected) {
            let expected = format!("{}\n", expected.replace("{H}", HOSTILE_JSON));
            assert_eq!(masked(&event.to_ecs_line("node", &pod)), expected);
        }

        // Cut on a character boundary: at MAX_STRING when it is one, one byte short when not.
        let host = "é".repeat(600);
        let exe = format!("a{host}");
        let event = Event {
            event: "resolve",
            host: Some(&host),
            pid: Some(1),
            ..Default::default()
        };
        let expected = format!(
            concat!(
                r#"{{"@timestamp":"TS","log.level":"info","ecs.version":"8.11.0","#,
                r#""event.kind":"event","event.category":["network"],"event.type":["protocol"],"#,
                r#""event.action":"resolve","event.outcome":"success","process.pid":1,"#,
                r#""process.name":"a{}…","dns.question.name":"{}…"}}"#,
                "\n"
            ),
            "é".repeat(511),
            "é".repeat(512)
        );
        assert_eq!(masked(&event.to_ecs_line(&exe, &[])), expected);
    }

    #[test]
    fn a_line_fits_the_buffer_it_starts_with() {
        for text in ["", "x", &"x".repeat(5000)] {
            let pod = pod_fields(&PodIdentity {
                name: Some(text.into()),
                namespace: Some(text.into()),
                uid: Some(text.into()),
            });
            for count in [0, 1, 40] {
                let attempts = widest_attempts(text, count);
                for event in ["connect", "resolve", "config_rejected"] {
                    let event = widest(event, text, &attempts);
                    let room =
                        ECS_ROOM + pod.len() + event.text_len(text, MAX_STRING, MAX_ATTEMPTS);
                    let line = event.to_ecs_line(text, &pod);
                    assert!(line.len() <= room, "{} > {room}", line.len());
                }
            }
        }
    }

    #[test]
    fn hostile_text_stays_one_bounded_line_of_json() {
        let nasty: String = (0u8..=0x7f)
            .map(char::from)
            .chain("\"\\\u{2028}é".chars())
            .collect();
        let long = nasty.repeat(200);
        let attempts: Vec<Attempt> = (0..100)
            .map(|_| Attempt {
                endpoint: long.clone(),
                address: None,
                result: LogResult::Errno(libc::ETIMEDOUT),
                elapsed_us: u64::MAX,
            })
            .collect();
        let event = Event {
            host: Some(&long),
            dst: Some("127.0.0.1:1".parse().unwrap()),
            rule: Some((Some(usize::MAX), &long)),
            action: Some("gateway"),
            gateway: Some(&long),
            error: Some(&long),
            via: Some(&long),
            attempts: Some(&attempts),
            elapsed_us: Some(u64::MAX),
            dropped: Some(u64::MAX),
            ..Default::default()
        };
        let pod = pod_fields(&PodIdentity {
            name: Some(long.clone()),
            namespace: Some(long.clone()),
            uid: Some(long.clone()),
        });
        let bytes = event.to_ecs_line(&long, &pod);
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
        let line = parse(&bytes);
        // 25 strings of at most MAX_STRING bytes, each at most 6 bytes escaped, and fixed text.
        let bound = 25 * (6 * MAX_STRING + 8) + 2048;
        assert!(bytes.len() <= bound, "{} > {bound}", bytes.len());
        let name = line["process.name"].as_str().unwrap();
        assert!(
            name.len() <= MAX_STRING + 3 && name.ends_with('…'),
            "{name}"
        );
        assert!(name.starts_with(&nasty[..40]));
        assert_eq!(
            line["mcp_redirect.gateway.attempts"]
                .as_array()
                .unwrap()
                .len(),
            MAX_ATTEMPTS
        );
        assert_eq!(
            line["mcp_redirect.gateway.attempts_omitted"],
            100 - MAX_ATTEMPTS
        );
    }
}
