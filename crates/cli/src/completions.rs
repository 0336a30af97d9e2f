//! `mcp-redirect completions SHELL` and `mcp-redirect man`: shell completions (bash, zsh, fish)
//! and man pages, made from the command's own clap definitions when asked, so that they always
//! list exactly the subcommands and options this build accepts. The Dockerfile installs them.

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;

use clap::ValueEnum;
use clap_complete::aot::{generate, Bash, Fish, Zsh};

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// Write mcp-redirect.1 and a page per subcommand (mcp-redirect-run.1...) into DIR, created
    /// if missing, instead of printing the main page
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script for `shell` (the command is named `mcp-redirect`).
pub fn completions(args: CompletionsArgs, mut command: clap::Command) -> u8 {
    let mut out = Vec::new();
    match args.shell {
        Shell::Bash => generate(Bash, &mut command, "mcp-redirect", &mut out),
        Shell::Zsh => generate(Zsh, &mut command, "mcp-redirect", &mut out),
        Shell::Fish => generate(Fish, &mut command, "mcp-redirect", &mut out),
    }
    write_out(&out)
}

/// Prints the main man page, or writes every page into `--dir`.
pub fn man(args: ManArgs, command: clap::Command) -> u8 {
    match args.dir {
        Some(dir) => {
            if let Err(e) =
                std::fs::create_dir_all(&dir).and_then(|()| clap_mangen::generate_to(command, &dir))
            {
                crate::complain(format!("man: cannot write into {}: {e}", dir.display()));
                return 2;
            }
            0
        }
        None => {
            let mut out = Vec::new();
            if let Err(e) = clap_mangen::Man::new(command).render(&mut out) {
                crate::complain(format!("man: {e}"));
                return 2;
            }
            write_out(&out)
        }
    }
}

fn write_out(bytes: &[u8]) -> u8 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => 0,
        Err(e) => {
            crate::complain(format!("cannot write to standard output: {e}"));
            2
        }
    }
}
