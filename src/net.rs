//! Address vocabulary shared by config, rules, resolver and gateways: CIDR prefixes, port
//! ranges, `host:port` endpoints, and hostname normalisation. Pure functions, no I/O.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An IPv4 or IPv6 prefix. IPv4 prefixes also match IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`),
/// because Java and dual-stack programs connect `AF_INET6` sockets to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr_text, len_text) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("\"{addr_text}\" is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len =
            match len_text {
                None => max,
                Some(l) => l.parse::<u8>().ok().filter(|&n| n <= max).ok_or_else(|| {
                    format!("prefix length \"{l}\" must be a number from 0 to {max}")
                })?,
            };
        let cidr = Cidr {
            network: addr,
            prefix_len,
        };
        if cidr.mask_addr(addr) != addr {
            return Err(format!(
                "\"{text}\" has host bits set; did you mean {}/{prefix_len}?",
                cidr.mask_addr(addr)
            ));
        }
        Ok(cidr)
    }

    fn mask_addr(&self, addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - self.prefix_len as u32)
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - self.prefix_len as u32)
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }

    /// Whether `addr` lies in this prefix. An IPv4 prefix also holds the IPv6 spellings of its
    /// addresses (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`): each of those reaches the
    /// IPv4 host in the end, so a rule about the host must see them. An IPv6 prefix sees IPv4
    /// addresses in their mapped form.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match self.network {
            IpAddr::V4(_) => {
                embedded_ipv4(addr).is_some_and(|v4| self.mask_addr(IpAddr::V4(v4)) == self.network)
            }
            IpAddr::V6(_) => {
                let v6 = match addr {
                    IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
                    v6 => v6,
                };
                self.mask_addr(v6) == self.network
            }
        }
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The first and last address of the prefix, as numbers (IPv4 in the low 32 bits).
    pub fn range(&self) -> (u128, u128) {
        let (first, bits) = match self.network {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        };
        let host_bits = bits - u32::from(self.prefix_len);
        let span = 1u128.checked_shl(host_bits).map_or(u128::MAX, |n| n - 1);
        (first, first | span)
    }

    /// Number of addresses, saturated at `u64::MAX` for large IPv6 prefixes.
    pub fn size(&self) -> u64 {
        let bits = if self.network.is_ipv4() { 32 } else { 128 } - self.prefix_len as u32;
        1u64.checked_shl(bits).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// A port or an inclusive range of ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// Parses `443` or `8000-8999`. Port 0 is refused: nothing connects to it.
    pub fn parse(text: &str) -> Result<PortRange, String> {
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|&n| n != 0)
                .ok_or_else(|| format!("\"{p}\" is not a port number from 1 to 65535"))
        };
        let range = match text.split_once('-') {
            Some((a, b)) => PortRange {
                first: port(a)?,
                last: port(b)?,
            },
            None => {
                let p = port(text)?;
                PortRange { first: p, last: p }
            }
        };
        if range.first > range.last {
            return Err(format!("range \"{text}\" runs backwards"));
        }
        Ok(range)
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// A gateway endpoint as written in the config: `host:port` or `[v6]:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn parse(text: &str) -> Result<HostPort, String> {
        let bad = || format!("\"{text}\" is not host:port (IPv6 as [addr]:port)");
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
            h.parse::<Ipv6Addr>().map_err(|_| bad())?;
            (h, p)
        } else {
            text.rsplit_once(':').ok_or_else(bad)?
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(bad)?;
        if host.contains(':') && !text.starts_with('[') {
            return Err(bad());
        }
        let host = normalize_host(host).ok_or_else(bad)?;
        Ok(HostPort { host, port })
    }

    /// The literal address, when the host is one.
    pub fn literal(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The longest name DNS can carry, without the trailing dot.
pub const MAX_HOST_LEN: usize = 253;

/// Lower-cases a hostname and drops one trailing dot, so that `API.Example.com.` and
/// `api.example.com` are one host. `None` if the result is not a name we would ever put on the
/// wire to a gateway: empty, longer than 253 bytes, a label over 63 bytes or empty, or any byte
/// outside letters, digits, `-`, `_` and `.` (this refuses CR, LF, NUL, spaces and `:` outside
/// IPv6 literals, which could otherwise split a CONNECT request line).
pub fn normalize_host(raw: &str) -> Option<String> {
    let name = raw.strip_suffix('.').unwrap_or(raw);
    if name.is_empty() || name.len() > MAX_HOST_LEN {
        return None;
    }
    // Labels of 1 to 63 letters, digits, `-` and `_`, in one pass over the bytes; a colon
    // sends the name to the IPv6 parser (a table of 70,000 rules normalises 70,000 names).
    let mut label = 0;
    for &b in name.as_bytes() {
        if b == b'.' {
            if label == 0 {
                return None;
            }
            label = 0;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            label += 1;
            if label > 63 {
                return None;
            }
        } else if b == b':' {
            return name
                .parse::<Ipv6Addr>()
                .is_ok()
                .then(|| name.to_ascii_lowercase());
        } else {
            return None;
        }
    }
    if label == 0 {
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// Parses an IPv4 address in any spelling `inet_aton` accepts (`127.1`, `0x7f.1`, `2130706433`,
/// octal `0177.0.0.1`), which is what `getaddrinfo` takes as a numeric host.
pub fn parse_ipv4_any(text: &str) -> Option<Ipv4Addr> {
    fn number(part: &str) -> Option<u64> {
        if part.is_empty() {
            return None;
        }
        let (digits, radix) =
            if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
                (hex, 16)
            } else if part.len() > 1 && part.starts_with('0') {
                (&part[1..], 8)
            } else {
                (part, 10)
            };
        if digits.is_empty() {
            return if radix == 16 { Some(0) } else { None };
        }
        u64::from_str_radix(digits, radix).ok()
    }
    let parts: Vec<u64> = text.split('.').map(number).collect::<Option<_>>()?;
    let value: u64 = match parts.as_slice() {
        [a] if *a <= 0xffff_ffff => *a,
        [a, b] if *a <= 0xff && *b <= 0xff_ffff => (a << 24) | b,
        [a, b, c] if *a <= 0xff && *b <= 0xff && *c <= 0xffff => (a << 24) | (b << 16) | c,
        [a, b, c, d] if [a, b, c, d].iter().all(|&&x| x <= 0xff) => {
            (a << 24) | (b << 16) | (c << 8) | d
        }
        _ => return None,
    };
    Some(Ipv4Addr::from(value as u32))
}

/// Whether `name` is `localhost` or below it (`api.localhost`), any case, with or without the
/// final dot: names that are loopback by definition (RFC 6761, section 6.3).
pub fn is_localhost_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).as_bytes();
    let tail = b"localhost";
    name.len() >= tail.len()
        && name[name.len() - tail.len()..].eq_ignore_ascii_case(tail)
        && (name.len() == tail.len() || name[name.len() - tail.len() - 1] == b'.')
}

/// Whether `getaddrinfo` would take `text` as a numeric address (no lookup involved).
pub fn is_numeric_host(text: &str) -> bool {
    if parse_ipv4_any(text).is_some() {
        return true;
    }
    // An IPv6 literal, possibly with a zone: fe80::1%eth0.
    let addr = text.split_once('%').map_or(text, |(a, _)| a);
    addr.parse::<Ipv6Addr>().is_ok()
}

/// The IPv4 address an address stands for: itself, or the one inside an IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, RFC 4291, deprecated but still routed by
/// some stacks) or NAT64 well-known-prefix (`64:ff9b::a.b.c.d`, RFC 6052) IPv6 address.
pub fn embedded_ipv4(addr: IpAddr) -> Option<Ipv4Addr> {
    match addr {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return Some(v4);
            }
            let bits = u128::from(v6);
            let low = Ipv4Addr::from(bits as u32);
            let nat64 = bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000;
            // ::/96, but not :: and ::1, which are IPv6's own.
            let compatible = bits >> 32 == 0 && bits > 1;
            (nat64 || compatible).then_some(low)
        }
    }
}

/// The address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) turned into plain IPv4, so that rules and
/// the fake table see one address however the socket family spelled it.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    #[test]
    fn localhost_names_are_localhost_and_below_only() {
        for yes in ["localhost", "LocalHost.", "api.localhost", "a.b.localhost."] {
            assert!(is_localhost_name(yes), "{yes}");
        }
        for no in [
            "",
            "localhost.com",
            "mylocalhost",
            "localhos",
            ".",
            "xlocalhost.",
        ] {
            assert!(!is_localhost_name(no), "{no}");
        }
    }

    use super::*;

    #[test]
    fn cidr_matches_v4_and_mapped_v6() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        let c6 = Cidr::parse("fd00::/8").unwrap();
        assert!(c6.contains("fd12::1".parse().unwrap()));
        assert!(!c6.contains("10.1.2.3".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn cidr_errors_say_what_is_wrong() {
        assert!(Cidr::parse("10.0.0.1/8")
            .unwrap_err()
            .contains("10.0.0.0/8"));
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(Cidr::parse("ten/8").unwrap_err().contains("not an IPv4"));
    }

    #[test]
    fn port_ranges() {
        assert_eq!(
            PortRange::parse("443").unwrap(),
            PortRange {
                first: 443,
                last: 443
            }
        );
        let r = PortRange::parse("8000-8999").unwrap();
        assert!(r.contains(8000) && r.contains(8999) && !r.contains(9000));
        assert!(PortRange::parse("9-1").is_err());
        assert!(PortRange::parse("0").is_err());
        assert!(PortRange::parse("70000").is_err());
    }

    #[test]
    fn host_port() {
        let hp = HostPort::parse("Proxy.Corp:3128").unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("proxy.corp", 3128));
        let v6 = HostPort::parse("[::1]:1080").unwrap();
        assert_eq!(v6.literal().unwrap(), "[::1]:1080".parse().unwrap());
        assert_eq!(v6.to_string(), "[::1]:1080");
        assert!(HostPort::parse("proxy").is_err());
        assert!(HostPort::parse("::1:80").is_err());
        assert!(HostPort::parse("a b:80").is_err());
    }

    #[test]
    fn hostnames_are_normalised_and_hostile_ones_refused() {
        assert_eq!(
            normalize_host("API.Example.COM.").unwrap(),
            "api.example.com"
        );
        assert!(normalize_host("evil.com\r\nX-Injected: 1").is_none());
        assert!(normalize_host("a\0b").is_none());
        assert!(normalize_host("a b").is_none());
        assert!(normalize_host("").is_none());
        assert!(normalize_host("a..b").is_none());
        assert!(normalize_host(&"a".repeat(64)).is_none());
        let long = ["abcdefghi"; 26].join(".");
        assert!(long.len() > MAX_HOST_LEN && normalize_host(&long).is_none());
        assert!(normalize_host("_acme-challenge.example.com").is_some());
    }

    #[test]
    fn ipv4_in_every_inet_aton_spelling() {
        let lo = Ipv4Addr::new(127, 0, 0, 1);
        for text in [
            "127.0.0.1",
            "127.1",
            "0x7f.1",
            "2130706433",
            "0177.0.0.1",
            "127.0.1",
        ] {
            assert_eq!(parse_ipv4_any(text), Some(lo), "{text}");
        }
        assert_eq!(parse_ipv4_any("256.0.0.1"), None);
        assert_eq!(parse_ipv4_any("example.com"), None);
        assert_eq!(parse_ipv4_any("1.2.3.4.5"), None);
        assert!(is_numeric_host("fe80::1%eth0"));
        assert!(!is_numeric_host("localhost"));
    }

    #[test]
    fn ipv4_prefixes_see_every_ipv6_spelling_of_their_addresses() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        for spelling in [
            "10.1.2.3",
            "::ffff:10.1.2.3",
            "::10.1.2.3",
            "64:ff9b::10.1.2.3",
            "64:ff9b::a01:203",
        ] {
            assert!(c.contains(spelling.parse().unwrap()), "{spelling}");
        }
        for other in ["::1", "::", "64:ff9c::10.1.2.3", "2001:db8::10.1.2.3"] {
            assert!(!c.contains(other.parse().unwrap()), "{other}");
        }
        assert!(Cidr::parse("64:ff9b::/96")
            .unwrap()
            .contains("64:ff9b::10.1.2.3".parse().unwrap()));
        assert!(Cidr::parse("::ffff:0:0/96")
            .unwrap()
            .contains("10.1.2.3".parse().unwrap()));
    }
}
