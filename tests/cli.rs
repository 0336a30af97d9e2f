//! The `mcp-redirect` tool, run for real: `run` wraps programs (stdio, exit status and signals
//! are theirs), refuses bad configs and programs that would ignore the library; `check`,
//! `explain` and `init` say what the library will do, and agree with what it does.

use std::path::PathBuf;
use std::process::Command;

use crate::support::*;

/// The tool, run in the tests' private mount namespace (no DNS leaves the machine). The
/// library it finds next to itself is built first.
fn cli(args: &[&str]) -> Run {
    library();
    let mut full = vec![cli_exe()];
    full.extend_from_slice(args);
    Run::new(full[0], &full[1..]).without_preload()
}

fn gateway_config(scratch: &Scratch, proxy: std::net::SocketAddr) -> PathBuf {
    Config::new()
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy])
        .deny("denied.example.test")
        .via("*.example.test", "corp")
        .rule(r#"cidr = "127.0.0.0/8""#, r#"action = "direct""#)
        .write(scratch)
}

#[test]
fn run_wraps_curl_through_the_gateway() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("cli-curl");
    let config = gateway_config(&scratch, proxy.addr);
    let out = cli(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--",
        "curl",
        "-sS",
        "--max-time",
        "20",
        "http://api.example.test/",
    ])
    .output();
    assert_eq!(out.success(), "hello from origin");
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT api.example.test:80 HTTP/1.1"]
    );
}

#[test]
fn run_passes_an_mcp_stdio_conversation_through_unchanged() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("cli-stdio");
    let config = gateway_config(&scratch, proxy.addr);
    // An MCP-style stdio server: one JSON-RPC request per line on stdin, a fetch, one answer per
    // line on stdout; logs on stderr only.
    let server = scratch.dir.join("server.py");
    std::fs::write(
        &server,
        r#"
import json, sys, urllib.request
for line in sys.stdin:
    request = json.loads(line)
    body = urllib.request.urlopen(request["params"]["url"], timeout=20).read().decode()
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": {"text": body}}) + "\n")
    sys.stdout.flush()
    print("served", request["id"], file=sys.stderr)
"#,
    )
    .unwrap();
    let input = concat!(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"url":"http://api.example.test/a"}}"#,
        "\n",
        r#"{"jsonrpc":"2.0","id":"two","method":"tools/call","params":{"url":"http://docs.example.test/b"}}"#,
        "\n"
    );
    let mut child = Command::new(cli_exe())
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--",
            "python3",
            server.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    library();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        concat!(
            r#"{"jsonrpc": "2.0", "id": 1, "result": {"text": "hello from origin"}}"#,
            "\n",
            r#"{"jsonrpc": "2.0", "id": "two", "result": {"text": "hello from origin"}}"#,
            "\n"
        ),
        "stdout carries exactly the server's bytes"
    );
    assert_eq!(
        proxy.request_lines(),
        [
            "CONNECT api.example.test:80 HTTP/1.1",
            "CONNECT docs.example.test:80 HTTP/1.1"
        ]
    );
}

#[test]
fn run_gives_the_programs_exit_status_and_signals() {
    let scratch = Scratch::new("cli-status");
    let config = Config::new().default("direct").write(&scratch);
    let config = config.to_str().unwrap();
    let out = cli(&["run", "--config", config, "--", "sh", "-c", "exit 7"]).output();
    assert_eq!(out.code, Some(7));
    // exec: the tool's process becomes the program, so a signal ends "it" the same way.
    use std::os::unix::process::ExitStatusExt;
    library();
    let mut child = Command::new(cli_exe())
        .args(["run", "--config", config, "--", "sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: kill with a pid and a signal number.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

#[test]
fn run_refuses_an_invalid_config_before_starting_anything() {
    let scratch = Scratch::new("cli-invalid");
    let config = scratch.config("[[rules]]\nhost = \"a.test\"\nvia = \"nowhere\"\n");
    let marker = scratch.dir.join("started");
    let out = cli(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--",
        "touch",
        marker.to_str().unwrap(),
    ])
    .output();
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("rules[0].via: line 3, column 1: no gateway named \"nowhere\""),
        "{}",
        out.stderr
    );
    assert!(!marker.exists(), "the command must not start");
}

#[test]
fn run_dry_run_prints_absolute_paths_and_one_preload_entry() {
    let scratch = Scratch::new("cli-dry");
    let config = Config::new().default("direct").write(&scratch);
    let lib = std::fs::canonicalize(library()).unwrap();
    let out = cli(&[
        "run",
        "--dry-run",
        "--config",
        config.to_str().unwrap(),
        "--log",
        "stderr",
        "--",
        "node",
        "-e",
        "it's",
    ])
    .env("LD_PRELOAD", format!("/usr/lib/other.so:{}", lib.display()))
    .output();
    let text = out.success();
    assert!(
        text.contains(&format!("LD_PRELOAD={}:/usr/lib/other.so\n", lib.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("MCP_REDIRECT_CONFIG={}\n", config.display())),
        "{text}"
    );
    assert!(text.contains("MCP_REDIRECT_LOG=stderr\n"), "{text}");
    assert!(text.ends_with("exec node -e 'it'\\''s'\n"), "{text}");
}

/// Compiles a statically linked program into the scratch directory.
fn static_binary(scratch: &Scratch) -> PathBuf {
    let source = scratch.dir.join("hello.c");
    std::fs::write(
        &source,
        "#include <stdio.h>\nint main(void) { puts(\"static hello\"); return 0; }\n",
    )
    .unwrap();
    let binary = scratch.dir.join("hello-static");
    let status = Command::new("cc")
        .args(["-static", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success(), "cc -static");
    binary
}

#[test]
fn run_sees_that_a_static_binary_would_ignore_the_library() {
    // With --mode preload (auto would supervise it: tests/supervise.rs).
    let scratch = Scratch::new("cli-static");
    let config = Config::new()
        .default("corp")
        .gateway("corp", "http", &["127.0.0.1:3128"])
        .gateway_option(r#"username = "u""#)
        .gateway_option(r#"password_env = "PW""#)
        .rule(r#"host = ".internal.test""#, r#"action = "direct""#)
        .write(&scratch);
    let binary = static_binary(&scratch);
    let config = config.to_str().unwrap();
    let bin = binary.to_str().unwrap();
    let out = cli(&[
        "run", "--mode", "preload", "--strict", "--config", config, "--", bin,
    ])
    .env("PW", "s3cret")
    .output();
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert!(
        out.stderr.contains("will not load the library")
            && out.stderr.contains("statically linked"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("static hello"));
    // Without --strict it runs, with the proxy variables as a fallback (password redacted when shown).
    let out = cli(&[
        "run",
        "--mode",
        "preload",
        "--dry-run",
        "--config",
        config,
        "--",
        bin,
    ])
    .env("PW", "s3cret")
    .output();
    let text = out.success();
    assert!(
        text.contains("HTTPS_PROXY=http://u:<redacted>@127.0.0.1:3128\n"),
        "{text}"
    );
    assert!(
        text.contains("NO_PROXY=localhost,127.0.0.0/8,::1,.internal.test\n"),
        "{text}"
    );
    assert!(!text.contains("s3cret"));
    assert!(
        out.stderr
            .contains("fallback: HTTPS_PROXY, https_proxy, HTTP_PROXY, http_proxy, ALL_PROXY, all_proxy, NO_PROXY, no_proxy"),
        "{}",
        out.stderr
    );
    let out = cli(&["run", "--mode", "preload", "--config", config, "--", bin])
        .env("PW", "s3cret")
        .output();
    assert_eq!(out.success().trim(), "static hello");
}

#[test]
fn run_sees_that_a_setuid_binary_would_ignore_the_library() {
    let scratch = Scratch::new("cli-setuid");
    let config = Config::new().default("direct").write(&scratch);
    let copy = scratch.dir.join("true-setuid");
    std::fs::copy("/bin/true", &copy).unwrap();
    use std::os::unix::fs::PermissionsExt;
    // setuid to another user (nobody): exec changes identity, so the loader ignores LD_PRELOAD.
    std::os::unix::fs::chown(&copy, Some(65534), None).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let out = cli(&[
        "run",
        "--strict",
        "--config",
        config.to_str().unwrap(),
        "--",
        copy.to_str().unwrap(),
    ])
    .output();
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert!(out.stderr.contains("setuid"), "{}", out.stderr);
    // A script is judged by its interpreter: a python script is fine.
    let script = scratch.dir.join("tool.py");
    std::fs::write(&script, "#!/usr/bin/env python3\nprint('ran')\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = cli(&[
        "run",
        "--strict",
        "--config",
        config.to_str().unwrap(),
        "--",
        script.to_str().unwrap(),
    ])
    .output();
    assert_eq!(out.success().trim(), "ran");
    let out = cli(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--",
        "no-such-command-anywhere",
    ])
    .output();
    assert_eq!(out.code, Some(127));
}

#[test]
fn check_reports_problems_with_key_paths_and_lines() {
    let scratch = Scratch::new("cli-check");
    // Literal text: the message names the line of the bad regex.
    let bad = scratch.config("[[rules]]\nhost = \"a.test\"\naction = \"direct\"\n\n[[rules]]\nhost_regex = \"(unclosed\"\naction = \"deny\"\n");
    let out = cli(&["check", "--config", bad.to_str().unwrap()]).output();
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("rules[1].host_regex: line 6, column 1: unclosed group"),
        "{}",
        out.stderr
    );

    let warned = Config::new()
        .gateway("spare", "socks5", &["127.0.0.1:1080"])
        .deny(".example.test")
        .rule(r#"host = "api.example.test""#, r#"action = "direct""#)
        .and("port = 443")
        .write(&scratch);
    let out = cli(&["check", "--config", warned.to_str().unwrap()]).output();
    let text = out.success();
    assert!(
        text.contains("[1] host=api.example.test port=443 -> direct"),
        "{text}"
    );
    assert!(text.contains("warning: rules[1] (host=api.example.test port=443) can never match: rules[0] (host=.example.test)"), "{text}");
    assert!(
        text.contains("warning: gateways.spare is used by no rule"),
        "{text}"
    );
    let out = cli(&[
        "check",
        "--deny-warnings",
        "--config",
        warned.to_str().unwrap(),
    ])
    .output();
    assert_eq!(out.code, Some(1));

    // A gateway whose handshakes stay inside connect() says so.
    let inline = Config::new()
        .top("async_handshake = false")
        .gateway("corp", "http", &["127.0.0.1:3128"])
        .write(&scratch);
    let out = cli(&["check", "--config", inline.to_str().unwrap()]).output();
    assert!(
        out.stdout.contains("  corp (http): 127.0.0.1:3128; timeout 10000 ms; handshake inside connect() on non-blocking sockets too\n"),
        "{}",
        out.describe()
    );
}

#[test]
fn check_connect_tries_every_endpoint() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("cli-connect");
    let config = Config::new()
        .default("corp")
        .gateway("corp", "http", &[proxy.addr])
        .gateway("dead", "http", &[closed_port()])
        .rule("port = 1", r#"via = "dead""#)
        .write(&scratch);
    let out = cli(&[
        "check",
        "--connect",
        "--probe",
        "probe.example.test:443",
        "--config",
        config.to_str().unwrap(),
    ])
    .output();
    assert_eq!(
        out.code,
        Some(2),
        "a dead endpoint is an error\n{}",
        out.describe()
    );
    assert!(
        out.stdout.contains(&format!(
            "corp {0}: ok, http handshake to probe.example.test:443",
            proxy.addr
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("dead") && out.stdout.contains("FAILED"),
        "{}",
        out.stdout
    );
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT probe.example.test:443 HTTP/1.1"]
    );
}

#[test]
fn explain_says_what_the_library_then_does() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("cli-explain");
    let config = gateway_config(&scratch, proxy.addr);
    let targets = [
        ("api.example.test", 80),
        ("denied.example.test", 443),
        ("127.0.0.1", origin.addr.port()),
    ];
    // What the library does, per the log...
    let script = format!(
        "import socket\nfor host, port in {:?}:\n    try:\n        socket.create_connection((host, port), timeout=20).close()\n    except OSError:\n        pass\n",
        targets.iter().map(|(h, p)| (h.to_string(), *p)).collect::<Vec<_>>()
    );
    let out = cli(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--",
        "python3",
        "-c",
        &script,
    ])
    .output();
    out.success();
    let log = scratch.log();
    let connects = events(&log, "connect");
    assert_eq!(connects.len(), 3);
    // ...and what explain says, for the same targets.
    for ((host, port), logged) in targets.iter().zip(connects) {
        let target = format!("{host}:{port}");
        let out = cli(&[
            "explain",
            "--json",
            "--config",
            config.to_str().unwrap(),
            &target,
        ])
        .output();
        let explained: serde_json::Value = serde_json::from_str(out.success()).unwrap();
        assert_eq!(
            explained["connect"]["rule"]["index"], logged["rule"]["index"],
            "{target}"
        );
        assert_eq!(
            explained["connect"]["rule"]["pattern"], logged["rule"]["pattern"],
            "{target}"
        );
        assert_eq!(
            explained["connect"]["decision"]["action"], logged["action"],
            "{target}"
        );
    }
    let out = cli(&[
        "explain",
        "--config",
        config.to_str().unwrap(),
        "api.example.test:443",
    ])
    .output();
    let text = out.success();
    assert!(
        text.contains("rules[0] host=denied.example.test: no, the host does not match"),
        "{text}"
    );
    assert!(text.contains(&format!("connect: gateway by rules[1] host=*.example.test: gateway corp at {}, asked for api.example.test:443", proxy.addr)), "{text}");
}

#[test]
fn init_writes_configs_that_check_accepts() {
    let scratch = Scratch::new("cli-init");
    let out = cli(&["init"]).output();
    let starter = scratch.dir.join("starter.toml");
    std::fs::write(&starter, out.success()).unwrap();
    cli(&["check", "--config", starter.to_str().unwrap()])
        .output()
        .success();

    let out = cli(&["init", "--from-env"])
        .env("HTTPS_PROXY", "http://u:hunter2@127.0.0.1:3128")
        .env("NO_PROXY", ".internal.test,10.0.0.0/8")
        .output();
    let text = out.success().to_string();
    assert!(!text.contains("hunter2"));
    assert!(
        text.contains("password_env = \"MCP_REDIRECT_HTTPS_PROXY_PASSWORD\""),
        "{text}"
    );
    let converted = scratch.dir.join("converted.toml");
    std::fs::write(&converted, &text).unwrap();
    let out = cli(&["check", "--config", converted.to_str().unwrap()])
        .env("MCP_REDIRECT_HTTPS_PROXY_PASSWORD", "x")
        .output();
    let summary = out.success();
    assert!(
        summary.contains("host=.internal.test -> direct")
            && summary.contains("default: gateway https_proxy"),
        "{summary}"
    );
}

#[test]
fn run_strict_says_what_it_cannot_check() {
    let scratch = Scratch::new("cli-strict-note");
    let config = Config::new().default("direct").write(&scratch);
    let out = cli(&[
        "run",
        "--strict",
        "--config",
        config.to_str().unwrap(),
        "--",
        "true",
    ])
    .output();
    out.success();
    assert!(
        out.stderr.contains("children that clear LD_PRELOAD"),
        "{}",
        out.stderr
    );
}

/// Exit codes as a shell gives them, decided by what went wrong, not by the message's words:
/// 127 when there is nothing to execute, 126 when there is something that cannot be run.
/// Nothing starts in either case.
#[test]
fn run_exits_127_for_a_missing_command_and_126_for_one_that_cannot_run() {
    let scratch = Scratch::new("cli-exit-codes");
    let config = Config::new().default("direct").write(&scratch);
    let config = config.to_str().unwrap();
    let write = |name: &str, text: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let path = scratch.dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.to_str().unwrap().to_string()
    };
    let missing_interpreter = write("bad-interpreter", "#!/nonexistent/sh\n", 0o755);
    let not_executable = write("plain.sh", "#!/bin/sh\necho started\n", 0o644);
    let not_a_program = write("notes.txt", "echo started\n", 0o755);
    let directory = scratch.dir.to_str().unwrap().to_string();
    let cases: [(&str, &str, i32); 6] = [
        (
            "/nonexistent",
            "/nonexistent: no such file or directory",
            127,
        ),
        (
            "no-such-command-xyz",
            "no-such-command-xyz: command not found",
            127,
        ),
        (
            &missing_interpreter,
            "/nonexistent/sh: no such file or directory",
            127,
        ),
        (
            &not_executable,
            "permission denied (it is not executable)",
            126,
        ),
        (&directory, "permission denied (it is a directory)", 126),
        (&not_a_program, "not an ELF executable or script", 126),
    ];
    for (command, message, code) in cases {
        let out = cli(&["run", "--config", config, "--", command]).output();
        assert_eq!(out.code, Some(code), "{}", out.describe());
        assert!(out.stderr.contains(message), "{}", out.describe());
        assert!(!out.stdout.contains("started"), "{}", out.describe());
    }
}

/// `--config`, then `$MCP_REDIRECT_CONFIG`, then the user's config below `$XDG_CONFIG_HOME`
/// (or `$HOME/.config`), then the system's; `check` says which on its first line.
#[test]
fn check_says_which_config_it_found_and_where() {
    let scratch = Scratch::new("cli-discovery");
    let write = |relative: &str, text: &str| {
        let path = scratch.dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    };
    let xdg = scratch.dir.join("xdg");
    let user = write("xdg/mcp-redirect/config.toml", "default = \"deny\"\n");
    let home = scratch.dir.join("home");
    let home_config = write(
        "home/.config/mcp-redirect/config.toml",
        "default = \"deny\"\n",
    );
    let named = write("named.toml", "default = \"direct\"\n");
    let variable = write("variable.toml", "default = \"direct\"\n");
    let first_line = |run: Run| {
        let out = run.output();
        out.success().lines().next().unwrap().to_string()
    };
    let check = |args: &[&str]| {
        let mut full = vec!["check"];
        full.extend_from_slice(args);
        cli(&full).env("XDG_CONFIG_HOME", &xdg).env("HOME", &home)
    };
    assert_eq!(
        first_line(check(&[])),
        format!("source: {} (from $XDG_CONFIG_HOME)", user.display())
    );
    assert_eq!(
        first_line(check(&[]).env("MCP_REDIRECT_CONFIG", &variable)),
        format!("source: {} (from $MCP_REDIRECT_CONFIG)", variable.display())
    );
    assert_eq!(
        first_line(
            check(&["--config", named.to_str().unwrap()]).env("MCP_REDIRECT_CONFIG", &variable)
        ),
        format!("source: {} (from --config)", named.display())
    );
    assert_eq!(
        first_line(check(&[]).env("XDG_CONFIG_HOME", "")),
        format!(
            "source: {} (from $HOME/.config, $XDG_CONFIG_HOME being unset)",
            home_config.display()
        )
    );
}

/// A config in the current directory is never used: whoever wrote that directory would decide
/// where the user's connections go.
#[test]
fn a_config_in_the_current_directory_is_ignored() {
    let scratch = Scratch::new("cli-cwd");
    for name in ["mcp-redirect.toml", "config.toml", ".mcp-redirect.toml"] {
        std::fs::write(scratch.dir.join(name), "default = \"deny\"\n").unwrap();
    }
    std::fs::create_dir_all(scratch.dir.join("mcp-redirect")).unwrap();
    std::fs::write(
        scratch.dir.join("mcp-redirect/config.toml"),
        "default = \"deny\"\n",
    )
    .unwrap();
    let out = cli(&["check"]).current_dir(&scratch.dir).output();
    let first = out.success().lines().next().unwrap().to_string();
    assert!(
        first.starts_with(
            "source: no configuration (no --config or $MCP_REDIRECT_CONFIG, none at /nonexistent/"
        ) && first.ends_with(" or /etc/mcp-redirect/mcp-redirect.toml)"),
        "{first}"
    );
    let dry = cli(&["run", "--dry-run", "--", "true"])
        .current_dir(&scratch.dir)
        .output();
    assert!(
        !dry.success().contains("MCP_REDIRECT_CONFIG"),
        "{}",
        dry.stdout
    );
}

/// `run` names the file it found to the library (which reads only MCP_REDIRECT_CONFIG and the
/// proxy environment), and the program's connections follow it.
#[test]
fn run_passes_the_config_it_found_to_the_library() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("cli-run-discovered");
    let xdg = scratch.dir.join("xdg");
    std::fs::create_dir_all(xdg.join("mcp-redirect")).unwrap();
    let config = xdg.join("mcp-redirect/config.toml");
    std::fs::copy(gateway_config(&scratch, proxy.addr), &config).unwrap();
    let dry = cli(&["run", "--dry-run", "--", "true"])
        .env("XDG_CONFIG_HOME", &xdg)
        .output();
    assert!(
        dry.success()
            .contains(&format!("\nMCP_REDIRECT_CONFIG={}\n", config.display())),
        "{}",
        dry.stdout
    );
    let out = cli(&[
        "run",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "20",
        "http://api.example.test/",
    ])
    .env("XDG_CONFIG_HOME", &xdg)
    .output();
    assert_eq!(out.success(), "hello from origin");
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT api.example.test:80 HTTP/1.1"]
    );
}

/// A tiny shared library of no consequence, to stand for something else a user preloads.
fn other_library(scratch: &Scratch) -> PathBuf {
    let source = scratch.dir.join("other.c");
    std::fs::write(&source, "int mcp_redirect_test_other_library = 1;\n").unwrap();
    let library = scratch.dir.join("libother.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .expect("cc");
    assert!(status.success());
    library
}

/// `eval "$(mcp-redirect env)"` puts the shell's later programs under the library with the
/// config it names (quoted: the path has a space and a quote), keeping what else was preloaded;
/// `eval "$(mcp-redirect env --off)"` takes it out again and leaves the rest.
#[test]
fn env_lines_put_a_shell_under_the_library_and_take_it_out() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("cli-env");
    let dir = scratch.dir.join("it's a dir");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::copy(gateway_config(&scratch, proxy.addr), &config).unwrap();
    let other = other_library(&scratch);
    let lib = std::fs::canonicalize(library()).unwrap();
    let script = r#"
        set -e
        export LD_PRELOAD="$OTHER"
        eval "$("$CLI" env --config "$CONFIG")"
        echo "on: $LD_PRELOAD|$MCP_REDIRECT_CONFIG"
        curl -sS --max-time 20 http://api.example.test/
        echo
        eval "$("$CLI" env --off)"
        echo "off: $LD_PRELOAD|${MCP_REDIRECT_CONFIG-unset}"
        unset LD_PRELOAD
        eval "$("$CLI" env --config "$CONFIG")"
        eval "$("$CLI" env --off)"
        echo "off again: ${LD_PRELOAD-unset}|${MCP_REDIRECT_CONFIG-unset}"
    "#;
    let out = Run::new("sh", &["-c", script])
        .without_preload()
        .env("CLI", cli_exe())
        .env("CONFIG", &config)
        .env("OTHER", &other)
        .output();
    assert_eq!(
        out.success(),
        format!(
            "on: {}:{}|{}\nhello from origin\noff: {}|unset\noff again: unset|unset\n",
            lib.display(),
            other.display(),
            config.display(),
            other.display()
        ),
        "{}",
        out.describe()
    );
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT api.example.test:80 HTTP/1.1"]
    );
}

/// An invalid config gives nothing to eval, and exit 2.
#[test]
fn env_prints_nothing_for_an_invalid_config() {
    let scratch = Scratch::new("cli-env-invalid");
    let config = scratch.config("[[rules]]\nhost = \"a.test\"\nvia = \"nowhere\"\n");
    let out = cli(&["env", "--config", config.to_str().unwrap()]).output();
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("no gateway named"), "{}", out.stderr);
}

/// The subcommands `mcp-redirect --help` lists (without `help`).
fn subcommands() -> Vec<String> {
    let help = cli(&["--help"]).output();
    let text = help.success();
    let commands = text
        .split("Commands:\n")
        .nth(1)
        .expect("--help lists its commands");
    commands
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// Completions for bash, zsh and fish, and the man pages, come from the clap definitions: every
/// subcommand is in each. The bash script loads and registers itself.
#[test]
fn completions_and_man_pages_cover_every_subcommand() {
    let names = subcommands();
    for expected in [
        "run",
        "check",
        "env",
        "wrap",
        "unwrap",
        "completions",
        "man",
    ] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    let scratch = Scratch::new("cli-completions");
    for shell in ["bash", "zsh", "fish"] {
        let out = cli(&["completions", shell]).output();
        let script = out.success();
        for name in &names {
            assert!(script.contains(name.as_str()), "{shell}: no {name}");
        }
    }
    let bash = scratch.dir.join("mcp-redirect.bash");
    std::fs::write(&bash, cli(&["completions", "bash"]).output().success()).unwrap();
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1" && complete -p mcp-redirect"#)
        .arg("bash")
        .arg(&bash)
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{loaded:?}");
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("mcp-redirect"));

    let page = cli(&["man"]).output();
    let page = page.success();
    assert!(page.contains(".TH mcp-redirect 1"), "{page}");
    for name in &names {
        assert!(
            page.contains(&format!("mcp\\-redirect\\-{}", name.replace('-', "\\-")))
                || page.contains(name.as_str()),
            "man: no {name}"
        );
    }
    let dir = scratch.dir.join("man1");
    cli(&["man", "--dir", dir.to_str().unwrap()])
        .output()
        .success();
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    let mut expected: Vec<String> = names
        .iter()
        .map(|n| format!("mcp-redirect-{n}.1"))
        .chain(["mcp-redirect.1".to_string()])
        .collect();
    expected.sort();
    assert_eq!(pages, expected);
    let wrap_page = std::fs::read_to_string(dir.join("mcp-redirect-wrap.1")).unwrap();
    assert!(wrap_page.contains("\\-\\-dry\\-run"), "{wrap_page}");
}
