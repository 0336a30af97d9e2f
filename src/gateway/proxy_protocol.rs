//! PROXY protocol v2 (HAProxy's spec, section 2.2) for `rewrite` gateways: the first bytes on
//! the connection say who the client is and where it meant to go, so that HAProxy, nginx or
//! Envoy can route and log on the original destination. The hostname, when known, goes in a
//! `PP2_TYPE_AUTHORITY` TLV (the destination address may be a fake one).
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};

/// The 12-byte signature that starts every v2 header.
pub const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];
const VERSION_2_PROXY: u8 = 0x21;
const TCP_OVER_IPV4: u8 = 0x11;
const TCP_OVER_IPV6: u8 = 0x21;
const PP2_TYPE_AUTHORITY: u8 = 0x02;

/// The header for a connection from `source` to `destination` (for `host`, if known). Both
/// addresses are given in one family: IPv4 if both are IPv4, else IPv6 (IPv4 ones mapped).
pub fn header(source: SocketAddr, destination: SocketAddr, host: Option<&str>) -> Vec<u8> {
    let (src, dst) = (source.ip().to_canonical(), destination.ip().to_canonical());
    let mut addresses = Vec::with_capacity(36);
    let family = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            addresses.extend_from_slice(&s.octets());
            addresses.extend_from_slice(&d.octets());
            TCP_OVER_IPV4
        }
        _ => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            addresses.extend_from_slice(&v6(src).octets());
            addresses.extend_from_slice(&v6(dst).octets());
            TCP_OVER_IPV6
        }
    };
    addresses.extend_from_slice(&source.port().to_be_bytes());
    addresses.extend_from_slice(&destination.port().to_be_bytes());
    if let Some(host) = host {
        addresses.push(PP2_TYPE_AUTHORITY);
        addresses.extend_from_slice(&(host.len() as u16).to_be_bytes());
        addresses.extend_from_slice(host.as_bytes());
    }
    let mut out = Vec::with_capacity(16 + addresses.len());
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION_2_PROXY);
    out.push(family);
    out.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    out.extend_from_slice(&addresses);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_with_authority() {
        let h = header(
            "10.0.0.5:40000".parse().unwrap(),
            "198.18.0.7:443".parse().unwrap(),
            Some("api.x.test"),
        );
        assert_eq!(&h[..12], &SIGNATURE);
        assert_eq!((h[12], h[13]), (0x21, 0x11));
        let len = u16::from_be_bytes([h[14], h[15]]) as usize;
        assert_eq!(len, 12 + 3 + 10);
        assert_eq!(&h[16..20], &[10, 0, 0, 5]);
        assert_eq!(&h[20..24], &[198, 18, 0, 7]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 40000);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 443);
        assert_eq!(h[28], 0x02);
        assert_eq!(&h[31..], b"api.x.test");
    }

    #[test]
    fn mixed_families_become_ipv6() {
        let h = header(
            "[::1]:5000".parse().unwrap(),
            "10.1.2.3:80".parse().unwrap(),
            None,
        );
        assert_eq!(h[13], 0x21);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 36);
        assert_eq!(
            &h[32..48],
            &"::ffff:10.1.2.3"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
    }
}
