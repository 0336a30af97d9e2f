//! The documentation as tests: what README.md and docs/*.md show must be what the code does.
//!
//! - `console` blocks are run with trycmd (`$ mcp-redirect ...`, then the expected output, stdout
//!   and stderr together; `? N` for an exit status other than 0; `...` alone on a line for lines
//!   left out, `[..]` for text that varies). They run from a scratch directory that links to the
//!   repository's `docs/`, `examples/` and `scripts/`, inside a network namespace with only
//!   loopback, where the worked example's helpers listen: `scripts/demo_origin.py` on
//!   127.0.0.1:8000 and 127.0.0.1:4000, `scripts/demo_gateway.py` on 127.0.0.1:3128. Commands
//!   that need more than that (real MCP servers, registries, Docker) are shown in `sh` blocks,
//!   without output.
//! - Every ```toml block is parsed by the library's loader (`mcp_redirect_core::config::parse`) and
//!   every ```json block by serde_json (a block of JSON lines line by line). A block right after
//!   `<!-- invalid -->` must fail to parse; one right after `<!-- file: PATH -->` must be the
//!   content of that file of the repository.
//! - Links between README.md, docs/*.md and BENCHMARKS.md, and to the repository's files, must
//!   lead somewhere, anchors included (GitHub's rules for heading anchors).
//! - No absolute path of a build machine in README.md, docs/ or examples/.
//! - The quick start's install line and `.ci/run` read one list of packages.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and docs/*.md: the pages whose examples are checked.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A fenced code block of a Markdown page.
#[derive(Debug)]
struct Block {
    /// The info string's first word (`toml`, `json`, `console`...), empty for none.
    lang: String,
    text: String,
    /// 1-based line of the opening fence.
    line: usize,
    /// The last non-blank line before the fence, trimmed (a marker such as `<!-- invalid -->`).
    before: String,
}

fn blocks(text: &str) -> Vec<Block> {
    scan(text).0
}

/// A page's fenced code blocks, and its lines outside them (where headings and links are).
fn scan(text: &str) -> (Vec<Block>, Vec<&str>) {
    let mut blocks = Vec::new();
    let mut prose = Vec::new();
    let mut lines = text.lines().enumerate();
    let mut before = String::new();
    // A run of 3 or more fence characters opening a line: the character and the run's length.
    let run = |line: &str, ch: char| line.trim_start().chars().take_while(|&c| c == ch).count();
    while let Some((n, line)) = lines.next() {
        let (fence_char, len) = match (run(line, '`'), run(line, '~')) {
            (ticks, _) if ticks >= 3 => ('`', ticks),
            (_, tildes) if tildes >= 3 => ('~', tildes),
            _ => {
                if !line.trim().is_empty() {
                    before = line.trim().to_string();
                }
                prose.push(line);
                continue;
            }
        };
        let lang = line.trim_start()[len..]
            .trim()
            .split(|c: char| c.is_whitespace() || c == ',')
            .next()
            .unwrap_or("")
            .to_string();
        let mut body = String::new();
        for (_, inner) in lines.by_ref() {
            let closing = run(inner, fence_char);
            if closing >= len && inner.trim_start()[closing..].trim().is_empty() {
                break;
            }
            body.push_str(inner);
            body.push('\n');
        }
        blocks.push(Block {
            lang,
            text: body,
            line: n + 1,
            before: std::mem::take(&mut before),
        });
    }
    (blocks, prose)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Pages kept as they were written, whose TOML blocks are fragments of a config (a key or two
/// to add to one): their syntax is checked, not their schema.
fn unchanged(page: &Path) -> bool {
    ["docs/nonblocking.md", "docs/threat-model.md"]
        .iter()
        .any(|p| page == repo().join(p))
}

/// Every ```toml block is a config the library accepts, or after `<!-- invalid -->` one it
/// refuses. `password_env` variables count as set: a block shows a file, not an environment.
#[test]
fn toml_examples_are_configs_the_library_loads() {
    let getenv = |_: &str| Some("example".to_string());
    let mut checked = 0;
    let mut problems = Vec::new();
    for page in pages() {
        for block in blocks(&read(&page)).iter().filter(|b| b.lang == "toml") {
            let result = if unchanged(&page) {
                toml::from_str::<toml::Table>(&block.text)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            } else {
                // A block that shows a file is loaded as that file (its list paths are relative
                // to it); the others as if from a file in the current directory.
                let path = block
                    .before
                    .strip_prefix("<!-- file: ")
                    .and_then(|r| r.strip_suffix(" -->"))
                    .map_or_else(|| "example.toml".into(), |p| repo().join(p));
                let source = mcp_redirect_core::config::ConfigSource::File(path);
                mcp_redirect_core::config::parse(&block.text, source, &getenv)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            let place = format!("{}:{}", relative(&page), block.line);
            match (block.before == "<!-- invalid -->", result) {
                (false, Err(e)) => problems.push(format!("{place}: {e}")),
                (true, Ok(_)) => problems.push(format!(
                    "{place}: marked <!-- invalid --> but the library loads it"
                )),
                _ => {}
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 10, "only {checked} TOML blocks found");
}

/// Every ```json block parses: as one document, or line by line (JSON lines, as the log).
#[test]
fn json_examples_parse() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for page in pages() {
        for block in blocks(&read(&page)).iter().filter(|b| b.lang == "json") {
            let place = format!("{}:{}", relative(&page), block.line);
            let whole = serde_json::from_str::<serde_json::Value>(&block.text).map(|_| ());
            let lines = || {
                block
                    .text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .try_for_each(|l| serde_json::from_str::<serde_json::Value>(l).map(|_| ()))
            };
            let ok = whole.is_ok() || lines().is_ok();
            match (block.before == "<!-- invalid -->", ok) {
                (false, false) => {
                    problems.push(format!("{place}: {}", whole.unwrap_err()));
                }
                (true, true) => {
                    problems.push(format!("{place}: marked <!-- invalid --> but parses"))
                }
                _ => {}
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 5, "only {checked} JSON blocks found");
}

/// A block after `<!-- file: PATH -->` shows that file of the repository, whole.
#[test]
fn blocks_that_show_a_file_show_it_as_it_is() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for page in pages() {
        for block in blocks(&read(&page)) {
            let Some(path) = block
                .before
                .strip_prefix("<!-- file: ")
                .and_then(|r| r.strip_suffix(" -->"))
            else {
                continue;
            };
            let place = format!("{}:{}", relative(&page), block.line);
            match std::fs::read_to_string(repo().join(path)) {
                Ok(text) if text == block.text => {}
                Ok(_) => problems.push(format!("{place}: differs from {path}")),
                Err(e) => problems.push(format!("{place}: {path}: {e}")),
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 1, "no <!-- file: --> block found");
}

/// GitHub's anchor for a heading: lower case, inline markup and punctuation dropped (letters,
/// digits, `-` and `_` stay), spaces to `-`.
fn slug(heading: &str) -> String {
    // A link in a heading contributes its text only.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after
            .find("](")
            .and_then(|close| after[close..].find(')').map(|end| (close, close + end + 1)))
        {
            Some((close, end)) => {
                text.push_str(&after[..close]);
                rest = &after[end..];
            }
            None => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings (outside code blocks), with GitHub's `-1`, `-2` suffixes
/// for repeated ones.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = BTreeSet::new();
    for line in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let n = seen.entry(base.clone()).or_insert(0);
        anchors.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    anchors
}

/// The lines of a page outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    scan(text).1
}

/// `[text](target)` links of a line, outside inline code.
fn links(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Drop inline code spans first: `[x](y)` inside backticks is not a link.
    let mut plain = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            plain.push(c);
        }
    }
    let mut rest = plain.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].split_whitespace().next().unwrap_or("");
        out.push(target.to_string());
        rest = &after[end..];
    }
    out
}

#[test]
fn links_and_anchors_lead_somewhere() {
    let mut files = pages();
    files.push(repo().join("BENCHMARKS.md"));
    let mut anchor_cache: HashMap<PathBuf, BTreeSet<String>> = HashMap::new();
    let mut anchors_of = |path: &Path| -> BTreeSet<String> {
        anchor_cache
            .entry(path.to_path_buf())
            .or_insert_with(|| anchors(&read(path)))
            .clone()
    };
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = read(file);
        for (n, line) in prose_lines(&text).iter().enumerate() {
            for target in links(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, anchor) = match target.split_once('#') {
                    Some((p, a)) => (p, Some(a)),
                    None => (target.as_str(), None),
                };
                let dest = if path.is_empty() {
                    file.clone()
                } else {
                    file.parent().unwrap().join(path)
                };
                let place = format!("{} (prose line {}): ({target})", relative(file), n + 1);
                if !dest.exists() {
                    problems.push(format!("{place}: no such file"));
                    continue;
                }
                if let Some(anchor) = anchor {
                    if dest.extension().is_some_and(|e| e == "md") {
                        if !anchors_of(&dest).contains(anchor) {
                            problems.push(format!("{place}: no heading with this anchor"));
                        }
                    } else {
                        problems.push(format!(
                            "{place}: an anchor into a file that is not Markdown"
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 50, "only {checked} links found");
}

#[test]
fn anchor_rules_are_githubs() {
    assert_eq!(slug("Quick start on Debian 12"), "quick-start-on-debian-12");
    assert_eq!(slug("The `ecs` format"), "the-ecs-format");
    assert_eq!(
        slug("Leak-proofing: what is closed, what is not"),
        "leak-proofing-what-is-closed-what-is-not"
    );
    assert_eq!(
        slug("PROXY protocol v2 (rewrite gateways)"),
        "proxy-protocol-v2-rewrite-gateways"
    );
    assert_eq!(slug("See [the log](log.md)"), "see-the-log");
    let twice = anchors("# A\n## Same\n```\n# not a heading\n```\n## Same\n");
    assert!(twice.contains("same") && twice.contains("same-1") && !twice.contains("not-a-heading"));
    assert_eq!(
        links("see [a](a.md#x) and `[b](b.md)` and [c](https://e.org)"),
        ["a.md#x", "https://e.org"]
    );
}

/// Paths of the machine that wrote a page mean nothing to its reader.
#[test]
fn no_absolute_path_of_a_build_machine() {
    let here = repo().display().to_string();
    let forbidden = [here.as_str(), "/work/", "/tmp/", "/root/", "/Users/"];
    let mut files = pages();
    files.push(repo().join("BENCHMARKS.md"));
    for dir in ["docs/examples", "examples"] {
        let mut stack = vec![repo().join(dir)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push(path);
                }
            }
        }
    }
    let mut problems = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            for bad in forbidden {
                if line.contains(bad) {
                    problems.push(format!("{}:{}: {bad} in {line:?}", relative(file), n + 1));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The quick start installs what the tests need from the list `.ci/run` installs from.
#[test]
fn the_quick_start_and_ci_install_one_list() {
    const LIST: &str = "scripts/test-packages.txt";
    let install = format!("apt-get install -y --no-install-recommends $(grep -v '^#' {LIST})");
    let readme = read(&repo().join("README.md"));
    assert!(
        readme.contains(&install),
        "README.md does not run: {install}"
    );
    let ci = read(&repo().join(".ci/run"));
    assert!(ci.contains(LIST), ".ci/run does not read {LIST}");
    assert!(
        ci.lines().any(|l| l.trim() == "cargo test"),
        ".ci/run does not run the README's test command"
    );
    let packages: Vec<String> = read(&repo().join(LIST))
        .lines()
        .map(|l| l.split('#').next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    // What the tests run, and the package that brings each on Debian 12.
    for needed in [
        "curl",
        "python3",
        "nodejs",
        "npm",
        "golang-go",
        "gcc",
        "libc6-dev",
        "util-linux",
        "iproute2",
        "procps",
        "ca-certificates",
    ] {
        assert!(
            packages.iter().any(|p| p == needed),
            "{LIST} lacks {needed}"
        );
    }
}

/// Every field name the log writers write (`key("...")` in src/log/) is in docs/log.md.
#[test]
fn every_log_field_is_in_the_logs_page() {
    let page = read(&repo().join("docs/log.md"));
    let mut names = BTreeSet::new();
    for file in ["src/log/mod.rs", "src/log/ecs.rs"] {
        let source = read(&repo().join(file));
        let mut rest = source.as_str();
        while let Some(at) = rest.find("key(\"") {
            let after = &rest[at + 5..];
            let end = after.find('"').unwrap();
            names.insert(after[..end].to_string());
            rest = &after[end..];
        }
    }
    assert!(names.len() > 20, "found only {names:?} in src/log/");
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !page.contains(&format!("`{n}`")) && !page.contains(&format!("\"{n}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/log.md does not describe {missing:?}"
    );
}

/// docs/development.md's table of the test files names every one of them.
#[test]
fn the_test_table_names_every_test_file() {
    let page = read(&repo().join("docs/development.md"));
    let table: String = page
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split(" | ").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(repo().join("tests")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".rs") && !table.contains(&format!("`{name}`")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/development.md's test table leaves out {missing:?}"
    );
}

/// Starts a helper of `scripts/` and waits until `port` on 127.0.0.1 accepts connections.
fn helper(args: &[&str], port: u16) -> Child {
    let child = Command::new("python3")
        .args(args)
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{args:?} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

struct Helpers(Vec<Child>);

impl Drop for Helpers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const SANDBOX_ENV: &str = "MCP_REDIRECT_DOCS_SANDBOX";

/// The console examples, run by `console_examples` inside its namespaces.
#[test]
#[ignore = "run by console_examples, inside a network namespace of its own"]
fn console_examples_in_sandbox() {
    assert!(
        std::env::var_os(SANDBOX_ENV).is_some(),
        "run through console_examples, which sets up the network namespace"
    );
    let _helpers = Helpers(vec![
        helper(&["scripts/demo_origin.py", "--port", "8000"], 8000),
        helper(
            &[
                "scripts/demo_gateway.py",
                "--port",
                "3128",
                "--origin-port",
                "8000",
            ],
            3128,
        ),
        helper(&["scripts/demo_origin.py", "--port", "4000"], 4000),
    ]);
    let cases = trycmd::TestCases::new();
    cases
        .register_bin("mcp-redirect", Path::new(crate::support::cli_exe()))
        .timeout(Duration::from_secs(60));
    for page in pages() {
        cases.case(page);
    }
    cases.run();
    log_lines_have_the_shape_the_library_writes();
    std::fs::write(RAN_MARKER, "").unwrap();
}

/// The fields of a native log line, by event: what the documented lines must have.
fn shape(line: &serde_json::Value) -> Option<(String, BTreeSet<String>)> {
    let object = line.as_object()?;
    let event = object.get("event")?.as_str()?.to_string();
    Some((event, object.keys().cloned().collect()))
}

/// The log the console examples just wrote (`--log events.jsonl`, from curl, Python and Node)
/// and the committed logs the docs show (`docs/examples/events.jsonl`, which `report` reads in
/// docs/cli.md, and the native lines of the pages' JSON blocks) have lines of the same shapes:
/// a field added to or dropped from the log fails here until the docs follow.
fn log_lines_have_the_shape_the_library_writes() {
    let fresh: BTreeSet<(String, BTreeSet<String>)> =
        crate::support::read_log(Path::new("events.jsonl"))
            .iter()
            .filter_map(shape)
            .collect();
    assert!(
        fresh.iter().any(|(event, _)| event == "connect"),
        "the console examples wrote no connect line to events.jsonl"
    );
    let mut documented: Vec<(String, serde_json::Value)> =
        crate::support::read_log(&repo().join("docs/examples/events.jsonl"))
            .into_iter()
            .map(|line| ("docs/examples/events.jsonl".to_string(), line))
            .collect();
    for page in pages().iter().filter(|p| !unchanged(p)) {
        for block in blocks(&read(page)).iter().filter(|b| b.lang == "json") {
            for line in block.text.lines() {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
                    documented.push((format!("{}:{}", relative(page), block.line), value));
                }
            }
        }
    }
    let mut problems = Vec::new();
    for (place, line) in &documented {
        let Some((event, keys)) = shape(line) else {
            continue;
        };
        // Only the events the examples make; a documented line must look like one of them.
        if !fresh.iter().any(|(e, _)| *e == event) {
            continue;
        }
        if !fresh.contains(&(event.clone(), keys.clone())) {
            let like: Vec<_> = fresh.iter().filter(|(e, _)| *e == event).collect();
            problems.push(format!(
                "{place}: a {event} line with fields {keys:?}; the library writes {like:?}"
            ));
        }
    }
    let shown: BTreeSet<_> = documented.iter().filter_map(|(_, l)| shape(l)).collect();
    for missing in fresh.difference(&shown) {
        problems.push(format!(
            "docs/examples/events.jsonl has no line shaped like {missing:?}, which the library writes now"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every `console` block of README.md and docs/*.md, run: in a scratch directory that links to
/// the repository's docs/, examples/ and scripts/, in a network namespace with only loopback
/// (nothing an example does can leave the machine) and a mount namespace whose
/// `/etc/resolv.conf` names 127.0.0.1 only.
#[test]
fn console_examples() {
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("console_examples: skipped, needs root for its namespaces");
        return;
    }
    // `run` finds the library next to the command.
    crate::support::library();
    let scratch = crate::support::Scratch::new("docs");
    for dir in ["docs", "examples", "scripts"] {
        std::os::unix::fs::symlink(repo().join(dir), scratch.dir.join(dir)).unwrap();
    }
    let resolv = scratch.dir.join(".resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .unwrap();
    let hosts = scratch.dir.join(".hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n::1 localhost\n").unwrap();
    // The command finds a config of the user's or the system's where none is named: the
    // examples must not see this machine's.
    let empty = scratch.dir.join(".empty");
    std::fs::create_dir(&empty).unwrap();
    let mut command = Command::new("unshare");
    command
        .args(["--net", "--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"ip link set lo up && mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && { [ ! -d /etc/mcp-redirect ] || mount --bind "$3" /etc/mcp-redirect; } && shift 3 && exec "$@""#)
        .arg("sh")
        .arg(&resolv)
        .arg(&hosts)
        .arg(&empty)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &sandboxed_test_name(),
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .current_dir(&scratch.dir)
        .env(SANDBOX_ENV, "1")
        .env("XDG_CONFIG_HOME", &empty);
    for var in [
        "MCP_REDIRECT_CONFIG",
        "MCP_REDIRECT_LOG",
        "MCP_REDIRECT_LIB",
        "MCP_REDIRECT_POD_NAME",
        "MCP_REDIRECT_POD_NAMESPACE",
        "MCP_REDIRECT_POD_UID",
        "LD_PRELOAD",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        command.env_remove(var);
    }
    let status = command.status().expect("unshare");
    assert!(
        status.success(),
        "the docs drifted from what the code does (see above)"
    );
    // A filter that names no test passes too: the examples must have run.
    assert!(
        scratch.dir.join(RAN_MARKER).exists(),
        "{} did not run (its name as a filter matched no test)",
        sandboxed_test_name()
    );
}

/// Written by `console_examples_in_sandbox` into its working directory once it has run.
const RAN_MARKER: &str = ".console-examples-ran";

/// `console_examples_in_sandbox`'s name as the test harness knows it: its path in the test
/// binary, whose crate name comes first in `module_path!()`.
fn sandboxed_test_name() -> String {
    let module = module_path!()
        .split_once("::")
        .map_or("", |(_, module)| module);
    format!("{module}::console_examples_in_sandbox")
}
