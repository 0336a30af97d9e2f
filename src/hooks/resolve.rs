//! The resolver hooks: `getaddrinfo`/`freeaddrinfo`, `gethostbyname{,2}{,_r}`, `getnameinfo`.
//!
//! Fake answers are built exactly as glibc builds its own (one `malloc` per `addrinfo` with its
//! socket address right behind it, `ai_canonname` a separate `malloc`), so a list is freed
//! correctly whichever `freeaddrinfo` sees it. Our `freeaddrinfo` still frees only lists whose
//! addresses are ours and passes every other list to libc.

use std::ffi::CStr;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::ptr::{self, null_mut};

use libc::{addrinfo, c_char, c_int, c_void, hostent, size_t, sockaddr, socklen_t};

use super::shielded;
use crate::lookup::{self, Answer, FakeAnswer};
use crate::runtime;
use crate::sys::{self, real, socket};

const HOST_NOT_FOUND: c_int = 1;

extern "C" {
    fn __h_errno_location() -> *mut c_int;
}

fn set_h_errno(value: c_int) {
    // SAFETY: __h_errno_location returns this thread's h_errno.
    unsafe { *__h_errno_location() = value };
}

/// The program's name argument, as bytes (not necessarily UTF-8).
///
/// # Safety
/// `name` must be null or a NUL-terminated string.
unsafe fn name_arg<'a>(name: *const c_char) -> Option<&'a [u8]> {
    if name.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the caller.
    Some(unsafe { CStr::from_ptr(name) }.to_bytes())
}

/// Whether a lookup with these hints is one the library answers: not `AI_NUMERICHOST` (no name
/// to look up), and for an IP family (other families are libc's business).
fn ours_to_plan(hint: Option<&addrinfo>) -> bool {
    let flags = hint.map_or(0, |h| h.ai_flags);
    let family = hint.map_or(libc::AF_UNSPEC, |h| h.ai_family);
    flags & libc::AI_NUMERICHOST == 0
        && matches!(family, libc::AF_UNSPEC | libc::AF_INET | libc::AF_INET6)
}

/// Plans the answer; a panic of ours refuses the name rather than let it through undecided.
fn plan(name: &[u8]) -> Answer {
    shielded(Answer::Refuse(libc::EAI_FAIL), || lookup::on_lookup(name))
}

/// The fake answer for a `RealOrFake` host after DNS found nothing, or `None` to return DNS's
/// own error.
fn fallback(host: &str, decision: crate::rules::Decision, rc: c_int) -> Option<FakeAnswer> {
    let no_answer = matches!(
        rc,
        libc::EAI_NONAME | libc::EAI_NODATA | libc::EAI_AGAIN | libc::EAI_FAIL
    );
    if !no_answer {
        return None;
    }
    shielded(None, || lookup::fake_fallback(host, decision).ok())
}

/// Addresses in a getaddrinfo result list.
///
/// # Safety
/// `list` must be null or a list returned by getaddrinfo.
unsafe fn list_addrs(list: *const addrinfo) -> Vec<IpAddr> {
    let mut addrs = Vec::new();
    let mut node = list;
    while !node.is_null() {
        // SAFETY: node is a valid element of the list.
        let entry = unsafe { &*node };
        // SAFETY: ai_addr points to ai_addrlen bytes per getaddrinfo's contract.
        if let Some(addr) = unsafe { socket::read_sockaddr(entry.ai_addr, entry.ai_addrlen) } {
            if !addrs.contains(&addr.ip()) {
                addrs.push(addr.ip());
            }
        }
        node = entry.ai_next;
    }
    addrs
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

/// One `(socktype, protocol, port)` combination of an answer.
struct Slot {
    socktype: c_int,
    protocol: c_int,
    port: u16,
}

/// The combinations libc would return for this service and these hints, found by asking libc
/// itself for a numeric wildcard address (`0.0.0.0` or `::`, no lookup involved) with the
/// program's own service, socket type, protocol and flags: service names (`https`), the set of
/// types for a protocol, and every error (`EAI_SERVICE`, `EAI_SOCKTYPE`, `EAI_BADFLAGS`) come out
/// exactly as libc has them.
///
/// # Safety
/// `service` must be null or NUL-terminated.
unsafe fn slots_for(
    service: *const c_char,
    hint: Option<&addrinfo>,
    family: c_int,
) -> Result<Vec<Slot>, c_int> {
    // SAFETY: addrinfo is plain data; zero is the conventional empty value.
    let mut probe: addrinfo = unsafe { std::mem::zeroed() };
    probe.ai_family = family;
    probe.ai_socktype = hint.map_or(0, |h| h.ai_socktype);
    probe.ai_protocol = hint.map_or(0, |h| h.ai_protocol);
    // AI_CANONNAME needs a name and AI_ADDRCONFIG would judge the wildcard, not our answer;
    // every other flag (including invalid ones) goes to libc as the program gave it.
    let flags = hint.map_or(0, |h| h.ai_flags) & !(libc::AI_CANONNAME | libc::AI_ADDRCONFIG);
    probe.ai_flags = flags | libc::AI_NUMERICHOST;
    let wildcard: &[u8] = if family == libc::AF_INET6 {
        b"::\0"
    } else {
        b"0.0.0.0\0"
    };
    let mut list: *mut addrinfo = null_mut();
    // SAFETY: wildcard and service are NUL-terminated; probe and list are valid for the call.
    let rc = unsafe { real::getaddrinfo(wildcard.as_ptr().cast(), service, &probe, &mut list) };
    if rc != 0 {
        return Err(rc);
    }
    let mut slots = Vec::new();
    let mut node = list;
    while !node.is_null() {
        // SAFETY: node is a valid element of the list libc returned.
        let entry = unsafe { &*node };
        // SAFETY: ai_addr points to ai_addrlen bytes.
        let port = unsafe { socket::read_sockaddr(entry.ai_addr, entry.ai_addrlen) }
            .map_or(0, |a| a.port());
        slots.push(Slot {
            socktype: entry.ai_socktype,
            protocol: entry.ai_protocol,
            port,
        });
        node = entry.ai_next;
    }
    // SAFETY: list came from the real getaddrinfo.
    unsafe { real::freeaddrinfo(list) };
    Ok(slots)
}

/// Builds a getaddrinfo answer holding the fake address: IPv6 when the program asked for
/// `AF_INET6`, else IPv4 (one family only, so happy-eyeballs clients do not race two attempts).
///
/// # Safety
/// `res` must be valid for a write; `service` null or NUL-terminated.
unsafe fn fake_addrinfo(
    host: &str,
    fake: &FakeAnswer,
    service: *const c_char,
    hint: Option<&addrinfo>,
    res: *mut *mut addrinfo,
) -> c_int {
    let family = if hint.map_or(libc::AF_UNSPEC, |h| h.ai_family) == libc::AF_INET6 {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: per this function's contract.
    let slots = match unsafe { slots_for(service, hint, family) } {
        Ok(slots) => slots,
        Err(rc) => return rc,
    };
    let want_canon = hint.is_some_and(|h| h.ai_flags & libc::AI_CANONNAME != 0);
    let mut head: *mut addrinfo = null_mut();
    let mut tail: *mut *mut addrinfo = &mut head;
    for (i, slot) in slots.iter().enumerate() {
        let addr = match family {
            libc::AF_INET6 => SocketAddr::new(IpAddr::V6(fake.ipv6), slot.port),
            _ => SocketAddr::new(IpAddr::V4(fake.ipv4), slot.port),
        };
        let raw = socket::RawSockAddr::new(&addr);
        let node_size = size_of::<addrinfo>() + raw.len() as usize;
        // SAFETY: malloc with a non-zero size; checked for null below.
        let node = unsafe { libc::calloc(1, node_size) }.cast::<addrinfo>();
        if node.is_null() {
            // SAFETY: head is a list we built with this same layout.
            unsafe { free_our_list(head) };
            return libc::EAI_MEMORY;
        }
        // SAFETY: node is a fresh allocation of node_size bytes: an addrinfo followed by room
        // for the socket address, as glibc lays out its own answers.
        unsafe {
            let sa = node.add(1).cast::<sockaddr>();
            ptr::copy_nonoverlapping(
                raw.as_ptr().cast::<u8>(),
                sa.cast::<u8>(),
                raw.len() as usize,
            );
            (*node).ai_family = family;
            (*node).ai_socktype = slot.socktype;
            (*node).ai_protocol = slot.protocol;
            (*node).ai_addrlen = raw.len();
            (*node).ai_addr = sa;
            if i == 0 && want_canon {
                (*node).ai_canonname =
                    libc::strdup(std::ffi::CString::new(host).unwrap_or_default().as_ptr());
            }
            *tail = node;
            tail = &mut (*node).ai_next;
        }
    }
    if head.is_null() {
        return libc::EAI_NONAME;
    }
    // SAFETY: res is valid for a write per the contract.
    unsafe { *res = head };
    0
}

/// Frees a list built by `fake_addrinfo`, node by node, as glibc frees its own.
///
/// # Safety
/// `list` must be null or built by `fake_addrinfo` and not yet freed.
unsafe fn free_our_list(mut list: *mut addrinfo) {
    while !list.is_null() {
        // SAFETY: list is a node we allocated; its canonname is null or ours.
        unsafe {
            let next = (*list).ai_next;
            libc::free((*list).ai_canonname.cast());
            libc::free(list.cast());
            list = next;
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

// ---- gethostbyname family ----

/// Storage for the non-reentrant `gethostbyname{,2}` answers: one per thread (glibc uses one per
/// process). Plain data with a const initialiser, so no TLS destructor is ever registered.
struct HostentStorage {
    entry: hostent,
    buf: [u8; 512],
}

thread_local! {
    static HOSTENT: std::cell::UnsafeCell<HostentStorage> = const {
        std::cell::UnsafeCell::new(HostentStorage {
            entry: hostent {
                h_name: ptr::null_mut(),
                h_aliases: ptr::null_mut(),
                h_addrtype: 0,
                h_length: 0,
                h_addr_list: ptr::null_mut(),
            },
            buf: [0; 512],
        })
    };
}

/// Fills `ret` and `buf` with a one-address hostent for `name`. `Err(ERANGE)` if `buf` is short.
///
/// # Safety
/// `ret` valid for a write; `buf` valid for `buflen` bytes.
unsafe fn fill_hostent(
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    name: &str,
    ip: IpAddr,
) -> Result<(), c_int> {
    let (family, bytes): (c_int, Vec<u8>) = match ip {
        IpAddr::V4(v4) => (libc::AF_INET, v4.octets().to_vec()),
        IpAddr::V6(v6) => (libc::AF_INET6, v6.octets().to_vec()),
    };
    let ptr_size = size_of::<*mut c_char>();
    let align = buf.align_offset(ptr_size);
    // [align pad][h_addr_list: 2 ptrs][h_aliases: 1 ptr][address][name NUL]
    let needed = align + 3 * ptr_size + bytes.len() + name.len() + 1;
    if needed > buflen {
        return Err(libc::ERANGE);
    }
    // SAFETY: every write below lies within buf[..needed], needed <= buflen, and the pointer
    // arrays start at a pointer-aligned offset.
    unsafe {
        let base = buf.add(align);
        let addr_list = base.cast::<*mut c_char>();
        let aliases = addr_list.add(2);
        let addr = base.add(3 * ptr_size);
        let name_ptr = addr.add(bytes.len());
        ptr::copy_nonoverlapping(bytes.as_ptr(), addr.cast::<u8>(), bytes.len());
        ptr::copy_nonoverlapping(name.as_ptr(), name_ptr.cast::<u8>(), name.len());
        *name_ptr.add(name.len()) = 0;
        *addr_list = addr;
        *addr_list.add(1) = ptr::null_mut();
        *aliases = ptr::null_mut();
        (*ret).h_name = name_ptr;
        (*ret).h_aliases = aliases;
        (*ret).h_addrtype = family;
        (*ret).h_length = bytes.len() as c_int;
        (*ret).h_addr_list = addr_list;
    }
    Ok(())
}

/// Addresses in a hostent.
///
/// # Safety
/// `entry` must be null or a valid hostent.
unsafe fn hostent_addrs(entry: *const hostent) -> Vec<IpAddr> {
    let mut addrs = Vec::new();
    // SAFETY: per the contract.
    let Some(entry) = (unsafe { entry.as_ref() }) else {
        return addrs;
    };
    if entry.h_addr_list.is_null() {
        return addrs;
    }
    let mut i = 0;
    loop {
        // SAFETY: h_addr_list is a NULL-terminated array of h_length-byte addresses.
        let p = unsafe { *entry.h_addr_list.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: p points to h_length bytes.
        unsafe {
            match entry.h_length {
                4 => addrs.push(IpAddr::from(ptr::read_unaligned(p.cast::<[u8; 4]>()))),
                16 => addrs.push(IpAddr::from(ptr::read_unaligned(p.cast::<[u8; 16]>()))),
                _ => {}
            }
        }
        i += 1;
    }
    addrs
}

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
        ByName::Fake(host, ip) => HOSTENT
            .try_with(|cell| {
                let storage = cell.get();
                // SAFETY: this thread's storage, written only here; the program may read it
                // until its next call on this thread (gethostbyname's documented lifetime).
                unsafe {
                    let buf = ptr::addr_of_mut!((*storage).buf).cast::<c_char>();
                    let entry = ptr::addr_of_mut!((*storage).entry);
                    fill_hostent(entry, buf, 512, &host, ip).ok().map(|_| entry)
                }
            })
            .ok()
            .flatten(),
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

// ---- raw DNS: res_query and kin; getaddrinfo_a ----

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
