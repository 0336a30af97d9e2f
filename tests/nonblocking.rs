//! Non-blocking sockets (event loops: Python asyncio, Node, libuv) get a connected socket or a
//! proper errno through a gateway, and the flags they set are the flags they keep.

mod support;

use support::*;

fn config(scratch: &Scratch, proxy: std::net::SocketAddr) -> std::path::PathBuf {
    scratch.config(&format!(
        "[log]\npath = \"{}\"\n[gateways.corp]\nkind = \"http\"\nendpoints = [\"{}\"]\n[[rules]]\nhost = \"*.example.test\"\nvia = \"corp\"\n[[rules]]\nhost = \"denied.example\"\naction = \"deny\"\n",
        scratch.log_path().display(),
        proxy
    ))
}

#[test]
fn python_setblocking_false_connects_through_the_gateway() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("nonblocking");
    let script = r#"
import errno, fcntl, os, select, socket
s = socket.socket()
s.setblocking(False)
addr = socket.getaddrinfo("api.example.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4]
try:
    s.connect(addr)
except BlockingIOError:
    select.select([], [s], [], 20)
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
assert fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK, "still non-blocking"
# connect() again on a connected non-blocking socket: EISCONN, as libc says (called through
# ctypes: CPython's own connect() hides EISCONN).
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
sa = struct.pack("<H", socket.AF_INET) + struct.pack(">H", addr[1]) + socket.inet_aton(addr[0]) + bytes(8)
assert libc.connect(s.fileno(), sa, len(sa)) == -1 and ctypes.get_errno() == errno.EISCONN, ctypes.get_errno()
s.setblocking(True)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
print(s.recv(4096).decode().split("\r\n\r\n")[1])
b = socket.socket()
b.connect(addr)
assert not fcntl.fcntl(b.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK, "a blocking socket stays blocking"
"#;
    let out = Run::python(script)
        .config(&config(&scratch, proxy.addr))
        .output();
    assert_eq!(out.success().trim(), "hello from origin");
}

#[test]
fn asyncio_open_connection_through_the_gateway_and_a_denied_host() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("asyncio");
    let script = r#"
import asyncio
async def main():
    reader, writer = await asyncio.open_connection("api.example.test", 80)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    body = (await reader.read()).decode().split("\r\n\r\n")[1]
    try:
        await asyncio.open_connection("denied.example", 443)
        print("denied host connected!")
    except PermissionError:
        print("denied")
    return body
print(asyncio.run(main()))
"#;
    let out = Run::python(script)
        .config(&config(&scratch, proxy.addr))
        .output();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        ["denied", "hello from origin"]
    );
}

#[test]
fn node_net_socket_and_a_refused_gateway_reach_the_event_loop_as_errors() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(
        origin.addr,
        ProxyBehaviour::Refuse("HTTP/1.1 403 Forbidden"),
    );
    let scratch = Scratch::new("node-refused");
    let script = r#"
const net = require("net");
const s = net.connect(443, "api.example.test");
s.on("connect", () => { console.log("connected?!"); process.exit(1); });
s.on("error", e => { console.log(e.code); });
const d = net.connect(443, "denied.example");
d.on("error", e => { console.log(e.code); });
"#;
    let out = Run::node(script)
        .config(&config(&scratch, proxy.addr))
        .output();
    let mut codes: Vec<_> = out.success().lines().collect();
    codes.sort();
    assert_eq!(codes, ["EACCES", "ECONNREFUSED"]);
}
