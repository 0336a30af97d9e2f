//! The zero-leak proof. Two network namespaces of the test's own, joined by a veth pair: the
//! client side (10.200.0.2) can reach only the gateway side (10.200.0.1), where an HTTP CONNECT
//! gateway listens on port 3128 and a sniffer records every IPv4 packet that arrives from the
//! client. Real clients (curl, Python, Node) run under the library with `default = "deny"`,
//! `strict = true` and one routed domain, and try every way out: routed names, literal
//! addresses, other ports, UDP; and a static program that wants out (`tests/c/escape.c`) runs
//! under the supervisor. The only packets that may leave the client are to the gateway
//! endpoint. A control run without the library proves the sniffer sees what leaks.
//!
//! Root only (namespaces); nothing leaves the machine: every address lives in the namespaces.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

const GATEWAY_IP: &str = "10.200.0.1";
const CLIENT_IP: &str = "10.200.0.2";

/// The two namespaces and their link, removed on drop.
struct Net {
    client: String,
    gateway: String,
    children: Vec<Child>,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("iproute2's ip");
    assert!(status.success(), "ip {}", args.join(" "));
}

impl Net {
    /// `tag`: one letter per test, so that the tests of this file can run at once.
    fn new(tag: &str) -> Net {
        let id = std::process::id() % 100_000;
        let net = Net {
            client: format!("mcprc{id}{tag}"),
            gateway: format!("mcprg{id}{tag}"),
            children: Vec::new(),
        };
        let (c, g) = (net.client.as_str(), net.gateway.as_str());
        let (vc, vg) = (format!("vc{id}{tag}"), Net::gateway_link(tag));
        ip(&["netns", "add", c]);
        ip(&["netns", "add", g]);
        ip(&[
            "link", "add", &vc, "netns", c, "type", "veth", "peer", "name", &vg, "netns", g,
        ]);
        for (ns, dev, addr) in [(c, vc.as_str(), CLIENT_IP), (g, vg.as_str(), GATEWAY_IP)] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            // No IPv6 on the link: its neighbour discovery would be noise in the capture.
            let sysctl = format!("net.ipv6.conf.{dev}.disable_ipv6=1");
            assert!(Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-q", "-w", &sysctl])
                .status()
                .unwrap()
                .success());
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        // Everything the client sends off-box would go over the link.
        ip(&["-n", c, "route", "add", "default", "via", GATEWAY_IP]);
        net
    }

    /// The gateway namespace's end of the link.
    fn gateway_link(tag: &str) -> String {
        format!("vg{}{tag}", std::process::id() % 100_000)
    }

    /// Starts the origin (port 8080), the HTTP CONNECT gateway in front of it (3128) and the
    /// sniffer of what comes from the client, into `capture`, in the gateway namespace.
    fn start_gateway_side(&mut self, tag: &str, capture: &Path) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        self.in_gateway(
            "python3",
            &[
                root.join("scripts/demo_origin.py").to_str().unwrap(),
                "--port",
                "8080",
            ],
        );
        self.in_gateway(
            "python3",
            &[
                root.join("scripts/demo_gateway.py").to_str().unwrap(),
                "--listen",
                GATEWAY_IP,
                "--port",
                "3128",
                "--origin-port",
                "8080",
            ],
        );
        self.in_gateway(
            "python3",
            &[
                "-c",
                SNIFFER,
                &Net::gateway_link(tag),
                capture.to_str().unwrap(),
                CLIENT_IP,
            ],
        );
        // The sniffer says when its socket is bound; a loaded machine can take seconds.
        let ready = std::path::PathBuf::from(format!("{}.ready", capture.display()));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !ready.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the sniffer never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.wait_for_listener("127.0.0.1", 8080);
        self.wait_for_listener(GATEWAY_IP, 3128);
    }

    /// Waits until something in the gateway namespace accepts connections on `ip:port`.
    fn wait_for_listener(&self, ip: &str, port: u16) {
        let poll = format!(
            "import socket, sys, time\n\
             for _ in range(600):\n\
             \x20   try:\n\
             \x20       socket.create_connection(('{ip}', {port}), 1).close()\n\
             \x20       sys.exit(0)\n\
             \x20   except OSError:\n\
             \x20       time.sleep(0.1)\n\
             sys.exit(1)\n"
        );
        let status = Command::new("ip")
            .args(["netns", "exec", &self.gateway, "python3", "-c", &poll])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "nothing listens on {ip}:{port} in the gateway namespace"
        );
    }

    /// Starts `program args` in the gateway namespace.
    fn in_gateway(&mut self, program: &str, args: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.gateway, program])
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.client])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.gateway])
            .status();
    }
}

/// Records (protocol, destination, port) of every IPv4 packet from the client, one per line.
const SNIFFER: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((sys.argv[1], 0))
out = open(sys.argv[2], "a", buffering=1)
open(sys.argv[2] + ".ready", "w").close()
while True:
    frame = s.recv(65535)
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        continue
    ip = frame[14:]
    if socket.inet_ntoa(ip[12:16]) != sys.argv[3]:
        continue
    proto = {6: "tcp", 17: "udp", 1: "icmp"}.get(ip[9], str(ip[9]))
    header = (ip[0] & 0x0f) * 4
    port = struct.unpack("!H", ip[header + 2:header + 4])[0] if proto in ("tcp", "udp") else 0
    out.write(f"{proto} {socket.inet_ntoa(ip[16:20])} {port}\n")
"#;

fn packets(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The packets seen, once `expected` is among them (or 10 s have passed: the caller asserts).
fn packets_soon(log: &Path, expected: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = packets(log);
        if seen.iter().any(|p| p == expected) || std::time::Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn nothing_leaves_the_client_except_to_the_gateway() {
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("zero-leak test skipped: it needs root (network namespaces)");
        return;
    }
    let mut net = Net::new("l");
    let scratch = Scratch::new("zero-leak");
    let capture = scratch.dir.join("packets.txt");
    net.start_gateway_side("l", &capture);

    let config = Config::new()
        .default("deny")
        .top("strict = true")
        .log(scratch.log_path())
        .gateway("corp", "http", &[format!("{GATEWAY_IP}:3128")])
        .via("*.example.test", "corp")
        .write(&scratch);
    let in_client = |program: &str, args: &[&str]| {
        let mut full = vec!["netns", "exec", net.client.as_str(), program];
        full.extend_from_slice(args);
        Run::new("ip", &full).config(&config)
    };

    // Positive control first: without the library, a direct connection is seen leaving.
    let out = in_client(
        "curl",
        &[
            "-s",
            "--max-time",
            "5",
            &format!("http://{GATEWAY_IP}:3128/"),
        ],
    )
    .without_preload()
    .output();
    let _ = out.code;
    let control = packets_soon(&capture, &format!("tcp {GATEWAY_IP} 3128"));
    assert!(
        control
            .iter()
            .any(|p| p == &format!("tcp {GATEWAY_IP} 3128")),
        "the sniffer sees traffic: {control:?}"
    );
    std::fs::write(&capture, "").unwrap();

    // Every way out, under the library.
    let out = in_client(
        "curl",
        &["-sS", "--max-time", "10", "http://api.example.test/"],
    )
    .output();
    assert!(
        out.success().starts_with("hello from the local origin"),
        "{}",
        out.stdout
    );
    for url in [
        format!("http://{GATEWAY_IP}:8080/"),
        "http://10.200.0.99/".to_string(),
        "http://other.test/".to_string(),
    ] {
        let out = in_client("curl", &["-sS", "--max-time", "5", &url]).output();
        assert_ne!(out.code, Some(0), "{url} must be refused");
    }
    let python = format!(
        r#"
import socket, urllib.request
print(urllib.request.urlopen("http://docs.example.test/", timeout=10).read().decode().strip())
for target in [("{GATEWAY_IP}", 8080), ("10.200.0.99", 443), ("::ffff:10.200.0.99", 443)]:
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    s = socket.socket(family)
    try:
        s.connect(target)
        print("leaked", target)
    except OSError:
        pass
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for target in [("{GATEWAY_IP}", 53), ("10.200.0.99", 443)]:
    try:
        u.sendto(b"x", target)
        print("leaked", target)
    except OSError:
        pass
"#
    );
    let out = in_client("python3", &["-c", &python]).output();
    assert!(
        out.success().starts_with("hello from the local origin"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("leaked"), "{}", out.stdout);
    let node = format!(
        r#"
const net = require("net");
(async () => {{
  console.log((await (await fetch("http://node.example.test/")).text()).trim());
  await new Promise(done => {{
    const s = net.connect(22, "{GATEWAY_IP}");
    s.on("connect", () => {{ console.log("leaked"); done(); }});
    s.on("error", () => done());
  }});
}})();
"#
    );
    let out = in_client("node", &["-e", &node]).output();
    assert!(
        out.success().starts_with("hello from the local origin"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("leaked"), "{}", out.stdout);

    // A static program that wants out (docs/threat-model.md), under the supervisor: raw
    // connects, raw and packet sockets, the supervisor's memory. Nothing of it may leave.
    let escape = compile_static(&scratch, "escape");
    let out = in_client(
        cli_exe(),
        &[
            "run",
            "--mode",
            "supervise",
            "--config",
            config.to_str().unwrap(),
            "--",
            escape.to_str().unwrap(),
            "10.200.0.99",
            "443",
        ],
    )
    .without_preload()
    .output();
    for line in [
        "connect by raw system call: EACCES",
        "raw IP socket: EPERM",
        "packet socket: EPERM",
    ] {
        assert!(out.success().contains(line), "{}", out.describe());
    }

    std::thread::sleep(Duration::from_millis(300));
    let seen = packets(&capture);
    assert!(!seen.is_empty(), "the gateway traffic was captured");
    let leaks: Vec<&String> = seen
        .iter()
        .filter(|p| **p != format!("tcp {GATEWAY_IP} 3128"))
        .collect();
    assert!(
        leaks.is_empty(),
        "packets to anything but the gateway: {leaks:?}"
    );
    let denied = events(&scratch.log(), "connect")
        .iter()
        .filter(|e| e["action"] == "deny")
        .count();
    assert!(denied >= 8, "the refusals were logged ({denied})");
}

/// `run --isolate`: the program's own namespace has only loopback, so whatever it does, only
/// what the supervisor connects from outside leaves: the gateway, and the one destination a
/// rule lets through directly. As root and as `nobody` (a user namespace then), with a program
/// that wants out, curl, and Python (whose loopback is its own namespace's).
#[test]
fn under_isolate_only_what_the_supervisor_connects_leaves() {
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("zero-leak test skipped: it needs root (network namespaces)");
        return;
    }
    let mut net = Net::new("i");
    let scratch = Scratch::new("zero-leak-isolate");
    let capture = scratch.dir.join("packets.txt");
    net.start_gateway_side("i", &capture);
    // A destination the rules let through directly: a web server on the gateway's address.
    let www = scratch.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("direct.txt"), "reached directly\n").unwrap();
    net.in_gateway(
        "python3",
        &[
            "-m",
            "http.server",
            "8081",
            "--bind",
            GATEWAY_IP,
            "--directory",
            www.to_str().unwrap(),
        ],
    );
    net.wait_for_listener(GATEWAY_IP, 8081);
    let config = Config::new()
        .default("deny")
        .log("off")
        .gateway("corp", "http", &[format!("{GATEWAY_IP}:3128")])
        .via("*.example.test", "corp")
        .rule(&format!(r#"cidr = "{GATEWAY_IP}""#), r#"action = "direct""#)
        .and("port = 8081")
        .rule(r#"cidr = "127.0.0.0/8""#, r#"action = "direct""#)
        .write(&scratch);
    let escape = compile_static(&scratch, "escape");
    let python = format!(
        r#"
import socket, threading, urllib.request
print(urllib.request.urlopen("http://docs.example.test/", timeout=10).read().decode().strip())
print(urllib.request.urlopen("http://{GATEWAY_IP}:8081/direct.txt", timeout=10).read().decode().strip())
# Its loopback is its own namespace's: a listener of its own is reachable.
server = socket.create_server(("127.0.0.1", 0))
threading.Thread(target=lambda: server.accept()[0].sendall(b"inside"), daemon=True).start()
print(socket.create_connection(server.getsockname()).recv(16).decode())
# A socket handed in from outside cannot then be pointed at loopback (the machine's, from there).
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect(("{GATEWAY_IP}", 8081))
for target in [("127.0.0.1", 9), ("0.0.0.0", 9)]:
    try:
        u.connect(target)
        print("leaked", target)
    except OSError:
        pass
for target in [("{GATEWAY_IP}", 22), ("10.200.0.99", 443)]:
    try:
        socket.create_connection(target, timeout=5)
        print("leaked", target)
    except OSError:
        pass
"#
    );
    for user in ["root", "nobody"] {
        let in_client = |program: &str, args: &[&str]| {
            let mut full = vec!["netns", "exec", net.client.as_str()];
            if user == "nobody" {
                full.extend([
                    "setpriv",
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                ]);
            }
            full.extend([
                cli_exe(),
                "run",
                "--isolate",
                "--config",
                config.to_str().unwrap(),
                "--",
                program,
            ]);
            full.extend_from_slice(args);
            Run::new("ip", &full).without_preload().output()
        };
        let out = in_client(
            "curl",
            &["-sS", "--max-time", "10", "http://api.example.test/"],
        );
        assert!(
            out.success().starts_with("hello from the local origin"),
            "{user}: {}",
            out.describe()
        );
        let out = in_client("python3", &["-c", &python]);
        let lines: Vec<&str> = out.success().lines().collect();
        assert!(lines.len() == 3, "{user}: {}", out.describe());
        assert!(lines[0].starts_with("hello from the local origin: Host docs.example.test"));
        assert!(lines[1] == "reached directly", "{user}: {}", out.describe());
        assert_eq!(lines[2], "inside", "{user}: {}", out.describe());
        let out = in_client(escape.to_str().unwrap(), &["10.200.0.99", "443"]);
        for line in [
            "connect by raw system call: EACCES",
            "raw IP socket: EPERM",
            "packet socket: EPERM",
            "enter the supervisor's network namespace: EACCES",
            "network interfaces besides lo: none",
        ] {
            assert!(out.success().contains(line), "{user}: {}", out.describe());
        }
    }

    std::thread::sleep(Duration::from_millis(300));
    let seen = packets(&capture);
    assert!(
        seen.contains(&format!("tcp {GATEWAY_IP} 3128"))
            && seen.contains(&format!("tcp {GATEWAY_IP} 8081")),
        "the gateway and the direct destination were reached: {seen:?}"
    );
    let leaks: Vec<&String> = seen
        .iter()
        .filter(|p| {
            **p != format!("tcp {GATEWAY_IP} 3128") && **p != format!("tcp {GATEWAY_IP} 8081")
        })
        .collect();
    assert!(leaks.is_empty(), "packets to anything else: {leaks:?}");
}

/// Where srt is: $MCP_REDIRECT_TEST_SRT (.ci/run sets it from scripts/test-npm-packages.sh),
/// else that script's default place.
fn srt() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("MCP_REDIRECT_TEST_SRT").filter(|p| !p.is_empty()) {
        return Some(path.into());
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
    let path = cache.join("mcp-redirect-tests/npm/node_modules/.bin/srt");
    path.exists().then_some(path)
}

/// Anthropic's sandbox-runtime (srt) gives the sandbox no network but its own proxy, named in
/// proxy variables that Node's built-in `fetch` ignores: `fetch` fails. The library inside the
/// sandbox, with no config of its own (the proxy variables are its config), sends it through
/// srt's proxy, which decides by its allow-list. srt's proxy refuses this machine's own
/// addresses, so the origin is in the test's other namespace; the sandbox does not see
/// /etc/hosts (srt `denyRead`), where the origin's name is, as a name DNS would know.
#[test]
fn inside_srt_the_library_takes_node_fetch_to_srts_proxy() {
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("srt test skipped: it needs root (network namespaces)");
        return;
    }
    let Some(srt) = srt() else {
        eprintln!(
            "srt test skipped: no srt (run scripts/test-npm-packages.sh, or set MCP_REDIRECT_TEST_SRT)"
        );
        return;
    };
    let mut net = Net::new("s");
    let scratch = Scratch::new("zero-leak-srt");
    let www = scratch.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("hello.txt"), "hello from the other side\n").unwrap();
    net.in_gateway(
        "python3",
        &[
            "-m",
            "http.server",
            "8082",
            "--bind",
            GATEWAY_IP,
            "--directory",
            www.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(700));
    let settings = scratch.dir.join("srt-settings.json");
    std::fs::write(
        &settings,
        format!(
            r#"{{"network": {{"allowedDomains": ["origin.srt.test"], "deniedDomains": []}},
"filesystem": {{"denyRead": ["/etc/hosts"], "allowWrite": ["{}"], "denyWrite": []}}}}"#,
            scratch.dir.display()
        ),
    )
    .unwrap();
    let fetch = scratch.dir.join("fetch.js");
    std::fs::write(
        &fetch,
        r#"fetch("http://origin.srt.test:8082/hello.txt").then(r => r.text()).then(
  t => console.log(t.trim()),
  e => { console.log("failed:", e.cause ? e.cause.code : e.message); process.exitCode = 1; });
"#,
    )
    .unwrap();
    // The origin's name for srt's proxy, in a hosts file that stays (srt binds /dev/null over
    // /etc/hosts for the sandbox, which a bind of a deleted file would not allow).
    let hosts = scratch.dir.join("hosts");
    let mut text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    text.push_str(&format!("\n{GATEWAY_IP} origin.srt.test\n"));
    std::fs::write(&hosts, text).unwrap();
    let in_srt = |preload: bool| {
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$1" /etc/hosts && shift && exec "$@""#)
            .arg("sh")
            .arg(&hosts)
            .args(["ip", "netns", "exec", &net.client])
            .arg(&srt)
            .arg("-s")
            .arg(&settings)
            .args(["--", "env"]);
        if preload {
            command
                .arg(format!(
                    "LD_PRELOAD={}",
                    crate::support::library().display()
                ))
                .arg("MCP_REDIRECT_LOG=off");
        }
        for var in [
            "LD_PRELOAD",
            "MCP_REDIRECT_CONFIG",
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "ALL_PROXY",
        ] {
            command.env_remove(var);
        }
        let out = command.arg("node").arg(&fetch).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = in_srt(false);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(1), "failed: EAI_AGAIN"),
        "without the library\n{stderr}"
    );
    let (code, stdout, stderr) = in_srt(true);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "hello from the other side"),
        "with the library\n{stderr}"
    );
}
