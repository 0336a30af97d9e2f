//! `run --isolate --publish [ADDRESS:]PORT`: a server in the isolated namespace (MCP over HTTP)
//! reachable from outside. The supervisor binds ADDRESS:PORT in its own namespace (so that an
//! address in use is an error before anything starts) and starts a helper, this program again
//! (`mcp-redirect publish-helper`, hidden), with those listeners. The helper enters the tree's
//! namespaces (network, and user where the tree has its own) and, for each connection it
//! accepts outside, connects inside to `127.0.0.1:PORT` (else `[::1]:PORT`) and copies bytes
//! both ways until each side has closed.
//!
//! The helper is not in the tree: the tree's filter does not apply to it, and it is not
//! dumpable, so the tree cannot reach into it; it dies with the supervisor.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::IntoRawFd;
use std::process::{Child, Command};

use mcp_redirect_core::sys::{namespaces, process, socket};

/// The first descriptor number the helper's listeners take, in order.
const FIRST_LISTENER_FD: i32 = 3;

/// Where the listeners wait for `exec` in the supervisor: above the numbers they go to.
const PARKED_FD: i32 = 100;

/// What the supervisor does: binds each address and starts the helper for the tree whose first
/// process is `pid`. The helper dies with the supervisor.
pub fn start(pid: libc::pid_t, addresses: &[SocketAddr]) -> Result<Option<Child>, String> {
    if addresses.is_empty() {
        return Ok(None);
    }
    let mut listeners = Vec::new();
    for address in addresses {
        let listener =
            TcpListener::bind(address).map_err(|e| format!("--publish {address}: {e}"))?;
        let fd = listener.into_raw_fd();
        let parked = socket::duplicate_from(fd, PARKED_FD);
        mcp_redirect_core::sys::close(fd);
        listeners.push(parked.map_err(|e| format!("--publish {address}: {e}"))?);
    }
    let exe = crate::run::this_program()?;
    let mut command = Command::new(exe);
    command.arg("publish-helper").arg(pid.to_string());
    for address in addresses {
        command.arg(address.port().to_string());
    }
    let parent = mcp_redirect_core::sys::pid() as libc::pid_t;
    // Parked above the targets: the copies overwrite none of them.
    process::hand_fds_and_die_with_parent(
        &mut command,
        listeners.clone(),
        FIRST_LISTENER_FD,
        parent,
    );
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start the --publish helper: {e}"));
    for fd in listeners {
        mcp_redirect_core::sys::close(fd);
    }
    child.map(Some)
}

/// `mcp-redirect publish-helper PID PORT...`: the helper itself, with its listeners at
/// descriptors 3, 4, ... in the order of the ports.
pub fn helper(args: &[OsString]) -> u8 {
    let parsed: Option<Vec<u32>> = args
        .iter()
        .map(|a| a.to_str().and_then(|s| s.parse().ok()))
        .collect();
    let Some((&pid, ports)) = parsed.as_deref().and_then(|p| p.split_first()) else {
        crate::complain("publish-helper: PID PORT... expected");
        return 2;
    };
    if let Err(e) = mcp_redirect_core::sys::privileges::make_undumpable().and_then(|()| enter(pid))
    {
        crate::complain(format!(
            "--publish: cannot enter the program's network: {e}"
        ));
        return 2;
    }
    let mut threads = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        // The supervisor put a listening socket at this number for us (start above).
        let listener = process::take_inherited_listener(FIRST_LISTENER_FD + i as i32);
        let Ok(port) = u16::try_from(port) else {
            return 2;
        };
        threads.push(std::thread::spawn(move || serve(listener, port)));
    }
    for thread in threads {
        let _ = thread.join();
    }
    0
}

/// Joins the user namespace (when the tree has its own) and the network namespace of `pid`.
/// Single-threaded callers only (a user namespace cannot be entered otherwise).
fn enter(pid: u32) -> io::Result<()> {
    let ours = std::fs::read_link("/proc/self/ns/user")?;
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/user"))?;
    if ours != theirs {
        set_namespace(pid, "user", libc::CLONE_NEWUSER)?;
    }
    set_namespace(pid, "net", libc::CLONE_NEWNET)
}

fn set_namespace(pid: u32, name: &str, kind: i32) -> io::Result<()> {
    let file = std::fs::File::open(format!("/proc/{pid}/ns/{name}"))?;
    namespaces::join(&file, kind)
}

/// Accepts outside, connects inside, a pair of copying threads per connection.
fn serve(listener: TcpListener, port: u16) {
    for outside in listener.incoming() {
        let Ok(outside) = outside else { continue };
        std::thread::spawn(move || {
            let inside = TcpStream::connect(("127.0.0.1", port))
                .or_else(|_| TcpStream::connect(("::1", port)));
            match inside {
                Ok(inside) => splice_both_ways(outside, inside),
                // Nothing listens inside (yet): the client sees its connection reset.
                Err(_) => drop(outside),
            }
        });
    }
}

/// Copies each side's bytes to the other; a side's end of stream becomes a half-close of the
/// other, so that request/response protocols finish as they would directly.
fn splice_both_ways(a: TcpStream, b: TcpStream) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let forward = std::thread::spawn(move || copy_then_close(a, b));
    copy_then_close(b2, a2);
    let _ = forward.join();
}

fn copy_then_close(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}
