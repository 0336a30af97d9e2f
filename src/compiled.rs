//! The container of a compiled form: what a list (lists.rs) or a config's simple rules
//! (config) become so that a process maps or reads them instead of parsing text. A compiled
//! file names the source it was made from (device, inode, size, modification and change times),
//! carries a hash of its body, and must belong to root or to us and be writable by no one else;
//! one that fails any check is not used (the caller builds from the text and writes a new one).
//! It lives beside its source (`FILE.mcpr`, where the command writes it) or in the user's cache
//! (`$XDG_CACHE_HOME/mcp-redirect`, where the library writes it).
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys::Mapping;

/// The container's first bytes (the name stays from when lists were its only content).
const MAGIC: &[u8; 8] = b"MCPRLIST";
const FORMAT: u32 = 1;
/// Where the body starts.
pub const HEADER: usize = 96;
/// The compiled file's name beside its source.
const SUFFIX: &str = ".mcpr";

/// Whether this process writes compiled files beside their sources (the command, run by whoever
/// keeps the lists and the config), or only in the user's cache (the library, inside someone
/// else's program).
static BESIDE_SOURCES: AtomicBool = AtomicBool::new(false);

/// Lets compiled files be written beside their sources (for the command-line tool).
pub fn write_beside_sources() {
    BESIDE_SOURCES.store(true, Ordering::Relaxed);
}

/// Where the library writes compiled forms it had to build: the user's cache
/// (`$XDG_CACHE_HOME/mcp-redirect`, else `$HOME/.cache/mcp-redirect`), if there is one.
pub fn cache_dir(getenv: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let absolute = |name: &str| getenv(name).map(PathBuf::from).filter(|p| p.is_absolute());
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|dir| dir.join("mcp-redirect"))
}

/// Which version of a file a compiled form was made from: what `stat` says of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    pub fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The file's identity now, or the default (no file) if it cannot be read.
    pub fn now(path: &Path) -> Identity {
        std::fs::metadata(path)
            .map(|m| Identity::of(&m))
            .unwrap_or_default()
    }

    /// The file's size then.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// One word for it, for a reload check.
    pub fn word(&self) -> u64 {
        let mut h = Hash::new();
        h.bytes(&self.bytes());
        h.finish()
    }

    /// The seven words, little-endian, as the compiled file's header holds them.
    fn bytes(&self) -> [u8; 56] {
        let mut out = [0u8; 56];
        let words = [
            self.dev,
            self.ino,
            self.size,
            self.mtime.0 as u64,
            self.mtime.1 as u64,
            self.ctime.0 as u64,
            self.ctime.1 as u64,
        ];
        for (chunk, word) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}

/// What a compiled file holds: a file's form is only ever read as the kind it was written as.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `host_list` (lists.rs).
    Hosts = 1,
    /// A `cidr_list` (lists.rs).
    Cidrs = 2,
    /// A config file's simple `[[rules]]` tables and the rest of its text (config).
    Rules = 3,
}

/// Finds a valid compiled form of `source` (beside it, then in `cache`): its path, entry
/// count and mapping (the body starts at [`HEADER`]).
pub fn find(
    source: &Path,
    cache: Option<&Path>,
    kind: Kind,
    identity: &Identity,
) -> Option<(PathBuf, u64, Mapping)> {
    compiled_paths(source, cache)
        .into_iter()
        .find_map(|candidate| {
            let (entries, mapping) = map_compiled(&candidate, kind, identity)?;
            Some((candidate, entries, mapping))
        })
}

/// Where a compiled form of `list` (any source file) may be: beside it, then in the cache
/// directory.
fn compiled_paths(list: &Path, cache: Option<&Path>) -> Vec<PathBuf> {
    let mut beside = list.as_os_str().to_owned();
    beside.push(SUFFIX);
    let mut paths = vec![PathBuf::from(beside)];
    if let Some(dir) = cache {
        paths.push(dir.join(cache_name(list)));
    }
    paths
}

/// The compiled file's name in the cache: the list's name and a hash of its whole path.
fn cache_name(list: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut h = Hash::new();
    h.bytes(list.as_os_str().as_bytes());
    let name = list
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!("{name}-{:016x}{SUFFIX}", h.finish())
}

/// The compiled file at `path` mapped, if it is one we can trust for this version of the
/// list: ours or root's and writable by no one else, of this format and kind, made from a
/// list with `identity`, and with its body's hash. Returns the entry count and the mapping.
fn map_compiled(path: &Path, kind: Kind, identity: &Identity) -> Option<(u64, Mapping)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    let euid = crate::sys::euid();
    if !meta.is_file()
        || (meta.uid() != 0 && meta.uid() != euid)
        || meta.permissions().mode() & 0o022 != 0
        || (meta.len() as usize) < HEADER
    {
        return None;
    }
    let mapping = Mapping::of(&file, meta.len() as usize)?;
    let bytes = mapping.bytes();
    let header = parse_header(bytes)?;
    let body = &bytes[HEADER..];
    (header.kind == kind as u32
        && header.identity == identity.bytes()
        && header.body_len == body.len() as u64
        && header.body_hash == hash_bytes(body))
    .then_some((header.entries, mapping))
}

struct Header {
    kind: u32,
    identity: [u8; 56],
    entries: u64,
    body_len: u64,
    body_hash: u64,
}

fn parse_header(bytes: &[u8]) -> Option<Header> {
    if bytes.get(..8)? != MAGIC || read_u32(bytes, 8)? != FORMAT {
        return None;
    }
    Some(Header {
        kind: read_u32(bytes, 12)?,
        identity: bytes.get(16..72)?.try_into().ok()?,
        entries: read_u64(bytes, 72)?,
        body_len: read_u64(bytes, 80)?,
        body_hash: read_u64(bytes, 88)?,
    })
}

fn header(kind: Kind, identity: &Identity, entries: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(kind as u32).to_le_bytes());
    out.extend_from_slice(&identity.bytes());
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&hash_bytes(body).to_le_bytes());
    debug_assert_eq!(out.len(), HEADER);
    out
}

/// Writes the compiled form where the next process will look: beside the list (the command
/// only), else in the cache directory (created, private). A temporary file renamed into place,
/// so that a reader sees a whole file or none. `None` if it could be written nowhere.
pub fn write_compiled(
    list: &Path,
    cache: Option<&Path>,
    kind: Kind,
    identity: &Identity,
    entries: u64,
    body: &[u8],
) -> Option<PathBuf> {
    let head = header(kind, identity, entries, body);
    let paths = compiled_paths(list, cache);
    // Readable by no one who cannot read the source: a config's form holds its text, which may
    // hold a password.
    let mode = std::fs::metadata(list).map_or(0o600, |m| m.permissions().mode() & 0o644);
    let beside = BESIDE_SOURCES.load(Ordering::Relaxed);
    for (index, target) in paths.iter().enumerate() {
        if index == 0 && !beside {
            continue;
        }
        if index == 1 {
            if let Some(dir) = cache {
                let _ = std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir);
            }
        }
        if write_atomically(target, &head, body, mode).is_ok() {
            return Some(target.clone());
        }
    }
    None
}

fn write_atomically(target: &Path, head: &[u8], body: &[u8], mode: u32) -> io::Result<()> {
    let mut temporary = target.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temporary)?;
        file.write_all(head)?;
        file.write_all(body)?;
        drop(file);
        std::fs::rename(&temporary, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

pub fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// An I/O error's text without Rust's "(os error N)".
/// A fast 64-bit hash of a compiled body, read 32 bytes at a time in four lanes: it detects a
/// damaged or truncated file (whoever could forge one could write the list too; the file's
/// owner and mode are what keep others out), at memory speed, since every process that maps a
/// compiled file checks it whole.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut lanes = [K, K.rotate_left(16), K.rotate_left(32), K.rotate_left(48)];
    let mut chunks = bytes.chunks_exact(32);
    for chunk in &mut chunks {
        for (lane, word) in lanes.iter_mut().zip(chunk.chunks_exact(8)) {
            let word = u64::from_le_bytes(word.try_into().unwrap());
            *lane = (*lane ^ word).wrapping_mul(K).rotate_left(29);
        }
    }
    let mut h = Hash::new();
    for lane in lanes {
        h.word(lane);
    }
    h.bytes(chunks.remainder());
    h.word(bytes.len() as u64);
    h.finish()
}

/// FNV-1a over bytes and words, for the small hashes here.
struct Hash(u64);

impl Hash {
    fn new() -> Hash {
        Hash(crate::hash::FNV_OFFSET)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.0 = bytes
            .iter()
            .fold(self.0, |h, &b| crate::hash::fnv_step(h, b));
    }

    fn word(&mut self, word: u64) {
        self.bytes(&word.to_le_bytes());
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
