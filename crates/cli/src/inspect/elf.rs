//! The final ELF file: its loader (`PT_INTERP`), Go markers, class and machine. Owns: what to
//! read of it, within the kernel's limits, and what the answers are. Does not: follow `#!`
//! lines, or say what the answer means for `LD_PRELOAD` (the parent module does).
//!
//! The structures (file, program, section and note headers, in either class and byte order) are
//! the `object` crate's, read from a `ReadCache` over the file, which reads a range only when it
//! is asked for, and never past the file's end. Every range asked for is bounded here first:
//! headers, tables and notes by the size limits below; the scan for Go's build-info magic by
//! `GO_MAGIC_SCAN` and `GO_SEGMENT_SCAN`. So a multi-hundred-megabyte binary costs a few small
//! reads. Notes and the magic scan are read with plain `pread`s, not through the cache, which
//! keeps every range it reads until it is dropped. Program headers must be sound (the kernel
//! needs them too); section headers are optional, and any fault in them only means they are not
//! used. Malformed files give `Err`, never a panic.

#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fs::File;
use std::mem::size_of;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use object::elf::{
    FileHeader32, FileHeader64, Ident, ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB, EM_386,
    EM_AARCH64, EM_ARM, EM_RISCV, EM_X86_64, ET_DYN, ET_EXEC, PF_W, PN_XNUM, PT_INTERP, PT_LOAD,
    PT_NOTE, SHN_XINDEX,
};
use object::read::elf::{FileHeader, NoteHeader, ProgramHeader, SectionHeader};
use object::read::{ReadCache, ReadRef};
use object::{pod, Endian, Endianness, Pod};

use super::read_at;

/// Largest program-header table the kernel accepts (`load_elf_phdrs`).
const MAX_PHDR_TABLE: u64 = 64 * 1024;
/// Largest section-header table or section-name table read; bigger ones are not looked at.
const MAX_SECTION_TABLE: u64 = 1024 * 1024;
/// Largest `PT_NOTE` segment read.
const MAX_NOTE_SEGMENT: u64 = 64 * 1024;
/// Largest `PT_INTERP` the kernel accepts (`PATH_MAX`).
const MAX_INTERP: u64 = 4096;
/// How far into the file to look for Go's build-info magic when section headers are gone.
const GO_MAGIC_SCAN: u64 = 4 * 1024 * 1024;
/// How far into each writable `PT_LOAD` segment to look for it (Go's linker puts
/// `.go.buildinfo` at or near the start of its data, wherever that lies in the file).
const GO_SEGMENT_SCAN: u64 = 1024 * 1024;
/// Go's build-info header (`.go.buildinfo` starts with it).
const GO_BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// The file as `object` reads it: each range read once, when first asked for, and kept.
type Cache<'file> = ReadCache<&'file File>;

/// The ELF class, byte order and machine of the programs the library can be loaded into: this
/// tool's own (it is built with the library, for the same target).
pub(super) fn host_elf() -> Option<(bool, bool, u16)> {
    let wide = cfg!(target_pointer_width = "64");
    let big = cfg!(target_endian = "big");
    let machine = if cfg!(target_arch = "x86_64") {
        EM_X86_64
    } else if cfg!(target_arch = "aarch64") {
        EM_AARCH64
    } else if cfg!(target_arch = "x86") {
        EM_386
    } else if cfg!(target_arch = "arm") {
        EM_ARM
    } else if cfg!(target_arch = "riscv64") {
        EM_RISCV
    } else {
        return None;
    };
    Some((wide, big, machine))
}

/// What the headers say.
pub(super) struct ElfFacts {
    pub(super) loader: Option<PathBuf>,
    pub(super) go: bool,
    /// Another class, byte order or machine than this tool's.
    pub(super) foreign: bool,
}

/// Reads what matters from an ELF file: the loader, Go markers, class and machine.
pub(super) fn read_elf(file: &File) -> Result<ElfFacts, String> {
    let cache = ReadCache::new(file);
    // `e_ident`: the magic, the class (`EI_CLASS`, 4), the byte order (`EI_DATA`, 5)...
    let ident = (&cache)
        .read_bytes_at(0, size_of::<Ident>() as u64)
        .map_err(|()| "truncated ELF header")?;
    let wide = match ident[4] {
        ELFCLASS32 => false,
        ELFCLASS64 => true,
        other => return Err(format!("unknown ELF class {other}")),
    };
    let endian = match ident[5] {
        ELFDATA2LSB => Endianness::Little,
        ELFDATA2MSB => Endianness::Big,
        other => return Err(format!("unknown ELF byte order {other}")),
    };
    // Not `FileHeader::parse`: it also refuses an `EI_VERSION` other than 1, which the kernel
    // does not look at.
    if wide {
        read_class::<FileHeader64<Endianness>>(file, &cache, endian)
    } else {
        read_class::<FileHeader32<Endianness>>(file, &cache, endian)
    }
}

/// `read_elf` for one ELF class, once its byte order is known.
fn read_class<Elf: FileHeader<Endian = Endianness>>(
    file: &File,
    cache: &Cache<'_>,
    endian: Endianness,
) -> Result<ElfFacts, String> {
    let header: &Elf = cache.read_at(0).map_err(|()| "truncated ELF header")?;
    let e_type = header.e_type(endian);
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(format!(
            "an ELF file, but not an executable (type {e_type})"
        ));
    }
    let this = (
        header.is_type_64(),
        endian.is_big_endian(),
        header.e_machine(endian),
    );
    let foreign = host_elf().is_some_and(|host| host != this);

    let sections = Sections::read(cache, header, endian);
    let phnum = if header.e_phnum(endian) == PN_XNUM {
        sections
            .as_ref()
            .map(|s| u64::from(s.zeroth_info))
            .ok_or("the program-header count is in a section header that cannot be read")?
    } else {
        header.e_phnum(endian).into()
    };
    let segments = read_segments(cache, header, endian, phnum)?;

    let mut loader = None;
    if let Some(interp) = segments.iter().find(|s| s.p_type(endian) == PT_INTERP) {
        let size: u64 = interp.p_filesz(endian).into();
        if !(2..=MAX_INTERP).contains(&size) {
            return Err(format!("PT_INTERP of {size} bytes"));
        }
        let bytes = interp
            .data(endian, cache)
            .map_err(|()| past_the_end("PT_INTERP"))?;
        // As the kernel: the last byte must be the NUL, and the name ends at the first.
        let Some((&0, name)) = bytes.split_last() else {
            return Err("PT_INTERP is not NUL-terminated".into());
        };
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        loader = Some(PathBuf::from(OsStr::from_bytes(name)));
    }

    let go = has_go_note::<Elf>(file, endian, &segments)
        || sections.is_some_and(|s| s.has_go_section(endian))
        || has_go_magic_in_data::<Elf>(file, endian, &segments)
        || has_go_magic_in(file, 0, GO_MAGIC_SCAN);
    Ok(ElfFacts {
        loader,
        go,
        foreign,
    })
}

fn past_the_end(what: &str) -> String {
    format!("truncated: {what} runs past the end of the file")
}

/// The program headers, `phnum` of them at `e_phoff`, `e_phentsize` bytes apart (at least an
/// entry's size; the table at most `MAX_PHDR_TABLE`, as the kernel wants).
fn read_segments<'data, Elf: FileHeader<Endian = Endianness>>(
    cache: &'data Cache<'_>,
    header: &Elf,
    endian: Endianness,
    phnum: u64,
) -> Result<Vec<&'data Elf::ProgramHeader>, String> {
    if phnum == 0 {
        return Err("no program headers".into());
    }
    let entry_size = u64::from(header.e_phentsize(endian));
    if entry_size < size_of::<Elf::ProgramHeader>() as u64 {
        return Err(format!("program headers of {entry_size} bytes"));
    }
    let table_size = entry_size
        .checked_mul(phnum)
        .filter(|&size| size <= MAX_PHDR_TABLE)
        .ok_or("the program-header table is larger than the kernel accepts")?;
    let table = cache
        .read_bytes_at(header.e_phoff(endian).into(), table_size)
        .map_err(|()| past_the_end("the program-header table"))?;
    entries(table, entry_size).ok_or_else(|| "malformed program header".into())
}

/// A table's entries, one every `stride` bytes; `None` if `stride` is shorter than an entry.
fn entries<T: Pod>(table: &[u8], stride: u64) -> Option<Vec<&T>> {
    let stride = usize::try_from(stride)
        .ok()
        .filter(|&stride| stride >= size_of::<T>() && stride > 0)?;
    table
        .chunks_exact(stride)
        .map(|entry| pod::from_bytes::<T>(entry).ok().map(|(value, _)| value))
        .collect()
}

/// The section headers and their name table, when present and sound.
struct Sections<'data, Elf: FileHeader> {
    headers: Vec<&'data Elf::SectionHeader>,
    names: &'data [u8],
    /// Section 0's `sh_info`: the real program-header count when `e_phnum` is `PN_XNUM`.
    zeroth_info: u32,
}

impl<'data, Elf: FileHeader<Endian = Endianness>> Sections<'data, Elf> {
    fn read(cache: &'data Cache<'_>, header: &Elf, endian: Endianness) -> Option<Self> {
        let entry_size = u64::from(header.e_shentsize(endian));
        let offset: u64 = header.e_shoff(endian).into();
        if offset == 0 || entry_size < size_of::<Elf::SectionHeader>() as u64 {
            return None;
        }
        let zeroth: &Elf::SectionHeader = cache.read_at(offset).ok()?;
        // Huge counts and indexes overflow into section 0 (`SHN_XINDEX` rules).
        let count = match header.e_shnum(endian) {
            0 => zeroth.sh_size(endian).into(),
            count => u64::from(count),
        };
        let names_index = match header.e_shstrndx(endian) {
            SHN_XINDEX => zeroth.sh_link(endian),
            index => index.into(),
        };
        let table_size = entry_size
            .checked_mul(count)
            .filter(|&size| size <= MAX_SECTION_TABLE)?;
        let table = cache.read_bytes_at(offset, table_size).ok()?;
        let headers: Vec<&Elf::SectionHeader> = entries(table, entry_size)?;
        // Read whole (bounded), whatever its `sh_type` says: a name table that cannot be read
        // means no section headers at all.
        let names_section = headers.get(usize::try_from(names_index).ok()?)?;
        let names_size: u64 = names_section.sh_size(endian).into();
        if names_size > MAX_SECTION_TABLE {
            return None;
        }
        let names = cache
            .read_bytes_at(names_section.sh_offset(endian).into(), names_size)
            .ok()?;
        Some(Sections {
            headers,
            names,
            zeroth_info: zeroth.sh_info(endian),
        })
    }

    /// A section only Go's linker makes: `.go.buildinfo`, `.gopclntab` (or
    /// `.data.rel.ro.gopclntab` in PIE builds), `.gosymtab`, `.note.go.buildid`. A name runs
    /// to its NUL or the table's end (object's `StringTable` would drop a name the table cuts
    /// short; a Go binary missed would be preloaded, and its connections never seen).
    fn has_go_section(&self, endian: Endianness) -> bool {
        self.headers.iter().any(|section| {
            let Some(name) = usize::try_from(section.sh_name(endian))
                .ok()
                .and_then(|start| self.names.get(start..))
            else {
                return false;
            };
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            name == b".go.buildinfo"
                || name.ends_with(b".gopclntab")
                || name == b".gosymtab"
                || name == b".note.go.buildid"
        })
    }
}

/// A note owned by "Go" in a `PT_NOTE` segment: Go's build ID (type 4), which its linker puts
/// in every ELF binary; other Go note types count too.
fn has_go_note<Elf: FileHeader<Endian = Endianness>>(
    file: &File,
    endian: Endianness,
    segments: &[&Elf::ProgramHeader],
) -> bool {
    segments
        .iter()
        .filter(|s| s.p_type(endian) == PT_NOTE)
        .any(|segment| {
            let size = segment.p_filesz(endian).into().min(MAX_NOTE_SEGMENT);
            let Ok(notes) = read_at(file, segment.p_offset(endian).into(), size) else {
                return false;
            };
            if (notes.len() as u64) < size {
                return false;
            }
            let align = if segment.p_align(endian).into() == 8 {
                8
            } else {
                4
            };
            has_go_owner::<Elf>(&notes, endian, align)
        })
}

/// Whether a note in `notes` (one `PT_NOTE` segment's bytes, notes `align`ed) is owned by
/// "Go". Not object's `NoteIterator`: it refuses a note whose descriptor runs past the segment
/// before giving its owner; here the owner is read first, and counts (a Go binary missed would
/// be preloaded, and its connections never seen).
fn has_go_owner<Elf: FileHeader<Endian = Endianness>>(
    notes: &[u8],
    endian: Endianness,
    align: usize,
) -> bool {
    let mut at = 0usize;
    while let Some((header, _)) = notes
        .get(at..)
        .and_then(|rest| pod::from_bytes::<Elf::NoteHeader>(rest).ok())
    {
        let name_start = at + size_of::<Elf::NoteHeader>();
        let Some(name_end) = name_start.checked_add(header.n_namesz(endian) as usize) else {
            return false;
        };
        let Some(name) = notes.get(name_start..name_end) else {
            return false;
        };
        if name.split(|&b| b == 0).next() == Some(b"Go") {
            return true;
        }
        let next = align_up(name_end, align)
            .and_then(|desc_start| desc_start.checked_add(header.n_descsz(endian) as usize))
            .and_then(|desc_end| align_up(desc_end, align));
        match next {
            Some(next) if next > at => at = next,
            _ => return false,
        }
    }
    false
}

fn align_up(value: usize, align: usize) -> Option<usize> {
    value.checked_add(align - 1).map(|v| v & !(align - 1))
}

/// Go's build-info magic near the start of a writable `PT_LOAD` segment, where Go's linker puts
/// `.go.buildinfo` (first with its internal linker; after `.data` with an external one): found
/// even when section headers and notes are stripped and the file is large.
fn has_go_magic_in_data<Elf: FileHeader<Endian = Endianness>>(
    file: &File,
    endian: Endianness,
    segments: &[&Elf::ProgramHeader],
) -> bool {
    segments
        .iter()
        .filter(|s| s.p_type(endian) == PT_LOAD && s.p_flags(endian) & PF_W != 0)
        .any(|segment| {
            let size = segment.p_filesz(endian).into().min(GO_SEGMENT_SCAN);
            has_go_magic_in(file, segment.p_offset(endian).into(), size)
        })
}

/// Go's build-info magic within `len` bytes from `start`, read in chunks.
fn has_go_magic_in(file: &File, start: u64, len: u64) -> bool {
    const CHUNK: u64 = 256 * 1024;
    let overlap = GO_BUILDINFO_MAGIC.len() as u64 - 1;
    let end = start.saturating_add(len);
    let mut offset = start;
    while offset < end {
        let want = CHUNK.min(end - offset);
        let Ok(bytes) = read_at(file, offset, want) else {
            return false;
        };
        if contains(&bytes, GO_BUILDINFO_MAGIC) {
            return true;
        }
        if (bytes.len() as u64) < want || want < CHUNK {
            return false;
        }
        offset += CHUNK - overlap;
    }
    false
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::path::Path;

    use super::super::test_support::{
        host_loader, inspect_path, note, true_binary, SyntheticElf, TempDir,
    };
    use super::super::{read_at, Obstacle};
    use super::*;

    #[test]
    fn a_synthetic_glibc_program_honours_preload() {
        let dir = TempDir::new("synthetic");
        let loader = host_loader();
        let plain = SyntheticElf::native().interp(&loader).write(&dir, "plain");
        let found = inspect_path(&plain).unwrap();
        assert!(found.honours_preload(), "{:?}", found.obstacles);
        assert_eq!(found.loader, Some(loader.clone()));

        // With ordinary sections and a GNU note: still fine.
        let mut elf = SyntheticElf::native().interp(&loader);
        elf.sections = vec![".text", ".data", ".note.gnu.build-id"];
        elf.segments
            .push((PT_NOTE, 4, note(elf.big, "GNU", 3, &[0xab; 20])));
        assert!(inspect_path(&elf.write(&dir, "sections"))
            .unwrap()
            .honours_preload());

        // A loader that does not exist: exec would fail.
        let missing = SyntheticElf::native()
            .interp(Path::new("/nonexistent/ld.so"))
            .write(&dir, "missing-loader");
        assert!(inspect_path(&missing)
            .unwrap_err()
            .contains("does not exist"));
    }

    #[test]
    fn go_binaries_are_found_by_section_note_or_magic() {
        let dir = TempDir::new("go");
        let loader = host_loader();

        for section in [
            ".go.buildinfo",
            ".gopclntab",
            ".data.rel.ro.gopclntab",
            ".note.go.buildid",
        ] {
            let mut elf = SyntheticElf::native().interp(&loader);
            elf.sections = vec![".text", section, ".data"];
            let found = inspect_path(&elf.write(&dir, "go-section")).unwrap();
            assert_eq!(found.obstacles, [Obstacle::Go], "{section}");
        }

        // Statically linked Go: both.
        let mut elf = SyntheticElf::native();
        elf.sections = vec![".go.buildinfo"];
        elf.segments.push((PT_LOAD, 5, vec![0; 16]));
        let found = inspect_path(&elf.write(&dir, "go-static")).unwrap();
        assert_eq!(found.obstacles, [Obstacle::Static, Obstacle::Go]);

        // Section headers stripped: the build-id note ("Go", type 4).
        let mut elf = SyntheticElf::native().interp(&loader);
        let mut notes = note(elf.big, "GNU", 3, &[1; 20]);
        notes.extend(note(elf.big, "Go", 4, b"abcdef/ghijkl"));
        elf.segments.push((PT_NOTE, 4, notes));
        assert_eq!(
            inspect_path(&elf.write(&dir, "go-note")).unwrap().obstacles,
            [Obstacle::Go]
        );

        // Stripped and no note: the build-info magic near the start of the file...
        let mut elf = SyntheticElf::native().interp(&loader);
        elf.patches
            .push((1024 * 1024 + 3, GO_BUILDINFO_MAGIC.to_vec()));
        assert_eq!(
            inspect_path(&elf.write(&dir, "go-magic"))
                .unwrap()
                .obstacles,
            [Obstacle::Go]
        );

        // ... straddling two scan chunks ...
        let mut elf = SyntheticElf::native().interp(&loader);
        elf.patches
            .push((256 * 1024 - 20, GO_BUILDINFO_MAGIC.to_vec()));
        assert_eq!(
            inspect_path(&elf.write(&dir, "go-straddle"))
                .unwrap()
                .obstacles,
            [Obstacle::Go]
        );

        // ... or at the start of a writable segment far into the file.
        let far = 6 * 1024 * 1024;
        let mut elf = SyntheticElf::native().interp(&loader);
        elf.min_len = far;
        // (300 KiB in, as with external linking, where `.data` comes first.)
        let mut data = vec![0; 300 * 1024];
        data.extend_from_slice(GO_BUILDINFO_MAGIC);
        data.resize(data.len() + 64, 0);
        elf.late_data = Some(data);
        assert_eq!(
            inspect_path(&elf.write(&dir, "go-far")).unwrap().obstacles,
            [Obstacle::Go]
        );

        // The same magic far in but outside any writable segment is beyond the bounded scan.
        let mut elf = SyntheticElf::native().interp(&loader);
        elf.patches.push((far, GO_BUILDINFO_MAGIC.to_vec()));
        assert!(inspect_path(&elf.write(&dir, "not-go"))
            .unwrap()
            .honours_preload());
    }

    /// A note's owner is read before its descriptor: a Go note whose descriptor runs past its
    /// segment still marks a Go binary (object's `NoteIterator` would refuse the note first).
    #[test]
    fn a_go_note_cut_short_still_counts() {
        let dir = TempDir::new("go-note-cut");
        let mut elf = SyntheticElf::native().interp(&host_loader());
        let mut go_note = note(elf.big, "Go", 4, b"id");
        let descsz = if elf.big {
            0x1000u32.to_be_bytes()
        } else {
            0x1000u32.to_le_bytes()
        };
        go_note[4..8].copy_from_slice(&descsz);
        elf.segments.push((PT_NOTE, 4, go_note));
        assert_eq!(
            inspect_path(&elf.write(&dir, "go-note-cut"))
                .unwrap()
                .obstacles,
            [Obstacle::Go]
        );
    }

    #[test]
    fn musl_programs_are_musl() {
        let dir = TempDir::new("musl");
        let loader = dir.write("ld-musl-x86_64.so.1", b"", 0o755);
        let elf = SyntheticElf::native().interp(&loader).write(&dir, "musl");
        let found = inspect_path(&elf).unwrap();
        assert_eq!(found.obstacles, [Obstacle::Musl]);
        assert_eq!(found.loader, Some(loader));
    }

    #[test]
    fn foreign_classes_byte_orders_and_machines_are_read_and_flagged() {
        let dir = TempDir::new("foreign");
        let (wide, big, machine) = host_elf().unwrap();
        let loader = Path::new("/lib/ld-linux.so.2");
        let variants = [
            (!wide, big, machine),
            (wide, !big, machine),
            (wide, big, if machine == 62 { 183 } else { 62 }),
            (!wide, !big, 8), // 32-bit big-endian MIPS
        ];
        for (index, (wide, big, machine)) in variants.into_iter().enumerate() {
            let mut elf = SyntheticElf::native().interp(loader);
            (elf.wide, elf.big, elf.machine) = (wide, big, machine);
            let found = inspect_path(&elf.write(&dir, &format!("plain-{index}"))).unwrap();
            assert_eq!(found.obstacles, [Obstacle::Architecture], "{index}");
            assert_eq!(found.loader.as_deref(), Some(loader));

            // The whole reader works in every layout: sections, notes, no PT_INTERP.
            let mut elf = SyntheticElf::native();
            (elf.wide, elf.big, elf.machine) = (wide, big, machine);
            elf.sections = vec![".gopclntab"];
            elf.segments.push((PT_LOAD, 5, vec![0; 8]));
            let found = inspect_path(&elf.write(&dir, &format!("go-{index}"))).unwrap();
            assert_eq!(
                found.obstacles,
                [Obstacle::Static, Obstacle::Go, Obstacle::Architecture],
                "{index}"
            );
            let mut elf = SyntheticElf::native().interp(loader);
            (elf.wide, elf.big, elf.machine) = (wide, big, machine);
            elf.segments.push((PT_NOTE, 4, note(big, "Go", 4, b"id")));
            let found = inspect_path(&elf.write(&dir, &format!("note-{index}"))).unwrap();
            assert_eq!(
                found.obstacles,
                [Obstacle::Go, Obstacle::Architecture],
                "{index}"
            );
        }
    }

    #[test]
    fn malformed_elf_files_are_errors() {
        let dir = TempDir::new("malformed");
        let loader = host_loader();
        let good = SyntheticElf::native().interp(&loader).build();
        let wide = host_elf().unwrap().0;
        let (phoff_at, phnum_at) = if wide { (32, 56) } else { (28, 44) };

        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated header", good[..30].to_vec()),
            ("truncated program headers", good[..80].to_vec()),
            ("bad class", {
                let mut b = good.clone();
                b[4] = 7;
                b
            }),
            ("relocatable object", {
                let mut b = good.clone();
                b[16] = 1;
                b[17] = 0;
                b
            }),
            ("program headers past the end", {
                let mut b = good.clone();
                b[phoff_at..phoff_at + 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
                b
            }),
            ("huge program-header count", {
                let mut b = good.clone();
                b[phnum_at..phnum_at + 2].copy_from_slice(&0xfff0u16.to_le_bytes());
                b
            }),
            ("no program headers", {
                let mut b = good.clone();
                b[phnum_at..phnum_at + 2].copy_from_slice(&[0, 0]);
                b
            }),
        ];
        for (what, bytes) in cases {
            let path = dir.write("bad", &bytes, 0o755);
            assert!(inspect_path(&path).is_err(), "{what} accepted");
        }
        // A PT_INTERP that is not NUL-terminated.
        let mut elf = SyntheticElf::native();
        elf.segments.push((PT_INTERP, 4, b"/lib/ld.so".to_vec()));
        assert!(inspect_path(&elf.write(&dir, "interp"))
            .unwrap_err()
            .contains("NUL"));
    }

    #[test]
    fn corrupted_files_never_panic() {
        let dir = TempDir::new("fuzz");
        let real = read_at(&File::open(true_binary()).unwrap(), 0, 64 * 1024).unwrap();
        let loader = host_loader();
        let mut synthetic = SyntheticElf::native().interp(&loader);
        synthetic.sections = vec![".text", ".go.buildinfo"];
        synthetic
            .segments
            .push((PT_NOTE, 4, note(synthetic.big, "GNU", 3, &[1; 20])));
        let synthetic = synthetic.build();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for original in [real, synthetic] {
            // Every truncation of the first kilobyte, then random corruptions.
            for len in (0..1024.min(original.len())).step_by(7) {
                let path = dir.write("fuzzed", &original[..len], 0o755);
                let _ = inspect_path(&path);
            }
            for _ in 0..400 {
                let mut bytes = original.clone();
                for _ in 0..1 + next() % 8 {
                    // Mostly the headers, where the structure is.
                    let limit = if next() % 4 == 0 {
                        bytes.len()
                    } else {
                        256.min(bytes.len())
                    };
                    let at = (next() as usize) % limit;
                    bytes[at] = next() as u8;
                }
                let path = dir.write("fuzzed", &bytes, 0o755);
                let _ = inspect_path(&path);
            }
        }
    }
}
