# Adding the library to an existing MCP server image: take the two files from the mcp-redirect
# image (the repository's Dockerfile) and start the server through `mcp-redirect run`.
#
#   docker build -t mcp-redirect:0.1.0 .                      # from the repository root
#   docker build -f examples/mcp-server.Dockerfile -t github-mcp-redirected:0.1.0 examples/compose
#
# examples/compose.yaml builds and runs it behind a Squid gateway. The build context must hold
# mcp-redirect.toml (examples/compose/ does).
ARG MCP_REDIRECT_IMAGE=mcp-redirect:0.1.0
FROM ${MCP_REDIRECT_IMAGE} AS mcp-redirect

# Any image with a glibc-based Linux works (Debian, Ubuntu, RHEL-family); not Alpine (musl).
FROM node:20-bookworm-slim
# Installed before the library is in place, so the install itself is not redirected.
RUN npm install --global @modelcontextprotocol/server-github@2025.4.8 && npm cache clean --force
COPY --from=mcp-redirect /usr/local/bin/mcp-redirect /usr/local/bin/mcp-redirect
COPY --from=mcp-redirect /usr/local/lib/libmcp_redirect.so /usr/local/lib/libmcp_redirect.so
COPY mcp-redirect.toml /etc/mcp-redirect/mcp-redirect.toml
ENV MCP_REDIRECT_CONFIG=/etc/mcp-redirect/mcp-redirect.toml
# uid 1000 is the base image's `node` user.
USER 1000:1000
# `run` sets LD_PRELOAD for the server alone (and for what it starts), refuses an invalid config,
# and with --strict refuses a server that would ignore the library. The alternative, which also
# covers `docker exec`: ENV LD_PRELOAD=/usr/local/lib/libmcp_redirect.so, and ENTRYPOINT the
# server itself.
ENTRYPOINT ["mcp-redirect", "run", "--strict", "--"]
CMD ["mcp-server-github"]
