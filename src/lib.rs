//! The core of `libmcp_redirect.so`, an `LD_PRELOAD` interposer that routes the outbound
//! connections of an unmodified process by ordered host rules: direct, denied, or through a
//! gateway (HTTP CONNECT, SOCKS5, or an address rewrite to an API gateway), and logs every
//! decision as one JSON line. The exported hooks live in their own crate (`crates/preload`, the
//! `.so`), the command in another (`crates/cli`); both call this crate, so a program that links
//! it (the command, static or not) has no hook of ours in front of libc.
//!
//! Module map (the shape is "a pure core, a thin skin"). Dependencies point down only: `hooks` ->
//! `connect`/`lookup` -> `runtime` -> `gateway`/`resolver`/`log` -> `config`/`rules` ->
//! `sys`/`net`/`dns`, with the shared primitives (`errno`, `hash`, `dns`) once at the bottom.
//! - `hooks` (the `mcp-redirect` crate, `crates/preload`): the only `#[no_mangle] extern "C"`
//!   symbols; each converts C arguments, calls one safe function of this crate, and converts the
//!   result back. No decisions are made there. One file per family of calls (connect and sends,
//!   relayed sockets, `getaddrinfo`, `gethostbyname`, `res_query`, `getaddrinfo_a`), and one per
//!   C answer they build (`addrinfo`, `hostent`).
//! - [`sys`]: the one door to libc: the real functions behind our hooks (`dlsym(RTLD_NEXT)`,
//!   without naming the hooks), errno, and deadline-bounded socket I/O on a borrowed fd.
//! - [`config`]: the TOML schema, the proxy-environment fallback, validation with key paths.
//! - [`net`]: address vocabulary: CIDR prefixes, port ranges, `host:port`, hostname checks.
//! - [`rules`]: the compiled rule table and the one decision function. No I/O, no `unsafe`.
//! - [`resolver`]: the fake-address table, the address-to-name memory, and what a lookup answers.
//! - [`gateway`]: the handshakes (HTTP CONNECT, SOCKS5, rewrite + PROXY v2) on the caller's
//!   socket, endpoint health and order, and SRV discovery of endpoints.
//! - [`connect`]: what happens to one intercepted `connect()` (or fast-open send, or datagram in
//!   strict mode): decide, act, log.
//! - [`relay`]: routed connects on non-blocking sockets: the handshake on a thread of ours, the
//!   program's socket held "connecting" until the tunnel is up (`docs/nonblocking.md`).
//! - [`connections`]: the decided connections, from `connect` to the `close` line that says
//!   what they carried.
//! - [`lookup`]: what happens to one intercepted name lookup: fake or real answer, log.
//! - [`dns`]: the DNS wire format (SRV discovery, the supervisor's resolver).
//! - [`errno`]: errno and `getaddrinfo` codes by name, and an I/O error as a sentence (for the
//!   log, the config's messages, `connect` and the command).
//! - [`hash`]: FNV-1a, the one small hash (the rule index, the name memory, compiled lists).
//! - [`log`]: the JSON-lines security event and its `O_APPEND` writer.
//! - [`notice`]: the one-line notices on stderr of what was refused, once per host and reason.
//! - [`runtime`]: the process-wide state: an immutable snapshot, loaded lazily on the first
//!   hooked call and swapped when the config file changes.

pub mod compiled;
pub mod config;
pub mod connect;
pub mod connections;
pub mod dns;
pub mod errno;
pub mod gateway;
pub mod hash;
pub mod lists;
pub mod log;
pub mod lookup;
pub mod net;
pub mod notice;
pub mod relay;
pub mod resolver;
pub mod rules;
pub mod runtime;
pub mod sys;
