//! The relay's event loop plumbing: an epoll instance and an eventfd to wake it, both
//! close-on-exec and owned by the relay.

use std::io;

use super::errno;

fn check(rc: i32) -> io::Result<i32> {
    if rc < 0 {
        Err(io::Error::from_raw_os_error(errno()))
    } else {
        Ok(rc)
    }
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub fn create() -> io::Result<i32> {
    // SAFETY: no pointer arguments.
    check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
}

/// Registers `fd` for `events` with `token` as its data.
pub fn add(epoll: i32, fd: i32, events: u32, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events, u64: token };
    // SAFETY: event is a valid epoll_event for the duration of the call.
    check(unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event) }).map(|_| ())
}

/// Changes what `fd` is registered for (0: nothing, while it stays registered).
pub fn modify(epoll: i32, fd: i32, events: u32, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events, u64: token };
    // SAFETY: event is a valid epoll_event for the duration of the call.
    check(unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_MOD, fd, &mut event) }).map(|_| ())
}

/// Removes `fd` (before it is closed: a copy held elsewhere would keep it registered).
pub fn remove(epoll: i32, fd: i32) {
    let mut event = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: as for add; the kernel ignores the event for EPOLL_CTL_DEL.
    unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_DEL, fd, &mut event) };
}

/// Waits up to `timeout_ms` (-1: no limit) and fills `events`; returns how many are ready
/// (0 after a timeout or a signal), or the errno of a descriptor that is no epoll instance.
pub fn wait(epoll: i32, events: &mut [libc::epoll_event], timeout_ms: i32) -> Result<usize, i32> {
    // SAFETY: events is a valid writable slice of its length.
    let n = unsafe {
        libc::epoll_wait(
            epoll,
            events.as_mut_ptr(),
            events.len().min(i32::MAX as usize) as i32,
            timeout_ms,
        )
    };
    match n {
        n if n >= 0 => Ok(n as usize),
        _ if errno() == libc::EINTR => Ok(0),
        _ => Err(errno()),
    }
}

/// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`: a counter other threads bump to wake the loop.
pub fn eventfd() -> io::Result<i32> {
    // SAFETY: no pointer arguments.
    check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
}

/// Wakes whoever waits on the eventfd; errno is preserved (called inside the program's calls).
pub fn signal(eventfd: i32) {
    let saved = errno();
    let one: u64 = 1;
    // SAFETY: writes 8 readable bytes.
    unsafe { libc::write(eventfd, (&one as *const u64).cast(), 8) };
    super::set_errno(saved);
}

/// Resets the eventfd's counter.
pub fn drain(eventfd: i32) {
    let mut count: u64 = 0;
    // SAFETY: reads into 8 writable bytes.
    unsafe { libc::read(eventfd, (&mut count as *mut u64).cast(), 8) };
}
