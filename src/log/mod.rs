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
//! ([`Event::to_line`]) or Elastic Common Schema names ([`ecs`]). Both are built whole in memory
//! and handed to one `write(2)`.
#![deny(unsafe_code)]

pub mod ecs;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use crate::config::{LogFormat, LogTarget};
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
        }
    }
}

impl Event<'_> {
    /// The JSON line, with its newline.
    pub fn to_line(&self, exe: &str) -> Vec<u8> {
        let mut out = JsonLine::with_capacity(512);
        out.raw("{\"ts\":\"");
        out.raw(&rfc3339_micros(sys::realtime_us()));
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
        out.opt_display(self.dst.as_ref());
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
        out.opt_display(self.endpoint.as_ref());
        if self.answer.is_some() {
            out.key("answer");
            out.opt_display(self.answer.as_ref());
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

/// A tiny JSON writer: strings escaped per RFC 8259, nothing else needed.
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
        self.raw(&n.to_string());
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
        for c in s.chars() {
            match c {
                '"' => self.raw("\\\""),
                '\\' => self.raw("\\\\"),
                '\n' => self.raw("\\n"),
                '\r' => self.raw("\\r"),
                '\t' => self.raw("\\t"),
                c if (c as u32) < 0x20 => self.raw(&format!("\\u{:04x}", c as u32)),
                c => {
                    let mut buf = [0u8; 4];
                    self.raw(c.encode_utf8(&mut buf));
                }
            }
        }
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
            LogResult::Errno(code) => self.string(&errno_name(code)),
            LogResult::Eai(code) => self.string(eai_name(code)),
        }
    }
    fn opt_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.raw("null"),
        }
    }
    fn opt_display<T: std::fmt::Display>(&mut self, v: Option<&T>) {
        match v {
            Some(v) => self.string(&v.to_string()),
            None => self.raw("null"),
        }
    }
}

/// `2026-11-27T06:02:41.123456Z` from microseconds since the epoch.
pub fn rfc3339_micros(us: u64) -> String {
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
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// `EACCES` for 13: the log and the tests speak in names.
pub fn errno_name(code: i32) -> String {
    let name = match code {
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EALREADY => "EALREADY",
        libc::EISCONN => "EISCONN",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EINVAL => "EINVAL",
        libc::EBADF => "EBADF",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EPROTO => "EPROTO",
        libc::EINTR => "EINTR",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EPIPE => "EPIPE",
        libc::ENOENT => "ENOENT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("E{code}"),
    };
    name.to_string()
}

/// An I/O error as a sentence, without Rust's " (os error N)" suffix: the log has `result` for
/// the errno.
pub fn errno_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// `EAI_NONAME` for -2: getaddrinfo's codes by name.
pub fn eai_name(code: i32) -> &'static str {
    match code {
        libc::EAI_AGAIN => "EAI_AGAIN",
        libc::EAI_BADFLAGS => "EAI_BADFLAGS",
        libc::EAI_FAIL => "EAI_FAIL",
        libc::EAI_FAMILY => "EAI_FAMILY",
        libc::EAI_MEMORY => "EAI_MEMORY",
        libc::EAI_NONAME => "EAI_NONAME",
        libc::EAI_SERVICE => "EAI_SERVICE",
        libc::EAI_SOCKTYPE => "EAI_SOCKTYPE",
        libc::EAI_SYSTEM => "EAI_SYSTEM",
        libc::EAI_OVERFLOW => "EAI_OVERFLOW",
        libc::EAI_NODATA => "EAI_NODATA",
        _ => "EAI_UNKNOWN",
    }
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
