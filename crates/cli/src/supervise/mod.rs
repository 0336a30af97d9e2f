//! `mcp-redirect run --mode supervise`: rules for programs that `LD_PRELOAD` cannot enter
//! (static and Go binaries, musl programs), with seccomp user notification.
//!
//! The child installs a filter that hands every `connect()` of its whole process tree to us,
//! then execs the program. For each one we read the destination out of the caller's memory,
//! check that the notification is still pending, take a copy of the caller's socket
//! (`pidfd_getfd`) and make the decision and the connection ourselves, on that shared socket,
//! with the library's own code (`connect::decide_connect`); the call returns our result. We never
//! let a decided call through as the program made it: the program could change the address
//! after we read it. Only `connect()` on non-IP sockets (`AF_UNIX`) is let through, and
//! `io_uring_setup` fails with `ENOSYS` so that runtimes fall back to ordinary system calls.
//!
//! Programs with their own resolver (Go, static glibc, musl, c-ares) send DNS queries to port 53
//! themselves: every `connect()` to port 53 is connected to a resolver inside the supervisor
//! instead, which answers routed and denied names with fake addresses (the library's lookup
//! decision, `lookup::decide_lookup`) and passes other queries to the system's nameservers,
//! remembering their addresses, so later connects are decided by name.
//!
//! The tree cannot reach into the supervisor or around the filter (see `docs/threat-model.md`):
//! the supervisor is not dumpable; the filter refuses `ptrace`, `process_vm_readv`/`writev`,
//! `pidfd_getfd`, signals and pidfds aimed at the supervisor by its pid, raw and packet sockets;
//! capabilities that reach around it (`CAP_NET_RAW`, `CAP_NET_ADMIN`, `CAP_SYS_PTRACE`,
//! `CAP_SYS_ADMIN`, `CAP_BPF`...) are dropped from the tree, bounding set included. If the
//! supervisor dies all the same (a signal to its process group), the kernel fails the tree's
//! intercepted calls (`ENOSYS`) and its first process is killed: closed.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::sync::Arc;

use mcp_redirect_core::config::{Config, LogTarget, LOG_ENV};
use mcp_redirect_core::runtime::Runtime;
use mcp_redirect_core::sys::namespaces::{self, IdMaps, Step};
use mcp_redirect_core::sys::pipe;
use mcp_redirect_core::sys::privileges;
use mcp_redirect_core::sys::process::{self, Argv, Forked};
use mcp_redirect_core::sys::seccomp::{self, Filter, Policy, Refusal};
use mcp_redirect_core::sys::signals::{self, SignalSet};

mod calls;
pub mod publish;
mod resolver;

use resolver::Resolver;

/// Runs `command` under the supervisor with `env` set; returns the exit code for `run`.
/// `isolate`: the tree gets a network namespace of its own, with only loopback, and every
/// connection out of it is made by us and handed in (`--isolate`).
pub fn run(
    mut config: Config,
    command: &[OsString],
    env: &[(&'static str, OsString)],
    isolate: bool,
    publish: &[std::net::SocketAddr],
) -> u8 {
    // Everything the child needs is prepared here: after fork it may only make system calls.
    let supervisor = mcp_redirect_core::sys::pid() as libc::pid_t;
    let mut refusals = boundary(supervisor);
    let id_maps = isolate.then(IdMaps::of_this_process);
    if isolate {
        // Into another network namespace (the machine's, through a /proc/PID/ns/net of any
        // process the tree may open): the only way out of its own.
        refusals.push(Refusal::always(libc::SYS_setns, libc::EPERM));
    }
    let filter = Filter::new(&Policy {
        notify: &[libc::SYS_connect, libc::SYS_sendmsg, libc::SYS_sendmmsg],
        notify_with_arg: &[(libc::SYS_sendto, 4)],
        refuse: &refusals,
    });
    let Ok(argv) = Argv::new(command) else {
        crate::complain("the command contains a NUL byte");
        return 2;
    };
    for (name, value) in env {
        std::env::set_var(name, value);
    }
    // MCP_REDIRECT_LOG (inherited, or set by --log) overrides log.path here as in the library:
    // the config was read from its file alone.
    if let Some(log) = std::env::var(LOG_ENV).ok().filter(|v| !v.is_empty()) {
        match LogTarget::parse(&log) {
            Ok(target) => config.log = target,
            Err(e) => {
                crate::complain(format!("{LOG_ENV}: {e}"));
                return 2;
            }
        }
    }
    let (report_r, report_w) = cloexec_pipe();
    let (ack_r, ack_w) = cloexec_pipe();

    // The child below only makes system calls until execvp.
    let child = match process::fork() {
        Ok(Forked::Parent(child)) => child,
        Ok(Forked::Child) => child_side(
            &filter,
            id_maps.as_ref(),
            supervisor,
            report_w,
            ack_r,
            &argv,
        ),
        Err(e) => {
            crate::complain(format!("fork: {e}"));
            return 2;
        }
    };
    close(report_w);
    close(ack_r);
    if let Err(e) = privileges::make_undumpable() {
        crate::complain(format!("cannot make the supervisor undumpable: {e}"));
        // The child waits for our ack; kill it rather than let it run unprotected.
        let _ = process::kill(child, libc::SIGKILL);
        return 2;
    }
    let listener = match receive_listener(child as u32, report_r) {
        Ok(fd) => fd,
        Err(message) => {
            crate::complain(format!("cannot supervise the command: {message}"));
            // The child waits for our ack; kill it rather than let it run unsupervised.
            let _ = process::kill(child, libc::SIGKILL);
            return 2;
        }
    };
    let exe_default = command[0]
        .to_string_lossy()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string();
    let runtime = Arc::new(Runtime::from_config(config, exe_default));
    // A server in the namespace, reachable from outside (its namespace exists by now).
    let _publisher = match publish::start(child, publish) {
        Ok(helper) => helper,
        Err(message) => {
            crate::complain(message);
            // As below: never let the child run unsupervised.
            let _ = process::kill(child, libc::SIGKILL);
            return 2;
        }
    };
    let isolation = match isolate.then(calls::Isolation::here).transpose() {
        Ok(isolation) => isolation,
        Err(e) => {
            crate::complain(format!("cannot isolate the command's network: {e}"));
            // As below: never let the child run unsupervised.
            let _ = process::kill(child, libc::SIGKILL);
            return 2;
        }
    };
    let resolver = match Resolver::start(runtime.clone()) {
        Ok(resolver) => Arc::new(resolver),
        Err(e) => {
            crate::complain(format!("cannot start the supervisor's resolver: {e}"));
            // As above: never let the child run unsupervised.
            let _ = process::kill(child, libc::SIGKILL);
            return 2;
        }
    };
    calls::Workers::start(listener, runtime, resolver, isolation);
    forward_signals(child);
    // Let the child exec its command.
    write_all(ack_w, b"go");
    close(ack_w);
    wait_for(child)
}

/// What the filter refuses so that the tree can neither reach into the supervisor nor go
/// around the filter (`docs/threat-model.md`), besides `io_uring` (`ENOSYS`, so that runtimes
/// fall back to system calls the filter sees).
fn boundary(supervisor: libc::pid_t) -> Vec<Refusal> {
    let pid = supervisor as u32;
    let all = u32::MAX;
    let raw = libc::SOCK_RAW as u32;
    vec![
        Refusal::always(libc::SYS_io_uring_setup, libc::ENOSYS),
        // Raw IP sockets (of either family), packet sockets, and the obsolete SOCK_PACKET:
        // they send what they like, where they like. Netlink's SOCK_RAW stays (routes and
        // addresses are read through it).
        Refusal::when(
            libc::SYS_socket,
            &[(0, all, libc::AF_INET as u32), (1, 0xf, raw)],
            libc::EPERM,
        ),
        Refusal::when(
            libc::SYS_socket,
            &[(0, all, libc::AF_INET6 as u32), (1, 0xf, raw)],
            libc::EPERM,
        ),
        Refusal::when(
            libc::SYS_socket,
            &[(0, all, libc::AF_PACKET as u32)],
            libc::EPERM,
        ),
        Refusal::when(libc::SYS_socket, &[(1, 0xf, 10)], libc::EPERM),
        // SCTP: its own ways to connect (setsockopt SCTP_SOCKOPT_CONNECTX, sends to many
        // peers) that no rule was written for.
        Refusal::when(
            libc::SYS_socket,
            &[
                (0, all, libc::AF_INET as u32),
                (2, all, libc::IPPROTO_SCTP as u32),
            ],
            libc::EPERM,
        ),
        Refusal::when(
            libc::SYS_socket,
            &[
                (0, all, libc::AF_INET6 as u32),
                (2, all, libc::IPPROTO_SCTP as u32),
            ],
            libc::EPERM,
        ),
        // Another process's memory and descriptors.
        Refusal::always(libc::SYS_ptrace, libc::EPERM),
        Refusal::always(libc::SYS_process_vm_readv, libc::EPERM),
        Refusal::always(libc::SYS_process_vm_writev, libc::EPERM),
        Refusal::always(libc::SYS_pidfd_getfd, libc::EPERM),
        // Signals to the supervisor by its pid, to everyone (-1), through a pidfd of it, and
        // to a thread id (tkill, which nothing current uses; tgkill names the process).
        Refusal::when(libc::SYS_kill, &[(0, all, pid)], libc::EPERM),
        Refusal::when(libc::SYS_kill, &[(0, all, u32::MAX)], libc::EPERM),
        Refusal::when(libc::SYS_tgkill, &[(0, all, pid)], libc::EPERM),
        Refusal::always(libc::SYS_tkill, libc::EPERM),
        Refusal::when(libc::SYS_pidfd_open, &[(0, all, pid)], libc::EPERM),
    ]
}

/// The child: dies with the supervisor, enters its own network namespace (`--isolate`), drops
/// the capabilities that reach around the filter, filter on, listener number to the parent,
/// waits for the parent to hold it, execs.
fn child_side(
    filter: &Filter,
    id_maps: Option<&IdMaps>,
    supervisor: libc::pid_t,
    report_w: i32,
    ack_r: i32,
    argv: &Argv,
) -> ! {
    if !privileges::die_with_parent(supervisor) {
        process::exit_now(126);
    }
    // The report: the listener's number, or minus an errno and the step that failed (0: the
    // capabilities or the filter).
    let isolated = match id_maps {
        Some(maps) => namespaces::enter_own_network(maps),
        None => Ok(()),
    };
    let (code, step): (i32, i32) = match isolated {
        Err((step, code)) => (-code, step as i32),
        Ok(()) => match privileges::drop_dangerous_capabilities().and_then(|()| filter.install()) {
            Ok(listener) => (listener, 0),
            Err(e) => (-e.raw_os_error().unwrap_or(libc::EPERM), 0),
        },
    };
    let mut report = [0u8; 8];
    report[..4].copy_from_slice(&code.to_ne_bytes());
    report[4..].copy_from_slice(&step.to_ne_bytes());
    write_all(report_w, &report);
    let mut ack = [0u8; 2];
    let acked = matches!(pipe::read(ack_r, &mut ack), Ok(n) if n > 0);
    if code < 0 || !acked {
        process::exit_now(126);
    }
    close(code);
    let err = process::exec_search_path(argv);
    let message = format!("mcp-redirect: exec: {err}\n");
    write_all(2, message.as_bytes());
    process::exit_now(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

/// Reads the child's listener fd number and takes our own copy of it.
fn receive_listener(child: u32, report_r: i32) -> Result<i32, String> {
    let mut bytes = [0u8; 8];
    let n = pipe::read(report_r, &mut bytes);
    close(report_r);
    if !matches!(n, Ok(8)) {
        return Err("the child did not report".into());
    }
    let code = i32::from_ne_bytes(bytes[..4].try_into().unwrap_or_default());
    let step = i32::from_ne_bytes(bytes[4..].try_into().unwrap_or_default());
    if code < 0 || step != 0 {
        let error = std::io::Error::from_raw_os_error(code.checked_neg().unwrap_or(libc::EIO));
        return Err(match Step::from_code(step) {
            Some(step) => format!(
                "cannot isolate its network: {}: {error}{}",
                step.describe(),
                if matches!(step, Step::NewNetwork | Step::NewUserAndNetwork) {
                    " (user namespaces may be off for this user, refused by a container's \
                     seccomp profile, or at their limit: see \
                     docs/supervisor.md#isolate-a-network-namespace-with-only-loopback)"
                } else {
                    ""
                }
            ),
            None => format!("installing the seccomp filter failed: {error}"),
        });
    }
    let listener =
        seccomp::copy_fd(child, code).map_err(|e| format!("taking the listener: {e}"))?;
    seccomp::prefer_sync_wake_up(listener);
    Ok(listener)
}

/// Passes the usual termination signals on to the child, as an `exec`ed `run` would receive
/// them itself.
fn forward_signals(child: libc::pid_t) {
    const FORWARDED: [i32; 6] = [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ];
    // Blocked in this thread, and so in the threads made after; the forwarding thread collects
    // them with sigwait.
    let set = SignalSet::of(&FORWARDED);
    set.block();
    std::thread::spawn(move || loop {
        if let Ok(signal) = set.wait() {
            let _ = process::kill(child, signal);
        }
    });
}

/// Waits for the child and turns its end into our exit code; a child killed by a signal is
/// reported as the shell does (128 + signal), after re-raising it on ourselves where possible.
fn wait_for(child: libc::pid_t) -> u8 {
    let Ok(status) = process::wait_for_exit(child) else {
        return 2;
    };
    if libc::WIFEXITED(status) {
        return libc::WEXITSTATUS(status) as u8;
    }
    let signal = libc::WTERMSIG(status);
    // The same signal, with its default action, so our parent sees what it would have seen
    // without us.
    signals::reraise_with_default_action(signal);
    (128 + signal) as u8
}

/// A close-on-exec pipe. A failure is not reported here (both ends are then 0), as before the
/// call moved to `sys::pipe`.
fn cloexec_pipe() -> (i32, i32) {
    pipe::pipe().unwrap_or((0, 0))
}

fn write_all(fd: i32, bytes: &[u8]) {
    let _ = mcp_redirect_core::sys::write_all(fd, bytes);
}

fn close(fd: i32) {
    mcp_redirect_core::sys::close(fd);
}
