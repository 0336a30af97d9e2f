# An image for running MCP servers behind libmcp_redirect.so: every process in a container
# started from it has its outbound connections decided by /etc/mcp-redirect/mcp-redirect.toml.
# It also ships the mcp-redirect command (run, check, explain, report, init).
#
#   docker build -t mcp-redirect .
#   docker run --rm -v "$PWD/my.toml:/etc/mcp-redirect/mcp-redirect.toml:ro" ...
#
# The config shipped here is the annotated example (examples/mcp-redirect.toml). It expects
# gateways on 127.0.0.1 and the variable MCP_REDIRECT_CORP_PASSWORD, so until you mount your own
# config, connections are refused. That is deliberate: the image fails closed.

# ---- Build the library and the command (one cargo build makes both) ----
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

# ---- Runtime: the library, the command, the config, nothing else ----
# Same Debian release as the builder, so the glibc both were linked against is present.
FROM debian:bookworm-slim
# The command looks for the library next to itself, then in ../lib/: /usr/local/lib here.
COPY --from=build /src/target/release/mcp-redirect /usr/local/bin/mcp-redirect
COPY --from=build /src/target/release/libmcp_redirect.so /usr/local/lib/libmcp_redirect.so
COPY examples/mcp-redirect.toml /etc/mcp-redirect/mcp-redirect.toml
ENV MCP_REDIRECT_CONFIG=/etc/mcp-redirect/mcp-redirect.toml

# LD_PRELOAD is set for the whole image, not per server command. That is the point of this
# image: every process in the container, including servers started through launchers (npx, uvx,
# shell scripts), runs under the library without each command having to ask for it. Processes
# that ignore LD_PRELOAD (static and Go binaries, setuid programs) are not covered.
#
# It also applies to RUN steps of images built FROM this one. Install packages without it:
#   RUN env -u LD_PRELOAD sh -c 'apt-get update && apt-get install -y --no-install-recommends nodejs'
# or take only the two files into your own image and start servers with
# `mcp-redirect run --config ... -- CMD` (or set the variables there):
#   COPY --from=mcp-redirect /usr/local/bin/mcp-redirect /usr/local/bin/mcp-redirect
#   COPY --from=mcp-redirect /usr/local/lib/libmcp_redirect.so /usr/local/lib/libmcp_redirect.so
ENV LD_PRELOAD=/usr/local/lib/libmcp_redirect.so
