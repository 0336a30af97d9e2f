//! What each connection carried: the TCP connections the library decided (direct and through a
//! gateway; denied ones never opened) are remembered by descriptor until the program's
//! descriptor goes away (`close`, `dup2`/`dup3` over it, `close_range`, process exit), when one
//! `close` line says how long the connection lived, how many bytes went each way, and how it
//! ended.
//!
//! The counts come from the kernel (`TCP_INFO`'s `tcpi_bytes_acked` and `tcpi_bytes_received`
//! on the program's socket), minus what was the library's own on that socket: a gateway
//! handshake made on it, or the relay's filler. Sent bytes are those the peer acknowledged by
//! the close, so a close right after a write can miss bytes still in flight.
//!
//! A program may also close a descriptor behind our back, with a raw `close` system call
//! (libuv, so Node, does): a relayed connection's line then comes from the relay, when it
//! sees the program's end of the stream, with the bytes it carried each way (see
//! [`relay_ended`]); a direct one's is lost.
//!
//! One slot per descriptor number holds a counted pointer to the connection's record; the
//! record names its socket by inode, so a number the program closed behind our back and reused
//! is noticed. Whoever takes the pointer out of the slot (a `close`, the exit handler, the
//! relay) writes the line, so there is one. Only the process that made the connection writes
//! its line: a fork child forgets what it inherited (the parent's line is the connection's),
//! and a `vfork` child, sharing our memory, never touches the table.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::log::Event;
use crate::runtime::Runtime;
use crate::sys::{self, LazyWords};

/// Descriptor numbers followed (the relay's bound: 64 bytes of address space per 8 numbers).
const MAX_FDS: usize = crate::relay::sockets::MAX_FDS;

static RECORDS: LazyWords = LazyWords::new(MAX_FDS);
/// Whether any connection was ever followed in this process: until then a `close` costs one
/// load of this flag.
static IN_USE: AtomicBool = AtomicBool::new(false);
/// The process whose connections the table holds.
static OWNER: AtomicU32 = AtomicU32::new(0);
static HANDLERS: AtomicBool = AtomicBool::new(false);

/// Where a connection's tunnel went: known at `connect()` on the synchronous path, filled in by
/// the relay's handshake when it ends (lock-free: the relay thread writes, a `close` reads).
#[derive(Clone)]
pub struct Endpoint(Arc<arc_swap::ArcSwapOption<SocketAddr>>);

impl Endpoint {
    pub fn known(address: Option<SocketAddr>) -> Endpoint {
        Endpoint(Arc::new(arc_swap::ArcSwapOption::new(
            address.map(Arc::new),
        )))
    }

    /// To be set by whoever learns it.
    pub fn later() -> Endpoint {
        Endpoint::known(None)
    }

    pub fn set(&self, address: Option<SocketAddr>) {
        self.0.store(address.map(Arc::new));
    }

    fn get(&self) -> Option<SocketAddr> {
        self.0.load().as_deref().copied()
    }
}

/// One connection, from its `connect` line to its `close` line.
pub struct Record {
    /// The snapshot it was decided with (its log, rule texts, gateway names).
    pub rt: Arc<Runtime>,
    /// The program's socket.
    pub ino: u64,
    pub opened_us: u64,
    pub host: Option<String>,
    pub dst: SocketAddr,
    pub rule: (Option<usize>, String),
    pub action: &'static str,
    pub gateway: Option<String>,
    pub endpoint: Endpoint,
    /// What the kernel counted on the program's socket that was not the program's payload
    /// (sent, received): the SYN, a gateway handshake made on it, the relay's filler (known
    /// only once the relay took the connection, hence atomic).
    pub ours: [AtomicU64; 2],
}

/// A connection to follow: its record, shared between the table and the relay carrying it.
#[derive(Clone)]
pub struct Followed(Arc<Record>);

impl Followed {
    pub fn new(record: Record) -> Followed {
        Followed(Arc::new(record))
    }

    /// Sets the bytes the library put on the program's socket as it sends them.
    pub fn set_ours(&self, sent: u64, received: u64) {
        self.0.ours[0].store(sent, Ordering::Relaxed);
        self.0.ours[1].store(received, Ordering::Relaxed);
    }
}

/// How a connection the relay carried ended, by the relay's own counts.
pub struct Carried {
    /// Payload the program sent and received.
    pub sent: u64,
    pub received: u64,
    pub how: &'static str,
}

/// Whether any connection may be followed (see `IN_USE`).
pub fn in_use() -> bool {
    IN_USE.load(Ordering::Relaxed)
}

fn slot(fd: i32) -> Option<&'static std::sync::atomic::AtomicU64> {
    let index = usize::try_from(fd).ok().filter(|&i| i < MAX_FDS)?;
    Some(&RECORDS.get()?[index])
}

/// Whether this process owns the table (not a `vfork` child sharing its memory).
fn owned_here() -> bool {
    OWNER.load(Ordering::Acquire) == sys::pid()
}

/// Starts following the connection on `fd`.
pub fn follow(fd: i32, followed: &Followed) {
    if !start() {
        return;
    }
    let Some(slot) = usize::try_from(fd)
        .ok()
        .filter(|&i| i < MAX_FDS)
        .and_then(|i| RECORDS.get_or_map().map(|words| &words[i]))
    else {
        return;
    };
    let fresh = Arc::into_raw(followed.0.clone()) as u64;
    // An earlier record here is a connection closed out of our sight (its line is lost, or the
    // relay writes it).
    drop(take(slot.swap(fresh, Ordering::AcqRel)));
}

/// The record a value taken out of a slot points to.
fn take(value: u64) -> Option<Arc<Record>> {
    // SAFETY: every non-zero slot value came from Arc::into_raw in `follow`, and is taken out of
    // the table exactly once (by the swap or exchange that returned it).
    (value != 0).then(|| unsafe { Arc::from_raw(value as *const Record) })
}

/// The relay has finished carrying the connection the program had on `fd`: if the program
/// let go of it out of our sight (a raw `close`), this writes its line, with the relay's counts
/// (`None`: the tunnel never came up, and no line is due).
pub fn relay_ended(fd: i32, followed: Followed, carried: Option<Carried>) {
    if !in_use() || !owned_here() {
        return;
    }
    let Some(slot) = slot(fd) else {
        return;
    };
    // The program still has the socket (it shut its side down, or the peer reset): its `close`
    // will write the line, in our sight.
    if sys::inode(fd) == Some(followed.0.ino) {
        return;
    }
    // The relay's own reference keeps the record alive, so its address cannot name another
    // record in the slot.
    let mine = Arc::as_ptr(&followed.0) as u64;
    if slot
        .compare_exchange(mine, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    drop(take(mine));
    if let Some(carried) = carried {
        write(&followed.0, carried.sent, carried.received, carried.how);
    }
}

/// Makes the table this process's, registering the fork and exit handlers once.
fn start() -> bool {
    let pid = sys::pid();
    if OWNER.load(Ordering::Acquire) != pid {
        OWNER.store(pid, Ordering::Release);
    }
    if !HANDLERS.swap(true, Ordering::AcqRel) {
        sys::on_fork_child(forget_in_child);
        sys::at_exit(close_all_at_exit);
    }
    IN_USE.store(true, Ordering::Release);
    true
}

/// In a fork child: the connections it inherited are the parent's to report.
/// Async-signal-safe: atomics and `madvise` (the records are leaked, not freed).
unsafe extern "C" fn forget_in_child() {
    if IN_USE.load(Ordering::Acquire) {
        RECORDS.forget();
        IN_USE.store(false, Ordering::Release);
    }
}

/// At exit (`exit`, a return from `main`): a line for every connection still open.
extern "C" fn close_all_at_exit() {
    if !in_use() || !owned_here() {
        return;
    }
    if let Some(words) = RECORDS.get() {
        for (fd, word) in words.iter().enumerate() {
            if word.load(Ordering::Relaxed) != 0 {
                let _ = std::panic::catch_unwind(|| ended(fd as i32, "exit"));
            }
        }
    }
}

/// The program's descriptors `first..=last` are going away (`close_range`, `closefrom`).
pub fn closing_range(first: u32, last: u32) {
    if !in_use() || !owned_here() {
        return;
    }
    let Some(words) = RECORDS.get() else {
        return;
    };
    let last = (last as usize).min(words.len().saturating_sub(1));
    for (fd, word) in words.iter().enumerate().take(last + 1).skip(first as usize) {
        if word.load(Ordering::Relaxed) != 0 {
            ended(fd as i32, "");
        }
    }
}

/// The program's descriptor `fd` is going away (closed, or replaced by `dup2`): write the
/// connection's line, if the library followed one there.
pub fn closing(fd: i32) {
    if !in_use() {
        return;
    }
    let Some(slot) = slot(fd) else {
        return;
    };
    if slot.load(Ordering::Relaxed) == 0 || !owned_here() {
        return;
    }
    ended(fd, "");
}

/// Takes `fd`'s record and writes its line; `how` is `exit`, or empty to read it off the socket.
fn ended(fd: i32, how: &str) {
    let Some(slot) = slot(fd) else {
        return;
    };
    let Some(record) = take(slot.swap(0, Ordering::AcqRel)) else {
        return;
    };
    if sys::inode(fd) != Some(record.ino) {
        // The number names another file now: the connection ended out of our sight.
        return;
    }
    let Some(info) = crate::sys::socket::tcp_info(fd) else {
        return;
    };
    // A relayed connection whose handshake failed, or a direct one that never connected, never
    // carried anything: no line.
    if crate::relay::failed(fd) || never_connected(&info) {
        return;
    }
    // A FIN takes a sequence number too: the peer's, once received, and ours, once acknowledged,
    // are counted as a byte each.
    let (our_fin, their_fin) = fins(info.tcpi_state);
    let ours = record.ours.each_ref().map(|o| o.load(Ordering::Relaxed));
    let sent = info.tcpi_bytes_acked.saturating_sub(ours[0] + our_fin);
    let received = info.tcpi_bytes_received.saturating_sub(ours[1] + their_fin);
    let how = if how.is_empty() {
        ending(info.tcpi_state)
    } else {
        how
    };
    write(&record, sent, received, how);
}

/// Writes `record`'s `close` line.
fn write(record: &Record, sent: u64, received: u64, how: &str) {
    let duration_ms = sys::monotonic_us().saturating_sub(record.opened_us) / 1000;
    let rt = &record.rt;
    rt.log.write(
        &Event {
            event: "close",
            proto: Some("tcp"),
            host: record.host.as_deref(),
            port: Some(record.dst.port()),
            dst: Some(record.dst),
            rule: Some((record.rule.0, &record.rule.1)),
            action: Some(record.action),
            gateway: record.gateway.as_deref(),
            endpoint: record.endpoint.get(),
            duration_ms: Some(duration_ms),
            bytes_sent: Some(sent),
            bytes_received: Some(received),
            ended: Some(how),
            ..Default::default()
        },
        &rt.exe,
    );
}

/// A socket that never got past its handshake: still connecting, or closed with nothing
/// exchanged (a refused or unreachable connect).
fn never_connected(info: &libc::tcp_info) -> bool {
    const TCP_SYN_SENT: u8 = 2;
    const TCP_CLOSE: u8 = 7;
    info.tcpi_state == TCP_SYN_SENT
        || (info.tcpi_state == TCP_CLOSE
            && info.tcpi_bytes_acked == 0
            && info.tcpi_bytes_received == 0
            && info.tcpi_rtt == 0)
}

/// Whether our FIN has been acknowledged and the peer's received, by TCP state (as bytes the
/// kernel counted: 0 or 1 each).
fn fins(state: u8) -> (u64, u64) {
    match state {
        // FIN_WAIT2: ours acknowledged.
        5 => (1, 0),
        // CLOSE_WAIT, LAST_ACK, CLOSING: theirs received (LAST_ACK, CLOSING: ours not acked).
        6 | 8 | 11 => (0, 1),
        _ => (0, 0),
    }
}

/// How the connection stands as the program lets go of it, from its TCP state.
fn ending(state: u8) -> &'static str {
    match state {
        // ESTABLISHED, FIN_WAIT1/2: the program closes (first, or after its own shutdown).
        1 | 4 | 5 => "closed by the program",
        // CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSING: the peer had ended its side.
        6 | 8 | 9 | 11 => "closed by the peer",
        // CLOSE: reset or timed out.
        7 => "reset",
        _ => "closed",
    }
}
