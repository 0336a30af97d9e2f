#!/usr/bin/env bash
# Per-call cost of the library on its hot paths, against no preload, on this machine.
# Prints median and spread (min-max) of 7 runs for each case, in nanoseconds per call.
#
#   cargo build --release && scripts/microbench.sh
#
# Cases: connect() to a loopback listener (AF_INET, decided and logged, vs AF_UNIX, untouched),
# getaddrinfo() for a direct name (/etc/hosts) and a routed one (fake address, no DNS), and
# close() of a descriptor that is not a followed connection (a pipe's), before and after the
# process has a followed connection (one whose close line is due);
# then static programs under the supervisor (run --mode supervise): connect() and sends.
# The full comparison with proxychains-ng and torsocks is scripts/bench.sh (planned).
set -euo pipefail
cd "$(dirname "$0")/.."
lib="${CARGO_TARGET_DIR:-target}/release/libmcp_redirect.so"
[[ -f $lib ]] || { echo "build first: cargo build --release" >&2; exit 1; }
lib=$(realpath "$lib")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -pthread -o "$work/hotpath" benches/hotpath.c
cat >"$work/config.toml" <<TOML
[log]
path = "$work/events.jsonl"
[gateways.corp]
kind = "http"
endpoints = ["127.0.0.1:9"]
[[rules]]
host = "*.routed.test"
via = "corp"
[[rules]]
cidr = "127.0.0.0/8"
action = "direct"
TOML

sed 's/^\[log\]$/[log]\ndirect = false/' "$work/config.toml" >"$work/quiet.toml"
sed 's/^\[log\]$/[log]\nformat = "ecs"/' "$work/config.toml" >"$work/ecs.toml"

runs=7
none=(LD_PRELOAD=)
idle=(LD_PRELOAD="$lib" MCP_REDIRECT_CONFIG=)
active=(LD_PRELOAD="$lib" MCP_REDIRECT_CONFIG="$work/config.toml")
quiet=(LD_PRELOAD="$lib" MCP_REDIRECT_CONFIG="$work/quiet.toml")
ecs=(LD_PRELOAD="$lib" MCP_REDIRECT_CONFIG="$work/ecs.toml")
cases=(
    "connect AF_INET loopback|connect-inet 20000"
    "connect AF_UNIX|connect-unix 20000"
    "getaddrinfo localhost (/etc/hosts)|resolve localhost 20000"
    "getaddrinfo api.routed.test|resolve api.routed.test 20000"
    "dup()+close() of a pipe|close-pipe 200000"
    "dup()+close(), a connection followed|close-following 200000"
)
# Runs are interleaved (every mode once per round) so that drift on a shared machine hits all
# modes alike.
for round in $(seq $runs); do
    for i in "${!cases[@]}"; do
        read -r -a args <<<"${cases[$i]#*|}"
        for mode in none idle active quiet ecs; do
            declare -n envs=$mode
            # Without the library a routed name would go to real DNS: skip it.
            [[ $mode != active && $mode != quiet && $mode != ecs && ${args[1]} == api.routed.test ]] && continue
            echo "$i $mode $(env "${envs[@]}" "$work/hotpath" "${args[@]}")" >>"$work/results"
        done
    done
done
printf '%-36s %-8s %s\n' "case" "mode" "ns per call: median (min-max) of $runs runs"
for i in "${!cases[@]}"; do
    for mode in none idle active quiet ecs; do
        grep -q "^$i $mode " "$work/results" || continue
        grep "^$i $mode " "$work/results" | cut -d' ' -f3 | sort -n |
            awk -v label="${cases[$i]%%|*}" -v mode="$mode" \
                '{v[NR]=$1} END {printf "%-36s %-8s %6d (%d-%d)\n", label, mode, v[int((NR+1)/2)], v[1], v[NR]}'
    done
done
echo "modes: none = no preload; idle = library loaded, nothing configured; active = rules, log to a file;"
echo "       quiet = the same rules with [log] direct = false (direct connections not logged);"
echo "       ecs = the same rules with [log] format = \"ecs\" (Elastic Common Schema lines)"

# The supervisor (run --mode supervise): static programs, no preload, the same config.
cli="${CARGO_TARGET_DIR:-target}/release/mcp-redirect"
cc -O2 -static -pthread -o "$work/hotpath-static" benches/hotpath.c 2>/dev/null
cc -O2 -static -o "$work/sends-static" benches/sends.c
python3 - "$work/port" <<'PY' &
import socket, sys, threading
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
def drain(c):
    while c.recv(65536):
        pass
while True:
    c, _ = s.accept()
    threading.Thread(target=drain, args=(c,), daemon=True).start()
PY
drain_pid=$!
trap 'kill $drain_pid 2>/dev/null; rm -rf "$work"' EXIT
while [[ ! -s $work/port ]]; do sleep 0.05; done
port=$(cat "$work/port")
supervised=(
    "connect AF_INET loopback|$work/hotpath-static connect-inet 5000"
    "send() on TCP|$work/sends-static tcp-send 20000 $port"
    "sendmsg() on TCP|$work/sends-static tcp-sendmsg 20000 $port"
    "sendto() UDP with an address|$work/sends-static udp-sendto 20000 $port"
)
: >"$work/supervised"
for round in $(seq $runs); do
    for i in "${!supervised[@]}"; do
        read -r -a command <<<"${supervised[$i]#*|}"
        echo "$i none $(env LD_PRELOAD= "${command[@]}")" >>"$work/supervised"
        echo "$i supervise $("$cli" run --mode supervise --config "$work/config.toml" -- "${command[@]}")" >>"$work/supervised"
    done
done
echo
printf '%-36s %-9s %s\n' "case (static program)" "mode" "ns per call: median (min-max) of $runs runs"
for i in "${!supervised[@]}"; do
    for mode in none supervise; do
        grep "^$i $mode " "$work/supervised" | cut -d' ' -f3 | sort -n |
            awk -v label="${supervised[$i]%%|*}" -v mode="$mode" \
                '{v[NR]=$1} END {printf "%-36s %-9s %6d (%d-%d)\n", label, mode, v[int((NR+1)/2)], v[1], v[NR]}'
    done
done
echo "modes: none = the static program alone; supervise = under mcp-redirect run --mode supervise"
