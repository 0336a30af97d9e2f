//! A `#!` line, as the kernel's `binfmt_script` reads it: the interpreter and its one optional
//! argument, from the first `SHEBANG_BUF` bytes of the file. Owns: that parsing. Does not: find
//! the interpreter (`path`) or read what `env` makes of the argument (`env_args`).

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// How much of a file the kernel reads to find a `#!` line (`BINPRM_BUF_SIZE`).
pub(super) const SHEBANG_BUF: usize = 256;

/// A `#!` line: the interpreter path and its one optional argument (the kernel passes
/// everything after the interpreter, trimmed, as a single argument).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Shebang {
    pub(super) interpreter: OsString,
    pub(super) argument: Option<OsString>,
}

/// Parses the start of a file beginning with `#!`, following the kernel's rules
/// (`fs/binfmt_script.c`): only the first `SHEBANG_BUF` bytes count; the interpreter ends at a
/// space, tab or NUL; trailing spaces and tabs are trimmed; a line without a newline in the
/// buffer is accepted unless the interpreter path itself is cut.
pub(super) fn parse_shebang(head: &[u8]) -> Result<Shebang, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
