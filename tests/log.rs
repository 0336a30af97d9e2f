//! The security log: one well-formed JSON line per decision, from several processes appending
//! at once, with every field the operator relies on; it survives a program that closes our fd.

mod support;

use support::*;

#[test]
fn two_processes_writing_at_once_give_one_whole_line_per_decision() {
    let scratch = Scratch::new("concurrent");
    let config = scratch.config(&format!(
        "[log]\npath = \"{}\"\n[[rules]]\nhost = \"*.denied.test\"\naction = \"deny\"\n",
        scratch.log_path().display()
    ));
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
    let config = scratch.config(&format!(
        "[log]\npath = \"{}\"\n[[rules]]\nhost = \"denied.test\"\naction = \"deny\"\n",
        scratch.log_path().display()
    ));
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
