//! `hostent` answers: the fake one-address answer of the `gethostbyname` family (in the
//! caller's buffer, or in this thread's storage for the non-reentrant variants), and reading the
//! addresses out of libc's own answer.

use std::mem::size_of;
use std::net::IpAddr;
use std::ptr;

use libc::{c_char, c_int, hostent};

/// Storage for the non-reentrant `gethostbyname{,2}` answers: one per thread (glibc uses one per
/// process). Plain data with a const initialiser, so no TLS destructor is ever registered.
struct HostentStorage {
    entry: hostent,
    buf: [u8; THREAD_BUF_LEN],
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
            buf: [0; THREAD_BUF_LEN],
        })
    };
}

/// Room for the one-address answers of `gethostbyname{,2}`: pointers, an address and a name.
const THREAD_BUF_LEN: usize = 512;

/// Fills this thread's storage with a one-address hostent for `name` and returns it; `None` if
/// the name does not fit or the thread's storage is gone (the thread is exiting). The program may
/// read it until its next such call on this thread (`gethostbyname`'s documented lifetime).
pub(super) fn thread_hostent(name: &str, ip: IpAddr) -> Option<*mut hostent> {
    HOSTENT
        .try_with(|cell| {
            let storage = cell.get();
            // SAFETY: this thread's storage, written only here; the program may read it until
            // its next call on this thread.
            unsafe {
                let buf = ptr::addr_of_mut!((*storage).buf).cast::<c_char>();
                let entry = ptr::addr_of_mut!((*storage).entry);
                fill_hostent(entry, buf, THREAD_BUF_LEN, name, ip)
                    .ok()
                    .map(|_| entry)
            }
        })
        .ok()
        .flatten()
}

/// Fills `ret` and `buf` with a one-address hostent for `name`. `Err(ERANGE)` if `buf` is short.
///
/// # Safety
/// `ret` valid for a write; `buf` valid for `buflen` bytes.
pub(super) unsafe fn fill_hostent(
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
pub(super) unsafe fn hostent_addrs(entry: *const hostent) -> Vec<IpAddr> {
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
