//! The resolver hooks `getaddrinfo`, `freeaddrinfo` and `getnameinfo`, and what every resolver
//! hook shares: reading the program's name argument, whether a lookup is ours to plan, the plan
//! itself, and `h_errno`. The other entry points have files of their own (`gethostbyname.rs`,
//! `res_query.rs`, `getaddrinfo_a.rs`); the C answers they hand back are built in `addrinfo.rs`
//! and `hostent.rs`.

use std::ffi::CStr;
use std::ptr::{self, null_mut};

use libc::{addrinfo, c_char, c_int, sockaddr, socklen_t};

use super::addrinfo::{fake_addrinfo, free_our_list, list_addrs};
use super::shielded;
use mcp_redirect_core::lookup::{self, Answer, FakeAnswer};
use mcp_redirect_core::runtime;
use mcp_redirect_core::sys::{self, real, socket};

/// `h_errno` for a name that does not exist (`<netdb.h>`).
pub(super) const HOST_NOT_FOUND: c_int = 1;

extern "C" {
    fn __h_errno_location() -> *mut c_int;
}

/// Sets this thread's `h_errno`, which the `gethostbyname` and `res_query` families report in.
pub(super) fn set_h_errno(value: c_int) {
    // SAFETY: __h_errno_location returns this thread's h_errno.
    unsafe { *__h_errno_location() = value };
}

/// The program's name argument, as bytes (not necessarily UTF-8).
///
/// # Safety
/// `name` must be null or a NUL-terminated string.
pub(super) unsafe fn name_arg<'a>(name: *const c_char) -> Option<&'a [u8]> {
    if name.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the caller.
    Some(unsafe { CStr::from_ptr(name) }.to_bytes())
}

/// Whether a lookup with these hints is one the library answers: not `AI_NUMERICHOST` (no name
/// to look up), and for an IP family (other families are libc's business).
pub(super) fn ours_to_plan(hint: Option<&addrinfo>) -> bool {
    let flags = hint.map_or(0, |h| h.ai_flags);
    let family = hint.map_or(libc::AF_UNSPEC, |h| h.ai_family);
    flags & libc::AI_NUMERICHOST == 0
        && matches!(family, libc::AF_UNSPEC | libc::AF_INET | libc::AF_INET6)
}

/// Plans the answer; a panic of ours refuses the name rather than let it through undecided.
pub(super) fn plan(name: &[u8]) -> Answer {
    shielded(Answer::Refuse(libc::EAI_FAIL), || lookup::on_lookup(name))
}

/// The fake answer for a `RealOrFake` host after DNS found nothing, or `None` to return DNS's
/// own error.
pub(super) fn fallback(
    host: &str,
    decision: mcp_redirect_core::rules::Decision,
    rc: c_int,
) -> Option<FakeAnswer> {
    let no_answer = matches!(
        rc,
        libc::EAI_NONAME | libc::EAI_NODATA | libc::EAI_AGAIN | libc::EAI_FAIL
    );
    if !no_answer {
        return None;
    }
    shielded(None, || lookup::fake_fallback(host, decision).ok())
}

/// `getaddrinfo(3)`. Numeric hosts, `AI_NUMERICHOST`, NULL nodes and families other than
/// `AF_UNSPEC`/`AF_INET`/`AF_INET6` go straight to libc.
///
/// # Safety
/// Called by C with getaddrinfo's contract.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    // SAFETY: hints is null or a valid addrinfo per the contract.
    let hint = unsafe { hints.as_ref() };
    // SAFETY: node is null or NUL-terminated per the contract.
    let name = unsafe { name_arg(node) };
    let ours = !res.is_null() && ours_to_plan(hint);
    let answer = match name {
        Some(name) if ours => plan(name),
        _ => Answer::PassThrough,
    };
    let caller_errno = sys::errno();
    match answer {
        // SAFETY: forwarded unchanged under the caller's contract.
        Answer::PassThrough => unsafe { real::getaddrinfo(node, service, hints, res) },
        Answer::Refuse(code) => code,
        Answer::Fake { host, fake } => {
            // SAFETY: res is non-null (checked in `ours`); service per the contract.
            let rc = unsafe { fake_addrinfo(&host, &fake, service, hint, res) };
            sys::set_errno(caller_errno);
            rc
        }
        Answer::Real { host, decision } => {
            // SAFETY: forwarded unchanged under the caller's contract.
            let rc = unsafe { real::getaddrinfo(node, service, hints, res) };
            let errno_after = sys::errno();
            let addrs = if rc == 0 {
                // SAFETY: on success *res is the list libc just built.
                unsafe { list_addrs(*res) }
            } else {
                Vec::new()
            };
            shielded((), || lookup::remember(&host, decision, &addrs, rc));
            sys::set_errno(errno_after);
            rc
        }
        Answer::RealOrFake { host, decision } => {
            // SAFETY: forwarded unchanged under the caller's contract.
            let rc = unsafe { real::getaddrinfo(node, service, hints, res) };
            let errno_after = sys::errno();
            if rc == 0 {
                // SAFETY: on success *res is the list libc just built.
                let addrs = unsafe { list_addrs(*res) };
                shielded((), || lookup::remember(&host, decision, &addrs, rc));
                sys::set_errno(errno_after);
                return rc;
            }
            match fallback(&host, decision, rc) {
                Some(fake) => {
                    // SAFETY: res is non-null (checked in `ours`).
                    let rc = unsafe { fake_addrinfo(&host, &fake, service, hint, res) };
                    sys::set_errno(caller_errno);
                    rc
                }
                None => {
                    sys::set_errno(errno_after);
                    rc
                }
            }
        }
    }
}

/// `freeaddrinfo(3)`: our lists (whose first address is one of our fake ones) are freed here,
/// every other one by libc.
///
/// # Safety
/// Called by C with freeaddrinfo's contract.
#[no_mangle]
pub unsafe extern "C" fn freeaddrinfo(res: *mut addrinfo) {
    let caller_errno = sys::errno();
    // SAFETY: res is null or a list from getaddrinfo; read_sockaddr checks null and length.
    let first = unsafe { res.as_ref() }
        .and_then(|n| unsafe { socket::read_sockaddr(n.ai_addr, n.ai_addrlen) });
    let ours = first.is_some_and(|a| {
        shielded(false, || {
            runtime::get().is_some_and(|rt| rt.resolver.fake.in_range(a.ip()))
        })
    });
    if ours {
        // SAFETY: a list with a fake first address was built by fake_addrinfo (and even a real
        // list in that range has glibc's layout, which free_our_list frees the same way).
        unsafe { free_our_list(res) };
    } else {
        // SAFETY: forwarded unchanged.
        unsafe { real::freeaddrinfo(res) };
    }
    sys::set_errno(caller_errno);
}

/// `getnameinfo(3)`: a fake address reverses to its hostname (unless `NI_NUMERICHOST`); every
/// other address, and the service part, is libc's.
///
/// # Safety
/// Called by C with getnameinfo's contract.
#[no_mangle]
pub unsafe extern "C" fn getnameinfo(
    addr: *const sockaddr,
    addrlen: socklen_t,
    host: *mut c_char,
    hostlen: socklen_t,
    serv: *mut c_char,
    servlen: socklen_t,
    flags: c_int,
) -> c_int {
    // SAFETY: forwarded unchanged.
    let pass = || unsafe { real::getnameinfo(addr, addrlen, host, hostlen, serv, servlen, flags) };
    if host.is_null() || hostlen == 0 || flags & libc::NI_NUMERICHOST != 0 {
        return pass();
    }
    // SAFETY: addr/addrlen per the contract; read_sockaddr checks null and length.
    let Some(sa) = (unsafe { socket::read_sockaddr(addr, addrlen) }) else {
        return pass();
    };
    let name = shielded(None, || {
        let rt = runtime::get()?;
        if rt.resolver.fake.in_range(sa.ip()) {
            rt.resolver
                .fake
                .host_of(sa.ip())
                .map(|h| h.as_str().to_string())
        } else {
            None
        }
    });
    let Some(name) = name else { return pass() };
    if name.len() + 1 > hostlen as usize {
        return libc::EAI_OVERFLOW;
    }
    // SAFETY: host has room for hostlen bytes (checked above that name + NUL fits).
    unsafe {
        ptr::copy_nonoverlapping(name.as_ptr(), host.cast::<u8>(), name.len());
        *host.add(name.len()) = 0;
    }
    if !serv.is_null() && servlen > 0 {
        // SAFETY: libc fills only the service when host is null.
        return unsafe { real::getnameinfo(addr, addrlen, null_mut(), 0, serv, servlen, flags) };
    }
    0
}
