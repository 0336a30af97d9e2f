//! Seccomp user notification (Linux 5.9+ for what we use): a filter that hands chosen system
//! calls of a process tree to a supervisor, and the supervisor's side of the conversation.
//! Used by `mcp-redirect run --mode supervise` for programs that `LD_PRELOAD` cannot enter
//! (static and Go binaries). Nothing here runs inside a preloaded program.
//!
//! `Filter::install` runs in a forked child before `exec`: it only makes system calls, no
//! allocation, so it is safe after `fork()` in a program with threads.

use std::io;

use super::{errno, set_errno};

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
/// Offsets in `struct seccomp_data`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARGS: u32 = 16;
#[cfg(not(target_endian = "little"))]
compile_error!("the seccomp argument check reads the low word first");

fn statement(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump_if_equal(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: BPF_JEQ_K,
        jt,
        jf,
        k,
    }
}

/// A system call the filter fails with an errno, when every condition on its arguments holds.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub nr: libc::c_long,
    /// `(argument index, mask, value)`: `argument & mask == value`, on the argument's low 32
    /// bits (the kernel reads `int` arguments such as a pid or a socket type from them alone).
    pub conditions: Vec<(u32, u32, u32)>,
    pub errno: i32,
}

impl Refusal {
    /// Refuses every call of `nr` with `errno`.
    pub fn always(nr: libc::c_long, errno: i32) -> Refusal {
        Refusal::when(nr, &[], errno)
    }

    /// Refuses calls of `nr` whose arguments meet every condition.
    pub fn when(nr: libc::c_long, conditions: &[(u32, u32, u32)], errno: i32) -> Refusal {
        Refusal {
            nr,
            conditions: conditions.to_vec(),
            errno,
        }
    }
}

/// What the filter does with which system calls.
pub struct Policy<'a> {
    /// Sent to the supervisor.
    pub notify: &'a [libc::c_long],
    /// `(system call, argument index)`: sent to the supervisor only when that argument is not
    /// zero, decided in the kernel: `sendto` without an address (every `send()`) then runs at
    /// full speed.
    pub notify_with_arg: &'a [(libc::c_long, u32)],
    /// Failed with their errno (first match wins), before anything is notified.
    pub refuse: &'a [Refusal],
}

const BPF_ALU_AND_K: u16 = 0x54;

/// A seccomp program, built before `fork()`.
pub struct Filter {
    instructions: Vec<libc::sock_filter>,
}

impl Filter {
    /// The program for `policy`; everything else is allowed. A system call of another
    /// architecture (an x32 or 32-bit call on x86_64) kills the process: it could otherwise
    /// reach `connect` under another number.
    pub fn new(policy: &Policy<'_>) -> Filter {
        let mut program = vec![
            statement(BPF_LD_W_ABS, OFFSET_ARCH),
            jump_if_equal(AUDIT_ARCH, 1, 0),
            statement(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
            statement(BPF_LD_W_ABS, OFFSET_NR),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            // x32 system calls share the architecture value, with bit 30 set: refuse them.
            program.push(libc::sock_filter {
                code: 0x35,
                jt: 0,
                jf: 1,
                k: 0x4000_0000,
            }); // JGE
            program.push(statement(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));
        }
        for refusal in policy.refuse {
            // Each block starts from the number and ends by reloading it, so that the blocks
            // can follow one another whatever they load in between.
            let checks = refusal.conditions.len();
            // Per condition: load, and, compare (3); then the return and the reload.
            let body = checks * 3 + 1;
            program.push(jump_if_equal(refusal.nr as u32, 0, body as u8));
            for (done, &(arg, mask, value)) in refusal.conditions.iter().enumerate() {
                // From the comparison, past the rest of the checks and the return.
                let to_reload = ((checks - done - 1) * 3 + 1) as u8;
                program.push(statement(BPF_LD_W_ABS, OFFSET_ARGS + 8 * arg));
                program.push(statement(BPF_ALU_AND_K, mask));
                program.push(jump_if_equal(value, 0, to_reload));
            }
            program.push(statement(
                BPF_RET_K,
                SECCOMP_RET_ERRNO | refusal.errno as u32,
            ));
            program.push(statement(BPF_LD_W_ABS, OFFSET_NR));
        }
        for &nr in policy.notify {
            program.push(jump_if_equal(nr as u32, 0, 1));
            program.push(statement(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
        }
        for &(nr, arg) in policy.notify_with_arg {
            // Both halves of the 64-bit argument (little-endian: low word first); the
            // accumulator no longer holds the number after, so every path returns.
            let low = OFFSET_ARGS + 8 * arg;
            program.extend([
                jump_if_equal(nr as u32, 0, 6),
                statement(BPF_LD_W_ABS, low),
                jump_if_equal(0, 0, 3),
                statement(BPF_LD_W_ABS, low + 4),
                jump_if_equal(0, 0, 1),
                statement(BPF_RET_K, SECCOMP_RET_ALLOW),
                statement(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF),
            ]);
        }
        program.push(statement(BPF_RET_K, SECCOMP_RET_ALLOW));
        Filter {
            instructions: program,
        }
    }

    /// In the child: `no_new_privs`, then the filter; returns the listener fd. System calls
    /// only (safe between `fork()` and `exec`).
    pub fn install(&self) -> io::Result<i32> {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::from_raw_os_error(errno()));
        }
        let program = libc::sock_fprog {
            len: self.instructions.len() as u16,
            filter: self.instructions.as_ptr().cast_mut(),
        };
        // SAFETY: program points to len valid instructions for the duration of the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                1, // SECCOMP_SET_MODE_FILTER
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                &program as *const libc::sock_fprog,
            )
        };
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(errno()));
        }
        Ok(fd as i32)
    }
}

/// Asks the kernel to hand the CPU straight from a notifying thread to the supervisor's waiting
/// one and back (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`, Linux 6.6): a notification then costs a
/// switch rather than two wake-ups through the scheduler. Without it (older kernels) the
/// supervisor works the same, slower; the error is ignored.
pub fn prefer_sync_wake_up(listener: i32) {
    const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;
    // SAFETY: the ioctl takes its flags by value.
    unsafe {
        libc::ioctl(
            listener,
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    };
}

/// Waits for the next notification on `listener`.
pub fn receive(listener: i32) -> io::Result<libc::seccomp_notif> {
    // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: notif is a valid, writable seccomp_notif.
        let rc = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut notif) };
        if rc == 0 {
            return Ok(notif);
        }
        match errno() {
            libc::EINTR => continue,
            // The target died between the notification and our read: wait for the next one.
            libc::ENOENT => {
                // SAFETY: as above.
                notif = unsafe { std::mem::zeroed() };
                continue;
            }
            code => return Err(io::Error::from_raw_os_error(code)),
        }
    }
}

/// Whether notification `id` is still pending (the target has not died or been interrupted):
/// checked after reading its memory, so that what we read belongs to this call.
pub fn still_valid(listener: i32, id: u64) -> bool {
    // SAFETY: id is a valid u64 for the ioctl to read.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// Answers notification `id`: the system call returns `value`, or fails with the errno.
pub fn respond(listener: i32, id: u64, result: Result<i64, i32>) {
    let (val, error) = match result {
        Ok(value) => (value, 0),
        Err(code) => (0, -code),
    };
    let mut resp = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags: 0,
    };
    let saved = errno();
    // SAFETY: resp is a valid seccomp_notif_resp.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    set_errno(saved);
}

/// Lets notification `id` run as the target made it. Only for calls whose decision does not
/// matter (a `connect` on a non-IP socket): the target could change its arguments afterwards.
pub fn let_through(listener: i32, id: u64) {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: 0,
        flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
    };
    // SAFETY: resp is a valid seccomp_notif_resp.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
}

/// Puts our descriptor `ours` into the caller of notification `id` as its descriptor
/// `number`, closing what that number held, as `dup2` would (`SECCOMP_IOCTL_NOTIF_ADDFD` with
/// `SECCOMP_ADDFD_FLAG_SETFD`, Linux 5.9); close-on-exec if `cloexec`. The caller then holds
/// the same open socket as we do.
pub fn install_fd(listener: i32, id: u64, ours: i32, number: i32, cloexec: bool) -> io::Result<()> {
    let addfd = libc::seccomp_notif_addfd {
        id,
        flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
        srcfd: ours as u32,
        newfd: number as u32,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: addfd is a valid seccomp_notif_addfd for the ioctl to read.
    let rc = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ADDFD, &addfd) };
    if rc < 0 {
        return Err(io::Error::from_raw_os_error(errno()));
    }
    Ok(())
}

/// Whether descriptor `fd` of thread `tid` is close-on-exec (the `flags` of
/// `/proc/TID/fdinfo/FD`, in octal); `None` if that cannot be read.
pub fn fd_is_cloexec(tid: u32, fd: i32) -> Option<bool> {
    let info = std::fs::read_to_string(format!("/proc/{tid}/fdinfo/{fd}")).ok()?;
    let flags = info
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())?;
    Some(flags & libc::O_CLOEXEC as u32 != 0)
}

/// Copies `len` bytes at `address` out of process `pid`.
pub fn read_memory(pid: u32, address: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: local covers buf; the kernel checks the remote range against the target.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::from_raw_os_error(errno()));
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Writes `bytes` at `address` in process `pid` (a result the system call hands back in the
/// caller's memory, such as `sendmmsg`'s `msg_len`).
pub fn write_memory(pid: u32, address: u64, bytes: &[u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: local covers bytes; the kernel checks the remote range against the target.
    let n = unsafe { libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::from_raw_os_error(errno()));
    }
    if n as usize != bytes.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// A copy of file descriptor `fd` of process `pid` (the same open file: a socket shared with
/// the target), close-on-exec.
pub fn copy_fd(pid: u32, fd: i32) -> io::Result<i32> {
    let pidfd = pidfd_open(pid).or_else(|e| {
        // The notification names the calling thread; pidfd_open wants a thread-group leader
        // (before Linux 6.9 always, EINVAL or ENOENT by version). The fd table is the group's.
        match thread_group_of(pid) {
            Some(leader) if leader != pid => pidfd_open(leader),
            _ => Err(e),
        }
    })?;
    // SAFETY: pidfd_getfd takes a pidfd, a target fd and flags.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) };
    let result = if copy < 0 {
        Err(io::Error::from_raw_os_error(errno()))
    } else {
        Ok(copy as i32)
    };
    super::close(pidfd);
    result
}

fn pidfd_open(pid: u32) -> io::Result<i32> {
    // SAFETY: pidfd_open takes a pid and flags.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if pidfd < 0 {
        return Err(io::Error::from_raw_os_error(errno()));
    }
    Ok(pidfd as i32)
}

/// The thread-group (process) id of thread `tid`, from `/proc/<tid>/status`.
pub fn thread_group_of(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))
        .and_then(|value| value.trim().parse().ok())
}
