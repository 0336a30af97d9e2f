//! The `gethostbyname` family: `gethostbyname`, `gethostbyname2` and their reentrant `_r`
//! variants, answered from one shared plan (`by_name`).

use std::net::IpAddr;
use std::ptr;

use libc::{c_char, c_int, hostent, size_t};

use super::hostent::{fill_hostent, hostent_addrs, thread_hostent};
use super::resolve::{fallback, name_arg, plan, set_h_errno, HOST_NOT_FOUND};
use super::shielded;
use mcp_redirect_core::lookup::{self, Answer, FakeAnswer};
use mcp_redirect_core::sys::{self, real};

/// The fake address for the family `af` asked of `gethostbyname2`.
fn fake_ip(fake: &FakeAnswer, af: c_int) -> IpAddr {
    if af == libc::AF_INET6 {
        IpAddr::V6(fake.ipv6)
    } else {
        IpAddr::V4(fake.ipv4)
    }
}

/// What a gethostbyname variant hands back.
enum ByName {
    /// Whatever libc produced (it was called, or should be called, for this lookup).
    Libc,
    /// A fake answer to write out.
    Fake(String, IpAddr),
    /// No answer: host not found.
    NotFound,
}

/// Shared body of the four gethostbyname variants. `real_call` runs the libc lookup and returns
/// its hostent (null if none) and whether the failure was only a short buffer (`ERANGE`, which
/// the caller must see to retry with a bigger one).
fn by_name(
    name: Option<&[u8]>,
    af: c_int,
    real_call: &mut dyn FnMut() -> (*mut hostent, bool),
) -> ByName {
    let answer = match name {
        Some(name) if af == libc::AF_INET || af == libc::AF_INET6 => plan(name),
        _ => Answer::PassThrough,
    };
    match answer {
        Answer::PassThrough => {
            real_call();
            ByName::Libc
        }
        Answer::Refuse(_) => ByName::NotFound,
        Answer::Fake { host, fake } => ByName::Fake(host, fake_ip(&fake, af)),
        Answer::Real { host, decision } => {
            let (entry, _) = real_call();
            // SAFETY: entry is null or libc's valid hostent.
            let addrs = unsafe { hostent_addrs(entry) };
            let rc = if entry.is_null() { libc::EAI_NONAME } else { 0 };
            shielded((), || lookup::remember(&host, decision, &addrs, rc));
            ByName::Libc
        }
        Answer::RealOrFake { host, decision } => {
            let (entry, short_buffer) = real_call();
            if !entry.is_null() || short_buffer {
                // SAFETY: entry is null or libc's valid hostent.
                let addrs = unsafe { hostent_addrs(entry) };
                shielded((), || lookup::remember(&host, decision, &addrs, 0));
                return ByName::Libc;
            }
            match fallback(&host, decision, libc::EAI_NONAME) {
                Some(fake) => ByName::Fake(host, fake_ip(&fake, af)),
                None => ByName::Libc,
            }
        }
    }
}

/// The non-reentrant variants: fake answers live in this thread's storage.
fn by_name_static(
    name: *const c_char,
    af: c_int,
    real: &mut dyn FnMut() -> *mut hostent,
) -> *mut hostent {
    // SAFETY: name is null or NUL-terminated per gethostbyname's contract.
    let name_str = unsafe { name_arg(name) };
    let mut libc_entry = ptr::null_mut();
    let caller_errno = sys::errno();
    let outcome = by_name(name_str, af, &mut || {
        libc_entry = real();
        (libc_entry, false)
    });
    let fake = match outcome {
        ByName::Libc => return libc_entry,
        ByName::NotFound => None,
        ByName::Fake(host, ip) => thread_hostent(&host, ip),
    };
    sys::set_errno(caller_errno);
    match fake {
        Some(entry) => entry,
        None => {
            set_h_errno(HOST_NOT_FOUND);
            ptr::null_mut()
        }
    }
}

/// `gethostbyname(3)`.
///
/// # Safety
/// Called by C with gethostbyname's contract.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname(name: *const c_char) -> *mut hostent {
    // SAFETY: forwarded unchanged.
    by_name_static(name, libc::AF_INET, &mut || unsafe {
        real::gethostbyname(name)
    })
}

/// `gethostbyname2(3)`.
///
/// # Safety
/// Called by C with gethostbyname2's contract.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname2(name: *const c_char, af: c_int) -> *mut hostent {
    // SAFETY: forwarded unchanged.
    by_name_static(name, af, &mut || unsafe { real::gethostbyname2(name, af) })
}

/// The reentrant variants: fake answers go into the caller's buffer. Returns what glibc would:
/// 0 with `*result` set, 0 with `*result` null and `*h_errnop` set when not found, `ERANGE`
/// when the buffer is too small.
///
/// # Safety
/// The arguments of gethostbyname_r's contract.
#[allow(clippy::too_many_arguments)]
unsafe fn by_name_r(
    name: *const c_char,
    af: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
    real: &mut dyn FnMut() -> c_int,
) -> c_int {
    // SAFETY: name per the contract.
    let name_str = unsafe { name_arg(name) };
    let mut real_rc = 0;
    let outcome = by_name(name_str, af, &mut || {
        real_rc = real();
        let entry = if result.is_null() {
            ptr::null_mut()
        } else {
            // SAFETY: result is valid for reads once the real call filled it.
            unsafe { *result }
        };
        (entry, real_rc == libc::ERANGE)
    });
    let (entry, herr, rc) = match outcome {
        ByName::Libc => return real_rc,
        ByName::NotFound => (ptr::null_mut(), HOST_NOT_FOUND, 0),
        // SAFETY: ret/buf/buflen per the contract.
        ByName::Fake(host, ip) => match unsafe { fill_hostent(ret, buf, buflen, &host, ip) } {
            Ok(()) => (ret, 0, 0),
            Err(code) => (ptr::null_mut(), -1, code),
        },
    };
    // SAFETY: result and h_errnop are valid for writes per the contract (checked non-null).
    unsafe {
        if !result.is_null() {
            *result = entry;
        }
        if !h_errnop.is_null() && herr != 0 {
            *h_errnop = herr;
        }
    }
    if rc != 0 {
        // glibc sets errno too when the buffer is short (h_errno NETDB_INTERNAL says "see errno").
        sys::set_errno(rc);
    }
    rc
}

/// `gethostbyname_r(3)`.
///
/// # Safety
/// Called by C with gethostbyname_r's contract.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname_r(
    name: *const c_char,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: forwarded unchanged under the caller's contract.
    unsafe {
        by_name_r(
            name,
            libc::AF_INET,
            ret,
            buf,
            buflen,
            result,
            h_errnop,
            &mut || real::gethostbyname_r(name, ret, buf, buflen, result, h_errnop),
        )
    }
}

/// `gethostbyname2_r(3)`.
///
/// # Safety
/// Called by C with gethostbyname2_r's contract.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname2_r(
    name: *const c_char,
    af: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: forwarded unchanged under the caller's contract.
    unsafe {
        by_name_r(name, af, ret, buf, buflen, result, h_errnop, &mut || {
            real::gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop)
        })
    }
}
