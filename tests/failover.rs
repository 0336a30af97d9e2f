//! Gateways with several endpoints: failover past endpoints that refuse, hang or answer 503,
//! no retry after a refusal any endpoint would repeat, round-robin spreading, cool-downs, and
//! never a hard outage from stale marks. Every attempt shows in the log.

use std::net::SocketAddr;

use crate::support::*;

fn config(scratch: &Scratch, endpoints: &[SocketAddr], options: &str) -> std::path::PathBuf {
    Config::new()
        .log(scratch.log_path())
        .gateway("corp", "http", endpoints)
        .gateway_option(options)
        .via("*.example.test", "corp")
        .write(scratch)
}

/// Where a script of [`requests`] pauses for the test: after request number `after` it says so
/// (file `paused` in `dir`) and waits for the test (file `resume`) before it goes on, and pauses
/// at least `at_least_s` seconds in all: what the test does in between happens between those
/// requests whatever the machine's load.
struct PauseForTest<'a> {
    after: usize,
    at_least_s: f64,
    dir: &'a std::path::Path,
}

/// A Python script making `n` GET requests to `url` (each a new connection), printing each body
/// or errno, and pausing for the test if `pause` says where.
fn requests(url: &str, n: usize, pause: Option<PauseForTest>) -> String {
    let pause = match pause {
        None => String::new(),
        Some(PauseForTest {
            after,
            at_least_s,
            dir,
        }) => {
            let dir = dir.display();
            format!(
                r#"
    if i + 1 == {after}:
        started = time.monotonic()
        open("{dir}/paused", "w").close()
        while not os.path.exists("{dir}/resume") and time.monotonic() - started < 120:
            time.sleep(0.01)
        time.sleep(max(0.0, {at_least_s} - (time.monotonic() - started)))"#
            )
        }
    };
    format!(
        r#"
import os, time, urllib.request
for i in range({n}):
    try:
        print(urllib.request.urlopen("{url}", timeout=20).read().decode())
    except OSError as e:
        print("error", getattr(e, "errno", None) or getattr(getattr(e, "reason", None), "errno", None)){pause}
"#
    )
}

/// Waits until a script of [`requests`] has paused, runs `meanwhile`, and
/// lets it go on.
fn while_paused(dir: &std::path::Path, meanwhile: impl FnOnce()) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !dir.join("paused").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the script never paused"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    meanwhile();
    std::fs::write(dir.join("resume"), "").unwrap();
}

fn attempts(event: &serde_json::Value) -> Vec<(String, String)> {
    event["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["endpoint"].as_str().unwrap().to_string(),
                a["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn failover_passes_refusing_hanging_and_overloaded_endpoints() {
    let origin = Origin::start("origin");
    let refuses = closed_port();
    let hangs = silent_listener();
    let overloaded = ConnectProxy::start(
        origin.addr,
        ProxyBehaviour::Refuse("HTTP/1.1 503 Service Unavailable"),
    );
    let healthy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("failover");
    let config = config(
        &scratch,
        &[refuses, hangs, overloaded.addr, healthy.addr],
        "connect_timeout_ms = 3000",
    );
    let out = Run::python(&requests("http://api.example.test/", 2, None))
        .config(&config)
        .output();
    assert_eq!(out.success(), "hello from origin\nhello from origin\n");
    let log = scratch.log();
    let connects = events(&log, "connect");
    assert_eq!(
        attempts(connects[0]),
        [
            (refuses.to_string(), "ECONNREFUSED".to_string()),
            (hangs.to_string(), "ETIMEDOUT".to_string()),
            (overloaded.addr.to_string(), "ECONNREFUSED".to_string()),
            (healthy.addr.to_string(), "ok".to_string()),
        ]
    );
    assert_eq!(connects[0]["endpoint"], healthy.addr.to_string());
    // The failed endpoints are now marked down: the next connection goes straight to the healthy one.
    assert_eq!(
        attempts(connects[1]),
        [(healthy.addr.to_string(), "ok".to_string())]
    );
    assert_eq!(healthy.request_lines().len(), 2);
}

#[test]
fn a_refusal_any_endpoint_would_repeat_is_not_retried() {
    let origin = Origin::start("origin");
    let forbidding = ConnectProxy::start(
        origin.addr,
        ProxyBehaviour::Refuse("HTTP/1.1 403 Forbidden"),
    );
    let healthy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("no-retry");
    let config = config(&scratch, &[forbidding.addr, healthy.addr], "");
    let out = Run::python(&requests("http://api.example.test/", 1, None))
        .config(&config)
        .output();
    assert_eq!(
        out.success().trim(),
        format!("error {}", libc::ECONNREFUSED)
    );
    assert!(
        healthy.requests().is_empty(),
        "a 403 is not tried elsewhere"
    );
    let log = scratch.log();
    assert_eq!(
        attempts(events(&log, "connect")[0]),
        [(forbidding.addr.to_string(), "ECONNREFUSED".to_string())]
    );
}

#[test]
fn round_robin_spreads_connections() {
    let origin = Origin::start("origin");
    let a = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let b = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("round-robin");
    let config = config(&scratch, &[a.addr, b.addr], "strategy = \"round_robin\"");
    let out = Run::python(&requests("http://api.example.test/", 100, None))
        .config(&config)
        .output();
    assert_eq!(
        out.success()
            .lines()
            .filter(|l| *l == "hello from origin")
            .count(),
        100
    );
    let (to_a, to_b) = (a.requests().len(), b.requests().len());
    // One process, one counter: strictly alternating. The stated tolerance is 45-55 of 100.
    assert!(
        (45..=55).contains(&to_a) && to_a + to_b == 100,
        "{to_a} / {to_b}"
    );
}

#[test]
fn a_dead_endpoint_is_skipped_for_its_cooldown_then_used_again() {
    let origin = Origin::start("origin");
    let first = closed_port();
    let second = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("cooldown");
    let config = config(&scratch, &[first, second.addr], "cooldown_s = 1");
    // Two requests, a pause longer than the cool-down, a third.
    let child = Run::python(&requests(
        "http://api.example.test/",
        3,
        Some(PauseForTest {
            after: 2,
            at_least_s: 1.5,
            dir: &scratch.dir,
        }),
    ))
    .config(&config)
    .spawn();
    // While the script pauses, the first endpoint comes back.
    let mut revived = None;
    while_paused(&scratch.dir, || {
        revived = Some(ConnectProxy::start_on(
            first,
            origin.addr,
            ProxyBehaviour::Tunnel,
        ))
    });
    let revived = revived.unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = scratch.log();
    let connects = events(&log, "connect");
    let ok = "ok".to_string();
    assert_eq!(
        attempts(connects[0]),
        [
            (first.to_string(), "ECONNREFUSED".to_string()),
            (second.addr.to_string(), ok.clone())
        ]
    );
    assert_eq!(
        attempts(connects[1]),
        [(second.addr.to_string(), ok.clone())],
        "skipped while cooling down"
    );
    assert_eq!(
        attempts(connects[2]),
        [(first.to_string(), ok)],
        "tried again after the cool-down"
    );
    assert_eq!(revived.request_lines().len(), 1);
}

#[test]
fn with_every_endpoint_down_the_least_recently_failed_is_still_tried() {
    let origin = Origin::start("origin");
    let a = closed_port();
    let b = closed_port();
    let scratch = Scratch::new("all-down");
    let config = config(
        &scratch,
        &[a, b],
        "strategy = \"round_robin\"\ncooldown_s = 600",
    );
    // Request 1 starts at a (fails a, then b); request 2 would start at b, but both are down, so
    // the least recently failed, a, goes first. Then a comes back for request 3.
    let child = Run::python(&requests(
        "http://api.example.test/",
        3,
        Some(PauseForTest {
            after: 2,
            at_least_s: 0.0,
            dir: &scratch.dir,
        }),
    ))
    .config(&config)
    .spawn();
    let mut revived = None;
    while_paused(&scratch.dir, || {
        revived = Some(ConnectProxy::start_on(
            a,
            origin.addr,
            ProxyBehaviour::Tunnel,
        ))
    });
    let revived = revived.unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.ends_with("hello from origin\n"), "{stdout}");
    let log = scratch.log();
    let connects = events(&log, "connect");
    let refused = "ECONNREFUSED".to_string();
    assert_eq!(
        attempts(connects[0]),
        [
            (a.to_string(), refused.clone()),
            (b.to_string(), refused.clone())
        ]
    );
    assert_eq!(
        attempts(connects[1]),
        [(a.to_string(), refused.clone()), (b.to_string(), refused)]
    );
    assert_eq!(
        attempts(connects[2])[0],
        (a.to_string(), "ok".to_string()),
        "marks never cause a hard outage"
    );
    assert_eq!(revived.request_lines().len(), 1);
}
