//! The security log: one JSON object per line, appended with a single `write(2)` on an
//! `O_APPEND` descriptor, so lines from many processes and threads never interleave and no
//! caller ever waits on a lock.
//!
//! The descriptor is ours but lives in someone else's process, which may close it (`ssh`,
//! `uvicorn` close every fd) and reuse the number. Before each write we check with `fstat` that
//! the fd is still the file we opened (device and inode), and reopen it if not; we never write
//! to, or close, an fd we have not verified.
//!
//! A line is written in one of two formats, chosen by `[log] format`: the native one
//! ([`Event::to_line`]) or Elastic Common Schema names ([`ecs`]). Both are built whole in one
//! buffer, sized up front so that it is allocated once, and handed to one `write(2)`.
#![deny(unsafe_code)]

pub mod ecs;

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use crate::config::{LogFormat, LogTarget};
use crate::errno::{eai_name, errno_name, errno_text};
use crate::sys;

/// One decision, as the log records it. `None` fields are written as `null`.
#[derive(Clone, Copy)]
pub struct Event<'a> {
    /// `resolve`, `connect`, or `config_error`.
    pub event: &'static str,
    /// `tcp` or `udp` for `connect`.
    pub proto: Option<&'static str>,
    pub host: Option<&'a str>,
    pub port: Option<u16>,
    /// The address the program asked for.
    pub dst: Option<SocketAddr>,
    /// The rule that decided: its index (`None` for the default or a built-in rule) and its
    /// pattern (`"default"`, `"gateway endpoint"`, ...). No pattern: no decision was made.
    pub rule: Option<(Option<usize>, &'a str)>,
    /// `direct`, `deny` or `gateway`.
    pub action: Option<&'static str>,
    pub gateway: Option<&'a str>,
    pub endpoint: Option<SocketAddr>,
    /// For `resolve`: the fake address handed out, if any.
    pub answer: Option<IpAddr>,
    pub result: LogResult,
    pub error: Option<&'a str>,
    pub elapsed_us: Option<u64>,
    /// For gateway connects: every endpoint tried, in order (failovers show here).
    pub attempts: Option<&'a [Attempt]>,
    /// Lines that could not be written before this one (disk full, log unreachable): set by
    /// the writer, so that a gap in the log is visible in the log.
    pub dropped: Option<u64>,
    /// What made the decision when it was not the program's own library (`"supervisor"`).
    pub via: Option<&'a str>,
    /// The process the line is about, when that is not the one writing it (the supervisor
    /// writes for its children).
    pub pid: Option<u32>,
    /// How a gateway handshake ran when that is worth saying: `"relay"` (off the program's
    /// thread, for a non-blocking socket), or why a non-blocking socket's could not.
    pub handshake: Option<&'a str>,
    /// `Some(false)` for a denial that audit mode logged and let through.
    pub enforced: Option<bool>,
    /// For `close`: how long the connection lived, what it carried each way (the program's
    /// payload), and how it ended.
    pub duration_ms: Option<u64>,
    pub bytes_sent: Option<u64>,
    pub bytes_received: Option<u64>,
    pub ended: Option<&'a str>,
}

/// One try of one gateway endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The endpoint as configured (`proxy.corp:3128`).
    pub endpoint: String,
    /// The address it was reached at, if it resolved.
    pub address: Option<SocketAddr>,
    pub result: LogResult,
    pub elapsed_us: u64,
}

impl Default for Event<'_> {
    fn default() -> Self {
        Event {
            event: "connect",
            proto: None,
            host: None,
            port: None,
            dst: None,
            rule: None,
            action: None,
            gateway: None,
            endpoint: None,
            answer: None,
            result: LogResult::Ok,
            error: None,
            elapsed_us: None,
            attempts: None,
            dropped: None,
            via: None,
            pid: None,
            handshake: None,
            enforced: None,
            duration_ms: None,
            bytes_sent: None,
            bytes_received: None,
            ended: None,
        }
    }
}

/// Room in a native line for everything but its text fields: keys, numbers, addresses, the
/// timestamp (see [`Event::text_len`]; a test holds the widest line to it).
const NATIVE_ROOM: usize = 704;
/// The same for one gateway attempt, in either format, beside its endpoint.
const ATTEMPT_ROOM: usize = 80;

impl Event<'_> {
    /// The JSON line, with its newline.
    pub fn to_line(&self, exe: &str) -> Vec<u8> {
        let mut out =
            JsonLine::with_capacity(NATIVE_ROOM + self.text_len(exe, usize::MAX, usize::MAX));
        out.raw("{\"ts\":\"");
        out.timestamp(sys::realtime_us());
        out.raw("\",\"pid\":");
        out.number(self.pid.unwrap_or_else(sys::pid) as u64);
        out.key("exe");
        out.string(exe);
        out.key("event");
        out.string(self.event);
        out.key("proto");
        out.opt_string(self.proto);
        out.key("host");
        out.opt_string(self.host);
        out.key("port");
        match self.port {
            Some(p) => out.number(p as u64),
            None => out.raw("null"),
        }
        out.key("dst");
        out.opt_socket_addr(self.dst);
        out.key("rule");
        match self.rule {
            Some((index, pattern)) => {
                out.raw("{\"index\":");
                match index {
                    Some(i) => out.number(i as u64),
                    None => out.raw("null"),
                }
                out.key("pattern");
                out.string(pattern);
                out.raw("}");
            }
            None => out.raw("null"),
        }
        out.key("action");
        out.opt_string(self.action);
        out.key("gateway");
        out.opt_string(self.gateway);
        out.key("endpoint");
        out.opt_socket_addr(self.endpoint);
        if let Some(answer) = self.answer {
            out.key("answer");
            out.ip(answer);
        }
        out.key("result");
        out.result(self.result);
        out.key("error");
        out.opt_string(self.error);
        out.key("elapsed_us");
        match self.elapsed_us {
            Some(us) => out.number(us),
            None => out.raw("null"),
        }
        if let Some(via) = self.via {
            out.key("via");
            out.string(via);
        }
        if let Some(handshake) = self.handshake {
            out.key("handshake");
            out.string(handshake);
        }
        if let Some(enforced) = self.enforced {
            out.key("enforced");
            out.raw(if enforced { "true" } else { "false" });
        }
        for (key, value) in [
            ("duration_ms", self.duration_ms),
            ("bytes_sent", self.bytes_sent),
            ("bytes_received", self.bytes_received),
        ] {
            if let Some(value) = value {
                out.key(key);
                out.number(value);
            }
        }
        if let Some(ended) = self.ended {
            out.key("ended");
            out.string(ended);
        }
        if let Some(dropped) = self.dropped {
            out.key("dropped");
            out.number(dropped);
        }
        if let Some(attempts) = self.attempts {
            out.key("attempts");
            out.attempts(attempts, usize::MAX, usize::MAX);
        }
        out.raw("}\n");
        out.0
    }

    /// Bytes of the line's free text, each string cut to `text_limit` and at most `most`
    /// attempts, plus [`ATTEMPT_ROOM`] per attempt: with a format's fixed room, the size of a
    /// line that needs no escaping, so that its buffer is allocated once and never grows.
    fn text_len(&self, exe: &str, text_limit: usize, most: usize) -> usize {
        // A cut string ends with `…` (3 bytes).
        let cut = |text: &str| text.len().min(text_limit.saturating_add(3));
        let texts = [
            Some(exe),
            self.host,
            self.rule.map(|(_, pattern)| pattern),
            self.gateway,
            self.error,
            self.via,
            self.handshake,
            self.ended,
        ];
        let attempts = self.attempts.unwrap_or_default().iter().take(most);
        texts.into_iter().flatten().map(cut).sum::<usize>()
            + attempts
                .map(|attempt| cut(&attempt.endpoint) + ATTEMPT_ROOM)
                .sum::<usize>()
    }
}

/// The `result` field: `"ok"`, an errno name (`"EACCES"`), or a resolver code (`"EAI_NONAME"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogResult {
    Ok,
    Errno(i32),
    Eai(i32),
}

impl From<Result<(), i32>> for LogResult {
    fn from(result: Result<(), i32>) -> Self {
        match result {
            Ok(()) => LogResult::Ok,
            Err(code) => LogResult::Errno(code),
        }
    }
}

/// A tiny JSON writer: strings escaped per RFC 8259. Numbers, addresses and the timestamp are
/// written straight into the line, never through a `String` of their own: the line's buffer
/// is its only allocation.
struct JsonLine(Vec<u8>);

impl JsonLine {
    fn with_capacity(n: usize) -> Self {
        JsonLine(Vec::with_capacity(n))
    }
    fn raw(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }
    fn key(&mut self, name: &str) {
        self.raw(",\"");
        self.raw(name);
        self.raw("\":");
    }
    fn number(&mut self, n: u64) {
        self.padded(n, 1);
    }
    /// `n` in decimal, zero-padded to at least `width` digits (at most 20, all a u64 has).
    fn padded(&mut self, mut n: u64, width: usize) {
        let mut digits = [0u8; 20];
        let mut len = 0;
        for digit in digits.iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
            len += 1;
            if n == 0 && len >= width {
                break;
            }
        }
        self.0.extend_from_slice(&digits[digits.len() - len..]);
    }
    /// `2026-11-27T06:02:41.123456Z` from microseconds since the epoch.
    fn timestamp(&mut self, us: u64) {
        let secs = us / 1_000_000;
        let micros = us % 1_000_000;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        // Civil-from-days (Howard Hinnant's algorithm), valid for any date after 1970.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        for (value, width, separator) in [
            (year as u64, 4, "-"),
            (month as u64, 2, "-"),
            (day as u64, 2, "T"),
            (rem / 3600, 2, ":"),
            ((rem / 60) % 60, 2, ":"),
            (rem % 60, 2, "."),
            (micros, 6, "Z"),
        ] {
            self.padded(value, width);
            self.raw(separator);
        }
    }
    /// `s` as a JSON string, cut to at most `limit` bytes (on a character boundary, then `…`).
    fn bounded_string(&mut self, s: &str, limit: usize) {
        if s.len() <= limit {
            return self.string(s);
        }
        let mut end = limit;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.string(&s[..end]);
        self.0.pop();
        self.raw("…\"");
    }
    fn string(&mut self, s: &str) {
        self.0.push(b'"');
        self.escaped(s);
        self.0.push(b'"');
    }
    /// The inside of a JSON string. Only ASCII bytes are ever escaped, so the text between them
    /// (UTF-8 included) is copied a run at a time.
    fn escaped(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = s.as_bytes();
        let mut plain = 0;
        for (i, &byte) in bytes.iter().enumerate() {
            let short = match byte {
                b'"' => b'"',
                b'\\' => b'\\',
                b'\n' => b'n',
                b'\r' => b'r',
                b'\t' => b't',
                0..=0x1f => b'u',
                _ => continue,
            };
            self.0.extend_from_slice(&bytes[plain..i]);
            self.0.extend_from_slice(&[b'\\', short]);
            if short == b'u' {
                let high = HEX[usize::from(byte >> 4)];
                let low = HEX[usize::from(byte & 0xf)];
                self.0.extend_from_slice(&[b'0', b'0', high, low]);
            }
            plain = i + 1;
        }
        self.0.extend_from_slice(&bytes[plain..]);
    }
    /// `"1.2.3.4"`, as `Display` writes it; IPv4, the common case, without `fmt`.
    fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => {
                self.raw("\"");
                self.ipv4(v4);
                self.raw("\"");
            }
            IpAddr::V6(_) => self.display(&ip),
        }
    }
    /// `"1.2.3.4:443"` or `"[::1]:443"`, as `Display` writes it.
    fn socket_addr(&mut self, addr: SocketAddr) {
        match addr {
            SocketAddr::V4(v4) => {
                self.raw("\"");
                self.ipv4(*v4.ip());
                self.raw(":");
                self.number(v4.port().into());
                self.raw("\"");
            }
            SocketAddr::V6(_) => self.display(&addr),
        }
    }
    fn opt_socket_addr(&mut self, addr: Option<SocketAddr>) {
        match addr {
            Some(addr) => self.socket_addr(addr),
            None => self.raw("null"),
        }
    }
    fn ipv4(&mut self, ip: Ipv4Addr) {
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                self.raw(".");
            }
            self.number(octet.into());
        }
    }
    /// Any `Display` value as a JSON string, formatted into the line (see the `fmt::Write`
    /// impl).
    fn display(&mut self, value: &dyn fmt::Display) {
        self.0.push(b'"');
        // Writing into a Vec cannot fail; an address's Display never does either.
        let _ = write!(self, "{value}");
        self.0.push(b'"');
    }
    /// `[{"endpoint":...,"result":...,"elapsed_us":...},...]`: the first `most` attempts, each
    /// endpoint cut to `text_limit` bytes.
    fn attempts(&mut self, attempts: &[Attempt], most: usize, text_limit: usize) {
        self.raw("[");
        for (i, attempt) in attempts.iter().take(most).enumerate() {
            if i > 0 {
                self.raw(",");
            }
            self.raw("{\"endpoint\":");
            self.bounded_string(&attempt.endpoint, text_limit);
            self.key("result");
            self.result(attempt.result);
            self.key("elapsed_us");
            self.number(attempt.elapsed_us);
            self.raw("}");
        }
        self.raw("]");
    }
    fn result(&mut self, result: LogResult) {
        match result {
            LogResult::Ok => self.string("ok"),
            LogResult::Errno(code) => match errno_name(code) {
                Some(name) => self.string(name),
                None => {
                    self.raw("\"E");
                    if code < 0 {
                        self.raw("-");
                    }
                    self.number(code.unsigned_abs().into());
                    self.raw("\"");
                }
            },
            LogResult::Eai(code) => self.string(eai_name(code)),
        }
    }
    fn opt_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.raw("null"),
        }
    }
}

/// `write!` into a line escapes what it writes: it makes a JSON string's contents of any
/// `Display` value, with no `String` in between.
impl fmt::Write for JsonLine {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.escaped(s);
        Ok(())
    }
}

/// `2026-11-27T06:02:41.123456Z` from microseconds since the epoch.
pub fn rfc3339_micros(us: u64) -> String {
    let mut text = JsonLine::with_capacity(32);
    text.timestamp(us);
    // Digits and separators: always ASCII.
    String::from_utf8(text.0).unwrap_or_default()
}

/// Where log lines go, and the descriptor we keep for a file target.
pub struct LogWriter {
    target: LogTarget,
    format: LineFormat,
    fd: AtomicI32,
    dev: AtomicU64,
    ino: AtomicU64,
    warned: AtomicBool,
    /// Lines lost since the last one written.
    dropped: AtomicU64,
    /// When the path was last compared with our file (rotation), coarse monotonic µs.
    path_checked_us: AtomicU64,
    /// After a failed open, when to try again (no `open` per line while the log is unreachable).
    retry_open_us: AtomicU64,
}

/// How often the path is checked for rotation, and an unreachable log retried.
const RECHECK_US: u64 = 1_000_000;

/// The line format, with what it needs prepared once per configuration.
enum LineFormat {
    Native,
    /// The `k8s.*` fields, already JSON (see [`ecs::pod_fields`]).
    Ecs {
        pod_fields: Box<[u8]>,
    },
}

impl LogWriter {
    pub fn new(target: LogTarget, format: &LogFormat) -> LogWriter {
        let format = match format {
            LogFormat::Native => LineFormat::Native,
            LogFormat::Ecs(pod) => LineFormat::Ecs {
                pod_fields: ecs::pod_fields(pod),
            },
        };
        LogWriter {
            target,
            format,
            fd: AtomicI32::new(-1),
            dev: AtomicU64::new(0),
            ino: AtomicU64::new(0),
            warned: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            path_checked_us: AtomicU64::new(0),
            retry_open_us: AtomicU64::new(0),
        }
    }

    pub fn target(&self) -> &LogTarget {
        &self.target
    }

    pub fn enabled(&self) -> bool {
        self.target != LogTarget::Off
    }

    /// Appends one event. Errors are reported once on stderr and otherwise ignored: logging must
    /// never change what the program's own call returns. errno is preserved.
    pub fn write(&self, event: &Event<'_>, exe: &str) {
        if !self.enabled() {
            return;
        }
        let lost = self.dropped.swap(0, Ordering::Relaxed);
        let event = Event {
            dropped: (lost > 0).then_some(lost),
            ..*event
        };
        let line = match &self.format {
            LineFormat::Native => event.to_line(exe),
            LineFormat::Ecs { pod_fields } => event.to_ecs_line(exe, pod_fields),
        };
        if !self.write_line(&line) {
            self.dropped.fetch_add(lost + 1, Ordering::Relaxed);
        }
    }

    /// Writes one line; `false` if it was lost (reported once on stderr). Never blocks on a
    /// lock, never fails the caller.
    pub fn write_line(&self, line: &[u8]) -> bool {
        let saved = sys::errno();
        let result = match &self.target {
            LogTarget::Off => Ok(()),
            LogTarget::Stderr => sys::write_stderr(line),
            LogTarget::File(path) => match self.verified_fd(path) {
                Ok(fd) => sys::write_all(fd, line),
                Err(e) => Err(e),
            },
        };
        let written = match result {
            Ok(()) => true,
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    sys::stderr_line(&format!(
                        "cannot write the log {:?}: {}; lines are counted and the count is logged once writing works again",
                        self.target,
                        errno_text(&e)
                    ));
                }
                false
            }
        };
        sys::set_errno(saved);
        written
    }

    /// Our fd if it still refers to the file we opened, else a freshly opened one.
    fn verified_fd(&self, path: &std::path::Path) -> std::io::Result<i32> {
        let fd = self.fd.load(Ordering::Acquire);
        let ours = |(dev, ino): (u64, u64)| {
            dev == self.dev.load(Ordering::Relaxed) && ino == self.ino.load(Ordering::Relaxed)
        };
        if fd >= 0 && sys::file_identity(fd).is_some_and(ours) && !self.rotated(path, &ours) {
            return Ok(fd);
        }
        let now = sys::coarse_monotonic_us();
        if now < self.retry_open_us.load(Ordering::Relaxed) {
            return Err(std::io::Error::from_raw_os_error(libc::EAGAIN));
        }
        let fresh = match sys::open_append(path) {
            Ok(fresh) => fresh,
            Err(e) => {
                self.retry_open_us
                    .store(now + RECHECK_US, Ordering::Relaxed);
                return Err(e);
            }
        };
        let (dev, ino) = sys::file_identity(fresh).unwrap_or((0, 0));
        self.dev.store(dev, Ordering::Relaxed);
        self.ino.store(ino, Ordering::Relaxed);
        // If another thread reopened at the same moment, keep theirs and drop ours; the fd we
        // replace is never closed, since it may by now be the program's.
        match self
            .fd
            .compare_exchange(fd, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(fresh),
            Err(theirs) => {
                sys::close(fresh);
                Ok(theirs)
            }
        }
    }

    /// At most once a second: whether the path now names another file than ours (logrotate
    /// renamed ours away and created a new one, or it was deleted). `copytruncate` needs
    /// nothing: O_APPEND writes follow the truncation.
    fn rotated(&self, path: &std::path::Path, ours: &dyn Fn((u64, u64)) -> bool) -> bool {
        let now = sys::coarse_monotonic_us();
        let last = self.path_checked_us.load(Ordering::Relaxed);
        if now.saturating_sub(last) < RECHECK_US
            || self
                .path_checked_us
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        !sys::path_identity(path).is_some_and(ours)
    }
}

impl Drop for LogWriter {
    /// A replaced snapshot's writer (after a reload) closes its file, if the fd is still ours.
    fn drop(&mut self) {
        let fd = *self.fd.get_mut();
        if fd >= 0 && sys::file_identity(fd) == Some((*self.dev.get_mut(), *self.ino.get_mut())) {
            sys::close(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_micros(1_795_759_361_123_456),
            "2026-11-27T06:02:41.123456Z"
        );
        assert_eq!(
            rfc3339_micros(951_782_400_000_001),
            "2000-02-29T00:00:00.000001Z"
        );
        for (us, text) in [
            (946_684_799_999_999, "1999-12-31T23:59:59.999999Z"),
            (4_107_542_400_000_000, "2100-03-01T00:00:00.000000Z"),
            (253_402_300_799_999_999, "9999-12-31T23:59:59.999999Z"),
            (253_402_300_800_000_000, "10000-01-01T00:00:00.000000Z"),
            (u64::MAX, "586524-01-19T08:01:49.551615Z"),
        ] {
            assert_eq!(rfc3339_micros(us), text);
        }
    }

    /// Text that needs every kind of escape, and some that needs none (DEL, U+2028, é).
    pub(super) const HOSTILE: &str = "q\"b\\n\nr\rt\tc\u{1}\u{1f}d\u{7f}\u{2028}é";

    /// [`HOSTILE`] as a JSON string's contents.
    pub(super) const HOSTILE_JSON: &str =
        concat!(r#"q\"b\\n\nr\rt\tc\u0001\u001fd"#, "\u{7f}\u{2028}é");

    /// Two gateway attempts: a refusal, then a success.
    pub(super) fn two_attempts() -> Vec<Attempt> {
        vec![
            Attempt {
                endpoint: "proxy.corp:3128".into(),
                address: Some("10.0.0.1:3128".parse().unwrap()),
                result: LogResult::Errno(libc::ECONNREFUSED),
                elapsed_us: 90,
            },
            Attempt {
                endpoint: HOSTILE.into(),
                address: None,
                result: LogResult::Ok,
                elapsed_us: 0,
            },
        ]
    }

    /// Events covering every field and value shape a line has: IPv4 and IPv6 (scoped,
    /// mapped), errno names, unknown codes, escapes, extreme numbers.
    pub(super) fn samples(attempts: &[Attempt]) -> Vec<Event<'_>> {
        let scoped = std::net::SocketAddrV6::new("fe80::1".parse().unwrap(), 8443, 0, 3);
        vec![
            Event {
                proto: Some("tcp"),
                port: Some(443),
                dst: Some("93.184.216.34:443".parse().unwrap()),
                rule: Some((None, "default")),
                action: Some("direct"),
                elapsed_us: Some(57),
                pid: Some(4242),
                ..Default::default()
            },
            Event {
                proto: Some("tcp"),
                host: Some("api.example.test"),
                port: Some(443),
                dst: Some(SocketAddr::V6(scoped)),
                rule: Some((Some(2), "host=*.example.test")),
                action: Some("gateway"),
                gateway: Some("corp"),
                endpoint: Some("[::ffff:127.0.0.1]:1080".parse().unwrap()),
                elapsed_us: Some(412),
                attempts: Some(attempts),
                via: Some("supervisor"),
                dropped: Some(3),
                pid: Some(77),
                ..Default::default()
            },
            Event {
                event: "resolve",
                host: Some("api.routed.test"),
                rule: Some((Some(0), "host=*.routed.test")),
                action: Some("gateway"),
                gateway: Some("s"),
                answer: Some("198.18.0.7".parse().unwrap()),
                pid: Some(1),
                ..Default::default()
            },
            Event {
                event: "resolve",
                host: Some("v6.routed.test"),
                rule: Some((Some(1), "host=v6.routed.test")),
                action: Some("gateway"),
                answer: Some("fd6d:6370:7264::9".parse().unwrap()),
                result: LogResult::Eai(libc::EAI_NONAME),
                pid: Some(1),
                ..Default::default()
            },
            Event {
                proto: Some("udp"),
                host: Some(HOSTILE),
                port: Some(0),
                dst: Some("[2001:db8::]:0".parse().unwrap()),
                rule: Some((Some(usize::MAX), HOSTILE)),
                action: Some("deny"),
                result: LogResult::Errno(123),
                error: Some(HOSTILE),
                elapsed_us: Some(u64::MAX),
                dropped: Some(u64::MAX),
                via: Some(HOSTILE),
                pid: Some(u32::MAX),
                ..Default::default()
            },
            Event {
                event: "config_error",
                result: LogResult::Errno(-5),
                error: Some("config /x: rules[0]: bad"),
                pid: Some(9),
                ..Default::default()
            },
            Event {
                event: "resolve",
                result: LogResult::Eai(12345),
                pid: Some(9),
                ..Default::default()
            },
            Event {
                proto: Some("tcp"),
                port: Some(65535),
                dst: Some("0.0.0.0:65535".parse().unwrap()),
                result: LogResult::Errno(libc::EINPROGRESS),
                ..Default::default()
            },
        ]
    }

    /// An event with every field at its widest: largest numbers, longest names, scoped IPv6
    /// addresses, and `text` (which should need no escaping) in every text field.
    pub(super) fn widest<'a>(
        event: &'static str,
        text: &'a str,
        attempts: &'a [Attempt],
    ) -> Event<'a> {
        let ip: std::net::Ipv6Addr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        let addr = SocketAddr::V6(std::net::SocketAddrV6::new(ip, 65535, 0, u32::MAX));
        Event {
            event,
            proto: Some("tcp"),
            host: Some(text),
            port: Some(65535),
            dst: Some(addr),
            rule: Some((Some(usize::MAX), text)),
            action: Some("gateway"),
            gateway: Some(text),
            endpoint: Some(addr),
            answer: Some(IpAddr::V6(ip)),
            result: LogResult::Errno(libc::EADDRNOTAVAIL),
            error: Some(text),
            elapsed_us: Some(u64::MAX),
            attempts: Some(attempts),
            dropped: Some(u64::MAX),
            via: Some(text),
            pid: Some(u32::MAX),
            handshake: Some(text),
            enforced: Some(false),
            duration_ms: Some(u64::MAX),
            bytes_sent: Some(u64::MAX),
            bytes_received: Some(u64::MAX),
            ended: Some(text),
        }
    }

    /// Gateway attempts at their widest, with `text` as the endpoint.
    pub(super) fn widest_attempts(text: &str, count: usize) -> Vec<Attempt> {
        let attempt = Attempt {
            endpoint: text.into(),
            address: None,
            result: LogResult::Errno(i32::MIN),
            elapsed_us: u64::MAX,
        };
        vec![attempt; count]
    }

    #[test]
    fn a_line_fits_the_buffer_it_starts_with() {
        for text in ["", "x", &"x".repeat(5000)] {
            for count in [0, 1, 40] {
                let attempts = widest_attempts(text, count);
                let event = widest("config_rejected", text, &attempts);
                let room = NATIVE_ROOM + event.text_len("node", usize::MAX, usize::MAX);
                let line = event.to_line("node");
                assert!(line.len() <= room, "{} > {room}", line.len());
            }
        }
    }

    /// The line with its timestamp replaced by `TS`, and our pid by `PID`.
    pub(super) fn masked(line: &[u8]) -> String {
        let text = String::from_utf8(line.to_vec()).unwrap();
        let start = text.find(":\"").unwrap() + 2;
        assert_eq!(text.as_bytes()[start + 26], b'Z', "{text}");
        let pid = format!("pid\":{},", std::process::id());
        format!("{}TS{}", &text[..start], &text[start + 27..]).replace(&pid, "pid\":PID,")
    }

    /// The native lines of [`samples`], byte for byte as the formatter that built them from
    /// `format!` and `to_string` wrote them (`{H}` stands for [`HOSTILE_JSON`]).
    #[test]
    fn lines_keep_their_exact_bytes() {
        let attempts = two_attempts();
        let expected = [
            r#"{"ts":"TS","pid":4242,"exe":"node","event":"connect","proto":"tcp","host":null,"port":443,"dst":"93.184.216.34:443","rule":{"index":null,"pattern":"default"},"action":"direct","gateway":null,"endpoint":null,"result":"ok","error":null,"elapsed_us":57}"#,
            r#"{"ts":"TS","pid":77,"exe":"node","event":"connect","proto":"tcp","host":"api.example.test","port":443,"dst":"[fe80::1%3]:8443","rule":{"index":2,"pattern":"host=*.example.test"},"action":"gateway","gateway":"corp","endpoint":"[::ffff:127.0.0.1]:1080","result":"ok","error":null,"elapsed_us":412,"via":"supervisor","dropped":3,"attempts":[{"endpoint":"proxy.corp:3128","result":"ECONNREFUSED","elapsed_us":90},{"endpoint":"{H}","result":"ok","elapsed_us":0}]}"#,
            r#"{"ts":"TS","pid":1,"exe":"node","event":"resolve","proto":null,"host":"api.routed.test","port":null,"dst":null,"rule":{"index":0,"pattern":"host=*.routed.test"},"action":"gateway","gateway":"s","endpoint":null,"answer":"198.18.0.7","result":"ok","error":null,"elapsed_us":null}"#,
            r#"{"ts":"TS","pid":1,"exe":"node","event":"resolve","proto":null,"host":"v6.routed.test","port":null,"dst":null,"rule":{"index":1,"pattern":"host=v6.routed.test"},"action":"gateway","gateway":null,"endpoint":null,"answer":"fd6d:6370:7264::9","result":"EAI_NONAME","error":null,"elapsed_us":null}"#,
            r#"{"ts":"TS","pid":4294967295,"exe":"node","event":"connect","proto":"udp","host":"{H}","port":0,"dst":"[2001:db8::]:0","rule":{"index":18446744073709551615,"pattern":"{H}"},"action":"deny","gateway":null,"endpoint":null,"result":"E123","error":"{H}","elapsed_us":18446744073709551615,"via":"{H}","dropped":18446744073709551615}"#,
            r#"{"ts":"TS","pid":9,"exe":"node","event":"config_error","proto":null,"host":null,"port":null,"dst":null,"rule":null,"action":null,"gateway":null,"endpoint":null,"result":"E-5","error":"config /x: rules[0]: bad","elapsed_us":null}"#,
            r#"{"ts":"TS","pid":9,"exe":"node","event":"resolve","proto":null,"host":null,"port":null,"dst":null,"rule":null,"action":null,"gateway":null,"endpoint":null,"result":"EAI_UNKNOWN","error":null,"elapsed_us":null}"#,
            r#"{"ts":"TS","pid":PID,"exe":"node","event":"connect","proto":"tcp","host":null,"port":65535,"dst":"0.0.0.0:65535","rule":null,"action":null,"gateway":null,"endpoint":null,"result":"EINPROGRESS","error":null,"elapsed_us":null}"#,
        ];
        let events = samples(&attempts);
        assert_eq!(events.len(), expected.len());
        for (event, expected) in events.iter().zip(expected) {
            let expected = format!("{}\n", expected.replace("{H}", HOSTILE_JSON));
            assert_eq!(masked(&event.to_line("node")), expected);
        }
    }

    #[test]
    fn lines_are_json_with_escapes() {
        let e = Event {
            event: "connect",
            host: Some("a\"b\\c\u{1}"),
            port: Some(443),
            action: Some("deny"),
            rule: Some((None, "default")),
            result: LogResult::Errno(libc::EACCES),
            ..Default::default()
        };
        let line = String::from_utf8(e.to_line("curl")).unwrap();
        assert!(line.ends_with("}\n"));
        assert!(line.contains(r#""host":"a\"b\\c\u0001""#), "{line}");
        assert!(
            line.contains(r#""rule":{"index":null,"pattern":"default"}"#),
            "{line}"
        );
        assert!(line.contains(r#""result":"EACCES""#), "{line}");
    }
}
