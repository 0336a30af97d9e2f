//! The statically linked `mcp-redirect` (scripts/build-static-cli.sh): it has no interpreter,
//! installs and runs in a root with no C library at all, preloads the copied library into a
//! dynamic curl and supervises a static program; its name lookups read `/etc/hosts` and DNS
//! only, never a module named in `/etc/nsswitch.conf`. And the preload library (crates/preload),
//! which the command does not link, still exports every hook.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::*;

/// The static command, built once per test binary by the script, with the tests' profile (the
/// dev one without debug info: it links faster, and nothing here reads it).
fn static_cli() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let profile = if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        };
        let out = Command::new(manifest.join("scripts/build-static-cli.sh"))
            .args(["--profile", profile])
            .env("CARGO_PROFILE_DEV_DEBUG", "false")
            .output()
            .expect("run scripts/build-static-cli.sh");
        assert!(
            out.status.success(),
            "scripts/build-static-cli.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(stdout.lines().last().expect("the binary's path"))
    })
}

/// Whether an ELF file asks for a program interpreter (`PT_INTERP`): every dynamically linked
/// program does; a static one (static-pie included) does not.
fn has_interpreter(path: &Path) -> bool {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(
        &elf[..5],
        b"\x7fELF\x02",
        "{} is not a 64-bit ELF",
        path.display()
    );
    let word = |at: usize, size: usize| {
        let mut bytes = [0u8; 8];
        bytes[..size].copy_from_slice(&elf[at..at + size]);
        u64::from_le_bytes(bytes) as usize
    };
    let (phoff, phentsize, phnum) = (word(0x20, 8), word(0x36, 2), word(0x38, 2));
    (0..phnum).any(|i| word(phoff + i * phentsize, 4) == 3)
}

fn copy_executable(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

/// `chroot ROOT CMD...` with `/proc` mounted in ROOT (the command finds itself through
/// `/proc/self/exe`), in the tests' private mount namespace.
fn in_root(root: &Path, command: &[&str]) -> Finished {
    let mut args = vec![
        "-c",
        r#"mount -t proc proc "$1/proc" && exec chroot "$@""#,
        "sh",
        root.to_str().unwrap(),
    ];
    args.extend_from_slice(command);
    Run::new("sh", &args).without_preload().output()
}

#[test]
fn the_static_cli_has_no_interpreter() {
    assert!(!has_interpreter(static_cli()), "{}", static_cli().display());
    // The same check on the ordinary build: it does ask for one.
    assert!(has_interpreter(Path::new(cli_exe())));
}

/// The library's hooks: what the preloaded library must export, and no program linking the core
/// may define.
const HOOKS: [&str; 21] = [
    "connect",
    "__connect",
    "sendto",
    "sendmsg",
    "sendmmsg",
    "getaddrinfo",
    "freeaddrinfo",
    "getaddrinfo_a",
    "getnameinfo",
    "gethostbyname",
    "gethostbyname2",
    "gethostbyname_r",
    "gethostbyname2_r",
    "res_query",
    "res_search",
    "res_nquery",
    "res_nsearch",
    "__res_query",
    "__res_search",
    "__res_nquery",
    "__res_nsearch",
];

/// The names of the functions `path` defines (`nm`, with `-D`: those it exports).
fn defined_functions(path: &Path, exported_only: bool) -> Vec<String> {
    let mut nm = Command::new("nm");
    if exported_only {
        nm.arg("-D");
    }
    let out = nm.arg("--defined-only").arg(path).output().expect("nm");
    assert!(out.status.success(), "nm {}", path.display());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.contains(" T "))
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_preload_library_still_exports_every_hook() {
    let exported = defined_functions(library(), true);
    for hook in HOOKS {
        assert!(
            exported.iter().any(|name| name == hook),
            "{hook} is not exported: {exported:?}"
        );
    }
}

/// The hooks are in a crate of their own that the command does not link: the dynamic command
/// defines none of them (libc's are the only ones in its process), as the static one must not.
#[test]
fn the_command_defines_no_hook() {
    let defined = defined_functions(Path::new(cli_exe()), false);
    let hooks: Vec<&str> = HOOKS
        .into_iter()
        .filter(|hook| defined.iter().any(|name| name == hook))
        .collect();
    assert!(hooks.is_empty(), "{} defines {hooks:?}", cli_exe());
}

#[test]
fn in_a_root_without_a_c_library_the_static_cli_installs_checks_and_supervises() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("static-root");
    let root = scratch.dir.join("root");
    for dir in ["proc", "etc", "image"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    // An image with nothing but our files: no loader, no libc, no shell.
    copy_executable(static_cli(), &root.join("image/mcp-redirect"));
    std::fs::copy(library(), root.join("image/libmcp_redirect.so")).unwrap();
    copy_executable(
        Path::new(cli_exe()),
        &root.join("image/mcp-redirect-dynamic"),
    );
    std::fs::rename(compile_static(&scratch, "sconn"), root.join("sconn")).unwrap();
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 gateway.test\n").unwrap();
    // The gateway by name: the static command looks it up in the root's /etc/hosts.
    std::fs::write(
        root.join("config.toml"),
        Config::new()
            .default("deny")
            .log("/events.jsonl")
            .gateway(
                "corp",
                "http",
                &[format!("gateway.test:{}", proxy.addr.port())],
            )
            .rule(r#"cidr = "127.0.0.3/32""#, r#"via = "corp""#)
            .rule(r#"cidr = "127.0.0.1/32""#, r#"action = "direct""#)
            .and(&format!("port = {}", origin.addr.port()))
            .text(),
    )
    .unwrap();

    // The positive control: the ordinary build cannot even start here.
    let dynamic = in_root(&root, &["/image/mcp-redirect-dynamic", "--version"]);
    assert_ne!(dynamic.code, Some(0), "{}", dynamic.describe());

    let out = in_root(
        &root,
        &[
            "/image/mcp-redirect",
            "install",
            "--to",
            "/mcp-redirect",
            "--config",
            "/config.toml",
        ],
    );
    assert_eq!(out.success().lines().count(), 3, "{}", out.describe());
    assert!(
        std::fs::read(root.join("mcp-redirect/mcp-redirect")).unwrap()
            == std::fs::read(static_cli()).unwrap()
    );

    let out = in_root(
        &root,
        &[
            "/mcp-redirect/mcp-redirect",
            "check",
            "--config",
            "/mcp-redirect/mcp-redirect.toml",
            "--connect",
            "--probe",
            "probe.example.test:80",
        ],
    );
    assert!(
        out.success().contains(&format!(
            "corp gateway.test:{0} (127.0.0.1:{0}): ok, http handshake to probe.example.test:80",
            proxy.addr.port()
        )),
        "{}",
        out.describe()
    );

    let port = origin.addr.port().to_string();
    let out = in_root(
        &root,
        &[
            "/mcp-redirect/mcp-redirect",
            "run",
            "--mode",
            "supervise",
            "--config",
            "/mcp-redirect/mcp-redirect.toml",
            "--",
            "/sconn",
            "127.0.0.3",
            "80",
            "127.0.0.1",
            &port,
            "127.0.0.4",
            "80",
        ],
    );
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "ok hello from origin",
            "ok hello from origin",
            &libc::EACCES.to_string()
        ]
    );
    assert_eq!(
        proxy.request_lines(),
        [
            "CONNECT probe.example.test:80 HTTP/1.1",
            "CONNECT 127.0.0.3:80 HTTP/1.1"
        ]
    );
    let log = read_log(&root.join("events.jsonl"));
    let actions: Vec<_> = events(&log, "connect")
        .iter()
        .map(|e| (e["via"].as_str(), e["action"].as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            (Some("supervisor"), Some("gateway")),
            (Some("supervisor"), Some("direct")),
            (Some("supervisor"), Some("deny"))
        ]
    );
}

#[test]
fn installed_from_the_static_cli_curl_runs_under_the_copied_library() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("static-preload");
    let config = example_test_via(&scratch, proxy.addr);
    let dir = scratch.dir.join("mcp-redirect");
    // The static command is not next to a library: it is told where one is, as an image would
    // have it in ../lib/.
    let out = Run::new(
        static_cli().to_str().unwrap(),
        &[
            "install",
            "--to",
            dir.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    )
    .without_preload()
    .env("MCP_REDIRECT_LIB", library())
    .output();
    out.success();
    assert!(
        !out.stderr.contains("dynamically linked"),
        "{}",
        out.describe()
    );
    let out = curl_from_install(&dir, "preload");
    assert_eq!(out.success(), "hello from origin");
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT api.example.test:80 HTTP/1.1"]
    );
    let log = scratch.log();
    let connects = events(&log, "connect");
    assert_eq!(connects.len(), 1, "{log:#?}");
    assert_eq!(connects[0]["exe"], "curl");
    assert!(connects[0].get("via").is_none(), "{log:#?}");
}

#[test]
fn the_static_cli_looks_names_up_in_hosts_and_dns_only() {
    // A name service module of our own, named first in nsswitch.conf: it only leaves a mark when
    // it is loaded. The ordinary command (dynamic glibc) loads it; the static one must not, as it
    // would load another image's modules with a static dlopen.
    let scratch = Scratch::new("static-nss");
    let module = scratch.dir.join("libnss_canary.so.2");
    let source = scratch.dir.join("canary.c");
    std::fs::write(
        &source,
        "#include <fcntl.h>\n#include <stdlib.h>\n#include <unistd.h>\n__attribute__((constructor)) static void loaded(void) {\n    const char *mark = getenv(\"NSS_CANARY_MARK\");\n    if (mark) close(open(mark, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));\n}\n",
    )
    .unwrap();
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&module)
        .arg(&source)
        .status()
        .expect("cc");
    assert!(status.success());
    let nsswitch = scratch.dir.join("nsswitch.conf");
    std::fs::write(&nsswitch, "hosts: canary files dns\n").unwrap();
    let gateway = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = gateway.local_addr().unwrap().port();
    let config = Config::new()
        .gateway(
            "corp",
            "http",
            &[
                format!("gateway.test:{port}"),
                format!("nowhere.test:{port}"),
            ],
        )
        .via("*.example.test", "corp")
        .write(&scratch);
    let check = |program: &Path, mark: &Path| {
        Run::new(
            "sh",
            &[
                "-c",
                r#"mount --bind "$1" /etc/nsswitch.conf && shift && exec "$@""#,
                "sh",
                nsswitch.to_str().unwrap(),
                program.to_str().unwrap(),
                "check",
                "--config",
                config.to_str().unwrap(),
                "--connect",
            ],
        )
        .without_preload()
        .host_entry("127.0.0.1", "gateway.test")
        .env("LD_LIBRARY_PATH", &scratch.dir)
        .env("NSS_CANARY_MARK", mark)
        .output()
    };

    let dynamic_mark = scratch.dir.join("loaded-by-dynamic");
    let out = check(Path::new(cli_exe()), &dynamic_mark);
    assert!(
        dynamic_mark.exists(),
        "the canary module was not loaded by the dynamic command: {}",
        out.describe()
    );

    let static_mark = scratch.dir.join("loaded-by-static");
    let out = check(static_cli(), &static_mark);
    assert!(
        !static_mark.exists(),
        "the static command loaded a name service module: {}",
        out.describe()
    );
    // /etc/hosts answered; the name nobody knows fails with the reason, and says where the
    // static command looked. (One endpoint failed: exit 2.)
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(
        out.stdout
            .contains(&format!("corp gateway.test:{port} (127.0.0.1:{port}): ok")),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout
            .contains(&format!("corp nowhere.test:{port}: does not resolve (EAI_"))
            && out
                .stdout
                .contains("statically linked and reads /etc/hosts and DNS only"),
        "{}",
        out.describe()
    );
}

#[test]
fn run_starts_the_static_cli_itself_as_it_is() {
    // The Docker image's default command is `mcp-redirect run -- mcp-redirect check`: the static
    // command is not a program to supervise, nor one to warn about. A copy of it is.
    let scratch = Scratch::new("static-itself");
    let config = Config::new().default("deny").write(&scratch);
    let copy = scratch.dir.join("mcp-redirect-copy");
    copy_executable(static_cli(), &copy);
    let run = |program: &Path, dry_run: bool| {
        let mut args = vec!["run", "--config", config.to_str().unwrap()];
        if dry_run {
            args.push("--dry-run");
        }
        args.extend(["--", program.to_str().unwrap(), "check"]);
        Run::new(static_cli().to_str().unwrap(), &args)
            .without_preload()
            .env("MCP_REDIRECT_LIB", library())
            .output()
    };

    let itself = run(static_cli(), true);
    assert!(
        !itself.success().contains("mode: supervise") && !itself.stderr.contains("warning"),
        "{}",
        itself.describe()
    );
    let itself = run(static_cli(), false);
    assert!(
        itself
            .success()
            .contains(&format!("source: {}", config.display())),
        "{}",
        itself.describe()
    );

    let other = run(&copy, true);
    assert!(
        other.success().starts_with("mode: supervise\n"),
        "{}",
        other.describe()
    );
}
