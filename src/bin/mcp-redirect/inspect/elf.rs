//! The final ELF file: its loader (`PT_INTERP`), Go markers, class and machine. Owns: reading
//! them, within the kernel's limits. Does not: follow `#!` lines, or say what the answer means
//! for `LD_PRELOAD` (the parent module does).
//!
//! Every read is bounded: headers, tables and notes by the size limits below; the scan for Go's
//! build-info magic by `GO_MAGIC_SCAN` and `GO_SEGMENT_SCAN`. Program headers must be sound (the
//! kernel needs them too); section headers are optional, and any fault in them only means they
//! are not used. Malformed files give `Err`, never a panic.

#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

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

pub(super) const PT_LOAD: u32 = 1;
pub(super) const PT_INTERP: u32 = 3;
pub(super) const PT_NOTE: u32 = 4;
const PF_W: u32 = 2;
const ET_EXEC: u16 = 2;
pub(super) const ET_DYN: u16 = 3;
const PN_XNUM: u64 = 0xffff;
const SHN_XINDEX: u64 = 0xffff;

/// The ELF class, byte order and machine of the programs the library can be loaded into: this
/// tool's own (it is built with the library, for the same target).
pub(super) fn host_elf() -> Option<(bool, bool, u16)> {
    let wide = cfg!(target_pointer_width = "64");
    let big = cfg!(target_endian = "big");
    let machine = if cfg!(target_arch = "x86_64") {
        62
    } else if cfg!(target_arch = "aarch64") {
        183
    } else if cfg!(target_arch = "x86") {
        3
    } else if cfg!(target_arch = "arm") {
        40
    } else if cfg!(target_arch = "riscv64") {
        243
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

/// Reads fields of one ELF file's class and byte order.
#[derive(Clone, Copy)]
struct Layout {
    wide: bool,
    big: bool,
}

impl Layout {
    fn u16(self, bytes: &[u8], at: usize) -> Option<u16> {
        let raw: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.big {
            u16::from_be_bytes(raw)
        } else {
            u16::from_le_bytes(raw)
        })
    }

    fn u32(self, bytes: &[u8], at: usize) -> Option<u32> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.big {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        })
    }

    fn u64(self, bytes: &[u8], at: usize) -> Option<u64> {
        let raw: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
        Some(if self.big {
            u64::from_be_bytes(raw)
        } else {
            u64::from_le_bytes(raw)
        })
    }

    /// An address-sized field: 8 bytes in ELF64, 4 in ELF32.
    fn word(self, bytes: &[u8], at: usize) -> Option<u64> {
        if self.wide {
            self.u64(bytes, at)
        } else {
            self.u32(bytes, at).map(u64::from)
        }
    }
}

/// The file header fields used here (ELF64 and ELF32 alike, widened).
struct Header {
    e_type: u16,
    machine: u16,
    phoff: u64,
    phentsize: u64,
    phnum: u64,
    shoff: u64,
    shentsize: u64,
    shnum: u64,
    shstrndx: u64,
}

impl Header {
    fn parse(layout: Layout, bytes: &[u8]) -> Option<Header> {
        // Offsets after e_entry differ between the classes by the width of three words.
        let (phoff, shoff, rest) = if layout.wide {
            (32, 40, 52)
        } else {
            (28, 32, 40)
        };
        Some(Header {
            e_type: layout.u16(bytes, 16)?,
            machine: layout.u16(bytes, 18)?,
            phoff: layout.word(bytes, phoff)?,
            shoff: layout.word(bytes, shoff)?,
            // e_ehsize at rest, then e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx.
            phentsize: layout.u16(bytes, rest + 2)?.into(),
            phnum: layout.u16(bytes, rest + 4)?.into(),
            shentsize: layout.u16(bytes, rest + 6)?.into(),
            shnum: layout.u16(bytes, rest + 8)?.into(),
            shstrndx: layout.u16(bytes, rest + 10)?.into(),
        })
    }
}

/// One program header, widened.
struct Segment {
    kind: u32,
    flags: u32,
    offset: u64,
    filesz: u64,
    align: u64,
}

impl Segment {
    fn parse(layout: Layout, bytes: &[u8]) -> Option<Segment> {
        if layout.wide {
            Some(Segment {
                kind: layout.u32(bytes, 0)?,
                flags: layout.u32(bytes, 4)?,
                offset: layout.u64(bytes, 8)?,
                filesz: layout.u64(bytes, 32)?,
                align: layout.u64(bytes, 48)?,
            })
        } else {
            Some(Segment {
                kind: layout.u32(bytes, 0)?,
                offset: layout.u32(bytes, 4)?.into(),
                filesz: layout.u32(bytes, 16)?.into(),
                flags: layout.u32(bytes, 24)?,
                align: layout.u32(bytes, 28)?.into(),
            })
        }
    }
}

/// One section header, widened: `sh_name`, `sh_offset`, `sh_size`, `sh_link` and `sh_info`.
struct Section {
    name: u32,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
}

impl Section {
    fn parse(layout: Layout, bytes: &[u8]) -> Option<Section> {
        let (offset, size, link, info) = if layout.wide {
            (24, 32, 40, 44)
        } else {
            (16, 20, 24, 28)
        };
        Some(Section {
            name: layout.u32(bytes, 0)?,
            offset: layout.word(bytes, offset)?,
            size: layout.word(bytes, size)?,
            link: layout.u32(bytes, link)?,
            info: layout.u32(bytes, info)?,
        })
    }
}

/// Reads what matters from an ELF file: the loader, Go markers, class and machine. Program
/// headers must be sound (the kernel needs them too); section headers are optional, and any
/// fault in them only means they are not used.
pub(super) fn read_elf(file: &File) -> Result<ElfFacts, String> {
    let ident = read_at(file, 0, 64).map_err(|e| format!("cannot read: {e}"))?;
    if ident.len() < 16 {
        return Err("truncated ELF header".into());
    }
    let wide = match ident[4] {
        1 => false,
        2 => true,
        other => return Err(format!("unknown ELF class {other}")),
    };
    let big = match ident[5] {
        1 => false,
        2 => true,
        other => return Err(format!("unknown ELF byte order {other}")),
    };
    let layout = Layout { wide, big };
    let header = Header::parse(layout, &ident).ok_or("truncated ELF header")?;
    if header.e_type != ET_EXEC && header.e_type != ET_DYN {
        return Err(format!(
            "an ELF file, but not an executable (type {})",
            header.e_type
        ));
    }
    let foreign = host_elf().is_some_and(|host| host != (wide, big, header.machine));

    let sections = SectionTable::read(file, layout, &header);
    let phnum = if header.phnum == PN_XNUM {
        sections
            .as_ref()
            .map(|s| u64::from(s.zeroth_info))
            .ok_or("the program-header count is in a section header that cannot be read")?
    } else {
        header.phnum
    };
    let segments = read_segments(file, layout, &header, phnum)?;

    let mut loader = None;
    if let Some(interp) = segments.iter().find(|s| s.kind == PT_INTERP) {
        if interp.filesz < 2 || interp.filesz > MAX_INTERP {
            return Err(format!("PT_INTERP of {} bytes", interp.filesz));
        }
        let bytes = read_exact_at(file, interp.offset, interp.filesz, "PT_INTERP")?;
        let Some((&0, name)) = bytes.split_last() else {
            return Err("PT_INTERP is not NUL-terminated".into());
        };
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        loader = Some(PathBuf::from(OsStr::from_bytes(name)));
    }

    let go = has_go_note(file, layout, &segments)
        || sections.as_ref().is_some_and(SectionTable::has_go_section)
        || has_go_magic_in_data(file, &segments)
        || has_go_magic_in(file, 0, GO_MAGIC_SCAN);
    Ok(ElfFacts {
        loader,
        go,
        foreign,
    })
}

fn read_segments(
    file: &File,
    layout: Layout,
    header: &Header,
    phnum: u64,
) -> Result<Vec<Segment>, String> {
    let min_size = if layout.wide { 56 } else { 32 };
    if phnum == 0 {
        return Err("no program headers".into());
    }
    if header.phentsize < min_size {
        return Err(format!("program headers of {} bytes", header.phentsize));
    }
    let table_size = header
        .phentsize
        .checked_mul(phnum)
        .filter(|&size| size <= MAX_PHDR_TABLE)
        .ok_or("the program-header table is larger than the kernel accepts")?;
    let table = read_exact_at(file, header.phoff, table_size, "the program-header table")?;
    table
        .chunks_exact(header.phentsize as usize)
        .map(|entry| Segment::parse(layout, entry).ok_or_else(|| "malformed program header".into()))
        .collect()
}

/// The section headers and their name table, when present and sound.
struct SectionTable {
    sections: Vec<Section>,
    names: Vec<u8>,
    /// Section 0's `sh_info`: the real program-header count when `e_phnum` is `PN_XNUM`.
    zeroth_info: u32,
}

impl SectionTable {
    fn read(file: &File, layout: Layout, header: &Header) -> Option<SectionTable> {
        let min_size = if layout.wide { 64 } else { 40 };
        if header.shoff == 0 || header.shentsize < min_size {
            return None;
        }
        let entry = usize::try_from(header.shentsize).ok()?;
        let zeroth_bytes = read_exact_at(file, header.shoff, header.shentsize, "").ok()?;
        let zeroth = Section::parse(layout, &zeroth_bytes)?;
        // Huge counts and indexes overflow into section 0 (`SHN_XINDEX` rules).
        let count = if header.shnum == 0 {
            zeroth.size
        } else {
            header.shnum
        };
        let names_index = if header.shstrndx == SHN_XINDEX {
            u64::from(zeroth.link)
        } else {
            header.shstrndx
        };
        let table_size = header
            .shentsize
            .checked_mul(count)
            .filter(|&size| size <= MAX_SECTION_TABLE)?;
        let table = read_exact_at(file, header.shoff, table_size, "").ok()?;
        let sections: Vec<Section> = table
            .chunks_exact(entry)
            .map(|bytes| Section::parse(layout, bytes))
            .collect::<Option<_>>()?;
        let names_section = sections.get(usize::try_from(names_index).ok()?)?;
        let names = if names_section.size <= MAX_SECTION_TABLE {
            read_exact_at(file, names_section.offset, names_section.size, "").ok()?
        } else {
            return None;
        };
        Some(SectionTable {
            sections,
            names,
            zeroth_info: zeroth.info,
        })
    }

    /// A section only Go's linker makes: `.go.buildinfo`, `.gopclntab` (or
    /// `.data.rel.ro.gopclntab` in PIE builds), `.gosymtab`, `.note.go.buildid`.
    fn has_go_section(&self) -> bool {
        self.sections.iter().any(|section| {
            let Some(name) = usize::try_from(section.name)
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
fn has_go_note(file: &File, layout: Layout, segments: &[Segment]) -> bool {
    segments
        .iter()
        .filter(|s| s.kind == PT_NOTE)
        .any(|segment| {
            let size = segment.filesz.min(MAX_NOTE_SEGMENT);
            let Ok(notes) = read_exact_at(file, segment.offset, size, "") else {
                return false;
            };
            let align = if segment.align == 8 { 8 } else { 4 };
            let mut at = 0usize;
            while let (Some(namesz), Some(descsz)) = (
                layout.u32(&notes, at),
                layout.u32(&notes, at.saturating_add(4)),
            ) {
                let name_start = at.saturating_add(12);
                let Some(name_end) = name_start.checked_add(namesz as usize) else {
                    return false;
                };
                let Some(name) = notes.get(name_start..name_end) else {
                    return false;
                };
                let name = name.split(|&b| b == 0).next().unwrap_or_default();
                if name == b"Go" {
                    return true;
                }
                let desc_start = align_up(name_end, align);
                let next = desc_start
                    .and_then(|d| d.checked_add(descsz as usize))
                    .and_then(|end| align_up(end, align));
                match next {
                    Some(next) if next > at => at = next,
                    _ => return false,
                }
            }
            false
        })
}

fn align_up(value: usize, align: usize) -> Option<usize> {
    value.checked_add(align - 1).map(|v| v & !(align - 1))
}

/// Go's build-info magic near the start of a writable `PT_LOAD` segment, where Go's linker puts
/// `.go.buildinfo` (first with its internal linker; after `.data` with an external one): found
/// even when section headers and notes are stripped and the file is large.
fn has_go_magic_in_data(file: &File, segments: &[Segment]) -> bool {
    segments
        .iter()
        .filter(|s| s.kind == PT_LOAD && s.flags & PF_W != 0)
        .any(|segment| {
            let size = segment.filesz.min(GO_SEGMENT_SCAN);
            has_go_magic_in(file, segment.offset, size)
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

/// Reads exactly `len` bytes at `offset`, or says that `what` runs past the end of the file.
fn read_exact_at(file: &File, offset: u64, len: u64, what: &str) -> Result<Vec<u8>, String> {
    let bytes = read_at(file, offset, len).map_err(|e| format!("cannot read: {e}"))?;
    if (bytes.len() as u64) < len {
        return Err(format!("truncated: {what} runs past the end of the file"));
    }
    Ok(bytes)
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
