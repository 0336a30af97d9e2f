//! The DNS wire format, as much as the library needs: reading messages (every read checked,
//! compression pointers followed only backwards, at most 128 labels), building the queries SRV
//! discovery sends and the answers the supervisor's resolver gives (`mcp-redirect run --mode
//! supervise`).
//!
//! Written by hand: a query and an answer with SRV and A/AAAA records need two hundred lines,
//! where the maintained crate for the wire format (hickory-proto) would bring futures,
//! async-trait and Unicode tables into a library that is loaded into every process.
#![forbid(unsafe_code)]

use std::net::IpAddr;

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
pub const CLASS_IN: u16 = 1;
pub const RCODE_NXDOMAIN: u16 = 3;
pub const RCODE_REFUSED: u16 = 5;
pub const RCODE_SERVFAIL: u16 = 2;

/// A cursor over a DNS message; every read is checked.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn at(buf: &'a [u8], pos: usize) -> Reader<'a> {
        Reader { buf, pos }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or("the DNS message is truncated")?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    pub fn u16(&mut self) -> Result<u16, String> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, String> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A possibly compressed name, lower-case, without the trailing dot.
    pub fn name(&mut self) -> Result<String, String> {
        let mut labels: Vec<String> = Vec::new();
        let mut pos = self.pos;
        let mut jumped = false;
        for _ in 0..128 {
            let len = *self.buf.get(pos).ok_or("the DNS message is truncated")? as usize;
            if len & 0xc0 == 0xc0 {
                let low = *self
                    .buf
                    .get(pos + 1)
                    .ok_or("the DNS message is truncated")? as usize;
                if !jumped {
                    self.pos = pos + 2;
                }
                jumped = true;
                let target = ((len & 0x3f) << 8) | low;
                if target >= pos || labels.len() > 127 {
                    return Err("a DNS name points forward or loops".into());
                }
                pos = target;
                continue;
            }
            if len == 0 {
                if !jumped {
                    self.pos = pos + 1;
                }
                return Ok(labels.join("."));
            }
            let label = self
                .buf
                .get(pos + 1..pos + 1 + len)
                .ok_or("the DNS message is truncated")?;
            labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
            pos += 1 + len;
        }
        Err("a DNS name is too long".into())
    }
}

/// The question of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    /// The query's flags (the RD bit is echoed).
    pub flags: u16,
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// Where the question ends in the query: it is copied into the answer as it came.
    pub end: usize,
}

/// A query with one question, for `name` of type `qtype`, recursion desired.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // recursion desired
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("\"{name}\" is not a DNS name"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// Reads a query with exactly one question (what resolvers send).
pub fn parse_query(buf: &[u8]) -> Result<Question, String> {
    let mut r = Reader::new(buf);
    let id = r.u16()?;
    let flags = r.u16()?;
    if flags & 0x8000 != 0 {
        return Err("not a query".into());
    }
    if r.u16()? != 1 {
        return Err("not exactly one question".into());
    }
    r.bytes(6)?;
    let name = r.name()?;
    let qtype = r.u16()?;
    let qclass = r.u16()?;
    Ok(Question {
        id,
        flags,
        name,
        qtype,
        qclass,
        end: r.position(),
    })
}

/// The answer to `question` (read from `query`): `addresses` as A/AAAA records for the name (the
/// ones of the question's type), with `rcode`.
pub fn build_answer(
    query: &[u8],
    question: &Question,
    addresses: &[IpAddr],
    ttl: u32,
    rcode: u16,
) -> Vec<u8> {
    let records: Vec<&IpAddr> = addresses
        .iter()
        .filter(|a| match question.qtype {
            TYPE_A => a.is_ipv4(),
            TYPE_AAAA => a.is_ipv6(),
            _ => false,
        })
        .collect();
    let mut out = Vec::with_capacity(question.end + records.len() * 28);
    out.extend_from_slice(&question.id.to_be_bytes());
    // QR, the query's opcode and RD, RA, and the code.
    let flags = 0x8000 | (question.flags & 0x7900) | 0x0080 | (rcode & 0x000f);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..question.end]);
    for address in records {
        out.extend_from_slice(&[0xc0, 12]); // the question's name
        let (kind, data): (u16, Vec<u8>) = match address {
            IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
        };
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// The A/AAAA addresses in an answer's answer section (any owner: CNAME chains end at the name's
/// addresses), and its code.
pub fn answer_addresses(buf: &[u8]) -> Result<(u16, Vec<IpAddr>), String> {
    let mut r = Reader::new(buf);
    r.u16()?;
    let flags = r.u16()?;
    let (questions, answers) = (r.u16()?, r.u16()?);
    r.bytes(4)?;
    for _ in 0..questions {
        r.name()?;
        r.bytes(4)?;
    }
    let mut addresses = Vec::new();
    for _ in 0..answers {
        r.name()?;
        let (kind, class) = (r.u16()?, r.u16()?);
        r.u32()?;
        let length = r.u16()? as usize;
        let data = r.bytes(length)?;
        match (kind, class, length) {
            (TYPE_A, CLASS_IN, 4) => {
                addresses.push(IpAddr::from([data[0], data[1], data[2], data[3]]))
            }
            (TYPE_AAAA, CLASS_IN, 16) => {
                let octets: [u8; 16] = data.try_into().expect("16 bytes");
                addresses.push(IpAddr::from(octets));
            }
            _ => {}
        }
    }
    Ok((flags & 0x000f, addresses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_well_formed() {
        let q = encode_query(0x1234, "_gateway._tcp.service.consul", TYPE_SRV).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..21], b"\x08_gateway");
        assert_eq!(&q[q.len() - 4..], &[0, 33, 0, 1]);
        assert!(encode_query(1, "a..b", TYPE_SRV).is_err());
    }

    #[test]
    fn a_query_and_its_answer_round_trip() {
        let query = encode_query(0x4242, "api.corp.test", TYPE_A).unwrap();
        let question = parse_query(&query).unwrap();
        assert_eq!(
            (question.id, question.name.as_str(), question.qtype),
            (0x4242, "api.corp.test", TYPE_A)
        );
        let addresses = [
            "198.18.0.7".parse().unwrap(),
            "fd6d:6370:7264::7".parse().unwrap(),
        ];
        let answer = build_answer(&query, &question, &addresses, 30, 0);
        let (rcode, found) = answer_addresses(&answer).unwrap();
        assert_eq!(
            (rcode, found),
            (0, vec!["198.18.0.7".parse::<IpAddr>().unwrap()]),
            "only the A record for an A query"
        );
        let nx = build_answer(&query, &question, &[], 30, RCODE_NXDOMAIN);
        assert_eq!(answer_addresses(&nx).unwrap(), (RCODE_NXDOMAIN, vec![]));
    }

    #[test]
    fn hostile_queries_are_errors() {
        let query = encode_query(1, "a.test", TYPE_AAAA).unwrap();
        for cut in 0..query.len() {
            let _ = parse_query(&query[..cut]);
        }
        for i in 0..query.len() {
            let mut flipped = query.clone();
            flipped[i] ^= 0xff;
            let _ = parse_query(&flipped);
            let _ = answer_addresses(&flipped);
        }
    }
}
