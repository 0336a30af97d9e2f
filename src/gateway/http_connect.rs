//! HTTP/1.1 `CONNECT` (RFC 9110 §9.3.6): one request, one reply head, then the socket is a tunnel.
//!
//! The reply is read with `MSG_PEEK` first and consumed only up to the blank line that ends it,
//! so no byte that belongs to the tunnel is swallowed.
#![forbid(unsafe_code)]

use super::{Destination, GatewayError};
use crate::config::Gateway;
use crate::sys::socket::{recv_some, send_all, Deadline, Waiter};

/// Longest reply head we accept; a gateway sending more is misbehaving.
pub const MAX_REPLY_HEAD: usize = 16 * 1024;

pub fn request(gateway: &Gateway, dest: &Destination<'_>) -> Result<Vec<u8>, GatewayError> {
    let authority = dest.authority()?;
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(creds) = &gateway.credentials {
        let token = base64(format!("{}:{}", creds.username, creds.password.expose()).as_bytes());
        req.push_str("Proxy-Authorization: Basic ");
        req.push_str(&token);
        req.push_str("\r\n");
    }
    for (name, value) in &gateway.headers {
        req.push_str(name);
        req.push_str(": ");
        req.push_str(value);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    Ok(req.into_bytes())
}

pub async fn handshake(
    waiter: &dyn Waiter,
    fd: i32,
    gateway: &Gateway,
    dest: &Destination<'_>,
    deadline: Deadline,
) -> Result<(), GatewayError> {
    let req = request(gateway, dest)?;
    send_all(waiter, fd, &req, deadline)
        .await
        .map_err(|e| GatewayError::io("sending CONNECT", e))?;
    let head = read_reply_head(waiter, fd, deadline).await?;
    check_status(&head)
}

/// Reads the reply up to and including `\r\n\r\n`, and not one byte further.
async fn read_reply_head(
    waiter: &dyn Waiter,
    fd: i32,
    deadline: Deadline,
) -> Result<Vec<u8>, GatewayError> {
    let mut head: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 2048];
    loop {
        // The first read follows the request: its answer cannot be there yet.
        let first = head.is_empty();
        let peeked = recv_some(waiter, fd, &mut chunk, libc::MSG_PEEK, first, deadline)
            .await
            .map_err(|e| GatewayError::io("reading the CONNECT reply", e))?;
        if peeked == 0 {
            return Err(GatewayError::endpoint_fault(
                libc::ECONNREFUSED,
                match first_line(&head) {
                    Some(line) => format!(
                        "gateway closed the connection after \"{line}\" without ending the reply"
                    ),
                    None => "gateway closed the connection without a reply".to_string(),
                },
            ));
        }
        // The terminator may straddle what we hold and what we peeked.
        let carry = head.len().min(3);
        let mut window = head[head.len() - carry..].to_vec();
        window.extend_from_slice(&chunk[..peeked]);
        let take = match window.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(pos) => pos + 4 - carry,
            None => peeked,
        };
        let n = recv_some(waiter, fd, &mut chunk[..take], 0, false, deadline)
            .await
            .map_err(|e| GatewayError::io("reading the CONNECT reply", e))?;
        head.extend_from_slice(&chunk[..n]);
        if head.ends_with(b"\r\n\r\n") {
            return Ok(head);
        }
        if head.len() > MAX_REPLY_HEAD {
            return Err(GatewayError::endpoint_fault(
                libc::ECONNREFUSED,
                format!("gateway reply head is longer than {MAX_REPLY_HEAD} bytes"),
            ));
        }
    }
}

/// The first line, made safe to log: printable ASCII only, at most 200 characters.
fn first_line(head: &[u8]) -> Option<String> {
    let end = head
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(head.len());
    if end == 0 {
        return None;
    }
    Some(
        head[..end.min(200)]
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '?'
                }
            })
            .collect(),
    )
}

fn check_status(head: &[u8]) -> Result<(), GatewayError> {
    let line = first_line(head).unwrap_or_default();
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status = parts
        .next()
        .and_then(|s| (s.len() == 3).then_some(s))
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(code) if version.starts_with("HTTP/1.") => {
            if (200..300).contains(&code) {
                Ok(())
            } else if matches!(code, 502..=504) {
                // The proxy cannot reach upstream or is overloaded: another endpoint may.
                Err(GatewayError::endpoint_fault(
                    libc::ECONNREFUSED,
                    format!("gateway refused: \"{line}\""),
                ))
            } else {
                Err(GatewayError::new(
                    libc::ECONNREFUSED,
                    format!("gateway refused: \"{line}\""),
                ))
            }
        }
        _ => Err(GatewayError::endpoint_fault(
            libc::ECONNREFUSED,
            format!("gateway sent a malformed reply: \"{line}\""),
        )),
    }
}

/// Standard base64 with padding (RFC 4648), for `Proxy-Authorization: Basic`.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn statuses() {
        assert!(check_status(b"HTTP/1.1 200 Connection established\r\n\r\n").is_ok());
        assert!(check_status(b"HTTP/1.0 200 OK\r\n\r\n").is_ok());
        let e = check_status(b"HTTP/1.1 403 Forbidden\r\nX: y\r\n\r\n").unwrap_err();
        assert_eq!(e.errno, libc::ECONNREFUSED);
        assert!(
            e.message.contains("\"HTTP/1.1 403 Forbidden\""),
            "{}",
            e.message
        );
        assert!(check_status(b"SSH-2.0-OpenSSH\r\n\r\n")
            .unwrap_err()
            .message
            .contains("malformed"));
        assert!(first_line(b"HTTP/1.1 200 \x1b[31m\r\n")
            .unwrap()
            .contains('?'));
    }
}
