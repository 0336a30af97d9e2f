//! What the hooks know about the program's relayed sockets, one slot per descriptor number, and
//! which descriptors are the relay's own. Written by the program's threads (inside `connect`,
//! `setsockopt`, `close`) and by the relay thread (the outcome), lock-free.
//!
//! A slot names its socket by inode: a descriptor number the program closed and reused for
//! another socket no longer matches, whatever the relay thread is doing, so a stale slot is
//! harmless (and the `close` hook empties it).
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::{self, LazyWords};

/// Descriptor numbers the relay serves (higher ones take the synchronous path): a slot is 64
/// bytes, so the table is 8 MiB of address space, paid for only where written.
pub const MAX_FDS: usize = 1 << 17;
const WORDS_PER_SLOT: usize = 8;

static SLOTS: LazyWords = LazyWords::new(MAX_FDS * WORDS_PER_SLOT);
/// One bit per descriptor number: set while the relay owns that descriptor.
static OURS: LazyWords = LazyWords::new(MAX_FDS / 64);

/// Where a relayed socket's handshake stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Up,
    /// The handshake failed with this errno.
    Failed(i32),
}

const EMPTY: u64 = 0;
const PENDING: u64 = 1;
const UP: u64 = 2;
const FAILED: u64 = 3;
const PHASE_MASK: u64 = 3;
/// Set while the program's socket still has our `TCP_NOTSENT_LOWAT`.
const LOWAT_SET: u64 = 1 << 10;

fn encode(phase: Phase, flags: u64, ino: u64) -> u64 {
    let (code, errno) = match phase {
        Phase::Pending => (PENDING, 0),
        Phase::Up => (UP, 0),
        Phase::Failed(errno) => (FAILED, errno as u64 & 0xff),
    };
    code | errno << 2 | flags | (ino & 0xffff_ffff) << 32
}

fn decode(word: u64) -> Option<Phase> {
    match word & PHASE_MASK {
        PENDING => Some(Phase::Pending),
        UP => Some(Phase::Up),
        FAILED => Some(Phase::Failed(((word >> 2) & 0xff) as i32)),
        _ => None,
    }
}

fn same_socket(word: u64, ino: u64) -> bool {
    word >> 32 == ino & 0xffff_ffff
}

fn slot(fd: i32) -> Option<&'static [AtomicU64]> {
    let index = usize::try_from(fd).ok().filter(|&i| i < MAX_FDS)?;
    let words = SLOTS.get()?;
    Some(&words[index * WORDS_PER_SLOT..(index + 1) * WORDS_PER_SLOT])
}

/// Maps the tables; `false` if the kernel gives no memory (the relay then stays off).
pub fn prepare() -> bool {
    SLOTS.get_or_map().is_some() && OURS.get_or_map().is_some()
}

/// Socket options the program sets that the relay carries over to its socket towards the
/// gateway, so that they keep their meaning end to end: `(level, name)`.
pub const CARRIED_OPTIONS: [(i32, i32); 5] = [
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
];

/// Values of [`CARRIED_OPTIONS`], `None` where the program never set one.
pub type Options = [Option<i32>; 5];

/// Where the carried options live in a slot: words 5 to 7, two halves each, `value + 1` (0 for
/// "never set"); the last half holds the program's own `TCP_NOTSENT_LOWAT`.
fn option_half(index: usize) -> (usize, u32) {
    (5 + index / 2, (index % 2) as u32 * 32)
}

fn store_half(word: &AtomicU64, shift: u32, value: u32) {
    let mask = 0xffff_ffffu64 << shift;
    let _ = word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
        Some((old & !mask) | (value as u64) << shift)
    });
}

fn load_half(word: &AtomicU64, shift: u32) -> u32 {
    (word.load(Ordering::Acquire) >> shift) as u32
}

/// Notes a socket whose handshake the relay takes over: the address the program asked for (what
/// `getpeername` answers once the tunnel is up), its `TCP_NOTSENT_LOWAT` before ours, and the
/// carried options it had set before `connect()`.
pub fn publish(fd: i32, ino: u64, dst: SocketAddr, lowat: u32, options: &Options) -> bool {
    let Some(words) = slot(fd) else {
        return false;
    };
    words[0].store(EMPTY, Ordering::Release);
    let (family, address, flow, scope) = match dst {
        SocketAddr::V4(v4) => (
            libc::AF_INET as u64,
            v4.ip().to_ipv6_mapped().octets(),
            0,
            0,
        ),
        SocketAddr::V6(v6) => (
            libc::AF_INET6 as u64,
            v6.ip().octets(),
            v6.flowinfo(),
            v6.scope_id(),
        ),
    };
    words[1].store(
        family | (dst.port() as u64) << 16 | (flow as u64) << 32,
        Ordering::Relaxed,
    );
    let (high, low) = address.split_at(8);
    words[2].store(
        u64::from_be_bytes(high.try_into().unwrap()),
        Ordering::Relaxed,
    );
    words[3].store(
        u64::from_be_bytes(low.try_into().unwrap()),
        Ordering::Relaxed,
    );
    words[4].store(scope as u64, Ordering::Relaxed);
    for word in &words[5..8] {
        word.store(0, Ordering::Relaxed);
    }
    for (index, value) in options.iter().enumerate() {
        let (word, shift) = option_half(index);
        store_half(&words[word], shift, value.map_or(0, |v| v as u32 + 1));
    }
    store_half(&words[7], 32, lowat);
    words[0].store(encode(Phase::Pending, LOWAT_SET, ino), Ordering::Release);
    true
}

/// A relayed socket as the hooks see it.
pub struct Relayed {
    pub phase: Phase,
    pub ino: u64,
}

/// The relayed socket behind `fd`, if `fd` still refers to it (one `fstat` when the slot is in
/// use; nothing otherwise).
pub fn lookup(fd: i32) -> Option<Relayed> {
    let words = slot(fd)?;
    let word = words[0].load(Ordering::Acquire);
    let phase = decode(word)?;
    let ino = sys::inode(fd)?;
    if !same_socket(word, ino) {
        // The program closed the socket and the number now names another file.
        let _ = words[0].compare_exchange(word, EMPTY, Ordering::AcqRel, Ordering::Relaxed);
        return None;
    }
    Some(Relayed { phase, ino })
}

/// The address the program connected to.
pub fn destination(fd: i32) -> Option<SocketAddr> {
    let words = slot(fd)?;
    let head = words[1].load(Ordering::Relaxed);
    let mut address = [0u8; 16];
    address[..8].copy_from_slice(&words[2].load(Ordering::Relaxed).to_be_bytes());
    address[8..].copy_from_slice(&words[3].load(Ordering::Relaxed).to_be_bytes());
    let ip = Ipv6Addr::from(address);
    let port = (head >> 16) as u16;
    Some(if (head & 0xffff) as i32 == libc::AF_INET {
        SocketAddr::new(
            IpAddr::V4(ip.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)),
            port,
        )
    } else {
        SocketAddr::V6(SocketAddrV6::new(
            ip,
            port,
            (head >> 32) as u32,
            words[4].load(Ordering::Relaxed) as u32,
        ))
    })
}

/// Records the handshake's outcome for the socket `fd` had when it was published; `false` if
/// the program has closed it since (nobody is left to tell).
pub fn settle(fd: i32, ino: u64, outcome: Phase) -> bool {
    let Some(words) = slot(fd) else {
        return false;
    };
    words[0]
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
            (decode(word) == Some(Phase::Pending) && same_socket(word, ino))
                .then(|| encode(outcome, word & LOWAT_SET, ino))
        })
        .is_ok()
}

/// The program's own `TCP_NOTSENT_LOWAT`, once, when the tunnel is up and ours is still set: the
/// caller puts it back on the socket.
pub fn take_lowat(fd: i32, ino: u64) -> Option<u32> {
    let words = slot(fd)?;
    words[0]
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
            (decode(word) == Some(Phase::Up) && same_socket(word, ino) && word & LOWAT_SET != 0)
                .then_some(word & !LOWAT_SET)
        })
        .ok()?;
    Some(load_half(&words[7], 32))
}

/// Records a carried option the program set on a relayed socket.
pub fn record_option(fd: i32, index: usize, value: i32) {
    if let Some(words) = slot(fd) {
        let (word, shift) = option_half(index);
        store_half(&words[word], shift, value as u32 + 1);
    }
}

/// The carried options recorded for `fd`.
pub fn options(fd: i32) -> Options {
    let mut values = [None; 5];
    if let Some(words) = slot(fd) {
        for (index, value) in values.iter_mut().enumerate() {
            let (word, shift) = option_half(index);
            let raw = load_half(&words[word], shift);
            *value = raw.checked_sub(1).map(|v| v as i32);
        }
    }
    values
}

/// Whether `fd`'s slot holds a socket (one load).
pub fn in_use(fd: i32) -> bool {
    slot(fd).is_some_and(|words| words[0].load(Ordering::Relaxed) != EMPTY)
}

/// Forgets `fd`'s slot (the program closed it).
pub fn forget(fd: i32) {
    if let Some(words) = slot(fd) {
        words[0].store(EMPTY, Ordering::Release);
    }
}

/// Replaces the `TCP_NOTSENT_LOWAT` to restore once the tunnel is up with the program's own.
pub fn record_lowat(fd: i32, value: u32) {
    if let Some(words) = slot(fd) {
        store_half(&words[7], 32, value);
    }
}

fn bit(fd: i32) -> Option<(&'static AtomicU64, u64)> {
    let index = usize::try_from(fd).ok().filter(|&i| i < MAX_FDS)?;
    Some((&OURS.get()?[index / 64], 1 << (index % 64)))
}

/// Notes that the relay owns `fd` now (set right after it is made).
pub fn mark_ours(fd: i32) {
    if let Some((word, mask)) = bit(fd) {
        word.fetch_or(mask, Ordering::AcqRel);
    }
}

/// Notes that the relay gives `fd` up (cleared right before it is closed).
pub fn unmark_ours(fd: i32) {
    if let Some((word, mask)) = bit(fd) {
        word.fetch_and(!mask, Ordering::AcqRel);
    }
}

/// Whether `fd` is one of the relay's own descriptors.
pub fn is_ours(fd: i32) -> bool {
    bit(fd).is_some_and(|(word, mask)| word.load(Ordering::Acquire) & mask != 0)
}

/// The relay's descriptors, for `f` (the fork handler closes the child's copies).
pub fn each_ours(mut f: impl FnMut(i32)) {
    let Some(words) = OURS.get() else {
        return;
    };
    for (index, word) in words.iter().enumerate() {
        let mut bits = word.load(Ordering::Acquire);
        while bits != 0 {
            let low = bits.trailing_zeros();
            f((index * 64 + low as usize) as i32);
            bits &= bits - 1;
        }
    }
}

/// Forgets everything (in a fork child, where neither the relay nor its sockets are ours).
pub fn forget_all() {
    SLOTS.forget();
    OURS.forget();
}
