//! The relay thread: one epoll loop that accepts the program's connections, runs their gateway
//! handshakes (futures polled when one of their sockets has an event or their deadline passes),
//! and then copies bytes between the program's connection and the tunnel.
//!
//! Per connection: `app` is the relay's end of the program's socket (accepted from a listener),
//! `gateway` the relay's socket towards the gateway. Both are edge-triggered: every event is
//! followed by I/O until the kernel says `EAGAIN`. A connection's epoll token carries its slot
//! and a generation, so that an event of a connection that ended earlier in the same batch never
//! reaches the one that took its slot.

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
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

/// The descriptors the relay starts with, registered with `epoll` by the caller (so that a
/// failure there leaves the program's connects inline instead of waiting for a relay that
/// cannot hear them).
pub struct Descriptors {
    pub listener: i32,
    pub compact: i32,
    pub epoll: i32,
    pub wake: i32,
    pub reserve: i32,
}

/// Epoll tokens: the kind in the top byte; for a connection, its generation (32 bits) above its
/// slot (24 bits); for an unclaimed connection, its key.
pub const WAKE: u64 = 1 << 56;
pub const LISTENER: u64 = 2 << 56;
const APP: u64 = 3 << 56;
const GATEWAY: u64 = 4 << 56;
const UNMATCHED: u64 = 5 << 56;
pub const COMPACT_LISTENER: u64 = 6 << 56;
const KIND: u64 = 0xff << 56;
const SLOT_BITS: u32 = 24;
/// In an `UNMATCHED` token: the connection came to the compact listener.
const COMPACT_BIT: u64 = 1 << 16;

fn connection_token(kind: u64, index: usize, generation: u64) -> u64 {
    kind | (generation & 0xffff_ffff) << SLOT_BITS | index as u64
}

const EDGE: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// How long an accepted connection may wait for its request, and a request for its connection
/// (a program's connection is handed over microseconds after it is accepted).
const UNMATCHED_US: u64 = 5_000_000;
/// Unclaimed connections held at most (anyone on the machine can connect to the listeners):
/// past this, the oldest is closed. As many as both listeners' queues hold: a burst of the
/// program's own connects is accepted faster than their requests are read.
const MAX_UNMATCHED: usize = 2 * super::BACKLOG as usize;
/// How often to retry `accept` when the process has no descriptor left.
const ACCEPT_RETRY_US: u64 = 100_000;
const COPY_CHUNK: usize = 64 << 10;

/// How a handshake on the relay thread waits: it hands control back to the loop, which polls it
/// again after an event on one of its sockets (`woken`) or once `wake_at` has passed. A socket
/// it waits on that the loop does not know yet (the gateway socket is registered at the start;
/// a DNS query's socket is not) is registered with the connection's token.
struct LoopWaiter {
    woken: Cell<bool>,
    wake_at: Cell<u64>,
    epoll: i32,
    token: u64,
    gateway: i32,
}

impl Waiter for LoopWaiter {
    fn poll_ready(
        &self,
        fd: i32,
        _events: libc::c_short,
        deadline: Deadline,
    ) -> Poll<io::Result<()>> {
        if self.woken.replace(false) {
            return Poll::Ready(Ok(()));
        }
        if sys::monotonic_us() >= deadline.at_us() {
            return Poll::Ready(Err(io::Error::from_raw_os_error(libc::ETIMEDOUT)));
        }
        if fd != self.gateway {
            // Registered anew each time: the number may name a new socket since the last wait.
            if epoll::add(self.epoll, fd, EDGE, self.token).is_err() {
                let _ = epoll::modify(self.epoll, fd, EDGE, self.token);
            }
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
    Copying(CopyState),
}

/// Bytes read from one side and not yet taken by the other, and where each direction stands.
#[derive(Default)]
struct CopyState {
    to_gateway: Vec<u8>,
    to_app: Vec<u8>,
    app_done: bool,
    gateway_done: bool,
    app_shut: bool,
    gateway_shut: bool,
    /// Payload carried each way (for a `close` line the relay writes).
    sent: u64,
    received: u64,
    /// Whether the gateway's side ended its stream before the program's.
    peer_first: bool,
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
    /// The connection's record, if a `close` line is due (see `connections::relay_ended`).
    followed: Option<crate::connections::Followed>,
}

struct Unmatched {
    app: i32,
    since_us: u64,
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
    /// Accepted connections whose request has not arrived yet, likewise; and their order.
    unmatched: HashMap<(u16, bool), Unmatched>,
    unmatched_order: VecDeque<(u16, bool)>,
    by_fd: HashMap<i32, usize>,
    timers: BinaryHeap<Reverse<(u64, usize, u64)>>,
    /// Listeners taken out of epoll while the process has no descriptor to accept with
    /// (usual, compact): `accept` is retried on a timer instead of spinning.
    accept_blocked: [bool; 2],
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
        unmatched_order: VecDeque::new(),
        by_fd: HashMap::new(),
        timers: BinaryHeap::new(),
        accept_blocked: [false; 2],
        buffer: vec![0; COPY_CHUNK],
    };
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
        let mut sooner = |at: u64| next = Some(next.map_or(at, |n: u64| n.min(at)));
        if !self.unmatched.is_empty() || !self.waiting.is_empty() {
            sooner(now + 1_000_000);
        }
        if self.accept_blocked.contains(&true) || self.fds.reserve < 0 {
            sooner(now + ACCEPT_RETRY_US);
        }
        match next {
            None => -1,
            Some(at) => at.saturating_sub(now).div_ceil(1000).min(i32::MAX as u64) as i32,
        }
    }

    /// The live connection an event token names, if it is still the one it was made for.
    fn connection_of(&self, token: u64) -> Option<usize> {
        let index = (token & ((1 << SLOT_BITS) - 1)) as usize;
        let generation = (token >> SLOT_BITS) & 0xffff_ffff;
        let connection = self.connections.get(index)?.as_ref()?;
        (connection.generation & 0xffff_ffff == generation).then_some(index)
    }

    fn dispatch(&mut self, token: u64, flags: u32) {
        match token & KIND {
            WAKE => {
                epoll::drain(self.fds.wake);
                self.read_notes();
            }
            LISTENER => self.accept_all(false),
            COMPACT_LISTENER => self.accept_all(true),
            APP => {
                if let Some(index) = self.connection_of(token) {
                    self.app_event(index);
                }
            }
            GATEWAY => {
                if let Some(index) = self.connection_of(token) {
                    self.gateway_event(index);
                }
            }
            // Only errors and hang-ups are registered for: the peer went away unclaimed.
            UNMATCHED
                if flags & (libc::EPOLLERR | libc::EPOLLHUP | libc::EPOLLRDHUP) as u32 != 0 =>
            {
                let value = token & !KIND;
                let key = (value as u16, value & COMPACT_BIT != 0);
                if let Some(gone) = self.unmatched.remove(&key) {
                    self.close_ours(gone.app);
                }
            }
            _ => {}
        }
    }

    /// Takes what the program's threads handed over.
    fn read_notes(&mut self) {
        for note in take_all(self.shared) {
            match note {
                Note::Connect(job) => self.requested(job),
                Note::Options { fd, ino } => self.carry_options(fd, ino),
            }
        }
    }

    /// Timers (handshake deadlines), unclaimed connections and requests, the spare descriptor,
    /// blocked listeners.
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
        while let Some(&key) = self.unmatched_order.front() {
            match self.unmatched.get(&key) {
                Some(u) if now.saturating_sub(u.since_us) <= UNMATCHED_US => break,
                Some(_) => {
                    let gone = self.unmatched.remove(&key).expect("just seen");
                    self.close_ours(gone.app);
                }
                None => {}
            }
            self.unmatched_order.pop_front();
        }
        // A request whose connection never came (the program reset it before the relay could
        // accept it): nobody waits for it any more. Not while a listener is blocked: its
        // connection may be in the queue.
        if !self.accept_blocked.contains(&true) {
            let abandoned: Vec<(u16, bool)> = self
                .waiting
                .iter()
                .filter(|(_, (_, since))| now.saturating_sub(*since) > UNMATCHED_US)
                .map(|(key, _)| *key)
                .collect();
            for key in abandoned {
                if let Some((job, _)) = self.waiting.remove(&key) {
                    self.abandon_request(job, libc::ECONNABORTED);
                }
            }
        }
        if self.fds.reserve < 0 {
            if let Ok(reserve) = socket::duplicate(self.fds.wake) {
                sockets::mark_ours(reserve);
                self.fds.reserve = reserve;
            }
        }
        for compact in [false, true] {
            if self.accept_blocked[compact as usize] {
                self.accept_all(compact);
            }
        }
    }

    fn listener(&self, compact: bool) -> (i32, u64) {
        if compact {
            (self.fds.compact, COMPACT_LISTENER)
        } else {
            (self.fds.listener, LISTENER)
        }
    }

    /// Takes a listener out of epoll while `accept` cannot succeed (level-triggered, it would
    /// wake the loop without end), or puts it back.
    fn block_listener(&mut self, compact: bool, blocked: bool) {
        if self.accept_blocked[compact as usize] == blocked {
            return;
        }
        self.accept_blocked[compact as usize] = blocked;
        let (fd, token) = self.listener(compact);
        let events = if blocked { 0 } else { libc::EPOLLIN as u32 };
        let _ = epoll::modify(self.fds.epoll, fd, events, token);
    }

    fn accept_all(&mut self, compact: bool) {
        // The requests first (they are handed over right after the connects): what is accepted
        // then finds its request at once instead of waiting unclaimed.
        self.read_notes();
        let (listener, _) = self.listener(compact);
        loop {
            match socket::accept(listener) {
                Ok((app, peer)) => {
                    sockets::mark_ours(app);
                    self.block_listener(compact, false);
                    self.accepted(app, peer.ip(), (peer.port(), compact));
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR | libc::ECONNABORTED) => continue,
                    Some(libc::EAGAIN) => {
                        self.block_listener(compact, false);
                        return;
                    }
                    Some(libc::EMFILE | libc::ENFILE) => {
                        if !self.accept_with_reserve(listener, compact) {
                            self.block_listener(compact, true);
                            return;
                        }
                    }
                    // Anything else (ENOMEM, a security module's EPERM) would repeat: retry on
                    // the timer rather than spin.
                    _ => {
                        self.block_listener(compact, true);
                        return;
                    }
                },
            }
        }
    }

    /// Out of descriptors: give up the spare one to take the waiting connection, whose handshake
    /// then fails with `EMFILE` unless a descriptor for its gateway socket has come free by then
    /// (the program sees a failed connect, not a hang). `false` if there is no spare, or nothing
    /// was waiting (`accept` says `EMFILE` before it looks at the queue): retry on the timer.
    fn accept_with_reserve(&mut self, listener: i32, compact: bool) -> bool {
        if self.fds.reserve < 0 {
            return false;
        }
        self.close_ours(self.fds.reserve);
        self.fds.reserve = -1;
        let taken = socket::accept(listener);
        let accepted = taken.is_ok();
        if let Ok((app, peer)) = taken {
            sockets::mark_ours(app);
            self.accepted(app, peer.ip(), (peer.port(), compact));
        }
        if let Ok(reserve) = socket::duplicate(self.fds.wake) {
            sockets::mark_ours(reserve);
            self.fds.reserve = reserve;
        }
        accepted
    }

    fn accepted(&mut self, app: i32, peer: IpAddr, key: (u16, bool)) {
        if !peer.to_canonical().is_loopback() {
            self.close_ours(app);
            return;
        }
        match self.waiting.remove(&key) {
            Some((job, _)) => self.start(job, app),
            None => {
                let watched = (libc::EPOLLRDHUP | libc::EPOLLET) as u32;
                let token = UNMATCHED | key.0 as u64 | if key.1 { COMPACT_BIT } else { 0 };
                let _ = epoll::add(self.fds.epoll, app, watched, token);
                let earlier = self.unmatched.insert(
                    key,
                    Unmatched {
                        app,
                        since_us: sys::monotonic_us(),
                    },
                );
                if let Some(earlier) = earlier {
                    self.close_ours(earlier.app);
                }
                self.unmatched_order.push_back(key);
                while self.unmatched.len() > MAX_UNMATCHED {
                    let Some(oldest) = self.unmatched_order.pop_front() else {
                        break;
                    };
                    if let Some(gone) = self.unmatched.remove(&oldest) {
                        self.close_ours(gone.app);
                    }
                }
            }
        }
    }

    fn requested(&mut self, job: Job) {
        let key = (job.port, job.compact);
        match self.unmatched.remove(&key) {
            Some(found) => {
                epoll::remove(self.fds.epoll, found.app);
                self.start(job, found.app);
            }
            None => {
                if let Some((earlier, _)) = self.waiting.insert(key, (job, sys::monotonic_us())) {
                    // Cannot happen (a port names one live connection); never leave it hanging.
                    self.abandon_request(earlier, libc::ECONNABORTED);
                }
            }
        }
    }

    /// A request that will never be carried: its handshake runs with `errno` at once (so that its
    /// log line is written), its slot says so, and its place in the counts is given back.
    fn abandon_request(&mut self, job: Job, errno: i32) {
        let waiter: Rc<dyn Waiter> = Rc::new(socket::PollWaiter);
        let mut future = (job.request.handshake)(Err(errno), waiter);
        let waker = socket::noop_waker();
        let _ = catch_unwind(AssertUnwindSafe(|| {
            future.as_mut().poll(&mut Context::from_waker(&waker))
        }));
        sockets::settle(job.request.fd, job.ino, Phase::Failed(errno));
        self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.shared.handshaking.fetch_sub(1, Ordering::AcqRel);
    }

    /// Starts the handshake of `job`, whose program connection the relay holds as `app`.
    fn start(&mut self, job: Job, app: i32) {
        let Job {
            mut request,
            ino,
            filler,
            ..
        } = job;
        let followed = request.followed.take();
        let mut gateway = match socket::tcp_socket(request.family) {
            Ok(fd) => {
                sockets::mark_ours(fd);
                Ok(fd)
            }
            Err(e) => Err(e.raw_os_error().unwrap_or(libc::EMFILE)),
        };
        let index = self.free.pop().unwrap_or_else(|| {
            self.connections.push(None);
            self.connections.len() - 1
        });
        self.generation += 1;
        let generation = self.generation;
        let app_token = connection_token(APP, index, generation);
        let gateway_token = connection_token(GATEWAY, index, generation);
        // A socket the loop cannot hear would stall for ever: fail the connection instead.
        if let Err(e) = epoll::add(self.fds.epoll, app, EDGE, app_token) {
            if let Ok(fd) = gateway {
                self.close_ours(fd);
            }
            gateway = Err(e.raw_os_error().unwrap_or(libc::ENOMEM));
        }
        if let Ok(fd) = gateway {
            if let Err(e) = epoll::add(self.fds.epoll, fd, EDGE, gateway_token) {
                self.close_ours(fd);
                gateway = Err(e.raw_os_error().unwrap_or(libc::ENOMEM));
            }
        }
        let waiter = Rc::new(LoopWaiter {
            woken: Cell::new(false),
            wake_at: Cell::new(0),
            epoll: self.fds.epoll,
            token: gateway_token,
            gateway: *gateway.as_ref().unwrap_or(&-1),
        });
        let future = (request.handshake)(gateway, waiter.clone() as Rc<dyn Waiter>);
        self.by_fd.insert(request.fd, index);
        self.connections[index] = Some(Connection {
            generation,
            fd: request.fd,
            ino,
            app,
            gateway: gateway.unwrap_or(-1),
            filler,
            timer_at: 0,
            stage: Stage::Handshake { future, waiter },
            followed,
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
        match self.connections[index].as_ref().map(|c| &c.stage) {
            Some(Stage::Draining { .. }) => self.drain(index),
            Some(Stage::Copying(_)) => self.copy(index),
            // During the handshake the program's side only fills up with filler.
            _ => {}
        }
    }

    fn gateway_event(&mut self, index: usize) {
        match self.connections[index].as_ref().map(|c| &c.stage) {
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
        connection.stage = Stage::Copying(CopyState::default());
        self.copy(index);
    }

    /// Moves bytes both ways until both sides would block; passes ends of stream on; ends the
    /// connection when both directions are done, or on an error (resetting both sides).
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
            &mut state.sent,
            buffer,
        );
        let app_done = state.app_done;
        let towards_app = pump(
            gateway,
            app,
            &mut state.to_app,
            &mut state.gateway_done,
            &mut state.app_shut,
            &mut state.received,
            buffer,
        );
        if state.gateway_done && !app_done {
            state.peer_first = true;
        }
        let done = state.gateway_shut && state.app_shut;
        if towards_gateway.is_err() || towards_app.is_err() {
            self.finish(index, true);
        } else if done {
            self.finish(index, false);
        }
    }

    /// Ends connection `index`: closes both of the relay's sockets (resetting both, so that each
    /// peer learns it was not a clean end, if `reset`) and frees its slot.
    fn finish(&mut self, index: usize, reset: bool) {
        let Some(connection) = self.connections[index].take() else {
            return;
        };
        self.free.push(index);
        if self.by_fd.get(&connection.fd) == Some(&index) {
            self.by_fd.remove(&connection.fd);
        }
        if let Some(followed) = connection.followed {
            let carried = match &connection.stage {
                Stage::Handshake { .. } => None,
                Stage::Draining { .. } => Some((0, 0, false)),
                Stage::Copying(state) => Some((state.sent, state.received, state.peer_first)),
            };
            let carried = carried.map(|(sent, received, peer_first)| crate::connections::Carried {
                sent,
                received,
                how: match (reset, peer_first) {
                    (_, true) => "closed by the peer",
                    (true, false) => "reset",
                    (false, false) => "closed by the program",
                },
            });
            crate::connections::relay_ended(connection.fd, followed, carried);
        }
        for fd in [connection.app, connection.gateway] {
            if fd < 0 {
                continue;
            }
            epoll::remove(self.fds.epoll, fd);
            sockets::unmark_ours(fd);
            if reset {
                socket::reset(fd);
            } else {
                sys::close(fd);
            }
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
/// everything is through. `Err` on a reset or another error of either side. `carried` counts
/// the bytes `to` took.
fn pump(
    from: i32,
    to: i32,
    pending: &mut Vec<u8>,
    done: &mut bool,
    shut: &mut bool,
    carried: &mut u64,
    buffer: &mut [u8],
) -> Result<(), ()> {
    loop {
        if !pending.is_empty() {
            match socket::send_now(to, pending) {
                Ok(n) => {
                    *carried += n as u64;
                    pending.drain(..n);
                    if pending.is_empty() {
                        // Give the memory back: an idle connection holds no buffer.
                        *pending = Vec::new();
                    }
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
            Ok(sent) if sent == n => *carried += n as u64,
            Ok(sent) => {
                *carried += sent as u64;
                pending.extend_from_slice(&buffer[sent..n]);
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => {
                pending.extend_from_slice(&buffer[..n])
            }
            Err(_) => return Err(()),
        }
    }
}
