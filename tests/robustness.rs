//! The library must never be the reason a program fails: tiny thread stacks, a stderr that the
//! program closed and reused. Small C programs, compiled here, do what real servers do.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

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
    let config = scratch.config(&format!(
        r#"
[log]
path = "{}"
[gateways.corp]
kind = "http"
endpoints = ["127.0.0.1:9"]
[[rules]]
host_regex = "(api|www|cdn)[0-9]*\\.(example|sample)\\.(test|invalid)"
via = "corp"
[[rules]]
cidr = "10.0.0.0/8"
action = "deny"
"#,
        scratch.log_path().display()
    ));
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
