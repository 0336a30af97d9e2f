#!/usr/bin/env bash
# The main job: shows libmcp_redirect.so routing unmodified curl and python3 by host rules.
#
# Starts a local HTTP origin and a local HTTP CONNECT gateway (scripts/demo_origin.py,
# scripts/demo_gateway.py) on free 127.0.0.1 ports, writes a config that routes *.example.test
# through the gateway and denies everything else, then runs curl and python3 under LD_PRELOAD:
#   1. curl    http://api.example.test:PORT/      through the gateway: must succeed
#   2. python3 http://docs.example.test:PORT/...  through the gateway: must succeed
#   3. python3 http://forbidden.example.test:PORT/ denied by a rule: must fail with EACCES
#   4. curl    http://refused.example.test:PORT/   the gateway answers 403: must fail
# and prints what the gateway was asked and the JSON log. Exits non-zero if any check fails.
#
# The .example.test names need no DNS: routed and denied names get fake addresses, and the
# gateway only ever connects to 127.0.0.1. Nothing leaves the machine.
#
# Needs: target/release/libmcp_redirect.so (run `cargo build --release` first), curl, python3.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lib="${CARGO_TARGET_DIR:-$repo/target}/release/libmcp_redirect.so"

if [[ ! -f $lib ]]; then
    echo "demo: $lib is missing; build it first with: cargo build --release" >&2
    exit 1
fi
for tool in curl python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "demo: $tool is needed on PATH" >&2
        exit 1
    fi
done

# Proxy variables would make curl and urllib talk to a proxy themselves, MCP_REDIRECT_LOG would
# move the log, and an inherited preload would apply to the demo's own servers.
unset http_proxy https_proxy all_proxy no_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY
unset MCP_REDIRECT_LOG MCP_REDIRECT_CONFIG LD_PRELOAD

work=$(mktemp -d "${TMPDIR:-/tmp}/mcp-redirect-demo.XXXXXX")
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits for a server to write the port it bound; prints it.
wait_for_port() {
    local file=$1 name=$2 pid=$3
    for _ in $(seq 100); do
        if [[ -s $file ]]; then
            cat "$file"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "demo: the $name did not start; its output:" >&2
    cat "$work/$name.out" >&2 || true
    return 1
}

step() {
    printf '\n== %s\n' "$*"
}

failures=()
fail() {
    echo "demo: FAILED: $*" >&2
    failures+=("$*")
}

# Runs a command with the library preloaded and the demo config.
preloaded() {
    env LD_PRELOAD="$lib" MCP_REDIRECT_CONFIG="$work/mcp-redirect.toml" "$@"
}

step "Starting a local origin and a local HTTP CONNECT gateway"
python3 "$repo/scripts/demo_origin.py" --port-file "$work/origin.port" >"$work/origin.out" 2>&1 &
pids+=($!)
origin_port=$(wait_for_port "$work/origin.port" origin "${pids[-1]}")
python3 "$repo/scripts/demo_gateway.py" --port-file "$work/gateway.port" \
    --origin-port "$origin_port" --refuse refused.example.test >"$work/gateway.out" 2>&1 &
pids+=($!)
gateway_port=$(wait_for_port "$work/gateway.port" gateway "${pids[-1]}")
echo "origin  on 127.0.0.1:$origin_port"
echo "gateway on 127.0.0.1:$gateway_port (tunnels every CONNECT to the origin; 403 for refused.example.test)"

cat >"$work/mcp-redirect.toml" <<EOF
# Written by scripts/demo.sh.
default = "deny"                 # anything no rule allows is refused

[log]
path = "$work/connections.jsonl"

[gateways.demo]
kind = "http"
endpoints = ["127.0.0.1:$gateway_port"]
connect_timeout_ms = 2000

[[rules]]
host = "forbidden.example.test"
action = "deny"

[[rules]]
host = "*.example.test"          # subdomains of example.test
via = "demo"
EOF
step "Config ($work/mcp-redirect.toml)"
cat "$work/mcp-redirect.toml"

url_api="http://api.example.test:$origin_port/"
url_docs="http://docs.example.test:$origin_port/guide?from=python"
url_forbidden="http://forbidden.example.test:$origin_port/"
url_refused="http://refused.example.test:$origin_port/"

step "1. curl $url_api (routed through the gateway)"
if ! preloaded curl -sS --max-time 10 "$url_api"; then
    fail "curl could not reach $url_api through the gateway"
fi

step "2. python3 urllib $url_docs (routed through the gateway)"
fetch='import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode(), end="")'
if ! preloaded python3 -c "$fetch" "$url_docs"; then
    fail "python3 could not reach $url_docs through the gateway"
fi

step "3. python3 urllib $url_forbidden (denied by a rule)"
# Exit 13 = refused with EACCES (the expected outcome); 0 = reached; 1 = failed otherwise.
expect_eacces='import errno, sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=10)
except OSError as e:
    reason = getattr(e, "reason", e)
    print(f"python3: {reason!r}")
    sys.exit(13 if getattr(reason, "errno", None) == errno.EACCES else 1)
print("python3: the request succeeded")'
rc=0
preloaded python3 -c "$expect_eacces" "$url_forbidden" || rc=$?
case $rc in
    13) echo "(refused with EACCES, as configured)" ;;
    0) fail "the denied host $url_forbidden was reached" ;;
    *) fail "the denied host failed, but not with EACCES (exit $rc)" ;;
esac

step "4. curl $url_refused (the gateway answers 403)"
if preloaded curl -sS --max-time 10 "$url_refused" 2>&1; then
    fail "curl reached $url_refused although the gateway refuses it"
else
    echo "(refused by the gateway: curl sees ECONNREFUSED, the log carries the status line)"
fi

step "What the gateway was asked"
cat "$work/gateway.out"
grep -q "CONNECT api.example.test:$origin_port " "$work/gateway.out" ||
    fail "the gateway never saw CONNECT api.example.test"
grep -q "CONNECT docs.example.test:$origin_port " "$work/gateway.out" ||
    fail "the gateway never saw CONNECT docs.example.test"
if grep -q "forbidden.example.test" "$work/gateway.out"; then
    fail "the denied host reached the gateway"
fi

step "The JSON log ($work/connections.jsonl)"
if [[ -s "$work/connections.jsonl" ]]; then
    cat "$work/connections.jsonl"
else
    fail "the log is empty"
fi
grep -q '"event":"connect".*"host":"api.example.test".*"action":"gateway".*"result":"ok"' \
    "$work/connections.jsonl" || fail "no successful gateway connect for api.example.test in the log"
grep -q '"event":"connect".*"host":"forbidden.example.test".*"action":"deny".*"result":"EACCES"' \
    "$work/connections.jsonl" || fail "no EACCES line for forbidden.example.test in the log"

echo
if ((${#failures[@]} > 0)); then
    echo "demo: ${#failures[@]} check(s) failed:" >&2
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "demo: all checks passed"
