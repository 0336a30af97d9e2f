#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted code for sh -c, node, python and bash is meant literally
# The acceptance test: libmcp_redirect.so and the mcp-redirect command with real gateways, real
# unmodified clients and real MCP servers from their registries, all on loopback.
#
#   scripts/integration-test.sh [--no-install | --install-only] [--keep] [--only REGEX]
#
# Scenarios (each a function in scripts/integration/scenarios/; `--only` picks them by name):
#   client CLIENT        curl, wget, Python urllib/requests/httpx/aiohttp, Node fetch/https/axios,
#                        Java's HttpClient and Ruby's Net::HTTP fetch an https page, once under
#                        `mcp-redirect run` through squid, once under raw LD_PRELOAD through
#                        dante with username auth
#   event_loop CLIENT    Node fetch, Java's HttpClient (sendAsync), httpx and aiohttp ask for 8
#                        pages at once through a gateway that answers each CONNECT after 1 s
#                        (scripts/integration/slow_gateway.py, which counts how many it holds at
#                        once), then for a refused host; `requests` (a socket with a timeout:
#                        non-blocking inside) once: every handshake on the library's relay
#   squid_* dante_* microsocks_* haproxy_* mitmproxy_*
#                        what each gateway does with the library's handshake: squid's ACL (403)
#                        and Basic auth (407 for a wrong password), dante with and without auth,
#                        microsocks (https and plain http), haproxy routing on the PROXY v2
#                        header's AUTHORITY and on the TLS SNI, mitmproxy decrypting requests
#   mcp_server_*         mcp-server-fetch (PyPI) through squid, server-github (npm) through
#                        mitmproxy, server-postgres (npm) to PostgreSQL by hostname through dante,
#                        server-brave-search (npm) through haproxy with PROXY v2; each driven by
#                        the PyPI `mcp` SDK's stdio client (scripts/integration/mcp_call.py), each
#                        also with its gateway stopped (fails closed) and with a deny rule
#   default_deny deny_rule invalid_config go_binary check_probe
#                        refusals as programs see them, `run --strict` on a Go binary, and
#                        `check --connect --probe` against every gateway
#   deployment_lint example_configs docker_image
#                        hadolint, docker-compose config, squid -k parse and haproxy -c on the
#                        shipped files; every examples/*.toml checked and explained; the
#                        Dockerfile's build stage run natively and its runtime stage replayed in
#                        a chroot (scripts/integration/dockerfile_replay.py)
#
# Gateways (Debian packages, started here with minimal configs):
#   squid      HTTP CONNECT on 127.0.0.1:3128 (an ACL denies blocked.example.net) and with Basic
#              auth on 127.0.0.1:3129
#   danted     SOCKS5 without auth on 127.0.0.1:1080, with username auth on 127.0.0.1:1081
#   microsocks SOCKS5 on 127.0.0.1:1082
#   haproxy    the API-gateway kind ("rewrite"): 127.0.0.1:4000 takes a PROXY v2 header and routes
#              on its AUTHORITY (the hostname); 127.0.0.1:4001 routes on the TLS SNI
#   mitmdump   TLS-inspecting HTTP proxy on 127.0.0.1:8080, logging every request it decrypts
# Origins: scripts/integration/origin.py on 127.0.77.1:443 and :80 stands in for example.org,
# api.github.com and api.search.brave.com (certificates from a CA made here), and Debian's
# PostgreSQL on 127.0.77.2:5432 is db.internal.test. Only the gateways know those names: squid
# through its hosts_file, dante and microsocks through a private /etc/hosts in a mount namespace
# of their own, haproxy and mitmproxy through their configs. The programs under test get fake
# addresses from the library, so DNS is never asked. Each gateway connects to the origins from
# an address of its own (127.0.1.1 squid, .2 dante, .3 dante with auth, .4 microsocks,
# .5 haproxy, .6 mitmproxy), so the origin's log says which gateway delivered each request.
#
# Everything after the installs runs in a network namespace of its own with only loopback, a
# mount namespace with a private /etc/hosts and an /etc/resolv.conf naming only 127.0.0.1, and a
# PID namespace, so no packet can leave the machine whatever goes wrong, and every process the
# test started ends with it. Programs that do resolve a name for real (dns.mode = "local" for
# mcp-server-fetch) find it in a private /etc/hosts. Every program runs under the library with
# a config whose default is deny, so a mistake fails instead of leaking.
#
# Each scenario prints PASS, FAIL or SKIP with the reason; the last line is
# "integration: N passed, N failed, N skipped". Exit status: 0 when nothing failed, 1 otherwise,
# 2 when the test could not start (not root, --no-install with something missing).
#
# Options:
#   --no-install  fail at once if something is missing instead of installing it
#   --install-only  install what is missing (and build the release if needed), print the
#                 versions and stop: scripts/validate-deploy.sh reuses the venv, the npm prefix
#                 and the Debian root
#   --keep        keep the work directory (configs, every log) and print its path
#   --only REGEX  run only the scenarios whose name ("client curl", "mcp_server_fetch") matches
#
# Needs root (namespaces; gateways on fixed ports). Installs what is missing: Debian packages
# (apt), PyPI packages (scripts/integration/requirements.txt) into a venv and npm packages
# (scripts/integration/package.json) into a prefix, and a Debian bookworm root file system
# (debootstrap) for the Dockerfile replay, all three under the cache directory
# $MCP_REDIRECT_IT_CACHE (default: ~/.cache/mcp-redirect-integration), reused by later runs.
# Uses target/release/mcp-redirect and libmcp_redirect.so (runs `cargo build --release` only if
# they are missing).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
here=$repo/scripts/integration
release=${CARGO_TARGET_DIR:-$repo/target}/release
cli=$release/mcp-redirect
lib=$release/libmcp_redirect.so
cache=${MCP_REDIRECT_IT_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/mcp-redirect-integration}
venv=$cache/venv
npm_prefix=$cache/npm
py=$venv/bin/python

# The parts, sourced in this order (each file's header says what it holds):
#   scripts/integration/harness.sh      options, installs, sandbox, bookkeeping, scenario runner, summary
#   scripts/integration/gateways.sh     names and credentials, the test CA, origins and gateways
#   scripts/integration/checks.sh       running programs under the library; where connections went
#   scripts/integration/scenarios/*.sh  the scenarios, by subject (listed below in the order they run)
# The last three run inside the sandbox only.
entry_script=${BASH_SOURCE[0]}
# shellcheck source=integration/harness.sh
source "$here/harness.sh"

parse_options "$@"
if [[ -z ${MCP_REDIRECT_IT_INSIDE:-} ]]; then
    install_and_enter_sandbox # never returns
fi
setup_sandbox

# shellcheck source=integration/gateways.sh
source "$here/gateways.sh"
start_gateways

# Their top-level code writes the configs the scenarios share (into the sandbox's work directory).
# shellcheck source=integration/checks.sh
source "$here/checks.sh"
# shellcheck source=integration/scenarios/clients.sh
source "$here/scenarios/clients.sh"
# shellcheck source=integration/scenarios/gateways.sh
source "$here/scenarios/gateways.sh"
# shellcheck source=integration/scenarios/mcp_servers.sh
source "$here/scenarios/mcp_servers.sh"
# shellcheck source=integration/scenarios/fail_closed.sh
source "$here/scenarios/fail_closed.sh"
# shellcheck source=integration/scenarios/deployment.sh
source "$here/scenarios/deployment.sh"
# shellcheck source=integration/scenarios/docker_image.sh
source "$here/scenarios/docker_image.sh"

step "Scenarios"
# The passwords the configs' password_env names (each program's environment must hold them).
export MCP_IT_SQUID_PASSWORD=$squid_password MCP_IT_SOCKS_PASSWORD=$socks_password
for client_name in "${clients[@]}"; do
    scenario client "$client_name"
done
for client_name in node java httpx aiohttp requests; do
    scenario event_loop "$client_name"
done
scenario squid_acl
scenario squid_basic_auth
scenario dante_plain_and_auth
scenario microsocks_https_and_http
scenario haproxy_proxy_v2
scenario haproxy_sni
scenario mitmproxy_inspection
scenario mcp_server_fetch
scenario mcp_server_github
scenario mcp_server_postgres
scenario mcp_server_brave
scenario default_deny
scenario deny_rule
scenario invalid_config
scenario go_binary
scenario check_probe
scenario deployment_lint
scenario example_configs
scenario docker_image

summarize
