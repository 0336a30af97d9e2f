//! What to do with one server entry, whatever the file's syntax: the JSON and TOML editors read
//! an entry into a `View` and act on the `Plan` this module makes of it.

#![forbid(unsafe_code)]

use std::path::Path;

/// The name the command has, wherever it is installed: an entry whose command is a file of this
/// name, with `run` as its first argument, is already wrapped.
pub const PROGRAM_NAME: &str = "mcp-redirect";

/// An entry as read from the file.
#[derive(Debug, Default)]
pub struct View {
    /// The command, when it is a string.
    pub command: Option<String>,
    /// The command key is there but is not a string (an object, a number...).
    pub command_not_text: bool,
    pub args: Args,
    /// Variable names its `env` sets.
    pub env: Vec<String>,
    /// What makes it a remote server, when something does: `url`, `serverUrl`, `type "http"`...
    pub remote: Option<Remote>,
}

/// What makes an entry a remote server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A remote transport named in `type`: it outweighs a `command` (the client goes by it).
    Type(String),
    /// A key that gives a server's address (`url`...): remote only when there is no `command`.
    Key(&'static str),
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Remote::Type(value) => write!(f, "type \"{value}\""),
            Remote::Key(key) => f.write_str(key),
        }
    }
}

/// The `args` of an entry.
#[derive(Debug, Default)]
pub enum Args {
    #[default]
    Absent,
    /// Each element, `None` for one that is not a string.
    List(Vec<Option<String>>),
    /// Something other than an array.
    NotList,
}

/// The transports that connect to a URL instead of starting a process, as the clients spell
/// them in `type` (Claude Code, VS Code, Cline, Roo...).
pub const REMOTE_TYPES: &[&str] = &[
    "http",
    "sse",
    "streamable-http",
    "streamableHttp",
    "streamable_http",
    "ws",
    "websocket",
];

/// The keys that give a remote server's address (`url`: Cursor, Claude Code, VS Code, Zed,
/// Codex; `serverUrl`: Windsurf; `httpUrl`: Gemini CLI).
pub const REMOTE_KEYS: &[&str] = &["url", "serverUrl", "httpUrl"];

/// What `wrap` does with an entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    Wrap,
    /// Already runs under `mcp-redirect run`.
    Already,
    /// A remote server: the reason (which key).
    Remote(String),
    /// Left alone for another reason, said in the text.
    Skip(String),
}

/// What `wrap` does with this entry.
pub fn plan(view: &View) -> Plan {
    // A remote `type` outweighs a `command` (the client goes by the type); a URL alone makes
    // an entry remote only when it has no command.
    if let Some(remote) = &view.remote {
        if view.command.is_none() || matches!(remote, Remote::Type(_)) {
            return Plan::Remote(remote.to_string());
        }
    }
    let Some(command) = &view.command else {
        return Plan::Skip(if view.command_not_text {
            "its command is not a string".into()
        } else {
            "no command and no URL: nothing to start".into()
        });
    };
    if is_this_program(command) {
        return match wrapped_at(view) {
            Some(_) => Plan::Already,
            None => Plan::Skip(format!(
                "its command is {PROGRAM_NAME} already, but not `{PROGRAM_NAME} run ... -- CMD`"
            )),
        };
    }
    match &view.args {
        Args::NotList => Plan::Skip("its args is not an array".into()),
        Args::List(items) if items.iter().any(Option::is_none) => {
            Plan::Skip("its args holds something other than strings".into())
        }
        _ => Plan::Wrap,
    }
}

/// For a wrapped entry (`mcp-redirect run [OPTIONS] -- CMD [ARGS...]`), the index in `args` of
/// the `--` before the original command.
pub fn wrapped_at(view: &View) -> Option<usize> {
    if !view.command.as_deref().is_some_and(is_this_program) {
        return None;
    }
    let Args::List(items) = &view.args else {
        return None;
    };
    if items.first()?.as_deref() != Some("run") {
        return None;
    }
    let at = items.iter().position(|a| a.as_deref() == Some("--"))?;
    // The original command, a string, must follow.
    items.get(at + 1)?.as_ref()?;
    Some(at)
}

/// For a wrapped entry, the program and `--config` it runs with (`None` without a `--config`).
pub fn run_of(view: &View, at: usize) -> Option<super::Wrapper> {
    let Args::List(items) = &view.args else {
        return None;
    };
    let options = &items[1..at];
    let config = options.iter().enumerate().find_map(|(i, word)| {
        let word = word.as_deref()?;
        match word.strip_prefix("--config=") {
            Some(value) => Some(value.to_string()),
            None if word == "--config" => options.get(i + 1)?.clone(),
            None => None,
        }
    })?;
    Some(super::Wrapper {
        program: view.command.clone()?,
        config,
    })
}

/// A command naming this program, wherever installed.
pub fn is_this_program(command: &str) -> bool {
    Path::new(command).file_name().and_then(|n| n.to_str()) == Some(PROGRAM_NAME)
}

/// The remote reason for an entry's `type` value, if it names a remote transport.
pub fn remote_type(value: &str) -> Option<Remote> {
    REMOTE_TYPES
        .contains(&value)
        .then(|| Remote::Type(value.to_string()))
}

/// The notes for an entry that is wrapped: what its `env` sets that matters, and a container
/// it starts.
pub fn env_notes(view: &View) -> Vec<String> {
    let mut notes = Vec::new();
    if view.env.iter().any(|k| k == "LD_PRELOAD") {
        notes.push(
            "its env sets LD_PRELOAD: kept; mcp-redirect run puts the library first and keeps \
             that after it"
                .to_string(),
        );
    }
    let container = ["docker", "podman", "nerdctl"];
    let first = match &view.args {
        Args::List(items) => items.first().cloned().flatten(),
        _ => None,
    };
    if view
        .command
        .as_deref()
        .and_then(|c| Path::new(c).file_name()?.to_str())
        .is_some_and(|c| container.contains(&c))
        && first.as_deref() == Some("run")
    {
        notes.push(
            "it starts a container: the server inside runs without the library and its \
             variables unless the image has them (see docs/docker.md); only the container \
             tool itself runs under mcp-redirect run"
                .to_string(),
        );
    }
    if view.env.iter().any(|k| k == "MCP_REDIRECT_CONFIG") {
        notes.push(
            "its env sets MCP_REDIRECT_CONFIG: run's --config replaces it for the server"
                .to_string(),
        );
    }
    notes
}

/// The command line an entry runs, for messages: `uvx mcp-server-fetch`.
pub fn command_line(view: &View) -> String {
    let mut words = vec![view.command.clone().unwrap_or_default()];
    if let Args::List(items) = &view.args {
        words.extend(items.iter().map(|a| a.clone().unwrap_or_default()));
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(command: Option<&str>, args: Option<&[&str]>) -> View {
        View {
            command: command.map(str::to_string),
            args: match args {
                Some(items) => Args::List(items.iter().map(|a| Some(a.to_string())).collect()),
                None => Args::Absent,
            },
            ..View::default()
        }
    }

    #[test]
    fn entries_are_planned() {
        assert_eq!(plan(&view(Some("npx"), Some(&["-y", "x"]))), Plan::Wrap);
        assert_eq!(plan(&view(Some("/opt/server"), None)), Plan::Wrap);
        let wrapped = view(
            Some("/usr/local/bin/mcp-redirect"),
            Some(&["run", "--config", "/c.toml", "--", "npx", "x"]),
        );
        assert_eq!(plan(&wrapped), Plan::Already);
        assert_eq!(wrapped_at(&wrapped), Some(3));
        assert!(matches!(
            plan(&view(Some("mcp-redirect"), Some(&["check"]))),
            Plan::Skip(_)
        ));
        assert!(matches!(
            plan(&view(Some("mcp-redirect"), Some(&["run", "--"]))),
            Plan::Skip(_)
        ));
        let mut remote = view(None, None);
        remote.remote = Some(Remote::Key("url"));
        assert_eq!(plan(&remote), Plan::Remote("url".into()));
        let mut typed = view(Some("npx"), None);
        typed.remote = remote_type("http");
        assert_eq!(plan(&typed), Plan::Remote("type \"http\"".into()));
        let mut url_and_command = view(Some("npx"), None);
        url_and_command.remote = Some(Remote::Key("url"));
        assert_eq!(plan(&url_and_command), Plan::Wrap);
        assert!(matches!(plan(&view(None, None)), Plan::Skip(_)));
        let mut odd = view(Some("npx"), None);
        odd.args = Args::List(vec![Some("-y".into()), None]);
        assert!(matches!(plan(&odd), Plan::Skip(_)));
    }
}
