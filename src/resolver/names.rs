//! Fixed-size hostname storage in atomic words, shared by the fake-address table and the
//! address-to-name memory. Names are at most 253 bytes, so 32 words hold any of them; storing
//! them inline (not behind pointers) keeps both tables bounded and free of `unsafe`.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

/// Words of name bytes per slot.
pub const NAME_WORDS: usize = 32;

/// A hostname copied out of a table onto the stack: no allocation on the connect path.
pub struct HostBuf {
    len: usize,
    bytes: [u8; NAME_WORDS * 8],
}

impl HostBuf {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

/// Writes `name` (at most `NAME_WORDS * 8` bytes) into `words`; the caller owns the slot.
pub fn store_name(words: &[AtomicU64], name: &str) {
    let bytes = name.as_bytes();
    for (i, word) in words.iter().take(NAME_WORDS).enumerate() {
        let mut chunk = [0u8; 8];
        let start = i * 8;
        if start < bytes.len() {
            let end = (start + 8).min(bytes.len());
            chunk[..end - start].copy_from_slice(&bytes[start..end]);
        }
        word.store(u64::from_le_bytes(chunk), Ordering::Relaxed);
    }
}

/// Reads `len` bytes of name back out of `words`.
pub fn load_name(words: &[AtomicU64], len: usize) -> HostBuf {
    let mut buf = HostBuf {
        len: len.min(NAME_WORDS * 8),
        bytes: [0; NAME_WORDS * 8],
    };
    for (i, word) in words.iter().take(buf.len.div_ceil(8)).enumerate() {
        buf.bytes[i * 8..i * 8 + 8].copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
    }
    buf
}

/// Whether `words` hold exactly `name` (of length `len`).
pub fn name_equals(words: &[AtomicU64], len: usize, name: &str) -> bool {
    len == name.len() && load_name(words, len).as_str() == name
}

/// FNV-1a: small, no allocation, and good enough to spread hostnames and addresses over slots.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    crate::hash::fnv1a(bytes)
}
