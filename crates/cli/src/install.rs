//! `mcp-redirect install --to DIR`: copy the library, this program and, if given, a validated
//! config into one directory, for an init container that fills a volume which the application
//! container then preloads from (Kubernetes: an `emptyDir`). Nothing else runs: no shell, no
//! `cp`, so the init image can be minimal.
//!
//! Each file is written under a temporary name in DIR, synced, given its mode and renamed over
//! the old one: a reader sees the old file or the new one, never half of one, and running it
//! again over an existing install leaves the same files. The copied program finds the copied
//! library next to itself (as `run` looks for it).

#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mcp_redirect_core::config::{self, ConfigSource};

use crate::run::LIBRARY;

/// The names the files get in DIR: what `LD_PRELOAD`, the command and `MCP_REDIRECT_CONFIG`
/// point at.
const PROGRAM: &str = "mcp-redirect";
const CONFIG: &str = "mcp-redirect.toml";

/// The library's own limit on a config file's size.
const CONFIG_LIMIT: usize = 4 << 20;

#[derive(clap::Args)]
pub struct InstallArgs {
    /// Directory to install into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// A configuration to validate and install as DIR/mcp-redirect.toml (only this option:
    /// MCP_REDIRECT_CONFIG is not read)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// What one file of the install is made from.
enum Source {
    /// A file, copied as it is.
    File(PathBuf),
    /// Bytes already read (the config: the bytes that were validated are the ones written).
    Bytes(PathBuf, Vec<u8>),
}

impl Source {
    fn path(&self) -> &Path {
        match self {
            Source::File(path) | Source::Bytes(path, _) => path,
        }
    }
}

pub fn install(args: InstallArgs) -> u8 {
    let library = match crate::run::find_library() {
        Ok(path) => path,
        Err(message) => {
            crate::complain(message);
            return 2;
        }
    };
    let Ok(program) = crate::run::this_program().map_err(crate::complain) else {
        return 2;
    };
    let mut files = vec![
        (LIBRARY, Source::File(library), 0o644),
        (PROGRAM, Source::File(program), 0o755),
    ];
    if let Some(path) = &args.config {
        let path = crate::absolute(path);
        match validated_config(&path) {
            Some(bytes) => files.push((CONFIG, Source::Bytes(path, bytes), 0o644)),
            None => {
                crate::complain("nothing was installed");
                return 2;
            }
        }
    }
    if !crate::STATIC {
        crate::complain(
            "note: this mcp-redirect is dynamically linked (glibc): the copy runs only in images with a compatible glibc; the statically linked one (scripts/build-static-cli.sh) runs in any",
        );
    }

    let dir = crate::absolute(&args.to);
    if let Err(e) = fs::create_dir_all(&dir) {
        crate::complain(format!("cannot create {}: {e}", dir.display()));
        return 2;
    }
    for (name, source, mode) in &files {
        let target = dir.join(name);
        match write_atomically(&dir, name, source, *mode) {
            Ok(size) => println!(
                "installed {} ({size} bytes, from {})",
                target.display(),
                source.path().display()
            ),
            Err(e) => {
                crate::complain(format!(
                    "cannot install {} from {}: {e}",
                    target.display(),
                    source.path().display()
                ));
                return 2;
            }
        }
    }
    // The renames are durable once the directory is.
    if let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
        crate::complain(format!("cannot sync {}: {e}", dir.display()));
        return 2;
    }
    0
}

/// The config's bytes, if the library would accept them; else the error is printed. A
/// `password_env` variable unset here is only a note: the installer (an init container) rarely
/// holds the program's secrets, and the library checks again where the program runs.
pub fn validated_config(path: &Path) -> Option<Vec<u8>> {
    let fail = |message: String| {
        crate::complain(format!("config {}: {message}", path.display()));
        None
    };
    let bytes = match mcp_redirect_core::sys::read_small_file(path, CONFIG_LIMIT) {
        Ok(bytes) => bytes,
        Err(e) => {
            return fail(format!(
                "cannot read the file: {}",
                mcp_redirect_core::errno::errno_text(&e)
            ))
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return fail("the file is not UTF-8".into());
    };
    let unset = std::cell::RefCell::new(Vec::new());
    let passwords = password_variables(text);
    let getenv = |name: &str| {
        crate::getenv(name).or_else(|| {
            // Only a password stands in for itself; any other variable the loader reads (a
            // cache directory, a pod's name) is as unset as it is.
            if !passwords.iter().any(|p| p == name) {
                return None;
            }
            unset.borrow_mut().push(name.to_string());
            // Stands in for the secret while the rest of the file is checked.
            Some("unset".to_string())
        })
    };
    if let Err(error) = config::parse(text, ConfigSource::File(path.to_path_buf()), &getenv) {
        crate::complain(&error);
        return None;
    }
    for name in unset.into_inner() {
        crate::complain(format!(
            "note: {name} (a password_env) is not set here; it must be set where the program runs, or the library refuses the config"
        ));
    }
    Some(bytes)
}

/// The `password_env` variables a config's gateways name (nothing for a file that is not TOML:
/// the loader says what is wrong with it).
pub fn password_variables(config: &str) -> Vec<String> {
    let Ok(value) = config.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut names: Vec<String> = value
        .get("gateways")
        .and_then(|g| g.as_table())
        .into_iter()
        .flat_map(|gateways| gateways.values())
        .filter_map(|gw| gw.get("password_env")?.as_str().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Creates `path` for writing, readable by its owner only and closed on exec; it must not exist
/// (a symlink there is not followed): the temporary file of an atomic replace.
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Writes `DIR/name` from `source` through a temporary file in DIR (same file system, so the
/// rename is atomic), with `mode`; returns the size written.
fn write_atomically(dir: &Path, name: &str, source: &Source, mode: u32) -> io::Result<u64> {
    let temporary = dir.join(format!(".{name}.install-{}", std::process::id()));
    let result = (|| {
        // A leftover of an earlier run that died with this pid; never followed if a symlink.
        match fs::remove_file(&temporary) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut out = create_private(&temporary)?;
        let size = match source {
            Source::File(path) => io::copy(&mut File::open(path)?, &mut out)?,
            Source::Bytes(_, bytes) => {
                out.write_all(bytes)?;
                bytes.len() as u64
            }
        };
        // Explicit, not through the umask: the program's user may not be the installer's.
        out.set_permissions(fs::Permissions::from_mode(mode))?;
        out.sync_all()?;
        fs::rename(&temporary, dir.join(name))?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}
