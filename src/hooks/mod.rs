//! The only `#[no_mangle] extern "C"` symbols of the library. Each hook reads as *guard, decide,
//! act*: it checks in a few instructions whether the call is ours at all (anything else goes
//! straight to libc), turns C arguments into Rust values, calls one safe function in
//! [`crate::connect`] or [`crate::lookup`] under `catch_unwind` (a panic must never cross into
//! C), and turns the outcome back into a C return value and errno.

mod resolve;

pub use resolve::{
    freeaddrinfo, getaddrinfo, gethostbyname, gethostbyname2, gethostbyname2_r, gethostbyname_r,
    getnameinfo,
};

use std::panic::{catch_unwind, AssertUnwindSafe};

use libc::{c_int, sockaddr, socklen_t};

use crate::connect::{self, Outcome};
use crate::sys::{self, real, socket};

/// Runs `body`, or returns `fallback` if it panics: a bug of ours must not unwind into the
/// host program's C frames.
fn shielded<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// `connect(2)`. Only `AF_INET`/`AF_INET6` addresses are looked at; `AF_UNIX`, netlink and the
/// rest go to libc after one family check.
///
/// # Safety
/// Called by C with `connect(2)`'s contract: `addr` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the caller guarantees addr/len per connect(2); read_sockaddr checks null and length.
    let Some(dst) = (unsafe { socket::read_sockaddr(addr, len) }) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::connect(fd, addr, len) };
    };
    let caller_errno = sys::errno();
    // A panic in our code fails the connection closed rather than let it through unchecked.
    match shielded(Outcome::Done(Err(libc::EACCES)), || {
        connect::on_connect(fd, dst)
    }) {
        // SAFETY: forwarded unchanged.
        Outcome::PassThrough => unsafe { real::connect(fd, addr, len) },
        Outcome::Done(Ok(())) => {
            sys::set_errno(caller_errno);
            0
        }
        Outcome::Done(Err(code)) => {
            sys::set_errno(code);
            -1
        }
    }
}
