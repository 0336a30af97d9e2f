#!/usr/bin/env bash
# What a connection costs under the supervisor and under `run --isolate` (issue 20), beside no
# interposer and the preloaded library: benches/hotpath.c `fetch` (connect, "GET /", the first
# byte of the reply; one thread) to benches/origin.c's HTTP listener, through a `rewrite`
# gateway for a routed name (the name is looked up once, as a client with a pool would).
#
#   cargo build --release && scripts/bench-isolate.sh [--ops N] [--rounds R]
#
# Root; it runs in a network namespace of its own with only loopback. Prints, per mode, the
# median over the rounds (modes alternate within each round) of the wall time per connection
# and of the client's own CPU time per connection (the supervisor's is not in it).
set -euo pipefail
cd "$(dirname "$0")/.."
ops=2000
rounds=5
while (($#)); do
    case $1 in
        --ops) ops=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [[ -z ${BENCH_ISOLATE_NS:-} ]]; then
    BENCH_ISOLATE_NS=1 exec unshare -n "$0" --ops "$ops" --rounds "$rounds"
fi
ip link set lo up
cli=$(realpath "${CARGO_TARGET_DIR:-target}/release/mcp-redirect")
[[ -x $cli ]] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
cc -O2 -pthread -o "$work/hotpath" benches/hotpath.c
cc -O2 -pthread -o "$work/origin" benches/origin.c
"$work/origin" "$work/origin.sock" >"$work/origin.out" 2>"$work/origin.err" &
for _ in $(seq 100); do [[ -s $work/origin.out ]] && break; sleep 0.05; done
http=$(sed -n 's/.* http=\([0-9]*\)$/\1/p' "$work/origin.out")
[[ -n $http ]] || { echo "the origin did not start" >&2; exit 1; }
cat >"$work/config.toml" <<EOF
default = "deny"
[log]
path = "off"
[gateways.api]
kind = "rewrite"
endpoints = ["127.0.0.1:$http"]
[[rules]]
host = "api.bench.test"
via = "api"
EOF

fetch=(run -n "$ops" -w 50 fetch)
declare -A runs=(
    [none]="$work/hotpath ${fetch[*]} 127.0.0.1 $http"
    [library]="$cli run --mode preload --config $work/config.toml -- $work/hotpath ${fetch[*]} api.bench.test $http"
    [supervise]="$cli run --mode supervise --config $work/config.toml -- $work/hotpath ${fetch[*]} api.bench.test $http"
    [isolate]="$cli run --isolate --config $work/config.toml -- $work/hotpath ${fetch[*]} api.bench.test $http"
)
modes=(none library supervise isolate)
for _ in $(seq "$rounds"); do
    for mode in "${modes[@]}"; do
        # shellcheck disable=SC2086
        ${runs[$mode]} | python3 -c '
import json, sys
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
print(sys.argv[1], 1e6 * r["wall_s"] / r["ops"], 1e6 * (r["user_s"] + r["sys_s"]) / r["ops"])
' "$mode" >>"$work/results"
    done
done
echo "$ops connections per round, $rounds rounds; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    mode, wall, cpu = line.split()
    rows.setdefault(mode, []).append((float(wall), float(cpu)))
print(f"{'mode':<10} {'wall µs/connection':>20} {'client CPU µs':>15}")
for mode in ["none", "library", "supervise", "isolate"]:
    walls = [w for w, _ in rows[mode]]
    cpus = [c for _, c in rows[mode]]
    print(f"{mode:<10} {statistics.median(walls):>10.1f} ({min(walls):.1f}-{max(walls):.1f}) {statistics.median(cpus):>10.1f}")
PY
