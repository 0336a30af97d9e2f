//! Reading a log a line at a time into one reused buffer, whatever the input holds: a line
//! longer than `MAX_LINE` is skipped to its newline without being kept, so one runaway line
//! cannot take the memory, and a last line without its newline is told apart (a writer
//! mid-append, or a crash). Does not own what a line means (`log_line`).
#![forbid(unsafe_code)]

use std::io::{self, BufRead, Read};

/// A longer line is malformed (the library writes a few hundred bytes); its excess is skipped
/// without being kept, so one runaway line cannot take the memory.
pub(super) const MAX_LINE: usize = 1 << 20;

/// How a line ended. The last line of a file may lack its newline: a writer mid-append, or a
/// crash.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum LineEnd {
    Newline,
    EndOfInput,
    TooLong,
}

/// Reads one line into `line` (newline stripped), never letting it grow past `MAX_LINE`.
/// `None` at the end of input.
pub(super) fn next_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
) -> io::Result<Option<LineEnd>> {
    line.clear();
    let read = reader
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Some(LineEnd::Newline));
    }
    if line.len() <= MAX_LINE {
        return Ok(Some(LineEnd::EndOfInput));
    }
    skip_past_newline(reader)?;
    Ok(Some(LineEnd::TooLong))
}

/// Drops input up to and including the next newline, a buffer at a time.
fn skip_past_newline(reader: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let all = buffer.len();
                reader.consume(all);
            }
        }
    }
}
