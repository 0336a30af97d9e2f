//! Rule lists: `[[rules]] host_list = "FILE"` and `cidr_list = "FILE"`, a rule whose host (or
//! address) condition is a file of patterns, one per line: threat-intelligence blocklists,
//! allow-lists exported from an inventory, cloud address ranges. A million lines must not cost
//! every process that loads the config a second and a hundred megabytes, so a list is used in a
//! compiled form that every process maps read-only and shares through the page cache:
//!
//! - host lists: an `fst` map (a minimal automaton) from each pattern, written backwards with
//!   its kind, to its line number. A name is looked up by walking it from its last byte: at
//!   each label boundary the walk asks whether a `*.suffix` or `.domain` pattern ends there, at
//!   the end whether an exact name or `.domain` apex does. One walk answers every pattern form.
//! - address lists: the prefixes as sorted, disjoint ranges, binary-searched.
//!
//! The compiled file (its header, where it lives, when it is trusted) is [`crate::compiled`]'s;
//! one that fails any check is not used: the list is compiled again from its text (in memory,
//! and written where it can be for the processes that come next).
#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::compiled::{self, read_u64, Kind, HEADER};
pub use crate::compiled::{cache_dir, Identity};
use crate::net::Cidr;
use crate::sys::Mapping;

/// The largest list file read (text): far above any published blocklist (a million names is
/// about 25 MB).
pub const MAX_LIST_BYTES: u64 = 512 << 20;

/// The last byte of a key: which pattern form it is. Below every byte a name holds, so a
/// pattern's key never sits inside a longer name's path.
const EXACT: u8 = 1;
const SUBDOMAINS: u8 = 2;
const DOMAIN: u8 = 3;

/// Where a list's compiled form came from (for `check` and the docs' claims).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compiled {
    /// A valid compiled file, mapped.
    Mapped(PathBuf),
    /// Compiled from the text in this process; written to the path, if any.
    Built(Option<PathBuf>),
}

impl fmt::Display for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compiled::Mapped(path) => write!(f, "compiled form {} (mapped)", path.display()),
            Compiled::Built(Some(path)) => {
                write!(f, "compiled now, written to {}", path.display())
            }
            Compiled::Built(None) => f.write_str("compiled now, in memory (nowhere to write it)"),
        }
    }
}

/// The compiled body, mapped from its file or built in memory.
enum Body {
    Mapped(Mapping, usize),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        match self {
            Body::Mapped(mapping, offset) => &mapping.bytes()[*offset..],
            Body::Owned(bytes) => bytes,
        }
    }
}

/// What every list has.
pub struct ListInfo {
    /// As the config gave it, made absolute.
    pub path: PathBuf,
    pub identity: Identity,
    /// Patterns read (duplicates included).
    pub entries: u64,
    pub compiled: Compiled,
}

/// A `host_list`: exact names, `*.suffix` and `.domain` patterns.
pub struct HostList {
    pub info: ListInfo,
    map: fst::Map<Body>,
}

impl HostList {
    /// Loads the list at `path` (absolute), from a valid compiled form if there is one.
    pub fn load(path: &Path, cache: Option<&Path>) -> Result<HostList, String> {
        let (info, body) = load(path, cache, Kind::Hosts, compile_hosts)?;
        let map = fst::Map::new(body).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(HostList { info, map })
    }

    /// The line of a pattern that matches `name` (lower case, no trailing dot), if any: the
    /// most specific one (exact name first, then the longest suffix).
    pub fn find(&self, name: &str) -> Option<u64> {
        let fst = self.map.as_fst();
        let mut node = fst.root();
        let mut out = fst::raw::Output::zero();
        let bytes = name.as_bytes();
        let mut found = None;
        // The pattern ending at the current node with the last byte `kind`, if there is one.
        let ends = |node: fst::raw::Node<'_>, out: fst::raw::Output, kind: u8| {
            let index = node.find_input(kind)?;
            let t = node.transition(index);
            let next = fst.node(t.addr);
            next.is_final()
                .then(|| out.cat(t.out).cat(next.final_output()).value())
        };
        for (walked, &byte) in bytes.iter().rev().enumerate() {
            if byte == b'.' && walked > 0 {
                // What was walked is a suffix of `name` after a dot.
                if let Some(line) = ends(node, out, SUBDOMAINS).or_else(|| ends(node, out, DOMAIN))
                {
                    found = Some(line);
                }
            }
            let Some(index) = node.find_input(byte) else {
                return found;
            };
            let t = node.transition(index);
            out = out.cat(t.out);
            node = fst.node(t.addr);
        }
        ends(node, out, EXACT)
            .or_else(|| ends(node, out, DOMAIN))
            .or(found)
    }
}

/// A `cidr_list`: addresses and prefixes, IPv4 and IPv6.
pub struct CidrList {
    pub info: ListInfo,
    body: Body,
    v4: usize,
    v6: usize,
}

/// Bytes per stored range: (first, last, line) as u32/u128 little-endian.
const V4_ENTRY: usize = 12;
const V6_ENTRY: usize = 36;

impl CidrList {
    pub fn load(path: &Path, cache: Option<&Path>) -> Result<CidrList, String> {
        let (info, body) = load(path, cache, Kind::Cidrs, compile_cidrs)?;
        let bytes = body.as_ref();
        let bad = || format!("{}: a compiled form of the wrong size", path.display());
        let v4 = read_u64(bytes, 0).ok_or_else(bad)? as usize;
        let v6 = read_u64(bytes, 8).ok_or_else(bad)? as usize;
        let expected = v4
            .checked_mul(V4_ENTRY)
            .and_then(|a| v6.checked_mul(V6_ENTRY).map(|b| (a, b)))
            .and_then(|(a, b)| a.checked_add(b)?.checked_add(16));
        if expected != Some(bytes.len()) {
            return Err(bad());
        }
        Ok(CidrList { info, body, v4, v6 })
    }

    /// The line of a prefix holding `addr`, if any. As a `cidr` condition does, an IPv4 prefix
    /// also holds the IPv6 spellings of its addresses, and an IPv6 prefix sees an IPv4 address
    /// in its mapped form.
    pub fn find(&self, addr: IpAddr) -> Option<u64> {
        let bytes = self.body.as_ref();
        let v4_table = &bytes[16..16 + self.v4 * V4_ENTRY];
        let v6_table = &bytes[16 + self.v4 * V4_ENTRY..];
        let in_v4 = crate::net::embedded_ipv4(addr).and_then(|v4| {
            let at = |i: usize| {
                let e = &v4_table[i * V4_ENTRY..(i + 1) * V4_ENTRY];
                let word = |o: usize| u32::from_le_bytes(e[o..o + 4].try_into().unwrap());
                (u128::from(word(0)), u128::from(word(4)), word(8))
            };
            find_range(self.v4, at, u128::from(u32::from(v4)))
        });
        in_v4.or_else(|| {
            let v6 = match addr {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            let at = |i: usize| {
                let e = &v6_table[i * V6_ENTRY..(i + 1) * V6_ENTRY];
                let wide = |o: usize| u128::from_le_bytes(e[o..o + 16].try_into().unwrap());
                let line = u32::from_le_bytes(e[32..36].try_into().unwrap());
                (wide(0), wide(16), line)
            };
            find_range(self.v6, at, u128::from(v6))
        })
    }
}

/// Binary search of `count` sorted, disjoint ranges (`at(i)`: first, last, line) for `value`.
fn find_range(count: usize, at: impl Fn(usize) -> (u128, u128, u32), value: u128) -> Option<u64> {
    let (mut low, mut high) = (0, count);
    // The first range whose first address is above `value`; the one before may hold it.
    while low < high {
        let mid = low + (high - low) / 2;
        if at(mid).0 <= value {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    let (_, last, line) = at(low.checked_sub(1)?);
    (value <= last).then_some(u64::from(line))
}

/// What compiles a list's text: its entry count and compiled body.
type Compile = fn(&Path, &[u8]) -> Result<(u64, Vec<u8>), String>;

/// The list's compiled body: mapped from a valid compiled file of `kind`, else compiled from
/// the text by `compile` (and written for the next process, where that is possible).
fn load(
    path: &Path,
    cache: Option<&Path>,
    kind: Kind,
    compile: Compile,
) -> Result<(ListInfo, Body), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {}", plain(&e)))?;
    if !meta.is_file() {
        return Err(format!("{shown}: not a regular file"));
    }
    if meta.len() > MAX_LIST_BYTES {
        return Err(format!("{shown}: larger than {} MiB", MAX_LIST_BYTES >> 20));
    }
    let identity = Identity::of(&meta);
    if let Some((candidate, entries, mapping)) = compiled::find(path, cache, kind, &identity) {
        let info = ListInfo {
            path: path.to_path_buf(),
            identity,
            entries,
            compiled: Compiled::Mapped(candidate),
        };
        return Ok((info, Body::Mapped(mapping, HEADER)));
    }
    let text = std::fs::read(path).map_err(|e| format!("{shown}: {}", plain(&e)))?;
    // The file changed between the stat and the read: what was read is what is used, and its
    // compiled form must not claim the older identity.
    let identity = if text.len() as u64 == identity.size() {
        identity
    } else {
        Identity::default()
    };
    let (entries, body) = compile(path, &text)?;
    let written = if identity == Identity::default() {
        None
    } else {
        compiled::write_compiled(path, cache, kind, &identity, entries, &body)
    };
    let info = ListInfo {
        path: path.to_path_buf(),
        identity,
        entries,
        compiled: Compiled::Built(written),
    };
    Ok((info, Body::Owned(body)))
}

/// The lines of a list, without comments, blank lines or line ends: (line number, text).
fn lines(text: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(index, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            // `#` starts a comment at the start of a line or after white space (not inside a
            // name, where it cannot be anyway).
            let end = line
                .iter()
                .enumerate()
                .find(|&(i, &b)| b == b'#' && (i == 0 || line[i - 1].is_ascii_whitespace()))
                .map_or(line.len(), |(i, _)| i);
            let line = line[..end].trim_ascii();
            (!line.is_empty()).then_some((index as u64 + 1, line))
        })
}

/// Names a hosts file lists for the machine itself, skipped in a blocklist in hosts format.
const HOSTS_FILE_SELF: [&str; 12] = [
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// Compiles a host list's text: the entry count and the `fst` map's bytes. An invalid line is
/// an error naming the file and line.
fn compile_hosts(path: &Path, text: &[u8]) -> Result<(u64, Vec<u8>), String> {
    let mut keys = Keys::default();
    let error = |line: u64, what: String| format!("{}:{line}: {what}", path.display());
    for (line, bytes) in lines(text) {
        let text = std::str::from_utf8(bytes).map_err(|_| error(line, "not UTF-8".into()))?;
        let mut words = text.split_ascii_whitespace();
        let first = words.next().unwrap_or_default();
        // A hosts file: `0.0.0.0 name [name...]`.
        if first.starts_with(|c: char| c.is_ascii_digit()) && first.parse::<IpAddr>().is_ok()
            || first.contains(':') && first.parse::<IpAddr>().is_ok()
        {
            for name in words {
                if HOSTS_FILE_SELF.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                    continue;
                }
                keys.push(name, line).map_err(|e| error(line, e))?;
            }
            continue;
        }
        if words.next().is_some() {
            return Err(error(
                line,
                format!("\"{text}\": one pattern per line (or a hosts-file line, `0.0.0.0 name`)"),
            ));
        }
        // Adblock's `||example.com^` is the domain and its subdomains.
        match first.strip_prefix("||").and_then(|p| p.strip_suffix('^')) {
            Some(domain) => keys.push(&format!(".{domain}"), line),
            None if first.starts_with("||") || first.starts_with("@@") => {
                return Err(error(
                    line,
                    format!("\"{first}\": of adblock filters only `||domain^` lines are read"),
                ))
            }
            None => keys.push(first, line),
        }
        .map_err(|e| error(line, e))?;
    }
    let entries = keys.entries.len() as u64;
    let bytes = keys
        .into_fst()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((entries, bytes))
}

/// Every pattern's key in one buffer (a million patterns make no million allocations), with
/// its place and line.
#[derive(Default)]
struct Keys {
    bytes: Vec<u8>,
    /// (start, length, line)
    entries: Vec<(u32, u32, u64)>,
}

impl Keys {
    /// Adds `pattern`'s key: its name backwards, lower case, then its kind.
    fn push(&mut self, pattern: &str, line: u64) -> Result<(), String> {
        let start = self.bytes.len();
        if !plain_key(pattern, &mut self.bytes) {
            // Not the plain form: the rule parser decides, and says what is wrong.
            self.bytes.truncate(start);
            self.bytes.extend_from_slice(&key(pattern)?);
        }
        let too_big = || "the list is too large".to_string();
        let offset = u32::try_from(start).map_err(|_| too_big())?;
        let length = u32::try_from(self.bytes.len() - start).map_err(|_| too_big())?;
        self.entries.push((offset, length, line));
        Ok(())
    }

    fn into_fst(mut self) -> Result<Vec<u8>, fst::Error> {
        let bytes = &self.bytes;
        let key = |&(start, length, _): &(u32, u32, u64)| {
            &bytes[start as usize..(start + length) as usize]
        };
        // Sorted by key, then line: of a pattern listed twice, the first line is kept.
        self.entries
            .sort_unstable_by(|a, b| key(a).cmp(key(b)).then(a.2.cmp(&b.2)));
        self.entries
            .dedup_by(|later, earlier| key(later) == key(earlier));
        let mut builder = fst::MapBuilder::memory();
        for entry in &self.entries {
            builder.insert(key(entry), entry.2)?;
        }
        builder.into_inner()
    }
}

/// Writes the key of a pattern in its plain form (`name`, `*.suffix`, `.domain` of letters,
/// digits, `-` and `_`, with an optional trailing dot) to `out`; `false` for anything else,
/// which [`key`] handles. The same names as `HostMatch::parse_host` accepts in these forms.
fn plain_key(pattern: &str, out: &mut Vec<u8>) -> bool {
    let (kind, base) = if let Some(base) = pattern.strip_prefix("*.") {
        (SUBDOMAINS, base)
    } else if let Some(base) = pattern.strip_prefix('.') {
        (DOMAIN, base)
    } else {
        (EXACT, pattern)
    };
    let base = base.strip_suffix('.').unwrap_or(base);
    if base.is_empty() || base.len() > crate::net::MAX_HOST_LEN {
        return false;
    }
    let mut label = 0;
    for &b in base.as_bytes() {
        match b {
            b'.' if label == 0 => return false,
            b'.' => label = 0,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' if label < 63 => label += 1,
            _ => return false,
        }
    }
    if label == 0 {
        return false;
    }
    out.extend(base.bytes().rev().map(|b| b.to_ascii_lowercase()));
    out.push(kind);
    true
}

/// The key of a pattern, by the rule parser: its name backwards, then its kind.
fn key(pattern: &str) -> Result<Vec<u8>, String> {
    let (base, kind) = match crate::rules::HostMatch::parse_host(pattern)? {
        crate::rules::HostMatch::Exact(name) => (name, EXACT),
        crate::rules::HostMatch::Subdomains(suffix) => (suffix[1..].to_string(), SUBDOMAINS),
        crate::rules::HostMatch::Domain(apex) => (apex, DOMAIN),
        _ => return Err(format!("\"{pattern}\" is not a host pattern")),
    };
    let mut key: Vec<u8> = base.bytes().rev().collect();
    key.push(kind);
    Ok(key)
}

/// Compiles an address list's text: the entry count and the ranges' bytes.
fn compile_cidrs(path: &Path, text: &[u8]) -> Result<(u64, Vec<u8>), String> {
    let mut v4: Vec<(u128, u128, u32)> = Vec::new();
    let mut v6: Vec<(u128, u128, u32)> = Vec::new();
    let mut entries = 0;
    for (line, bytes) in lines(text) {
        let error = |what: String| format!("{}:{line}: {what}", path.display());
        let text = std::str::from_utf8(bytes).map_err(|_| error("not UTF-8".into()))?;
        if text.split_ascii_whitespace().nth(1).is_some() {
            return Err(error(format!("\"{text}\": one address or prefix per line")));
        }
        let cidr = Cidr::parse(text).map_err(error)?;
        let (first, last) = cidr.range();
        let line = u32::try_from(line).map_err(|_| error("too many lines".into()))?;
        match cidr.network() {
            IpAddr::V4(_) => v4.push((first, last, line)),
            IpAddr::V6(_) => v6.push((first, last, line)),
        }
        entries += 1;
    }
    let mut body = Vec::new();
    let (v4, v6) = (disjoint(v4), disjoint(v6));
    body.extend_from_slice(&(v4.len() as u64).to_le_bytes());
    body.extend_from_slice(&(v6.len() as u64).to_le_bytes());
    for (first, last, line) in v4 {
        body.extend_from_slice(&(first as u32).to_le_bytes());
        body.extend_from_slice(&(last as u32).to_le_bytes());
        body.extend_from_slice(&line.to_le_bytes());
    }
    for (first, last, line) in v6 {
        body.extend_from_slice(&first.to_le_bytes());
        body.extend_from_slice(&last.to_le_bytes());
        body.extend_from_slice(&line.to_le_bytes());
    }
    Ok((entries, body))
}

/// Ranges sorted and merged where they overlap or touch (the merged range keeps the line of
/// the one that starts first).
fn disjoint(mut ranges: Vec<(u128, u128, u32)>) -> Vec<(u128, u128, u32)> {
    ranges.sort_unstable_by_key(|&(first, last, line)| (first, std::cmp::Reverse(last), line));
    let mut out: Vec<(u128, u128, u32)> = Vec::with_capacity(ranges.len());
    for (first, last, line) in ranges {
        match out.last_mut() {
            Some(previous) if first <= previous.1.saturating_add(1) => {
                previous.1 = previous.1.max(last);
            }
            _ => out.push((first, last, line)),
        }
    }
    out
}

fn plain(error: &io::Error) -> String {
    crate::errno::errno_text(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiled::hash_bytes;

    fn hosts(text: &str) -> HostList {
        let dir = std::env::temp_dir().join(format!("mcpr-lists-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{:x}.txt", hash_bytes(text.as_bytes())));
        std::fs::write(&path, text).unwrap();
        let list = HostList::load(&path, None).unwrap();
        let _ = std::fs::remove_file(&path);
        list
    }

    #[test]
    fn every_pattern_form_matches_as_a_host_rule_would() {
        let list = hosts(
            "# a comment\n\napi.example.com\r\n*.wild.test   # trailing comment\n.dot.test\n0.0.0.0 hosts.test other.test\n127.0.0.1 localhost\n||ads.test^\n",
        );
        assert_eq!(list.info.entries, 6);
        assert_eq!(list.find("api.example.com"), Some(3));
        assert_eq!(list.find("x.api.example.com"), None);
        assert_eq!(list.find("example.com"), None);
        assert_eq!(list.find("wild.test"), None);
        assert_eq!(list.find("a.wild.test"), Some(4));
        assert_eq!(list.find("a.b.wild.test"), Some(4));
        assert_eq!(list.find("dot.test"), Some(5));
        assert_eq!(list.find("a.dot.test"), Some(5));
        assert_eq!(list.find("xdot.test"), None);
        assert_eq!(list.find("hosts.test"), Some(6));
        assert_eq!(list.find("other.test"), Some(6));
        assert_eq!(list.find("localhost"), None);
        assert_eq!(list.find("ads.test"), Some(8));
        assert_eq!(list.find("x.ads.test"), Some(8));
        assert_eq!(list.find(""), None);
        assert_eq!(list.find("test"), None);
    }

    #[test]
    fn the_most_specific_pattern_names_the_line() {
        let list = hosts(".example.com\n*.api.example.com\nx.api.example.com\n");
        assert_eq!(list.find("x.api.example.com"), Some(3));
        assert_eq!(list.find("y.api.example.com"), Some(2));
        assert_eq!(list.find("example.com"), Some(1));
    }

    #[test]
    fn the_plain_form_makes_the_keys_the_rule_parser_makes() {
        for pattern in [
            "a.com",
            "A.Com",
            "*.a.com",
            ".a.com",
            "a.com.",
            "*.a.com.",
            ".a.com.",
            "x_y-z.a.com",
            "a..com",
            "a.com..",
            "*.",
            ".",
            "*",
            "a*b.com",
            "*.*.a.com",
            "",
            "-",
            "a.-.b",
            "::1",
            "10.0.0.1",
            "ä.com",
            &"a".repeat(64),
            &format!("{}.com", "a".repeat(63)),
            &format!("{}.com", "a.".repeat(126)),
        ] {
            let mut plain = Vec::new();
            let fast = plain_key(pattern, &mut plain).then_some(plain);
            match (fast, key(pattern)) {
                (Some(fast), Ok(slow)) => assert_eq!(fast, slow, "{pattern:?}"),
                (Some(_), Err(e)) => panic!("{pattern:?}: plain accepts, the parser says {e}"),
                (None, _) => {}
            }
        }
    }

    #[test]
    fn ranges_merge_and_are_found() {
        let merged = disjoint(vec![
            (10, 20, 1),
            (15, 30, 2),
            (31, 40, 3),
            (50, 60, 4),
            (0, 5, 5),
        ]);
        assert_eq!(merged, vec![(0, 5, 5), (10, 40, 1), (50, 60, 4)]);
        let at = |i: usize| merged[i];
        assert_eq!(find_range(3, at, 0), Some(5));
        assert_eq!(find_range(3, at, 6), None);
        assert_eq!(find_range(3, at, 40), Some(1));
        assert_eq!(find_range(3, at, 45), None);
        assert_eq!(find_range(3, at, 61), None);
        assert_eq!(find_range(0, at, 1), None);
    }
}
