//! Shared fixtures for the integration tests: the built library, small gateways of our own on
//! 127.0.0.1 that record what they are asked (an HTTP CONNECT proxy, a SOCKS5 server), a target
//! origin, and a runner for real child programs under `LD_PRELOAD`.
//!
//! The gateways never connect anywhere but the origin they were given: every hostname maps to
//! it, so no test sends a packet off loopback.

pub mod config;
pub mod dns;
pub mod gateways;
pub mod slow;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub use config::Config;
pub use gateways::{ConnectProxy, ProxyBehaviour, Socks5Server};

/// `libmcp_redirect.so` (the `mcp-redirect` crate, `crates/preload`), built once (by the first
/// test that needs it) with the tests' profile.
pub fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| built(&["-p", "mcp-redirect", "--lib"], "libmcp_redirect.so"))
}

/// The `mcp-redirect` command (the `mcp-redirect-cli` crate, `crates/cli`), built once with the
/// tests' profile. Cargo names a binary to the tests (`CARGO_BIN_EXE_*`) of its own package
/// only, and the command is in another.
pub fn cli_exe() -> &'static str {
    static CLI: OnceLock<String> = OnceLock::new();
    CLI.get_or_init(|| {
        let path = built(
            &["-p", "mcp-redirect-cli", "--bin", "mcp-redirect"],
            "mcp-redirect",
        );
        path.into_os_string()
            .into_string()
            .expect("the command's path is UTF-8")
    })
}

/// Runs `cargo build ARGS` in the workspace with the tests' profile and returns the path of the
/// artifact `file` it made in the target directory.
fn built(args: &[&str], file: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let release = !cfg!(debug_assertions);
    let mut cmd = Command::new(env!("CARGO"));
    cmd.arg("build")
        .args(args)
        .arg("--quiet")
        .current_dir(manifest);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "cargo build {} failed", args.join(" "));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("target"));
    let artifact = target
        .join(if release { "release" } else { "debug" })
        .join(file);
    assert!(artifact.exists(), "{} was not built", artifact.display());
    artifact
}

/// A program of the crate's examples (`tests/programs/`), built with the tests' profile.
pub fn example(name: &str) -> PathBuf {
    built(
        &["-p", "mcp-redirect-core", "--example", name],
        &format!("examples/{name}"),
    )
}

/// Compiles `tests/c/NAME.c` into a static binary in the scratch directory: a program
/// `LD_PRELOAD` cannot enter.
pub fn compile_static(scratch: &Scratch, name: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(format!("{name}.c"));
    let binary = scratch.dir.join(name);
    let status = Command::new("cc")
        .args(["-static", "-O1", "-pthread", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("cc");
    assert!(status.success(), "cc -static {}", source.display());
    binary
}

/// Builds `tests/go/fetch.go` with `CGO_ENABLED=0` (Go's own resolver, raw system calls: a
/// program `LD_PRELOAD` never sees) into the scratch directory.
pub fn build_go_fetch(scratch: &Scratch) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/fetch.go");
    let binary = scratch.dir.join("fetch");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(&source)
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", scratch.dir.join("gocache"))
        .env("GOPATH", scratch.dir.join("gopath"))
        .env("GOFLAGS", "-mod=mod")
        .env("GO111MODULE", "off")
        .status()
        .expect("go (golang-go) is needed for this test");
    assert!(status.success(), "go build");
    binary
}

/// A config that sends `*.example.test` through the HTTP CONNECT gateway at `proxy`, denies the
/// rest, and logs to the scratch directory's log.
pub fn example_test_via(scratch: &Scratch, proxy: SocketAddr) -> PathBuf {
    Config::new()
        .default("deny")
        .log(scratch.log_path())
        .gateway("corp", "http", &[proxy])
        .via("*.example.test", "corp")
        .write(scratch)
}

/// What `mcp-redirect install --to DIR` made, used: `DIR/mcp-redirect run --mode MODE --config
/// DIR/mcp-redirect.toml -- curl http://api.example.test/`.
pub fn curl_from_install(dir: &Path, mode: &str) -> Finished {
    let config = dir.join("mcp-redirect.toml");
    Run::new(
        dir.join("mcp-redirect").to_str().unwrap(),
        &[
            "run",
            "--mode",
            mode,
            "--config",
            config.to_str().unwrap(),
            "--",
            "curl",
            "-sS",
            "--max-time",
            "20",
            "http://api.example.test/",
        ],
    )
    .without_preload()
    .output()
}

/// A scratch directory for one test (config, log), removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "mcp-redirect-test-{}-{name}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    /// Writes `text` as the config file and returns its path.
    pub fn config(&self, text: &str) -> PathBuf {
        let path = self.dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// The log's lines, each parsed as JSON (a malformed line fails the test).
    pub fn log(&self) -> Vec<serde_json::Value> {
        read_log(&self.log_path())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn read_log(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("malformed log line {line:?}: {e}"))
        })
        .collect()
}

/// Log events of one kind (`connect`, `resolve`).
pub fn events<'a>(log: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    log.iter().filter(|e| e["event"] == kind).collect()
}

/// A child program run under the library, inside a mount namespace of its own where
/// `/etc/resolv.conf` names only 127.0.0.1 (where no DNS server listens): whatever the library
/// does, no DNS query can leave the machine. Tests may add names to its `/etc/hosts`.
pub struct Run {
    cmd: Command,
    program: String,
    args: Vec<String>,
    hosts: Vec<String>,
    isolated: bool,
    description: String,
}

/// A resolv.conf that points at loopback only.
fn loopback_resolv_conf() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = std::env::temp_dir().join(format!(
            "mcp-redirect-test-resolv-{}.conf",
            std::process::id()
        ));
        std::fs::write(
            &path,
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .unwrap();
        path
    })
}

impl Run {
    /// `program args...` with `LD_PRELOAD` set to the library, a clean proxy environment, and
    /// `MCP_REDIRECT_CONFIG` unset (tests add what they need).
    pub fn new(program: &str, args: &[&str]) -> Run {
        let mut cmd = Command::new("unshare");
        cmd.env("LD_PRELOAD", library())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in [
            "MCP_REDIRECT_CONFIG",
            "MCP_REDIRECT_LOG",
            "MCP_REDIRECT_POD_NAME",
            "MCP_REDIRECT_POD_NAMESPACE",
            "MCP_REDIRECT_POD_UID",
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            cmd.env_remove(var);
        }
        // The command finds a config of the user's below XDG_CONFIG_HOME (or ~/.config): never
        // the developer's own in a test. (The system's, /etc/mcp-redirect, is hidden in
        // `prepare`.)
        cmd.env(
            "XDG_CONFIG_HOME",
            "/nonexistent/mcp-redirect-tests/xdg-config-home",
        );
        Run {
            cmd,
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            hosts: Vec::new(),
            isolated: false,
            description: format!("{program} {}", args.join(" ")),
        }
    }

    /// Runs the child in a network namespace of its own with only loopback: for tests whose
    /// failure would otherwise send a packet towards a non-local address.
    pub fn no_network(mut self) -> Run {
        self.isolated = true;
        self
    }

    /// Adds `address name` to the child's private `/etc/hosts`.
    pub fn host_entry(mut self, address: &str, name: &str) -> Run {
        self.hosts.push(format!("{address} {name}"));
        self
    }

    /// Completes the command: `unshare` a mount namespace, bind the private files, exec.
    fn prepare(&mut self) {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let hosts = std::env::temp_dir().join(format!(
            "mcp-redirect-test-hosts-{}-{n}",
            std::process::id()
        ));
        let mut text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        for line in &self.hosts {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&hosts, text).unwrap();
        if self.isolated {
            self.cmd.arg("--net");
        }
        let lo_up = if self.isolated {
            "ip link set lo up && "
        } else {
            ""
        };
        // A system-wide config of this machine's, which the command would find, is hidden
        // behind an empty directory in the child's mount namespace.
        let hide_system_config =
            "if [ -d /etc/mcp-redirect ]; then mount -t tmpfs tmpfs /etc/mcp-redirect; fi && ";
        self.cmd
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                r#"{lo_up}{hide_system_config}mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && rm -f "$1" && shift 2 && exec "$@""#
            ))
            .arg("sh")
            .arg(&hosts)
            .arg(loopback_resolv_conf())
            .arg(&self.program)
            .args(&self.args);
    }

    /// `curl -sS --max-time 20 URL`.
    pub fn curl(url: &str) -> Run {
        Run::new("curl", &["-sS", "--max-time", "20", url])
    }

    pub fn python(script: &str) -> Run {
        Run::new("python3", &["-c", script])
    }

    pub fn node(script: &str) -> Run {
        Run::new("node", &["-e", script])
    }

    pub fn config(mut self, path: &Path) -> Run {
        self.cmd.env("MCP_REDIRECT_CONFIG", path);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Run {
        self.cmd.env(key, value);
        self
    }

    /// Runs the child in `dir`.
    pub fn current_dir(mut self, dir: &Path) -> Run {
        self.cmd.current_dir(dir);
        self
    }

    /// Gives the child a pipe for stdin (`spawn` callers write to it).
    pub fn stdin_piped(mut self) -> Run {
        self.cmd.stdin(Stdio::piped());
        self
    }

    pub fn without_preload(mut self) -> Run {
        self.cmd.env_remove("LD_PRELOAD");
        self
    }

    /// Runs to completion (killed after 60 s, which fails the test: nothing here should hang).
    pub fn output(mut self) -> Finished {
        self.prepare();
        let mut child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.description));
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out_reader = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            buf
        });
        let err_reader = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            buf
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} did not finish within 60 s", self.description);
            }
            thread::sleep(Duration::from_millis(10));
        };
        let output = Output {
            status,
            stdout: out_reader.join().unwrap(),
            stderr: err_reader.join().unwrap(),
        };
        Finished {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            code: output.status.code(),
            description: self.description,
        }
    }

    /// Starts the program and returns the child (for concurrent runs).
    pub fn spawn(mut self) -> std::process::Child {
        self.prepare();
        self.cmd.spawn().unwrap()
    }
}

pub struct Finished {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
    description: String,
}

impl Finished {
    /// Asserts exit status 0 and returns stdout.
    pub fn success(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "{} failed\n--- stdout\n{}\n--- stderr\n{}",
            self.description,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    pub fn describe(&self) -> String {
        format!(
            "{} exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.description, self.code, self.stdout, self.stderr
        )
    }
}

/// A plain HTTP origin on 127.0.0.1 that answers every request with `hello from <name>` and
/// records each request head.
pub struct Origin {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Origin {
    pub fn start(name: &str) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let body = format!("hello from {name}");
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let seen = seen.clone();
                let body = body.clone();
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let head = read_head(&mut stream);
                    seen.lock().unwrap().push(head);
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes());
                });
            }
        });
        Origin { addr, requests }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads up to the end of an HTTP head (or EOF), byte by byte: test traffic is tiny.
pub fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A TCP listener that accepts and holds connections without a word: a gateway that hangs.
pub fn silent_listener() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

/// A loopback port with nothing listening (bound then released).
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A listener that answers every connection with `bytes` at once (whatever it is sent), then
/// closes: a gateway speaking nonsense.
pub fn raw_responder(bytes: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(&bytes);
            // Read what the client sends before closing, so the close is a FIN, not a reset.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut sink = [0u8; 512];
            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
        }
    });
    addr
}
