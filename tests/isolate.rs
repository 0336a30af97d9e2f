//! `mcp-redirect run --isolate` (`docs/supervisor.md`): a server that listens in its namespace
//! is out of reach unless `--publish`ed; bubblewrap inside it keeps the network the supervisor
//! gives; options that cannot go together are refused. (What gets out of the namespace, seen
//! on the wire: `tests/zero_leak.rs`. The escaping program: `tests/boundary.rs`.)

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::gateways::{ConnectProxy, ProxyBehaviour};
use crate::support::*;

/// A port nothing listens on now, on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `curl` from the test's own namespace, until it gets an answer or `patience` runs out.
fn fetch_from_outside(url: &str, patience: Duration) -> Option<String> {
    let start = Instant::now();
    loop {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "2", url])
            .output()
            .unwrap();
        if out.status.success() {
            return Some(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if start.elapsed() > patience {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The arguments that run `setpriv` as `nobody` before `cli_exe()`, or nothing for root.
fn as_user(user: &str) -> Vec<&'static str> {
    match user {
        "nobody" => vec![
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            cli_exe(),
        ],
        _ => Vec::new(),
    }
}

fn launcher(user: &str) -> &'static str {
    if user == "nobody" {
        "setpriv"
    } else {
        cli_exe()
    }
}

/// An HTTP server in the namespace (Python's, on its loopback) is reached from outside through
/// `--publish`, as root and as `nobody`; without it, the same port outside finds nothing.
#[test]
fn a_server_in_the_namespace_is_reached_only_through_publish() {
    let scratch = Scratch::new("isolate-publish");
    let config = Config::new().default("deny").log("off").write(&scratch);
    let www = scratch.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("hello.txt"), "served from inside\n").unwrap();
    for user in ["root", "nobody"] {
        for published in [true, false] {
            let port = free_port().to_string();
            let mut args = as_user(user);
            args.extend(["run", "--isolate", "--config", config.to_str().unwrap()]);
            if published {
                args.extend(["--publish", &port]);
            }
            let www = www.to_str().unwrap();
            args.extend([
                "--",
                "python3",
                "-m",
                "http.server",
                &port,
                "--bind",
                "127.0.0.1",
                "--directory",
                www,
            ]);
            let mut server = Run::new(launcher(user), &args).without_preload().spawn();
            let url = format!("http://127.0.0.1:{port}/hello.txt");
            let patience = Duration::from_secs(if published { 10 } else { 2 });
            let got = fetch_from_outside(&url, patience);
            // The server was up all along (it is killed, not found dead).
            assert!(
                server.try_wait().unwrap().is_none(),
                "{user}: the server ran"
            );
            let _ = server.kill();
            let _ = server.wait();
            if published {
                assert_eq!(got.as_deref(), Some("served from inside\n"), "{user}");
            } else {
                assert_eq!(got, None, "{user}: reached without --publish");
            }
        }
    }
}

/// Denies everything but `*.example.test`, which goes through the CONNECT proxy at `proxy`;
/// no log.
fn example_test_via_corp(scratch: &Scratch, proxy: std::net::SocketAddr) -> std::path::PathBuf {
    Config::new()
        .default("deny")
        .log("off")
        .gateway("corp", "http", &[proxy])
        .via("*.example.test", "corp")
        .write(scratch)
}

/// bubblewrap under `--isolate` (its file system sandbox, our network): curl inside both
/// reaches the origin through the gateway, as root (bubblewrap in a user namespace of its own)
/// and as `nobody`.
#[test]
fn bubblewrap_inside_isolate_keeps_the_supervisors_network() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("isolate-bwrap");
    let config = example_test_via_corp(&scratch, proxy.addr);
    let bwrap = Path::new("/usr/bin/bwrap");
    assert!(bwrap.exists(), "bubblewrap (scripts/test-packages.txt)");
    for user in ["root", "nobody"] {
        let mut args = as_user(user);
        args.extend([
            "run",
            "--isolate",
            "--config",
            config.to_str().unwrap(),
            "--",
            "bwrap",
            "--unshare-user",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--",
            "curl",
            "-sS",
            "--max-time",
            "10",
            "http://api.example.test/",
        ]);
        let out = Run::new(launcher(user), &args).without_preload().output();
        assert_eq!(out.success(), "hello from origin", "{user}");
        // curl's getaddrinfo connects a UDP socket to the fake address to sort it (nothing is
        // sent): refused and logged, but no notice for that.
        assert!(
            !out.stderr.contains("mcp-redirect:"),
            "{user}: {}",
            out.describe()
        );
    }
}

/// `--isolate` needs the supervisor, and `--publish` needs `--isolate`: both refused (exit 2)
/// before anything starts.
#[test]
fn options_that_cannot_go_together_are_refused() {
    let scratch = Scratch::new("isolate-options");
    let config = Config::new().default("deny").write(&scratch);
    let config = config.to_str().unwrap();
    for (args, says) in [
        (
            &["--isolate", "--mode", "preload"][..],
            "--isolate needs the supervisor: it cannot go with --mode preload",
        ),
        (&["--publish", "8080"][..], "--isolate"),
        (
            &["--isolate", "--publish", "no:such"][..],
            "--publish no:such: expected PORT, IPv4:PORT or [IPv6]:PORT",
        ),
    ] {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        full.extend(["--config", config, "--", "true"]);
        let out = Run::new(cli_exe(), &full).without_preload().output();
        assert_eq!(out.code, Some(2), "{}", out.describe());
        assert!(out.stderr.contains(says), "{}", out.describe());
    }
}

/// Event loops register a socket after `connect()` returns, so they watch the socket handed in
/// under `--isolate`: Node's fetch and Python's asyncio, three requests at once each, and a Go
/// program (its netpoller, its own resolver), all through the gateway.
#[test]
fn event_loops_and_go_use_the_socket_handed_in() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("isolate-loops");
    let config = example_test_via_corp(&scratch, proxy.addr);
    let url = format!("http://api.example.test:{}/", origin.addr.port());
    let isolated = |program: &str, args: &[&str]| {
        let mut full = vec![
            "run",
            "--isolate",
            "--config",
            config.to_str().unwrap(),
            "--",
        ];
        full.push(program);
        full.extend_from_slice(args);
        Run::new(cli_exe(), &full).without_preload().output()
    };
    let node = format!(
        r#"Promise.all([1, 2, 3].map(() => fetch("{url}").then(r => r.text())))
  .then(texts => console.log(texts.join(",")), e => {{ console.log("failed", e.cause ? e.cause.code : e.message); process.exitCode = 1; }});"#
    );
    let out = isolated("node", &["-e", &node]);
    assert_eq!(
        out.success().trim(),
        "hello from origin,hello from origin,hello from origin",
        "{}",
        out.describe()
    );
    let python = format!(
        r#"
import asyncio
async def one():
    r, w = await asyncio.open_connection("api.example.test", {port})
    w.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    return (await r.read()).split(b"\r\n\r\n")[-1].decode()
async def main():
    print(",".join(await asyncio.gather(one(), one(), one())))
asyncio.run(main())
"#,
        port = origin.addr.port()
    );
    let out = isolated("python3", &["-c", &python]);
    assert_eq!(
        out.success().trim(),
        "hello from origin,hello from origin,hello from origin",
        "{}",
        out.describe()
    );
    let binary = build_go_fetch(&scratch);
    let out = isolated(binary.to_str().unwrap(), &[&url]);
    assert_eq!(
        out.success().trim(),
        "ok hello from origin",
        "{}",
        out.describe()
    );
    assert_eq!(
        proxy.request_lines().len(),
        7,
        "every request went through the gateway"
    );
}

/// Where no network namespace can be made (here: a user namespace whose limit of network
/// namespaces is 0), `--isolate` does not start the program: exit 2, and the step that failed.
#[test]
fn without_a_namespace_the_program_is_not_started() {
    let scratch = Scratch::new("isolate-refused");
    let config = Config::new().default("deny").log("off").write(&scratch);
    let marker = scratch.dir.join("started");
    let script = format!(
        "echo 0 > /proc/sys/user/max_net_namespaces && exec {cli_exe} run --isolate --config {} -- touch {}",
        config.display(),
        marker.display(),
        cli_exe = cli_exe(),
    );
    let out = Run::new(
        "unshare",
        &["--user", "--map-root-user", "sh", "-c", &script],
    )
    .without_preload()
    .output();
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(
        out.stderr.contains(
            "mcp-redirect: cannot supervise the command: cannot isolate its network: unshare(CLONE_NEWUSER | CLONE_NEWNET): "
        ),
        "{}",
        out.describe()
    );
    assert!(!marker.exists(), "the program must not have run");
}
