//! `addrinfo` lists: the fake answer of `getaddrinfo` (and of `getaddrinfo_a`), freeing it, and
//! reading the addresses out of libc's own answer.
//!
//! Fake answers are built exactly as glibc builds its own (one `malloc` per `addrinfo` with its
//! socket address right behind it, `ai_canonname` a separate `malloc`), so a list is freed
//! correctly whichever `freeaddrinfo` sees it. Our `freeaddrinfo` still frees only lists whose
//! addresses are ours and passes every other list to libc.

use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::ptr::{self, null_mut};

use libc::{addrinfo, c_char, c_int, sockaddr};

use mcp_redirect_core::lookup::FakeAnswer;
use mcp_redirect_core::sys::{real, socket};

/// Addresses in a getaddrinfo result list.
///
/// # Safety
/// `list` must be null or a list returned by getaddrinfo.
pub(super) unsafe fn list_addrs(list: *const addrinfo) -> Vec<IpAddr> {
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
pub(super) unsafe fn fake_addrinfo(
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
pub(super) unsafe fn free_our_list(mut list: *mut addrinfo) {
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
