# An image for running MCP servers behind libmcp_redirect.so: every process in a container
# started from it has its outbound connections decided by /etc/mcp-redirect/mcp-redirect.toml.
# It also ships the mcp-redirect command (run, check, explain, report, learn, init, install, env,
# wrap, unwrap; its bash, zsh and fish completions and man pages under /usr/local/share), and starts
# every command through it: ENTRYPOINT ["mcp-redirect", "run", "--"]. The command is statically
# linked, so `mcp-redirect install --to DIR` copies one that runs in any image (glibc, musl or
# distroless) together with the library: what a Kubernetes init container does.
#
#   docker build -t mcp-redirect .
#   docker run --rm -v "$PWD/my.toml:/etc/mcp-redirect/mcp-redirect.toml:ro" mcp-redirect
#       (no command: `mcp-redirect check` prints what the mounted config says)
#   docker run --rm -i -v "$PWD/my.toml:/etc/mcp-redirect/mcp-redirect.toml:ro" my-server-image
#       (an image built FROM this one that installs the server and sets CMD to start it)
#
# The config shipped here is the annotated example (examples/mcp-redirect.toml). It expects
# gateways on 127.0.0.1 and the variable MCP_REDIRECT_CORP_PASSWORD, so until you mount your own
# config, `mcp-redirect run` refuses to start anything (and a process started some other way has
# every connection refused). That is deliberate: the image fails closed.
#
# Programs run as the unprivileged user `mcp` (uid 10001); a mounted config must be readable by it.
# To add the library to an existing MCP server image instead, see examples/mcp-server.Dockerfile.
#
# No container engine runs on the project's CI machine: scripts/integration-test.sh lints this
# file with hadolint, runs the build stage's commands natively, and replays the runtime stage in
# a chroot of a Debian bookworm root file system (see docs/development.md, "Integration tests").

# ---- Build the library, and the command statically linked ----
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The static command is a cargo build of its own, of the command's crate only (crates/cli; the
# library's hooks are in crates/preload, see the script); --out gives it a path that does not
# depend on the architecture. Then its shell
# completions and man pages, generated from its own definitions, in the layout of /usr/local/share.
RUN cargo build --release --locked && \
    scripts/build-static-cli.sh --out target/static/mcp-redirect && \
    mkdir -p target/static/share/bash-completion/completions target/static/share/zsh/site-functions \
        target/static/share/fish/vendor_completions.d && \
    target/static/mcp-redirect completions bash > target/static/share/bash-completion/completions/mcp-redirect && \
    target/static/mcp-redirect completions zsh > target/static/share/zsh/site-functions/_mcp-redirect && \
    target/static/mcp-redirect completions fish > target/static/share/fish/vendor_completions.d/mcp-redirect.fish && \
    target/static/mcp-redirect man --dir target/static/share/man/man1

# ---- Runtime: the library, the command, the config, an unprivileged user ----
# Same Debian release as the builder, so the glibc the library was linked against is present
# (the command needs none).
FROM debian:bookworm-slim
# The command looks for the library next to itself, then in ../lib/: /usr/local/lib here.
COPY --from=build /src/target/static/mcp-redirect /usr/local/bin/mcp-redirect
COPY --from=build /src/target/release/libmcp_redirect.so /usr/local/lib/libmcp_redirect.so
# Completions (bash, zsh, fish: where each looks below /usr/local/share) and man pages
# (`man mcp-redirect`, `man mcp-redirect-wrap`...), for an image that adds a shell or man.
COPY --from=build /src/target/static/share/ /usr/local/share/
# The default config path: mount your own config here (or the directory, for hot reload).
COPY examples/mcp-redirect.toml /etc/mcp-redirect/mcp-redirect.toml
ENV MCP_REDIRECT_CONFIG=/etc/mcp-redirect/mcp-redirect.toml
RUN groupadd --gid 10001 mcp && \
    useradd --no-log-init --uid 10001 --gid 10001 --home-dir /home/mcp --create-home \
        --shell /usr/sbin/nologin mcp

# LD_PRELOAD is set for the whole image, not only by the entrypoint. That is the point of this
# image: every process in the container, including those started by `docker exec` and servers
# started through launchers (npx, uvx, shell scripts), runs under the library. Static, Go and
# musl programs ignore LD_PRELOAD: started through the entrypoint (`mcp-redirect run`), they run
# under its seccomp supervisor instead; started another way (`docker exec` without
# `mcp-redirect run`, or as children of a preloaded program), they are not covered. Nor are
# setuid programs; `mcp-redirect run` warns when it starts one.
#
# It also applies to RUN steps of images built FROM this one. Install packages as root and
# without it:
#   USER root
#   RUN env -u LD_PRELOAD sh -c 'apt-get update && apt-get install -y --no-install-recommends nodejs'
#   USER 10001:10001
# or take only the two files into your own image (examples/mcp-server.Dockerfile).
ENV LD_PRELOAD=/usr/local/lib/libmcp_redirect.so
USER 10001:10001
WORKDIR /home/mcp
ENTRYPOINT ["mcp-redirect", "run", "--"]
CMD ["mcp-redirect", "check"]
