//! The boundary against a hostile program (`docs/threat-model.md`): a static and a dynamic
//! program (`tests/c/escape.c`) try every way out they know, under the supervisor as root and as
//! an unprivileged user, and under the preloaded library, which is no boundary and says so. The
//! table each run prints is the one the threat model quotes.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::*;

/// A listener the rules deny, counting the connections that reach it anyway.
fn denied_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr, count)
}

/// `tests/c/escape.c`, static (`-static`) or dynamic, in a directory everyone may read.
fn escape(scratch: &Scratch, linking: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/escape.c");
    let binary = scratch.dir.join(format!("escape-{linking}"));
    let mut cc = Command::new("cc");
    if linking == "static" {
        cc.arg("-static");
    }
    let status = cc
        .args(["-O1", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("cc");
    assert!(status.success(), "cc {}", source.display());
    binary
}

const ATTEMPTS: [&str; 13] = [
    "connect through libc",
    "connect by raw system call",
    "raw IP socket",
    "packet socket",
    "ptrace the supervisor",
    "open the supervisor's memory for writing",
    "process_vm_writev into the supervisor",
    "pidfd_getfd from the supervisor",
    "signal the supervisor",
    "io_uring",
    "enter the supervisor's network namespace",
    "network interfaces besides lo",
    "reached the denied listener",
];

/// What each attempt achieved: `name: outcome` lines, and whether the listener was reached.
fn outcomes(out: &Finished, reached: usize) -> Vec<String> {
    let mut lines: Vec<String> = out.success().lines().map(str::to_string).collect();
    lines.push(format!("reached the denied listener: {reached}"));
    lines
}

fn expected(outcomes: &[&str]) -> Vec<String> {
    ATTEMPTS
        .iter()
        .zip(outcomes)
        .map(|(name, outcome)| format!("{name}: {outcome}"))
        .collect()
}

/// What this machine's own network namespace shows besides `lo`, as `escape` says it.
fn interfaces_here() -> &'static str {
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap();
    let others = dev
        .lines()
        .skip(2)
        .filter(|line| line.split(':').next().map(str::trim) != Some("lo"))
        .count();
    if others > 0 {
        "some"
    } else {
        "none"
    }
}

/// Under the supervisor, as root and as `nobody`, and with `--isolate` (a network namespace
/// with only loopback): nothing gets out and nothing reaches in.
#[test]
fn under_the_supervisor_no_attempt_gets_out_or_reaches_the_supervisor() {
    let scratch = Scratch::new("boundary");
    let config = Config::new().default("deny").log("off").write(&scratch);
    for linking in ["static", "dynamic"] {
        let binary = escape(&scratch, linking);
        for (user, isolate) in [
            ("root", false),
            ("nobody", false),
            ("root", true),
            ("nobody", true),
        ] {
            let sealed = expected(&[
                "EACCES",
                "EACCES",
                "EPERM",
                "EPERM",
                "EPERM",
                "EACCES",
                "EPERM",
                "EPERM",
                "EPERM",
                "ENOSYS",
                "EACCES",
                if isolate { "none" } else { interfaces_here() },
                "0",
            ]);
            let (target, reached) = denied_listener();
            let port = target.port().to_string();
            let mut args: Vec<&str> = Vec::new();
            if user == "nobody" {
                args.extend([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--",
                    cli_exe(),
                ]);
            }
            args.extend([
                "run",
                if isolate { "--isolate" } else { "--mode" },
                if isolate { "--log=off" } else { "supervise" },
                "--config",
                config.to_str().unwrap(),
                "--",
                binary.to_str().unwrap(),
                "127.0.0.1",
                &port,
            ]);
            let run = if user == "nobody" {
                Run::new("setpriv", &args)
            } else {
                Run::new(cli_exe(), &args)
            };
            let out = run.without_preload().output();
            let got = outcomes(&out, reached.load(Ordering::SeqCst));
            let mode = if isolate { "--isolate" } else { "supervisor" };
            eprintln!(
                "{linking} program, {mode} as {user}:\n  {}",
                got.join("\n  ")
            );
            assert_eq!(
                got,
                sealed,
                "{linking}, {mode} as {user}\n{}",
                out.describe()
            );
        }
    }
}

/// Killing the supervisor is the one thing the tree can still do to it (a signal to its process
/// group, or through a pidfd opened from `/proc`): it closes the tree's network instead of
/// opening it. The tree's first process dies with the supervisor; a process that left the group
/// finds every connect failing.
#[test]
fn a_tree_that_kills_its_supervisor_is_cut_off() {
    let scratch = Scratch::new("boundary-kill");
    let config = Config::new().default("deny").log("off").write(&scratch);
    let binary = escape(&scratch, "static");
    let (target, reached) = denied_listener();
    let port = target.port().to_string();
    let out = Run::new(
        cli_exe(),
        &[
            "run",
            "--mode",
            "supervise",
            "--config",
            config.to_str().unwrap(),
            "--",
            binary.to_str().unwrap(),
            "--kill",
            "127.0.0.1",
            &port,
        ],
    )
    .without_preload()
    .output();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "kill the supervisor through /proc: killed",
            "connect after the supervisor died: ENOSYS"
        ],
        "{}",
        out.describe()
    );
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

/// Preloaded, the library fixes programs that ignore proxy settings; it is no boundary against
/// one that wants out, and this is what such a program can do.
#[test]
fn preloaded_the_library_is_no_boundary_for_a_program_that_wants_out() {
    let scratch = Scratch::new("boundary-preload");
    let config = Config::new().default("deny").log("off").write(&scratch);
    let binary = escape(&scratch, "dynamic");
    let (target, reached) = denied_listener();
    // Under a throwaway shell, which plays the supervisor's part: its parent.
    let command = format!("{} 127.0.0.1 {}; true", binary.display(), target.port());
    let out = Run::new("sh", &["-c", &command]).config(&config).output();
    let got = outcomes(&out, reached.load(Ordering::SeqCst));
    eprintln!("dynamic program, preloaded:\n  {}", got.join("\n  "));
    assert_eq!(
        got,
        expected(&[
            "EACCES",
            "connected",
            "open",
            "open",
            "attached",
            "open",
            "allowed",
            "took a descriptor",
            "allowed",
            "set up",
            "entered",
            interfaces_here(),
            "1",
        ]),
        "{}",
        out.describe()
    );
}
