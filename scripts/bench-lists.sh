#!/usr/bin/env bash
# Rule sets at scale (issue 18): what a big rule set costs `check` and every process that loads
# it, for a million-host `host_list` and for inline [[rules]] tables of 1,000 to 70,000 hosts.
#
#   cargo build --release && scripts/bench-lists.sh
#   scripts/bench-lists.sh --lib OLD/libmcp_redirect.so --cli OLD/mcp-redirect --inline-only
#                                       # the same inline cases against another build
#
# Per case: `mcp-redirect check` wall time (for a list: the first run, which compiles it beside
# the list, and the next, which maps it); the time python3's first getaddrinfo() takes under the
# library minus without it (that first hooked call loads the config); and python3's memory then
# (/proc/self/smaps_rollup) minus without the library: private (what the process alone pays)
# and RSS (with the shared pages of the mapped list). Then 10 such processes at once: their
# private memory and PSS added, together. Medians of 5 runs. Everything is on this machine; the
# only lookup is of "localhost" (from /etc/hosts), so nothing goes to DNS.
set -euo pipefail
cd "$(dirname "$0")/.."
lib="${CARGO_TARGET_DIR:-target}/release/libmcp_redirect.so"
cli="${CARGO_TARGET_DIR:-target}/release/mcp-redirect"
inline_only=false
runs=5
while (($#)); do
    case $1 in
        --lib) lib=$2; shift 2 ;;
        --cli) cli=$2; shift 2 ;;
        --inline-only) inline_only=true; shift ;;
        --runs) runs=$2; shift 2 ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ -f $lib && -x $cli ]] || { echo "build first: cargo build --release" >&2; exit 1; }
lib=$(realpath "$lib")
cli=$(realpath "$cli")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The probe: time the first getaddrinfo, then report this process's memory.
cat >"$work/probe.py" <<'PY'
import socket, sys, time
t = time.perf_counter()
socket.getaddrinfo("localhost", 443)
took = time.perf_counter() - t
mem = {}
for line in open("/proc/self/smaps_rollup"):
    parts = line.split()
    if len(parts) >= 2 and parts[1].isdigit():
        mem[parts[0].rstrip(":")] = int(parts[1])
private = mem.get("Private_Clean", 0) + mem.get("Private_Dirty", 0)
print(f"{took * 1000:.3f} {private} {mem.get('Rss', 0)} {mem.get('Pss', 0)}")
if len(sys.argv) > 1:
    time.sleep(float(sys.argv[1]))
PY

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# probe CONFIG: "ms private_kb rss_kb" medians, with the library minus without it.
probe() {
    local config=$1 i
    : >"$work/with" && : >"$work/without"
    for ((i = 0; i < runs; i++)); do
        env -u LD_PRELOAD python3 "$work/probe.py" >>"$work/without"
        LD_PRELOAD="$lib" MCP_REDIRECT_CONFIG="$config" python3 "$work/probe.py" >>"$work/with"
    done
    local col
    for col in 1 2 3; do
        local a b
        a=$(cut -d' ' -f$col "$work/with" | median)
        b=$(cut -d' ' -f$col "$work/without" | median)
        awk -v a="$a" -v b="$b" 'BEGIN {printf "%.1f ", a - b}'
    done
    echo
}

# ten CONFIG: private and PSS added by 10 processes started at once, in KB.
ten() {
    local config=$1 i
    : >"$work/ten-with" && : >"$work/ten-without"
    for i in $(seq 10); do
        env -u LD_PRELOAD python3 "$work/probe.py" 1 >>"$work/ten-without" &
        LD_PRELOAD="$lib" MCP_REDIRECT_CONFIG="$config" python3 "$work/probe.py" 1 >>"$work/ten-with" &
    done
    wait
    awk 'FNR==NR {p0+=$2; s0+=$4; next} {p1+=$2; s1+=$4} END {printf "%.1f %.1f\n", (p1-p0)/1024, (s1-s0)/1024}' \
        "$work/ten-without" "$work/ten-with"
}

seconds() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}'
}

echo "library: $lib ($(stat -c %s "$lib") bytes); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %10s %10s %14s %16s %16s %22s\n' case "check s" "check 2 s" "first lookup" "private MB" "RSS MB" "10 at once: priv/PSS MB"

if ! $inline_only; then
    python3 - "$work/list.txt" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(1_000_000):
        f.write(f"h{i}.example{i % 997}.test\n")
PY
    cat >"$work/list.toml" <<TOML
[log]
path = "off"
[[rules]]
host_list = "$work/list.txt"
action = "deny"
TOML
    first=$(seconds "$cli" check --config "$work/list.toml")
    second=$(seconds "$cli" check --config "$work/list.toml")
    read -r ms private rss <<<"$(probe "$work/list.toml")"
    read -r tp ts <<<"$(ten "$work/list.toml")"
    printf '%-34s %10s %10s %11s ms %16s %16s %22s\n' "host_list, 1,000,000 names" "$first" "$second" "$ms" \
        "$(awk -v k="$private" 'BEGIN {printf "%.1f", k / 1024}')" "$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')" "$tp / $ts"
    echo "  (compiled form: $(stat -c %s "$work/list.txt.mcpr") bytes for a $(stat -c %s "$work/list.txt")-byte list)"
fi

for n in 1000 10000 20000 70000; do
    python3 - "$work/inline-$n.toml" "$n" <<'PY'
import sys
n = int(sys.argv[2])
with open(sys.argv[1], "w") as f:
    f.write('[log]\npath = "off"\n')
    for i in range(n):
        f.write(f'[[rules]]\nhost = "h{i}.example{i % 997}.test"\naction = "deny"\n')
PY
    first=$(seconds "$cli" check --config "$work/inline-$n.toml")
    read -r ms private rss <<<"$(probe "$work/inline-$n.toml")"
    read -r tp ts <<<"$(ten "$work/inline-$n.toml")"
    printf '%-34s %10s %10s %11s ms %16s %16s %22s\n' "inline, $n rules" "$first" "-" "$ms" \
        "$(awk -v k="$private" 'BEGIN {printf "%.1f", k / 1024}')" "$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')" "$tp / $ts"
done
