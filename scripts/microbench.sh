#!/usr/bin/env bash
# Per-call cost of the library on its hot paths, against no preload, on this machine.
# Prints median and spread (min-max) of 7 runs for each case, in nanoseconds per call.
#
#   cargo build --release && scripts/microbench.sh
#
# Cases: connect() to a loopback listener (AF_INET, decided and logged, vs AF_UNIX, untouched),
# and getaddrinfo() for a direct name (/etc/hosts) and a routed one (fake address, no DNS).
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

runs=7
none=(LD_PRELOAD=)
idle=(LD_PRELOAD="$lib" MCP_REDIRECT_CONFIG=)
active=(LD_PRELOAD="$lib" MCP_REDIRECT_CONFIG="$work/config.toml")
quiet=(LD_PRELOAD="$lib" MCP_REDIRECT_CONFIG="$work/quiet.toml")
cases=(
    "connect AF_INET loopback|connect-inet 20000"
    "connect AF_UNIX|connect-unix 20000"
    "getaddrinfo localhost (/etc/hosts)|resolve localhost 20000"
    "getaddrinfo api.routed.test|resolve api.routed.test 20000"
)
# Runs are interleaved (every mode once per round) so that drift on a shared machine hits all
# modes alike.
for round in $(seq $runs); do
    for i in "${!cases[@]}"; do
        read -r -a args <<<"${cases[$i]#*|}"
        for mode in none idle active quiet; do
            declare -n envs=$mode
            # Without the library a routed name would go to real DNS: skip it.
            [[ $mode != active && $mode != quiet && ${args[1]} == api.routed.test ]] && continue
            echo "$i $mode $(env "${envs[@]}" "$work/hotpath" "${args[@]}")" >>"$work/results"
        done
    done
done
printf '%-36s %-8s %s\n' "case" "mode" "ns per call: median (min-max) of $runs runs"
for i in "${!cases[@]}"; do
    for mode in none idle active quiet; do
        grep -q "^$i $mode " "$work/results" || continue
        grep "^$i $mode " "$work/results" | cut -d' ' -f3 | sort -n |
            awk -v label="${cases[$i]%%|*}" -v mode="$mode" \
                '{v[NR]=$1} END {printf "%-36s %-8s %6d (%d-%d)\n", label, mode, v[int((NR+1)/2)], v[1], v[NR]}'
    done
done
echo "modes: none = no preload; idle = library loaded, nothing configured; active = rules, log to a file;"
echo "       quiet = the same rules with [log] direct = false (direct connections not logged)"
