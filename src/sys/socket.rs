//! Deadline-bounded socket I/O on a borrowed file descriptor: the caller's own socket, which we
//! use for a gateway handshake but never own, close or replace (no `dup2` over it, so the
//! caller's socket options survive).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::{errno, monotonic_us, real};

/// An error with the errno the caller of `connect()` will see.
fn os_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// An integer `SOL_SOCKET` option, or `None` if `fd` is no socket.
fn socket_option(fd: i32, option: libc::c_int) -> Option<i32> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid for writes of the sizes given.
    let rc = unsafe {
        real::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value)
}

/// `SO_TYPE` of the socket (`SOCK_STREAM`, `SOCK_DGRAM`, ...), or `None` if `fd` is no socket.
pub fn socket_type(fd: i32) -> Option<i32> {
    socket_option(fd, libc::SO_TYPE)
}

/// `SO_DOMAIN`: the socket's address family (`AF_INET`, `AF_INET6`, ...).
pub fn socket_domain(fd: i32) -> Option<i32> {
    socket_option(fd, libc::SO_DOMAIN)
}

/// How a handshake's socket connects, chosen once per connection from the socket's file flags.
#[derive(Clone, Copy, Debug)]
pub enum ConnectMode {
    /// Non-blocking: `connect()` returns at once and the waiter waits for the outcome.
    NonBlocking,
    /// Blocking: `connect()` itself waits, bounded by `SO_SNDTIMEO` (as the kernel bounds any
    /// blocking connect), which is then put back to the program's own value, this one.
    Blocking(libc::timeval),
}

impl ConnectMode {
    /// The mode for the program's socket `fd`: one `fcntl`, and for a blocking socket one
    /// `getsockopt` of its `SO_SNDTIMEO`.
    pub fn of(fd: i32) -> ConnectMode {
        if is_nonblocking(fd) {
            ConnectMode::NonBlocking
        } else {
            ConnectMode::Blocking(timeval_option(fd, libc::SO_SNDTIMEO).unwrap_or(ZERO_TIME))
        }
    }

    /// The program's own bound on a blocking connect, in milliseconds, if it set one: a gateway
    /// handshake is bounded by it too.
    pub fn program_timeout_ms(&self) -> Option<u64> {
        match self {
            ConnectMode::Blocking(tv) => {
                let ms = (tv.tv_sec as u64) * 1000 + (tv.tv_usec as u64).div_ceil(1000);
                (ms > 0).then_some(ms)
            }
            ConnectMode::NonBlocking => None,
        }
    }
}

const ZERO_TIME: libc::timeval = libc::timeval {
    tv_sec: 0,
    tv_usec: 0,
};

/// A `timeval` socket option (`SO_SNDTIMEO`, `SO_RCVTIMEO`).
fn timeval_option(fd: i32, option: libc::c_int) -> Option<libc::timeval> {
    let mut tv = ZERO_TIME;
    let mut len = size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: tv and len are valid for writes of the sizes given.
    let rc = unsafe {
        real::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(tv)
}

fn set_timeval_option(fd: i32, option: libc::c_int, tv: &libc::timeval) -> io::Result<()> {
    // SAFETY: tv is a valid timeval for the size given.
    let rc = unsafe {
        real::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(os_error(errno()))
    }
}

/// What a socket-address argument holds, as far as routing goes.
pub enum AddrArg {
    /// An IPv4 or IPv6 address: ours to decide.
    Inet(SocketAddr),
    /// Another family (`AF_UNIX`, netlink...) or no address: libc's business.
    Other,
    /// An `AF_INET`/`AF_INET6` address too short for its family: the kernel refuses it with
    /// `EINVAL`, and so do we (never pass it on unchecked).
    Malformed,
}

/// [`classify_addr`] of a socket address's bytes (a copy of another process's, say).
pub fn classify_addr_bytes(bytes: &[u8]) -> AddrArg {
    // SAFETY: bytes holds bytes.len() readable bytes.
    unsafe { classify_addr(bytes.as_ptr().cast(), bytes.len() as libc::socklen_t) }
}

/// Classifies the address a program passes to `connect`/`sendto`/`sendmsg`.
///
/// # Safety
/// `addr` must be null or point to at least `len` readable bytes.
pub unsafe fn classify_addr(addr: *const libc::sockaddr, len: libc::socklen_t) -> AddrArg {
    if addr.is_null() || (len as usize) < size_of::<libc::sa_family_t>() {
        return AddrArg::Other;
    }
    // SAFETY: at least the family field is readable (checked above).
    let family = unsafe { (*addr).sa_family } as i32;
    if family != libc::AF_INET && family != libc::AF_INET6 {
        return AddrArg::Other;
    }
    // SAFETY: per the contract.
    match unsafe { read_sockaddr(addr, len) } {
        Some(inet) => AddrArg::Inet(inet),
        None => AddrArg::Malformed,
    }
}

/// `SIN6_LEN_RFC2133`: the kernel takes an IPv6 address without its trailing scope id.
const SOCKADDR_IN6_MIN: usize = 24;

/// Reads a C socket address. `None` for families other than `AF_INET`/`AF_INET6`, or a length
/// shorter than the kernel accepts for the family (16 for IPv4, 24 for IPv6).
///
/// # Safety
/// `addr` must be null or point to at least `len` readable bytes.
pub unsafe fn read_sockaddr(
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    if addr.is_null() || (len as usize) < size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: at least the family field is readable (checked above).
    let family = unsafe { (*addr).sa_family } as i32;
    match family {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the length covers a sockaddr_in; read_unaligned tolerates any alignment.
            let sin = unsafe { std::ptr::read_unaligned(addr.cast::<libc::sockaddr_in>()) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= SOCKADDR_IN6_MIN => {
            // SAFETY: the length covers a sockaddr_in6 up to its scope id; a full one is read
            // only when the full length is there.
            let sin6 = unsafe {
                if len as usize >= size_of::<libc::sockaddr_in6>() {
                    std::ptr::read_unaligned(addr.cast::<libc::sockaddr_in6>())
                } else {
                    let mut sin6: libc::sockaddr_in6 = zeroed();
                    std::ptr::copy_nonoverlapping(
                        addr.cast::<u8>(),
                        (&mut sin6 as *mut libc::sockaddr_in6).cast::<u8>(),
                        SOCKADDR_IN6_MIN,
                    );
                    sin6
                }
            };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// A C socket address built from a Rust one, for calls into libc.
pub struct RawSockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawSockAddr {
    pub fn new(addr: &SocketAddr) -> Self {
        // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let len = match addr {
            SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*v4.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin)
                };
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than sockaddr_in6 and suitably aligned.
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6)
                };
                size_of::<libc::sockaddr_in6>()
            }
        };
        RawSockAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }

    pub fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }

    pub fn len(&self) -> libc::socklen_t {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address as the bytes a system call takes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: storage is plain data at least len bytes long.
        unsafe { std::slice::from_raw_parts(self.as_ptr().cast(), self.len as usize) }
    }
}

/// `getsockname`: the socket's own address.
pub fn local_address(fd: i32) -> io::Result<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(os_error(errno()));
    }
    // SAFETY: getsockname wrote len bytes of a socket address into storage.
    unsafe { read_sockaddr((&storage as *const libc::sockaddr_storage).cast(), len) }
        .ok_or_else(|| os_error(libc::EAFNOSUPPORT))
}

/// The real `connect()` to `addr`, once (no waiting). `Err` carries the errno.
pub fn connect_once(fd: i32, addr: &SocketAddr) -> io::Result<()> {
    let raw = RawSockAddr::new(addr);
    // SAFETY: raw holds a valid socket address of the stated length.
    let rc = unsafe { real::connect(fd, raw.as_ptr(), raw.len()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(os_error(errno()))
    }
}

/// Dissolves a TCP association (`connect` with `AF_UNSPEC`), so that a socket whose gateway
/// handshake failed is left unconnected, as after a refused `connect()`, not half-open to the
/// gateway.
pub fn disconnect(fd: i32) {
    // SAFETY: sockaddr is plain data; all-zero means AF_UNSPEC.
    let unspec: libc::sockaddr = unsafe { zeroed() };
    let saved = errno();
    // SAFETY: unspec is a valid sockaddr of the stated size.
    unsafe { real::connect(fd, &unspec, size_of::<libc::sockaddr>() as libc::socklen_t) };
    // The disconnect leaves ECONNRESET pending; read it away, so that SO_ERROR does not
    // contradict the errno the caller gets from connect().
    let _ = pending_error(fd);
    super::set_errno(saved);
}

/// `connect()` to `AF_UNSPEC`: dissolves a socket's association (a UDP socket's peer), as the
/// program asked; its result.
pub fn connect_unspec(fd: i32) -> Result<(), i32> {
    // SAFETY: sockaddr is plain data; all-zero means AF_UNSPEC.
    let unspec: libc::sockaddr = unsafe { zeroed() };
    // SAFETY: unspec is a valid sockaddr of the stated size.
    let rc = unsafe { real::connect(fd, &unspec, size_of::<libc::sockaddr>() as libc::socklen_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// An absolute point on the monotonic clock after which every wait fails with `ETIMEDOUT`.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(u64);

impl Deadline {
    pub fn after_ms(ms: u64) -> Self {
        Deadline(monotonic_us().saturating_add(ms.saturating_mul(1000)))
    }

    /// The deadline as a point on [`monotonic_us`]'s clock.
    pub fn at_us(&self) -> u64 {
        self.0
    }

    /// Milliseconds left, rounded up so that a wait never spins with a zero timeout.
    fn remaining_ms(&self) -> Option<i32> {
        let now = monotonic_us();
        if now >= self.0 {
            return None;
        }
        Some(((self.0 - now).div_ceil(1000)).min(i32::MAX as u64) as i32)
    }
}

/// How a handshake waits for its socket: [`PollWaiter`] blocks in `poll(2)` on the calling
/// thread (the synchronous path, the library's own DNS queries); the relay's waiter hands control
/// back to its event loop, which polls the handshake again when the socket has an event or the
/// deadline passes. The I/O functions below retry their system call after every wait, so a
/// waiter may wake them early (an event meant for the other direction) but never late.
pub trait Waiter {
    /// `Ready(Ok)` when `fd` may be ready for `events` (`POLLIN`/`POLLOUT`), `Ready(Err)` with
    /// `ETIMEDOUT` once the deadline has passed, `Pending` to be polled again later.
    fn poll_ready(
        &self,
        fd: i32,
        events: libc::c_short,
        deadline: Deadline,
    ) -> std::task::Poll<io::Result<()>>;
}

/// Waits in `poll(2)` on the calling thread: never `Pending`.
pub struct PollWaiter;

impl Waiter for PollWaiter {
    fn poll_ready(
        &self,
        fd: i32,
        events: libc::c_short,
        deadline: Deadline,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(wait(fd, events, deadline))
    }
}

/// Runs a future whose waits never return `Pending` (a [`PollWaiter`]'s) to completion on the
/// calling thread. No executor, no allocation.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}

/// A waker that does nothing: the futures here are polled again by whoever drives them (the
/// relay's event loop), never woken. (`Waker::noop` needs a newer Rust than the crate's.)
pub fn noop_waker() -> std::task::Waker {
    use std::task::{RawWaker, RawWakerVTable, Waker};
    fn clone(_: *const ()) -> RawWaker {
        RawWaker::new(std::ptr::null(), &VTABLE)
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: every vtable function ignores the (null) data pointer, so the contract of
    // RawWaker (functions safe to call with this data, from any thread) holds trivially.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

/// Waits for `events` on `fd` the way `waiter` waits.
async fn ready(
    waiter: &dyn Waiter,
    fd: i32,
    events: libc::c_short,
    deadline: Deadline,
) -> io::Result<()> {
    std::future::poll_fn(|_| waiter.poll_ready(fd, events, deadline)).await
}

/// Waits until `fd` is ready for `events` (`POLLIN`/`POLLOUT`), or the deadline passes.
pub fn wait(fd: i32, events: libc::c_short, deadline: Deadline) -> io::Result<()> {
    loop {
        let Some(timeout) = deadline.remaining_ms() else {
            return Err(os_error(libc::ETIMEDOUT));
        };
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: pfd is one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout) };
        if rc > 0 {
            if pfd.revents & libc::POLLNVAL != 0 {
                return Err(os_error(libc::EBADF));
            }
            return Ok(());
        }
        if rc < 0 && errno() != libc::EINTR {
            return Err(os_error(errno()));
        }
    }
}

/// `SO_ERROR`: the outcome of a non-blocking connect (reading it clears it).
pub fn pending_error(fd: i32) -> io::Result<()> {
    match socket_option(fd, libc::SO_ERROR) {
        None => Err(os_error(errno())),
        Some(0) => Ok(()),
        Some(code) => Err(os_error(code)),
    }
}

/// Connects a non-blocking socket and waits for the outcome until the deadline.
pub async fn connect_until(
    waiter: &dyn Waiter,
    fd: i32,
    addr: &SocketAddr,
    deadline: Deadline,
) -> io::Result<()> {
    match connect_once(fd, addr) {
        Ok(()) => return Ok(()),
        // After EINTR the connect goes on asynchronously, as after EINPROGRESS.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EINTR)) => {}
        Err(e) => return Err(e),
    }
    loop {
        ready(waiter, fd, libc::POLLOUT, deadline).await?;
        pending_error(fd)?;
        // Linux reports a finished non-blocking connect to the *next* connect() call with 0,
        // and only then EISCONN. Make that call ourselves, so that a program calling connect()
        // again on the socket we hand back gets EISCONN, as it would without us. EALREADY: the
        // wait ended early (a waiter may wake us for another reason) and it is still under way.
        match connect_once(fd, addr) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EISCONN) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EALREADY) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Connects a blocking socket, waiting inside `connect()` no longer than the deadline (set as
/// its `SO_SNDTIMEO` for the call, then `program` again): no change of file flags, and no second
/// `connect()` to settle the socket's state, as the non-blocking way needs.
pub fn connect_blocking(
    fd: i32,
    addr: &SocketAddr,
    deadline: Deadline,
    program: libc::timeval,
) -> io::Result<()> {
    let Some(remaining_ms) = deadline.remaining_ms() else {
        return Err(os_error(libc::ETIMEDOUT));
    };
    let bound = libc::timeval {
        tv_sec: (remaining_ms / 1000) as libc::time_t,
        tv_usec: ((remaining_ms % 1000) * 1000) as libc::suseconds_t,
    };
    set_timeval_option(fd, libc::SO_SNDTIMEO, &bound)?;
    let result = connect_once(fd, addr);
    let _ = set_timeval_option(fd, libc::SO_SNDTIMEO, &program);
    match result {
        Ok(()) => Ok(()),
        // SO_SNDTIMEO expired: the connect goes on in the background; the caller disconnects.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EAGAIN)) => {
            Err(os_error(libc::ETIMEDOUT))
        }
        // A signal: the connect goes on asynchronously; wait for its outcome.
        Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
            wait(fd, libc::POLLOUT, deadline)?;
            pending_error(fd)
        }
        Err(e) => Err(e),
    }
}

/// Sends all of `bytes` before the deadline, without waiting inside `send()` (`MSG_DONTWAIT`,
/// so that a blocking socket stays bounded too). `MSG_NOSIGNAL`: a gateway that hangs up must not
/// kill the host process with `SIGPIPE`.
pub async fn send_all(
    waiter: &dyn Waiter,
    fd: i32,
    mut bytes: &[u8],
    deadline: Deadline,
) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: bytes is a valid readable slice for its length.
        let n = unsafe {
            libc::send(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            bytes = &bytes[n as usize..];
            continue;
        }
        match errno() {
            libc::EINTR => {}
            libc::EAGAIN => ready(waiter, fd, libc::POLLOUT, deadline).await?,
            code => return Err(os_error(code)),
        }
    }
    Ok(())
}

/// Receives into `buf` once data is available, never waiting inside `recv()` itself
/// (`MSG_DONTWAIT`); `flags` may add `MSG_PEEK`. `wait_first`: the data cannot be there yet (a
/// reply to what was just sent), so wait before the first `recv()` rather than after its
/// `EAGAIN`: one system call fewer. `Ok(0)` is end of stream.
pub async fn recv_some(
    waiter: &dyn Waiter,
    fd: i32,
    buf: &mut [u8],
    flags: i32,
    wait_first: bool,
    deadline: Deadline,
) -> io::Result<usize> {
    if wait_first {
        ready(waiter, fd, libc::POLLIN, deadline).await?;
    }
    loop {
        // SAFETY: buf is a valid writable slice for its length.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        match errno() {
            libc::EINTR => {}
            libc::EAGAIN => ready(waiter, fd, libc::POLLIN, deadline).await?,
            code => return Err(os_error(code)),
        }
    }
}

/// Fills `buf` exactly; a gateway that closes early is an `UnexpectedEof`. `wait_first` as for
/// [`recv_some`].
pub async fn recv_exact(
    waiter: &dyn Waiter,
    fd: i32,
    buf: &mut [u8],
    wait_first: bool,
    deadline: Deadline,
) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let first = wait_first && filled == 0;
        let n = recv_some(waiter, fd, &mut buf[filled..], 0, first, deadline).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "gateway closed the connection during the handshake",
            ));
        }
        filled += n;
    }
    Ok(())
}

/// An integer socket option at any level, read with the real `getsockopt`.
pub fn int_option(fd: i32, level: i32, name: i32) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid for writes of the sizes given.
    let rc = unsafe {
        real::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(os_error(errno()))
    }
}

/// Sets an integer socket option with the real `setsockopt`.
pub fn set_int_option(fd: i32, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: value is a valid c_int for the size given.
    let rc = unsafe {
        real::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(os_error(errno()))
    }
}

/// Whether `fd` is in non-blocking mode (`O_NONBLOCK`); `false` if it is not open.
pub fn is_nonblocking(fd: i32) -> bool {
    // SAFETY: F_GETFL takes no argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    flags >= 0 && flags & libc::O_NONBLOCK != 0
}

/// `TCP_INFO` of a TCP socket: its state and byte counts, among much else.
pub fn tcp_info(fd: i32) -> Option<libc::tcp_info> {
    // SAFETY: tcp_info is plain data; all-zero is a valid value to be overwritten.
    let mut info: libc::tcp_info = unsafe { zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info and len are valid for writes of the sizes given.
    let rc = unsafe {
        real::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(info)
}

/// A new descriptor for what `fd` refers to (close-on-exec).
pub fn duplicate(fd: i32) -> io::Result<i32> {
    duplicate_from(fd, 3)
}

/// A new descriptor for what `fd` refers to (close-on-exec), numbered `lowest` or above.
pub fn duplicate_from(fd: i32, lowest: i32) -> io::Result<i32> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int argument.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, lowest) };
    if copy < 0 {
        Err(os_error(errno()))
    } else {
        Ok(copy)
    }
}

/// A new TCP socket of `family`, non-blocking and close-on-exec.
pub fn tcp_socket(family: i32) -> io::Result<i32> {
    // SAFETY: socket(2) has no memory preconditions.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        Err(os_error(errno()))
    } else {
        Ok(fd)
    }
}

/// A new blocking TCP socket of `family`, close-on-exec.
pub fn blocking_tcp_socket(family: i32) -> io::Result<i32> {
    // SAFETY: socket(2) has no memory preconditions.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        Err(os_error(errno()))
    } else {
        Ok(fd)
    }
}

/// A listening TCP socket on `127.0.0.1` with a port of the kernel's choosing (non-blocking,
/// close-on-exec), and that port. `receive_buffer`: the `SO_RCVBUF` its connections are born
/// with (which bounds the receive window they first offer).
pub fn listen_loopback(backlog: i32, receive_buffer: Option<i32>) -> io::Result<(i32, u16)> {
    let fd = tcp_socket(libc::AF_INET)?;
    let setup = || -> io::Result<u16> {
        if let Some(bytes) = receive_buffer {
            set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes)?;
        }
        let raw = RawSockAddr::new(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        // SAFETY: raw holds a valid socket address of the stated length.
        if unsafe { libc::bind(fd, raw.as_ptr(), raw.len()) } < 0 {
            return Err(os_error(errno()));
        }
        // SAFETY: no pointer arguments.
        if unsafe { libc::listen(fd, backlog) } < 0 {
            return Err(os_error(errno()));
        }
        Ok(local_address(fd)?.port())
    };
    match setup() {
        Ok(port) => Ok((fd, port)),
        Err(e) => {
            super::close(fd);
            Err(e)
        }
    }
}

/// `accept4` (non-blocking, close-on-exec): the new socket and its peer's address.
pub fn accept(listener: i32) -> io::Result<(i32, SocketAddr)> {
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are valid for writes of the sizes given.
    let fd = unsafe {
        libc::accept4(
            listener,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    if fd < 0 {
        return Err(os_error(errno()));
    }
    // SAFETY: accept4 wrote len bytes of a socket address into storage.
    match unsafe { read_sockaddr((&storage as *const libc::sockaddr_storage).cast(), len) } {
        Some(peer) => Ok((fd, peer)),
        None => {
            super::close(fd);
            Err(os_error(libc::EAFNOSUPPORT))
        }
    }
}

/// Resets a connection (`SO_LINGER` of zero, then close: the peer gets `RST`, not `FIN`) and
/// closes our descriptor.
pub fn reset(fd: i32) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: linger is a valid struct linger for the size given.
    unsafe {
        real::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    super::close(fd);
}

/// `shutdown(SHUT_WR)`: passes an end of stream on.
pub fn shutdown_write(fd: i32) {
    // SAFETY: no pointer arguments.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// Receives what is there now, without waiting (`Ok(0)`: end of stream).
pub fn recv_now(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a valid writable slice for its length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(os_error(errno()))
    } else {
        Ok(n as usize)
    }
}

/// Discards up to `len` received bytes without copying them (`MSG_TRUNC` on TCP), without
/// waiting (`Ok(0)`: end of stream).
pub fn discard_now(fd: i32, len: usize) -> io::Result<usize> {
    // SAFETY: with MSG_TRUNC on a TCP socket the kernel copies nothing: no buffer is read or
    // written, so a null pointer is never dereferenced.
    let n = unsafe {
        libc::recv(
            fd,
            std::ptr::null_mut(),
            len,
            libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(os_error(errno()))
    } else {
        Ok(n as usize)
    }
}

/// Sends what the socket takes now, without waiting; never `SIGPIPE`.
pub fn send_now(fd: i32, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: bytes is a valid readable slice for its length.
    let n = unsafe {
        libc::send(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(os_error(errno()))
    } else {
        Ok(n as usize)
    }
}

/// What `fd` is ready for among `events` within `timeout_ms` (0: right now); 0 if nothing.
pub fn ready_within(fd: i32, events: libc::c_short, timeout_ms: i32) -> libc::c_short {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: pfd is one valid pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc > 0 {
        pfd.revents
    } else {
        0
    }
}

/// What `fd` is ready for among `events` right now.
pub fn ready_now(fd: i32, events: libc::c_short) -> libc::c_short {
    ready_within(fd, events, 0)
}

/// Writes a C socket address for `addr` into a caller's `sockaddr` buffer of `*len` bytes, as
/// the kernel does for `getpeername`: truncated to the buffer, `*len` set to the full size.
///
/// # Safety
/// `out` must point to `*len` writable bytes and `len` to a writable `socklen_t`.
pub unsafe fn write_sockaddr(
    addr: &SocketAddr,
    out: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
) {
    let raw = RawSockAddr::new(addr);
    // SAFETY: per the contract.
    let room = unsafe { *len } as usize;
    let n = room.min(raw.len() as usize);
    // SAFETY: raw.bytes() has raw.len() readable bytes; out has room for n per the contract.
    unsafe {
        std::ptr::copy_nonoverlapping(raw.bytes().as_ptr(), out.cast::<u8>(), n);
        *len = raw.len();
    }
}

/// A socket of our own (close-on-exec, non-blocking), closed on drop.
struct OwnSocket(i32);

impl OwnSocket {
    fn new(family: i32, kind: i32) -> io::Result<OwnSocket> {
        // SAFETY: socket(2) has no memory preconditions.
        let fd =
            unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
        if fd < 0 {
            return Err(os_error(errno()));
        }
        Ok(OwnSocket(fd))
    }
}

impl Drop for OwnSocket {
    fn drop(&mut self) {
        super::close(self.0);
    }
}

fn family_of(addr: &SocketAddr) -> i32 {
    if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

/// One datagram to `server` and its answer (at most `max` bytes), before the deadline. For the
/// library's own DNS queries: the real functions, never our hooks.
pub fn exchange_udp(
    server: &SocketAddr,
    query: &[u8],
    max: usize,
    deadline: Deadline,
) -> io::Result<Vec<u8>> {
    block_on(exchange_udp_waiting(
        &PollWaiter,
        server,
        query,
        max,
        deadline,
    ))
}

/// [`exchange_udp`], waiting the way `waiter` waits (the relay's loop, for SRV lookups).
pub async fn exchange_udp_waiting(
    waiter: &dyn Waiter,
    server: &SocketAddr,
    query: &[u8],
    max: usize,
    deadline: Deadline,
) -> io::Result<Vec<u8>> {
    let socket = OwnSocket::new(family_of(server), libc::SOCK_DGRAM)?;
    connect_until(waiter, socket.0, server, deadline).await?;
    send_all(waiter, socket.0, query, deadline).await?;
    let mut answer = vec![0u8; max];
    let n = recv_some(waiter, socket.0, &mut answer, 0, true, deadline).await?;
    answer.truncate(n);
    Ok(answer)
}

/// A DNS-over-TCP exchange (two-byte length prefix each way), before the deadline.
pub fn exchange_tcp(server: &SocketAddr, query: &[u8], deadline: Deadline) -> io::Result<Vec<u8>> {
    block_on(exchange_tcp_waiting(&PollWaiter, server, query, deadline))
}

/// [`exchange_tcp`], waiting the way `waiter` waits.
pub async fn exchange_tcp_waiting(
    waiter: &dyn Waiter,
    server: &SocketAddr,
    query: &[u8],
    deadline: Deadline,
) -> io::Result<Vec<u8>> {
    let socket = OwnSocket::new(family_of(server), libc::SOCK_STREAM)?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    connect_until(waiter, socket.0, server, deadline).await?;
    send_all(waiter, socket.0, &framed, deadline).await?;
    let mut length = [0u8; 2];
    recv_exact(waiter, socket.0, &mut length, true, deadline).await?;
    let mut answer = vec![0u8; u16::from_be_bytes(length) as usize];
    recv_exact(waiter, socket.0, &mut answer, false, deadline).await?;
    Ok(answer)
}

/// Socket options that a program sets before `connect()` and that mean something end to end:
/// copied onto [`twin`]. Buffer sizes are not (the kernel doubles what it is given, and
/// reports the doubled size).
const TWIN_OPTIONS: [(i32, i32); 15] = [
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::SOL_SOCKET, libc::SO_LINGER),
    (libc::SOL_SOCKET, libc::SO_RCVTIMEO),
    (libc::SOL_SOCKET, libc::SO_SNDTIMEO),
    (libc::SOL_SOCKET, libc::SO_PRIORITY),
    (libc::SOL_SOCKET, libc::SO_OOBINLINE),
    (libc::SOL_SOCKET, libc::SO_BROADCAST),
    (libc::IPPROTO_TCP, libc::TCP_NODELAY),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
    (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
    (libc::IPPROTO_IP, libc::IP_TOS),
    (libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
];

/// A new, unconnected socket like `fd` (another process's, taken with `pidfd_getfd`): the same
/// family, type and protocol, `O_NONBLOCK` as `fd` has it, and the options of [`TWIN_OPTIONS`]
/// that `fd` has; close-on-exec. `mcp-redirect run --isolate` connects it outside the
/// program's network namespace and hands it to the program in place of `fd`.
pub fn twin(fd: i32) -> io::Result<i32> {
    let (Some(family), Some(kind)) = (socket_domain(fd), socket_type(fd)) else {
        return Err(os_error(libc::ENOTSOCK));
    };
    let protocol = int_option(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)?;
    // SAFETY: socket(2) has no memory preconditions.
    let twin = unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, protocol) };
    if twin < 0 {
        return Err(os_error(errno()));
    }
    if is_nonblocking(fd) {
        // SAFETY: F_GETFL/F_SETFL take an int.
        unsafe {
            libc::fcntl(
                twin,
                libc::F_SETFL,
                libc::fcntl(twin, libc::F_GETFL) | libc::O_NONBLOCK,
            )
        };
    }
    for (level, name) in TWIN_OPTIONS {
        let mut value = [0u8; 32];
        let mut len = value.len() as libc::socklen_t;
        // SAFETY: value and len are valid for writes of the sizes given.
        let rc = unsafe { real::getsockopt(fd, level, name, value.as_mut_ptr().cast(), &mut len) };
        if rc == 0 {
            // An option of another protocol or family fails to read or to set: not ours.
            // SAFETY: value holds len bytes that getsockopt wrote.
            unsafe { real::setsockopt(twin, level, name, value.as_ptr().cast(), len) };
        }
    }
    Ok(twin)
}

/// The cookie of the network namespace `fd` belongs to (`SO_NETNS_COOKIE`, Linux 5.14): two
/// sockets are in the same namespace when their cookies are equal.
pub fn netns_cookie(fd: i32) -> Option<u64> {
    const SO_NETNS_COOKIE: i32 = 71;
    let mut cookie: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: cookie and len are valid for writes of the sizes given.
    let rc = unsafe {
        real::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(cookie)
}
