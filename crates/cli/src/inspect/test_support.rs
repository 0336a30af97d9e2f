//! What the module's tests share: a temporary directory, the system's `true` and loader, and
//! `SyntheticElf`, which builds small ELF files (any class, byte order and machine; program
//! headers, section names, notes, bytes far in) for the reader's edge cases.

#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use object::elf::{ET_DYN, PT_INTERP, PT_LOAD, PT_NOTE};

use super::elf::host_elf;
use super::path::resolve;
use super::{inspect, Inspection};

/// A fresh directory under the system temp dir, removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "mcp-redirect-elf-{}-{n}-{label}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes a file with the given mode.
    pub(super) fn write(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// Copies a file in, then sets its mode (after the copy, so setuid bits stay).
    pub(super) fn copy(&self, from: &Path, name: &str, mode: u32) -> PathBuf {
        let path = self.path(name);
        std::fs::copy(from, &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// `inspect`, with the error as its message (what most tests look at).
pub(super) fn inspect_path(path: &Path) -> Result<Inspection, String> {
    inspect(path.as_os_str(), Some(OsStr::new(SYSTEM_PATH))).map_err(|e| e.to_string())
}

pub(super) fn true_binary() -> PathBuf {
    resolve(
        OsStr::new("true"),
        Some(OsStr::new(SYSTEM_PATH)),
        Path::new("/"),
    )
    .unwrap()
}

/// The host's glibc loader, as /bin/true names it.
pub(super) fn host_loader() -> PathBuf {
    inspect_path(&true_binary()).unwrap().loader.unwrap()
}

/// A minimal ELF file: a header, program headers with contents, optional section headers
/// (names only) and bytes placed at given offsets.
pub(super) struct SyntheticElf {
    pub(super) wide: bool,
    pub(super) big: bool,
    pub(super) machine: u16,
    pub(super) segments: Vec<(u32, u32, Vec<u8>)>,
    pub(super) sections: Vec<&'static str>,
    /// Makes the file at least this long (zero-filled), for placing bytes far in.
    pub(super) min_len: usize,
    /// The offset of a writable PT_LOAD covering `min_len - 64 KiB ..`, if wanted.
    pub(super) late_data: Option<Vec<u8>>,
    /// Bytes written at an offset, after everything else.
    pub(super) patches: Vec<(usize, Vec<u8>)>,
}

impl SyntheticElf {
    pub(super) fn native() -> SyntheticElf {
        let (wide, big, machine) = host_elf().unwrap();
        SyntheticElf {
            wide,
            big,
            machine,
            segments: Vec::new(),
            sections: Vec::new(),
            min_len: 0,
            late_data: None,
            patches: Vec::new(),
        }
    }

    pub(super) fn interp(mut self, loader: &Path) -> Self {
        let mut bytes = loader.as_os_str().as_bytes().to_vec();
        bytes.push(0);
        self.segments.push((PT_INTERP, 4, bytes));
        self
    }

    fn u16(&self, out: &mut Vec<u8>, value: u16) {
        if self.big {
            out.extend_from_slice(&value.to_be_bytes())
        } else {
            out.extend_from_slice(&value.to_le_bytes())
        }
    }

    fn u32(&self, out: &mut Vec<u8>, value: u32) {
        if self.big {
            out.extend_from_slice(&value.to_be_bytes())
        } else {
            out.extend_from_slice(&value.to_le_bytes())
        }
    }

    fn word(&self, out: &mut Vec<u8>, value: u64) {
        match (self.wide, self.big) {
            (true, true) => out.extend_from_slice(&value.to_be_bytes()),
            (true, false) => out.extend_from_slice(&value.to_le_bytes()),
            (false, _) => self.u32(out, value as u32),
        }
    }

    pub(super) fn build(&self) -> Vec<u8> {
        let (ehsize, phentsize, shentsize) = if self.wide {
            (64, 56, 64)
        } else {
            (52, 32, 40)
        };
        let mut segments = self.segments.clone();
        if let Some(data) = &self.late_data {
            segments.push((PT_LOAD, 6, data.clone()));
        }
        let phnum = segments.len();
        let mut contents = Vec::new();
        let mut offsets = Vec::new();
        let contents_start = ehsize + phnum * phentsize;
        for (index, (_, _, bytes)) in segments.iter().enumerate() {
            if self.late_data.is_some() && index == phnum - 1 {
                offsets.push(self.min_len.max(contents_start + contents.len()));
            } else {
                offsets.push(contents_start + contents.len());
                contents.extend_from_slice(bytes);
                while contents.len() % 8 != 0 {
                    contents.push(0);
                }
            }
        }
        // Section names, then section headers: null, each name, .shstrtab.
        let mut names = vec![0u8];
        let mut name_offsets = Vec::new();
        for name in self.sections.iter().chain([&".shstrtab"]) {
            name_offsets.push(names.len());
            names.extend_from_slice(name.as_bytes());
            names.push(0);
        }
        let names_offset = contents_start + contents.len();
        let shoff = (names_offset + names.len()).div_ceil(8) * 8;
        let shnum = if self.sections.is_empty() {
            0
        } else {
            self.sections.len() + 2
        };

        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF");
        out.push(if self.wide { 2 } else { 1 });
        out.push(if self.big { 2 } else { 1 });
        out.push(1);
        out.extend_from_slice(&[0; 9]);
        self.u16(&mut out, ET_DYN);
        self.u16(&mut out, self.machine);
        self.u32(&mut out, 1);
        self.word(&mut out, 0); // e_entry
        self.word(&mut out, ehsize as u64); // e_phoff
        self.word(&mut out, if shnum == 0 { 0 } else { shoff as u64 });
        self.u32(&mut out, 0); // e_flags
        self.u16(&mut out, ehsize as u16);
        self.u16(&mut out, phentsize as u16);
        self.u16(&mut out, phnum as u16);
        self.u16(&mut out, shentsize as u16);
        self.u16(&mut out, shnum as u16);
        self.u16(&mut out, if shnum == 0 { 0 } else { (shnum - 1) as u16 });
        assert_eq!(out.len(), ehsize);
        for ((kind, flags, bytes), offset) in segments.iter().zip(&offsets) {
            let (offset, size) = (*offset as u64, bytes.len() as u64);
            let align = if *kind == PT_NOTE { 4 } else { 8 };
            self.u32(&mut out, *kind);
            if self.wide {
                self.u32(&mut out, *flags);
            }
            self.word(&mut out, offset);
            self.word(&mut out, offset); // vaddr
            self.word(&mut out, offset); // paddr
            self.word(&mut out, size);
            self.word(&mut out, size);
            if !self.wide {
                self.u32(&mut out, *flags);
            }
            self.word(&mut out, align);
        }
        out.extend_from_slice(&contents);
        out.extend_from_slice(&names);
        if shnum != 0 {
            out.resize(shoff, 0);
            out.resize(shoff + shentsize, 0); // the null section
            for (index, name_offset) in name_offsets.iter().enumerate() {
                let is_names = index == name_offsets.len() - 1;
                self.u32(&mut out, *name_offset as u32);
                self.u32(&mut out, if is_names { 3 } else { 1 }); // STRTAB or PROGBITS
                self.word(&mut out, 0); // flags
                self.word(&mut out, 0); // addr
                self.word(&mut out, if is_names { names_offset as u64 } else { 0 });
                self.word(&mut out, if is_names { names.len() as u64 } else { 0 });
                self.u32(&mut out, 0); // link
                self.u32(&mut out, 0); // info
                self.word(&mut out, 1); // addralign
                self.word(&mut out, 0); // entsize
            }
        }
        if let (Some(data), Some(offset)) = (&self.late_data, offsets.last()) {
            out.resize(*offset, 0);
            out.extend_from_slice(data);
        }
        if out.len() < self.min_len {
            out.resize(self.min_len, 0);
        }
        for (offset, bytes) in &self.patches {
            if out.len() < offset + bytes.len() {
                out.resize(offset + bytes.len(), 0);
            }
            out[*offset..offset + bytes.len()].copy_from_slice(bytes);
        }
        out
    }

    pub(super) fn write(&self, dir: &TempDir, name: &str) -> PathBuf {
        dir.write(name, &self.build(), 0o755)
    }
}

/// An ELF note owned by `owner`, 4-byte aligned.
pub(super) fn note(big: bool, owner: &str, kind: u32, desc: &[u8]) -> Vec<u8> {
    let word = |value: u32| {
        if big {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    let mut name = owner.as_bytes().to_vec();
    name.push(0);
    out.extend_from_slice(&word(name.len() as u32));
    out.extend_from_slice(&word(desc.len() as u32));
    out.extend_from_slice(&word(kind));
    out.extend_from_slice(&name);
    out.resize(out.len().div_ceil(4) * 4, 0);
    out.extend_from_slice(desc);
    out.resize(out.len().div_ceil(4) * 4, 0);
    out
}
