//! The real libc functions behind our hooks, found with `dlsym(RTLD_NEXT, ..)` on first use and
//! kept in one atomic pointer each (no lock, so `fork()` at any moment is harmless: a child sees
//! either null, and looks the symbol up again, or the final pointer).
//!
//! The library's own sockets and lookups (to reach a gateway, to resolve a direct host) call these,
//! never the exported hooks: calling `libc::connect` from inside the library would bind to our
//! own `connect` symbol, the first in the process's lookup scope.

use libc::{addrinfo, c_char, c_int, c_void, hostent, size_t, sockaddr, socklen_t};
use std::sync::atomic::{AtomicPtr, Ordering};

/// Finds `name` (NUL-terminated) in the objects loaded after this one. Returns null when there is
/// none, or when `dlsym` hands back a definition in this very object (our own hook of that name):
/// calling it would recurse forever. The object is recognised by its load address (`dladdr`), so
/// this module need not know the hooks.
fn lookup(name: &'static [u8]) -> *mut c_void {
    // SAFETY: name is a NUL-terminated static string; RTLD_NEXT is a valid pseudo-handle.
    let found = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) };
    if found.is_null() {
        return found;
    }
    match (
        super::object_base(found),
        super::object_base(lookup as *const c_void),
    ) {
        (Some(found_in), Some(ours)) if found_in == ours => std::ptr::null_mut(),
        _ => found,
    }
}

/// Declares `pub unsafe fn $name(..)` that calls the next definition of symbol `$name`, or the
/// `$fallback` expression when libc has none (it always has; the fallback keeps us from a null
/// call), and `resolve_all()`, which looks every symbol up at once (the library's constructor
/// calls it, so that no `dlsym` runs later inside a hook, where a `fork()` could catch another
/// thread inside the dynamic loader's lock).
macro_rules! real_functions {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty, fallback = $fallback:expr; )*) => {
        $(
            #[allow(non_snake_case)]
            mod $name {
                use super::*;
                pub static PTR: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

                /// The real symbol, looked up now if not yet; null if there is none.
                pub fn resolve() -> *mut c_void {
                    let mut ptr = PTR.load(Ordering::Acquire);
                    if ptr.is_null() {
                        ptr = lookup(concat!(stringify!($name), "\0").as_bytes());
                        PTR.store(ptr, Ordering::Release);
                    }
                    ptr
                }
            }

            $(#[$doc])*
            ///
            /// # Safety
            /// The arguments must satisfy the libc function's contract.
            #[allow(clippy::unused_unit)]
            pub unsafe fn $name($($arg: $ty),*) -> $ret {
                let ptr = $name::resolve();
                if ptr.is_null() {
                    return $fallback;
                }
                // SAFETY: ptr came from dlsym for this exact symbol name (or is libc's own
                // function of that name, `link_libc`), whose C signature is the one declared here.
                let real: unsafe extern "C" fn($($ty),*) -> $ret = unsafe { std::mem::transmute(ptr) };
                // SAFETY: forwarded under the caller's guarantee.
                unsafe { real($($arg),*) }
            }
        )*

        /// Looks up every real function now.
        pub fn resolve_all() {
            $( $name::resolve(); )*
        }
    };
}

real_functions! {
    /// `connect(2)`; without a libc symbol, the raw system call.
    fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int,
        fallback = raw_connect(fd, addr, len);
    /// `sendto(2)`.
    fn sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const sockaddr, addrlen: socklen_t) -> isize,
        fallback = raw_sendto(fd, buf, len, flags, addr, addrlen);
    /// `sendmsg(2)`.
    fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> isize,
        fallback = raw_sendmsg(fd, msg, flags);
    /// `sendmmsg(2)`.
    fn sendmmsg(fd: c_int, msgvec: *mut libc::mmsghdr, vlen: libc::c_uint, flags: c_int) -> c_int,
        fallback = raw_sendmmsg(fd, msgvec, vlen, flags);
    /// `res_query(3)` (also `__res_query`: the same function in glibc).
    fn res_query(dname: *const c_char, class: c_int, kind: c_int, answer: *mut u8, anslen: c_int) -> c_int,
        fallback = -1;
    /// `res_search(3)`.
    fn res_search(dname: *const c_char, class: c_int, kind: c_int, answer: *mut u8, anslen: c_int) -> c_int,
        fallback = -1;
    /// `res_nquery(3)`.
    fn res_nquery(state: *mut c_void, dname: *const c_char, class: c_int, kind: c_int, answer: *mut u8, anslen: c_int) -> c_int,
        fallback = -1;
    /// `res_nsearch(3)`.
    fn res_nsearch(state: *mut c_void, dname: *const c_char, class: c_int, kind: c_int, answer: *mut u8, anslen: c_int) -> c_int,
        fallback = -1;
    /// `getaddrinfo_a(3)`.
    fn getaddrinfo_a(mode: c_int, list: *mut *mut c_void, nitems: c_int, sevp: *mut c_void) -> c_int,
        fallback = libc::EAI_SYSTEM;
    /// `getaddrinfo(3)`.
    fn getaddrinfo(node: *const c_char, service: *const c_char, hints: *const addrinfo, res: *mut *mut addrinfo) -> c_int,
        fallback = libc::EAI_SYSTEM;
    /// `freeaddrinfo(3)`; without a libc symbol the list leaks rather than crash.
    fn freeaddrinfo(res: *mut addrinfo) -> (),
        fallback = ();
    /// `getsockopt(2)`.
    fn getsockopt(fd: c_int, level: c_int, name: c_int, value: *mut c_void, len: *mut socklen_t) -> c_int,
        fallback = raw_getsockopt(fd, level, name, value, len);
    /// `setsockopt(2)`.
    fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: socklen_t) -> c_int,
        fallback = raw_setsockopt(fd, level, name, value, len);
    /// `getpeername(2)`.
    fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int,
        fallback = raw_getpeername(fd, addr, len);
    /// `close(2)`.
    fn close(fd: c_int) -> c_int,
        fallback = raw_close(fd);
    /// `dup2(2)`.
    fn dup2(old: c_int, new: c_int) -> c_int,
        fallback = raw_dup3(old, new, 0);
    /// `dup3(2)`.
    fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int,
        fallback = raw_dup3(old, new, flags);
    /// `close_range(2)` (glibc 2.34).
    fn close_range(first: libc::c_uint, last: libc::c_uint, flags: c_int) -> c_int,
        fallback = raw_close_range(first, last, flags);
    /// `closefrom(3)` (glibc 2.34); without it, `close_range` up to the last descriptor.
    fn closefrom(lowest: c_int) -> (),
        fallback = { raw_close_range(lowest as libc::c_uint, libc::c_uint::MAX, 0); };
    /// `getnameinfo(3)`.
    fn getnameinfo(addr: *const sockaddr, addrlen: socklen_t, host: *mut c_char, hostlen: socklen_t, serv: *mut c_char, servlen: socklen_t, flags: c_int) -> c_int,
        fallback = libc::EAI_SYSTEM;
    /// `gethostbyname(3)`.
    fn gethostbyname(name: *const c_char) -> *mut hostent,
        fallback = std::ptr::null_mut();
    /// `gethostbyname2(3)`.
    fn gethostbyname2(name: *const c_char, af: c_int) -> *mut hostent,
        fallback = std::ptr::null_mut();
    /// `gethostbyname_r(3)`.
    fn gethostbyname_r(name: *const c_char, ret: *mut hostent, buf: *mut c_char, buflen: size_t, result: *mut *mut hostent, h_errnop: *mut c_int) -> c_int,
        fallback = libc::ENOSYS;
    /// `gethostbyname2_r(3)`.
    fn gethostbyname2_r(name: *const c_char, af: c_int, ret: *mut hostent, buf: *mut c_char, buflen: size_t, result: *mut *mut hostent, h_errnop: *mut c_int) -> c_int,
        fallback = libc::ENOSYS;
}

/// For a program that links the crate rather than preloading it (the `mcp-redirect` command, static
/// or dynamic; `runtime::link_into_program`): with no hook of ours in front of libc, the real
/// functions are libc's own, linked in, and no `dlsym` is asked (a static program has no loader
/// to answer it, and would be left with the fallbacks). Only those the crate calls outside the
/// hooks; the command calls this before any of them.
pub fn link_libc() {
    let linked: [(&AtomicPtr<c_void>, *mut c_void); 6] = [
        (&close::PTR, libc::close as *mut c_void),
        (&connect::PTR, libc::connect as *mut c_void),
        (&freeaddrinfo::PTR, libc::freeaddrinfo as *mut c_void),
        (&getaddrinfo::PTR, libc::getaddrinfo as *mut c_void),
        (&getsockopt::PTR, libc::getsockopt as *mut c_void),
        (&setsockopt::PTR, libc::setsockopt as *mut c_void),
    ];
    for (ptr, function) in linked {
        ptr.store(function, Ordering::Release);
    }
}

/// The `connect` system call itself, for the (theoretical) case of no libc `connect`. Only ever
/// called from `connect` above, whose caller vouches for `addr`/`len`.
fn raw_connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the raw syscall takes exactly connect(2)'s arguments.
    unsafe { libc::syscall(libc::SYS_connect, fd, addr, len) as c_int }
}

/// The `sendto` system call itself (see `raw_connect`).
fn raw_sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const sockaddr,
    addrlen: socklen_t,
) -> isize {
    // SAFETY: the raw syscall takes exactly sendto(2)'s arguments, vouched for by our caller.
    unsafe { libc::syscall(libc::SYS_sendto, fd, buf, len, flags, addr, addrlen) as isize }
}

/// The `sendmsg` system call itself (see `raw_connect`).
fn raw_sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> isize {
    // SAFETY: as for raw_sendto.
    unsafe { libc::syscall(libc::SYS_sendmsg, fd, msg, flags) as isize }
}

/// The `sendmmsg` system call itself (see `raw_connect`).
fn raw_sendmmsg(fd: c_int, msgvec: *mut libc::mmsghdr, vlen: libc::c_uint, flags: c_int) -> c_int {
    // SAFETY: as for raw_sendto.
    unsafe { libc::syscall(libc::SYS_sendmmsg, fd, msgvec, vlen, flags) as c_int }
}

/// The `getsockopt` system call itself (see `raw_connect`).
fn raw_getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    // SAFETY: as for raw_sendto.
    unsafe { libc::syscall(libc::SYS_getsockopt, fd, level, name, value, len) as c_int }
}

/// The `setsockopt` system call itself (see `raw_connect`).
fn raw_setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: as for raw_sendto.
    unsafe { libc::syscall(libc::SYS_setsockopt, fd, level, name, value, len) as c_int }
}

/// The `getpeername` system call itself (see `raw_connect`).
fn raw_getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: as for raw_sendto.
    unsafe { libc::syscall(libc::SYS_getpeername, fd, addr, len) as c_int }
}

/// The `close` system call itself (see `raw_connect`).
fn raw_close(fd: c_int) -> c_int {
    // SAFETY: close takes no pointer.
    unsafe { libc::syscall(libc::SYS_close, fd) as c_int }
}

/// The `close_range` system call itself (see `raw_connect`); also `closefrom`'s fallback.
fn raw_close_range(first: libc::c_uint, last: libc::c_uint, flags: c_int) -> c_int {
    // SAFETY: close_range takes no pointer.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) as c_int }
}

/// The `dup3` system call itself (see `raw_connect`); also `dup2`'s fallback (for `old != new`).
fn raw_dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: dup3 takes no pointer.
    unsafe { libc::syscall(libc::SYS_dup3, old, new, flags) as c_int }
}
