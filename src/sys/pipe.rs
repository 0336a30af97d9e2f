//! Pipes between the supervisor and the child it forks: `pipe2` and a plain `read`, usable
//! between `fork` and `exec` (no allocation, no lock).

use std::io;

use super::errno;

/// A close-on-exec pipe: `(read end, write end)`.
pub fn pipe() -> io::Result<(i32, i32)> {
    let mut fds = [0; 2];
    // SAFETY: fds is valid for two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::from_raw_os_error(errno()));
    }
    Ok((fds[0], fds[1]))
}

/// One `read(2)` from `fd` into `buf`: how many bytes came (0 at end of file).
pub fn read(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::from_raw_os_error(errno()));
    }
    Ok(n as usize)
}
