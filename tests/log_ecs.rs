//! `[log] format = "ecs"`: real programs under the library (and under the supervisor) write
//! Elastic Common Schema lines: every decision with its ECS names, the pod's identity only when
//! the Downward-API variables are set, valid JSON whatever the program is called, and
//! `mcp-redirect report` counts them exactly as it counts the native lines.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;
use serde_json::Value;

/// Denies `*.denied.test`, sends `*.example.test` through `proxy`, everything else direct.
fn ecs_config(scratch: &Scratch, format: &str, proxy: std::net::SocketAddr) -> PathBuf {
    Config::new()
        .log(scratch.log_path())
        .log_option(&format!("format = \"{format}\""))
        .gateway("corp", "http", &[proxy])
        .deny("*.denied.test")
        .via("*.example.test", "corp")
        .write(scratch)
}

/// One direct connection (to the origin), one through the gateway, one denied; each a lookup
/// and a connect, in that order. Blocking sockets, so every result is final.
fn three_connections(origin_port: u16) -> String {
    format!(
        r#"
import socket
def get(host, port):
    s = socket.create_connection((host, port))
    s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    print(s.recv(4096).decode().split("\r\n\r\n")[-1])
    s.close()
get("localhost", {origin_port})
get("api.example.test", 80)
try:
    socket.create_connection(("x.denied.test", 443))
except PermissionError:
    print("blocked")
"#
    )
}

/// The one line with this `event.action`.
fn action<'a>(log: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = log.iter().filter(|e| e["event.action"] == name).collect();
    assert_eq!(found.len(), 1, "one {name} line in {log:#?}");
    found[0]
}

/// What every ECS line has, and what none has: native keys, nested objects, nulls.
fn assert_ecs_shape(line: &Value) {
    let fields = line.as_object().unwrap();
    let ts = line["@timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("{line}"));
    assert!(ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T');
    assert_eq!(line["ecs.version"], "8.11.0");
    assert_eq!(line["event.kind"], "event");
    assert!(line["process.pid"].is_u64() && line["process.name"].is_string());
    assert!(line["event.outcome"].is_string() && line["log.level"].is_string());
    for native in ["ts", "event", "exe", "pid", "rule", "result", "dst"] {
        assert!(!fields.contains_key(native), "{native} in {line}");
    }
    for (key, value) in fields {
        assert!(!value.is_object() && !value.is_null(), "{key} in {line}");
    }
}

fn pod_fields(line: &Value) -> Vec<(&str, &str)> {
    line.as_object()
        .unwrap()
        .iter()
        .filter(|(key, _)| key.starts_with("k8s."))
        .map(|(key, value)| (key.as_str(), value.as_str().unwrap()))
        .collect()
}

fn report_json(log: &Path) -> Value {
    let out = Command::new(cli_exe())
        .args(["report", "--json"])
        .arg(log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn direct_redirected_and_blocked_connections_and_their_lookups() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("ecs");
    let config = ecs_config(&scratch, "ecs", proxy.addr);
    let out = Run::python(&three_connections(origin.addr.port()))
        .config(&config)
        .output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        ["hello from origin", "hello from origin", "blocked"]
    );
    let log = scratch.log();
    assert_eq!(log.len(), 8, "{log:#?}");
    for line in &log {
        assert_ecs_shape(line);
        assert!(pod_fields(line).is_empty(), "no pod variables: {line}");
        assert_eq!(line["process.pid"], log[0]["process.pid"]);
        assert!(line["process.name"].as_str().unwrap().starts_with("python"));
    }

    let direct = action(&log, "connect-direct");
    assert_eq!(direct["event.outcome"], "success");
    assert_eq!(direct["log.level"], "info");
    assert_eq!(
        direct["event.type"],
        serde_json::json!(["connection", "allowed"])
    );
    assert_eq!(direct["network.transport"], "tcp");
    assert_eq!(direct["destination.ip"], "127.0.0.1");
    assert_eq!(direct["destination.port"], origin.addr.port());
    assert!(direct["event.duration"].is_u64());
    assert!(direct.get("error.code").is_none() && direct.get("rule.id").is_none());

    let redirected = action(&log, "connect-redirected");
    assert_eq!(redirected["event.outcome"], "success");
    assert_eq!(redirected["destination.domain"], "api.example.test");
    assert_eq!(redirected["destination.port"], 80);
    assert!(redirected["destination.ip"]
        .as_str()
        .unwrap()
        .starts_with("198.1"));
    assert_eq!(redirected["rule.id"], "1");
    assert_eq!(redirected["rule.name"], "host=*.example.test");
    assert_eq!(redirected["mcp_redirect.gateway.name"], "corp");
    assert_eq!(
        redirected["mcp_redirect.gateway.endpoint"],
        proxy.addr.to_string()
    );
    let attempts = redirected["mcp_redirect.gateway.attempts"]
        .as_array()
        .unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["endpoint"], proxy.addr.to_string());
    assert_eq!(attempts[0]["result"], "ok");

    let blocked = action(&log, "connect-blocked");
    assert_eq!(blocked["event.outcome"], "failure");
    assert_eq!(blocked["log.level"], "warn");
    assert_eq!(
        blocked["event.type"],
        serde_json::json!(["connection", "denied"])
    );
    assert_eq!(blocked["error.code"], "EACCES");
    assert_eq!(blocked["error.message"], "denied by rule");
    assert_eq!(blocked["destination.domain"], "x.denied.test");
    assert_eq!(blocked["rule.id"], "0");
    assert_eq!(blocked["rule.name"], "host=*.denied.test");

    // Each connection the program closed: one line with what it carried.
    let request = "GET / HTTP/1.0\r\nHost: x\r\n\r\n".len();
    for (name, connect) in [("close-direct", direct), ("close-redirected", redirected)] {
        let close = action(&log, name);
        assert_eq!(close["event.outcome"], "success", "{close}");
        assert_eq!(
            close["event.type"],
            serde_json::json!(["connection", "end"]),
            "{close}"
        );
        assert_eq!(close["destination.port"], connect["destination.port"]);
        assert_eq!(close["source.bytes"], request, "{close}");
        assert!(close["destination.bytes"].as_u64().unwrap() > 0, "{close}");
    }

    let real = action(&log, "resolve-direct");
    assert_eq!(real["dns.question.name"], "localhost");
    assert!(real.get("dns.resolved_ip").is_none());
    let fake = action(&log, "resolve-redirected");
    assert_eq!(fake["dns.question.name"], "api.example.test");
    assert_eq!(
        fake["dns.resolved_ip"],
        serde_json::json!([redirected["destination.ip"]])
    );
    assert_eq!(fake["mcp_redirect.gateway.name"], "corp");
    let denied = action(&log, "resolve-blocked");
    assert_eq!(denied["dns.question.name"], "x.denied.test");
    assert_eq!(
        denied["event.type"],
        serde_json::json!(["protocol", "denied"])
    );
    for resolve in [real, fake, denied] {
        assert_eq!(resolve["event.outcome"], "success");
        assert!(resolve.get("destination.domain").is_none());
    }

    // curl, through the gateway: the same names.
    let out = Run::curl("http://api.example.test/")
        .config(&config)
        .output();
    assert_eq!(out.success(), "hello from origin");
    let log = scratch.log();
    let by_curl: Vec<&Value> = log.iter().filter(|e| e["process.name"] == "curl").collect();
    assert!(by_curl
        .iter()
        .any(|e| e["event.action"] == "connect-redirected"
            && e["event.outcome"] == "success"
            && e["destination.domain"] == "api.example.test"));
}

#[test]
fn report_counts_ecs_lines_as_it_counts_native_ones() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let reports: Vec<Value> = ["native", "ecs"]
        .into_iter()
        .map(|format| {
            let scratch = Scratch::new(&format!("ecs-report-{format}"));
            let config = ecs_config(&scratch, format, proxy.addr);
            Run::python(&three_connections(origin.addr.port()))
                .config(&config)
                .output()
                .success();
            report_json(&scratch.log_path())
        })
        .collect();
    for section in [
        "connects",
        "denials",
        "gateways",
        "hosts",
        "processes",
        "resolves",
        "results",
        "config_errors",
        "other_events",
        "events",
        "lines",
        "malformed",
    ] {
        assert_eq!(reports[0][section], reports[1][section], "{section}");
    }
    assert_eq!(reports[1]["connects"]["total"], 3);
    assert_eq!(reports[1]["resolves"]["fake"], 2);
    assert_eq!(
        reports[0]["elapsed_us"]["all"]["count"],
        reports[1]["elapsed_us"]["all"]["count"]
    );
}

#[test]
fn pod_fields_only_from_the_variables_that_are_set() {
    let scratch = Scratch::new("ecs-pod");
    let config = ecs_config(&scratch, "ecs", closed_port());
    let denied = "import socket\ntry: socket.create_connection(('x.denied.test', 80))\nexcept PermissionError: print('blocked')";
    let out = Run::python(denied)
        .config(&config)
        .env("MCP_REDIRECT_POD_NAME", "fetch-5d9c7")
        .env("MCP_REDIRECT_POD_NAMESPACE", "mcp")
        .env(
            "MCP_REDIRECT_POD_UID",
            "0b7c1e6a-2f4d-4c1b-9e8a-3d5f7a9c1b2e",
        )
        .output();
    assert_eq!(out.success().trim(), "blocked");
    let log = scratch.log();
    assert_eq!(log.len(), 2);
    for line in &log {
        assert_ecs_shape(line);
        assert_eq!(
            pod_fields(line),
            [
                ("k8s.namespace.name", "mcp"),
                ("k8s.pod.name", "fetch-5d9c7"),
                ("k8s.pod.uid", "0b7c1e6a-2f4d-4c1b-9e8a-3d5f7a9c1b2e")
            ]
        );
    }

    // The supervisor reads them from its own environment; an empty one counts as unset.
    let scratch = Scratch::new("ecs-pod-supervised");
    let config = ecs_config(&scratch, "ecs", closed_port());
    library();
    let out = Run::new(
        cli_exe(),
        &[
            "run",
            "--mode",
            "supervise",
            "--config",
            config.to_str().unwrap(),
            "--",
            "python3",
            "-c",
            denied,
        ],
    )
    .without_preload()
    .env("MCP_REDIRECT_POD_NAME", "fetch-5d9c7")
    .env("MCP_REDIRECT_POD_NAMESPACE", "")
    .output();
    assert_eq!(out.success().trim(), "blocked");
    let log = scratch.log();
    assert!(log.iter().any(|e| e["event.action"] == "connect-blocked"));
    for line in &log {
        assert_ecs_shape(line);
        assert_eq!(pod_fields(line), [("k8s.pod.name", "fetch-5d9c7")]);
        if line["event.action"] == "connect-blocked" {
            assert_eq!(line["mcp_redirect.via"], "supervisor");
        }
    }
}

#[test]
fn hostile_program_and_host_names_still_give_valid_json() {
    use std::os::unix::ffi::OsStrExt;
    let scratch = Scratch::new("ecs-hostile");
    let config = ecs_config(&scratch, "ecs", closed_port());
    // A copy of curl named with a quote, a backslash, a control byte and invalid UTF-8.
    let name = b"cu\"r\\l\x01\xff";
    let curl = Command::new("sh")
        .args(["-c", "command -v curl"])
        .output()
        .unwrap();
    let curl = String::from_utf8(curl.stdout).unwrap();
    std::fs::copy(
        curl.trim(),
        scratch.dir.join(std::ffi::OsStr::from_bytes(name)),
    )
    .unwrap();
    let out = Run::new(
        "sh",
        &[
            "-c",
            r#"exec "$(printf '%s/cu"r\\l\001\377' "$1")" -sS http://x.denied.test/"#,
            "sh",
            scratch.dir.to_str().unwrap(),
        ],
    )
    .config(&config)
    .output();
    assert_ne!(out.code, Some(0), "the connection is denied");
    // Host names no rule could match: refused at lookup, logged without the name.
    let out = Run::python(
        r#"
import socket
for name in [b'a"b\\c\x01.test', b'caf\xc3\xa9\xff.test']:
    try:
        socket.getaddrinfo(name, 80)
    except socket.gaierror:
        print("refused")
"#,
    )
    .config(&config)
    .output();
    assert_eq!(out.success(), "refused\nrefused\n");

    let log = scratch.log(); // every line parses, or this fails
    for line in &log {
        assert_ecs_shape(line);
    }
    let by_curl = action(&log, "connect-blocked");
    assert_eq!(by_curl["process.name"], "cu\"r\\l\u{1}\u{fffd}");
    let refused: Vec<&Value> = log
        .iter()
        .filter(|e| e["event.action"] == "resolve")
        .collect();
    assert_eq!(refused.len(), 2, "{log:#?}");
    for line in refused {
        assert_eq!(line["event.outcome"], "failure");
        assert_eq!(line["error.code"], "EAI_NONAME");
        assert!(line.get("dns.question.name").is_none());
    }
}

#[test]
fn a_reload_can_switch_the_format_and_report_reads_the_mixed_file() {
    let scratch = Scratch::new("ecs-reload");
    let native = ecs_config(&scratch, "native", closed_port());
    let text = std::fs::read_to_string(&native).unwrap();
    let ecs_text = text.replace("format = \"native\"", "format = \"ecs\"");
    let script = format!(
        r#"
import os, socket, time
def denied():
    try: socket.create_connection(("x.denied.test", 80))
    except PermissionError: print("blocked")
denied()
open("{config}.new", "w").write({ecs_text:?})
os.rename("{config}.new", "{config}")
time.sleep(1.2)
denied()
"#,
        config = native.display()
    );
    let out = Run::python(&script).config(&native).output();
    assert_eq!(out.success(), "blocked\nblocked\n");
    let log = scratch.log();
    let formats: Vec<&str> = log
        .iter()
        .map(|e| {
            if e.get("@timestamp").is_some() {
                e["event.action"].as_str().unwrap()
            } else {
                e["event"].as_str().unwrap()
            }
        })
        .collect();
    assert_eq!(
        formats,
        [
            "resolve",
            "connect",
            "config-reloaded",
            "resolve-blocked",
            "connect-blocked"
        ]
    );
    let report = report_json(&scratch.log_path());
    assert_eq!(report["connects"]["by_action"]["deny"]["connects"], 2);
    assert_eq!(report["resolves"]["total"], 2);
    assert_eq!(report["malformed"]["count"], 0);
}

#[test]
fn an_invalid_config_that_asks_for_ecs_reports_itself_in_ecs() {
    let scratch = Scratch::new("ecs-invalid");
    let config = scratch.config(&format!(
        "[log]\npath = \"{}\"\nformat = \"ecs\"\n[[rules]]\nhots = \"x.test\"\naction = \"deny\"\n",
        scratch.log_path().display()
    ));
    let out = Run::python("import socket\ntry: socket.create_connection(('127.0.0.1', 9))\nexcept PermissionError: print('blocked')")
        .config(&config)
        .output();
    assert_eq!(out.success().trim(), "blocked");
    let log = scratch.log();
    for line in &log {
        assert_ecs_shape(line);
    }
    let error = action(&log, "config-error");
    assert_eq!(error["log.level"], "error");
    assert_eq!(
        error["event.category"],
        serde_json::json!(["configuration"])
    );
    assert_eq!(error["error.code"], "EINVAL");
    assert!(error["error.message"]
        .as_str()
        .unwrap()
        .contains("unknown field `hots`"));
    let blocked = action(&log, "connect-blocked");
    assert_eq!(blocked["rule.name"], "invalid configuration");
}
