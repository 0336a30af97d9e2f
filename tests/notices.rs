//! From a denial to a fix (issue 19): what was refused is said on stderr, once per host and
//! reason, with where the log is; audit mode logs denials without enforcing them.

use crate::support::*;

/// The notice lines of a run's stderr.
fn notices(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("mcp-redirect: "))
        .collect()
}

#[test]
fn npm_under_default_deny_says_which_host_was_denied_and_where_the_log_is() {
    let scratch = Scratch::new("notice-npm");
    let log = scratch.log_path();
    let config = Config::new().default("deny").log(&log).write(&scratch);
    let out = Run::new("npm", &["view", "cowsay", "version", "--fetch-retries=0"])
        .config(&config)
        .output();
    assert_ne!(out.code, Some(0));
    assert_eq!(
        notices(&out.stderr),
        [format!(
            "mcp-redirect: denied registry.npmjs.org:443 (default = \"deny\"); see {}",
            log.display()
        )],
        "{}",
        out.describe()
    );
}

#[test]
fn python_and_curl_get_one_notice_per_host_however_often_they_try() {
    let scratch = Scratch::new("notice-once");
    let log = scratch.log_path();
    let config = Config::new()
        .default("deny")
        .log(&log)
        .deny("blocked.test")
        .write(&scratch);
    let script = r#"
import socket
for host, port in [("blocked.test", 443)] * 5 + [("other.test", 80)] * 3:
    try:
        socket.create_connection((host, port), timeout=5)
    except PermissionError:
        pass
"#;
    let out = Run::python(script).config(&config).output();
    out.success();
    let see = format!("see {}", log.display());
    assert_eq!(
        notices(&out.stderr),
        [
            format!("mcp-redirect: denied blocked.test:443 (rules[0]: host=blocked.test); {see}"),
            format!("mcp-redirect: denied other.test:80 (default = \"deny\"); {see}"),
        ]
    );
    // The log still has every attempt.
    assert_eq!(events(&scratch.log(), "connect").len(), 8);

    let out = Run::new(
        "curl",
        &[
            "-sS",
            "--max-time",
            "5",
            "http://blocked.test/a",
            "http://blocked.test/b",
        ],
    )
    .config(&config)
    .output();
    assert_eq!(out.code, Some(7), "{}", out.describe());
    assert_eq!(
        notices(&out.stderr),
        [format!(
            "mcp-redirect: denied blocked.test:80 (rules[0]: host=blocked.test); {see}"
        )]
    );
}

#[test]
fn a_refusing_gateway_is_named_with_its_answer() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(
        origin.addr,
        ProxyBehaviour::Refuse("HTTP/1.1 403 Forbidden"),
    );
    let scratch = Scratch::new("notice-gateway");
    let config = example_test_via(&scratch, proxy.addr);
    // Blocking (urllib without a timeout) and non-blocking (the relay) alike.
    let script = r#"
import asyncio, socket
for _ in range(2):
    try:
        socket.create_connection(("api.example.test", 80))
    except ConnectionRefusedError:
        pass
async def main():
    try:
        await asyncio.open_connection("web.example.test", 80)
    except ConnectionRefusedError:
        pass
asyncio.run(main())
"#;
    let out = Run::python(script).config(&config).output();
    out.success();
    let see = format!("see {}", scratch.log_path().display());
    assert_eq!(
        notices(&out.stderr),
        [
            format!("mcp-redirect: gateway corp failed for api.example.test:80: gateway refused: \"HTTP/1.1 403 Forbidden\"; {see}"),
            format!("mcp-redirect: gateway corp failed for web.example.test:80: gateway refused: \"HTTP/1.1 403 Forbidden\"; {see}"),
        ]
    );
}

#[test]
fn no_notices_when_turned_off_or_when_the_log_is_stderr() {
    let scratch = Scratch::new("notice-off");
    let script = r#"
import socket
try:
    socket.create_connection(("blocked.test", 443), timeout=5)
except PermissionError:
    print("denied")
"#;
    let off = Config::new()
        .default("deny")
        .log(scratch.log_path())
        .log_option("notices = false")
        .write(&scratch);
    let out = Run::python(script).config(&off).output();
    assert_eq!(out.success().trim(), "denied");
    assert!(notices(&out.stderr).is_empty(), "{}", out.stderr);

    // The log on stderr says it all: its line, no notice besides.
    let stderr_log = Config::new().default("deny").log("stderr").write(&scratch);
    let out = Run::python(script).config(&stderr_log).output();
    assert_eq!(out.success().trim(), "denied");
    let lines = notices(&out.stderr);
    assert!(
        lines.iter().all(|l| !l.contains("denied blocked.test")),
        "{lines:?}"
    );
    assert!(
        out.stderr.contains("\"host\":\"blocked.test\""),
        "{}",
        out.stderr
    );
}

#[test]
fn audit_mode_logs_a_denial_and_lets_the_connection_through() {
    let origin = Origin::start("origin");
    let scratch = Scratch::new("audit");
    let log = scratch.log_path();
    let config = Config::new()
        .top(r#"mode = "audit""#)
        .default("deny")
        .log(&log)
        .deny("intranet.test")
        .write(&scratch);
    let url = format!("http://intranet.test:{}/", origin.addr.port());
    let out = Run::curl(&url)
        .host_entry("127.0.0.1", "intranet.test")
        .config(&config)
        .output();
    assert_eq!(out.success(), "hello from origin");
    assert_eq!(
        notices(&out.stderr),
        [format!(
            "mcp-redirect: would deny intranet.test:{} (rules[0]: host=intranet.test), let through: audit mode; see {}",
            origin.addr.port(),
            log.display()
        )]
    );
    let log_lines = scratch.log();
    let connect = events(&log_lines, "connect")[0];
    assert_eq!(connect["action"], "deny");
    assert_eq!(connect["enforced"], false);
    // curl's socket is non-blocking: its direct connect is under way when logged.
    assert_eq!(connect["result"], "EINPROGRESS");

    // check and explain say so.
    let cli = cli_exe();
    let check = Run::new(cli, &["check", "--config", config.to_str().unwrap()])
        .without_preload()
        .output();
    assert!(
        check
            .success()
            .contains("mode: audit: denials are logged (\"enforced\": false) and not enforced"),
        "{}",
        check.stdout
    );
    let explain = Run::new(
        cli,
        &[
            "explain",
            "--config",
            config.to_str().unwrap(),
            "intranet.test:443",
        ],
    )
    .without_preload()
    .output();
    assert!(
        explain.success().contains(
            "connect: deny by rules[0] host=intranet.test (audit mode: logged, not enforced: the connection goes direct)"
        ),
        "{}",
        explain.stdout
    );
}

#[test]
fn audit_mode_is_in_the_ecs_format_too() {
    let origin = Origin::start("origin");
    let scratch = Scratch::new("audit-ecs");
    let config = Config::new()
        .top(r#"mode = "audit""#)
        .default("deny")
        .log(scratch.log_path())
        .log_option(r#"format = "ecs""#)
        .write(&scratch);
    let out = Run::curl(&format!("http://127.0.0.1:{}/", origin.addr.port()))
        .config(&config)
        .output();
    assert_eq!(out.success(), "hello from origin");
    let lines = scratch.log();
    let connect = lines
        .iter()
        .find(|l| l["event.action"] == "connect-blocked")
        .unwrap();
    assert_eq!(connect["mcp_redirect.enforced"], false, "{connect}");
}
