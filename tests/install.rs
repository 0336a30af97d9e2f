//! `mcp-redirect install --to DIR`: the library, the command and a validated config land in DIR
//! with their modes, the copy finds the copied library next to itself and runs programs through
//! the gateway; running it again (even the copy over itself) leaves the same files; an invalid
//! config installs nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::*;

/// `program args...` in the tests' private mount namespace, without the library preloaded.
fn tool(program: &Path, args: &[&str]) -> Run {
    library();
    Run::new(program.to_str().unwrap(), args).without_preload()
}

fn install(program: &Path, dir: &Path, config: Option<&Path>) -> Finished {
    let mut args = vec!["install", "--to", dir.to_str().unwrap()];
    if let Some(config) = config {
        args.extend(["--config", config.to_str().unwrap()]);
    }
    tool(program, &args).output()
}

/// The directory's entries, sorted: no temporary file may be left behind.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn install_copies_the_three_files_and_the_copy_runs_curl_through_the_gateway() {
    let origin = Origin::start("origin");
    let proxy = ConnectProxy::start(origin.addr, ProxyBehaviour::Tunnel);
    let scratch = Scratch::new("install");
    let config = example_test_via(&scratch, proxy.addr);
    // Created, parents too.
    let dir = scratch.dir.join("volume/mcp-redirect");

    let out = install(Path::new(cli_exe()), &dir, Some(&config));
    let library = library().canonicalize().unwrap();
    let cli = Path::new(cli_exe()).canonicalize().unwrap();
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert_eq!(
        out.success().lines().collect::<Vec<_>>(),
        [
            format!(
                "installed {}/libmcp_redirect.so ({} bytes, from {})",
                dir.display(),
                size(&library),
                library.display()
            ),
            format!(
                "installed {}/mcp-redirect ({} bytes, from {})",
                dir.display(),
                size(&cli),
                cli.display()
            ),
            format!(
                "installed {}/mcp-redirect.toml ({} bytes, from {})",
                dir.display(),
                size(&config),
                config.display()
            ),
        ]
    );
    assert_eq!(
        entries(&dir),
        ["libmcp_redirect.so", "mcp-redirect", "mcp-redirect.toml"]
    );
    for (name, source, expected_mode) in [
        ("libmcp_redirect.so", &library, 0o644),
        ("mcp-redirect", &cli, 0o755),
        ("mcp-redirect.toml", &config, 0o644),
    ] {
        let installed = dir.join(name);
        assert!(
            std::fs::read(&installed).unwrap() == std::fs::read(source).unwrap(),
            "{name} differs from {}",
            source.display()
        );
        assert_eq!(mode(&installed), expected_mode, "{name}'s mode");
    }

    // The copy finds the copied library next to itself (nothing at DIR/../lib, no
    // MCP_REDIRECT_LIB), and runs a program through the gateway with the copied config.
    let copy = dir.join("mcp-redirect");
    let installed_config = dir.join("mcp-redirect.toml");
    let dry = tool(
        &copy,
        &[
            "run",
            "--config",
            installed_config.to_str().unwrap(),
            "--dry-run",
            "--",
            "curl",
        ],
    )
    .output();
    assert_eq!(
        dry.success().lines().next().unwrap(),
        format!("LD_PRELOAD={}/libmcp_redirect.so", dir.display())
    );
    let out = curl_from_install(&dir, "auto");
    assert_eq!(out.success(), "hello from origin");
    assert_eq!(
        proxy.request_lines(),
        ["CONNECT api.example.test:80 HTTP/1.1"]
    );
}

#[test]
fn installing_again_even_the_copy_over_itself_leaves_the_same_files() {
    let scratch = Scratch::new("install-again");
    let config = Config::new().default("direct").write(&scratch);
    let dir = scratch.dir.join("mcp-redirect");
    let first = install(Path::new(cli_exe()), &dir, Some(&config));
    first.success();
    let snapshot = |dir: &Path| -> Vec<(String, Vec<u8>, u32)> {
        entries(dir)
            .into_iter()
            .map(|name| {
                let path = dir.join(&name);
                (name, std::fs::read(&path).unwrap(), mode(&path))
            })
            .collect()
    };
    let before = snapshot(&dir);
    // The installed program copies itself and the library beside it onto themselves.
    let copy = dir.join("mcp-redirect");
    let again = install(&copy, &dir, Some(&dir.join("mcp-redirect.toml")));
    assert_eq!(again.success().lines().count(), 3, "{}", again.describe());
    assert!(
        snapshot(&dir) == before,
        "the files changed: {}",
        again.describe()
    );
    // And once more from the original, without a config: the installed config stays.
    install(Path::new(cli_exe()), &dir, None).success();
    assert!(snapshot(&dir) == before);
}

#[test]
fn an_invalid_config_installs_nothing() {
    let scratch = Scratch::new("install-invalid");
    let config = scratch.config("[gateways.corp]\nkind = \"ftp\"\nendpoints = [\"127.0.0.1:1\"]\n");
    let dir = scratch.dir.join("mcp-redirect");
    let out = install(Path::new(cli_exe()), &dir, Some(&config));
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(
        out.stderr.contains("gateways.corp.kind")
            && out.stderr.contains("mcp-redirect: nothing was installed"),
        "{}",
        out.describe()
    );
    assert!(!dir.exists(), "{} was created", dir.display());
}

#[test]
fn a_password_variable_unset_in_the_installer_is_only_a_note() {
    // An init container does not hold the program's secrets: the config is installed, and the
    // library checks the variable where the program runs.
    let scratch = Scratch::new("install-password");
    let config = Config::new()
        .gateway("corp", "http", &["127.0.0.1:3128"])
        .gateway_option(r#"username = "mcp""#)
        .gateway_option(r#"password_env = "MCP_REDIRECT_TEST_UNSET_PASSWORD""#)
        .write(&scratch);
    let dir = scratch.dir.join("mcp-redirect");
    let out = install(Path::new(cli_exe()), &dir, Some(&config));
    out.success();
    assert!(
        out.stderr
            .contains("note: MCP_REDIRECT_TEST_UNSET_PASSWORD (a password_env) is not set here"),
        "{}",
        out.describe()
    );
    assert_eq!(
        std::fs::read(dir.join("mcp-redirect.toml")).unwrap(),
        std::fs::read(&config).unwrap()
    );
    // `check` still refuses it, as the library will where the variable is missing.
    let check = tool(
        Path::new(cli_exe()),
        &["check", "--config", config.to_str().unwrap()],
    )
    .output();
    assert_eq!(check.code, Some(2), "{}", check.describe());
}
