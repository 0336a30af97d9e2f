//! The relay thread: one epoll loop that accepts the program's connections, runs their gateway
//! handshakes (futures polled when their socket has an event or their deadline passes), and then
//! copies bytes between the program's connection and the tunnel.
//!
//! Per connection: `app` is the relay's end of the program's socket (accepted from the
//! listener), `gateway` the relay's socket towards the gateway. Both are edge-triggered: every
//! event is followed by I/O until the kernel says `EAGAIN`.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use super::sockets::{self, Phase};
use super::{take_all, Job, Note, Shared};
use crate::sys::socket::{self, Deadline, Waiter};
use crate::sys::{self, epoll};

/// The descriptors the relay starts with.
pub struct Descriptors {
    pub listener: i32,
    pub compact: i32,
    pub epoll: i32,
    pub wake: i32,
    pub reserve: i32,
}

/// Epoll tokens: the kind in the top byte, a connection's slot or a port below.
const WAKE: u64 = 1 << 56;
const LISTENER: u64 = 2 << 56;
const APP: u64 = 3 << 56;
const GATEWAY: u64 = 4 << 56;
const UNMATCHED: u64 = 5 << 56;
const COMPACT_LISTENER: u64 = 6 << 56;
/// In an `UNMATCHED` token: the connection came to the compact listener.
const COMPACT_BIT: u64 = 1 << 16;
const KIND: u64 = 0xff << 56;

const EDGE: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// How long an accepted connection may wait for its request (a program's connection is handed
/// over microseconds after it is accepted; anything else is not ours).
const UNMATCHED_US: u64 = 5_000_000;
/// How often to retry `accept` when the process has no descriptor left.
const ACCEPT_RETRY_US: u64 = 100_000;
const COPY_CHUNK: usize = 64 << 10;

/// How a handshake on the relay thread waits: it hands control back to the loop, which polls it
/// again after an event on its socket (`woken`) or once `wake_at` has passed.
#[derive(Default)]
struct LoopWaiter {
    woken: Cell<bool>,
    wake_at: Cell<u64>,
}

impl Waiter for LoopWaiter {
    fn poll_ready(
        &self,
        _fd: i32,
        _events: libc::c_short,
        deadline: Deadline,
    ) -> Poll<io::Result<()>> {
        if self.woken.replace(false) {
            return Poll::Ready(Ok(()));
        }
        if sys::monotonic_us() >= deadline.at_us() {
            return Poll::Ready(Err(io::Error::from_raw_os_error(libc::ETIMEDOUT)));
        }
        self.wake_at.set(deadline.at_us());
        Poll::Pending
    }
}

type HandshakeFuture = Pin<Box<dyn Future<Output = Result<(), i32>>>>;

enum Stage {
    Handshake {
        future: HandshakeFuture,
        waiter: Rc<LoopWaiter>,
    },
    /// Tunnel up: discarding the filler still ahead of the program's first byte.
    Draining {
        left: usize,
    },
    Copying(Copy),
}

/// Bytes read from one side and not yet taken by the other, and where each direction stands.
#[derive(Default)]
struct Copy {
    to_gateway: Vec<u8>,
    to_app: Vec<u8>,
    app_done: bool,
    gateway_done: bool,
    app_shut: bool,
    gateway_shut: bool,
}

struct Connection {
    generation: u64,
    /// The program's socket, as the program numbers it, and its inode.
    fd: i32,
    ino: u64,
    app: i32,
    gateway: i32,
    /// Filler bytes ahead of the program's first byte on `app`.
    filler: usize,
    /// The wake-up time of the timer pushed last for this connection (one per deadline, not one
    /// per poll: a gateway that trickles bytes must not grow the heap).
    timer_at: u64,
    stage: Stage,
}

struct Unmatched {
    app: i32,
    since_us: u64,
    /// Accepted with the spare descriptor: this errno fails it.
    doomed: Option<i32>,
}

struct Relay {
    shared: &'static Shared,
    fds: Descriptors,
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
    generation: u64,
    /// Requests whose connection has not been accepted yet (and since when), by the program
    /// socket's port and whether it went to the compact listener.
    waiting: HashMap<(u16, bool), (Job, u64)>,
    /// Accepted connections whose request has not arrived yet, likewise.
    unmatched: HashMap<(u16, bool), Unmatched>,
    by_fd: HashMap<i32, usize>,
    timers: BinaryHeap<Reverse<(u64, usize, u64)>>,
    accept_blocked: bool,
    buffer: Vec<u8>,
}

/// The thread's body. A panic in one step is caught, so that the other connections go on.
pub fn run(shared: &'static Shared, fds: Descriptors) {
    let mut relay = Relay {
        shared,
        fds,
        connections: Vec::new(),
        free: Vec::new(),
        generation: 0,
        waiting: HashMap::new(),
        unmatched: HashMap::new(),
        by_fd: HashMap::new(),
        timers: BinaryHeap::new(),
        accept_blocked: false,
        buffer: vec![0; COPY_CHUNK],
    };
    let registered = epoll::add(relay.fds.epoll, relay.fds.wake, libc::EPOLLIN as u32, WAKE)
        .and_then(|()| {
            epoll::add(
                relay.fds.epoll,
                relay.fds.listener,
                libc::EPOLLIN as u32,
                LISTENER,
            )
        })
        .and_then(|()| {
            epoll::add(
                relay.fds.epoll,
                relay.fds.compact,
                libc::EPOLLIN as u32,
                COMPACT_LISTENER,
            )
        });
    if registered.is_err() {
        return;
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    loop {
        let timeout = relay.timeout_ms();
        let Ok(n) = epoll::wait(relay.fds.epoll, &mut events, timeout) else {
            // Our epoll descriptor was closed or replaced behind our back (a raw system call:
            // the close family is hooked). Its number may be the program's now, and so may the
            // others': touch none of them, and let new connects take the synchronous path.
            super::abandon();
            return;
        };
        for event in &events[..n] {
            let (token, flags) = (event.u64, event.events);
            let _ = catch_unwind(AssertUnwindSafe(|| relay.dispatch(token, flags)));
        }
        let _ = catch_unwind(AssertUnwindSafe(|| relay.tick()));
    }
}

impl Relay {
    fn timeout_ms(&self) -> i32 {
        let now = sys::monotonic_us();
        let mut next = self.timers.peek().map(|Reverse((at, _, _))| *at);
        if !self.unmatched.is_empty() || !self.waiting.is_empty() {
            next = Some(next.map_or(now + 1_000_000, |at| at.min(now + 1_000_000)));
        }
        if self.accept_blocked {
            next = Some(next.map_or(now + ACCEPT_RETRY_US, |at| at.min(now + ACCEPT_RETRY_US)));
        }
        match next {
            None => -1,
            Some(at) => at.saturating_sub(now).div_ceil(1000).min(i32::MAX as u64) as i32,
        }
    }

    fn dispatch(&mut self, token: u64, flags: u32) {
        let value = token & !KIND;
        match token & KIND {
            WAKE => {
                epoll::drain(self.fds.wake);
                for note in take_all(self.shared) {
                    match note {
                        Note::Connect(job) => self.requested(job),
                        Note::Options(fd, ino) => self.carry_options(fd, ino),
                    }
                }
            }
            LISTENER => self.accept_all(false),
            COMPACT_LISTENER => self.accept_all(true),
            APP => self.app_event(value as usize),
            GATEWAY => self.gateway_event(value as usize),
            // Only errors and hang-ups are registered for: the peer went away unclaimed.
            UNMATCHED
                if flags & (libc::EPOLLERR | libc::EPOLLHUP | libc::EPOLLRDHUP) as u32 != 0 =>
            {
                let key = (value as u16, value & COMPACT_BIT != 0);
                if let Some(gone) = self.unmatched.remove(&key) {
                    self.close_ours(gone.app);
                }
            }
            _ => {}
        }
    }

    /// Timers (handshake deadlines), unclaimed connections, a blocked `accept`.
    fn tick(&mut self) {
        let now = sys::monotonic_us();
        while let Some(&Reverse((at, index, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let current = self.connections.get_mut(index).and_then(Option::as_mut);
            if let Some(connection) = current.filter(|c| c.generation == generation) {
                if connection.timer_at == at {
                    connection.timer_at = 0;
                }
                self.poll_handshake(index);
            }
        }
        let stale: Vec<(u16, bool)> = self
            .unmatched
            .iter()
            .filter(|(_, u)| now.saturating_sub(u.since_us) > UNMATCHED_US)
            .map(|(key, _)| *key)
            .collect();
        for key in stale {
            if let Some(gone) = self.unmatched.remove(&key) {
                self.close_ours(gone.app);
            }
        }
        // A request whose connection never came (the program reset it before the relay could
        // accept it): nobody waits for it any more.
        let abandoned: Vec<(u16, bool)> = self
            .waiting
            .iter()
            .filter(|(_, (_, since))| now.saturating_sub(*since) > UNMATCHED_US)
            .map(|(key, _)| *key)
            .collect();
        for key in abandoned {
            if let Some((job, _)) = self.waiting.remove(&key) {
                self.forget_request(job);
            }
        }
        if self.fds.reserve < 0 {
            if let Ok(reserve) = socket::duplicate(self.fds.wake) {
                sockets::mark_ours(reserve);
                self.fds.reserve = reserve;
            }
        }
        if self.accept_blocked {
            self.accept_all(false);
            self.accept_all(true);
        }
    }

    fn accept_all(&mut self, compact: bool) {
        self.accept_blocked = false;
        let listener = if compact {
            self.fds.compact
        } else {
            self.fds.listener
        };
        loop {
            match socket::accept(listener) {
                Ok((app, peer)) => {
                    sockets::mark_ours(app);
                    self.accepted(app, peer.ip(), (peer.port(), compact), None);
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR | libc::ECONNABORTED) => continue,
                    Some(code @ (libc::EMFILE | libc::ENFILE)) => {
                        if !self.accept_with_reserve(listener, compact, code) {
                            self.accept_blocked = true;
                            return;
                        }
                    }
                    _ => return,
                },
            }
        }
    }

    /// Out of descriptors: give up the spare one to take the waiting connection, and fail it
    /// with `errno` (the program sees a failed connect, not a hang). `false` if there is no spare.
    fn accept_with_reserve(&mut self, listener: i32, compact: bool, errno: i32) -> bool {
        if self.fds.reserve < 0 {
            return false;
        }
        self.close_ours(self.fds.reserve);
        self.fds.reserve = -1;
        let taken = socket::accept(listener);
        if let Ok((app, peer)) = taken {
            sockets::mark_ours(app);
            self.accepted(app, peer.ip(), (peer.port(), compact), Some(errno));
        }
        self.fds.reserve = socket::duplicate(self.fds.wake).unwrap_or(-1);
        if self.fds.reserve >= 0 {
            sockets::mark_ours(self.fds.reserve);
        }
        true
    }

    fn accepted(&mut self, app: i32, peer: IpAddr, key: (u16, bool), doomed: Option<i32>) {
        if !peer.to_canonical().is_loopback() {
            self.close_ours(app);
            return;
        }
        match self.waiting.remove(&key) {
            Some((job, _)) => self.start(job, app, doomed),
            None => {
                let watched = (libc::EPOLLRDHUP | libc::EPOLLET) as u32;
                let token = UNMATCHED | key.0 as u64 | if key.1 { COMPACT_BIT } else { 0 };
                let _ = epoll::add(self.fds.epoll, app, watched, token);
                let earlier = self.unmatched.insert(
                    key,
                    Unmatched {
                        app,
                        since_us: sys::monotonic_us(),
                        doomed,
                    },
                );
                if let Some(earlier) = earlier {
                    self.close_ours(earlier.app);
                }
            }
        }
    }

    fn requested(&mut self, job: Job) {
        let key = (job.port, job.compact);
        match self.unmatched.remove(&key) {
            Some(found) => {
                epoll::remove(self.fds.epoll, found.app);
                self.start(job, found.app, found.doomed);
            }
            None => {
                if let Some((earlier, _)) = self.waiting.insert(key, (job, sys::monotonic_us())) {
                    // Cannot happen (a port names one live connection); never leave it hanging.
                    self.forget_request(earlier);
                }
            }
        }
    }

    /// Starts the handshake of `job`, whose program connection the relay holds as `app`.
    fn start(&mut self, job: Job, app: i32, doomed: Option<i32>) {
        let Job {
            request,
            ino,
            filler,
            ..
        } = job;
        let gateway = match doomed {
            Some(errno) => Err(errno),
            None => match socket::tcp_socket(request.family) {
                Ok(fd) => {
                    sockets::mark_ours(fd);
                    Ok(fd)
                }
                Err(e) => Err(e.raw_os_error().unwrap_or(libc::EMFILE)),
            },
        };
        let waiter = Rc::new(LoopWaiter::default());
        let future = (request.handshake)(gateway, waiter.clone() as Rc<dyn Waiter>);
        let index = self.free.pop().unwrap_or_else(|| {
            self.connections.push(None);
            self.connections.len() - 1
        });
        self.generation += 1;
        let gateway = gateway.unwrap_or(-1);
        let _ = epoll::add(self.fds.epoll, app, EDGE, APP | index as u64);
        if gateway >= 0 {
            let _ = epoll::add(self.fds.epoll, gateway, EDGE, GATEWAY | index as u64);
        }
        self.by_fd.insert(request.fd, index);
        self.connections[index] = Some(Connection {
            generation: self.generation,
            fd: request.fd,
            ino,
            app,
            gateway,
            filler,
            timer_at: 0,
            stage: Stage::Handshake { future, waiter },
        });
        self.poll_handshake(index);
    }

    /// Polls connection `index`'s handshake, if it is in one; acts on its outcome.
    fn poll_handshake(&mut self, index: usize) {
        let Some(connection) = self.connections[index].as_mut() else {
            return;
        };
        let Stage::Handshake { future, waiter } = &mut connection.stage else {
            return;
        };
        let waker = socket::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)))
            .unwrap_or(Poll::Ready(Err(libc::EIO)));
        match polled {
            Poll::Pending => {
                let at = waiter.wake_at.get();
                if at != connection.timer_at {
                    connection.timer_at = at;
                    self.timers
                        .push(Reverse((at, index, connection.generation)));
                }
            }
            Poll::Ready(Ok(())) => self.tunnel_up(index),
            Poll::Ready(Err(errno)) => self.failed(index, errno),
        }
    }

    /// The tunnel is up: the program's socket is connected (its slot says so before it can turn
    /// writable), its options go onto the gateway socket, and the filler is discarded.
    fn tunnel_up(&mut self, index: usize) {
        let Some(connection) = self.connections[index].as_mut() else {
            return;
        };
        self.shared.handshaking.fetch_sub(1, Ordering::AcqRel);
        sockets::settle(connection.fd, connection.ino, Phase::Up);
        for fd in [connection.app, connection.gateway] {
            let _ = socket::set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        }
        apply_options(connection.gateway, &sockets::options(connection.fd));
        connection.stage = Stage::Draining {
            left: connection.filler,
        };
        self.drain(index);
    }

    /// The handshake failed with `errno`: the slot says so, then the program's connection is
    /// reset, so that its `SO_ERROR` (hooked) reads `errno`.
    fn failed(&mut self, index: usize, errno: i32) {
        if let Some(connection) = self.connections[index].as_ref() {
            self.shared.handshaking.fetch_sub(1, Ordering::AcqRel);
            sockets::settle(connection.fd, connection.ino, Phase::Failed(errno));
        }
        self.finish(index, true);
    }

    fn app_event(&mut self, index: usize) {
        match self
            .connections
            .get(index)
            .and_then(Option::as_ref)
            .map(|c| &c.stage)
        {
            Some(Stage::Draining { .. }) => self.drain(index),
            Some(Stage::Copying(_)) => self.copy(index),
            // During the handshake the program's side only fills up with filler.
            _ => {}
        }
    }

    fn gateway_event(&mut self, index: usize) {
        match self
            .connections
            .get(index)
            .and_then(Option::as_ref)
            .map(|c| &c.stage)
        {
            Some(Stage::Handshake { waiter, .. }) => {
                waiter.woken.set(true);
                self.poll_handshake(index);
            }
            Some(Stage::Copying(_)) => self.copy(index),
            _ => {}
        }
    }

    /// Discards filler until none is left, then copies.
    fn drain(&mut self, index: usize) {
        let Some(connection) = self.connections[index].as_mut() else {
            return;
        };
        let Stage::Draining { left } = &mut connection.stage else {
            return;
        };
        while *left > 0 {
            match socket::discard_now(connection.app, *left) {
                Ok(0) => return self.finish(index, false),
                Ok(n) => *left -= n.min(*left),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(_) => return self.finish(index, true),
            }
        }
        connection.stage = Stage::Copying(Copy::default());
        self.copy(index);
    }

    /// Moves bytes both ways until both sides would block; passes ends of stream on; ends the
    /// connection when both directions are done, or on an error (resetting the other side).
    fn copy(&mut self, index: usize) {
        let Some(connection) = self.connections[index].as_mut() else {
            return;
        };
        let (app, gateway) = (connection.app, connection.gateway);
        let Stage::Copying(state) = &mut connection.stage else {
            return;
        };
        let buffer = &mut self.buffer;
        let towards_gateway = pump(
            app,
            gateway,
            &mut state.to_gateway,
            &mut state.app_done,
            &mut state.gateway_shut,
            buffer,
        );
        let towards_app = pump(
            gateway,
            app,
            &mut state.to_app,
            &mut state.gateway_done,
            &mut state.app_shut,
            buffer,
        );
        let done = state.gateway_shut && state.app_shut;
        if towards_gateway.is_err() || towards_app.is_err() {
            self.finish(index, true);
        } else if done {
            self.finish(index, false);
        }
    }

    /// Ends connection `index`: closes both of the relay's sockets (resetting the program's side
    /// if `reset`) and frees its slot.
    fn finish(&mut self, index: usize, reset: bool) {
        let Some(connection) = self.connections[index].take() else {
            return;
        };
        self.free.push(index);
        if self.by_fd.get(&connection.fd) == Some(&index) {
            self.by_fd.remove(&connection.fd);
        }
        epoll::remove(self.fds.epoll, connection.app);
        sockets::unmark_ours(connection.app);
        if reset {
            socket::reset(connection.app);
        } else {
            sys::close(connection.app);
        }
        if connection.gateway >= 0 {
            epoll::remove(self.fds.epoll, connection.gateway);
            self.close_ours(connection.gateway);
        }
        self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// The program set a carried option on its relayed socket: onto the gateway socket with it.
    fn carry_options(&mut self, fd: i32, ino: u64) {
        let Some(&index) = self.by_fd.get(&fd) else {
            return;
        };
        if let Some(connection) = self.connections[index].as_ref() {
            if connection.ino == ino && connection.gateway >= 0 {
                apply_options(connection.gateway, &sockets::options(fd));
            }
        }
    }

    /// Drops a request that will never be carried, and its place in the counts.
    fn forget_request(&mut self, job: Job) {
        sockets::settle(job.request.fd, job.ino, Phase::Failed(libc::ECONNABORTED));
        self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.shared.handshaking.fetch_sub(1, Ordering::AcqRel);
    }

    fn close_ours(&mut self, fd: i32) {
        sockets::unmark_ours(fd);
        sys::close(fd);
    }
}

/// Sets the carried options the program set on its socket on the relay's socket.
fn apply_options(gateway: i32, options: &sockets::Options) {
    if gateway < 0 {
        return;
    }
    for (&(level, name), value) in sockets::CARRIED_OPTIONS.iter().zip(options) {
        if let Some(value) = value {
            let _ = socket::set_int_option(gateway, level, name, *value);
        }
    }
}

/// Copies from `from` to `to` until one would block: first what `pending` holds, then what
/// arrives. At the end of `from`'s stream (`done`), shuts `to`'s sending side (`shut`) once
/// everything is through. `Err` on a reset or another error of either side.
fn pump(
    from: i32,
    to: i32,
    pending: &mut Vec<u8>,
    done: &mut bool,
    shut: &mut bool,
    buffer: &mut [u8],
) -> Result<(), ()> {
    loop {
        if !pending.is_empty() {
            match socket::send_now(to, pending) {
                Ok(n) => {
                    pending.drain(..n);
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(_) => return Err(()),
            }
        }
        if *done {
            if !*shut {
                socket::shutdown_write(to);
                *shut = true;
            }
            return Ok(());
        }
        let n = match socket::recv_now(from, buffer) {
            Ok(0) => {
                *done = true;
                continue;
            }
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => return Err(()),
        };
        match socket::send_now(to, &buffer[..n]) {
            Ok(sent) if sent == n => {}
            Ok(sent) => pending.extend_from_slice(&buffer[sent..n]),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => {
                pending.extend_from_slice(&buffer[..n])
            }
            Err(_) => return Err(()),
        }
    }
}
