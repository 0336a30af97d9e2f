//! Will the program honour `LD_PRELOAD`? Resolves a command through `PATH` as `execvp` does,
//! follows `#!` lines as the kernel does (and `/usr/bin/env NAME` as `env` does), then reads the
//! final ELF file's headers: its loader (`PT_INTERP`), Go markers, class and machine, and the
//! file's setuid bits and capabilities.
//!
//! Owns: the verdict `run` asks for (`inspect`: the chain of files followed, and the
//! `Obstacle`s), walking that chain, and the file's identity bits. Does not: execute anything,
//! or decide what `run` does with the answer. The parts, one concern each:
//!
//! - `path`: finding a command or a `#!` interpreter, as `execvp` and the kernel do;
//! - `shebang`: a `#!` line, as the kernel's `binfmt_script` reads it;
//! - `env_args`: what a `#!/usr/bin/env ...` line runs, and with which `PATH`, as `env` reads it;
//! - `elf`: the final ELF file's loader, Go markers, class and machine (its structures parsed by
//!   the `object` crate).
//!
//! Every read is bounded (the `#!` buffer; ELF headers, tables and notes by size limits; the
//! scan for Go's build-info magic by its own limits), so a multi-hundred-megabyte binary costs a
//! few small reads, and malformed files give `Err`, never a panic. The libc calls std lacks
//! (`access`, `getxattr`, `statvfs`) go through the library's `sys::exec`, so no `unsafe` here.

#![forbid(unsafe_code)]

mod elf;
mod env_args;
mod path;
mod shebang;
#[cfg(test)]
mod test_support;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use mcp_redirect_core::sys;

use env_args::{parse_env, PathChange};
use path::{resolve, resolve_interpreter};
use shebang::{parse_shebang, SHEBANG_BUF};

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

/// Nested `#!` interpreters the kernel follows in one exec (`BINPRM_MAX_RECURSION`).
const MAX_INTERPRETER_DEPTH: usize = 4;
/// Files followed in all, `env` hops included (each `env` starts a fresh exec).
const MAX_CHAIN: usize = 16;
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
        let facts = elf::read_elf(&file)
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
        if !sys::exec::on_nosuid_mount(&current) {
            let meta = file.metadata().map_err(|e| {
                InspectError::Invalid(format!("{}: cannot stat: {e}", current.display()))
            })?;
            if is_set_id(meta.mode(), meta.uid(), meta.gid()) {
                obstacles.push(Obstacle::SetId);
            }
            if sys::exec::has_file_capabilities(&current) {
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
    let (euid, egid) = (sys::euid(), sys::egid());
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

/// Reads up to `len` bytes at `offset`: fewer at the end of the file. `len` is bounded by the
/// caller; the buffer never exceeds the file's size. For the `#!` buffer here, and `elf`'s notes
/// and Go scan.
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::test_support::{inspect_path, true_binary, SyntheticElf, TempDir, SYSTEM_PATH};
    use super::*;

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
            sys::exec::set_file_capabilities(&copy, &blob).unwrap();
        }
        assert_eq!(
            inspect_path(&copy).unwrap().obstacles,
            [Obstacle::Capabilities]
        );
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
