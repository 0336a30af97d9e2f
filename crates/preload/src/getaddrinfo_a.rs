//! `getaddrinfo_a`, glibc's batch of asynchronous lookups, and the glibc structures it is handed
//! (`struct gaicb`, the start of `struct sigevent`), declared here by hand: the `libc` crate has
//! no `gaicb`, and its `sigevent` does not name the `SIGEV_THREAD` fields. Their layout is checked at compile time against glibc's `<netdb.h>` and
//! `<bits/types/struct_sigevent.h>`.

use std::mem::{offset_of, size_of};
use std::ptr::null_mut;

use libc::{addrinfo, c_char, c_int, c_void};

use super::addrinfo::fake_addrinfo;
use super::resolve::{name_arg, ours_to_plan, plan};
use mcp_redirect_core::lookup::Answer;
use mcp_redirect_core::sys::{self, real};

/// glibc's `struct gaicb` (`<netdb.h>`): one request of a `getaddrinfo_a` batch.
#[repr(C)]
struct Gaicb {
    ar_name: *const c_char,
    ar_service: *const c_char,
    ar_request: *const addrinfo,
    ar_result: *mut addrinfo,
    /// `__return`, what `gai_error` reads.
    ret: c_int,
    reserved: [c_int; 5],
}

/// The start of glibc's `struct sigevent` on Linux, as far as `getaddrinfo_a` notification reads
/// it (`sigev_notify_function` and `_attributes` overlay the union after `sigev_notify`).
#[repr(C)]
struct SigEvent {
    value: libc::sigval,
    signo: c_int,
    notify: c_int,
    function: Option<unsafe extern "C" fn(libc::sigval)>,
    attributes: *const libc::pthread_attr_t,
}

// The two layouts as glibc has them, checked when the library compiles: `offsetof`/`sizeof` in a
// C program on x86_64 (glibc 2.36); aarch64 uses the same generic headers with the same 8-byte
// pointers. On 32-bit targets the same headers give 4-byte pointers. A `SigEvent` is only the
// start of glibc's 64-byte `struct sigevent` (`__SIGEV_MAX_SIZE`), so it must not be longer.

/// glibc's `struct gaicb`: its size, then the offsets of `ar_name`, `ar_service`, `ar_request`,
/// `ar_result`, `__return` and `__glibc_reserved`.
#[cfg(target_pointer_width = "64")]
const GLIBC_GAICB: [usize; 7] = [56, 0, 8, 16, 24, 32, 36];
#[cfg(target_pointer_width = "32")]
const GLIBC_GAICB: [usize; 7] = [40, 0, 4, 8, 12, 16, 20];

/// glibc's `struct sigevent`: the offsets of `sigev_value`, `sigev_signo`, `sigev_notify`,
/// `sigev_notify_function` and `sigev_notify_attributes`.
#[cfg(target_pointer_width = "64")]
const GLIBC_SIGEVENT: [usize; 5] = [0, 8, 12, 16, 24];
#[cfg(target_pointer_width = "32")]
const GLIBC_SIGEVENT: [usize; 5] = [0, 4, 8, 12, 16];

const _: () = {
    assert!(size_of::<Gaicb>() == GLIBC_GAICB[0]);
    assert!(offset_of!(Gaicb, ar_name) == GLIBC_GAICB[1]);
    assert!(offset_of!(Gaicb, ar_service) == GLIBC_GAICB[2]);
    assert!(offset_of!(Gaicb, ar_request) == GLIBC_GAICB[3]);
    assert!(offset_of!(Gaicb, ar_result) == GLIBC_GAICB[4]);
    assert!(offset_of!(Gaicb, ret) == GLIBC_GAICB[5]);
    assert!(offset_of!(Gaicb, reserved) == GLIBC_GAICB[6]);
    assert!(offset_of!(SigEvent, value) == GLIBC_SIGEVENT[0]);
    assert!(offset_of!(SigEvent, signo) == GLIBC_SIGEVENT[1]);
    assert!(offset_of!(SigEvent, notify) == GLIBC_SIGEVENT[2]);
    assert!(offset_of!(SigEvent, function) == GLIBC_SIGEVENT[3]);
    assert!(offset_of!(SigEvent, attributes) == GLIBC_SIGEVENT[4]);
    assert!(size_of::<SigEvent>() <= 64);
};

/// `getaddrinfo_a`'s mode for a batch that returns at once and notifies when done.
const GAI_NOWAIT: c_int = 1;

/// A `SIGEV_THREAD` notification: the program's function and its argument.
type Notification = (unsafe extern "C" fn(libc::sigval), libc::sigval);

/// `getaddrinfo_a(3)`: glibc answers it with its own internal lookups, which our `getaddrinfo`
/// never sees. Each request whose name the library never sends to DNS (routed or denied:
/// a fake address; refused names: their `EAI_*` code) is answered here at once, exactly as
/// `getaddrinfo` would answer it, and marked done (`gai_error` reads it; `gai_suspend` and
/// `gai_cancel` find it finished, as glibc treats requests no longer in its queue). The other
/// requests go to libc as a batch of their own, with the program's notification; when none is
/// left for libc, the notification is delivered here as glibc would deliver it.
///
/// # Safety
/// Called by C with getaddrinfo_a's contract: `list` holds `nitems` pointers, each null or a
/// `struct gaicb`; `sevp` null or a `struct sigevent`.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo_a(
    mode: c_int,
    list: *mut *mut c_void,
    nitems: c_int,
    sevp: *mut c_void,
) -> c_int {
    if list.is_null() || nitems <= 0 {
        // SAFETY: forwarded unchanged under the caller's contract.
        return unsafe { real::getaddrinfo_a(mode, list, nitems, sevp) };
    }
    let caller_errno = sys::errno();
    let mut to_libc: Vec<*mut c_void> = Vec::with_capacity(nitems as usize);
    let mut answered = 0;
    for i in 0..nitems as usize {
        // SAFETY: list holds nitems entries per the contract.
        let item = unsafe { *list.add(i) };
        if item.is_null() {
            continue;
        }
        // SAFETY: a non-null entry is a gaicb the program owns until the request is done.
        let request = unsafe { &mut *item.cast::<Gaicb>() };
        // SAFETY: ar_request is null or a valid addrinfo per the contract.
        let hint = unsafe { request.ar_request.as_ref() };
        // SAFETY: ar_name is null or NUL-terminated per the contract.
        let answer = match unsafe { name_arg(request.ar_name) } {
            Some(name) if ours_to_plan(hint) => plan(name),
            _ => Answer::PassThrough,
        };
        match answer {
            Answer::Fake { host, fake } => {
                request.ar_result = null_mut();
                // SAFETY: ar_result is ours to write; ar_service per the contract.
                request.ret = unsafe {
                    fake_addrinfo(
                        &host,
                        &fake,
                        request.ar_service,
                        hint,
                        &mut request.ar_result,
                    )
                };
                answered += 1;
            }
            Answer::Refuse(code) => {
                request.ar_result = null_mut();
                request.ret = code;
                answered += 1;
            }
            _ => to_libc.push(item),
        }
    }
    sys::set_errno(caller_errno);
    if answered == 0 {
        // SAFETY: forwarded unchanged under the caller's contract.
        return unsafe { real::getaddrinfo_a(mode, list, nitems, sevp) };
    }
    if !to_libc.is_empty() {
        // SAFETY: a batch of the caller's own requests; glibc copies the pointers it is given.
        return unsafe {
            real::getaddrinfo_a(mode, to_libc.as_mut_ptr(), to_libc.len() as c_int, sevp)
        };
    }
    if mode == GAI_NOWAIT && !sevp.is_null() {
        // SAFETY: sevp is a struct sigevent per the contract.
        unsafe { notify(&*sevp.cast::<SigEvent>()) };
    }
    0
}

/// Delivers a finished batch's notification as glibc's `__gai_notify_only` does: a signal
/// queued to this process, or the function run on a new detached thread.
///
/// # Safety
/// `event` must be the program's `struct sigevent`.
unsafe fn notify(event: &SigEvent) {
    match event.notify {
        libc::SIGEV_SIGNAL => {
            // SAFETY: sigqueue takes plain values.
            unsafe { libc::sigqueue(libc::getpid(), event.signo, event.value) };
        }
        libc::SIGEV_THREAD => {
            let Some(function) = event.function else {
                return;
            };
            extern "C" fn run(arg: *mut c_void) -> *mut c_void {
                // SAFETY: arg is the Box made below, handed to exactly this thread.
                let (function, value) = *unsafe { Box::from_raw(arg.cast::<Notification>()) };
                // SAFETY: the program's own notification function, called as it asked.
                unsafe { function(value) };
                null_mut()
            }
            let arg = Box::into_raw(Box::new((function, event.value))).cast::<c_void>();
            let mut thread: libc::pthread_t = 0;
            // SAFETY: attributes is null or the program's pthread_attr_t; run takes arg.
            let rc = unsafe { libc::pthread_create(&mut thread, event.attributes, run, arg) };
            if rc != 0 {
                // SAFETY: the thread never started: the Box is still ours.
                drop(unsafe { Box::from_raw(arg.cast::<Notification>()) });
            } else if event.attributes.is_null() {
                // As glibc: detached unless the program's own attributes say otherwise.
                // SAFETY: thread was just created and nobody else knows it.
                unsafe { libc::pthread_detach(thread) };
            }
        }
        _ => {}
    }
}
