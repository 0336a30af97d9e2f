//! `libmcp_redirect.so`: the only `#[no_mangle] extern "C"` symbols of the library, and its
//! constructor, over the core crate (`mcp_redirect_core`, which holds every decision). Each hook
//! reads as *guard, decide, act*: it checks in a few instructions whether the call is ours at all
//! (anything else goes straight to libc), turns C arguments into Rust values, calls one safe
//! function in [`mcp_redirect_core::connect`] or [`mcp_redirect_core::lookup`] under
//! `catch_unwind` (a panic must never cross into C), and turns the outcome back into a C return
//! value and errno.
//!
//! A crate of its own that nothing depends on: a program that links the core (the command,
//! static or not) gets none of these symbols in front of libc's.

mod addrinfo;
mod getaddrinfo_a;
mod gethostbyname;
mod hostent;
mod relayed;
mod res_query;
mod resolve;

pub use getaddrinfo_a::getaddrinfo_a;
pub use gethostbyname::{gethostbyname, gethostbyname2, gethostbyname2_r, gethostbyname_r};
pub use relayed::{close, close_range, closefrom, dup2, dup3, getpeername, getsockopt, setsockopt};
pub use res_query::{
    __res_nquery, __res_nsearch, __res_query, __res_search, res_nquery, res_nsearch, res_query,
    res_search,
};
pub use resolve::{freeaddrinfo, getaddrinfo, getnameinfo};

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use libc::{c_int, c_uint, c_void, mmsghdr, msghdr, size_t, sockaddr, socklen_t};

use mcp_redirect_core::connect::{self, Act, Outcome};
use mcp_redirect_core::relay::Again;
use mcp_redirect_core::sys::socket::{self, AddrArg, RawSockAddr};
use mcp_redirect_core::sys::{self, real};

/// The library's constructor: find the real functions, note what stderr is, and tell the runtime
/// whether this crate is preloaded or linked into the program, before the program runs. Nothing
/// else: the configuration loads on the first hooked call.
extern "C" fn on_load() {
    real::resolve_all();
    sys::record_stderr();
    mcp_redirect_core::runtime::set_linked(sys::in_main_executable(on_load as *const c_void));
}

#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;

/// Runs `body`, or returns `fallback` if it panics: a bug of ours must not unwind into the
/// host program's C frames.
fn shielded<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// A panic in our code fails the connection closed rather than let it through unchecked.
const PANICKED: Outcome = Outcome::Done(Err(libc::EACCES));

/// Turns an outcome into the C convention: the value, or -1 with errno. On success errno is what
/// the caller had, as libc leaves it.
fn finish(outcome: Result<isize, i32>, caller_errno: i32) -> isize {
    match outcome {
        Ok(value) => {
            sys::set_errno(caller_errno);
            value
        }
        Err(code) => {
            sys::set_errno(code);
            -1
        }
    }
}

/// The errno of a failed real call, for an `Act` closure.
fn os_result(rc: isize) -> Result<isize, i32> {
    if rc < 0 {
        Err(sys::errno())
    } else {
        Ok(rc)
    }
}

/// `connect(2)`. Only `AF_INET`/`AF_INET6` addresses are looked at; `AF_UNIX`, netlink and the
/// rest go to libc after one family check.
///
/// # Safety
/// Called by C with `connect(2)`'s contract: `addr` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the caller guarantees addr/len per connect(2); classify_addr checks null and length.
    let dst = match unsafe { socket::classify_addr(addr, len) } {
        AddrArg::Inet(dst) => dst,
        AddrArg::Malformed => {
            sys::set_errno(libc::EINVAL);
            return -1;
        }
        AddrArg::Other => {
            // AF_UNSPEC dissolves whatever the socket was connected to, a relayed tunnel too.
            // SAFETY: addr is null or readable per the contract; only its family is read.
            if !addr.is_null() && unsafe { (*addr).sa_family } as i32 == libc::AF_UNSPEC {
                mcp_redirect_core::relay::disconnected(fd);
            }
            // SAFETY: forwarded unchanged.
            return unsafe { real::connect(fd, addr, len) };
        }
    };
    // A socket the relay is connecting (EALREADY), has connected (EISCONN, as after a connect
    // that completed inside connect()), or failed to connect (its errno, once).
    match shielded(None, || mcp_redirect_core::relay::connect_again(fd)) {
        Some(Again::InProgress) => {
            sys::set_errno(libc::EALREADY);
            return -1;
        }
        Some(again @ (Again::Connected | Again::Failed(_))) => {
            // Connected: the kernel says 0 once after a non-blocking connect completes, then
            // EISCONN; take the 0 here, so that the program gets EISCONN now and ever after.
            // Failed: this settles the kernel's socket (reset by the relay) as unconnected.
            // SAFETY: forwarded unchanged (an AF_INET/AF_INET6 address: no disconnect).
            unsafe { real::connect(fd, addr, len) };
            sys::set_errno(match again {
                Again::Failed(errno) => errno,
                _ => libc::EISCONN,
            });
            return -1;
        }
        None => {}
    }
    let caller_errno = sys::errno();
    match shielded(PANICKED, || connect::on_connect(fd, dst)) {
        // SAFETY: forwarded unchanged.
        Outcome::PassThrough => unsafe { real::connect(fd, addr, len) },
        Outcome::Done(result) => finish(result, caller_errno) as c_int,
    }
}

/// `__connect`: glibc exports `connect` under this name too, and a program may call it.
///
/// # Safety
/// As for `connect`.
#[no_mangle]
pub unsafe extern "C" fn __connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the same contract.
    unsafe { connect(fd, addr, len) }
}

/// Decides a TCP Fast Open send (`MSG_FASTOPEN` with an address), which opens a connection
/// without `connect()`: direct sends go out as the program made them (`direct`), routed ones
/// through a tunnel first, then as a plain send (`tunneled`).
fn fast_open(
    fd: c_int,
    dst: SocketAddr,
    direct: &mut dyn FnMut(&SocketAddr) -> Result<isize, i32>,
    tunneled: &mut dyn FnMut() -> Result<isize, i32>,
) -> Outcome {
    if socket::socket_type(fd) != Some(libc::SOCK_STREAM) {
        // MSG_FASTOPEN on anything but TCP is just a flag on a datagram: checked as one.
        return match datagram(fd, dst) {
            Ok(()) => Outcome::PassThrough,
            Err(code) => Outcome::Done(Err(code)),
        };
    }
    shielded(PANICKED, || {
        connect::on_connecting_call(
            fd,
            dst,
            Act {
                direct,
                tunneled,
                snapshot: None,
            },
        )
    })
}

/// Whether a datagram to `dst` may go (`strict = true` refuses routed and denied destinations);
/// a panic of ours refuses it.
fn datagram(fd: c_int, dst: SocketAddr) -> Result<(), i32> {
    shielded(Err(libc::EACCES), || connect::on_datagram(fd, dst))
}

/// The shared part of `sendto` and `sendmsg` once the destination is read: a datagram is
/// checked (strict mode), a TCP Fast Open send is decided like a connect.
fn send_with_address(
    fd: c_int,
    dst: AddrArg,
    flags: c_int,
    caller_errno: i32,
    pass: &dyn Fn() -> isize,
    direct: &mut dyn FnMut(&SocketAddr) -> Result<isize, i32>,
    tunneled: &mut dyn FnMut() -> Result<isize, i32>,
) -> isize {
    let dst = match dst {
        AddrArg::Inet(dst) => dst,
        AddrArg::Malformed => return finish(Err(libc::EINVAL), caller_errno),
        AddrArg::Other => return pass(),
    };
    if flags & libc::MSG_FASTOPEN == 0 {
        return match datagram(fd, dst) {
            Ok(()) => pass(),
            Err(code) => finish(Err(code), caller_errno),
        };
    }
    match fast_open(fd, dst, direct, tunneled) {
        Outcome::PassThrough => pass(),
        Outcome::Done(result) => finish(result, caller_errno),
    }
}

/// `sendto(2)`: a send with an address is a TCP Fast Open connect (`MSG_FASTOPEN`) or a
/// datagram (checked in `strict` mode); a send without one goes to libc after one comparison.
///
/// # Safety
/// Called by C with `sendto(2)`'s contract.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const sockaddr,
    addrlen: socklen_t,
) -> isize {
    // SAFETY: forwarded unchanged under the caller's contract.
    let pass = || unsafe { real::sendto(fd, buf, len, flags, addr, addrlen) };
    if addr.is_null() {
        return pass();
    }
    let caller_errno = sys::errno();
    // SAFETY: addr/addrlen per the contract.
    let dst = unsafe { socket::classify_addr(addr, addrlen) };
    let mut direct = |to: &SocketAddr| {
        let raw = RawSockAddr::new(to);
        // SAFETY: the caller's buffer under its contract, with our own copy of the address.
        os_result(unsafe { real::sendto(fd, buf, len, flags, raw.as_ptr(), raw.len()) })
    };
    let mut tunneled = || {
        let flags = flags & !libc::MSG_FASTOPEN;
        // SAFETY: the caller's buffer under its contract; the socket is connected, so no address.
        os_result(unsafe { real::sendto(fd, buf, len, flags, std::ptr::null(), 0) })
    };
    send_with_address(
        fd,
        dst,
        flags,
        caller_errno,
        &pass,
        &mut direct,
        &mut tunneled,
    )
}

/// `sendmsg(2)`: as `sendto`, for a fast-open message with a `msg_name`.
///
/// # Safety
/// Called by C with `sendmsg(2)`'s contract.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> isize {
    // SAFETY: forwarded unchanged under the caller's contract.
    let pass = || unsafe { real::sendmsg(fd, msg, flags) };
    if msg.is_null() {
        return pass();
    }
    // SAFETY: msg is a valid msghdr per the contract.
    let header = unsafe { &*msg };
    let caller_errno = sys::errno();
    // SAFETY: msg_name/msg_namelen per the contract.
    let dst = unsafe { socket::classify_addr(header.msg_name.cast(), header.msg_namelen) };
    let mut direct = |to: &SocketAddr| {
        let raw = RawSockAddr::new(to);
        let mut copy = *header;
        copy.msg_name = raw.as_ptr().cast_mut().cast();
        copy.msg_namelen = raw.len();
        // SAFETY: the caller's buffers under its contract, with our own header and address.
        os_result(unsafe { real::sendmsg(fd, &copy, flags) })
    };
    let mut tunneled = || {
        let mut copy = *header;
        copy.msg_name = std::ptr::null_mut();
        copy.msg_namelen = 0;
        // SAFETY: the caller's buffers under its contract; the socket is connected now.
        os_result(unsafe { real::sendmsg(fd, &copy, flags & !libc::MSG_FASTOPEN) })
    };
    send_with_address(
        fd,
        dst,
        flags,
        caller_errno,
        &pass,
        &mut direct,
        &mut tunneled,
    )
}

/// `sendmmsg(2)`: a fast-open batch is decided by its first message's address.
///
/// # Safety
/// Called by C with `sendmmsg(2)`'s contract.
#[no_mangle]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    msgvec: *mut mmsghdr,
    vlen: c_uint,
    flags: c_int,
) -> c_int {
    // SAFETY: forwarded under the caller's contract, with its flags or without MSG_FASTOPEN.
    let send = |flags: c_int| unsafe { real::sendmmsg(fd, msgvec, vlen, flags) };
    if msgvec.is_null() || vlen == 0 {
        return send(flags);
    }
    // Datagrams (MSG_FASTOPEN means nothing on a non-TCP socket): each message is checked.
    if flags & libc::MSG_FASTOPEN == 0 || socket::socket_type(fd) != Some(libc::SOCK_STREAM) {
        // Datagrams: send the messages before the first refused one (sendmmsg reports how many
        // went out); refuse the call if that is the first.
        for index in 0..vlen as usize {
            // SAFETY: msgvec holds vlen valid entries per the contract.
            let header = unsafe { &(*msgvec.add(index)).msg_hdr };
            // SAFETY: msg_name/msg_namelen per the contract.
            let refused = match unsafe {
                socket::classify_addr(header.msg_name.cast(), header.msg_namelen)
            } {
                AddrArg::Inet(dst) => datagram(fd, dst).err(),
                AddrArg::Malformed => Some(libc::EINVAL),
                AddrArg::Other => None,
            };
            if let Some(code) = refused {
                if index == 0 {
                    return finish(Err(code), 0) as c_int;
                }
                // SAFETY: the first `index` entries, under the caller's contract.
                return unsafe { real::sendmmsg(fd, msgvec, index as c_uint, flags) };
            }
        }
        return send(flags);
    }
    // SAFETY: msgvec holds vlen >= 1 valid entries per the contract.
    let first = unsafe { &(*msgvec).msg_hdr };
    // SAFETY: msg_name/msg_namelen per the contract.
    let dst = match unsafe { socket::classify_addr(first.msg_name.cast(), first.msg_namelen) } {
        AddrArg::Inet(dst) => dst,
        AddrArg::Malformed => return finish(Err(libc::EINVAL), 0) as c_int,
        AddrArg::Other => return send(flags),
    };
    let caller_errno = sys::errno();
    // A direct batch goes out unchanged (its addresses are the program's); a tunneled one goes
    // out without MSG_FASTOPEN, which makes the kernel ignore the addresses on a connected socket.
    // A batch to a fake address that goes direct would need every message's address rewritten:
    // refused instead (no program is known to do this).
    let mut direct = |to: &SocketAddr| {
        if *to != dst {
            return Err(libc::EOPNOTSUPP);
        }
        os_result(send(flags) as isize)
    };
    let mut tunneled = || os_result(send(flags & !libc::MSG_FASTOPEN) as isize);
    match fast_open(fd, dst, &mut direct, &mut tunneled) {
        Outcome::PassThrough => send(flags),
        Outcome::Done(result) => finish(result, caller_errno) as c_int,
    }
}
