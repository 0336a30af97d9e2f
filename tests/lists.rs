//! Rule lists (issue 18): `host_list` and `cidr_list` rules read list files (each pattern form,
//! comments, CRLF, hosts-file lines), refuse a bad line or a missing file by name and line (fail
//! closed), follow an edited list in running programs (a broken edit is rejected and the rules
//! before stay), never trust a damaged or foreign compiled form, and
//! decide a real program's connections by one entry among a million.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::*;

fn cli(args: &[&str]) -> Output {
    Command::new(cli_exe())
        .args(args)
        .env_remove("MCP_REDIRECT_CONFIG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A config with a `host_list` deny rule and a `cidr_list` deny rule, then `*.gw.test` through
/// an HTTP gateway (when given), else direct.
fn config(
    scratch: &Scratch,
    hosts: &str,
    cidrs: &str,
    proxy: Option<std::net::SocketAddr>,
) -> PathBuf {
    let mut config = Config::new()
        .default("direct")
        .log(scratch.log_path())
        .rule(&format!("host_list = \"{hosts}\""), r#"action = "deny""#)
        .rule(&format!("cidr_list = \"{cidrs}\""), r#"action = "deny""#);
    if let Some(proxy) = proxy {
        config = config
            .gateway("corp", "http", &[proxy])
            .rule(r#"host_list = "routed.txt""#, r#"via = "corp""#);
    }
    config.write(scratch)
}

#[test]
fn explain_names_the_list_and_line_for_every_pattern_form() {
    let scratch = Scratch::new("lists-forms");
    std::fs::write(
        scratch.dir.join("hosts.txt"),
        "# blocklist\r\n\r\nexact.test\r\n*.wild.test # subdomains only\r\n.dot.test\r\n0.0.0.0 hostsfile.test\r\n||adblock.test^\r\nexact.test\r\n",
    )
    .unwrap();
    std::fs::write(
        scratch.dir.join("cidrs.txt"),
        "# ranges\n203.0.113.0/24\n2001:db8::/32\n198.51.100.7\n",
    )
    .unwrap();
    let config = config(&scratch, "hosts.txt", "cidrs.txt", None);
    let config = config.to_str().unwrap();
    let list = scratch.dir.join("hosts.txt");
    for (target, line, entry) in [
        ("exact.test:443", 3, "exact.test"),
        ("a.wild.test:443", 4, "*.wild.test"),
        ("dot.test:443", 5, ".dot.test"),
        ("a.b.dot.test:443", 5, ".dot.test"),
        ("hostsfile.test:443", 6, "0.0.0.0 hostsfile.test"),
        ("x.adblock.test:443", 7, "||adblock.test^"),
    ] {
        let out = cli(&["explain", "--config", config, "--no-resolve", target]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        let expected = format!(
            "  connect: deny by rules[0] host_list={} (line {line}: {entry})",
            list.display()
        );
        assert!(
            stdout.contains(&expected),
            "{target}:\n{stdout}\nwanted {expected}"
        );
    }
    // Not in the list: the apex of `*.wild.test`, a name that only ends like one.
    for target in ["wild.test:443", "xdot.test:443", "other.test:443"] {
        let out = cli(&["explain", "--config", config, "--no-resolve", target]);
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("  connect: direct by default"),
            "{target}:\n{stdout}"
        );
    }
    let cidrs = scratch.dir.join("cidrs.txt");
    for (target, line, entry) in [
        ("203.0.113.9:443", 2, "203.0.113.0/24"),
        ("[2001:db8::1]:443", 3, "2001:db8::/32"),
        ("198.51.100.7:443", 4, "198.51.100.7"),
    ] {
        let out = cli(&["explain", "--config", config, target]);
        let stdout = text(&out.stdout);
        let expected = format!(
            "  connect: deny by rules[1] cidr_list={} (line {line}: {entry})",
            cidrs.display()
        );
        assert!(
            stdout.contains(&expected),
            "{target}:\n{stdout}\nwanted {expected}"
        );
    }
    // `check` says what each list holds and how it was loaded; the command compiled both beside
    // their lists for the processes to map.
    let out = cli(&["check", "--config", config]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("      6 entries; compiled form"),
        "{stdout}"
    );
    assert!(
        stdout.contains("      3 entries; compiled form"),
        "{stdout}"
    );
    assert!(scratch.dir.join("hosts.txt.mcpr").exists());
    assert!(scratch.dir.join("cidrs.txt.mcpr").exists());
}

#[test]
fn a_bad_line_or_a_missing_list_is_named_and_fails_closed() {
    let origin = Origin::start("origin");
    let scratch = Scratch::new("lists-bad");
    std::fs::write(scratch.dir.join("cidrs.txt"), "10.0.0.0/8\n").unwrap();
    std::fs::write(
        scratch.dir.join("hosts.txt"),
        "fine.test\n# fine\nnot a pattern\n",
    )
    .unwrap();
    let config = config(&scratch, "hosts.txt", "cidrs.txt", None);
    let list = scratch.dir.join("hosts.txt");
    let out = cli(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let named = format!(
        "{}:3: \"not a pattern\": one pattern per line",
        list.display()
    );
    assert!(stderr.contains("rules[0].host_list: "), "{stderr}");
    assert!(stderr.contains(&named), "{stderr}");

    // A program under the library: every connection refused, and stderr says why.
    let script = format!(
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {}), timeout=5)\n    print('connected')\nexcept OSError as e:\n    print(e.errno)\n",
        origin.addr.port()
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(out.success(), format!("{}\n", libc::EACCES));
    assert!(out.stderr.contains(&named), "{}", out.stderr);

    // A missing list: the same, with the reason.
    std::fs::remove_file(&list).unwrap();
    let out = cli(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: No such file or directory", list.display())),
        "{stderr}"
    );
    let out = Run::python(&script).config(&config).output();
    assert_eq!(out.success(), format!("{}\n", libc::EACCES));
}

#[test]
fn a_list_edited_under_running_programs_takes_effect_and_a_broken_edit_is_rejected() {
    let origin = Origin::start("origin");
    let scratch = Scratch::new("lists-reload");
    std::fs::write(scratch.dir.join("cidrs.txt"), "# none\n").unwrap();
    let hosts = scratch.dir.join("hosts.txt");
    std::fs::write(&hosts, "other.test\n").unwrap();
    let config = config(&scratch, "hosts.txt", "cidrs.txt", None);
    let script = format!(
        r#"
import socket, time
while True:
    try:
        socket.create_connection(("api.listed.test", {port}), timeout=5).close()
        print("ok", flush=True)
    except OSError as e:
        print(e.errno, flush=True)
    time.sleep(0.05)
"#,
        port = origin.addr.port()
    );
    let mut child = Run::python(&script)
        .host_entry("127.0.0.1", "api.listed.test")
        .config(&config)
        .spawn();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut wait_for = |wanted: &str| {
        let start = Instant::now();
        loop {
            let line = lines.next().expect("the program ended").unwrap();
            if line == wanted {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no {wanted} within 10 s"
            );
        }
    };
    wait_for("ok");
    let eacces = libc::EACCES.to_string();
    // Appended to: denied within about a second.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&hosts)
        .unwrap();
    file.write_all(b".listed.test\n").unwrap();
    drop(file);
    wait_for(&eacces);
    // Taken out again: allowed.
    std::fs::write(&hosts, "other.test\n").unwrap();
    wait_for("ok");
    // A broken edit is rejected, as a broken config is: the rules loaded before stay.
    std::fs::write(&hosts, "other.test\nnot a pattern\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    wait_for("ok");
    // Fixed, with the name in it: denied.
    std::fs::write(&hosts, "other.test\napi.listed.test\n").unwrap();
    wait_for(&eacces);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_damaged_or_foreign_compiled_form_is_never_trusted() {
    let scratch = Scratch::new("lists-corrupt");
    std::fs::write(scratch.dir.join("cidrs.txt"), "# none\n").unwrap();
    let hosts = scratch.dir.join("hosts.txt");
    let names: String = (0..5000).map(|i| format!("h{i}.blocked.test\n")).collect();
    std::fs::write(&hosts, names).unwrap();
    let config = config(&scratch, "hosts.txt", "cidrs.txt", None);
    let config = config.to_str().unwrap();
    let compiled = scratch.dir.join("hosts.txt.mcpr");
    let check = || text(&cli(&["check", "--config", config]).stdout);
    assert!(check().contains(&format!(
        "5000 entries; compiled now, written to {}",
        compiled.display()
    )));
    assert!(check().contains(&format!(
        "5000 entries; compiled form {} (mapped)",
        compiled.display()
    )));
    let decides = |host: &str| {
        text(
            &cli(&[
                "explain",
                "--config",
                config,
                "--no-resolve",
                &format!("{host}:443"),
            ])
            .stdout,
        )
    };

    // One byte of the body changed: the hash no longer holds; compiled again from the text,
    // and the decisions are the list's.
    let mut bytes = std::fs::read(&compiled).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x55;
    std::fs::write(&compiled, &bytes).unwrap();
    assert!(check().contains("5000 entries; compiled now, written to"));
    assert!(decides("h4999.blocked.test").contains("connect: deny by rules[0]"));
    assert!(decides("h5000.blocked.test").contains("connect: direct by default"));

    // A compiled form of another version of the list (same size, other names): not used.
    let good = std::fs::read(&compiled).unwrap();
    let names: String = (0..5000).map(|i| format!("h{i}.blockeD.test\n")).collect();
    std::fs::write(&hosts, names.to_lowercase().replace("blocked", "blockex")).unwrap();
    std::fs::write(&compiled, &good).unwrap();
    assert!(decides("h1.blockex.test").contains("connect: deny by rules[0]"));
    assert!(decides("h1.blocked.test").contains("connect: direct by default"));

    // Writable by others: not trusted, even when valid.
    check();
    let mut mode = std::fs::metadata(&compiled).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o666);
    std::fs::set_permissions(&compiled, mode).unwrap();
    assert!(check().contains("5000 entries; compiled now"));

    // Garbage in place of the compiled form, and a truncated one.
    std::fs::write(&compiled, b"MCPRLIST\x01\x00\x00\x00garbage").unwrap();
    assert!(check().contains("compiled now"));
    let whole = std::fs::read(&compiled).unwrap();
    std::fs::write(&compiled, &whole[..whole.len() / 2]).unwrap();
    assert!(check().contains("compiled now"));
    assert!(decides("h77.blockex.test").contains("connect: deny by rules[0]"));
}

/// `count` names `hN.exampleM.test`, with `extra` lines among them.
fn big_list(path: &Path, count: usize, extra: &[&str]) {
    let mut text = String::with_capacity(count * 24);
    for i in 0..count {
        text.push_str(&format!("h{i}.example{}.test\n", i % 997));
        if i == count / 2 {
            for line in extra {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn curl_and_python_are_decided_by_one_entry_among_a_million() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("lists-million");
    big_list(
        &scratch.dir.join("hosts.txt"),
        1_000_000,
        &["evil.exfil.test"],
    );
    big_list(&scratch.dir.join("routed.txt"), 1_000_000, &["*.gw.test"]);
    std::fs::write(scratch.dir.join("cidrs.txt"), "# none\n").unwrap();
    let config = config(&scratch, "hosts.txt", "cidrs.txt", Some(proxy.addr));
    // The command compiles the lists beside them, once, for every process after.
    let out = cli(&["check", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1000001 entries; compiled now, written to"));

    let port = origin.addr.port();
    let out = Run::curl(&format!("http://api.gw.test:{port}/"))
        .config(&config)
        .output();
    assert_eq!(out.success(), "hello from origin");
    let out = Run::curl(&format!("http://evil.exfil.test:{port}/"))
        .config(&config)
        .output();
    assert_eq!(out.code, Some(7), "{}", out.describe());
    let script = format!(
        "import socket\nfor host in ['h12345.example381.test', 'evil.exfil.test']:\n    try:\n        socket.create_connection((host, {port}), timeout=5)\n        print('connected')\n    except OSError as e:\n        print(e.errno)\n"
    );
    let out = Run::python(&script).config(&config).output();
    let eacces = libc::EACCES;
    assert_eq!(out.success(), format!("{eacces}\n{eacces}\n"));
    assert_eq!(
        proxy.request_lines(),
        [format!("CONNECT api.gw.test:{port} HTTP/1.1")]
    );

    let log = scratch.log();
    let denied: Vec<_> = events(&log, "connect")
        .into_iter()
        .filter(|e| e["action"] == "deny")
        .map(|e| e["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        denied,
        [
            "evil.exfil.test",
            "h12345.example381.test",
            "evil.exfil.test"
        ]
    );
}

/// Inline rules at scale: a config's simple `[[rules]]` tables are read from a compiled form
/// (written beside the config by `check`, in the user's cache by the library) instead of
/// scanned again; a forged form with a valid hash shows that it is what is read, a damaged one
/// is not trusted, an edited config is read anew, and a real program is decided the same way
/// from the text and from the form.
#[test]
fn inline_rules_are_read_from_a_checked_compiled_form_that_follows_edits() {
    let scratch = Scratch::new("inline-compiled");
    let write_config = |changed: &str| {
        let mut config = Config::new().default("direct").log(scratch.log_path());
        for i in 0..100 {
            let host = if i == 7 {
                changed.to_string()
            } else {
                format!("h{i}.inline.test")
            };
            config = config.rule(&format!("host = \"{host}\""), r#"action = "deny""#);
        }
        config
            .rule(r#"host = "*.Mixed.Case.Test.""#, r#"action = "deny""#)
            .write(&scratch)
    };
    let config = write_config("h7.inline.test");
    let config = config.to_str().unwrap();
    let compiled = PathBuf::from(format!("{config}.mcpr"));
    // A private config (it may hold a password) gets a private compiled form.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = cli(&["check", "--config", config]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mode = std::fs::metadata(&compiled).expect("check wrote no compiled form");
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    let decides = |host: &str| {
        let args = ["explain", "--config", config, "--no-resolve"];
        let out = Command::new(cli_exe())
            .args(args)
            .arg(format!("{host}:443"))
            .env("XDG_CACHE_HOME", scratch.dir.join("cache"))
            .output()
            .unwrap();
        text(&out.stdout)
    };
    assert!(decides("h5.inline.test").contains("connect: deny by rules[5]"));
    assert!(decides("a.mixed.case.test").contains("connect: deny by rules[100]"));
    assert!(decides("h5.inlinx.test").contains("connect: direct by default"));

    // The form, edited with its hash made to match: what it says is what decides (so the
    // decisions above could have come from it).
    let form = std::fs::read(&compiled).unwrap();
    let at = form
        .windows(14)
        .position(|w| w == b"h5.inline.test")
        .expect("the host in the form");
    let mut forged = form.clone();
    forged[at..at + 14].copy_from_slice(b"h5.inlinx.test");
    let hash =
        mcp_redirect_core::compiled::hash_bytes(&forged[mcp_redirect_core::compiled::HEADER..]);
    forged[88..96].copy_from_slice(&hash.to_le_bytes());
    std::fs::write(&compiled, &forged).unwrap();
    assert!(decides("h5.inlinx.test").contains("connect: deny by rules[5]"));

    // Damaged (the hash no longer holds): not trusted; the text decides.
    forged[at] = b'x';
    std::fs::write(&compiled, &forged).unwrap();
    assert!(decides("h5.inline.test").contains("connect: deny by rules[5]"));
    assert!(decides("h5.inlinx.test").contains("connect: direct by default"));
    assert!(decides("x5.inlinx.test").contains("connect: direct by default"));

    // The config edited: the form beside it is of another version, and not used.
    std::fs::write(&compiled, &form).unwrap();
    write_config("h7.edited.test");
    assert!(decides("h7.edited.test").contains("connect: deny by rules[7]"));
    assert!(decides("h7.inline.test").contains("connect: direct by default"));

    // The library, in a real program: the first process writes the form into the user's
    // cache, the next reads it; both deny the same host and let the other through.
    std::fs::remove_file(&compiled).unwrap();
    let cache = scratch.dir.join("library-cache");
    let script = "import socket\nfor host in ['h9.inline.test', 'localhost']:\n    try:\n        socket.create_connection((host, 9), timeout=5)\n        print('connected')\n    except OSError as e:\n        print(e.errno)\n";
    let expected = format!("{}\n{}\n", libc::EACCES, libc::ECONNREFUSED);
    for _ in 0..2 {
        let out = Run::python(script)
            .config(Path::new(config))
            .env("XDG_CACHE_HOME", &cache)
            .output();
        assert_eq!(out.success(), expected);
    }
    let written: Vec<_> = std::fs::read_dir(cache.join("mcp-redirect"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        written.len() == 1 && written[0].ends_with(".mcpr"),
        "{written:?}"
    );
    assert!(!compiled.exists(), "the library wrote beside the config");
}
