//! `mcp-redirect run --isolate` (`docs/supervisor.md`): a server that listens in its namespace
//! is out of reach unless `--publish`ed; bubblewrap inside it keeps the network the supervisor
//! gives; options that cannot go together are refused. (What gets out of the namespace, seen
//! on the wire: `tests/zero_leak.rs`. The escaping program: `tests/boundary.rs`.)

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::gateways::{ConnectProxy, ProxyBehaviour};
use support::*;

const CLI: &str = env!("CARGO_BIN_EXE_mcp-redirect");

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

/// The arguments that run `setpriv` as `nobody` before `CLI`, or nothing for root.
fn as_user(user: &str) -> Vec<&'static str> {
    match user {
        "nobody" => vec![
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            CLI,
        ],
        _ => Vec::new(),
    }
}

fn launcher(user: &str) -> &'static str {
    if user == "nobody" {
        "setpriv"
    } else {
        CLI
    }
}

/// An HTTP server in the namespace (Python's, on its loopback) is reached from outside through
/// `--publish`, as root and as `nobody`; without it, the same port outside finds nothing.
#[test]
fn a_server_in_the_namespace_is_reached_only_through_publish() {
    let scratch = Scratch::new("isolate-publish");
    let config = scratch.config("default = \"deny\"\n[log]\npath = \"off\"\n");
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

/// bubblewrap under `--isolate` (its file system sandbox, our network): curl inside both
/// reaches the origin through the gateway, as root (bubblewrap in a user namespace of its own)
/// and as `nobody`.
#[test]
fn bubblewrap_inside_isolate_keeps_the_supervisors_network() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("isolate-bwrap");
    let config = scratch.config(&format!(
        "default = \"deny\"\n[log]\npath = \"off\"\n[gateways.corp]\nkind = \"http\"\nendpoints = [\"{}\"]\n[[rules]]\nhost = \"*.example.test\"\nvia = \"corp\"\n",
        proxy.addr
    ));
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
    let config = scratch.config("default = \"deny\"\n");
    let config = config.to_str().unwrap();
    let out = Run::new(
        CLI,
        &[
            "run",
            "--isolate",
            "--mode",
            "preload",
            "--config",
            config,
            "--",
            "true",
        ],
    )
    .without_preload()
    .output();
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(
        out.stderr
            .contains("--isolate needs the supervisor: it cannot go with --mode preload"),
        "{}",
        out.describe()
    );
    let out = Run::new(
        CLI,
        &["run", "--publish", "8080", "--config", config, "--", "true"],
    )
    .without_preload()
    .output();
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("--isolate"), "{}", out.describe());
    let out = Run::new(
        CLI,
        &[
            "run",
            "--isolate",
            "--publish",
            "no:such",
            "--config",
            config,
            "--",
            "true",
        ],
    )
    .without_preload()
    .output();
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(
        out.stderr
            .contains("--publish no:such: expected PORT, IPv4:PORT or [IPv6]:PORT"),
        "{}",
        out.describe()
    );
}
