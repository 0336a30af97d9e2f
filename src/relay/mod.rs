//! The relay: a routed `connect()` on a non-blocking socket returns `EINPROGRESS` at once, and
//! the gateway handshake runs on a thread of ours, not the program's. The design, its costs and
//! the cases it handles are in `docs/nonblocking.md`; in short:
//!
//! - [`begin`] (inside the program's `connect`) connects the program's socket to the relay's
//!   loopback listener, withholds its writability with `TCP_NOTSENT_LOWAT` and filler bytes the
//!   relay does not read yet, notes the socket in [`sockets`], and hands the handshake over;
//! - the relay thread ([`event_loop`]) runs the handshake on a socket of its own, then lets the
//!   program's socket turn writable (tunnel up: it discards the filler and copies bytes both ways)
//!   or resets it (failed: the `getsockopt(SO_ERROR)` hook gives the handshake's errno).
//!
//! This module decides *how* to carry a connection, never *where*: the handshake arrives as a
//! ready-made future from [`crate::connect`], which also writes its log line.

mod event_loop;
pub mod sockets;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::sys::socket::{self, Waiter};
use crate::sys::{self, epoll};

/// A gateway handshake for the relay to run. Called on the relay thread with the relay's socket
/// towards the gateway (or the errno of why there is none) and the way to wait; the future
/// connects that socket through the gateway, writes the log line, and gives the outcome (an errno
/// on failure).
pub type Handshake = Box<
    dyn FnOnce(Result<i32, i32>, Rc<dyn Waiter>) -> Pin<Box<dyn Future<Output = Result<(), i32>>>>
        + Send,
>;

/// A connection for the relay to carry.
pub struct Request {
    /// The program's socket.
    pub fd: i32,
    /// The address the program connected to (what `getpeername` will say).
    pub dst: SocketAddr,
    /// `AF_INET` or `AF_INET6`: the program's socket's family, and the relay's towards the gateway.
    pub family: i32,
    pub handshake: Handshake,
    /// The connection's record for its `close` line, if one is due: followed from here, and
    /// ended by the relay if the program lets go of it out of our sight.
    pub followed: Option<crate::connections::Followed>,
}

/// Relayed connections one process may have at once (established ones included); past this,
/// connects take the synchronous path.
const MAX_IN_FLIGHT: usize = 16_384;
/// The listeners' backlog: connects that arrive faster than the relay accepts wait here.
const BACKLOG: i32 = 4096;
/// Handshakes in flight above which new connections go to the compact listener: its connections
/// are born with the smallest receive buffer, so that the filler that holds a socket back is
/// about 2 KiB instead of 128 KiB of kernel memory; the price is a smaller window for the life of
/// the connection (about half the loopback throughput; still above what a gateway carries).
const COMPACT_ABOVE: usize = 64;
/// How long `connect()` waits, at most, for the relay's listener to take a connection when its
/// queue is full, before the handshake runs inside `connect()` instead.
const ESTABLISH_WAIT_MS: i32 = 20;
/// Filler written at most: more means the socket is not behaving as expected (see `withhold`).
const MAX_FILLER: usize = 8 << 20;
/// 64 KiB of zero bytes to write the filler from (in `.bss`: the kernel's zero pages).
static ZEROS: [u8; 65536] = [0; 65536];

/// What the program's threads and the relay thread share.
struct Shared {
    /// The process the relay runs in (a fork child has none until it starts its own).
    owner: u32,
    /// The listeners' ports on 127.0.0.1: the usual one, and the compact one (see
    /// `COMPACT_ABOVE`).
    port: u16,
    compact_port: u16,
    /// Handshakes handed over and not finished.
    handshaking: AtomicUsize,
    /// An eventfd bumped to wake the relay's event loop.
    wake_fd: i32,
    /// Requests handed over and not yet taken (a lock-free stack; the relay takes all at once).
    inbox: AtomicPtr<Message>,
    in_flight: AtomicUsize,
}

enum Note {
    /// A connection to take over.
    Connect(Job),
    /// The program set a carried option on its relayed socket `fd`, whose inode is `ino`.
    Options { fd: i32, ino: u64 },
}

struct Message {
    note: Note,
    next: *mut Message,
}

/// A request, with what the relay needs to find and free its program socket.
struct Job {
    request: Request,
    ino: u64,
    /// The program socket's local port and whether it went to the compact listener: how the
    /// relay recognises its connection.
    port: u16,
    compact: bool,
    filler: usize,
}

/// How many times (100 µs apart) a connect waits for a relay another thread is starting.
const STARTING_WAITS: usize = 200;

const IDLE: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;
const BROKEN: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(IDLE);
static SHARED: AtomicPtr<Shared> = AtomicPtr::new(std::ptr::null_mut());
/// After a failed start, when to try again (monotonic microseconds).
static RETRY_AFTER_US: AtomicU64 = AtomicU64::new(0);
/// Whether a relay has run in this process: until then the hooks on `getsockopt`,
/// `getpeername`, `setsockopt` and `close` cost one load of this flag.
static IN_USE: AtomicBool = AtomicBool::new(false);
static FORK_HANDLER: AtomicBool = AtomicBool::new(false);

/// Whether any socket of this process may be relayed (see `IN_USE`).
pub fn in_use() -> bool {
    IN_USE.load(Ordering::Relaxed)
}

fn shared() -> Option<&'static Shared> {
    let ptr = SHARED.load(Ordering::Acquire);
    // SAFETY: a non-null SHARED points to a leaked Box<Shared>, never freed.
    let shared = unsafe { ptr.as_ref() }?;
    (shared.owner == sys::pid()).then_some(shared)
}

/// The running relay, started now if there is none in this process.
fn running() -> Result<&'static Shared, &'static str> {
    if let Some(shared) = shared() {
        return Ok(shared);
    }
    // Another thread is starting it (a fraction of a millisecond): wait rather than handshake
    // inside this connect().
    for _ in 0..STARTING_WAITS {
        if STATE.load(Ordering::Acquire) != STARTING {
            break;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    if let Some(shared) = shared() {
        return Ok(shared);
    }
    match STATE.load(Ordering::Acquire) {
        STARTING => return Err("inline: the relay is starting on another thread"),
        BROKEN if sys::monotonic_us() < RETRY_AFTER_US.load(Ordering::Relaxed) => {
            return Err("inline: the relay could not start")
        }
        // RUNNING with another owner: a child made without fork handlers (`_Fork`, `clone`).
        _ => {}
    }
    let current = STATE.load(Ordering::Acquire);
    if STATE
        .compare_exchange(current, STARTING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // Another thread won the race to start it: wait for that one.
        for _ in 0..STARTING_WAITS {
            if let Some(shared) = shared() {
                return Ok(shared);
            }
            if STATE.load(Ordering::Acquire) != STARTING {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        return shared().ok_or("inline: the relay is starting on another thread");
    }
    match start() {
        Ok(shared) => {
            SHARED.store(shared as *const Shared as *mut Shared, Ordering::Release);
            IN_USE.store(true, Ordering::Release);
            STATE.store(RUNNING, Ordering::Release);
            Ok(shared)
        }
        Err(reason) => {
            RETRY_AFTER_US.store(sys::monotonic_us() + 1_000_000, Ordering::Relaxed);
            STATE.store(BROKEN, Ordering::Release);
            Err(reason)
        }
    }
}

/// Makes the listener, the epoll instance and the eventfd, and starts the relay thread with
/// every signal blocked.
fn start() -> Result<&'static Shared, &'static str> {
    if !sockets::prepare() {
        return Err("inline: no memory for the relay's tables");
    }
    if !FORK_HANDLER.swap(true, Ordering::AcqRel) && !sys::on_fork_child(after_fork_in_child) {
        FORK_HANDLER.store(false, Ordering::Release);
        return Err("inline: cannot register a fork handler");
    }
    let mut owned: Vec<i32> = Vec::with_capacity(4);
    let made = (|| -> std::io::Result<(i32, u16, i32, u16, i32, i32, i32)> {
        let (listener, port) = socket::listen_loopback(BACKLOG, None)?;
        owned.push(listener);
        // The kernel takes any SO_RCVBUF below its minimum as its minimum.
        let (compact, compact_port) = socket::listen_loopback(BACKLOG, Some(1))?;
        owned.push(compact);
        let epoll_fd = epoll::create()?;
        owned.push(epoll_fd);
        let wake = epoll::eventfd()?;
        owned.push(wake);
        // Registered here, not on the thread: a failure (the user's epoll watches used up)
        // must leave connects inline, not wait for a relay that cannot hear them.
        let readable = libc::EPOLLIN as u32;
        epoll::add(epoll_fd, wake, readable, event_loop::WAKE)?;
        epoll::add(epoll_fd, listener, readable, event_loop::LISTENER)?;
        epoll::add(epoll_fd, compact, readable, event_loop::COMPACT_LISTENER)?;
        // A spare descriptor, given up when the process runs out of them (see `event_loop`).
        let reserve = socket::duplicate(wake)?;
        owned.push(reserve);
        Ok((
            listener,
            port,
            compact,
            compact_port,
            epoll_fd,
            wake,
            reserve,
        ))
    })();
    let (listener, port, compact, compact_port, epoll_fd, wake, reserve) = match made {
        Ok(made) => made,
        Err(_) => {
            owned.into_iter().for_each(sys::close);
            return Err("inline: cannot make the relay's listener");
        }
    };
    owned.iter().copied().for_each(sockets::mark_ours);
    let shared_ptr = Box::into_raw(Box::new(Shared {
        owner: sys::pid(),
        port,
        compact_port,
        handshaking: AtomicUsize::new(0),
        wake_fd: wake,
        inbox: AtomicPtr::new(std::ptr::null_mut()),
        in_flight: AtomicUsize::new(0),
    }));
    // SAFETY: from Box::into_raw just above; it lives as long as the process (the relay thread
    // and SHARED hold it), unless the thread cannot start, when it is reclaimed below.
    let shared: &'static Shared = unsafe { &*shared_ptr };
    let fds = event_loop::Descriptors {
        listener,
        compact,
        epoll: epoll_fd,
        wake,
        reserve,
    };
    let spawned = sys::with_signals_blocked(|| {
        std::thread::Builder::new()
            .name("mcp-redirect-relay".into())
            .stack_size(512 << 10)
            .spawn(move || event_loop::run(shared, fds))
    });
    if spawned.is_err() {
        for fd in owned {
            sockets::unmark_ours(fd);
            sys::close(fd);
        }
        // SAFETY: the thread never started (its closure, the one other holder, was dropped) and
        // SHARED was not set: nobody else refers to it.
        drop(unsafe { Box::from_raw(shared_ptr) });
        return Err("inline: cannot start the relay thread");
    }
    Ok(shared)
}

/// In a fork child (the only thread there is): the parent's relay is not ours. Close our copies
/// of its descriptors (a copy would keep a connection the parent closes half-open), forget the
/// relayed sockets, and let this process start its own relay when it needs one.
/// Async-signal-safe: atomics, `close` and `madvise` only.
unsafe extern "C" fn after_fork_in_child() {
    // Also when the fork caught another thread starting the relay: its half-made descriptors
    // are marked already, and STATE must not stay STARTING in the child.
    sockets::each_ours(|fd| {
        // SAFETY: closing a descriptor has no memory preconditions; these are the relay's.
        unsafe { sys::real::close(fd) };
    });
    sockets::forget_all();
    SHARED.store(std::ptr::null_mut(), Ordering::Release);
    STATE.store(IDLE, Ordering::Release);
    IN_USE.store(false, Ordering::Release);
}

/// The relay thread is gone (see `event_loop::run`): no connect is handed to it again in this
/// process. Relayed sockets it held learn nothing more; their programs' own timeouts end them.
fn abandon() {
    RETRY_AFTER_US.store(u64::MAX, Ordering::Relaxed);
    STATE.store(BROKEN, Ordering::Release);
    SHARED.store(std::ptr::null_mut(), Ordering::Release);
}

fn push(shared: &Shared, note: Note) {
    let message = Box::into_raw(Box::new(Message {
        note,
        next: std::ptr::null_mut(),
    }));
    let mut head = shared.inbox.load(Ordering::Acquire);
    loop {
        // SAFETY: message is ours until the exchange below publishes it.
        unsafe { (*message).next = head };
        match shared
            .inbox
            .compare_exchange_weak(head, message, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => break,
            Err(current) => head = current,
        }
    }
    epoll::signal(shared.wake_fd);
}

/// Takes every message handed over, oldest first (the relay thread only).
fn take_all(shared: &Shared) -> Vec<Note> {
    let mut ptr = shared.inbox.swap(std::ptr::null_mut(), Ordering::AcqRel);
    let mut notes = Vec::new();
    while !ptr.is_null() {
        // SAFETY: every pointer in the stack came from Box::into_raw in `push` and is taken
        // exactly once, here, by the one consumer.
        let message = unsafe { Box::from_raw(ptr) };
        ptr = message.next;
        notes.push(message.note);
    }
    notes.reverse();
    notes
}

/// Takes over `request`'s connection: `Ok` when the program's socket is now the relay's to
/// complete (the hook returns `EINPROGRESS`), with the filler bytes written into it; else why
/// not (the caller handshakes synchronously; the socket is as the program left it).
pub fn begin(request: Request) -> Result<(), &'static str> {
    let fd = request.fd;
    if fd < 0 || fd as usize >= sockets::MAX_FDS {
        return Err("inline: descriptor number beyond the relay's table");
    }
    let shared = running()?;
    if shared.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
        return Err("inline: too many relayed connections");
    }
    // A socket the program bound to an address of its own cannot reach the relay from it (and
    // the relay would not know it): the handshake stays with that address.
    if let Ok(bound) = socket::local_address(fd) {
        let ip = bound.ip().to_canonical();
        if !ip.is_unspecified() && !ip.is_loopback() {
            return Err("inline: the socket is bound to an address of its own");
        }
    }
    let compact = shared.handshaking.load(Ordering::Relaxed) >= COMPACT_ABOVE;
    let relay_port = if compact {
        shared.compact_port
    } else {
        shared.port
    };
    let relay = if request.family == libc::AF_INET6 {
        SocketAddr::new(Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(), relay_port)
    } else {
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), relay_port)
    };
    match socket::connect_once(fd, &relay) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(_) => return Err("inline: cannot connect the socket to the relay"),
    }
    // A loopback connect is complete when connect() returns, unless the listener's queue is
    // full; then the relay is emptying it, which takes microseconds, not the handshake's time.
    let ready = socket::ready_within(fd, libc::POLLOUT, ESTABLISH_WAIT_MS);
    if ready & libc::POLLOUT == 0 || ready & (libc::POLLERR | libc::POLLHUP) != 0 {
        socket::disconnect(fd);
        return Err("inline: the relay's listener did not take the connection at once");
    }
    let (port, lowat, options) = match prepare_socket(fd) {
        Ok(prepared) => prepared,
        Err(reason) => {
            socket::disconnect(fd);
            return Err(reason);
        }
    };
    let filler = match withhold(fd) {
        Ok(filler) => filler,
        Err(reason) => {
            let _ = socket::set_int_option(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                lowat as i32,
            );
            socket::disconnect(fd);
            return Err(reason);
        }
    };
    let Some(ino) = sys::inode(fd) else {
        socket::disconnect(fd);
        return Err("inline: the socket vanished");
    };
    sockets::publish(fd, ino, request.dst, lowat, &options);
    if let Some(followed) = &request.followed {
        // The filler and the SYN go through the program's socket: not its payload.
        followed.set_ours(filler as u64 + 1, 0);
        crate::connections::follow(fd, followed);
    }
    shared.in_flight.fetch_add(1, Ordering::AcqRel);
    shared.handshaking.fetch_add(1, Ordering::AcqRel);
    push(
        shared,
        Note::Connect(Job {
            request,
            ino,
            port,
            compact,
            filler,
        }),
    );
    Ok(())
}

/// The program socket's local port (the relay's key for it), its own `TCP_NOTSENT_LOWAT`, and the
/// carried options it set before `connect()`.
fn prepare_socket(fd: i32) -> Result<(u16, u32, sockets::Options), &'static str> {
    let local =
        socket::local_address(fd).map_err(|_| "inline: cannot read the socket's local address")?;
    let lowat = socket::int_option(fd, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT).unwrap_or(0);
    let mut options = [None; 5];
    let keepalive = socket::int_option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE).unwrap_or(0);
    if keepalive != 0 {
        for (index, &(level, name)) in sockets::CARRIED_OPTIONS.iter().enumerate().take(4) {
            options[index] = socket::int_option(fd, level, name).ok();
        }
    }
    let user_timeout =
        socket::int_option(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT).unwrap_or(0);
    if user_timeout != 0 {
        options[4] = Some(user_timeout);
    }
    Ok((local.port(), lowat as u32, options))
}

/// Makes the socket report "not writable" until the relay reads: `TCP_NOTSENT_LOWAT = 1`, then
/// filler until the kernel refuses more. Returns how many filler bytes went in.
fn withhold(fd: i32) -> Result<usize, &'static str> {
    socket::set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, 1)
        .map_err(|_| "inline: cannot set TCP_NOTSENT_LOWAT")?;
    let mut filler = 0;
    loop {
        match socket::send_now(fd, &ZEROS) {
            Ok(n) => filler += n,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => break,
            Err(_) => return Err("inline: cannot write the filler"),
        }
        if filler > MAX_FILLER {
            return Err("inline: the socket takes filler without end");
        }
    }
    if socket::ready_now(fd, libc::POLLOUT) & libc::POLLOUT != 0 {
        return Err("inline: the socket stays writable");
    }
    Ok(filler)
}

// ---- What the hooks ask. Each starts with `in_use()`: one load when no relay has run. ----

/// What `connect()` again on a relayed socket answers.
pub enum Again {
    /// The handshake is running: `EALREADY`.
    InProgress,
    /// The tunnel is up: `EISCONN`.
    Connected,
    /// The handshake failed with this errno: the call reports it, as Linux reports a failed
    /// non-blocking connect to the next `connect()`; the one after is a new attempt.
    Failed(i32),
}

/// `connect()` again on `fd`; `None`: not relayed (any more), decide as usual.
pub fn connect_again(fd: i32) -> Option<Again> {
    if !in_use() {
        return None;
    }
    let relayed = sockets::lookup(fd)?;
    Some(match relayed.phase {
        sockets::Phase::Pending => Again::InProgress,
        sockets::Phase::Up => {
            restore_lowat(fd, relayed.ino);
            Again::Connected
        }
        sockets::Phase::Failed(errno) => {
            forget(fd);
            Again::Failed(errno)
        }
    })
}

/// Forgets `fd`'s slot, in the process that owns the relay only: a `vfork` child shares our
/// memory and must not wipe its parent's view of the sockets it is still relaying.
fn forget(fd: i32) {
    if sockets::in_use(fd) && shared().is_some() {
        sockets::forget(fd);
    }
}

/// The program disconnected `fd` (`connect` with `AF_UNSPEC`): it is not relayed any more.
pub fn disconnected(fd: i32) {
    if in_use() {
        forget(fd);
    }
}

/// `getsockopt(SO_ERROR)` on `fd` returned `value`: for a relayed socket whose handshake failed,
/// the relay's reset becomes the handshake's own errno; once the tunnel is up, the program's
/// `TCP_NOTSENT_LOWAT` goes back on the socket.
pub fn socket_error(fd: i32, value: i32) -> i32 {
    if !in_use() {
        return value;
    }
    let Some(relayed) = sockets::lookup(fd) else {
        return value;
    };
    match relayed.phase {
        sockets::Phase::Failed(errno)
            if matches!(value, libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED) =>
        {
            errno
        }
        sockets::Phase::Up => {
            restore_lowat(fd, relayed.ino);
            value
        }
        _ => value,
    }
}

fn restore_lowat(fd: i32, ino: u64) {
    if let Some(lowat) = sockets::take_lowat(fd, ino) {
        let _ =
            socket::set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, lowat as i32);
    }
}

/// Whether `fd` is a relayed socket whose handshake failed (it never carried anything).
pub fn failed(fd: i32) -> bool {
    in_use()
        && sockets::lookup(fd)
            .is_some_and(|relayed| matches!(relayed.phase, sockets::Phase::Failed(_)))
}

/// What `getpeername(fd)` answers for a relayed socket: `Ok(address)` once the tunnel is up (the
/// address the program connected to), `Err(ENOTCONN)` before or after a failure; `None`: not
/// relayed, ask the kernel.
pub fn peer_name(fd: i32) -> Option<Result<SocketAddr, i32>> {
    if !in_use() {
        return None;
    }
    let relayed = sockets::lookup(fd)?;
    Some(match relayed.phase {
        sockets::Phase::Up => {
            restore_lowat(fd, relayed.ino);
            sockets::destination(fd).ok_or(libc::ENOTCONN)
        }
        _ => Err(libc::ENOTCONN),
    })
}

/// The program set an option on `fd`: if the relay carries it to its own socket, note it and
/// tell the relay.
pub fn option_set(fd: i32, level: i32, name: i32, value: i32) {
    if !in_use() {
        return;
    }
    if (level, name) == (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT) {
        return lowat_set(fd, value);
    }
    let Some(index) = sockets::CARRIED_OPTIONS
        .iter()
        .position(|&carried| carried == (level, name))
    else {
        return;
    };
    let Some(relayed) = sockets::lookup(fd) else {
        return;
    };
    // Any non-zero value turns keepalive on.
    let value = if (level, name) == (libc::SOL_SOCKET, libc::SO_KEEPALIVE) {
        (value != 0) as i32
    } else {
        value
    };
    sockets::record_option(fd, index, value);
    if let Some(shared) = shared() {
        push(
            shared,
            Note::Options {
                fd,
                ino: relayed.ino,
            },
        );
    }
}

/// The program set `TCP_NOTSENT_LOWAT` itself on a relayed socket: it is the value to restore
/// once the tunnel is up; while the handshake runs, ours (1) stays on the socket, or the filler
/// could stop holding it back.
fn lowat_set(fd: i32, value: i32) {
    let Some(relayed) = sockets::lookup(fd) else {
        return;
    };
    match relayed.phase {
        sockets::Phase::Pending => {
            sockets::record_lowat(fd, value as u32);
            let _ = socket::set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, 1);
        }
        // Up: the program's value is on the socket now; ours must not be put back over it.
        _ => {
            let _ = sockets::take_lowat(fd, relayed.ino);
        }
    }
}

/// Whether `fd` is one of the relay's own descriptors (the `close` hook leaves it open and
/// reports success).
pub fn is_ours(fd: i32) -> bool {
    in_use() && sockets::is_ours(fd)
}

/// The program closed `fd` (or replaced it): it is not relayed any more.
pub fn forget_closed(fd: i32) {
    if in_use() {
        forget(fd);
    }
}

/// The relay's descriptors in `first..=last`, in order, for `close_range`/`closefrom` to step
/// around.
pub fn ours_in(first: u32, last: u32) -> Vec<u32> {
    let mut found = Vec::new();
    if in_use() {
        sockets::each_ours(|fd| {
            let fd = fd as u32;
            if (first..=last).contains(&fd) {
                found.push(fd);
            }
        });
    }
    found
}
