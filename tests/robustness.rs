//! The library must never be the reason a program fails: tiny thread stacks, a stderr that the
//! program closed and reused. Small C programs, compiled here, do what real servers do.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// Compiles `tests/c/<name>.c` into the scratch directory.
fn compile(scratch: &Scratch, name: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(format!("{name}.c"));
    let binary = scratch.dir.join(name);
    let status = Command::new("cc")
        .args(["-O1", "-Wall", "-pthread", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("a C compiler (cc) is needed for these tests");
    assert!(status.success(), "compiling {}", source.display());
    binary
}

#[test]
fn the_first_call_may_come_from_a_thread_with_a_tiny_stack() {
    let scratch = Scratch::new("tiny-stack");
    let binary = compile(&scratch, "tiny_stack");
    // A config with a regex and several rules: loading it takes real stack.
    let config = Config::new()
        .log(scratch.log_path())
        .gateway("corp", "http", &["127.0.0.1:9"])
        .rule(
            r#"host_regex = "(api|www|cdn)[0-9]*\\.(example|sample)\\.(test|invalid)""#,
            r#"via = "corp""#,
        )
        .rule(r#"cidr = "10.0.0.0/8""#, r#"action = "deny""#)
        .write(&scratch);
    let out = Run::new(binary.to_str().unwrap(), &[])
        .config(&config)
        .output();
    let address = out.success().trim().to_string();
    assert!(
        address.starts_with("198.18.") || address.starts_with("198.19."),
        "{address}"
    );
}

#[test]
fn a_stderr_log_never_lands_in_a_file_that_took_fd_2() {
    let scratch = Scratch::new("stderr-reuse");
    let binary = compile(&scratch, "stderr_reuse");
    let data = scratch.dir.join("data.txt");
    let out = Run::new(binary.to_str().unwrap(), &[data.to_str().unwrap()])
        .env("MCP_REDIRECT_LOG", "stderr")
        .env("ALL_PROXY", "http://127.0.0.1:9")
        .output();
    // 192.0.2.1 is routed to a closed port: ECONNREFUSED, logged -- but not into the file.
    assert_eq!(out.success().trim(), "rc=-1 file=PRECIOUS");
}

fn gateway_config(scratch: &Scratch, proxy: std::net::SocketAddr) -> PathBuf {
    Config::new()
        .log(scratch.log_path())
        .gateway("g", "http", &[proxy])
        .via("*.example.test", "g")
        .write(scratch)
}

#[test]
fn sixty_four_threads_times_a_thousand_connects_through_a_gateway() {
    // A gateway that says 200 and closes: the client only needs its connect to succeed.
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(
        origin.addr,
        ProxyBehaviour::Raw(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()),
    );
    let scratch = Scratch::new("threads");
    let binary = compile(&scratch, "stress");
    let config = gateway_config(&scratch, proxy.addr);
    let out = Run::new(
        binary.to_str().unwrap(),
        &["threads", "64", "1000", "api.example.test", "443"],
    )
    .config(&config)
    .env("MCP_REDIRECT_LOG", "off")
    .output();
    assert_eq!(out.success().trim(), "64000");
    assert_eq!(proxy.requests().len(), 64_000);
}

#[test]
fn fork_while_other_threads_are_inside_hooks() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(
        origin.addr,
        ProxyBehaviour::Raw(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()),
    );
    let scratch = Scratch::new("forks");
    let binary = compile(&scratch, "stress");
    let config = gateway_config(&scratch, proxy.addr);
    // Every child must resolve and connect: a lock held across fork would hang it (and its
    // alarm would kill it).
    let out = Run::new(
        binary.to_str().unwrap(),
        &["forks", "200", "api.example.test", "443"],
    )
    .config(&config)
    .output();
    assert_eq!(out.success().trim(), "200");
}
