//! Rules learned from a run (issue 19): `mcp-redirect learn` runs a program in audit mode and
//! prints the config it needs; `report --suggest` does the same from logs; `run` warns before a
//! launcher whose registry the config denies.

use crate::support::*;

fn cli(args: &[&str]) -> Run {
    library();
    Run::new(cli_exe(), args).without_preload()
}

/// A program that connects to each host named on its command line (port given first) and says
/// whether it got through.
const REACH: &str = r#"
import socket, sys
port = int(sys.argv[1])
for host in sys.argv[2:]:
    try:
        socket.create_connection((host, port), timeout=5).close()
        print("reached", host)
    except OSError as e:
        print("refused", host)
"#;

#[test]
fn learn_prints_a_config_that_lets_the_same_program_through_and_nothing_more() {
    let origin = Origin::start("origin");
    let scratch = Scratch::new("learn");
    let base = Config::new()
        .default("deny")
        .log(scratch.log_path())
        .deny("gamma.test")
        .write(&scratch);
    let port = origin.addr.port().to_string();
    let hosts = ["api.alpha.test", "cdn.alpha.test", "beta.test"];
    let with_hosts = |run: Run| {
        [
            "api.alpha.test",
            "cdn.alpha.test",
            "beta.test",
            "gamma.test",
        ]
        .iter()
        .fold(run, |run, host| run.host_entry("127.0.0.1", host))
    };
    let mut args = vec![
        "learn",
        "--config",
        base.to_str().unwrap(),
        "--",
        "python3",
        "-c",
        REACH,
        &port,
    ];
    args.extend(hosts);
    let out = with_hosts(cli(&args)).output();
    let learned = out.success().to_string();
    // The program ran in audit mode: it got through while learning.
    assert!(
        out.stderr.contains("reached what the rules below allow"),
        "{}",
        out.describe()
    );
    assert!(learned.contains("host = \"*.alpha.test\""), "{learned}");
    assert!(learned.contains("host = \"beta.test\""), "{learned}");
    assert!(
        learned.contains("# learned: api.alpha.test:") && learned.contains("cdn.alpha.test:"),
        "{learned}"
    );
    // The learned rules come first, the base's after them.
    assert!(learned.find("beta.test").unwrap() < learned.find("gamma.test").unwrap());

    let learned_path = scratch.dir.join("learned.toml");
    std::fs::write(&learned_path, &learned).unwrap();
    let check = cli(&["check", "--config", learned_path.to_str().unwrap()]).output();
    check.success();

    // Enforced: the same program gets through; a fourth host is still denied.
    let mut args = vec![
        "run",
        "--config",
        learned_path.to_str().unwrap(),
        "--",
        "python3",
        "-c",
        REACH,
        &port,
    ];
    args.extend(hosts);
    args.push("gamma.test");
    let out = with_hosts(cli(&args)).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "reached api.alpha.test",
            "reached cdn.alpha.test",
            "reached beta.test",
            "refused gamma.test"
        ],
        "{}",
        out.describe()
    );
}

#[test]
fn report_suggest_groups_subdomains_by_the_public_suffix_list() {
    let scratch = Scratch::new("suggest");
    let log = scratch.log_path();
    let lines = [
        ("a.github.io", 443),
        ("b.github.io", 443),
        ("api.github.com", 443),
        ("uploads.github.com", 443),
        ("api.github.com", 443),
    ]
    .iter()
    .map(|(host, port)| {
        format!(
            r#"{{"ts":"2026-12-03T10:00:00.000000Z","pid":1,"exe":"node","event":"connect","proto":"tcp","host":"{host}","port":{port},"dst":"198.18.0.9:{port}","rule":{{"index":null,"pattern":"default"}},"action":"deny","gateway":null,"endpoint":null,"result":"EACCES","error":"denied by rule","elapsed_us":5}}"#
        )
    })
    .collect::<Vec<_>>()
    .join("\n");
    std::fs::write(&log, lines + "\n").unwrap();
    let out = cli(&["report", "--suggest", log.to_str().unwrap()]).output();
    let rules = out.success();
    // github.io is a public suffix: two sites; github.com is one, with two names under it.
    assert!(
        rules.contains("[[rules]]\nhost = \"a.github.io\"\nport = 443\n"),
        "{rules}"
    );
    assert!(
        rules.contains("[[rules]]\nhost = \"b.github.io\"\nport = 443\n"),
        "{rules}"
    );
    assert!(
        rules.contains("# learned: api.github.com:443, uploads.github.com:443 (3 connects)\n[[rules]]\nhost = \"*.github.com\"\nport = 443\n"),
        "{rules}"
    );
    let suggested = scratch.dir.join("suggested.toml");
    std::fs::write(&suggested, rules).unwrap();
    cli(&["check", "--config", suggested.to_str().unwrap()])
        .output()
        .success();
}

#[test]
fn run_warns_before_starting_a_launcher_whose_registry_is_denied() {
    let scratch = Scratch::new("launchers");
    let deny = Config::new().default("deny").log("off").write(&scratch);
    let out = cli(&[
        "run",
        "--config",
        deny.to_str().unwrap(),
        "--",
        "npx",
        "--version",
    ])
    .output();
    out.success();
    assert!(
        out.stderr.contains("mcp-redirect: warning: npx fetches npm packages from registry.npmjs.org:443, which this config denies (default = \"deny\")"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("[[rules]]\nhost = \"registry.npmjs.org\"\nport = 443\naction = \"direct\""),
        "{}",
        out.stderr
    );
    let out = cli(&[
        "run",
        "--strict",
        "--config",
        deny.to_str().unwrap(),
        "--",
        "uvx",
        "mcp-server-fetch",
    ])
    .output();
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert!(
        out.stderr.contains("files.pythonhosted.org:443"),
        "{}",
        out.stderr
    );
    // A config that allows the registry says nothing.
    let allowed = Config::new()
        .default("deny")
        .log("off")
        .rule(r#"host = "registry.npmjs.org""#, r#"action = "direct""#)
        .and("port = 443")
        .write(&scratch);
    let out = cli(&[
        "run",
        "--config",
        allowed.to_str().unwrap(),
        "--",
        "npx",
        "--version",
    ])
    .output();
    out.success();
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    // init offers the registries, commented.
    let init = cli(&["init"]).output();
    assert!(
        init.success().contains(
            "# [[rules]]\n# host = \"registry.npmjs.org\"\n# port = 443\n# action = \"direct\"\n"
        ),
        "{}",
        init.stdout
    );
}
