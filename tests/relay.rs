//! The relay's hard cases (`docs/nonblocking.md`, "Cases"): fork and exec with handshakes in
//! flight, a program that closes descriptors it did not open, no descriptors left, ten thousand
//! connections at once, signals, no threads, and a program that closes its socket mid-handshake.
//! Real programs under the library, through slow gateways of the tests' own.

use crate::support::slow::{slow, DELAY_MS};
use crate::support::*;

/// Helpers every script here starts with: `start(host)` begins a routed non-blocking connect,
/// `finish(sock)` waits for it, fetches `/` and returns the body, `fds()` lists the process's
/// descriptors as `{number: what}`.
const PRELUDE: &str = r#"
import errno, os, select, socket, sys, time
def start(host, port=80):
    addr = socket.getaddrinfo(host, port, socket.AF_INET)[0][4]
    s = socket.socket()
    s.setblocking(False)
    rc = s.connect_ex(addr)
    assert rc == errno.EINPROGRESS, errno.errorcode.get(rc, rc)
    return s
def outcome(s, wait=10):
    assert select.select([], [s], [], wait)[1], "never writable"
    code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return errno.errorcode.get(code, "0")
def finish(s):
    result = outcome(s)
    assert result == "0", result
    s.setblocking(True)
    s.settimeout(10)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.split(b"\r\n\r\n", 1)[1].decode()
def fds():
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[int(name)] = os.readlink("/proc/self/fd/" + name)
        except OSError:
            pass
    return found
def settled_fds(seconds=3):
    """How many descriptors the process has once the relay has closed what it is done with."""
    count, deadline = len(fds()), time.time() + seconds
    while time.time() < deadline:
        time.sleep(0.1)
        now = len(fds())
        if now == count:
            return now
        count = now
    return count
def relay_kinds(table):
    return sorted(v for v in table.values() if v.startswith("anon_inode:"))
"#;

fn python(script: &str) -> String {
    format!("{PRELUDE}\n{script}")
}

#[test]
fn fork_with_handshakes_in_flight_leaves_parent_and_child_working() {
    let world = slow("fork", "");
    let script = python(
        r#"
inflight = [start(f"p{i}.http.test") for i in range(3)]
before = fds()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    # The child holds none of the parent's relay descriptors: its copies were closed at fork.
    mine = fds()
    report = ["child relay descriptors %s" % relay_kinds(mine),
              "child sockets %d" % sum(v.startswith("socket:") for v in mine.values())]
    # Its own connections go through a relay of its own.
    report.append("child " + " ".join(finish(start(f"c{i}.socks.test")) for i in range(2)))
    os.write(w, ("\n".join(report) + "\n").encode())
    time.sleep(1)
    os._exit(0)
os.close(w)
print("parent relay descriptors %s" % relay_kinds(before))
print("parent", " ".join(finish(s) for s in inflight))
print("parent after", finish(start("q.http.test")))
child = b""
while True:
    chunk = os.read(r, 4096)
    if not chunk:
        break
    child += chunk
print(child.decode().strip())
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
"#,
    );
    let out = Run::python(&script).config(&world.config).output();
    let hello = "hello from origin";
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "parent relay descriptors ['anon_inode:[eventfd]', 'anon_inode:[eventfd]', 'anon_inode:[eventpoll]']"
                .to_string(),
            format!("parent {hello} {hello} {hello}"),
            format!("parent after {hello}"),
            "child relay descriptors []".to_string(),
            "child sockets 3".to_string(),
            format!("child {hello} {hello}"),
            "child exit 0".to_string(),
        ],
        "{}",
        out.describe()
    );
}

#[test]
fn exec_starts_afresh_and_a_relayed_socket_kept_across_it_is_reset() {
    let world = slow("exec", "");
    let script = python(
        r#"
if len(sys.argv) == 1:
    s = start("a.http.test")
    assert outcome(s) == "0"
    s.setblocking(True)
    os.set_inheritable(s.fileno(), True)
    os.execv(sys.executable, [sys.executable, "-c", PROGRAM, str(s.fileno())])
kept = socket.socket(fileno=int(sys.argv[1]))
print("relay descriptors after exec", relay_kinds(fds()))
kept.settimeout(5)
try:
    kept.sendall(b"GET / HTTP/1.0\r\n\r\n")
    print("kept socket", "reset" if kept.recv(4096) == b"" else "answered")
except OSError as e:
    print("kept socket", "reset")
print("new", finish(start("b.http.test")))
"#,
    );
    // The script re-runs itself after exec: hand it its own text.
    let program = script.clone();
    let script = format!("PROGRAM = {program:?}\n{script}");
    let out = Run::new("python3", &["-c", &script])
        .config(&world.config)
        .output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "relay descriptors after exec []",
            "kept socket reset",
            "new hello from origin"
        ],
        "{}",
        out.describe()
    );
}

#[test]
fn a_program_that_closes_every_descriptor_it_did_not_open_keeps_its_relayed_connections() {
    let world = slow("close-range", "");
    let script = python(
        r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
a = start("a.http.test")
b = start("b.http.test")
keep = sorted({a.fileno(), b.fileno()})
# close_range(2) between a and b (the relay's descriptors were made there), then close(2) one
# by one above b, as daemons and ssh do.
assert libc.close_range(keep[0] + 1, keep[1] - 1, 0) == 0, ctypes.get_errno()
for fd in range(keep[1] + 1, 4096):
    try:
        os.close(fd)
    except OSError:
        pass
# A file opened now cannot take a number the relay still uses.
f = os.open("/dev/null", os.O_RDONLY)
print("relay descriptors", relay_kinds(fds()))
print(finish(a), finish(b))
print("new", finish(start("c.socks.test")))
"#,
    );
    let out = Run::python(&script).config(&world.config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "relay descriptors ['anon_inode:[eventfd]', 'anon_inode:[eventfd]', 'anon_inode:[eventpoll]']",
            "hello from origin hello from origin",
            "new hello from origin"
        ],
        "{}",
        out.describe()
    );
}

#[test]
fn no_descriptor_left_fails_the_connect_with_emfile_and_the_relay_recovers() {
    let world = slow("emfile", "");
    let script = python(
        r#"
import resource
print(finish(start("a.http.test")))
addr = socket.getaddrinfo("b.http.test", 80, socket.AF_INET)[0][4]
# The relay closes the first connection's descriptors on its own thread: once it has, no
# descriptor frees itself under the hog below and gives the relay the one it must not have.
settled_fds()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 512), hard))
hog = []
try:
    while True:
        hog.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
os.close(hog.pop())
s = socket.socket()
s.setblocking(False)
print(errno.errorcode.get(s.connect_ex(addr), "0"))
print(outcome(s))
s.close()
for fd in hog:
    os.close(fd)
print("after", finish(start("c.http.test")))
"#,
    );
    let out = Run::python(&script).config(&world.config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "hello from origin",
            "EINPROGRESS",
            "EMFILE",
            "after hello from origin"
        ],
        "{}",
        out.describe()
    );
    let log = world.scratch.log();
    let failed = events(&log, "connect")
        .into_iter()
        .find(|l| l["host"] == "b.http.test")
        .cloned()
        .unwrap();
    assert_eq!(failed["result"], "EMFILE", "{failed}");
}

#[test]
fn thousands_of_connections_in_flight_all_end_and_give_back_their_descriptors() {
    let world = slow("ten-thousand", "");
    let script = python(
        r#"
import resource
def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
# Ten thousand, three descriptors each (the program's and the relay's two), where the process
# may raise its limit that far; else as many as its hard limit allows.
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (40000, max(hard, 40000)))
    count = 10000
except (ValueError, OSError):
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    count = min(10000, (hard - 500) // 3)
print(finish(start("warm.http.test")))
base_fds, base_rss = settled_fds(), rss_kib()
addr = socket.getaddrinfo("x.void.test", 80, socket.AF_INET)[0][4]
socks = []
for i in range(count):
    s = socket.socket()
    s.setblocking(False)
    rc = s.connect_ex(addr)
    assert rc == errno.EINPROGRESS, errno.errorcode.get(rc, rc)
    socks.append(s)
peak_rss = rss_kib()
poller = select.poll()
for s in socks:
    poller.register(s, select.POLLOUT)
done = set()
deadline = time.time() + 60
while len(done) < count and time.time() < deadline:
    for fd, _ in poller.poll(1000):
        poller.unregister(fd)
        done.add(fd)
codes = {}
for s in socks:
    code = errno.errorcode.get(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), "0")
    codes[code] = codes.get(code, 0) + 1
    s.close()
print("ended", len(done) == count, codes == {"ETIMEDOUT": count}, codes if codes != {"ETIMEDOUT": count} else "")
print("descriptors left", settled_fds() - base_fds)
growth = (peak_rss - base_rss) * 1024 // count
print("memory per connection in flight: %d bytes (%d connections)" % (growth, count), file=sys.stderr)
print("under 50 KiB each", growth < 50 * 1024)
"#,
    );
    let out = Run::python(&script).config(&world.config).output();
    eprintln!("{}", out.stderr);
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "hello from origin",
            "ended True True ",
            "descriptors left 0",
            "under 50 KiB each True"
        ],
        "{}",
        out.describe()
    );
}

#[test]
fn no_signal_is_ever_delivered_to_the_relay_thread() {
    let world = slow("signals", "");
    let script = python(
        r#"
s = start("a.http.test")
# The relay's is the one thread besides the program's own (named by itself once it runs).
for tid in os.listdir("/proc/self/task"):
    if int(tid) != os.getpid():
        status = open(f"/proc/self/task/{tid}/status").read()
        blocked = int(next(l for l in status.splitlines() if l.startswith("SigBlk:")).split()[1], 16)
        open_to = [n for n in range(1, 32) if n not in (9, 19) and not blocked & (1 << (n - 1))]
        print("relay thread accepts signals", open_to)
print(finish(s))
"#,
    );
    let out = Run::python(&script).config(&world.config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        ["relay thread accepts signals []", "hello from origin"],
        "{}",
        out.describe()
    );
}

#[test]
fn without_threads_the_handshake_runs_inside_connect() {
    let world = slow("no-threads", "");
    let scratch = Scratch::new("no-threads-bin");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/no_threads.c");
    let binary = scratch.dir.join("no_threads");
    let status = std::process::Command::new("cc")
        .args(["-O1", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("cc");
    assert!(status.success());
    let out = Run::new(binary.to_str().unwrap(), &["a.http.test"])
        .config(&world.config)
        .output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            "pthread_create: EAGAIN",
            "connect: 0",
            "SO_ERROR: 0",
            "hello from origin"
        ],
        "{}",
        out.describe()
    );
    let log = world.scratch.log();
    let connect = events(&log, "connect")[0].clone();
    assert_eq!(
        connect["handshake"], "inline: cannot start the relay thread",
        "{connect}"
    );
}

#[test]
fn a_program_closing_its_sockets_mid_handshake_leaks_nothing() {
    let world = slow("close-early", "");
    let script = python(&format!(
        r#"
print(finish(start("warm.http.test")))
base = settled_fds()
socks = [start(f"m{{i}}.http.test") for i in range(50)]
during = len(fds()) - base
for s in socks:
    s.close()
time.sleep({wait})
print("descriptors during", during >= 50, "after", settled_fds() - base)
"#,
        wait = (DELAY_MS as f64 / 1000.0) + 1.5
    ));
    let out = Run::python(&script).config(&world.config).output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        ["hello from origin", "descriptors during True after 0"],
        "{}",
        out.describe()
    );
    // Every connect still has its line, written when its handshake ended.
    let log = world.scratch.log();
    assert_eq!(events(&log, "connect").len(), 51);
}
