//! `mcp-redirect run --mode supervise`: programs LD_PRELOAD cannot enter (here a static binary
//! compiled by the test) are decided by the seccomp supervisor with the same rules, gateways and
//! log; a program flipping its sockaddr during the check gets nowhere; the whole process tree is
//! covered; io_uring is refused so that runtimes fall back.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::*;

/// The tool, in the tests' private mount namespace.
fn cli(args: &[&str]) -> Run {
    library();
    let mut full = vec![cli_exe()];
    full.extend_from_slice(args);
    Run::new(full[0], &full[1..]).without_preload()
}

/// A listener that counts the connections it accepts.
fn counting_listener(ip: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::Relaxed);
            drop(stream);
        }
    });
    (addr, count)
}

#[test]
fn a_static_binary_is_decided_by_the_supervisor() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("supervise-static");
    let binary = compile_static(&scratch, "sconn");
    let config = Config::new()
        .default("deny")
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy.addr])
        .rule(r#"cidr = "127.10.0.0/16""#, r#"via = "corp""#)
        .rule(r#"cidr = "127.0.0.1/32""#, r#"action = "direct""#)
        .and(&format!("port = {}", origin.addr.port()))
        .write(&scratch);
    let port = origin.addr.port().to_string();
    // auto mode sees a static binary and supervises it.
    let out = cli(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--",
        binary.to_str().unwrap(),
        "127.10.2.3",
        "80",
        "127.0.0.1",
        &port,
        "127.9.9.9",
        "80",
    ])
    .output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "ok hello from origin",
            "ok hello from origin",
            &libc::EACCES.to_string()
        ]
    );
    assert_eq!(proxy.request_lines(), ["CONNECT 127.10.2.3:80 HTTP/1.1"]);
    let log = scratch.log();
    let connects = events(&log, "connect");
    assert_eq!(connects.len(), 3);
    assert!(
        connects
            .iter()
            .all(|e| e["via"] == "supervisor" && e["exe"] == "sconn"),
        "{log:#?}"
    );
    let actions: Vec<_> = connects
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["gateway", "direct", "deny"]);
}

#[test]
fn flipping_the_address_during_the_check_never_reaches_the_denied_listener() {
    let (allowed, allowed_count) = counting_listener("127.0.0.1");
    let (denied, denied_count) = counting_listener("127.0.0.2");
    let scratch = Scratch::new("supervise-toctou");
    let binary = compile_static(&scratch, "toctou");
    let config = Config::new()
        .default("deny")
        .log("off")
        .rule(r#"cidr = "127.0.0.1/32""#, r#"action = "direct""#)
        .and(&format!("port = {}", allowed.port()))
        .write(&scratch);
    let out = cli(&[
        "run",
        "--mode",
        "supervise",
        "--config",
        config.to_str().unwrap(),
        "--",
        binary.to_str().unwrap(),
        "127.0.0.1",
        &allowed.port().to_string(),
        "127.0.0.2",
        &denied.port().to_string(),
        "2000",
    ])
    .output();
    let succeeded: usize = out.success().trim().parse().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        denied_count.load(Ordering::Relaxed),
        0,
        "the denied listener was reached"
    );
    assert_eq!(allowed_count.load(Ordering::Relaxed), succeeded);
    assert!(succeeded > 0, "some connects went through, as allowed");
}

#[test]
fn the_whole_tree_is_covered_and_io_uring_is_refused() {
    let origin = Origin::start("origin");
    let scratch = Scratch::new("supervise-tree");
    let config = Config::new()
        .default("deny")
        .log(scratch.log_path())
        .rule(r#"cidr = "127.0.0.1/32""#, r#"action = "direct""#)
        .and(&format!("port = {}", origin.addr.port()))
        .write(&scratch);
    // A shell (forked by the supervised program) runs curl twice: allowed, then denied.
    let script = format!(
        "curl -s --max-time 5 http://127.0.0.1:{}/; echo; curl -s --max-time 5 http://127.0.0.1:{}/ || echo \"denied $?\"",
        origin.addr.port(),
        closed_port().port()
    );
    let out = cli(&[
        "run",
        "--mode",
        "supervise",
        "--config",
        config.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &script,
    ])
    .output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        ["hello from origin", "denied 7"]
    );
    let log = scratch.log();
    let by_curl: Vec<_> = events(&log, "connect")
        .into_iter()
        .filter(|e| e["exe"] == "curl")
        .collect();
    assert_eq!(by_curl.len(), 2);
    assert!(by_curl.iter().all(|e| e["via"] == "supervisor"));

    let probe = "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); rc = libc.syscall(425, 8, ctypes.create_string_buffer(120)); print(rc, ctypes.get_errno())";
    let out = cli(&[
        "run",
        "--mode",
        "supervise",
        "--config",
        config.to_str().unwrap(),
        "--",
        "python3",
        "-c",
        probe,
    ])
    .output();
    assert_eq!(out.success().trim(), format!("-1 {}", libc::ENOSYS));
}

#[test]
fn dry_run_says_which_mode() {
    let scratch = Scratch::new("supervise-dry");
    let binary = compile_static(&scratch, "sconn");
    let config = Config::new().default("direct").write(&scratch);
    let out = cli(&[
        "run",
        "--dry-run",
        "--config",
        config.to_str().unwrap(),
        "--",
        binary.to_str().unwrap(),
    ])
    .output();
    let text = out.success();
    assert!(text.starts_with("mode: supervise\n"), "{text}");
    assert!(
        !text.contains("libmcp_redirect.so"),
        "no preload under the supervisor: {text}"
    );
}

/// Denies everything but `*.corp.test`, which goes through the CONNECT proxy at `proxy`;
/// `denied.test` is denied by a rule of its own.
fn corp_test_via(scratch: &Scratch, proxy: SocketAddr) -> std::path::PathBuf {
    Config::new()
        .default("deny")
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy])
        .via("*.corp.test", "corp")
        .deny("denied.test")
        .write(scratch)
}

#[test]
fn a_go_program_with_its_own_resolver_reaches_routed_names_through_the_gateway() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("supervise-go");
    let binary = build_go_fetch(&scratch);
    let config = corp_test_via(&scratch, proxy.addr);
    let routed = format!("http://name.corp.test:{}/", origin.addr.port());
    let denied = format!("http://denied.test:{}/", origin.addr.port());
    // auto mode: a Go binary goes to the supervisor. Its DNS goes to 127.0.0.1:53 (the test's
    // resolv.conf), which nothing serves: only the supervisor's resolver can answer.
    let out = cli(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--",
        binary.to_str().unwrap(),
        &routed,
        &denied,
    ])
    .output();
    let lines: Vec<String> = out.success().lines().map(str::to_string).collect();
    assert_eq!(lines[0], "ok hello from origin", "{}", out.describe());
    assert!(
        lines[1].starts_with("error") && lines[1].contains("permission denied"),
        "{}",
        lines[1]
    );
    assert_eq!(
        proxy.request_lines(),
        [format!(
            "CONNECT name.corp.test:{} HTTP/1.1",
            origin.addr.port()
        )]
    );
    let log = scratch.log();
    assert!(events(&log, "resolve")
        .iter()
        .any(|e| e["host"] == "name.corp.test" && e["answer"].is_string()));
    let connects = events(&log, "connect");
    assert!(connects.iter().any(|e| e["host"] == "name.corp.test"
        && e["via"] == "supervisor"
        && e["action"] == "gateway"));
    assert!(connects
        .iter()
        .any(|e| e["host"] == "denied.test" && e["action"] == "deny"));
}

/// A UDP socket on `ip` that collects what it receives.
fn udp_listener(ip: &str) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let socket = std::net::UdpSocket::bind((ip, 0)).unwrap();
    let addr = socket.local_addr().unwrap();
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = received.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok(n) = socket.recv(&mut buf) {
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    (addr, received)
}

#[test]
fn sends_that_carry_an_address_are_decided_too() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let (denied_tcp, denied_connections) = counting_listener("127.0.0.2");
    let (allowed_udp, allowed_datagrams) = udp_listener("127.0.0.1");
    let (denied_udp, denied_datagrams) = udp_listener("127.0.0.2");
    let scratch = Scratch::new("supervise-send");
    let binary = compile_static(&scratch, "ssend");
    // Everything is on loopback: 127.0.0.3 is routed, 127.0.0.1 direct, the rest denied, and
    // strict mode checks datagrams.
    let config = Config::new()
        .default("deny")
        .top("strict = true")
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy.addr])
        .rule(r#"cidr = "127.0.0.3/32""#, r#"via = "corp""#)
        .rule(r#"cidr = "127.0.0.1/32""#, r#"action = "direct""#)
        .deny("denied.test")
        .write(&scratch);
    let ssend = |args: &[&str]| {
        let mut full = vec!["run", "--config", config.to_str().unwrap(), "--"];
        full.push(binary.to_str().unwrap());
        full.extend_from_slice(args);
        let out = cli(&full).output();
        out.success().trim_end().to_string()
    };
    let port = |addr: SocketAddr| addr.port().to_string();
    let eacces = libc::EACCES.to_string();

    // TCP Fast Open opens a connection without connect(): decided like one.
    assert_eq!(ssend(&["tfo", "127.0.0.3", "80"]), "ok hello from origin");
    assert_eq!(proxy.request_lines(), ["CONNECT 127.0.0.3:80 HTTP/1.1"]);
    assert_eq!(
        ssend(&["tfo", "127.0.0.1", &port(origin.addr)]),
        "ok hello from origin"
    );
    assert_eq!(ssend(&["tfo", "127.0.0.2", &port(denied_tcp)]), eacces);

    // Datagrams: sendto, sendmsg (two iovecs) and sendmmsg, each destination checked.
    assert_eq!(ssend(&["udp", "127.0.0.1", &port(allowed_udp)]), "sent 4");
    assert_eq!(ssend(&["msg", "127.0.0.1", &port(allowed_udp)]), "sent 4");
    assert_eq!(ssend(&["udp", "127.0.0.2", &port(denied_udp)]), eacces);
    assert_eq!(ssend(&["msg", "127.0.0.2", &port(denied_udp)]), eacces);
    assert_eq!(
        ssend(&[
            "mmsg",
            "127.0.0.1",
            &port(allowed_udp),
            "127.0.0.2",
            &port(denied_udp)
        ]),
        "sent 1 lens 5 0"
    );
    // A resolver of its own on an unconnected socket (musl's): a denied name never leaves.
    assert_eq!(ssend(&["dns", "denied.test"]), eacces);

    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        *allowed_datagrams.lock().unwrap(),
        ["ping", "ping", "first"]
    );
    assert!(denied_datagrams.lock().unwrap().is_empty());
    assert_eq!(denied_connections.load(Ordering::Relaxed), 0);
    let log = scratch.log();
    let connects = events(&log, "connect");
    let tcp: Vec<_> = connects
        .iter()
        .filter(|e| e["proto"] == "tcp")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(tcp, ["gateway", "direct", "deny"], "{log:#?}");
    let refused_udp = connects.iter().filter(|e| e["proto"] == "udp").count();
    assert_eq!(refused_udp, 3, "{log:#?}");
    assert!(
        connects.iter().all(|e| e["via"] == "supervisor"),
        "{log:#?}"
    );
}

#[test]
fn a_gateway_that_hangs_for_one_thread_does_not_hold_up_another() {
    let origin = Origin::start("origin");
    let hanging = ConnectProxy::start(
        origin.addr,
        ProxyBehaviour::Trickle {
            bytes: Vec::new(),
            pause_ms: 0,
            then_hang: true,
        },
    );
    let scratch = Scratch::new("supervise-two");
    let binary = compile_static(&scratch, "stwo");
    let config = Config::new()
        .default("deny")
        .log(scratch.log_path())
        .gateway("corp", "http", &[hanging.addr])
        .gateway_option("connect_timeout_ms = 3000")
        .rule(r#"cidr = "127.0.0.3/32""#, r#"via = "corp""#)
        .rule(r#"cidr = "127.0.0.1/32""#, r#"action = "direct""#)
        .write(&scratch);
    let port = origin.addr.port().to_string();
    let out = cli(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--",
        binary.to_str().unwrap(),
        "127.0.0.3",
        "80",
        "127.0.0.1",
        &port,
    ])
    .output();
    let lines: Vec<String> = out.success().lines().map(str::to_string).collect();
    // The slow connect waits out the gateway's 3 s handshake timeout; the fast one, made
    // 200 ms after it, is answered first.
    assert_eq!(lines[1], "fast ok", "{lines:?}");
    assert_eq!(lines[2], format!("slow {}", libc::ETIMEDOUT), "{lines:?}");
    // The log names the program's process (not a thread of it, not the supervisor).
    let pid: u64 = lines[0].strip_prefix("pid ").unwrap().parse().unwrap();
    let log = scratch.log();
    let connects = events(&log, "connect");
    assert_eq!(connects.len(), 2, "{log:#?}");
    assert!(connects.iter().all(|e| e["pid"] == pid), "{log:#?}");
}

#[test]
fn a_static_glibc_program_resolves_routed_names_through_the_supervisor() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("supervise-resolve");
    let binary = compile_static(&scratch, "sresolve");
    let config = corp_test_via(&scratch, proxy.addr);
    let port = origin.addr.port().to_string();
    // No DNS server runs (the tests' resolv.conf names 127.0.0.1): only the supervisor's
    // resolver can answer the static resolver's query.
    let out = cli(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--",
        binary.to_str().unwrap(),
        "api.corp.test",
        &port,
        "denied.test",
        &port,
    ])
    .output();
    let lines: Vec<String> = out.success().lines().map(str::to_string).collect();
    assert_eq!(lines[0], "ok hello from origin", "{}", out.describe());
    assert_eq!(lines[1], format!("connect {}", libc::EACCES), "{lines:?}");
    assert_eq!(
        proxy.request_lines(),
        [format!("CONNECT api.corp.test:{port} HTTP/1.1")]
    );
    let log = scratch.log();
    let connects = events(&log, "connect");
    let summary: Vec<_> = connects
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap_or(""),
                e["action"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("api.corp.test", "gateway"), ("denied.test", "deny")],
        "{log:#?}"
    );
}

#[test]
fn the_supervisor_logs_where_log_and_the_environment_say() {
    let origin = Origin::start("origin");
    let scratch = Scratch::new("supervise-log");
    let binary = compile_static(&scratch, "sconn");
    // The config logs to stderr; --log and MCP_REDIRECT_LOG override it, as for the library.
    let config = Config::new()
        .default("deny")
        .log("stderr")
        .rule(r#"cidr = "127.0.0.1/32""#, r#"action = "direct""#)
        .and(&format!("port = {}", origin.addr.port()))
        .write(&scratch);
    let port = origin.addr.port().to_string();
    let target = [binary.to_str().unwrap(), "127.0.0.1", &port];
    let by_flag = scratch.dir.join("by-flag.jsonl");
    let mut args = vec!["run", "--config", config.to_str().unwrap()];
    args.extend(["--log", by_flag.to_str().unwrap(), "--"]);
    args.extend(target);
    let out = cli(&args).output();
    assert_eq!(out.success().trim_end(), "ok hello from origin");
    let by_env = scratch.dir.join("by-env.jsonl");
    let mut args = vec!["run", "--config", config.to_str().unwrap(), "--"];
    args.extend(target);
    let out = cli(&args)
        .env("MCP_REDIRECT_LOG", by_env.to_str().unwrap())
        .output();
    assert_eq!(out.success().trim_end(), "ok hello from origin");
    for file in [by_flag, by_env] {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let line: serde_json::Value =
            serde_json::from_str(text.lines().next().unwrap_or("{}")).unwrap();
        assert_eq!(line["via"], "supervisor", "{}: {text}", file.display());
        assert_eq!(line["action"], "direct", "{}: {text}", file.display());
    }
}
