//! `struct msghdr` for the supervisor's sends: read from the bytes of another process's memory
//! (its pointers are the other process's, only ever read from there, never dereferenced here),
//! and built around our own buffers for a `sendmsg` on our copy of its socket.

use std::mem::size_of;

use super::errno;

/// A `msghdr` out of `bytes` (a copy of the caller's), or `None` if there are too few.
pub fn msghdr_from_bytes(bytes: &[u8]) -> Option<libc::msghdr> {
    if bytes.len() < size_of::<libc::msghdr>() {
        return None;
    }
    // SAFETY: bytes holds at least a msghdr's bytes (checked above); msghdr is plain data (its
    // pointers are just numbers until dereferenced, which nothing here does), read unaligned.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
}

/// An `iovec` out of `bytes` (a copy of the caller's), or `None` if there are too few.
pub fn iovec_from_bytes(bytes: &[u8]) -> Option<libc::iovec> {
    if bytes.len() < size_of::<libc::iovec>() {
        return None;
    }
    // SAFETY: as in msghdr_from_bytes, for an iovec.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
}

/// One `sendmsg(2)` on `fd` of `data`, to `name` (a socket address's bytes) if given, with the
/// ancillary data `control`: the bytes sent, or the errno.
pub fn send_message(
    fd: i32,
    data: &[u8],
    name: Option<&[u8]>,
    control: &[u8],
    flags: i32,
) -> Result<isize, i32> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; the fields we use are set below.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    if let Some(name) = name {
        header.msg_name = name.as_ptr().cast_mut().cast();
        header.msg_namelen = name.len() as libc::socklen_t;
    }
    if !control.is_empty() {
        header.msg_control = control.as_ptr().cast_mut().cast();
        header.msg_controllen = control.len();
    }
    // SAFETY: header points at our own buffers (data, name, control), alive for the call;
    // sendmsg only reads them.
    let n = unsafe { libc::sendmsg(fd, &header, flags) };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n)
    }
}
