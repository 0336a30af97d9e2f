//! Which configuration file the command uses.
//!
//! In order, the first that applies:
//!
//! 1. `--config FILE`;
//! 2. `$MCP_REDIRECT_CONFIG` (what the library itself reads);
//! 3. the user's `$XDG_CONFIG_HOME/mcp-redirect/config.toml`, or `$HOME/.config/...` when
//!    `XDG_CONFIG_HOME` is unset, empty or relative (the XDG Base Directory rules);
//! 4. the system's `/etc/mcp-redirect/mcp-redirect.toml`, where the Docker image puts its config;
//! 5. none: the proxy environment (`HTTPS_PROXY`...), as the library reads it.
//!
//! The first two are taken as given, even when the file is missing: a name someone wrote down
//! that does not exist is an error to report, not a reason to look further. The next two count
//! only when something is there (a file that is there but cannot be read is still chosen, so
//! that the error is reported rather than skipped).
//!
//! Never the current directory, nor any directory above it. This file decides where a program's
//! connections go and which are refused. A config picked up from wherever the user happens to
//! be (a cloned repository, an unpacked archive, a shared `/tmp`) would let whoever wrote that
//! directory send the user's traffic through their own gateway, or open what the user's own
//! config denies. The user's and the system's directories are writable by the user and by root
//! only.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use mcp_redirect_core::config::CONFIG_ENV;

/// The system-wide config: the Docker image's path (see the Dockerfile).
pub const SYSTEM_CONFIG: &str = "/etc/mcp-redirect/mcp-redirect.toml";
/// The user's config, below `$XDG_CONFIG_HOME` (or `$HOME/.config`).
pub const USER_CONFIG: &str = "mcp-redirect/config.toml";

/// Where a config file's name came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `--config`.
    Flag,
    /// `$MCP_REDIRECT_CONFIG`.
    Variable,
    /// Below `$XDG_CONFIG_HOME`.
    XdgConfigHome,
    /// Below `$HOME/.config` (`XDG_CONFIG_HOME` unset, empty or relative).
    HomeConfig,
    /// `/etc/mcp-redirect/mcp-redirect.toml`.
    System,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Flag => "from --config",
            Origin::Variable => "from $MCP_REDIRECT_CONFIG",
            Origin::XdgConfigHome => "from $XDG_CONFIG_HOME",
            Origin::HomeConfig => "from $HOME/.config, $XDG_CONFIG_HOME being unset",
            Origin::System => "the system-wide config",
        })
    }
}

/// The config file to use (an absolute path) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub origin: Origin,
}

/// What the search found, and the places it looked at without finding anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    pub found: Option<Found>,
    /// The user's and the system's paths, when they were looked at and nothing was there.
    pub missing: Vec<PathBuf>,
}

impl Discovery {
    /// The file to load, if any (`None`: the proxy environment).
    pub fn path(&self) -> Option<&Path> {
        self.found.as_ref().map(|f| f.path.as_path())
    }

    /// Why no file is used, for `check`'s `source:` line: `none at A or B`.
    pub fn why_none(&self) -> String {
        let places: Vec<String> = self
            .missing
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!(
            "no --config or ${CONFIG_ENV}, none at {}",
            places.join(" or ")
        )
    }
}

/// Finds the config file as the module's documentation says, in this process's environment.
pub fn config_file(flag: Option<&Path>) -> Discovery {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    discover(
        flag,
        &|name| std::env::var_os(name),
        &cwd,
        Path::new(SYSTEM_CONFIG),
    )
}

/// `config_file`, with the environment, the current directory (for relative names given
/// explicitly) and the system path as arguments.
fn discover(
    flag: Option<&Path>,
    getenv: &dyn Fn(&str) -> Option<OsString>,
    cwd: &Path,
    system: &Path,
) -> Discovery {
    let absolute = |path: &Path| cwd.join(path);
    let given = |path: &Path, origin| Discovery {
        found: Some(Found {
            path: absolute(path),
            origin,
        }),
        missing: Vec::new(),
    };
    if let Some(path) = flag {
        return given(path, Origin::Flag);
    }
    let set = |name: &str| getenv(name).filter(|v| !v.is_empty());
    if let Some(path) = set(CONFIG_ENV) {
        return given(Path::new(&path), Origin::Variable);
    }
    let mut candidates = Vec::new();
    match set("XDG_CONFIG_HOME").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => {
            candidates.push((dir.join(USER_CONFIG), Origin::XdgConfigHome));
        }
        _ => {
            if let Some(home) = set("HOME") {
                let home = absolute(Path::new(&home));
                candidates.push((home.join(".config").join(USER_CONFIG), Origin::HomeConfig));
            }
        }
    }
    candidates.push((system.to_path_buf(), Origin::System));
    let mut missing = Vec::new();
    for (path, origin) in candidates {
        if is_there(&path) {
            return Discovery {
                found: Some(Found { path, origin }),
                missing,
            };
        }
        missing.push(path);
    }
    Discovery {
        found: None,
        missing,
    }
}

/// Something is at `path` (a file, or anything else whose loading will say what is wrong),
/// or it cannot be told (a directory on the way that cannot be searched): only "no such file"
/// means nothing is there.
fn is_there(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Dir(PathBuf);

    impl Dir {
        fn new(label: &str) -> Dir {
            let dir = std::env::temp_dir().join(format!(
                "mcp-redirect-discover-{}-{label}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn file(&self, relative: &str) -> PathBuf {
            let path = self.0.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "default = \"direct\"\n").unwrap();
            path
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn run(flag: Option<&str>, env: &[(&str, &str)], cwd: &Path, system: &Path) -> Discovery {
        let env: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        discover(
            flag.map(Path::new),
            &|name| env.get(name).cloned(),
            cwd,
            system,
        )
    }

    fn found(discovery: &Discovery) -> Option<(PathBuf, Origin)> {
        discovery.found.as_ref().map(|f| (f.path.clone(), f.origin))
    }

    #[test]
    fn the_order_is_flag_variable_user_system() {
        let dir = Dir::new("order");
        let xdg = dir.0.join("xdg");
        let home = dir.0.join("home");
        let user = dir.file("xdg/mcp-redirect/config.toml");
        let home_config = dir.file("home/.config/mcp-redirect/config.toml");
        let system = dir.file("etc/mcp-redirect.toml");
        let env = [
            ("MCP_REDIRECT_CONFIG", "/from/variable.toml"),
            ("XDG_CONFIG_HOME", xdg.to_str().unwrap()),
            ("HOME", home.to_str().unwrap()),
        ];
        let cwd = Path::new("/work");
        assert_eq!(
            found(&run(Some("given.toml"), &env, cwd, &system)),
            Some((PathBuf::from("/work/given.toml"), Origin::Flag))
        );
        assert_eq!(
            found(&run(None, &env, cwd, &system)),
            Some((PathBuf::from("/from/variable.toml"), Origin::Variable))
        );
        assert_eq!(
            found(&run(None, &env[1..], cwd, &system)),
            Some((user.clone(), Origin::XdgConfigHome))
        );
        // XDG_CONFIG_HOME unset, empty or relative: $HOME/.config.
        for xdg in [None, Some(""), Some("relative/dir")] {
            let mut env = vec![("HOME", home.to_str().unwrap())];
            env.extend(xdg.map(|x| ("XDG_CONFIG_HOME", x)));
            assert_eq!(
                found(&run(None, &env, cwd, &system)),
                Some((home_config.clone(), Origin::HomeConfig)),
                "{xdg:?}"
            );
        }
        // Nothing in the user's directory: the system's file.
        std::fs::remove_file(&user).unwrap();
        assert_eq!(
            found(&run(None, &env[1..], cwd, &system)),
            Some((system.clone(), Origin::System))
        );
        // Nothing anywhere: the proxy environment, and where it looked.
        std::fs::remove_file(&system).unwrap();
        let none = run(None, &env[1..], cwd, &system);
        assert_eq!(found(&none), None);
        assert_eq!(none.missing, [user.clone(), system.clone()]);
        assert_eq!(
            none.why_none(),
            format!(
                "no --config or $MCP_REDIRECT_CONFIG, none at {} or {}",
                user.display(),
                system.display()
            )
        );
        // An empty variable counts as unset.
        let empty = [
            ("MCP_REDIRECT_CONFIG", ""),
            ("HOME", home.to_str().unwrap()),
        ];
        assert_eq!(
            found(&run(None, &empty, cwd, &system)),
            Some((home_config, Origin::HomeConfig))
        );
    }

    #[test]
    fn named_files_are_taken_as_given_and_made_absolute() {
        let cwd = Path::new("/srv/app");
        let missing = Path::new("/nonexistent/etc.toml");
        assert_eq!(
            found(&run(
                None,
                &[("MCP_REDIRECT_CONFIG", "conf/x.toml")],
                cwd,
                missing
            )),
            Some((PathBuf::from("/srv/app/conf/x.toml"), Origin::Variable))
        );
        assert_eq!(
            found(&run(Some("/absent.toml"), &[], cwd, missing)),
            Some((PathBuf::from("/absent.toml"), Origin::Flag))
        );
    }

    #[test]
    fn the_current_directory_is_never_searched() {
        let dir = Dir::new("cwd");
        dir.file("mcp-redirect.toml");
        dir.file("config.toml");
        dir.file("mcp-redirect/config.toml");
        dir.file(".mcp-redirect.toml");
        let none = run(
            None,
            &[],
            &dir.0,
            Path::new("/nonexistent/mcp-redirect.toml"),
        );
        assert_eq!(found(&none), None);
    }

    #[test]
    fn something_unreadable_is_chosen_so_that_its_error_is_reported() {
        let dir = Dir::new("unreadable");
        let user = dir.0.join("xdg/mcp-redirect");
        std::fs::create_dir_all(&user).unwrap();
        // A directory where the file should be: chosen, and loading it says what is wrong.
        std::fs::create_dir_all(user.join("config.toml")).unwrap();
        let xdg = dir.0.join("xdg");
        let env = [("XDG_CONFIG_HOME", xdg.to_str().unwrap())];
        assert_eq!(
            found(&run(None, &env, Path::new("/"), Path::new("/nonexistent"))),
            Some((user.join("config.toml"), Origin::XdgConfigHome))
        );
    }
}
