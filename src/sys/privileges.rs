//! What a supervised program tree keeps of the supervisor's privileges, and what the supervisor
//! keeps to itself: capabilities that reach around a seccomp filter are dropped from the tree,
//! the supervisor becomes non-dumpable (no `ptrace`, no `/proc/PID/mem`, no `process_vm_*` by
//! the tree), and the tree's first process dies with the supervisor. Used by `mcp-redirect run
//! --mode supervise`; nothing here runs inside a preloaded program.
//!
//! The child-side functions run between `fork()` and `exec`: system calls only, no allocation.

use std::io;

use super::errno;

/// Capabilities that let a process go around the filter or reach into the supervisor:
/// raw and packet sockets (`CAP_NET_RAW`), interfaces, routes and netfilter (`CAP_NET_ADMIN`),
/// tracing any process of the same user and its memory (`CAP_SYS_PTRACE`), namespaces of the
/// init user namespace, mounts and much else (`CAP_SYS_ADMIN`), BPF programs and perf events
/// (`CAP_BPF`, `CAP_PERFMON`), kernel modules and raw I/O (`CAP_SYS_MODULE`, `CAP_SYS_RAWIO`).
/// `CAP_SETPCAP` (needed to drop the rest from the bounding set) goes last.
pub const DROPPED_CAPABILITIES: [(u32, &str); 9] = [
    (13, "CAP_NET_RAW"),
    (12, "CAP_NET_ADMIN"),
    (19, "CAP_SYS_PTRACE"),
    (21, "CAP_SYS_ADMIN"),
    (39, "CAP_BPF"),
    (38, "CAP_PERFMON"),
    (16, "CAP_SYS_MODULE"),
    (17, "CAP_SYS_RAWIO"),
    (8, "CAP_SETPCAP"),
];

/// `struct __user_cap_header_struct`, version 3 (64-bit capability sets in two words).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// In the child: drops [`DROPPED_CAPABILITIES`] from the bounding set (so that no `exec`, of a
/// root program either, gets them back) and from the effective, permitted and inheritable
/// sets, and clears the ambient set. A process without `CAP_SETPCAP` cannot change its bounding
/// set, and has none of these to lose: that `EPERM` is not an error. System calls only.
pub fn drop_dangerous_capabilities() -> io::Result<()> {
    for (cap, _) in DROPPED_CAPABILITIES {
        // SAFETY: prctl with integer arguments.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 && !matches!(errno(), libc::EPERM | libc::EINVAL) {
            return Err(io::Error::from_raw_os_error(errno()));
        }
    }
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and data are the structures capget(2) fills for version 3.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::from_raw_os_error(errno()));
    }
    for (cap, _) in DROPPED_CAPABILITIES {
        let word = &mut data[(cap / 32) as usize];
        let bit = !(1u32 << (cap % 32));
        word.effective &= bit;
        word.permitted &= bit;
        word.inheritable &= bit;
    }
    // SAFETY: as above; capset only lowers what capget returned.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(io::Error::from_raw_os_error(errno()));
    }
    // SAFETY: prctl with integer arguments; EINVAL on kernels without ambient capabilities.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    Ok(())
}

/// In the child: dies with `SIGKILL` when the supervisor (its parent, `parent`) dies, so that
/// the program does not run on unsupervised; `false` if the parent is already gone.
pub fn die_with_parent(parent: libc::pid_t) -> bool {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() == parent }
}

/// In the supervisor: not dumpable, so that no process of the same user without
/// `CAP_SYS_PTRACE` (the tree has none: see above) can attach to it, read or write its memory
/// through `/proc/PID/mem` or `process_vm_*`, or take its descriptors with `pidfd_getfd`.
pub fn make_undumpable() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::from_raw_os_error(errno()));
    }
    Ok(())
}
