//! Hot reload: a long-lived process picks up a changed config within about a second, keeps its
//! rules when a rewrite is invalid (and says so once), and fake addresses handed out before a
//! reload still lead to their host after it.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use crate::support::*;

/// A rule for `*.example.test` that does what `then` says (`via = "corp"`, `action = "deny"`).
fn config_text(scratch: &Scratch, proxy: std::net::SocketAddr, then: &str) -> String {
    Config::new()
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy])
        .rule(r#"host = "*.example.test""#, then)
        .text()
}

#[test]
fn rules_change_under_a_running_process_and_a_broken_rewrite_is_rejected() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("reload");
    let config = scratch.config(&config_text(&scratch, proxy.addr, "via = \"corp\""));
    // One lookup, then a connection to that same fake address every 50 ms, forever.
    let script = r#"
import socket, sys, time
addr = socket.getaddrinfo("api.example.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4]
while True:
    s = socket.socket()
    try:
        s.connect(addr)
        print("ok", flush=True)
    except OSError as e:
        print(e.errno, flush=True)
    s.close()
    time.sleep(0.05)
"#;
    let mut child = Run::python(script).config(&config).spawn();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = |what: &str| -> String {
        lines
            .next()
            .unwrap_or_else(|| panic!("the program ended while waiting for {what}"))
            .unwrap()
    };
    let wait_for = |next: &mut dyn FnMut(&str) -> String, wanted: &str| {
        let start = Instant::now();
        loop {
            if next(wanted) == wanted {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no {wanted} within 10 s"
            );
        }
    };
    wait_for(&mut next, "ok");

    // Deny the host: takes effect within about a second (the file is checked once a second).
    std::fs::write(
        &config,
        config_text(&scratch, proxy.addr, "action = \"deny\""),
    )
    .unwrap();
    let eacces = libc::EACCES.to_string();
    let took = wait_for(&mut next, &eacces);
    eprintln!("deny took effect after {took:?}");

    // A broken rewrite: rejected, the deny rule stays in force.
    std::fs::write(
        &config,
        "[[rules]]\nhost = \"*.example.test\"\nvia = \"nowhere\"\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    for _ in 0..10 {
        assert_eq!(
            next("a denial"),
            eacces,
            "the old rules stay after a rejected change"
        );
    }

    // Fixed again: allowed again, through the gateway, by the same fake address.
    std::fs::write(&config, config_text(&scratch, proxy.addr, "via = \"corp\"")).unwrap();
    wait_for(&mut next, "ok");
    let _ = child.kill();
    let _ = child.wait();
    let stderr = {
        let mut text = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    };
    assert_eq!(
        stderr.matches("the change is rejected").count(),
        1,
        "said once: {stderr}"
    );
    assert!(
        stderr.contains("rules[0].via: line 3, column 1: no gateway named \"nowhere\""),
        "{stderr}"
    );

    let log = scratch.log();
    assert_eq!(
        events(&log, "config_reloaded").len(),
        2,
        "deny, then allow again"
    );
    assert_eq!(events(&log, "config_rejected").len(), 1);
    let connects = events(&log, "connect");
    assert!(
        connects.iter().all(|e| e["host"] == "api.example.test"),
        "the fake address still names its host"
    );
    assert_eq!(connects.last().unwrap()["action"], "gateway");
}
