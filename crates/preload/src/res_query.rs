//! The raw DNS hooks, `res_query` and its kin (and their `__res_*` names): in strict mode a
//! query for a routed or denied name is refused; every other query is libc's.

use libc::{c_char, c_int, c_void};

use super::resolve::{name_arg, set_h_errno, HOST_NOT_FOUND};
use super::shielded;
use mcp_redirect_core::lookup;
use mcp_redirect_core::sys::real;

/// Refuses a raw DNS query for a routed or denied name in strict mode (h_errno HOST_NOT_FOUND,
/// as for a name DNS does not know); anything else goes to libc.
///
/// # Safety
/// `name` must be null or NUL-terminated.
unsafe fn raw_dns(
    name: *const c_char,
    via: &'static str,
    real_call: &mut dyn FnMut() -> c_int,
) -> c_int {
    // SAFETY: per the contract.
    let allowed = match unsafe { name_arg(name) } {
        Some(bytes) => shielded(false, || lookup::raw_dns_allowed(bytes, via)),
        None => true,
    };
    if allowed {
        return real_call();
    }
    set_h_errno(HOST_NOT_FOUND);
    -1
}

macro_rules! res_hooks {
    ($($name:ident, $alias:ident => $real:ident;)*) => {
        $(
            /// A `res_query`-family call: see `raw_dns`.
            ///
            /// # Safety
            /// Called by C with the function's contract.
            #[no_mangle]
            pub unsafe extern "C" fn $name(dname: *const c_char, class: c_int, kind: c_int, answer: *mut u8, anslen: c_int) -> c_int {
                // SAFETY: forwarded unchanged under the caller's contract.
                unsafe { raw_dns(dname, stringify!($name), &mut || real::$real(dname, class, kind, answer, anslen)) }
            }

            /// The same function under glibc's older name, which binaries built before glibc 2.34
            /// call.
            ///
            /// # Safety
            /// As for the other name.
            #[no_mangle]
            pub unsafe extern "C" fn $alias(dname: *const c_char, class: c_int, kind: c_int, answer: *mut u8, anslen: c_int) -> c_int {
                // SAFETY: the same contract.
                unsafe { $name(dname, class, kind, answer, anslen) }
            }
        )*
    };
}

macro_rules! res_n_hooks {
    ($($name:ident, $alias:ident => $real:ident;)*) => {
        $(
            /// A `res_nquery`-family call: see `raw_dns`.
            ///
            /// # Safety
            /// Called by C with the function's contract.
            #[no_mangle]
            pub unsafe extern "C" fn $name(state: *mut c_void, dname: *const c_char, class: c_int, kind: c_int, answer: *mut u8, anslen: c_int) -> c_int {
                // SAFETY: forwarded unchanged under the caller's contract.
                unsafe { raw_dns(dname, stringify!($name), &mut || real::$real(state, dname, class, kind, answer, anslen)) }
            }

            /// The same function under glibc's older name.
            ///
            /// # Safety
            /// As for the other name.
            #[no_mangle]
            pub unsafe extern "C" fn $alias(state: *mut c_void, dname: *const c_char, class: c_int, kind: c_int, answer: *mut u8, anslen: c_int) -> c_int {
                // SAFETY: the same contract.
                unsafe { $name(state, dname, class, kind, answer, anslen) }
            }
        )*
    };
}

res_hooks! {
    res_query, __res_query => res_query;
    res_search, __res_search => res_search;
}

res_n_hooks! {
    res_nquery, __res_nquery => res_nquery;
    res_nsearch, __res_nsearch => res_nsearch;
}
