//! Finding the file to run, as `execvp` does for a command (each `PATH` entry in turn) and as
//! the kernel does for a `#!` interpreter (the path as written). Owns: the lookup and why a
//! candidate was passed over (missing, a directory, not executable). Does not: read the file.

#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use mcp_redirect_core::sys;

use super::InspectError;

/// The search path `execvp` uses when `PATH` is unset.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

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
    } else if !sys::exec::executable(path) {
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
pub(super) fn resolve(
    command: &OsStr,
    path: Option<&OsStr>,
    cwd: &Path,
) -> Result<PathBuf, InspectError> {
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
pub(super) fn resolve_interpreter(
    interpreter: &OsStr,
    cwd: &Path,
) -> Result<PathBuf, InspectError> {
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

#[cfg(test)]
mod tests {
    use super::super::inspect;
    use super::super::test_support::TempDir;
    use super::*;

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
}
