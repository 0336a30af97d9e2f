//! `mcp-redirect run --mode supervise`: rules for programs that `LD_PRELOAD` cannot enter
//! (static and Go binaries, musl programs), with seccomp user notification.
//!
//! The child installs a filter that hands every `connect()` of its whole process tree to us,
//! then execs the program. For each one we read the destination out of the caller's memory,
//! check that the notification is still pending, take a copy of the caller's socket
//! (`pidfd_getfd`) and make the decision and the connection ourselves, on that shared socket,
//! with the library's own code (`connect::decide_connect`); the call returns our result. We never
//! let a decided call through as the program made it: the program could change the address
//! after we read it. Only `connect()` on non-IP sockets (`AF_UNIX`) is let through, and
//! `io_uring_setup` fails with `ENOSYS` so that runtimes fall back to ordinary system calls.
//!
//! Programs with their own resolver (Go, static glibc, musl, c-ares) send DNS queries to port 53
//! themselves: every `connect()` to port 53 is connected to a resolver inside the supervisor
//! instead, which answers routed and denied names with fake addresses (the library's lookup
//! decision, `lookup::decide_lookup`) and passes other queries to the system's nameservers,
//! remembering their addresses, so later connects are decided by name.
//!
//! If the supervisor dies, the kernel fails the tree's intercepted calls (`ENOSYS`): closed.

use std::ffi::{CString, OsString};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use mcp_redirect::config::Config;
use mcp_redirect::connect::{self, Act, Caller, Outcome};
use mcp_redirect::dns;
use mcp_redirect::lookup::{self, Answer};
use mcp_redirect::runtime::Runtime;
use mcp_redirect::sys::seccomp::{self, Filter};
use mcp_redirect::sys::socket::{self, AddrArg};

/// Largest socket address we read out of a caller (sockaddr_storage).
const MAX_SOCKADDR: usize = 128;
/// Threads waiting for notifications; each decision then runs on a thread of its own, so a
/// slow gateway for one connection never stalls another.
const RECEIVERS: usize = 2;

/// Runs `command` under the supervisor with `env` set; returns the exit code for `run`.
pub fn run(config: Config, command: &[OsString], env: &[(&'static str, OsString)]) -> u8 {
    // Everything the child needs is prepared here: after fork it may only make system calls.
    let filter = Filter::new(&[libc::SYS_connect], &[libc::SYS_io_uring_setup]);
    let Ok(argv) = command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        crate::complain("the command contains a NUL byte");
        return 2;
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    for (name, value) in env {
        std::env::set_var(name, value);
    }
    let (report_r, report_w) = pipe();
    let (ack_r, ack_w) = pipe();

    // SAFETY: fork; the child below only makes system calls until execvp.
    let child = unsafe { libc::fork() };
    if child < 0 {
        crate::complain(format!("fork: {}", std::io::Error::last_os_error()));
        return 2;
    }
    if child == 0 {
        child_side(&filter, report_w, ack_r, &argv_ptrs);
    }
    close(report_w);
    close(ack_r);
    let listener = match receive_listener(child as u32, report_r) {
        Ok(fd) => fd,
        Err(message) => {
            crate::complain(format!("cannot supervise the command: {message}"));
            // SAFETY: the child waits for our ack; kill it rather than let it run unsupervised.
            unsafe { libc::kill(child, libc::SIGKILL) };
            return 2;
        }
    };
    let exe_default = command[0]
        .to_string_lossy()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string();
    let runtime = Arc::new(Runtime::from_config(config, exe_default));
    let resolver = match Resolver::start(runtime.clone()) {
        Ok(resolver) => Arc::new(resolver),
        Err(e) => {
            crate::complain(format!("cannot start the supervisor's resolver: {e}"));
            // SAFETY: as above: never let the child run unsupervised.
            unsafe { libc::kill(child, libc::SIGKILL) };
            return 2;
        }
    };
    for _ in 0..RECEIVERS {
        let (runtime, resolver) = (runtime.clone(), resolver.clone());
        std::thread::spawn(move || serve(listener, runtime, resolver));
    }
    forward_signals(child);
    // Let the child exec its command.
    write_all(ack_w, b"go");
    close(ack_w);
    wait_for(child)
}

/// The child: filter on, listener number to the parent, wait for the parent to hold it, exec.
fn child_side(filter: &Filter, report_w: i32, ack_r: i32, argv: &[*const libc::c_char]) -> ! {
    let code: i32 = match filter.install() {
        Ok(listener) => listener,
        Err(e) => -e.raw_os_error().unwrap_or(libc::EPERM),
    };
    write_all(report_w, &code.to_ne_bytes());
    let mut ack = [0u8; 2];
    // SAFETY: reading into a stack buffer.
    let n = unsafe { libc::read(ack_r, ack.as_mut_ptr().cast(), ack.len()) };
    if code < 0 || n <= 0 {
        // SAFETY: _exit is always safe.
        unsafe { libc::_exit(126) };
    }
    close(code);
    // SAFETY: argv is a NULL-terminated array of C strings prepared before fork.
    unsafe { libc::execvp(argv[0], argv.as_ptr()) };
    let err = std::io::Error::last_os_error();
    let message = format!("mcp-redirect: exec: {err}\n");
    write_all(2, message.as_bytes());
    // SAFETY: as above.
    unsafe {
        libc::_exit(if err.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        })
    }
}

/// Reads the child's listener fd number and takes our own copy of it.
fn receive_listener(child: u32, report_r: i32) -> Result<i32, String> {
    let mut bytes = [0u8; 4];
    // SAFETY: reading into a stack buffer.
    let n = unsafe { libc::read(report_r, bytes.as_mut_ptr().cast(), 4) };
    close(report_r);
    if n != 4 {
        return Err("the child did not report".into());
    }
    let code = i32::from_ne_bytes(bytes);
    if code < 0 {
        return Err(format!(
            "installing the seccomp filter failed: {}",
            std::io::Error::from_raw_os_error(-code)
        ));
    }
    seccomp::copy_fd(child, code).map_err(|e| format!("taking the listener: {e}"))
}

/// A receiver: waits for notifications and decides each on a thread of its own.
fn serve(listener: i32, runtime: Arc<Runtime>, resolver: Arc<Resolver>) {
    while let Ok(notif) = seccomp::receive(listener) {
        let (runtime, resolver) = (runtime.clone(), resolver.clone());
        let spawned =
            std::thread::Builder::new().spawn(move || handle(listener, &runtime, &resolver, notif));
        if spawned.is_err() {
            seccomp::respond(listener, notif.id, Err(libc::EAGAIN));
        }
    }
}

/// One intercepted `connect(fd, addr, len)`.
fn handle(listener: i32, rt: &Runtime, resolver: &Resolver, notif: libc::seccomp_notif) {
    let args = notif.data.args;
    let (fd, address, len) = (
        args[0] as i32,
        args[1],
        (args[2] as usize).min(MAX_SOCKADDR),
    );
    let bytes = match seccomp::read_memory(notif.pid, address, len) {
        Ok(bytes) => bytes,
        Err(_) => return seccomp::respond(listener, notif.id, Err(libc::EFAULT)),
    };
    // What we read belongs to this call only if the call is still pending.
    if !seccomp::still_valid(listener, notif.id) {
        return;
    }
    // SAFETY: bytes holds bytes.len() readable bytes.
    let dst = match unsafe {
        socket::classify_addr(bytes.as_ptr().cast(), bytes.len() as libc::socklen_t)
    } {
        AddrArg::Inet(dst) => dst,
        AddrArg::Malformed => return seccomp::respond(listener, notif.id, Err(libc::EINVAL)),
        AddrArg::Other => return seccomp::let_through(listener, notif.id),
    };
    let copy = match seccomp::copy_fd(notif.pid, fd) {
        Ok(copy) => copy,
        Err(e) => {
            return seccomp::respond(
                listener,
                notif.id,
                Err(e.raw_os_error().unwrap_or(libc::EBADF)),
            )
        }
    };
    let result = if dst.port() == 53 {
        // DNS, wherever the program meant to send it: to our resolver.
        resolver.connect(copy, dst)
    } else {
        decide(rt, &exe_name(notif.pid), copy, dst).map(|v| v as i64)
    };
    close(copy);
    seccomp::respond(listener, notif.id, result.map(|_| 0));
}

/// The library's decision and action, on our copy of the caller's socket.
fn decide(rt: &Runtime, exe: &str, fd: i32, dst: SocketAddr) -> Result<isize, i32> {
    let connect_to = |addr: &SocketAddr| {
        socket::connect_once(fd, addr)
            .map(|()| 0)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    };
    let mut direct = connect_to;
    let mut tunneled = || Ok(0);
    let caller = Caller {
        exe,
        via: Some("supervisor"),
    };
    let act = Act {
        direct: &mut direct,
        tunneled: &mut tunneled,
    };
    match connect::decide_connect(rt, caller, fd, dst, act) {
        Outcome::Done(result) => result,
        // Nothing to decide (nothing configured, or not logged): still our connection to make,
        // with the address we checked, never the caller's own call.
        Outcome::PassThrough => connect_to(&dst),
    }
}

/// The executable's base name, for `process` rules and the log.
fn exe_name(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".into())
}

/// Passes the usual termination signals on to the child, as an `exec`ed `run` would receive
/// them itself.
fn forward_signals(child: libc::pid_t) {
    const FORWARDED: [i32; 6] = [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ];
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t; blocking in this thread is inherited by threads made
    // after, and the forwarding thread collects them with sigwait.
    unsafe {
        libc::sigemptyset(&mut set);
        for signal in FORWARDED {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    std::thread::spawn(move || loop {
        let mut signal = 0;
        // SAFETY: set and signal are valid for sigwait.
        if unsafe { libc::sigwait(&set, &mut signal) } == 0 {
            // SAFETY: kill with a pid and a signal number.
            unsafe { libc::kill(child, signal) };
        }
    });
}

/// Waits for the child and turns its end into our exit code; a child killed by a signal is
/// reported as the shell does (128 + signal), after re-raising it on ourselves where possible.
fn wait_for(child: libc::pid_t) -> u8 {
    let mut status = 0;
    loop {
        // SAFETY: status is valid for writes.
        let rc = unsafe { libc::waitpid(child, &mut status, 0) };
        if rc == child {
            break;
        }
        if rc < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 2;
        }
    }
    if libc::WIFEXITED(status) {
        return libc::WEXITSTATUS(status) as u8;
    }
    let signal = libc::WTERMSIG(status);
    // SAFETY: unblock and re-raise the same signal with its default action, so our parent sees
    // what it would have seen without us.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
    (128 + signal) as u8
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: fds is valid for two ints.
    unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    (fds[0], fds[1])
}

fn write_all(fd: i32, bytes: &[u8]) {
    let _ = mcp_redirect::sys::write_all(fd, bytes);
}

fn close(fd: i32) {
    mcp_redirect::sys::close(fd);
}

/// The supervisor's DNS resolver, on loopback (UDP and TCP).
struct Resolver {
    udp: SocketAddr,
    tcp: SocketAddr,
}

/// How long an answer from us may be cached: short, so that rule changes show.
const ANSWER_TTL: u32 = 5;

impl Resolver {
    fn start(rt: Arc<Runtime>) -> std::io::Result<Resolver> {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        let resolver = Resolver {
            udp: udp.local_addr()?,
            tcp: tcp.local_addr()?,
        };
        let udp_rt = rt.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = udp.recv_from(&mut buf) {
                if let Some(reply) = answer(&udp_rt, &buf[..n]) {
                    let _ = udp.send_to(&reply, peer);
                }
            }
        });
        std::thread::spawn(move || {
            for stream in tcp.incoming().flatten() {
                let rt = rt.clone();
                std::thread::spawn(move || serve_tcp(&rt, stream));
            }
        });
        Ok(resolver)
    }

    /// Connects the caller's socket (our copy) to the resolver of its kind, in its family.
    fn connect(&self, fd: i32, asked: SocketAddr) -> Result<i64, i32> {
        let ours = match socket::socket_type(fd) {
            Some(libc::SOCK_DGRAM) => self.udp,
            _ => self.tcp,
        };
        let target = match (asked, ours) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
                SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
            }
            _ => ours,
        };
        socket::connect_once(fd, &target)
            .map(|()| 0)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// DNS over TCP: two-byte length, message; as many as the client sends.
fn serve_tcp(rt: &Runtime, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    loop {
        let mut length = [0u8; 2];
        if stream.read_exact(&mut length).is_err() {
            return;
        }
        let mut query = vec![0u8; u16::from_be_bytes(length) as usize];
        if stream.read_exact(&mut query).is_err() {
            return;
        }
        let Some(reply) = answer(rt, &query) else {
            return;
        };
        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).is_err() {
            return;
        }
    }
}

/// The answer to one query: fake addresses for routed and denied names, the system's
/// nameservers' answer for the rest (whose addresses are remembered for later connects).
fn answer(rt: &Runtime, query: &[u8]) -> Option<Vec<u8>> {
    let question = dns::parse_query(query).ok()?;
    if question.qclass != dns::CLASS_IN {
        return forward(rt, query);
    }
    match lookup::decide_lookup(rt, question.name.as_bytes()) {
        Answer::PassThrough => forward(rt, query),
        Answer::Refuse(_) => Some(dns::build_answer(
            query,
            &question,
            &[],
            0,
            dns::RCODE_NXDOMAIN,
        )),
        Answer::Fake { fake, .. } => {
            let addresses = [fake.ipv4.into(), fake.ipv6.into()];
            Some(dns::build_answer(
                query, &question, &addresses, ANSWER_TTL, 0,
            ))
        }
        Answer::Real { host, decision } => {
            let reply = forward(rt, query)?;
            if let Ok((rcode, addresses)) = dns::answer_addresses(&reply) {
                lookup::remember_in(
                    rt,
                    &host,
                    decision,
                    &addresses,
                    if rcode == 0 { 0 } else { libc::EAI_NONAME },
                );
            }
            Some(reply)
        }
        Answer::RealOrFake { host, decision } => {
            let reply = forward(rt, query);
            match reply.as_deref().map(dns::answer_addresses) {
                Some(Ok((0, addresses))) if !addresses.is_empty() => {
                    lookup::remember_in(rt, &host, decision, &addresses, 0);
                    reply
                }
                _ => {
                    let fake = lookup::fake_fallback_in(rt, &host, decision).ok()?;
                    let addresses = [fake.ipv4.into(), fake.ipv6.into()];
                    Some(dns::build_answer(
                        query, &question, &addresses, ANSWER_TTL, 0,
                    ))
                }
            }
        }
    }
}

/// The system's nameservers' answer to `query`, or SERVFAIL-less silence when none answers
/// (the client then retries or gives up, as with any dead nameserver).
fn forward(rt: &Runtime, query: &[u8]) -> Option<Vec<u8>> {
    for server in &rt.nameservers {
        let server = SocketAddr::new(*server, 53);
        let deadline = socket::Deadline::after_ms(2000);
        let Ok(reply) = socket::exchange_udp(&server, query, 4096, deadline) else {
            continue;
        };
        let truncated = reply.get(2).is_some_and(|b| b & 0x02 != 0);
        if truncated {
            if let Ok(full) = socket::exchange_tcp(&server, query, deadline) {
                return Some(full);
            }
        }
        return Some(reply);
    }
    None
}
