//! `mcp-redirect wrap` and `unwrap` on real config files of every MCP client shape
//! (tests/mcp-clients/: comments where the format has them, keys in unusual orders, an entry
//! already wrapped and a remote one in each), run as the real command: the wrapped file is the
//! one in tests/mcp-clients/wrapped/ (the docs show those), wrapping twice changes nothing,
//! `--dry-run` changes nothing and prints the diff, and `unwrap` gives the original back byte for
//! byte (with or without the backup). Then a wrapped `mcpServers` file is driven by a real MCP
//! client (the Python SDK's stdio client) whose server reaches a routed host through a gateway.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// The paths tests/mcp-clients/wrapped/ shows for the program and the config.
const SHOWN_PROGRAM: &str = "/usr/local/bin/mcp-redirect";
const SHOWN_CONFIG: &str = "/etc/mcp-redirect/mcp-redirect.toml";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp-clients")
}

/// One client's file: the fixture, the name the client gives it, and what wrap does to it.
struct Client {
    fixture: &'static str,
    name: &'static str,
    wrapped: usize,
    already: usize,
    remote: usize,
}

const CLIENTS: &[Client] = &[
    Client {
        fixture: "claude-desktop.json",
        name: "claude_desktop_config.json",
        wrapped: 3,
        already: 1,
        remote: 1,
    },
    Client {
        fixture: "cursor.json",
        name: "mcp.json",
        wrapped: 2,
        already: 1,
        remote: 1,
    },
    Client {
        fixture: "windsurf.json",
        name: "mcp_config.json",
        wrapped: 2,
        already: 1,
        remote: 1,
    },
    Client {
        fixture: "claude-code.mcp.json",
        name: ".mcp.json",
        wrapped: 2,
        already: 1,
        remote: 2,
    },
    Client {
        fixture: "claude-code-user.json",
        name: ".claude.json",
        wrapped: 2,
        already: 1,
        remote: 1,
    },
    Client {
        fixture: "vscode.jsonc",
        name: "mcp.json",
        wrapped: 2,
        already: 1,
        remote: 1,
    },
    Client {
        fixture: "zed.jsonc",
        name: "settings.json",
        wrapped: 2,
        already: 1,
        remote: 1,
    },
    Client {
        fixture: "codex.toml",
        name: "config.toml",
        wrapped: 3,
        already: 1,
        remote: 1,
    },
];

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "{}\n{}", self.stdout, self.stderr);
        self
    }
}

/// The command, with no config of the user's or the environment's to find (tests name theirs).
fn mcp_redirect(home: &Path, args: &[&str]) -> Out {
    let out = Command::new(cli_exe())
        .args(args)
        .env_remove("MCP_REDIRECT_CONFIG")
        .env_remove("LD_PRELOAD")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("no-such-config-home"))
        .output()
        .expect("run mcp-redirect");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn backup_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.mcp-redirect.bak", path.display()))
}

/// A valid config for the servers, in the scratch directory.
fn servers_config(scratch: &Scratch) -> PathBuf {
    Config::new().default("direct").write(scratch)
}

#[test]
fn every_client_shape_wraps_as_shown_and_unwraps_byte_for_byte() {
    for client in CLIENTS {
        let scratch = Scratch::new(&format!("wrap-{}", client.fixture));
        let config = servers_config(&scratch);
        let config_text = config.to_str().unwrap();
        let original = read(&fixtures().join(client.fixture));
        let dir = scratch.dir.join("client");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(client.name);
        std::fs::write(&file, &original).unwrap();
        let file_text = file.to_str().unwrap();
        let home = &scratch.dir;
        let what = client.fixture;

        // --dry-run: the diff, and nothing written.
        let dry = mcp_redirect(
            home,
            &["wrap", "--config", config_text, "--dry-run", file_text],
        );
        dry.ok();
        assert!(
            dry.stdout
                .starts_with(&format!("--- {file_text}\n+++ {file_text}\n@@ ")),
            "{what}: {}",
            dry.stdout
        );
        assert!(
            dry.stdout
                .lines()
                .any(|l| l.starts_with('+') && l.contains("\"run\"")),
            "{what}: {}",
            dry.stdout
        );
        assert_eq!(read(&file), original, "{what}: --dry-run changed the file");
        assert!(
            !backup_of(&file).exists(),
            "{what}: --dry-run made a backup"
        );

        // wrap: the file tests/mcp-clients/wrapped/ shows, with this test's paths.
        let wrap = mcp_redirect(home, &["wrap", "--config", config_text, file_text]);
        wrap.ok();
        let expected = read(&fixtures().join("wrapped").join(client.fixture))
            .replace(SHOWN_PROGRAM, cli_exe())
            .replace(SHOWN_CONFIG, config_text);
        let wrapped = read(&file);
        assert_eq!(wrapped, expected, "{what}: wrapped");
        assert_eq!(read(&backup_of(&file)), original, "{what}: backup");
        let counts = format!(
            "{} wrapped, {} already wrapped, {} remote left alone",
            client.wrapped, client.already, client.remote
        );
        assert!(wrap.stderr.contains(&counts), "{what}: {}", wrap.stderr);
        assert_eq!(
            wrap.stderr.matches("a remote server (").count(),
            client.remote,
            "{what}: {}",
            wrap.stderr
        );

        // Twice is once.
        let again = mcp_redirect(home, &["wrap", "--config", config_text, file_text]);
        again.ok();
        assert_eq!(read(&file), wrapped, "{what}: wrapping twice");
        assert!(
            again.stderr.contains("nothing to change"),
            "{what}: {}",
            again.stderr
        );

        // unwrap: the original, byte for byte.
        mcp_redirect(home, &["unwrap", file_text]).ok();
        assert_eq!(read(&file), original, "{what}: unwrapped");

        // Without the backup too: the wrapped file alone says what to give back. (The entry
        // that was wrapped before is unwrapped as well: unwrap the original alike to compare.)
        std::fs::remove_file(backup_of(&file)).unwrap();
        let alone = scratch.dir.join("alone");
        std::fs::create_dir_all(&alone).unwrap();
        let alone_file = alone.join(client.name);
        std::fs::write(&alone_file, &original).unwrap();
        let alone_text = alone_file.to_str().unwrap();
        mcp_redirect(home, &["unwrap", alone_text]).ok();
        mcp_redirect(home, &["wrap", "--config", config_text, file_text]).ok();
        std::fs::remove_file(backup_of(&file)).unwrap();
        mcp_redirect(home, &["unwrap", file_text]).ok();
        assert_eq!(
            read(&file),
            read(&alone_file),
            "{what}: unwrapped without the backup"
        );
    }
}

/// An entry whose env sets LD_PRELOAD keeps it, with a note; a remote entry is left alone with
/// a note saying why its traffic is not ours; a `docker run` entry gets a note. What wrap prints
/// for Cursor's file is the block docs/mcp-clients.md shows.
#[test]
fn notes_say_what_is_kept_and_what_is_left_alone() {
    let scratch = Scratch::new("wrap-notes");
    let config = servers_config(&scratch);
    let project = scratch.dir.join("project");
    std::fs::create_dir_all(project.join(".cursor")).unwrap();
    let file = project.join(".cursor/mcp.json");
    std::fs::copy(fixtures().join("cursor.json"), &file).unwrap();
    let out = Command::new(cli_exe())
        .args([
            "wrap",
            "--config",
            config.to_str().unwrap(),
            ".cursor/mcp.json",
        ])
        .current_dir(&project)
        .env_remove("MCP_REDIRECT_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let docs = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/mcp-clients.md"));
    let shown = docs
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n").next())
        .expect("docs/mcp-clients.md shows wrap's output in a text block");
    assert_eq!(String::from_utf8_lossy(&out.stderr), shown);
    assert!(read(&file)
        .contains("\"env\": { \"LD_PRELOAD\": \"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2\" }"));

    let desktop = scratch.dir.join("claude_desktop_config.json");
    std::fs::copy(fixtures().join("claude-desktop.json"), &desktop).unwrap();
    let out = mcp_redirect(
        &scratch.dir,
        &[
            "wrap",
            "--config",
            config.to_str().unwrap(),
            desktop.to_str().unwrap(),
        ],
    );
    assert!(
        out.ok()
            .stderr
            .contains("mcpServers.github: note: it starts a container"),
        "{}",
        out.stderr
    );
}

/// `"args": []` and no `args` at all wrap alike: the backup tells them apart, and without it
/// an empty list comes back as no list (the same to every client).
#[test]
fn empty_args_and_absent_args_come_back_as_they_were() {
    let scratch = Scratch::new("wrap-empty");
    let config = servers_config(&scratch);
    let config = config.to_str().unwrap();
    let original = "{\n  \"mcpServers\": {\n    \"a\": {\n      \"command\": \"srv\",\n      \"args\": []\n    },\n    \"b\": {\n      \"command\": \"srv\"\n    },\n    \"c\": {\"args\": [ ], \"command\": \"srv\"}\n  }\n}\n";
    let file = scratch.dir.join("mcp.json");
    std::fs::write(&file, original).unwrap();
    let path = file.to_str().unwrap();
    mcp_redirect(&scratch.dir, &["wrap", "--config", config, path]).ok();
    let wrapped = read(&file);
    assert_eq!(
        wrapped
            .matches(&format!(
                "\"args\": [\"run\", \"--config\", \"{config}\", \"--\", \"srv\"]"
            ))
            .count(),
        2,
        "{wrapped}"
    );
    mcp_redirect(&scratch.dir, &["unwrap", path]).ok();
    assert_eq!(read(&file), original);

    std::fs::write(&file, &wrapped).unwrap();
    std::fs::remove_file(backup_of(&file)).unwrap();
    mcp_redirect(&scratch.dir, &["unwrap", path]).ok();
    assert_eq!(
        read(&file),
        original.replace(",\n      \"args\": []", ""),
        "without the backup, a's empty list is taken for one wrap added"
    );
}

/// Separators are learned from what is there, comments in them stay put, and a file with
/// Windows line endings keeps them.
#[test]
fn separators_comments_and_line_endings_are_kept() {
    let scratch = Scratch::new("wrap-crlf");
    let config = servers_config(&scratch);
    let config = config.to_str().unwrap();
    let original = concat!(
        "{\r\n",
        "  \"servers\": {\r\n",
        "    \"one\": {\r\n",
        "      \"command\": \"node\", // the runtime\r\n",
        "      \"args\": [\r\n",
        "        \"server.js\", // the script\r\n",
        "        \"--port\",\r\n",
        "      ],\r\n",
        "    },\r\n",
        "    \"two\": { /* lone */ \"command\": \"srv\" },\r\n",
        "    \"three\": {\"command\":\"srv\",\"env\":{}}\r\n",
        "  }\r\n",
        "}\r\n"
    );
    let file = scratch.dir.join("mcp.json");
    std::fs::write(&file, original).unwrap();
    let path = file.to_str().unwrap();
    mcp_redirect(&scratch.dir, &["wrap", "--config", config, path]).ok();
    let wrapped = read(&file);
    let expected = concat!(
        "{\r\n",
        "  \"servers\": {\r\n",
        "    \"one\": {\r\n",
        "      \"command\": \"PROGRAM\", // the runtime\r\n",
        "      \"args\": [\r\n",
        "        \"run\",\r\n",
        "        \"--config\",\r\n",
        "        \"CONFIG\",\r\n",
        "        \"--\",\r\n",
        "        \"node\",\r\n",
        "        \"server.js\", // the script\r\n",
        "        \"--port\",\r\n",
        "      ],\r\n",
        "    },\r\n",
        "    \"two\": { /* lone */ \"command\": \"PROGRAM\", \"args\": [\"run\", \"--config\", \"CONFIG\", \"--\", \"srv\"] },\r\n",
        "    \"three\": {\"command\":\"PROGRAM\",\"args\":[\"run\",\"--config\",\"CONFIG\",\"--\",\"srv\"],\"env\":{}}\r\n",
        "  }\r\n",
        "}\r\n"
    )
    .replace("PROGRAM", cli_exe())
    .replace("CONFIG", config);
    assert_eq!(wrapped, expected);
    std::fs::remove_file(backup_of(&file)).unwrap();
    mcp_redirect(&scratch.dir, &["unwrap", path]).ok();
    assert_eq!(read(&file), original);
}

/// No config file to name: nothing is done (the proxy environment cannot stand for one, as the
/// client will not pass it on). An invalid config: nothing is done either.
#[test]
fn wrap_needs_a_valid_config_file() {
    let scratch = Scratch::new("wrap-no-config");
    let file = scratch.dir.join("mcp.json");
    let original = read(&fixtures().join("cursor.json"));
    std::fs::write(&file, &original).unwrap();
    let out = mcp_redirect(&scratch.dir, &["wrap", file.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("wrap needs a config file for the servers"),
        "{}",
        out.stderr
    );
    let invalid = scratch.config("[[rules]]\nhost = \"a.test\"\nvia = \"nowhere\"\n");
    let out = mcp_redirect(
        &scratch.dir,
        &[
            "wrap",
            "--config",
            invalid.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("no gateway named"), "{}", out.stderr);
    assert_eq!(read(&file), original);
    assert!(!backup_of(&file).exists());

    // Found as run finds it: in $XDG_CONFIG_HOME.
    let xdg = scratch.dir.join("no-such-config-home/mcp-redirect");
    std::fs::create_dir_all(&xdg).unwrap();
    std::fs::write(xdg.join("config.toml"), "default = \"direct\"\n").unwrap();
    let out = mcp_redirect(&scratch.dir, &["wrap", file.to_str().unwrap()]);
    out.ok();
    assert!(read(&file).contains(&format!(
        "\"--config\", \"{}\"",
        xdg.join("config.toml").display()
    )));
}

/// A backup that holds something else is kept, and said; the next name is used.
#[test]
fn an_earlier_backup_is_never_overwritten() {
    let scratch = Scratch::new("wrap-backup");
    let config = servers_config(&scratch);
    let file = scratch.dir.join("settings.json");
    let original = read(&fixtures().join("zed.jsonc"));
    std::fs::write(&file, &original).unwrap();
    std::fs::write(backup_of(&file), "an older backup\n").unwrap();
    let out = mcp_redirect(
        &scratch.dir,
        &[
            "wrap",
            "--config",
            config.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    out.ok();
    let second = PathBuf::from(format!("{}.1", backup_of(&file).display()));
    assert_eq!(read(&backup_of(&file)), "an older backup\n");
    assert_eq!(read(&second), original);
    assert!(
        out.stderr.contains(&format!(
            "{} holds another version of the file: kept; this original goes to {}",
            backup_of(&file).display(),
            second.display()
        )),
        "{}",
        out.stderr
    );
    // unwrap finds the backup that matches.
    mcp_redirect(&scratch.dir, &["unwrap", file.to_str().unwrap()]).ok();
    assert_eq!(read(&file), original);
}

/// The file keeps its mode (~/.claude.json is private), and a symlink stays a link to the file
/// it named, which is the one rewritten.
#[test]
fn mode_and_symlinks_are_kept() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("wrap-mode");
    let config = servers_config(&scratch);
    let real = scratch.dir.join("dotfiles/claude.json");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(&real, read(&fixtures().join("claude-code-user.json"))).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = scratch.dir.join(".claude.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    mcp_redirect(
        &scratch.dir,
        &[
            "wrap",
            "--config",
            config.to_str().unwrap(),
            link.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(read(&real).contains(cli_exe()));
    let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No temporary file left behind.
    let left: Vec<_> = std::fs::read_dir(real.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["claude.json"]);
}

/// Files that hold no MCP servers, or are not JSON or TOML, are refused and left alone.
#[test]
fn files_without_servers_are_refused() {
    let scratch = Scratch::new("wrap-refused");
    let config = servers_config(&scratch);
    let config = config.to_str().unwrap();
    for (name, text, message) in [
        (
            "a.json",
            "{\"editor.fontSize\": 14}\n",
            "no MCP servers in this file",
        ),
        ("b.json", "{\"mcpServers\": {\n", "not valid JSON"),
        ("c.toml", "model = \"x\"\n", "no [mcp_servers] table"),
        (
            "d.json",
            "[1, 2]\n",
            "the file's top level is not a JSON object",
        ),
        ("config", "[mcp_servers.x\n", "not valid TOML"),
    ] {
        let file = scratch.dir.join(name);
        std::fs::write(&file, text).unwrap();
        let out = mcp_redirect(
            &scratch.dir,
            &["wrap", "--config", config, file.to_str().unwrap()],
        );
        assert_eq!(out.code, Some(2), "{name}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{name}: {}", out.stderr);
        assert_eq!(read(&file), text);
    }
}

/// Where the MCP SDK is: $MCP_REDIRECT_TEST_PYTHON (.ci/run sets it from
/// scripts/test-python-packages.sh), else that script's default venv.
fn sdk_python() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("MCP_REDIRECT_TEST_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(python));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let python = cache.join("mcp-redirect-tests/venv/bin/python");
    python.exists().then_some(python)
}

/// The whole way: a Claude Desktop-style file with a local server, wrapped; the MCP Python SDK's
/// stdio client starts the entry as written (its command and args, its env, the SDK's own short
/// environment) and calls the server's tool, which fetches http://something.example.test/: the
/// request goes through the config's gateway, and the client gets the origin's answer.
#[test]
fn a_real_mcp_client_runs_a_wrapped_entry_through_the_gateway() {
    let Some(python) = sdk_python() else {
        eprintln!(
            "a_real_mcp_client_runs_a_wrapped_entry_through_the_gateway: SKIPPED the client's part: \
             no MCP SDK (run scripts/test-python-packages.sh, or set MCP_REDIRECT_TEST_PYTHON)"
        );
        return;
    };
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("wrap-e2e");
    let config = example_test_via(&scratch, proxy.addr);
    let server = fixtures().join("e2e/fetch_server.py");
    let file = scratch.dir.join("claude_desktop_config.json");
    std::fs::write(
        &file,
        format!(
            "{{\n  \"mcpServers\": {{\n    \"fetcher\": {{\n      \"command\": \"python3\",\n      \"args\": [{}],\n      \"env\": {{ \"FETCHER_MODE\": \"test\" }}\n    }}\n  }}\n}}\n",
            serde_json::to_string(server.to_str().unwrap()).unwrap()
        ),
    )
    .unwrap();
    library();
    mcp_redirect(
        &scratch.dir,
        &[
            "wrap",
            "--config",
            config.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    )
    .ok();
    let out = Run::new(
        python.to_str().unwrap(),
        &[
            fixtures().join("e2e/client.py").to_str().unwrap(),
            file.to_str().unwrap(),
            "fetcher",
            "fetch",
            r#"{"url": "http://something.example.test/"}"#,
        ],
    )
    .without_preload()
    .output();
    let outcome: serde_json::Value = serde_json::from_str(out.success().trim())
        .unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
    assert_eq!(
        outcome,
        serde_json::json!({"server": "wrap-test-fetch", "is_error": false, "text": "hello from origin"}),
        "{}",
        out.describe()
    );
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT something.example.test:80 HTTP/1.1"]
    );
    let log = scratch.log();
    let connects = events(&log, "connect");
    assert!(
        connects
            .iter()
            .any(|e| e["host"] == "something.example.test" && e["action"] == "gateway"),
        "{log:?}"
    );
}

/// A gateway password read from the environment must reach the server through the entry's env
/// (the client passes no other variable): said once; no other variable is taken for one.
#[test]
fn a_password_from_the_environment_gets_a_note() {
    let scratch = Scratch::new("wrap-password");
    let config = Config::new()
        .default("corp")
        .gateway("corp", "http", &["127.0.0.1:3128"])
        .gateway_option(r#"username = "u""#)
        .gateway_option(r#"password_env = "MCP_REDIRECT_TEST_CORP_PASSWORD""#)
        .write(&scratch);
    let file = scratch.dir.join("mcp.json");
    std::fs::copy(fixtures().join("cursor.json"), &file).unwrap();
    let out = mcp_redirect(
        &scratch.dir,
        &[
            "wrap",
            "--config",
            config.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    out.ok();
    let notes: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("note: "))
        .collect();
    assert_eq!(
        notes,
        [
            "mcp-redirect: note: MCP_REDIRECT_TEST_CORP_PASSWORD (a password_env) is not set here; it must be set where the program runs, or the library refuses the config",
            "mcp-redirect: mcpServers.postgres: note: its env sets LD_PRELOAD: kept; mcp-redirect run puts the library first and keeps that after it",
            "mcp-redirect: note: the config reads a gateway password from $MCP_REDIRECT_TEST_CORP_PASSWORD: MCP clients give a server only a few variables of their own (HOME, PATH...) and its entry's env, so add MCP_REDIRECT_TEST_CORP_PASSWORD to the env of each wrapped entry",
        ],
        "{}",
        out.stderr
    );
}
