//! errno and `getaddrinfo` codes by name (`EACCES`, `EAI_NONAME`), and an I/O error as a
//! sentence: the vocabulary the log, the config's messages, the connect path and the command all
//! speak. A table at the bottom of the crate, so that none of them reaches up into another for it.
//! No I/O, no `unsafe`.

#![forbid(unsafe_code)]

/// `EACCES` for 13: the log and the tests speak in names. `None` for a code not listed here,
/// which the log writes as `E123`.
pub fn errno_name(code: i32) -> Option<&'static str> {
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
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EPIPE => "EPIPE",
        libc::ENOENT => "ENOENT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return None,
    };
    Some(name)
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
