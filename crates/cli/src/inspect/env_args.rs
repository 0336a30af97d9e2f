//! `env` as a `#!` interpreter: which program a `#!/usr/bin/env ...` line runs, and with which
//! `PATH`, reading its one argument as GNU `env` does (options, `-S` splitting, assignments).
//! Owns: that reading. Does not: find the program (`path`), or run anything.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// How an `env` invocation changes the `PATH` its `execvp` searches.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PathChange {
    Keep,
    /// `-i` or `-u PATH`: `execvp` falls back to its default path.
    Unset,
    /// `PATH=...` (or BSD `-P altpath`).
    Set(OsString),
}

/// The program an `env` `#!` line runs.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct EnvInvocation {
    pub(super) command: OsString,
    pub(super) path: PathChange,
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
pub(super) fn parse_env(argument: Option<&OsStr>) -> Result<EnvInvocation, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
