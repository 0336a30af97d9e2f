//! `mcp-redirect run --isolate`: the program tree in a network namespace of its own, where
//! only loopback is, so that even code that got around the seccomp filter has no route out.
//! As root, a new network namespace; otherwise (or where root may not make one) a new user
//! namespace too, in which the program keeps its own user and group ids.
//!
//! The child-side function runs between `fork()` and `exec`: system calls only, no allocation
//! (the id maps are written into fixed buffers before `fork`).

use std::io::Write;

use super::errno;

/// What the child writes to its `/proc/self/{uid,gid}_map`: its own ids, mapped to themselves.
pub struct IdMaps {
    uid: [u8; 32],
    uid_len: usize,
    gid: [u8; 32],
    gid_len: usize,
}

impl IdMaps {
    /// The maps for this process's effective user and group.
    pub fn of_this_process() -> IdMaps {
        // SAFETY: geteuid and getegid cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let mut maps = IdMaps {
            uid: [0; 32],
            uid_len: 0,
            gid: [0; 32],
            gid_len: 0,
        };
        let mut at = &mut maps.uid[..];
        let _ = writeln!(at, "{uid} {uid} 1");
        maps.uid_len = 32 - at.len();
        let mut at = &mut maps.gid[..];
        let _ = writeln!(at, "{gid} {gid} 1");
        maps.gid_len = 32 - at.len();
        maps
    }
}

/// The step of [`enter_own_network`] that failed, for the supervisor's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Step {
    NewNetwork = 1,
    NewUserAndNetwork = 2,
    Setgroups = 3,
    UidMap = 4,
    GidMap = 5,
    Loopback = 6,
}

impl Step {
    pub fn from_code(code: i32) -> Option<Step> {
        [
            Step::NewNetwork,
            Step::NewUserAndNetwork,
            Step::Setgroups,
            Step::UidMap,
            Step::GidMap,
            Step::Loopback,
        ]
        .into_iter()
        .find(|step| *step as i32 == code)
    }

    /// What was being done, for a message.
    pub fn describe(self) -> &'static str {
        match self {
            Step::NewNetwork => "unshare(CLONE_NEWNET)",
            Step::NewUserAndNetwork => "unshare(CLONE_NEWUSER | CLONE_NEWNET)",
            Step::Setgroups => "writing /proc/self/setgroups",
            Step::UidMap => "writing /proc/self/uid_map",
            Step::GidMap => "writing /proc/self/gid_map",
            Step::Loopback => "bringing up lo",
        }
    }
}

/// In the child: a new network namespace with `lo` up and nothing else. As root, the network
/// namespace alone; when that is refused (a container without `CAP_SYS_ADMIN`) or not root, a
/// user namespace with it, in which the process keeps its ids (`maps`). System calls only.
pub fn enter_own_network(maps: &IdMaps) -> Result<(), (Step, i32)> {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    // SAFETY: unshare takes flags; the child is single-threaded.
    let alone = root && unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0;
    if !alone {
        // SAFETY: as above.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } != 0 {
            // (As root, the error of this second attempt, after the network namespace alone
            // was refused.)
            return Err((Step::NewUserAndNetwork, errno()));
        }
        write_file(c"/proc/self/setgroups", b"deny").map_err(|e| (Step::Setgroups, e))?;
        write_file(c"/proc/self/uid_map", &maps.uid[..maps.uid_len])
            .map_err(|e| (Step::UidMap, e))?;
        write_file(c"/proc/self/gid_map", &maps.gid[..maps.gid_len])
            .map_err(|e| (Step::GidMap, e))?;
    }
    loopback_up().map_err(|e| (Step::Loopback, e))
}

/// Writes `bytes` to the file at `path` in one `write`. System calls only.
fn write_file(path: &std::ffi::CStr, bytes: &[u8]) -> Result<(), i32> {
    // SAFETY: path is a NUL-terminated string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: bytes is valid for reads of its length.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    let code = errno();
    super::close(fd);
    if n != bytes.len() as isize {
        return Err(if n < 0 { code } else { libc::EIO });
    }
    Ok(())
}

/// Sets `IFF_UP` on `lo` of the current network namespace. System calls only.
fn loopback_up() -> Result<(), i32> {
    // SAFETY: socket(2) has no memory preconditions.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    request.ifr_name[0] = b'l' as libc::c_char;
    request.ifr_name[1] = b'o' as libc::c_char;
    // SAFETY: request is a valid ifreq naming lo, for the ioctl to read and fill.
    let mut rc = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request) };
    if rc == 0 {
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        unsafe { request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        // SAFETY: as above.
        rc = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &request) };
    }
    let code = errno();
    super::close(fd);
    if rc != 0 {
        return Err(code);
    }
    Ok(())
}

/// `setns(2)`: moves the calling thread into the namespace `file` (a `/proc/PID/ns/...` file)
/// is, of kind `kind` (`CLONE_NEWNET`, `CLONE_NEWUSER`...).
pub fn join(file: &std::fs::File, kind: i32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setns takes a namespace descriptor and its kind; no memory is involved.
    if unsafe { libc::setns(file.as_raw_fd(), kind) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
