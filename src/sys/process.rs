//! Processes for `mcp-redirect run --mode supervise`: `fork`, `execvp`, `kill`, `waitpid`,
//! `_exit`, and what a helper started with `std::process::Command` is handed before its `exec`.
//! Thin wrappers: the supervisor's child calls some of them between `fork` and `exec`, where only
//! async-signal-safe calls may be made, so none of them allocates or takes a lock.

use std::ffi::{CString, NulError, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;

use super::errno;

/// Which side of a [`fork`] this is.
pub enum Forked {
    /// The new process.
    Child,
    /// The caller, with the child's pid.
    Parent(libc::pid_t),
}

/// `fork(2)`. In a process with other threads the child may make only async-signal-safe calls
/// (these wrappers, no allocation, no lock) until it execs or exits: the supervisor prepares
/// everything its child needs before calling this.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory preconditions; what the child may do after it is the caller's
    // contract, documented above.
    match unsafe { libc::fork() } {
        rc if rc < 0 => Err(io::Error::from_raw_os_error(errno())),
        0 => Ok(Forked::Child),
        child => Ok(Forked::Parent(child)),
    }
}

/// `kill(2)`: sends `signal` to `pid`.
pub fn kill(pid: libc::pid_t, signal: i32) -> io::Result<()> {
    // SAFETY: kill takes a pid and a signal number; no memory is involved.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::from_raw_os_error(errno()));
    }
    Ok(())
}

/// `_exit(2)`: ends the process at once, without running `atexit` handlers or flushing stdio
/// (what a forked child that failed before `exec` must do).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// A command line as `execvp` takes it, built before `fork` (the child must not allocate): the
/// arguments as C strings and the NULL-terminated array of pointers to them.
pub struct Argv {
    /// Owns the strings `pointers` points into; never changed after `new`.
    strings: Vec<CString>,
    pointers: Vec<*const libc::c_char>,
}

impl Argv {
    /// The command line `command` (not empty), or the error of an argument with a NUL byte.
    pub fn new(command: &[OsString]) -> Result<Argv, NulError> {
        let strings = command
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut pointers: Vec<*const libc::c_char> = strings.iter().map(|a| a.as_ptr()).collect();
        pointers.push(std::ptr::null());
        Ok(Argv { strings, pointers })
    }
}

/// `execvp(3)`: replaces the process with `argv`'s program, looked up in `PATH`. Returns only on
/// failure, with the error.
pub fn exec_search_path(argv: &Argv) -> io::Error {
    let Some(program) = argv.strings.first() else {
        return io::Error::from_raw_os_error(libc::ENOENT);
    };
    // SAFETY: program is NUL-terminated; argv.pointers is a NULL-terminated array of pointers
    // into argv.strings, which live (unchanged) for the call.
    unsafe { libc::execvp(program.as_ptr(), argv.pointers.as_ptr()) };
    io::Error::from_raw_os_error(errno())
}

/// `waitpid(2)` for `child`, retrying when a signal interrupts it: the child's raw wait status
/// (read it with `libc::WIFEXITED` and the like).
pub fn wait_for_exit(child: libc::pid_t) -> io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: status is valid for writes.
        let rc = unsafe { libc::waitpid(child, &mut status, 0) };
        if rc == child {
            return Ok(status);
        }
        if rc < 0 {
            let code = errno();
            if code != libc::EINTR {
                return Err(io::Error::from_raw_os_error(code));
            }
        }
    }
}

/// Arranges for the process `command` starts to get `fds[i]` at descriptor `first + i`
/// (without close-on-exec) and to die with `SIGKILL` when `parent` (the caller) dies; the spawn
/// fails with `ESRCH` if `parent` is already gone by then. The descriptors in `fds` must lie
/// above `first + fds.len()`, so that no copy overwrites another.
pub fn hand_fds_and_die_with_parent(
    command: &mut std::process::Command,
    fds: Vec<i32>,
    first: i32,
    parent: libc::pid_t,
) {
    let arrange = move || {
        for (i, fd) in fds.iter().enumerate() {
            // SAFETY: dup2 with two descriptor numbers; no memory is involved.
            if unsafe { libc::dup2(*fd, first + i as i32) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if !super::privileges::die_with_parent(parent) {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system
    // calls (dup2, prctl, getppid); it allocates nothing (fds was moved in before the fork).
    unsafe { std::os::unix::process::CommandExt::pre_exec(command, arrange) };
}

/// The listening TCP socket a parent handed this process at descriptor `fd` (see
/// [`hand_fds_and_die_with_parent`]), now owned by the returned listener. `fd` must be that
/// inherited socket and owned by nothing else in this process.
pub fn take_inherited_listener(fd: i32) -> std::net::TcpListener {
    use std::os::fd::FromRawFd;
    // SAFETY: per the contract, fd is an open socket nobody else in this process owns.
    unsafe { std::net::TcpListener::from_raw_fd(fd) }
}
