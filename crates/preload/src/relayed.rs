//! The calls through which a program sees a socket whose connect the relay completes
//! (`docs/nonblocking.md`): `getsockopt(SO_ERROR)`, `getpeername`, carried `setsockopt`
//! options, and `close` family calls that must not close the relay's own descriptors. Each
//! costs one load of [`relay::in_use`] in a process where no socket was ever relayed.

use libc::{c_int, c_uint, c_void, sockaddr, socklen_t};

use super::shielded;
use mcp_redirect_core::connections;
use mcp_redirect_core::relay;
use mcp_redirect_core::sys::{self, real, socket};

/// Reads a C `int` option value, if the buffer holds one.
///
/// # Safety
/// `value` must be null or point to `len` readable bytes.
unsafe fn int_value(value: *const c_void, len: socklen_t) -> Option<i32> {
    if value.is_null() || (len as usize) < std::mem::size_of::<c_int>() {
        return None;
    }
    // SAFETY: at least an int's worth of bytes is readable (checked above), at any alignment.
    Some(unsafe { std::ptr::read_unaligned(value.cast::<c_int>()) })
}

/// `getsockopt(2)`: for `SO_ERROR` on a relayed socket whose handshake failed, the handshake's
/// errno instead of the relay's reset.
///
/// # Safety
/// Called by C with `getsockopt(2)`'s contract.
#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    // SAFETY: forwarded unchanged under the caller's contract.
    let rc = unsafe { real::getsockopt(fd, level, name, value, len) };
    if rc != 0 || level != libc::SOL_SOCKET || name != libc::SO_ERROR || !relay::in_use() {
        return rc;
    }
    if len.is_null() {
        return rc;
    }
    // SAFETY: len is non-null and, per the contract, readable; value then holds *len bytes.
    let Some(kernel) = (unsafe { int_value(value, *len) }) else {
        return rc;
    };
    let caller_errno = sys::errno();
    let answer = shielded(kernel, || relay::socket_error(fd, kernel));
    if answer != kernel {
        // SAFETY: value holds at least an int (int_value checked), writable per the contract.
        unsafe { std::ptr::write_unaligned(value.cast::<c_int>(), answer) };
    }
    sys::set_errno(caller_errno);
    rc
}

/// `setsockopt(2)`: keepalive and `TCP_USER_TIMEOUT` set on a relayed socket are carried to the
/// relay's socket towards the gateway, where a dead peer can be noticed.
///
/// # Safety
/// Called by C with `setsockopt(2)`'s contract.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: forwarded unchanged under the caller's contract.
    let rc = unsafe { real::setsockopt(fd, level, name, value, len) };
    if rc == 0 && relay::in_use() {
        // SAFETY: value holds len readable bytes per the contract.
        if let Some(number) = unsafe { int_value(value, len) } {
            let caller_errno = sys::errno();
            shielded((), || relay::option_set(fd, level, name, number));
            sys::set_errno(caller_errno);
        }
    }
    rc
}

/// `getpeername(2)`: a relayed socket's peer is the address the program connected to (the fake
/// address of a routed name), not the relay; `ENOTCONN` until the tunnel is up.
///
/// # Safety
/// Called by C with `getpeername(2)`'s contract.
#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    if relay::in_use() {
        let caller_errno = sys::errno();
        match shielded(None, || relay::peer_name(fd)) {
            Some(Ok(peer)) => {
                if addr.is_null() || len.is_null() {
                    sys::set_errno(libc::EFAULT);
                    return -1;
                }
                // SAFETY: addr has *len writable bytes and len is writable, per the contract.
                unsafe { socket::write_sockaddr(&peer, addr, len) };
                sys::set_errno(caller_errno);
                return 0;
            }
            Some(Err(code)) => {
                sys::set_errno(code);
                return -1;
            }
            None => {}
        }
    }
    // SAFETY: forwarded unchanged under the caller's contract.
    unsafe { real::getpeername(fd, addr, len) }
}

/// The program lets go of `fd`: the `close` line of the connection followed there, then the
/// relay forgets it. Errno is the caller's afterwards.
fn letting_go(fd: c_int) {
    if !connections::in_use() && !relay::in_use() {
        return;
    }
    let caller_errno = sys::errno();
    shielded((), || connections::closing(fd));
    shielded((), || relay::forget_closed(fd));
    sys::set_errno(caller_errno);
}

/// `close(2)`: a descriptor of the relay's is left open (the program did not open it and cannot
/// mean it; its number must not come back to the program while the relay uses it); a followed
/// connection's `close` line is written. For anything else: two loads, then libc.
///
/// # Safety
/// Called by C with `close(2)`'s contract.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if relay::in_use() && shielded(false, || relay::is_ours(fd)) {
        return 0;
    }
    letting_go(fd);
    // SAFETY: forwarded unchanged.
    unsafe { real::close(fd) }
}

/// `dup2(2)`: replacing `new` lets go of what it was (a followed connection gets its line).
///
/// # Safety
/// Called by C with `dup2(2)`'s contract.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    if old != new {
        letting_go(new);
    }
    // SAFETY: forwarded unchanged.
    unsafe { real::dup2(old, new) }
}

/// `dup3(2)`: as `dup2`.
///
/// # Safety
/// Called by C with `dup3(2)`'s contract.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    if old != new {
        letting_go(new);
    }
    // SAFETY: forwarded unchanged.
    unsafe { real::dup3(old, new, flags) }
}

/// `close_range(2)`: as `close`, for every descriptor in the range; the relay's are stepped
/// around. With `CLOSE_RANGE_CLOEXEC` or `CLOSE_RANGE_UNSHARE` nothing of ours can be lost.
///
/// # Safety
/// Called by C with `close_range(2)`'s contract.
#[no_mangle]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    // SAFETY: forwarded unchanged.
    let pass = || unsafe { real::close_range(first, last, flags) };
    if first <= last && flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 && connections::in_use() {
        let caller_errno = sys::errno();
        shielded((), || connections::closing_range(first, last));
        sys::set_errno(caller_errno);
    }
    if flags != 0 || !relay::in_use() || first > last {
        return pass();
    }
    let ours = shielded(Vec::new(), || relay::ours_in(first, last));
    if ours.is_empty() {
        return pass();
    }
    let mut start = first;
    let mut rc = 0;
    for fd in ours {
        if fd > start {
            // SAFETY: a sub-range of the caller's range.
            rc |= unsafe { real::close_range(start, fd - 1, 0) };
        }
        start = fd.saturating_add(1);
    }
    if start <= last {
        // SAFETY: the rest of the caller's range.
        rc |= unsafe { real::close_range(start, last, 0) };
    }
    rc
}

/// `closefrom(3)`: `close_range(lowest, ~0)` as above.
///
/// # Safety
/// Called by C with `closefrom(3)`'s contract.
#[no_mangle]
pub unsafe extern "C" fn closefrom(lowest: c_int) {
    if !relay::in_use() {
        // SAFETY: forwarded unchanged.
        return unsafe { real::closefrom(lowest) };
    }
    let lowest = lowest.max(0) as c_uint;
    // SAFETY: the same request, stepping around the relay's descriptors.
    if unsafe { close_range(lowest, c_uint::MAX, 0) } == 0 {
        return;
    }
    // No close_range (a kernel before 5.9): one by one up to the relay's highest descriptor,
    // then libc's own closefrom (which has a way of its own) for the rest.
    let caller_errno = sys::errno();
    let highest = shielded(None, || relay::ours_in(lowest, c_uint::MAX).last().copied());
    if let Some(highest) = highest {
        for fd in lowest..highest {
            // SAFETY: close has no memory preconditions; our descriptors are skipped by the hook.
            unsafe { close(fd as c_int) };
        }
        // SAFETY: forwarded, above the relay's descriptors.
        unsafe { real::closefrom(highest as c_int + 1) };
    }
    sys::set_errno(caller_errno);
}
