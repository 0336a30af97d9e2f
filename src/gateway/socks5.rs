//! SOCKS5 (RFC 1928) `CONNECT`, with username/password authentication (RFC 1929) when the
//! gateway has credentials. The hostname is sent as a domain name (ATYP 3) when known, so the
//! proxy resolves it; otherwise the address.
#![forbid(unsafe_code)]

use std::net::IpAddr;

use super::{Destination, GatewayError};
use crate::config::Gateway;
use crate::sys::socket::{recv_exact, send_all, Deadline, Waiter};

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0;
const USER_PASS: u8 = 2;
const NO_ACCEPTABLE: u8 = 0xff;

pub async fn handshake(
    waiter: &dyn Waiter,
    fd: i32,
    gateway: &Gateway,
    dest: &Destination<'_>,
    deadline: Deadline,
) -> Result<(), GatewayError> {
    let io = |what: &'static str| move |e: std::io::Error| GatewayError::io(what, e);
    let request = connect_request(dest)?;

    let greeting: &[u8] = if gateway.credentials.is_some() {
        &[VERSION, 2, NO_AUTH, USER_PASS]
    } else {
        &[VERSION, 1, NO_AUTH]
    };
    send_all(waiter, fd, greeting, deadline)
        .await
        .map_err(io("sending the SOCKS5 greeting"))?;
    let mut choice = [0u8; 2];
    recv_exact(waiter, fd, &mut choice, true, deadline)
        .await
        .map_err(io("reading the SOCKS5 method"))?;
    if choice[0] != VERSION {
        return Err(GatewayError::endpoint_fault(
            libc::ECONNREFUSED,
            format!(
                "gateway is not a SOCKS5 server (version byte {:#04x})",
                choice[0]
            ),
        ));
    }
    match (choice[1], &gateway.credentials) {
        (NO_AUTH, _) => {}
        (USER_PASS, Some(creds)) => {
            let user = creds.username.as_bytes();
            let pass = creds.password.expose().as_bytes();
            let mut auth = Vec::with_capacity(3 + user.len() + pass.len());
            auth.push(1);
            auth.push(user.len() as u8);
            auth.extend_from_slice(user);
            auth.push(pass.len() as u8);
            auth.extend_from_slice(pass);
            send_all(waiter, fd, &auth, deadline)
                .await
                .map_err(io("sending SOCKS5 credentials"))?;
            let mut status = [0u8; 2];
            recv_exact(waiter, fd, &mut status, true, deadline)
                .await
                .map_err(io("reading the SOCKS5 auth reply"))?;
            if status[1] != 0 {
                return Err(GatewayError::new(
                    libc::EACCES,
                    format!("gateway rejected the username \"{}\"", creds.username),
                ));
            }
        }
        (NO_ACCEPTABLE, _) | (USER_PASS, None) => {
            return Err(GatewayError::new(
                libc::EACCES,
                "gateway accepts none of our authentication methods (credentials needed?)",
            ))
        }
        (other, _) => {
            return Err(GatewayError::endpoint_fault(
                libc::ECONNREFUSED,
                format!("gateway chose an authentication method we did not offer ({other:#04x})"),
            ))
        }
    }

    send_all(waiter, fd, &request, deadline)
        .await
        .map_err(io("sending the SOCKS5 request"))?;
    let mut head = [0u8; 4];
    recv_exact(waiter, fd, &mut head, true, deadline)
        .await
        .map_err(io("reading the SOCKS5 reply"))?;
    if head[0] != VERSION {
        return Err(GatewayError::endpoint_fault(
            libc::ECONNREFUSED,
            "gateway sent a malformed SOCKS5 reply",
        ));
    }
    if head[1] != 0 {
        let (errno, text) = reply_error(head[1]);
        let message = format!("gateway replied: {text} ({})", head[1]);
        // "General failure" is the server's own; every other code is about the destination.
        return Err(if head[1] == 1 {
            GatewayError::endpoint_fault(errno, message)
        } else {
            GatewayError::new(errno, message)
        });
    }
    // Consume the bound address so the tunnel starts clean.
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            recv_exact(waiter, fd, &mut len, false, deadline)
                .await
                .map_err(io("reading the SOCKS5 reply"))?;
            len[0] as usize + 2
        }
        other => {
            return Err(GatewayError::endpoint_fault(
                libc::ECONNREFUSED,
                format!("gateway sent a SOCKS5 reply with address type {other}"),
            ))
        }
    };
    let mut bound = [0u8; 257];
    recv_exact(waiter, fd, &mut bound[..rest], false, deadline)
        .await
        .map_err(io("reading the SOCKS5 reply"))?;
    Ok(())
}

fn connect_request(dest: &Destination<'_>) -> Result<Vec<u8>, GatewayError> {
    let mut req = vec![VERSION, 1, 0];
    match (dest.host, dest.addr) {
        (Some(host), _) => {
            if crate::net::normalize_host(host).as_deref() != Some(host) || host.len() > 255 {
                return Err(GatewayError::new(
                    libc::EINVAL,
                    "the hostname is not a valid DNS name",
                ));
            }
            req.push(3);
            req.push(host.len() as u8);
            req.extend_from_slice(host.as_bytes());
        }
        (None, Some(addr)) => match addr.to_canonical() {
            IpAddr::V4(v4) => {
                req.push(1);
                req.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                req.push(4);
                req.extend_from_slice(&v6.octets());
            }
        },
        (None, None) => return Err(GatewayError::new(libc::EINVAL, "no destination")),
    }
    req.extend_from_slice(&dest.port.to_be_bytes());
    Ok(req)
}

/// RFC 1928 reply codes to the nearest errno.
fn reply_error(code: u8) -> (i32, &'static str) {
    match code {
        1 => (libc::ECONNREFUSED, "general SOCKS server failure"),
        2 => (libc::EACCES, "connection not allowed by ruleset"),
        3 => (libc::ENETUNREACH, "network unreachable"),
        4 => (libc::EHOSTUNREACH, "host unreachable"),
        5 => (libc::ECONNREFUSED, "connection refused"),
        6 => (libc::ETIMEDOUT, "TTL expired"),
        7 => (libc::ECONNREFUSED, "command not supported"),
        8 => (libc::ECONNREFUSED, "address type not supported"),
        _ => (libc::ECONNREFUSED, "unassigned failure code"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let d = Destination {
            host: Some("api.example.com"),
            addr: None,
            port: 443,
        };
        let r = connect_request(&d).unwrap();
        assert_eq!(&r[..5], &[5, 1, 0, 3, 15]);
        assert_eq!(&r[r.len() - 2..], &443u16.to_be_bytes());
        let d = Destination {
            host: None,
            addr: Some("::ffff:10.0.0.1".parse().unwrap()),
            port: 80,
        };
        assert_eq!(
            connect_request(&d).unwrap(),
            vec![5, 1, 0, 1, 10, 0, 0, 1, 0, 80]
        );
        let d = Destination {
            host: Some("a\r\nb"),
            addr: None,
            port: 80,
        };
        assert_eq!(connect_request(&d).unwrap_err().errno, libc::EINVAL);
        assert_eq!(reply_error(4).0, libc::EHOSTUNREACH);
    }
}
