//! The intercepted system calls: `connect` and the sends that carry an address, decided with
//! the library's own code on a copy of the caller's socket (`pidfd_getfd`: the same open
//! socket), and performed by us on that copy with what we checked. The call returns our result.
//!
//! A decided call is never let through as the program made it: a thread of the program could
//! change the address in memory after we read it. Let through (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`)
//! are only calls whose outcome no address changes: anything on a non-IP socket, and sends on
//! a TCP socket without `MSG_FASTOPEN` (TCP ignores a send's address).
//!
//! Sends: `sendto` reaches us only with an address (the filter checks that in the kernel, so
//! `send()` costs nothing); `sendmsg` and `sendmmsg` always, since their address is in memory.
//! A TCP Fast Open send is decided like a connect; a datagram is checked as the library checks
//! one (`strict = true` refuses routed and denied destinations) and, when it is a DNS query,
//! the name is decided and its addresses learnt, so the connect that follows is decided by name.
//!
//! With `--isolate` the program's sockets live in its own network namespace, where only
//! loopback is. For a destination outside it we make a twin of the caller's socket here, in
//! ours (same family, type, protocol, flags and options), decide and connect or send on the
//! twin, and put it into the caller in place of its own socket (`SECCOMP_IOCTL_NOTIF_ADDFD`),
//! under the same descriptor number, before the call returns. A loopback destination is the
//! namespace's own loopback: connected there, on the caller's own socket.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mcp_redirect_core::connect::{self, Act, Caller, Outcome};
use mcp_redirect_core::dns;
use mcp_redirect_core::lookup::{self, Answer};
use mcp_redirect_core::rules::Action;
use mcp_redirect_core::runtime::Runtime;
use mcp_redirect_core::sys::socket::{self, AddrArg, RawSockAddr};
use mcp_redirect_core::sys::{msghdr, process, seccomp};

use super::resolver::{self, Resolver};

/// Largest socket address we read out of a caller (sockaddr_storage).
const MAX_SOCKADDR: usize = 128;
/// Most bytes we copy out of one message: a datagram's largest. A bigger TCP Fast Open send
/// is sent in part, which a stream send may always do.
const MAX_PAYLOAD: usize = 65_536;
/// Most iovecs and `sendmmsg` messages one call may carry (the kernel's `UIO_MAXIOV`).
const MAX_VECTORS: usize = 1024;
/// Most ancillary bytes per message (above the kernel's default `optmem_max`).
const MAX_CONTROL: usize = 65_536;
/// `struct msghdr` and `struct mmsghdr` on 64-bit Linux.
const MSGHDR_SIZE: usize = std::mem::size_of::<libc::msghdr>();
const MMSGHDR_SIZE: usize = std::mem::size_of::<libc::mmsghdr>();

/// The supervisor's workers: each waits for a notification and answers it. A worker that takes
/// the last idle slot starts another first, so a slow gateway handshake on one never stalls the
/// others; workers beyond `SPARE_WORKERS` idle ones leave. At most `MAX_WORKERS` (calls beyond
/// wait in the kernel's queue).
pub struct Workers {
    listener: i32,
    runtime: Arc<Runtime>,
    resolver: Arc<Resolver>,
    isolation: Option<Isolation>,
    idle: AtomicUsize,
    total: AtomicUsize,
}

const SPARE_WORKERS: usize = 2;
const MAX_WORKERS: usize = 256;

impl Workers {
    pub fn start(
        listener: i32,
        runtime: Arc<Runtime>,
        resolver: Arc<Resolver>,
        isolation: Option<Isolation>,
    ) {
        let workers = Arc::new(Workers {
            listener,
            runtime,
            resolver,
            isolation,
            idle: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
        });
        for _ in 0..SPARE_WORKERS {
            workers.clone().spawn();
        }
    }

    fn spawn(self: Arc<Self>) {
        if self.total.fetch_add(1, Ordering::SeqCst) >= MAX_WORKERS {
            self.total.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let this = self.clone();
        if std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || this.work())
            .is_err()
        {
            self.total.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn work(self: Arc<Self>) {
        loop {
            self.idle.fetch_add(1, Ordering::SeqCst);
            let received = seccomp::receive(self.listener);
            let was_last = self.idle.fetch_sub(1, Ordering::SeqCst) == 1;
            // The listener is unusable (never while the tree lives): nothing more to wait for.
            let Ok(notif) = received else { break };
            if was_last {
                // We were the last one waiting: someone must wait while we work.
                self.clone().spawn();
            }
            let call = Call {
                listener: self.listener,
                notif: &notif,
                isolation: self.isolation.as_ref(),
            };
            handle(&self.runtime, &self.resolver, &call);
            if self.idle.load(Ordering::SeqCst) >= SPARE_WORKERS {
                break;
            }
        }
        self.total.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the intercepted call does.
enum Reply {
    /// It returns this value, or fails with this errno.
    Return(Result<i64, i32>),
    /// It runs as the program made it (its outcome does not depend on what we could check).
    Continue,
    /// The call is no longer pending (the thread was interrupted or died): nothing to answer.
    Gone,
}

fn handle(rt: &Runtime, resolver: &Resolver, call: &Call<'_>) {
    let reply = match i64::from(call.notif.data.nr) {
        libc::SYS_connect => on_connect(rt, resolver, call),
        libc::SYS_sendto | libc::SYS_sendmsg | libc::SYS_sendmmsg => on_send(rt, call),
        _ => Reply::Return(Err(libc::ENOSYS)),
    };
    match reply {
        Reply::Return(result) => seccomp::respond(call.listener, call.notif.id, result),
        Reply::Continue => seccomp::let_through(call.listener, call.notif.id),
        Reply::Gone => {}
    }
}

/// `--isolate`: the network namespace the supervisor connects from (the tree has its own).
pub struct Isolation {
    /// Our namespace's `SO_NETNS_COOKIE`.
    cookie: u64,
}

impl Isolation {
    /// The supervisor's current namespace.
    pub fn here() -> std::io::Result<Isolation> {
        let probe = socket::tcp_socket(libc::AF_INET)?;
        let cookie = socket::netns_cookie(probe);
        mcp_redirect_core::sys::close(probe);
        match cookie {
            Some(cookie) => Ok(Isolation { cookie }),
            None => Err(std::io::Error::other(
                "it needs Linux 5.14 or later (SO_NETNS_COOKIE), to tell the sockets it hands \
                 in from the program's own",
            )),
        }
    }

    /// Whether socket `fd` is in our namespace (one we handed in earlier).
    fn is_ours(&self, fd: i32) -> bool {
        socket::netns_cookie(fd) == Some(self.cookie)
    }
}

/// One pending system call of the program.
struct Call<'a> {
    listener: i32,
    notif: &'a libc::seccomp_notif,
    isolation: Option<&'a Isolation>,
}

impl Call<'_> {
    fn arg(&self, index: usize) -> u64 {
        self.notif.data.args[index]
    }

    fn read(&self, address: u64, len: usize) -> Result<Vec<u8>, i32> {
        if len == 0 {
            return Ok(Vec::new());
        }
        seccomp::read_memory(self.notif.pid, address, len).map_err(|_| libc::EFAULT)
    }

    /// Whether the call is still pending: what we read from its memory is its own only then.
    fn still_pending(&self) -> bool {
        seccomp::still_valid(self.listener, self.notif.id)
    }

    /// Our copy of the caller's socket `fd`, closed when dropped.
    fn socket(&self, fd: u64) -> Result<OwnedCopy, i32> {
        seccomp::copy_fd(self.notif.pid, fd as i32)
            .map(OwnedCopy)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EBADF))
    }

    /// `--isolate`: the socket to work on for the caller's socket `copy`: a twin of it in our
    /// namespace, to hand in with [`Call::hand_in`], unless `copy` is already in ours or the
    /// destination is loopback (the namespace's own). `Ok(None)`: work on `copy`.
    fn outside_twin(&self, copy: &OwnedCopy, dst: &SocketAddr) -> Result<Option<OwnedCopy>, i32> {
        let Some(isolation) = self.isolation else {
            return Ok(None);
        };
        if (is_inside(dst) && dst.port() != 53) || isolation.is_ours(copy.0) {
            return Ok(None);
        }
        socket::twin(copy.0)
            .map(|fd| Some(OwnedCopy(fd)))
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    }

    /// Puts our socket `ours` into the caller as its descriptor `number` (argument 0 of every
    /// call we take), replacing the socket it had, with the close-on-exec flag that one had.
    fn hand_in(&self, ours: &OwnedCopy) -> Result<(), i32> {
        let number = self.arg(0) as i32;
        // Unknown, the socket could leak into a program `exec`ed later: not handed in.
        let cloexec = seccomp::fd_is_cloexec(self.notif.pid, number).ok_or(libc::EBADF)?;
        seccomp::install_fd(self.listener, self.notif.id, ours.0, number, cloexec)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EBADF))
    }

    /// The calling process (not thread) and its executable's name, for rules and the log.
    fn process(&self) -> (u32, String) {
        let tid = self.notif.pid;
        (seccomp::thread_group_of(tid).unwrap_or(tid), exe_name(tid))
    }
}

/// A file descriptor of ours, closed on drop.
struct OwnedCopy(i32);

impl Drop for OwnedCopy {
    fn drop(&mut self) {
        mcp_redirect_core::sys::close(self.0);
    }
}

/// `connect(fd, addr, len)`.
fn on_connect(rt: &Runtime, resolver: &Resolver, call: &Call<'_>) -> Reply {
    let len = (call.arg(2) as usize).min(MAX_SOCKADDR);
    let bytes = match call.read(call.arg(1), len) {
        Ok(bytes) => bytes,
        Err(code) => return Reply::Return(Err(code)),
    };
    if !call.still_pending() {
        return Reply::Gone;
    }
    let classified = classify(&bytes);
    if let AddrArg::Malformed = classified {
        return Reply::Return(Err(libc::EINVAL));
    }
    let copy = match call.socket(call.arg(0)) {
        Ok(copy) => copy,
        Err(code) => return Reply::Return(Err(code)),
    };
    let ip_socket = matches!(
        socket::socket_domain(copy.0),
        Some(libc::AF_INET | libc::AF_INET6)
    );
    let dst = match classified {
        AddrArg::Inet(dst) if ip_socket => dst,
        // A non-IP socket (AF_UNIX...): nothing for us, whatever its address says.
        _ if !ip_socket => return Reply::Continue,
        // An IP socket with another family's address: never let through, since the program
        // could turn the address into an IP one after we read it. AF_UNSPEC (dissolving the
        // association) we do ourselves; anything else fails as the kernel fails it.
        _ if sa_family(&bytes) == Some(libc::AF_UNSPEC as u16) => {
            return Reply::Return(socket::connect_unspec(copy.0).map(|()| 0));
        }
        _ => return Reply::Return(Err(libc::EAFNOSUPPORT)),
    };
    if !decidable(copy.0) {
        return Reply::Return(Err(libc::EACCES));
    }
    if call.isolation.is_some_and(|i| i.is_ours(copy.0)) && is_inside(&dst) {
        // A socket we handed in lives outside: the namespace's loopback is not reachable from
        // it, and the machine's must not be.
        return Reply::Return(Err(libc::ECONNREFUSED));
    }
    let twin = match call.outside_twin(&copy, &dst) {
        Ok(twin) => twin,
        Err(code) => return Reply::Return(Err(code)),
    };
    let fd = twin.as_ref().unwrap_or(&copy).0;
    let result = if dst.port() == 53 {
        // DNS, wherever the program meant to send it: to our resolver.
        resolver.connect(fd, dst).map(|_| 0)
    } else {
        let (pid, exe) = call.process();
        let mut direct = |to: &SocketAddr| connect_once(fd, to);
        let mut tunneled = || Ok(0);
        decide(rt, caller(pid, &exe), fd, dst, &mut direct, &mut tunneled)
    };
    if let Some(twin) = &twin {
        // Connected, or on its way (a non-blocking socket): the caller's from now on. A
        // failure leaves the caller its own socket, unconnected, as a failed connect does.
        if matches!(result, Ok(_) | Err(libc::EINPROGRESS)) {
            if let Err(code) = call.hand_in(twin) {
                return Reply::Return(Err(code));
            }
        }
    }
    Reply::Return(result.map(|_| 0))
}

/// The library's decision and action on our copy of the socket: `direct` with the checked
/// address, or the gateway's tunnel and then `tunneled`.
fn decide(
    rt: &Runtime,
    caller: Caller<'_>,
    fd: i32,
    dst: SocketAddr,
    direct: &mut dyn FnMut(&SocketAddr) -> Result<isize, i32>,
    tunneled: &mut dyn FnMut() -> Result<isize, i32>,
) -> Result<isize, i32> {
    let act = Act {
        direct,
        tunneled,
        snapshot: None,
    };
    match connect::decide_connect(rt, caller, fd, dst, act) {
        Outcome::Done(result) => result,
        // Nothing to decide (nothing configured, or not logged): still ours to make, with the
        // address we checked, never the caller's own call.
        Outcome::PassThrough => direct(&dst),
    }
}

fn connect_once(fd: i32, to: &SocketAddr) -> Result<isize, i32> {
    socket::connect_once(fd, to)
        .map(|()| 0)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

/// One message of a send, copied out of the caller.
struct Message {
    name: Option<Vec<u8>>,
    data: Vec<u8>,
    control: Vec<u8>,
    /// Where `sendmmsg` wants this message's `msg_len`.
    len_at: Option<u64>,
}

/// `sendto`, `sendmsg`, `sendmmsg`.
fn on_send(rt: &Runtime, call: &Call<'_>) -> Reply {
    let nr = i64::from(call.notif.data.nr);
    let flags = call.arg(if nr == libc::SYS_sendmsg { 2 } else { 3 }) as i32;
    let copy = match call.socket(call.arg(0)) {
        Ok(copy) => copy,
        Err(code) => return Reply::Return(Err(code)),
    };
    let fd = copy.0;
    let domain = socket::socket_domain(fd);
    if !matches!(domain, Some(libc::AF_INET | libc::AF_INET6)) {
        return Reply::Continue;
    }
    let stream = socket::socket_type(fd) == Some(libc::SOCK_STREAM);
    if stream && flags & libc::MSG_FASTOPEN == 0 {
        return Reply::Continue;
    }
    if !decidable(fd) {
        return Reply::Return(Err(libc::EACCES));
    }
    let messages = match read_messages(call, nr) {
        Ok(messages) => messages,
        Err(code) => return Reply::Return(Err(code)),
    };
    if !call.still_pending() {
        return Reply::Gone;
    }
    // --isolate: the first message's destination says which namespace sends (the caller's
    // socket is in its own namespace until we hand it one of ours).
    let first = messages
        .first()
        .and_then(|m| m.name.as_deref())
        .map(classify);
    let twin = match first {
        Some(AddrArg::Inet(dst)) => match call.outside_twin(&copy, &dst) {
            Ok(twin) => twin,
            Err(code) => return Reply::Return(Err(code)),
        },
        _ => None,
    };
    let fd = twin.as_ref().unwrap_or(&copy).0;
    // Sent from outside (a twin, or a socket handed in before): no message may go to the
    // namespace's loopback from there, where the machine's is.
    let outside = twin.is_some() || call.isolation.is_some_and(|i| i.is_ours(copy.0));
    let (pid, exe) = call.process();
    let (sent, result) = if stream {
        if outside && first_is_inside(&messages) {
            return Reply::Return(Err(libc::ECONNREFUSED));
        }
        fast_open(rt, caller(pid, &exe), fd, &messages, flags)
    } else {
        datagrams(rt, caller(pid, &exe), fd, &messages, flags, outside)
    };
    if let Some(twin) = &twin {
        // Something went: the socket that sent it is the caller's from now on (its replies
        // come to it).
        if !sent.is_empty() || matches!(result, Err(libc::EINPROGRESS)) {
            if let Err(code) = call.hand_in(twin) {
                return Reply::Return(Err(code));
            }
        }
    }
    if let Err(libc::EPIPE) = result {
        if flags & libc::MSG_NOSIGNAL == 0 {
            // We send with MSG_NOSIGNAL; the program would have had its SIGPIPE.
            let _ = process::kill(call.notif.pid as libc::pid_t, libc::SIGPIPE);
        }
    }
    if nr != libc::SYS_sendmmsg {
        return Reply::Return(result.map(|n| n as i64));
    }
    // sendmmsg: each sent message's length goes back into the caller's array; the call
    // returns how many went, or the first one's error.
    for (message, n) in messages.iter().zip(&sent) {
        if let Some(at) = message.len_at {
            let _ = seccomp::write_memory(call.notif.pid, at, &(*n as u32).to_ne_bytes());
        }
    }
    Reply::Return(match (sent.len(), result) {
        (0, Err(code)) => Err(code),
        (count, _) => Ok(count as i64),
    })
}

/// The messages of a send, out of the caller's memory.
fn read_messages(call: &Call<'_>, nr: i64) -> Result<Vec<Message>, i32> {
    match nr {
        libc::SYS_sendto => {
            let (buf, len, addr, addrlen) = (call.arg(1), call.arg(2), call.arg(4), call.arg(5));
            let name = if addr == 0 {
                None
            } else {
                Some(call.read(addr, (addrlen as usize).min(MAX_SOCKADDR))?)
            };
            Ok(vec![Message {
                name,
                data: call.read(buf, (len as usize).min(MAX_PAYLOAD))?,
                control: Vec::new(),
                len_at: None,
            }])
        }
        libc::SYS_sendmsg => Ok(vec![read_message(call, call.arg(1), None)?]),
        _ => {
            let (vector, count) = (call.arg(1), (call.arg(2) as usize).min(MAX_VECTORS));
            (0..count)
                .map(|i| {
                    let at = vector + (i * MMSGHDR_SIZE) as u64;
                    read_message(call, at, Some(at + MSGHDR_SIZE as u64))
                })
                .collect()
        }
    }
}

/// One `struct msghdr` at `at`, with its name, data and ancillary data.
fn read_message(call: &Call<'_>, at: u64, len_at: Option<u64>) -> Result<Message, i32> {
    let raw = call.read(at, MSGHDR_SIZE)?;
    if raw.len() != MSGHDR_SIZE {
        return Err(libc::EFAULT);
    }
    // Its pointers are the caller's, only read from here.
    let header = msghdr::msghdr_from_bytes(&raw).ok_or(libc::EFAULT)?;
    let name = if header.msg_name.is_null() {
        None
    } else {
        let len = (header.msg_namelen as usize).min(MAX_SOCKADDR);
        Some(call.read(header.msg_name as u64, len)?)
    };
    let iovlen = header.msg_iovlen;
    if iovlen > MAX_VECTORS {
        return Err(libc::EMSGSIZE);
    }
    let iov_bytes = call.read(
        header.msg_iov as u64,
        iovlen * std::mem::size_of::<libc::iovec>(),
    )?;
    let mut data = Vec::new();
    for chunk in iov_bytes.chunks_exact(std::mem::size_of::<libc::iovec>()) {
        let Some(iov) = msghdr::iovec_from_bytes(chunk) else {
            break;
        };
        let room = MAX_PAYLOAD - data.len();
        if room == 0 {
            break;
        }
        data.extend(call.read(iov.iov_base as u64, iov.iov_len.min(room))?);
    }
    let control = if header.msg_control.is_null() {
        Vec::new()
    } else {
        call.read(
            header.msg_control as u64,
            header.msg_controllen.min(MAX_CONTROL),
        )?
    };
    Ok(Message {
        name,
        data,
        control,
        len_at,
    })
}

/// A TCP Fast Open send: decided like a connect with the first message's address; the data
/// goes with the SYN (direct) or after the gateway's tunnel (routed).
fn fast_open(
    rt: &Runtime,
    caller: Caller<'_>,
    fd: i32,
    messages: &[Message],
    flags: i32,
) -> (Vec<usize>, Result<isize, i32>) {
    let Some(first) = messages.first() else {
        return (Vec::new(), Ok(0));
    };
    let plain = (flags & !libc::MSG_FASTOPEN) | libc::MSG_NOSIGNAL;
    let dst = match first.name.as_deref().map(classify) {
        Some(AddrArg::Inet(dst)) => dst,
        Some(AddrArg::Malformed) => return (Vec::new(), Err(libc::EINVAL)),
        // No IP address: nothing to decide; the kernel refuses or sends on a connected socket.
        _ => return send_each(fd, messages, flags | libc::MSG_NOSIGNAL, |_| Ok(None)),
    };
    let mut direct = |to: &SocketAddr| {
        let raw = RawSockAddr::new(to);
        send_one(fd, first, Some(raw.bytes()), flags | libc::MSG_NOSIGNAL)
    };
    let mut tunneled = || send_one(fd, first, None, plain);
    match decide(rt, caller, fd, dst, &mut direct, &mut tunneled) {
        Ok(n) => {
            let (mut sent, rest) = send_each(fd, &messages[1..], plain, |_| Ok(None));
            sent.insert(0, n as usize);
            (sent, rest.map(|_| n))
        }
        Err(code) => (Vec::new(), Err(code)),
    }
}

/// Datagrams: each destination checked (strict mode refuses routed and denied ones; a DNS
/// query is decided by its name), then sent by us to the address we checked.
fn datagrams(
    rt: &Runtime,
    caller: Caller<'_>,
    fd: i32,
    messages: &[Message],
    flags: i32,
    outside: bool,
) -> (Vec<usize>, Result<isize, i32>) {
    send_each(fd, messages, flags | libc::MSG_NOSIGNAL, |message| {
        let Some(name) = message.name.as_deref() else {
            return Ok(None);
        };
        match classify(name) {
            // --isolate, from a socket outside: each message's own destination counts.
            AddrArg::Inet(dst) if outside && is_inside(&dst) && dst.port() != 53 => {
                Err(libc::ECONNREFUSED)
            }
            AddrArg::Inet(dst) => {
                if dst.port() == 53 {
                    learn_query(rt, &message.data)?;
                }
                connect::decide_datagram(rt, caller, fd, dst)?;
                Ok(Some(RawSockAddr::new(&dst).bytes().to_vec()))
            }
            AddrArg::Malformed => Err(libc::EINVAL),
            AddrArg::Other => Ok(Some(name.to_vec())),
        }
    })
}

/// Sends `messages` in order, each to the address `check` gives (`None`: the message's own
/// lack of one), until one fails: the lengths sent and the last result (the failure, or the
/// last length).
fn send_each(
    fd: i32,
    messages: &[Message],
    flags: i32,
    mut check: impl FnMut(&Message) -> Result<Option<Vec<u8>>, i32>,
) -> (Vec<usize>, Result<isize, i32>) {
    let mut sent = Vec::with_capacity(messages.len());
    let mut last = Ok(0);
    for message in messages {
        last = check(message).and_then(|name| send_one(fd, message, name.as_deref(), flags));
        match last {
            Ok(n) => sent.push(n as usize),
            Err(_) => break,
        }
    }
    (sent, last)
}

/// One `sendmsg` on our copy of the socket.
fn send_one(fd: i32, message: &Message, name: Option<&[u8]>, flags: i32) -> Result<isize, i32> {
    msghdr::send_message(fd, &message.data, name, &message.control, flags)
}

/// A DNS query sent as a datagram by a program with its own resolver that we cannot hand our
/// resolver's answer (musl's checks that the reply comes from the server it asked): a denied
/// name is refused (`EACCES`); for the others, we ask the same question of the system's
/// nameservers and remember the addresses, so the program's connect is decided by name.
fn learn_query(rt: &Runtime, query: &[u8]) -> Result<(), i32> {
    let Ok(question) = dns::parse_query(query) else {
        return Ok(());
    };
    if question.qclass != dns::CLASS_IN {
        return Ok(());
    }
    let (host, decision) = match lookup::decide_lookup(rt, question.name.as_bytes()) {
        Answer::PassThrough => return Ok(()),
        Answer::Refuse(_) => return Err(libc::EACCES),
        Answer::Real { host, decision } | Answer::RealOrFake { host, decision } => (host, decision),
        Answer::Fake { host, .. } => {
            let decision = lookup::plan(rt, &host).decision();
            (host, decision)
        }
    };
    if decision.action == Action::Deny {
        lookup::remember_in(rt, &host, decision, &[], libc::EAI_NONAME);
        return Err(libc::EACCES);
    }
    if let Some(Ok((rcode, addresses))) = resolver::forward(rt, query)
        .as_deref()
        .map(dns::answer_addresses)
    {
        let rc = if rcode == 0 { 0 } else { libc::EAI_NONAME };
        lookup::remember_in(rt, &host, decision, &addresses, rc);
    }
    Ok(())
}

/// `--isolate`: a destination in the program's own namespace: loopback, or the unspecified
/// address (which Linux connects to loopback).
fn is_inside(dst: &SocketAddr) -> bool {
    let ip = dst.ip().to_canonical();
    ip.is_loopback() || ip.is_unspecified()
}

/// Whether the first message of a send names a destination inside (see [`is_inside`]).
fn first_is_inside(messages: &[Message]) -> bool {
    matches!(
        messages.first().and_then(|m| m.name.as_deref()).map(classify),
        Some(AddrArg::Inet(dst)) if is_inside(&dst)
    )
}

/// An IP socket whose calls the library decides: TCP-like streams and UDP-like datagrams.
/// Others (SCTP's SOCK_SEQPACKET, DCCP) carry traffic no rule was written for: refused.
fn decidable(fd: i32) -> bool {
    matches!(
        socket::socket_type(fd),
        Some(libc::SOCK_STREAM | libc::SOCK_DGRAM)
    )
}

/// The `sa_family` of a socket address read from the caller.
fn sa_family(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(..2)?.try_into().ok()?))
}

fn caller(pid: u32, exe: &str) -> Caller<'_> {
    Caller {
        exe,
        via: Some("supervisor"),
        pid: Some(pid),
    }
}

fn classify(bytes: &[u8]) -> AddrArg {
    socket::classify_addr_bytes(bytes)
}

/// The executable's base name, for `process` rules and the log.
fn exe_name(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".into())
}
