//! The security log: one well-formed JSON line per decision, from several processes appending
//! at once, with every field the operator relies on; it survives a program that closes our fd.

use crate::support::*;

#[test]
fn two_processes_writing_at_once_give_one_whole_line_per_decision() {
    let scratch = Scratch::new("concurrent");
    let config = Config::new()
        .log(scratch.log_path())
        .deny("*.denied.test")
        .write(&scratch);
    // Each process: 300 lookups and 300 denied connects, from 3 threads each.
    let script = r#"
import socket, threading
def work(t):
    for i in range(100):
        try:
            socket.create_connection((f"h{t}-{i}.denied.test", 443))
        except PermissionError:
            pass
threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
for t in threads: t.start()
for t in threads: t.join()
"#;
    let children: Vec<_> = (0..2)
        .map(|_| Run::python(script).config(&config).spawn())
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let log = scratch.log(); // every line parses, or this fails
    assert_eq!(log.len(), 2 * 600, "one line per decision");
    let mut per_pid = std::collections::HashMap::new();
    for event in &log {
        *per_pid.entry(event["pid"].as_u64().unwrap()).or_insert(0) += 1;
        for field in [
            "ts",
            "pid",
            "exe",
            "event",
            "host",
            "port",
            "dst",
            "rule",
            "action",
            "gateway",
            "endpoint",
            "result",
            "error",
            "elapsed_us",
        ] {
            assert!(event.get(field).is_some(), "{field} missing in {event}");
        }
        let ts = event["ts"].as_str().unwrap();
        assert!(
            ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
    }
    assert_eq!(per_pid.len(), 2);
    assert!(per_pid.values().all(|&n| n == 600));
    let connects = events(&log, "connect");
    assert_eq!(connects.len(), 600);
    assert!(connects.iter().all(|e| e["action"] == "deny"
        && e["result"] == "EACCES"
        && e["exe"].as_str().unwrap().starts_with("python")));
}

#[test]
fn a_program_that_closes_every_fd_neither_loses_lines_nor_gets_them_in_its_files() {
    let scratch = Scratch::new("closefrom");
    let config = Config::new()
        .log(scratch.log_path())
        .deny("denied.test")
        .write(&scratch);
    let own_file = scratch.dir.join("own.txt");
    // Log once (opens our fd), close every fd above 2 like ssh/uvicorn, open a file of its own
    // (which gets our old number), log again, then check its file holds only its own bytes.
    let script = format!(
        r#"
import os, socket
def denied():
    try: socket.create_connection(("denied.test", 80))
    except PermissionError: pass
denied()
os.closerange(3, 1024)
fd = os.open("{own}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
denied()
os.write(fd, b"mine")
os.close(fd)
print(open("{own}").read())
"#,
        own = own_file.display()
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(out.success().trim(), "mine");
    assert_eq!(events(&scratch.log(), "connect").len(), 2);
}

#[test]
fn stderr_as_log_target() {
    let out = Run::python("import socket\ntry: socket.create_connection(('denied.test', 80))\nexcept PermissionError: print('denied')")
        .env("MCP_REDIRECT_LOG", "stderr")
        .env("ALL_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "")
        .output();
    // With ALL_PROXY set, denied.test is routed, and port 9 refuses: ECONNREFUSED, logged.
    assert!(
        out.stderr.lines().any(|l| l.starts_with('{')
            && l.contains("\"event\":\"connect\"")
            && l.contains("ECONNREFUSED")),
        "{}",
        out.stderr
    );
}

/// Three denied connections (each a resolve line and a connect line), `between` in Python,
/// then one more.
fn denied_around(between: &str) -> String {
    format!(
        r#"
import os, socket, subprocess, time
def denied():
    try: socket.create_connection(("denied.test", 80))
    except PermissionError: pass
for _ in range(3):
    denied()
{between}
denied()
print("done")
"#
    )
}

fn deny_config(scratch: &Scratch, log: &std::path::Path) -> std::path::PathBuf {
    Config::new().log(log).deny("denied.test").write(scratch)
}

#[test]
fn a_log_in_a_missing_directory_costs_the_program_nothing() {
    let scratch = Scratch::new("log-missing");
    let config = deny_config(&scratch, &scratch.dir.join("no/such/dir/events.jsonl"));
    let out = Run::python(&denied_around("")).config(&config).output();
    assert_eq!(out.success().trim(), "done");
    assert_eq!(
        out.stderr.matches("cannot write the log").count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn a_full_disk_drops_lines_and_the_next_line_says_how_many() {
    let scratch = Scratch::new("log-full");
    let disk = scratch.dir.join("disk");
    std::fs::create_dir(&disk).unwrap();
    let log = disk.join("events.jsonl");
    let config = deny_config(&scratch, &log);
    // In the child's own mount namespace: a 16 KiB tmpfs, filled up before the first line, and
    // emptied after three decisions.
    let script = format!(
        r#"
import os, subprocess
subprocess.check_call(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", "{disk}"])
fd = os.open("{disk}/filler", os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"x" * 512)
except OSError:
    os.close(fd)
{rest}
print(open("{log}").read(), end="")
"#,
        disk = disk.display(),
        log = log.display(),
        rest = denied_around(&format!("os.remove(\"{}/filler\")", disk.display()))
    );
    let out = Run::python(&script).config(&config).output();
    let text = out.success();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "only the last decision's two lines made it: {text}"
    );
    assert_eq!(
        lines[0]["dropped"], 6,
        "three resolves and three connects were lost: {text}"
    );
    assert!(lines[1].get("dropped").is_none());
    assert_eq!(
        out.stderr.matches("cannot write the log").count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn a_log_renamed_away_and_recreated_is_followed() {
    let scratch = Scratch::new("log-rotate");
    let log = scratch.log_path();
    let config = deny_config(&scratch, &log);
    let rotated = scratch.dir.join("events.jsonl.1");
    let between = format!(
        "os.rename(\"{}\", \"{}\")\ntime.sleep(1.2)",
        log.display(),
        rotated.display()
    );
    let out = Run::python(&denied_around(&between))
        .config(&config)
        .output();
    assert_eq!(out.success().trim(), "done");
    assert_eq!(read_log(&rotated).len(), 6, "before the rotation");
    assert_eq!(
        read_log(&log).len(),
        2,
        "after it, in a new file at the path"
    );
}

#[test]
fn direct_connections_can_be_left_out_of_the_log() {
    let origin = Origin::start("origin");
    let scratch = Scratch::new("log-direct-off");
    let config = Config::new()
        .log(scratch.log_path())
        .log_option("direct = false")
        .deny("denied.test")
        .write(&scratch);
    let script = format!(
        r#"
import socket
socket.create_connection(("localhost", {port}), timeout=10).close()
try:
    socket.create_connection(("denied.test", 80))
except PermissionError:
    print("denied")
"#,
        port = origin.addr.port()
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(out.success().trim(), "denied");
    assert_eq!(
        origin.requests().len(),
        1,
        "the direct connection went through"
    );
    let log = scratch.log();
    assert!(log.iter().all(|e| e["action"] != "direct"), "{log:#?}");
    assert_eq!(events(&log, "connect").len(), 1, "only the denial");
}
