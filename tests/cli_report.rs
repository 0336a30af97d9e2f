//! `mcp-redirect report`: the real binary summarises logs written as the library writes them,
//! from files or stdin, counts past broken lines while naming them, filters by `--since`, and
//! says so when a table outgrows its counters.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{cli_exe, Scratch};

/// A `connect` line as the library writes it.
fn connect(
    second: u32,
    exe: &str,
    host: &str,
    action: &str,
    result: &str,
    elapsed_us: u64,
) -> String {
    let (rule, gateway, endpoint) = match action {
        "gateway" => (
            r#"{"index":1,"pattern":"host=*.example.test"}"#,
            r#""corp""#,
            r#""10.0.0.1:3128""#,
        ),
        "deny" => (r#"{"index":0,"pattern":"host=evil.test"}"#, "null", "null"),
        _ => (r#"{"index":null,"pattern":"default"}"#, "null", "null"),
    };
    let error = match result {
        "ok" | "EINPROGRESS" => "null".to_string(),
        _ => format!("\"{result} happened\""),
    };
    format!(
        r#"{{"ts":"2026-11-27T06:00:{second:02}.000000Z","pid":42,"exe":"{exe}","event":"connect","proto":"tcp","host":"{host}","port":443,"dst":"198.18.0.1:443","rule":{rule},"action":"{action}","gateway":{gateway},"endpoint":{endpoint},"result":"{result}","error":{error},"elapsed_us":{elapsed_us}}}"#
    )
}

/// A `resolve` line; `answer` is the fake address handed out, if any.
fn resolve(second: u32, exe: &str, host: &str, answer: Option<&str>, result: &str) -> String {
    let answer = answer
        .map(|a| format!(r#","answer":"{a}""#))
        .unwrap_or_default();
    format!(
        r#"{{"ts":"2026-11-27T06:00:{second:02}.000000Z","pid":42,"exe":"{exe}","event":"resolve","proto":null,"host":"{host}","port":null,"dst":null,"rule":{{"index":null,"pattern":"default"}},"action":"direct","gateway":null,"endpoint":null{answer},"result":"{result}","error":null,"elapsed_us":null}}"#
    )
}

/// Ten events, one second apart from 06:00:00: 6 connects (2 gateway, 2 deny, 2 direct),
/// 3 resolves (fake, failed, real), 1 config error.
fn sample_lines() -> Vec<String> {
    vec![
        resolve(0, "curl", "api.example.test", Some("198.18.0.1"), "ok"),
        connect(1, "curl", "api.example.test", "gateway", "ok", 3000),
        connect(2, "curl", "api.example.test", "gateway", "ECONNREFUSED", 5000),
        connect(3, "node", "evil.test", "deny", "EACCES", 10),
        connect(4, "node", "evil.test", "deny", "EACCES", 12),
        connect(5, "node", "pypi.org", "direct", "EINPROGRESS", 40),
        connect(6, "python3", "pypi.org", "direct", "ok", 50),
        resolve(7, "python3", "nothing.test", None, "EAI_NONAME"),
        r#"{"ts":"2026-11-27T06:00:08.000000Z","pid":43,"exe":"node","event":"config_error","proto":null,"host":null,"port":null,"dst":null,"rule":null,"action":null,"gateway":null,"endpoint":null,"result":"EINVAL","error":"rules[1]: bad host","elapsed_us":null}"#.to_string(),
        resolve(9, "python3", "pypi.org", None, "ok"),
    ]
}

fn write_log(scratch: &Scratch, name: &str, lines: &[String], trailer: &str) -> PathBuf {
    let path = scratch.dir.join(name);
    let mut text = lines.join("\n");
    text.push('\n');
    text.push_str(trailer);
    std::fs::write(&path, text).unwrap();
    path
}

struct Report {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Report {
    /// Whether some line of the text report holds exactly these cells, whatever the spacing.
    fn has_row(&self, cells: &[&str]) -> bool {
        self.stdout
            .lines()
            .any(|line| line.split_whitespace().eq(cells.iter().copied()))
    }

    /// The rest of the line whose first cell is `first`, spacing collapsed.
    fn row_after(&self, first: &str) -> Option<String> {
        self.stdout.lines().find_map(|line| {
            let mut cells = line.split_whitespace();
            (cells.next() == Some(first)).then(|| cells.collect::<Vec<_>>().join(" "))
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{}", self.stdout))
    }
}

fn report(args: &[&str], stdin: Option<&str>) -> Report {
    let mut child = Command::new(cli_exe())
        .arg("report")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mcp-redirect");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    Report {
        code: output.status.code().expect("exited"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_clean_log_gives_every_count_and_exit_0() {
    let scratch = Scratch::new("report-clean");
    let log = write_log(&scratch, "events.jsonl", &sample_lines(), "");
    let out = report(&[path(&log)], None);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    assert!(
        out.has_row(&[
            "events",
            "10,",
            "2026-11-27T06:00:00.000000Z",
            "to",
            "2026-11-27T06:00:09.000000Z"
        ]),
        "{}",
        out.stdout
    );
    assert!(out.has_row(&["malformed", "lines", "0"]), "{}", out.stdout);
    assert!(
        out.stdout.contains("Connections: 6 (tcp 6, udp 0)"),
        "{}",
        out.stdout
    );
    // action, connects, ok, in progress, not ok
    assert!(
        out.has_row(&["direct", "2", "1", "1", "0"]),
        "{}",
        out.stdout
    );
    assert!(
        out.has_row(&["gateway", "2", "1", "0", "1"]),
        "{}",
        out.stdout
    );
    assert!(out.has_row(&["deny", "2", "0", "0", "2"]), "{}", out.stdout);
    // gateway, endpoint, connects, ok, in progress, failed
    assert!(
        out.has_row(&["corp", "10.0.0.1:3128", "2", "1", "0", "1"]),
        "{}",
        out.stdout
    );
    // connect times: count, p50, p99, max (exact below 16 µs; above, bucket upper bounds: 40 -> 41)
    assert!(
        out.has_row(&["deny", "2", "10", "12", "12"]),
        "{}",
        out.stdout
    );
    assert!(
        out.has_row(&["all", "6", "41", "5000", "5000"]),
        "{}",
        out.stdout
    );
    // host, connects, direct, gateway, deny, failed
    assert!(
        out.has_row(&["evil.test", "2", "0", "0", "2", "0"]),
        "{}",
        out.stdout
    );
    assert!(
        out.has_row(&["api.example.test", "2", "0", "2", "0", "1"]),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Denials: 2"), "{}", out.stdout);
    assert!(out.has_row(&["host=evil.test", "2"]), "{}", out.stdout);
    assert!(
        out.has_row(&["evil.test", "host=evil.test", "2"]),
        "{}",
        out.stdout
    );
    // result, connect, resolve
    assert!(out.has_row(&["EACCES", "2", "0"]), "{}", out.stdout);
    assert!(out.has_row(&["ECONNREFUSED", "1", "0"]), "{}", out.stdout);
    assert!(out.has_row(&["EAI_NONAME", "0", "1"]), "{}", out.stdout);
    assert!(
        !out.has_row(&["EINPROGRESS", "1", "0"]),
        "in progress is not an error:\n{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("in progress (EINPROGRESS, not an error): 1 connects"),
        "{}",
        out.stdout
    );
    // exe, connects, denied, failed
    assert!(out.has_row(&["node", "3", "2", "0"]), "{}", out.stdout);
    assert!(out.has_row(&["curl", "2", "0", "1"]), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("Resolves: 3 (fake answers 1, real lookups 1, failed 1)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Config errors: 1"), "{}", out.stdout);
    assert!(
        out.has_row(&["1", "rules[1]:", "bad", "host"]),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("approximate"), "{}", out.stdout);
}

#[test]
fn broken_lines_are_named_counted_past_and_give_exit_1() {
    let scratch = Scratch::new("report-broken");
    let mut lines = sample_lines();
    lines.insert(3, "this is not JSON".to_string());
    lines.insert(5, r#"{"ts":"yesterday","event":"connect"}"#.to_string());
    // The writer was cut off mid-line: no newline at the end.
    let log = write_log(
        &scratch,
        "events.jsonl",
        &lines,
        r#"{"ts":"2026-11-27T06:00:10.000000Z","pid":42,"exe":"cu"#,
    );
    let out = report(&[path(&log)], None);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let name = path(&log);
    assert!(
        out.row_after(&format!("{name}:4"))
            .is_some_and(|r| r.starts_with("not JSON")),
        "{}",
        out.stdout
    );
    assert!(
        out.row_after(&format!("{name}:6")).as_deref()
            == Some("ts \"yesterday\" is not an RFC 3339 time"),
        "{}",
        out.stdout
    );
    assert!(
        out.row_after(&format!("{name}:13")).as_deref() == Some("truncated last line"),
        "{}",
        out.stdout
    );
    assert!(
        out.has_row(&[
            "malformed",
            "lines",
            "3,",
            "1",
            "of",
            "them",
            "a",
            "truncated",
            "last",
            "line"
        ]),
        "{}",
        out.stdout
    );
    assert!(out.has_row(&["lines", "13"]), "{}", out.stdout);
    // Everything else is still counted.
    assert!(
        out.stdout.contains("Connections: 6 (tcp 6, udp 0)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Resolves: 3 "), "{}", out.stdout);
    assert!(
        out.stderr
            .contains(&format!("3 malformed line(s), the first at {name}:4")),
        "{}",
        out.stderr
    );
}

#[test]
fn a_truncated_last_line_alone_is_malformed_too() {
    let scratch = Scratch::new("report-truncated");
    let log = write_log(
        &scratch,
        "events.jsonl",
        &sample_lines(),
        r#"{"ts":"2026-11-27T06:00:1"#,
    );
    let out = report(&["--json", path(&log)], None);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let json = out.json();
    assert_eq!(json["malformed"]["count"], 1);
    assert_eq!(json["malformed"]["truncated_last_lines"], 1);
    assert_eq!(json["malformed"]["first"][0]["line"], 11);
    assert_eq!(
        json["malformed"]["first"][0]["reason"],
        "truncated last line"
    );
    assert_eq!(json["events"], 10);
}

#[test]
fn standard_input_is_read_without_files_or_for_a_dash() {
    let text = sample_lines().join("\n") + "\n";
    for args in [&[][..], &["-"][..]] {
        let out = report(args, Some(&text));
        assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(out.has_row(&["input", "<stdin>"]), "{}", out.stdout);
        assert!(out.stdout.contains("Connections: 6 "), "{}", out.stdout);
    }
    let out = report(
        &[],
        Some("{\"ts\":\"2026-11-27T06:00:00Z\",\"event\":\"connect\"}\nnope\n"),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.row_after("<stdin>:2")
            .is_some_and(|r| r.starts_with("not JSON")),
        "{}",
        out.stdout
    );
}

#[test]
fn since_skips_earlier_events_and_refuses_a_time_it_cannot_read() {
    let scratch = Scratch::new("report-since");
    let log = write_log(&scratch, "events.jsonl", &sample_lines(), "");
    // The same instant, written in UTC and at +02:00 (also in ISO 8601's form without a colon).
    for since in [
        "2026-11-27T06:00:05Z",
        "2026-11-27T08:00:05+02:00",
        "2026-11-27T08:00:05+0200",
    ] {
        let out = report(&["--json", "--since", since, path(&log)], None);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        let json = out.json();
        assert_eq!(json["since"], "2026-11-27T06:00:05.000000Z");
        assert_eq!(json["skipped_before_since"], 5);
        assert_eq!(json["events"], 5);
        assert_eq!(json["first_ts"], "2026-11-27T06:00:05.000000Z");
        assert_eq!(json["connects"]["total"], 2);
        assert_eq!(json["connects"]["by_action"]["direct"]["connects"], 2);
        assert_eq!(json["denials"]["total"], 0);
        assert_eq!(json["resolves"]["total"], 2);
    }
    // Refused with what is missing or wrong.
    for (bad, why) in [
        ("yesterday", "year"),
        ("2026-11-27", "time component"),
        ("2026-11-27T06:00:05", "offset component"),
    ] {
        let out = report(&["--since", bad, path(&log)], None);
        assert_eq!(out.code, 2, "{bad}");
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert!(
            out.stderr.contains("is not an RFC 3339 time") && out.stderr.contains(why),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn json_holds_the_same_numbers() {
    let scratch = Scratch::new("report-json");
    let log = write_log(&scratch, "events.jsonl", &sample_lines(), "");
    let out = report(&["--json", path(&log)], None);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let json = out.json();
    assert_eq!(json["lines"], 10);
    assert_eq!(json["events"], 10);
    assert_eq!(json["malformed"]["count"], 0);
    let connects = &json["connects"];
    assert_eq!(connects["total"], 6);
    assert_eq!(connects["in_progress"], 1);
    assert_eq!(connects["by_action"]["gateway"]["not_ok"], 1);
    assert_eq!(json["elapsed_us"]["all"]["count"], 6);
    assert_eq!(json["elapsed_us"]["all"]["max"], 5000);
    assert_eq!(json["elapsed_us"]["deny"]["p50"], 10);
    let gateway = &json["gateways"]["entries"][0];
    assert_eq!(
        (gateway["gateway"].as_str(), gateway["endpoint"].as_str()),
        (Some("corp"), Some("10.0.0.1:3128"))
    );
    assert_eq!(
        (gateway["count"].as_u64(), gateway["failed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(json["hosts"]["approximate"], false);
    assert_eq!(json["hosts"]["distinct"], 3);
    assert_eq!(
        json["denials"]["by_host"]["entries"][0]["host"],
        "evil.test"
    );
    assert_eq!(
        json["denials"]["by_host"]["entries"][0]["rule"],
        "host=evil.test"
    );
    assert_eq!(json["denials"]["by_rule"]["entries"][0]["count"], 2);
    let results = json["results"]["entries"].as_array().unwrap();
    let result = |name: &str| results.iter().find(|r| r["result"] == name).cloned();
    assert_eq!(result("EACCES").unwrap()["connect"], 2);
    assert_eq!(result("EAI_NONAME").unwrap()["resolve"], 1);
    assert!(result("EINPROGRESS").is_none());
    let node = json["processes"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["exe"] == "node")
        .unwrap()
        .clone();
    assert_eq!(
        (node["count"].as_u64(), node["denied"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(
        json["resolves"],
        serde_json::json!({"total": 3, "fake": 1, "real": 1, "failed": 1})
    );
    assert_eq!(json["config_errors"]["total"], 1);
    assert_eq!(
        json["config_errors"]["texts"]["entries"][0]["error"],
        "rules[1]: bad host"
    );
}

#[test]
fn more_hosts_than_counters_makes_the_table_approximate_but_keeps_the_heavy_ones() {
    let scratch = Scratch::new("report-many-hosts");
    let mut lines = Vec::new();
    for i in 0..6000 {
        lines.push(connect(
            i % 60,
            "curl",
            &format!("h{i}.example.test"),
            "direct",
            "ok",
            5,
        ));
        if i % 3 == 0 {
            lines.push(connect(
                i % 60,
                "curl",
                "heavy.example.test",
                "direct",
                "ok",
                5,
            ));
        }
    }
    let log = write_log(&scratch, "events.jsonl", &lines, "");
    let out = report(&["--json", path(&log)], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = out.json();
    assert_eq!(json["connects"]["total"], 8000, "the totals stay exact");
    assert_eq!(json["hosts"]["approximate"], true);
    assert_eq!(json["hosts"]["distinct"], serde_json::Value::Null);
    let top = &json["hosts"]["entries"][0];
    assert_eq!(top["host"], "heavy.example.test");
    let (count, overcount) = (
        top["count"].as_u64().unwrap(),
        top["overcount"].as_u64().unwrap(),
    );
    assert!(count >= 2000 && count - overcount <= 2000, "{top}");

    let text = report(&[path(&log)], None);
    assert!(
        text.stdout
            .contains("(approximate: more than 4096 distinct hosts"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_file_that_cannot_be_read_is_exit_2() {
    let scratch = Scratch::new("report-missing");
    let log = write_log(&scratch, "events.jsonl", &sample_lines(), "");
    let missing = scratch.dir.join("missing.jsonl");
    let out = report(&[path(&log), path(&missing)], None);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(&format!(
            "cannot read {}: No such file or directory",
            path(&missing)
        )),
        "{}",
        out.stderr
    );
    let out = report(&[path(&scratch.dir)], None);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("is a directory"), "{}", out.stderr);
}

#[test]
fn a_runaway_line_is_skipped_and_hostile_names_cannot_drive_the_terminal() {
    let scratch = Scratch::new("report-hostile");
    let runaway = format!(r#"{{"ts":"{}"}}"#, "9".repeat(3 << 20));
    let hostile = connect(1, "curl", r"evil\u001b[2J\u202e.test", "deny", "EACCES", 3);
    let log = write_log(&scratch, "events.jsonl", &[runaway, hostile], "");
    let out = report(&[path(&log)], None);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let name = path(&log);
    assert_eq!(
        out.row_after(&format!("{name}:1")).as_deref(),
        Some("longer than 1 MiB")
    );
    assert!(out.stdout.contains("Connections: 1 "), "{}", out.stdout);
    assert!(!out.stdout.contains('\u{1b}') && !out.stdout.contains('\u{202e}'));
    assert!(
        out.has_row(&[r"evil\u{1b}[2J\u{202e}.test", "1", "0", "0", "1", "0"]),
        "{}",
        out.stdout
    );
}
