//! Will the program honour `LD_PRELOAD`? Resolves a command through `PATH` as `execvp` does,
//! follows `#!` lines as the kernel does (and `/usr/bin/env NAME` as `env` does), then reads the
//! final ELF file's headers: its loader (`PT_INTERP`), Go markers, class and machine, and the
//! file's setuid bits and capabilities.
//!
//! Owns: that resolution and the header reading. Does not: execute anything, or decide what
//! `run` does with the answer. Every read is bounded (headers, tables and notes by size limits;
//! the one scan for Go's build-info magic by `GO_MAGIC_SCAN`), so a multi-hundred-megabyte
//! binary costs a few small reads, and malformed files give `Err`, never a panic.
//!
//! The only `unsafe` is in the small `sys` module at the bottom: `access`, `getxattr` and
//! `statvfs`, each with its reason.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// Why a program would not load the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Obstacle {
    /// No `PT_INTERP`: statically linked (static-pie included), the dynamic loader never runs.
    Static,
    /// A Go binary: raw system calls and its own resolver, whatever the linking.
    Go,
    /// Linked against musl: a glibc library cannot be loaded into it.
    Musl,
    /// setuid or setgid: the loader ignores `LD_PRELOAD` from an unprivileged caller.
    SetId,
    /// File capabilities (`security.capability`): secure-execution mode, as for setuid.
    Capabilities,
    /// Built for another machine or word size than this tool (and so the library), e.g. a
    /// 32-bit program on `x86_64`: the loader skips a library of the wrong ELF class.
    Architecture,
}

impl Obstacle {
    /// One sentence saying why this stops the library from working in the program.
    pub fn explain(&self) -> &'static str {
        match self {
            Obstacle::Static => {
                "statically linked: the dynamic loader, which reads LD_PRELOAD, never runs"
            }
            Obstacle::Go => {
                "a Go program: it makes system calls directly and resolves names itself, so \
                 libc's connect and getaddrinfo are never called"
            }
            Obstacle::Musl => {
                "linked against musl libc: a library built for glibc cannot be loaded into it"
            }
            Obstacle::SetId => {
                "setuid or setgid: the loader runs in secure mode and ignores LD_PRELOAD \
                 (except setuid libraries in the system's trusted directories)"
            }
            Obstacle::Capabilities => {
                "has file capabilities: the loader runs in secure mode, as for setuid, and \
                 ignores LD_PRELOAD"
            }
            Obstacle::Architecture => {
                "built for another architecture or word size: the loader skips a library of \
                 the wrong ELF class or machine"
            }
        }
    }
}

/// What was found about a command.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The files looked at, from the command to the final ELF (scripts first, then
    /// interpreters). The last entry is the ELF file that was inspected; an `env` used as a
    /// `#!` interpreter is listed too, before the program it runs, but is not inspected (it
    /// passes the environment on, so only the program it executes matters). Paths are
    /// absolute, as found (symlinks are not resolved).
    pub chain: Vec<PathBuf>,
    /// Why the final program would ignore the library; empty when it would load it.
    pub obstacles: Vec<Obstacle>,
    /// The final ELF's loader, from `PT_INTERP` (e.g. `/lib64/ld-linux-x86-64.so.2`); `None`
    /// for a static binary.
    #[allow(
        dead_code,
        reason = "for the CLI's messages; the tests read it until then"
    )]
    pub loader: Option<PathBuf>,
}

impl Inspection {
    /// True when nothing found stops the dynamic loader from loading the library.
    pub fn honours_preload(&self) -> bool {
        self.obstacles.is_empty()
    }
}

/// Why a command cannot be inspected, sorted by what `execve` would answer, so that `run`
/// exits as a shell does without reading the message. Each variant holds the whole message (a
/// sentence prefixed with the command or file), which `Display` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectError {
    /// Nothing to execute: a bare name not on `PATH`, an empty name, a path that does not
    /// exist, a `#!` interpreter or an ELF loader that does not exist (what makes `execve` fail
    /// with `ENOENT`), or the program a `#!/usr/bin/env` line names not found (`env` exits 127
    /// then). A shell exits 127.
    NotFound(String),
    /// Found, but not a file that can be executed: a directory, not a regular file, no execute
    /// permission, not accessible (`EACCES`). A shell exits 126.
    NotExecutable(String),
    /// An executable file the kernel would not run, or that cannot be read: neither ELF nor
    /// `#!` script, malformed headers, a `#!` line `env` would refuse, too many interpreters
    /// (`ENOEXEC`, `ELOOP`, `EIO`). 126, as for `NotExecutable`.
    Invalid(String),
}

impl InspectError {
    /// The same error, its message prefixed (`FILE: #! interpreter ` before the interpreter's).
    fn prefixed(self, prefix: impl std::fmt::Display) -> InspectError {
        match self {
            InspectError::NotFound(m) => InspectError::NotFound(format!("{prefix}{m}")),
            InspectError::NotExecutable(m) => InspectError::NotExecutable(format!("{prefix}{m}")),
            InspectError::Invalid(m) => InspectError::Invalid(format!("{prefix}{m}")),
        }
    }
}

impl std::fmt::Display for InspectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InspectError::NotFound(m)
            | InspectError::NotExecutable(m)
            | InspectError::Invalid(m) => f.write_str(m),
        }
    }
}

/// The search path `execvp` uses when `PATH` is unset.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// How much of a file the kernel reads to find a `#!` line (`BINPRM_BUF_SIZE`).
const SHEBANG_BUF: usize = 256;
/// Nested `#!` interpreters the kernel follows in one exec (`BINPRM_MAX_RECURSION`).
const MAX_INTERPRETER_DEPTH: usize = 4;
/// Files followed in all, `env` hops included (each `env` starts a fresh exec).
const MAX_CHAIN: usize = 16;
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

/// Resolves `command` through `path` (the `PATH` value) as `execvp` would, follows `#!` lines
/// (including `/usr/bin/env NAME`) and inspects the final ELF file. `Err` when the command
/// cannot be found, run or read; the variant says which, as `execve` would.
///
/// The messages read as sentences prefixed with the command or file: `NAME: command not found`
/// (a bare name not on `PATH`), `PATH: no such file or directory` (a path), `...: permission
/// denied (...)` (found but not executable), `...: not an ELF executable or script`, and others
/// for unreadable, malformed or looping files.
pub fn inspect(command: &OsStr, path: Option<&OsStr>) -> Result<Inspection, InspectError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    inspect_in(command, path, &cwd)
}

/// `inspect`, with relative paths taken against `cwd`.
fn inspect_in(
    command: &OsStr,
    path: Option<&OsStr>,
    cwd: &Path,
) -> Result<Inspection, InspectError> {
    let mut current = resolve(command, path, cwd)?;
    let mut chain = vec![current.clone()];
    // What `PATH` the next `env` will search: `env -i`, `-u PATH` or `PATH=...` change it.
    let mut search_path: Option<OsString> = path.map(OsStr::to_owned);
    let mut depth = 0;
    loop {
        let file = open(&current)?;
        let head = read_at(&file, 0, SHEBANG_BUF as u64).map_err(|e| {
            InspectError::Invalid(format!("{}: cannot read: {e}", current.display()))
        })?;
        if head.starts_with(b"#!") {
            depth += 1;
            if depth > MAX_INTERPRETER_DEPTH || chain.len() >= MAX_CHAIN {
                return Err(InspectError::Invalid(format!(
                    "{}: too many levels of #! interpreters (the kernel follows {MAX_INTERPRETER_DEPTH})",
                    current.display()
                )));
            }
            let shebang = parse_shebang(&head)
                .map_err(|e| InspectError::Invalid(format!("{}: {e}", current.display())))?;
            let interpreter = resolve_interpreter(&shebang.interpreter, cwd)
                .map_err(|e| e.prefixed(format_args!("{}: #! interpreter ", current.display())))?;
            chain.push(interpreter.clone());
            if is_env(&interpreter) {
                let invocation = parse_env(shebang.argument.as_deref())
                    .map_err(|e| InspectError::Invalid(format!("{}: {e}", current.display())))?;
                match invocation.path {
                    PathChange::Keep => {}
                    PathChange::Unset => search_path = None,
                    PathChange::Set(value) => search_path = Some(value),
                }
                let target =
                    resolve(&invocation.command, search_path.as_deref(), cwd).map_err(|e| {
                        e.prefixed(format_args!(
                            "{}: #!{} runs ",
                            current.display(),
                            interpreter.display()
                        ))
                    })?;
                chain.push(target.clone());
                // env execs the program afresh: the kernel's nesting count starts again.
                depth = 0;
                current = target;
            } else {
                current = interpreter;
            }
            continue;
        }
        if !head.starts_with(b"\x7fELF") {
            return Err(InspectError::Invalid(format!(
                "{}: not an ELF executable or script",
                current.display()
            )));
        }
        let facts = read_elf(&file)
            .map_err(|e| InspectError::Invalid(format!("{}: {e}", current.display())))?;
        // The kernel opens the loader named in PT_INTERP; without it, exec fails with a
        // misleading "no such file". (A foreign binary's loader lives wherever its emulator
        // looks, so it is not checked.)
        if let (Some(loader), false) = (&facts.loader, facts.foreign) {
            if std::fs::metadata(loader).is_err() {
                return Err(InspectError::NotFound(format!(
                    "{}: its loader {} does not exist here, so it cannot run",
                    current.display(),
                    loader.display()
                )));
            }
        }
        let mut obstacles = Vec::new();
        match &facts.loader {
            None => obstacles.push(Obstacle::Static),
            Some(loader) if is_musl_loader(loader) => obstacles.push(Obstacle::Musl),
            Some(_) => {}
        }
        if facts.go {
            obstacles.push(Obstacle::Go);
        }
        if facts.foreign {
            obstacles.push(Obstacle::Architecture);
        }
        // A nosuid mount makes the kernel ignore both setuid bits and file capabilities.
        if !sys::on_nosuid_mount(&current) {
            let meta = file.metadata().map_err(|e| {
                InspectError::Invalid(format!("{}: cannot stat: {e}", current.display()))
            })?;
            if is_set_id(meta.mode(), meta.uid(), meta.gid()) {
                obstacles.push(Obstacle::SetId);
            }
            if sys::has_file_capabilities(&current) {
                obstacles.push(Obstacle::Capabilities);
            }
        }
        return Ok(Inspection {
            chain,
            obstacles,
            loader: facts.loader,
        });
    }
}

/// setuid to another user than ours, or setgid (with the group-execute bit: without it,
/// setgid means mandatory locking) to another group: exec then changes identity, and the loader
/// runs in secure mode, which ignores LD_PRELOAD. (root running a setuid-root program changes
/// nothing and keeps LD_PRELOAD.)
fn is_set_id(mode: u32, uid: u32, gid: u32) -> bool {
    // SAFETY: geteuid/getegid have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    (mode & 0o4000 != 0 && uid != euid) || (mode & 0o2000 != 0 && mode & 0o010 != 0 && gid != egid)
}

fn is_env(interpreter: &Path) -> bool {
    interpreter.file_name() == Some(OsStr::new("env"))
}

fn is_musl_loader(loader: &Path) -> bool {
    loader
        .file_name()
        .is_some_and(|name| name.as_bytes().starts_with(b"ld-musl"))
}

fn open(path: &Path) -> Result<File, InspectError> {
    File::open(path).map_err(|e| {
        let message = format!("{}: cannot read: {e}", path.display());
        match e.kind() {
            // Gone between the lookup and the read.
            io::ErrorKind::NotFound => InspectError::NotFound(message),
            _ => InspectError::Invalid(message),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Finding the file, as execvp and the kernel do.

/// What a candidate path is, for `execvp`'s purposes.
enum Probe {
    Executable,
    Missing,
    /// Exists but cannot be executed; the reason reads after "it is".
    Refused(String),
}

fn probe(path: &Path) -> Probe {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Probe::Missing,
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Probe::Missing,
        Err(e) => return Probe::Refused(format!("not accessible ({e})")),
    };
    if meta.is_dir() {
        Probe::Refused("a directory".into())
    } else if !meta.is_file() {
        Probe::Refused("not a regular file".into())
    } else if !sys::executable(path) {
        Probe::Refused("not executable".into())
    } else {
        Probe::Executable
    }
}

/// `base` joined with `relative`, with `.` components dropped (not `..`: that would need the
/// file system, through symlinks).
fn join_clean(base: &Path, relative: &Path) -> PathBuf {
    let joined = base.join(relative);
    joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// Finds `command` as `execvp` would: a name with a `/` is a path (relative to `cwd`); otherwise
/// each `PATH` entry in turn (an empty entry is `cwd`; `DEFAULT_PATH` when `PATH` is unset), the
/// first executable regular file winning.
fn resolve(command: &OsStr, path: Option<&OsStr>, cwd: &Path) -> Result<PathBuf, InspectError> {
    let name = command.to_string_lossy();
    if command.is_empty() {
        return Err(InspectError::NotFound(
            "an empty command name: command not found".into(),
        ));
    }
    if command.as_bytes().contains(&b'/') {
        let candidate = join_clean(cwd, Path::new(command));
        return match probe(&candidate) {
            Probe::Executable => Ok(candidate),
            Probe::Missing => Err(InspectError::NotFound(format!(
                "{name}: no such file or directory"
            ))),
            Probe::Refused(why) => Err(InspectError::NotExecutable(format!(
                "{name}: permission denied (it is {why})"
            ))),
        };
    }
    let search = path.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut refused = None;
    for entry in search.as_bytes().split(|&b| b == b':') {
        let dir = if entry.is_empty() {
            cwd.to_path_buf()
        } else {
            join_clean(cwd, Path::new(OsStr::from_bytes(entry)))
        };
        let candidate = dir.join(command);
        match probe(&candidate) {
            Probe::Executable => return Ok(candidate),
            Probe::Missing => {}
            Probe::Refused(why) => {
                refused.get_or_insert((candidate, why));
            }
        }
    }
    match refused {
        Some((candidate, why)) => Err(InspectError::NotExecutable(format!(
            "{name}: permission denied ({} is {why})",
            candidate.display()
        ))),
        None => Err(InspectError::NotFound(format!(
            "{name}: command not found{}",
            crlf_hint(command)
        ))),
    }
}

/// A `#!` interpreter: the kernel opens the path as written (relative to the caller's cwd).
fn resolve_interpreter(interpreter: &OsStr, cwd: &Path) -> Result<PathBuf, InspectError> {
    let candidate = join_clean(cwd, Path::new(interpreter));
    let shown = interpreter.to_string_lossy();
    match probe(&candidate) {
        Probe::Executable => Ok(candidate),
        Probe::Missing => Err(InspectError::NotFound(format!(
            "{shown}: no such file or directory{}",
            crlf_hint(interpreter)
        ))),
        Probe::Refused(why) => Err(InspectError::NotExecutable(format!(
            "{shown}: permission denied (it is {why})"
        ))),
    }
}

/// A script saved with Windows line endings names `python3\r`: say so.
fn crlf_hint(name: &OsStr) -> &'static str {
    if name.as_bytes().ends_with(b"\r") {
        " (the name ends in a carriage return: the script has Windows line endings)"
    } else {
        ""
    }
}

// ---------------------------------------------------------------------------------------------
// `#!` lines, as the kernel's binfmt_script reads them.

/// A `#!` line: the interpreter path and its one optional argument (the kernel passes
/// everything after the interpreter, trimmed, as a single argument).
#[derive(Debug, PartialEq, Eq)]
struct Shebang {
    interpreter: OsString,
    argument: Option<OsString>,
}

/// Parses the start of a file beginning with `#!`, following the kernel's rules
/// (`fs/binfmt_script.c`): only the first `SHEBANG_BUF` bytes count; the interpreter ends at a
/// space, tab or NUL; trailing spaces and tabs are trimmed; a line without a newline in the
/// buffer is accepted unless the interpreter path itself is cut.
fn parse_shebang(head: &[u8]) -> Result<Shebang, String> {
    let mut buf = [0u8; SHEBANG_BUF];
    let len = head.len().min(SHEBANG_BUF);
    buf[..len].copy_from_slice(&head[..len]);
    if !buf.starts_with(b"#!") {
        return Err("no #! line".into());
    }
    let spacetab = |b: u8| b == b' ' || b == b'\t';
    let terminator = |b: u8| b == b' ' || b == b'\t' || b == 0;
    let buf_end = SHEBANG_BUF - 1;
    let mut end = match buf.iter().position(|&b| b == b'\n') {
        Some(newline) => newline,
        None => {
            let start = (2..buf_end)
                .find(|&i| !spacetab(buf[i]))
                .ok_or("the #! line is blank")?;
            if !(start..buf_end).any(|i| terminator(buf[i])) {
                return Err(format!(
                    "the #! interpreter path is longer than the kernel reads ({buf_end} bytes)"
                ));
            }
            buf_end
        }
    };
    while end > 2 && spacetab(buf[end - 1]) {
        end -= 1;
    }
    let name_start = (2..end)
        .find(|&i| !spacetab(buf[i]))
        .ok_or("the #! line names no interpreter")?;
    let name_end = (name_start..end)
        .find(|&i| terminator(buf[i]))
        .unwrap_or(end);
    if name_end == name_start {
        return Err("the #! line names no interpreter".into());
    }
    let argument = if name_end < end && buf[name_end] != 0 {
        (name_end..end).find(|&i| !spacetab(buf[i])).map(|start| {
            let rest = &buf[start..end];
            let until_nul = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            OsString::from_vec(rest[..until_nul].to_vec())
        })
    } else {
        None
    };
    Ok(Shebang {
        interpreter: OsString::from_vec(buf[name_start..name_end].to_vec()),
        argument: argument.filter(|a| !a.is_empty()),
    })
}

// ---------------------------------------------------------------------------------------------
// `env` as a `#!` interpreter.

/// How an `env` invocation changes the `PATH` its `execvp` searches.
#[derive(Debug, PartialEq, Eq)]
enum PathChange {
    Keep,
    /// `-i` or `-u PATH`: `execvp` falls back to its default path.
    Unset,
    /// `PATH=...` (or BSD `-P altpath`).
    Set(OsString),
}

/// The program an `env` `#!` line runs.
#[derive(Debug, PartialEq, Eq)]
struct EnvInvocation {
    command: OsString,
    path: PathChange,
}

/// A word of `env`'s arguments, and whether it came from `-S` splitting (a word straight from
/// the kernel is the whole rest of the `#!` line, spaces included).
struct EnvWord {
    bytes: Vec<u8>,
    split: bool,
}

/// How an `env` option takes its value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum EnvValue {
    None,
    Required,
    /// Only as `--option=value`.
    Optional,
}

/// `env`'s long options (GNU coreutils), with the short option each stands for, if any.
const ENV_LONG_OPTIONS: &[(&str, EnvValue, Option<u8>)] = &[
    ("ignore-environment", EnvValue::None, Some(b'i')),
    ("null", EnvValue::None, Some(b'0')),
    ("unset", EnvValue::Required, Some(b'u')),
    ("chdir", EnvValue::Required, Some(b'C')),
    ("split-string", EnvValue::Required, Some(b'S')),
    ("argv0", EnvValue::Required, Some(b'a')),
    ("debug", EnvValue::None, Some(b'v')),
    ("default-signal", EnvValue::Optional, None),
    ("ignore-signal", EnvValue::Optional, None),
    ("block-signal", EnvValue::Optional, None),
    ("list-signal-handling", EnvValue::None, None),
];

/// Reads the argument of a `#!/usr/bin/env` line as `env` would: options (`-i`, `-u NAME`,
/// `-C DIR`, `-S STRING` whose words are split and read on, `-0`, `-v`, GNU long options and
/// their unique prefixes, BSD `-P PATH`), then `NAME=value` assignments, then the command name.
/// `-C DIR` is read but not applied to a relative command name.
fn parse_env(argument: Option<&OsStr>) -> Result<EnvInvocation, String> {
    let mut words: VecDeque<EnvWord> = argument
        .map(|a| EnvWord {
            bytes: a.as_bytes().to_vec(),
            split: false,
        })
        .into_iter()
        .collect();
    let mut path = PathChange::Keep;
    // Options come first; the first word that is not one ends them.
    while let Some(word) = words.front() {
        let bytes = word.bytes.clone();
        if bytes == b"--" {
            words.pop_front();
            break;
        }
        if bytes == b"-" {
            words.pop_front();
            path = PathChange::Unset;
            continue;
        }
        if !bytes.starts_with(b"-") {
            break;
        }
        words.pop_front();
        if let Some(long) = bytes.strip_prefix(b"--") {
            let (name, inline) = match long.iter().position(|&b| b == b'=') {
                Some(eq) => (&long[..eq], Some(long[eq + 1..].to_vec())),
                None => (long, None),
            };
            let (full, takes, short) = find_long_option(name)?;
            let value = match (takes, inline) {
                (EnvValue::None, Some(_)) => {
                    return Err(format!("env option --{full} takes no value"));
                }
                (EnvValue::Required, None) => Some(
                    words
                        .pop_front()
                        .ok_or(format!("env option --{full} needs a value"))?
                        .bytes,
                ),
                (_, inline) => inline,
            };
            if let Some(short) = short {
                apply_env_option(short, value, &mut words, &mut path)?;
            }
            continue;
        }
        // A cluster of short options: `-iv`, `-uNAME`, `-S node --flag` (as the kernel passes
        // `#!/usr/bin/env -S node --flag`: one word, the value after the `S`).
        let mut at = 1;
        while at < bytes.len() {
            let option = bytes[at];
            at += 1;
            match option {
                b'i' | b'0' | b'v' => apply_env_option(option, None, &mut words, &mut path)?,
                b'u' | b'C' | b'S' | b'a' | b'P' => {
                    let value = if at < bytes.len() {
                        bytes[at..].to_vec()
                    } else {
                        words
                            .pop_front()
                            .ok_or(format!("env option -{} needs a value", option as char))?
                            .bytes
                    };
                    apply_env_option(option, Some(value), &mut words, &mut path)?;
                    break;
                }
                other => {
                    return Err(format!(
                        "env: unknown option '-{}' on the #! line",
                        String::from_utf8_lossy(&[other])
                    ));
                }
            }
        }
    }
    // Assignments: any word with an `=` before the command.
    while let Some(word) = words.front() {
        if !word.bytes.contains(&b'=') {
            break;
        }
        if let Some(value) = word.bytes.strip_prefix(b"PATH=") {
            path = PathChange::Set(OsString::from_vec(value.to_vec()));
        }
        words.pop_front();
    }
    let Some(word) = words.pop_front() else {
        return Err("#!/usr/bin/env runs no command (it would print the environment)".into());
    };
    if !word.split && word.bytes.iter().any(|&b| b == b' ' || b == b'\t') {
        return Err(format!(
            "env would look for a program named '{}': the kernel passes the rest of the #! line \
             as one argument (use #!/usr/bin/env -S to split it)",
            String::from_utf8_lossy(&word.bytes)
        ));
    }
    Ok(EnvInvocation {
        command: OsString::from_vec(word.bytes),
        path,
    })
}

fn find_long_option(name: &[u8]) -> Result<(&'static str, EnvValue, Option<u8>), String> {
    let shown = String::from_utf8_lossy(name);
    if let Some(exact) = ENV_LONG_OPTIONS.iter().find(|o| o.0.as_bytes() == name) {
        return Ok(*exact);
    }
    let mut prefixed = ENV_LONG_OPTIONS
        .iter()
        .filter(|o| !name.is_empty() && o.0.as_bytes().starts_with(name));
    match (prefixed.next(), prefixed.next()) {
        (Some(only), None) => Ok(*only),
        (Some(_), Some(_)) => Err(format!(
            "env: option '--{shown}' is ambiguous on the #! line"
        )),
        _ => Err(format!("env: unknown option '--{shown}' on the #! line")),
    }
}

fn apply_env_option(
    option: u8,
    value: Option<Vec<u8>>,
    words: &mut VecDeque<EnvWord>,
    path: &mut PathChange,
) -> Result<(), String> {
    match (option, value) {
        (b'i', _) => *path = PathChange::Unset,
        (b'u', Some(name)) if name == b"PATH" => *path = PathChange::Unset,
        (b'P', Some(dirs)) => *path = PathChange::Set(OsString::from_vec(dirs)),
        (b'S', Some(string)) => {
            let split = split_string(&string)?;
            for bytes in split.into_iter().rev() {
                words.push_front(EnvWord { bytes, split: true });
            }
        }
        _ => {}
    }
    Ok(())
}

/// Splits an `env -S` string as GNU `env` does: words separated by spaces and tabs; single
/// quotes literal (but `\\` and `\'`); double quotes with backslash escapes; `\_` a space inside
/// double quotes and a separator outside; `\c` ends the string; `#` at the start of a word begins
/// a comment; `${NAME}` expands from this process's environment.
fn split_string(string: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut quote = Quote::None;
    let mut at = 0;
    while at < string.len() {
        let byte = string[at];
        at += 1;
        match (&quote, byte) {
            (Quote::None, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c') => {
                words.extend(word.take());
            }
            (Quote::None, b'#') if word.is_none() => break,
            (Quote::None, b'\'') => {
                quote = Quote::Single;
                word.get_or_insert_with(Vec::new);
            }
            (Quote::None, b'"') => {
                quote = Quote::Double;
                word.get_or_insert_with(Vec::new);
            }
            (Quote::Single, b'\'') | (Quote::Double, b'"') => quote = Quote::None,
            (Quote::Single, b'\\') if matches!(string.get(at), Some(b'\\' | b'\'')) => {
                word.get_or_insert_with(Vec::new).push(string[at]);
                at += 1;
            }
            (_, b'\\') if quote != Quote::Single => {
                let Some(&escaped) = string.get(at) else {
                    return Err("env -S: the string ends in a lone backslash".into());
                };
                at += 1;
                let literal = match escaped {
                    b'c' if quote == Quote::None => break,
                    b'c' => return Err("env -S: \\c inside double quotes".into()),
                    b'_' if quote == Quote::None => {
                        words.extend(word.take());
                        continue;
                    }
                    b'_' => b' ',
                    b'f' => b'\x0c',
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'v' => b'\x0b',
                    b'\\' | b'\'' | b'"' | b'$' | b'#' | b' ' => escaped,
                    other => {
                        return Err(format!(
                            "env -S: invalid escape '\\{}'",
                            String::from_utf8_lossy(&[other])
                        ));
                    }
                };
                word.get_or_insert_with(Vec::new).push(literal);
            }
            (_, b'$') if quote != Quote::Single => {
                let rest = &string[at..];
                let close = rest.iter().position(|&b| b == b'}');
                let (Some(b'{'), Some(close)) = (rest.first(), close) else {
                    return Err("env -S: '$' must start a ${NAME} reference".into());
                };
                let name = OsStr::from_bytes(&rest[1..close]);
                let value = std::env::var_os(name).unwrap_or_default();
                word.get_or_insert_with(Vec::new)
                    .extend_from_slice(value.as_bytes());
                at += close + 1;
            }
            (_, other) => word.get_or_insert_with(Vec::new).push(other),
        }
    }
    if quote != Quote::None {
        return Err("env -S: unterminated quote".into());
    }
    words.extend(word);
    Ok(words)
}

// ---------------------------------------------------------------------------------------------
// ELF headers.

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const PF_W: u32 = 2;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PN_XNUM: u64 = 0xffff;
const SHN_XINDEX: u64 = 0xffff;

/// The ELF class, byte order and machine of the programs the library can be loaded into: this
/// tool's own (it is built with the library, for the same target).
fn host_elf() -> Option<(bool, bool, u16)> {
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
struct ElfFacts {
    loader: Option<PathBuf>,
    go: bool,
    /// Another class, byte order or machine than this tool's.
    foreign: bool,
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
fn read_elf(file: &File) -> Result<ElfFacts, String> {
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

/// Reads up to `len` bytes at `offset`: fewer at the end of the file. `len` is bounded by the
/// caller; the buffer never exceeds the file's size.
fn read_at(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let size = file.metadata()?.len();
    let available = size.saturating_sub(offset).min(len);
    let mut buf = vec![0u8; usize::try_from(available).unwrap_or(0)];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Reads exactly `len` bytes at `offset`, or says that `what` runs past the end of the file.
fn read_exact_at(file: &File, offset: u64, len: u64, what: &str) -> Result<Vec<u8>, String> {
    let bytes = read_at(file, offset, len).map_err(|e| format!("cannot read: {e}"))?;
    if (bytes.len() as u64) < len {
        return Err(format!("truncated: {what} runs past the end of the file"));
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------------
// The few libc calls std does not offer.

mod sys {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    fn c_path(path: &Path) -> Option<CString> {
        CString::new(path.as_os_str().as_bytes()).ok()
    }

    /// `access(X_OK)`: whether the real user may execute the file (mode bits, ACLs, `noexec`
    /// mounts; for root, any execute bit).
    pub fn executable(path: &Path) -> bool {
        let Some(path) = c_path(path) else {
            return false;
        };
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        unsafe { libc::access(path.as_ptr(), libc::X_OK) == 0 }
    }

    /// Whether the file carries a `security.capability` extended attribute (followed through
    /// symlinks, as exec does). A file system without extended attributes has none.
    pub fn has_file_capabilities(path: &Path) -> bool {
        let Some(path) = c_path(path) else {
            return false;
        };
        // SAFETY: both strings are NUL-terminated and outlive the call; a null buffer with size
        // 0 asks only for the value's size, so nothing is written.
        let size = unsafe {
            libc::getxattr(
                path.as_ptr(),
                c"security.capability".as_ptr(),
                std::ptr::null_mut(),
                0,
            )
        };
        size > 0
    }

    /// Whether the file lies on a file system mounted `nosuid`, where exec ignores setuid bits
    /// and file capabilities.
    pub fn on_nosuid_mount(path: &Path) -> bool {
        let Some(path) = c_path(path) else {
            return false;
        };
        // SAFETY: statvfs is plain data, for which all-zero bytes are a valid value.
        let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is NUL-terminated and `stats` a valid, writable statvfs; both outlive
        // the call.
        let status = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
        status == 0 && stats.f_flag & libc::ST_NOSUID != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> TempDir {
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

        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }

        /// Writes a file with the given mode.
        fn write(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
            let path = self.path(name);
            std::fs::write(&path, contents).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        }

        /// Copies a file in, then sets its mode (after the copy, so setuid bits stay).
        fn copy(&self, from: &Path, name: &str, mode: u32) -> PathBuf {
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

    const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

    /// `inspect`, with the error as its message (what most tests look at).
    fn inspect_path(path: &Path) -> Result<Inspection, String> {
        inspect(path.as_os_str(), Some(OsStr::new(SYSTEM_PATH))).map_err(|e| e.to_string())
    }

    fn true_binary() -> PathBuf {
        resolve(
            OsStr::new("true"),
            Some(OsStr::new(SYSTEM_PATH)),
            Path::new("/"),
        )
        .unwrap()
    }

    /// The host's glibc loader, as /bin/true names it.
    fn host_loader() -> PathBuf {
        inspect_path(&true_binary()).unwrap().loader.unwrap()
    }

    // --- #! lines -------------------------------------------------------------------------

    fn shebang(interpreter: &str, argument: Option<&str>) -> Shebang {
        Shebang {
            interpreter: interpreter.into(),
            argument: argument.map(OsString::from),
        }
    }

    #[test]
    fn shebang_lines_split_as_the_kernel_does() {
        assert_eq!(
            parse_shebang(b"#!/bin/sh\necho").unwrap(),
            shebang("/bin/sh", None)
        );
        assert_eq!(
            parse_shebang(b"#!/bin/sh").unwrap(),
            shebang("/bin/sh", None)
        );
        assert_eq!(
            parse_shebang(b"#! /bin/sh -e \n").unwrap(),
            shebang("/bin/sh", Some("-e"))
        );
        assert_eq!(
            parse_shebang(b"#!\t/usr/bin/env  python3 -u  \t\nimport os").unwrap(),
            shebang("/usr/bin/env", Some("python3 -u")),
        );
        assert_eq!(
            parse_shebang(b"#!/usr/bin/env -S node --flag\n").unwrap(),
            shebang("/usr/bin/env", Some("-S node --flag")),
        );
        // Windows line endings: the carriage return is part of the name.
        assert_eq!(
            parse_shebang(b"#!/bin/sh\r\n").unwrap(),
            shebang("/bin/sh\r", None)
        );
        assert!(parse_shebang(b"#!\n").is_err());
        assert!(parse_shebang(b"#!   \t\n").is_err());
        assert!(parse_shebang(b"#!").is_err());
    }

    #[test]
    fn only_the_first_256_bytes_of_a_shebang_count() {
        // A long argument is cut; a long interpreter path is refused.
        let mut long_argument = b"#!/bin/sh ".to_vec();
        long_argument.extend(std::iter::repeat_n(b'a', 400));
        let parsed = parse_shebang(&long_argument).unwrap();
        assert_eq!(parsed.interpreter, "/bin/sh");
        assert_eq!(parsed.argument.unwrap().len(), SHEBANG_BUF - 1 - 10);

        let mut long_interpreter = b"#!/".to_vec();
        long_interpreter.extend(std::iter::repeat_n(b'x', 400));
        assert!(parse_shebang(&long_interpreter)
            .unwrap_err()
            .contains("longer than the kernel reads"));
    }

    // --- env ------------------------------------------------------------------------------

    fn env_runs(argument: &str) -> Result<EnvInvocation, String> {
        parse_env(Some(OsStr::new(argument)))
    }

    fn runs(command: &str, path: PathChange) -> EnvInvocation {
        EnvInvocation {
            command: command.into(),
            path,
        }
    }

    #[test]
    fn env_lines_name_their_command() {
        assert_eq!(
            env_runs("python3").unwrap(),
            runs("python3", PathChange::Keep)
        );
        assert_eq!(
            env_runs("-S node --flag").unwrap(),
            runs("node", PathChange::Keep)
        );
        assert_eq!(
            env_runs("-Snode --flag").unwrap(),
            runs("node", PathChange::Keep)
        );
        assert_eq!(
            env_runs("-vS node").unwrap(),
            runs("node", PathChange::Keep)
        );
        assert_eq!(
            env_runs("-S \"my node\" --flag").unwrap(),
            runs("my node", PathChange::Keep)
        );
        assert_eq!(
            env_runs("--split-string=deno run -A").unwrap(),
            runs("deno", PathChange::Keep)
        );
        assert_eq!(
            env_runs("--split=node -e 1").unwrap(),
            runs("node", PathChange::Keep)
        );
        assert_eq!(
            env_runs("-S -i NODE_OPTIONS=--x node").unwrap(),
            runs("node", PathChange::Unset)
        );
        assert_eq!(
            env_runs("-S -u HOME -uLANG --unset=TERM python3").unwrap(),
            runs("python3", PathChange::Keep)
        );
        assert_eq!(
            env_runs("-S -u PATH python3").unwrap(),
            runs("python3", PathChange::Unset)
        );
        assert_eq!(
            env_runs("-S -i PATH=/opt/bin:/bin tool").unwrap(),
            runs("tool", PathChange::Set("/opt/bin:/bin".into()))
        );
        assert_eq!(
            env_runs("-S -- -weird").unwrap(),
            runs("-weird", PathChange::Keep)
        );
        assert_eq!(
            env_runs("-S A=1 B=2 ./local/tool # a comment").unwrap(),
            runs("./local/tool", PathChange::Keep)
        );
        assert_eq!(
            env_runs("-S 'py'\"thon\"3").unwrap(),
            runs("python3", PathChange::Keep)
        );
        assert_eq!(
            env_runs("-S no\\_de x").unwrap(),
            runs("no", PathChange::Keep)
        );
    }

    #[test]
    fn env_lines_that_run_nothing_are_errors() {
        assert!(parse_env(None).unwrap_err().contains("runs no command"));
        // Without -S, the kernel's one argument is one word: env looks for "python3 -u".
        assert!(env_runs("python3 -u").unwrap_err().contains("-S"));
        // Without -S, "FOO=1 python3" is one assignment and no command.
        assert!(env_runs("FOO=1 python3")
            .unwrap_err()
            .contains("runs no command"));
        assert!(env_runs("-S").is_err());
        assert!(env_runs("-x python3")
            .unwrap_err()
            .contains("unknown option"));
        assert!(env_runs("--nope=1").unwrap_err().contains("unknown option"));
        assert!(env_runs("-S 'unterminated")
            .unwrap_err()
            .contains("unterminated"));
    }

    #[test]
    fn split_string_follows_gnu_env() {
        let split = |s: &str| -> Vec<String> {
            split_string(s.as_bytes())
                .unwrap()
                .into_iter()
                .map(|w| String::from_utf8(w).unwrap())
                .collect()
        };
        assert_eq!(split("  a\tb  c "), ["a", "b", "c"]);
        assert_eq!(split("'a b' \"c\\td\" e\\ f"), ["a b", "c\td", "e f"]);
        assert_eq!(split("a\\_b \"c\\_d\""), ["a", "b", "c d"]);
        assert_eq!(split("a \\c b"), ["a"]);
        assert_eq!(split("a #b c"), ["a"]);
        assert_eq!(split("a#b"), ["a#b"]);
        assert_eq!(split("''"), [""]);
        assert!(split_string(b"$HOME").is_err());
        assert!(split_string(b"a\\").is_err());
    }

    // --- PATH -----------------------------------------------------------------------------

    #[test]
    fn commands_resolve_through_path_as_execvp_does() {
        let dir = TempDir::new("path");
        std::fs::create_dir_all(dir.path("first")).unwrap();
        std::fs::create_dir_all(dir.path("second")).unwrap();
        std::fs::create_dir_all(dir.path("first/tool-dir")).unwrap();
        let tool = dir.write("second/tool", b"#!/bin/sh\n", 0o755);
        dir.write("first/tool", b"#!/bin/sh\n", 0o644); // not executable: skipped
        let search = format!("{0}/missing:{0}/first:{0}/second", dir.0.display());
        let search = OsStr::new(&search);

        assert_eq!(
            resolve(OsStr::new("tool"), Some(search), Path::new("/")).unwrap(),
            tool
        );

        // Relative entries are against the cwd; an empty entry is the cwd.
        let relative = OsStr::new("first:second");
        assert_eq!(
            resolve(OsStr::new("tool"), Some(relative), &dir.0).unwrap(),
            tool
        );
        let cwd_first = OsStr::new(":/nonexistent");
        let here = dir.path("second");
        assert_eq!(
            resolve(OsStr::new("tool"), Some(cwd_first), &here).unwrap(),
            tool
        );

        // Found only as a non-executable file, or as a directory: permission denied.
        let first_only = format!("{}/first", dir.0.display());
        let err = resolve(
            OsStr::new("tool"),
            Some(OsStr::new(&first_only)),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(matches!(err, InspectError::NotExecutable(_)), "{err:?}");
        let err = err.to_string();
        assert!(err.starts_with("tool: permission denied"), "{err}");
        assert!(err.contains("not executable"), "{err}");
        let err = resolve(
            OsStr::new("tool-dir"),
            Some(OsStr::new(&first_only)),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");

        // Not found at all.
        assert_eq!(
            resolve(OsStr::new("no-such-tool"), Some(search), Path::new("/")).unwrap_err(),
            InspectError::NotFound("no-such-tool: command not found".into())
        );
        assert!(resolve(OsStr::new(""), Some(search), Path::new("/")).is_err());

        // With a slash: a path, relative to the cwd, and PATH is not searched.
        assert_eq!(
            resolve(OsStr::new("./second/tool"), Some(search), &dir.0).unwrap(),
            tool
        );
        assert_eq!(
            resolve(OsStr::new("second/nope"), Some(search), &dir.0).unwrap_err(),
            InspectError::NotFound("second/nope: no such file or directory".into())
        );
        assert!(resolve(OsStr::new("first/tool"), Some(search), &dir.0)
            .unwrap_err()
            .to_string()
            .contains("permission denied"));
    }

    #[test]
    fn an_unset_path_means_the_default_one() {
        let found = resolve(OsStr::new("sh"), None, Path::new("/")).unwrap();
        assert!(found.ends_with("bin/sh"), "{}", found.display());
        assert!(inspect(OsStr::new("sh"), None).unwrap().honours_preload());
    }

    // --- whole commands -------------------------------------------------------------------

    #[test]
    fn a_dynamic_glibc_program_honours_preload() {
        let found = inspect(OsStr::new("true"), Some(OsStr::new(SYSTEM_PATH))).unwrap();
        assert_eq!(found.chain, [true_binary()]);
        assert!(found.honours_preload(), "{:?}", found.obstacles);
        let loader = found.loader.unwrap();
        assert!(
            loader.to_string_lossy().contains("ld-linux"),
            "{}",
            loader.display()
        );
    }

    #[test]
    fn env_scripts_are_followed_to_their_interpreter() {
        let dir = TempDir::new("env-script");
        let plain = dir.write("plain", b"#!/usr/bin/env python3\nprint(1)\n", 0o755);
        let split = dir.write("split", b"#!/usr/bin/env -S python3 -u -X dev\n", 0o755);
        let python = resolve(
            OsStr::new("python3"),
            Some(OsStr::new(SYSTEM_PATH)),
            Path::new("/"),
        )
        .unwrap();
        for script in [plain, split] {
            let found = inspect_path(&script).unwrap();
            assert_eq!(
                found.chain,
                [script, PathBuf::from("/usr/bin/env"), python.clone()]
            );
            assert!(found.honours_preload(), "{:?}", found.obstacles);
        }

        // env -S PATH=... searches that PATH.
        std::fs::create_dir_all(dir.path("bin")).unwrap();
        let tool = dir.copy(&true_binary(), "bin/tool", 0o755);
        let line = format!(
            "#!/usr/bin/env -S PATH={} tool\n",
            dir.path("bin").display()
        );
        let script = dir.write("with-path", line.as_bytes(), 0o755);
        assert_eq!(inspect_path(&script).unwrap().chain.last(), Some(&tool));
    }

    #[test]
    fn nested_scripts_are_followed_and_loops_refused() {
        let dir = TempDir::new("nested");
        let inner = dir.write("inner", b"#!/bin/sh\n", 0o755);
        let outer_line = format!("#!{} -x\n", inner.display());
        let outer = dir.write("outer", outer_line.as_bytes(), 0o755);
        let found = inspect_path(&outer).unwrap();
        assert_eq!(
            found.chain,
            [outer.clone(), inner, PathBuf::from("/bin/sh")]
        );
        assert!(found.honours_preload());

        // Relative command paths are made absolute.
        let relative = inspect_in(OsStr::new("./outer"), None, &dir.0).unwrap();
        assert_eq!(relative.chain[0], outer);

        let looping_line = format!("#!{}\n", dir.path("loop").display());
        let looping = dir.write("loop", looping_line.as_bytes(), 0o755);
        assert!(inspect_path(&looping)
            .unwrap_err()
            .contains("too many levels"));

        // env loops are bounded too.
        let env_loop_line = format!("#!/usr/bin/env {}\n", dir.path("env-loop").display());
        let env_loop = dir.write("env-loop", env_loop_line.as_bytes(), 0o755);
        assert!(inspect_path(&env_loop)
            .unwrap_err()
            .contains("too many levels"));
    }

    #[test]
    fn scripts_whose_interpreter_is_missing_are_errors() {
        let dir = TempDir::new("missing");
        let script = dir.write("s", b"#!/nonexistent/interpreter\n", 0o755);
        let err = inspect_path(&script).unwrap_err();
        assert!(
            err.contains("/nonexistent/interpreter: no such file"),
            "{err}"
        );

        let script = dir.write("e", b"#!/usr/bin/env no-such-interpreter-here\n", 0o755);
        let err = inspect_path(&script).unwrap_err();
        assert!(
            err.contains("no-such-interpreter-here: command not found"),
            "{err}"
        );

        let script = dir.write("crlf", b"#!/bin/sh\r\necho\r\n", 0o755);
        assert!(inspect_path(&script)
            .unwrap_err()
            .contains("Windows line endings"));

        let script = dir.write("u", b"#!/usr/bin/env python3 -u\n", 0o755);
        assert!(inspect_path(&script).unwrap_err().contains("-S"));
    }

    #[test]
    fn other_files_are_errors() {
        let dir = TempDir::new("other");
        let text = dir.write("text", b"echo hello\n", 0o755);
        assert_eq!(
            inspect_path(&text).unwrap_err(),
            format!("{}: not an ELF executable or script", text.display())
        );
        let empty = dir.write("empty", b"", 0o755);
        assert!(inspect_path(&empty)
            .unwrap_err()
            .contains("not an ELF executable or script"));
        let not_executable = dir.copy(&true_binary(), "plain", 0o644);
        assert!(inspect_path(&not_executable)
            .unwrap_err()
            .contains("permission denied"));
        assert_eq!(
            inspect(
                OsStr::new("no-such-command-xyz"),
                Some(OsStr::new(SYSTEM_PATH))
            )
            .unwrap_err(),
            InspectError::NotFound("no-such-command-xyz: command not found".into())
        );
    }

    /// The variant is what `execve` would answer: `ENOENT` (a shell's 127) for whatever does
    /// not exist along the way, whatever the message says; 126's kinds for the rest.
    #[test]
    fn errors_are_sorted_as_execve_would_answer() {
        let dir = TempDir::new("kinds");
        let kind =
            |command: &Path| match inspect(command.as_os_str(), Some(OsStr::new(SYSTEM_PATH))) {
                Err(InspectError::NotFound(_)) => "not found",
                Err(InspectError::NotExecutable(_)) => "not executable",
                Err(InspectError::Invalid(_)) => "invalid",
                Ok(_) => "ok",
            };
        assert_eq!(kind(Path::new("/nonexistent")), "not found");
        assert_eq!(kind(&dir.path("missing/below")), "not found");
        let interpreter = dir.write("interp", b"#!/nonexistent/interpreter\n", 0o755);
        assert_eq!(kind(&interpreter), "not found");
        let env_target = dir.write("env", b"#!/usr/bin/env no-such-tool-xyz\n", 0o755);
        assert_eq!(kind(&env_target), "not found");
        let loader = SyntheticElf::native()
            .interp(Path::new("/nonexistent/ld.so"))
            .write(&dir, "no-loader");
        assert_eq!(kind(&loader), "not found");

        assert_eq!(kind(&dir.0), "not executable");
        let plain = dir.write("plain", b"#!/bin/sh\n", 0o644);
        assert_eq!(kind(&plain), "not executable");
        let refused_interpreter = format!("#!{}\n", plain.display());
        let script = dir.write("via-plain", refused_interpreter.as_bytes(), 0o755);
        assert_eq!(kind(&script), "not executable");

        let text = dir.write("text", b"echo hello\n", 0o755);
        assert_eq!(kind(&text), "invalid");
        let unsplit = dir.write("unsplit", b"#!/usr/bin/env python3 -u\n", 0o755);
        assert_eq!(kind(&unsplit), "invalid");
        assert_eq!(kind(&true_binary()), "ok");
    }

    /// Compiles a tiny C program with `flag` (`-static`, `-static-pie`); failing is a test
    /// failure, not a skip.
    fn compile(dir: &TempDir, name: &str, flag: &str) -> PathBuf {
        let source = dir.write("main.c", b"int main(void) { return 0; }\n", 0o644);
        let output = dir.path(name);
        let status = Command::new("cc")
            .arg(flag)
            .arg("-o")
            .arg(&output)
            .arg(&source)
            .status()
            .expect("cc must be installed");
        assert!(status.success(), "cc {flag} failed");
        output
    }

    #[test]
    fn static_binaries_are_static() {
        let dir = TempDir::new("static");
        for flag in ["-static", "-static-pie"] {
            let binary = compile(&dir, &format!("prog{flag}"), flag);
            let found = inspect_path(&binary).unwrap();
            assert_eq!(found.obstacles, [Obstacle::Static], "{flag}");
            assert_eq!(found.loader, None);
            assert!(!found.honours_preload());
        }
    }

    #[test]
    fn setuid_and_setgid_binaries_are_set_id() {
        let dir = TempDir::new("setid");
        for (mode, expected) in [
            (0o4755, vec![Obstacle::SetId]),
            (0o2755, vec![Obstacle::SetId]),
            // setgid without group execute is mandatory locking, not setgid.
            (0o2745, vec![]),
            (0o755, vec![]),
        ] {
            let copy = dir.copy(&true_binary(), &format!("true-{mode:o}"), mode);
            // Owned by another user and group than ours (the tests run as root).
            std::os::unix::fs::chown(&copy, Some(65534), Some(65534)).unwrap();
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(
                inspect_path(&copy).unwrap().obstacles,
                expected,
                "mode {mode:o}"
            );
        }
        // setuid on a script is ignored by Linux: only the interpreter counts.
        let script = dir.write("script", b"#!/bin/sh\n", 0o4755);
        assert!(inspect_path(&script).unwrap().honours_preload());
    }

    #[test]
    fn binaries_with_file_capabilities_are_flagged() {
        let dir = TempDir::new("caps");
        let copy = dir.copy(&true_binary(), "true-caps", 0o755);
        let have_setcap = Command::new("which")
            .arg("setcap")
            .output()
            .is_ok_and(|out| out.status.success());
        if have_setcap {
            let status = Command::new("setcap")
                .arg("cap_net_raw+ep")
                .arg(&copy)
                .status()
                .unwrap();
            assert!(status.success(), "setcap failed");
        } else {
            // VFS_CAP_REVISION_2 with the effective flag, then (permitted, inheritable) for
            // capabilities 0-31 and 32-63: CAP_NET_RAW is bit 13.
            let mut blob = Vec::new();
            for word in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
                blob.extend_from_slice(&word.to_le_bytes());
            }
            let path = std::ffi::CString::new(copy.as_os_str().as_bytes()).unwrap();
            // SAFETY: valid NUL-terminated strings and a buffer of the length given.
            let status = unsafe {
                libc::setxattr(
                    path.as_ptr(),
                    c"security.capability".as_ptr(),
                    blob.as_ptr().cast(),
                    blob.len(),
                    0,
                )
            };
            assert_eq!(status, 0, "setxattr: {}", io::Error::last_os_error());
        }
        assert_eq!(
            inspect_path(&copy).unwrap().obstacles,
            [Obstacle::Capabilities]
        );
    }

    // --- synthetic ELF files --------------------------------------------------------------

    /// A minimal ELF file: a header, program headers with contents, optional section headers
    /// (names only) and bytes placed at given offsets.
    struct SyntheticElf {
        wide: bool,
        big: bool,
        machine: u16,
        segments: Vec<(u32, u32, Vec<u8>)>,
        sections: Vec<&'static str>,
        /// Makes the file at least this long (zero-filled), for placing bytes far in.
        min_len: usize,
        /// The offset of a writable PT_LOAD covering `min_len - 64 KiB ..`, if wanted.
        late_data: Option<Vec<u8>>,
        /// Bytes written at an offset, after everything else.
        patches: Vec<(usize, Vec<u8>)>,
    }

    impl SyntheticElf {
        fn native() -> SyntheticElf {
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

        fn interp(mut self, loader: &Path) -> Self {
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

        fn build(&self) -> Vec<u8> {
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

        fn write(&self, dir: &TempDir, name: &str) -> PathBuf {
            dir.write(name, &self.build(), 0o755)
        }
    }

    /// An ELF note owned by `owner`, 4-byte aligned.
    fn note(big: bool, owner: &str, kind: u32, desc: &[u8]) -> Vec<u8> {
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

    #[test]
    fn every_obstacle_explains_itself() {
        for obstacle in [
            Obstacle::Static,
            Obstacle::Go,
            Obstacle::Musl,
            Obstacle::SetId,
            Obstacle::Capabilities,
            Obstacle::Architecture,
        ] {
            let sentence = obstacle.explain();
            assert!(
                sentence.len() > 20 && !sentence.ends_with('.'),
                "{obstacle:?}"
            );
        }
        let inspection = Inspection {
            chain: Vec::new(),
            obstacles: vec![Obstacle::Go],
            loader: None,
        };
        assert!(!inspection.honours_preload());
    }
}
