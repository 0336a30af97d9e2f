//! `mcp-redirect env`: the shell lines that put every program a shell starts under the library,
//! for `eval "$(mcp-redirect env)"` (and `eval "$(mcp-redirect env --off)"` to stop), as
//! `. torsocks on` and `off` do.
//!
//! On: `export LD_PRELOAD=...` with the library first and whatever else was preloaded kept (as
//! `run` builds it), and `export MCP_REDIRECT_CONFIG=...` naming the config found as `run` finds
//! it (none: the library reads the proxy environment). The config is checked first; an invalid
//! one prints nothing to eval and exits 2. Off: the library taken out of `LD_PRELOAD` (`unset`
//! when nothing else is left) and `unset MCP_REDIRECT_CONFIG`. Values are quoted for POSIX
//! shells (sh, bash, zsh).

#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use mcp_redirect_core::config::CONFIG_ENV;

use crate::run::{find_library, preload_value, shell_quote, LIBRARY};

#[derive(clap::Args)]
pub struct EnvArgs {
    /// Configuration file (default: $MCP_REDIRECT_CONFIG, else
    /// $XDG_CONFIG_HOME/mcp-redirect/config.toml, else /etc/mcp-redirect/mcp-redirect.toml, else
    /// the proxy environment)
    #[arg(long, conflicts_with = "off")]
    pub config: Option<PathBuf>,
    /// Print the lines that undo it: the library out of LD_PRELOAD (other entries kept),
    /// MCP_REDIRECT_CONFIG unset
    #[arg(long)]
    pub off: bool,
}

pub fn env(args: EnvArgs) -> u8 {
    let lines = if args.off {
        off_lines(std::env::var_os("LD_PRELOAD").as_deref())
    } else {
        match on_lines(args.config.as_deref()) {
            Some(lines) => lines,
            None => return 2,
        }
    };
    for line in lines {
        println!("{line}");
    }
    0
}

/// The `export` lines, or `None` (said on stderr) when the library or a valid config is missing.
fn on_lines(flag: Option<&Path>) -> Option<Vec<String>> {
    let library = match find_library() {
        Ok(path) => path,
        Err(message) => {
            crate::complain(message);
            return None;
        }
    };
    let discovery = crate::discover::config_file(flag);
    crate::check::load_from(&discovery)?;
    // A copy of the library installed elsewhere goes: two would each decide every connection.
    let others = others(std::env::var_os("LD_PRELOAD").as_deref());
    let preload = preload_value(&library, Some(&others));
    let mut lines = vec![export("LD_PRELOAD", &preload)];
    match discovery.path() {
        Some(path) => lines.push(export(CONFIG_ENV, path.as_os_str())),
        None => crate::complain(format!(
            "note: no config file ({}): the library will read the proxy environment",
            discovery.why_none()
        )),
    }
    Some(lines)
}

/// The lines that take the library out: `LD_PRELOAD` without any `libmcp_redirect.so` (wherever
/// it was installed), or unset when nothing else is left; `MCP_REDIRECT_CONFIG` unset.
fn off_lines(preload: Option<&OsStr>) -> Vec<String> {
    let rest = others(preload);
    let mut lines = Vec::new();
    if rest.is_empty() {
        lines.push("unset LD_PRELOAD".to_string());
    } else {
        lines.push(export("LD_PRELOAD", &rest));
    }
    lines.push(format!("unset {CONFIG_ENV}"));
    lines
}

/// The entries of an `LD_PRELOAD` value (separated by colons or spaces, as for ld.so) other
/// than any `libmcp_redirect.so`, joined by colons.
fn others(preload: Option<&OsStr>) -> OsString {
    let rest: Vec<&[u8]> = preload
        .map(OsStr::as_bytes)
        .unwrap_or_default()
        .split(|&b| b == b':' || b == b' ')
        .filter(|entry| !entry.is_empty())
        .filter(|entry| {
            Path::new(OsStr::from_bytes(entry)).file_name() != Some(OsStr::new(LIBRARY))
        })
        .collect();
    OsString::from_vec(rest.join(&b':'))
}

/// `export NAME=VALUE`, the value quoted for the shell.
fn export(name: &str, value: &OsStr) -> String {
    format!("export {name}={}", shell_quote(&value.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_keeps_other_preloaded_libraries() {
        let off = |value: Option<&str>| off_lines(value.map(OsStr::new));
        assert_eq!(
            off(Some("/opt/lib/libmcp_redirect.so")),
            ["unset LD_PRELOAD", "unset MCP_REDIRECT_CONFIG"]
        );
        assert_eq!(off(None), ["unset LD_PRELOAD", "unset MCP_REDIRECT_CONFIG"]);
        // Wherever it was installed; a space separates entries too, as for ld.so.
        assert_eq!(
            off(Some(
                "/opt/lib/libmcp_redirect.so:/usr/lib/libjemalloc.so /usr/local/lib/libmcp_redirect.so:/x.so"
            )),
            [
                "export LD_PRELOAD=/usr/lib/libjemalloc.so:/x.so",
                "unset MCP_REDIRECT_CONFIG"
            ]
        );
    }

    #[test]
    fn values_are_quoted_for_the_shell() {
        assert_eq!(
            export(
                "MCP_REDIRECT_CONFIG",
                OsStr::new("/home/o'neil/my config.toml")
            ),
            "export MCP_REDIRECT_CONFIG='/home/o'\\''neil/my config.toml'"
        );
        assert_eq!(
            export("LD_PRELOAD", OsStr::new("/usr/lib/libmcp_redirect.so")),
            "export LD_PRELOAD=/usr/lib/libmcp_redirect.so"
        );
    }
}
