#!/usr/bin/env bash
# The cost of being in the path: mcp-redirect side by side with no interposer, proxychains-ng
# (Debian proxychains4, proxy_dns off and on) and torsocks, on this machine, in one run.
#
#   scripts/bench.sh [--smoke] [--no-install] [--rounds N] [--wait-load X] [--no-criterion]
#                    [--update-doc]
#
# Eleven scenarios (issues 8 and 14; BENCHMARKS.md has the latest tables and what they mean):
#   1 pass-through connect (AF_INET to a direct loopback listener, AF_UNIX; 1 and 2 threads)
#   2 redirected connect + handshake + first byte, through one SOCKS5 (microsocks) and one HTTP
#     CONNECT (tinyproxy) gateway, with the client's CPU time per connection (getrusage)
#   3 getaddrinfo: a routed name (fake address / proxy_dns / .onion cookie), a direct one
#   4 rule-table scale (Criterion, benches/rules.rs)
#   5 process start (hyperfine) and peak RSS: true, python3, node, a C program's first lookup
#   6 data path: 1 GiB through each gateway, curl, against curl speaking to the gateway itself
#     (in the first 3 rounds only: each transfer takes seconds)
#   7 log writer: lines per second from 8 threads and from 4 processes sharing one file
# and for routed connects on non-blocking sockets (the relay, docs/nonblocking.md), each against
# the same library with async_handshake = false (the handshake inside connect()):
#   8 event loops: 8 parallel requests (Node fetch, Python asyncio) through an HTTP CONNECT
#     gateway that holds each CONNECT 600 ms (benches/slow_gateway.py): wall time, the longest
#     the event loop was held up, and how many CONNECTs the gateway held at once
#   9 connect() return time on a non-blocking socket (p50, p99), and the time until writable
#  10 an established routed connection: 1 GiB through each gateway (in scenario 6) and the round
#     trip of 64 bytes to an echo server through SOCKS5
#  11 descriptors and memory per relayed handshake in flight (a gateway that never answers)
# Every measurement runs once per round, every mode of a case one after the other, rounds
# repeated (--rounds, default 5): tables give the median and the range over rounds, and
# ratios are taken round by round. The last lines printed are the Markdown tables; the raw
# numbers go to target/bench/ (raw.jsonl, results.json, tables.md).
#
# Everything listens on and connects to 127.0.0.1 only, in a network namespace of the run's own
# that has nothing but loopback. Clients run in a mount namespace whose /etc/resolv.conf names
# only 127.0.0.1, where benches/dns_sentinel.py counts (and refuses) any query: the run fails if
# one arrives. Gateways run in a mount namespace of their own whose /etc/hosts holds the
# benchmark's names, so they resolve them without DNS too. Needs root (namespaces, apt);
# installs what is missing with apt unless --no-install. Every process and temporary file is
# removed on exit.
#
#   --smoke         tiny counts, 2 rounds, no Criterion: checks that every path still works
#                   (well under a minute once built); numbers are meaningless
#   --no-install    fail at once, naming what is missing, instead of installing it
#   --rounds N      rounds of every measurement (default 5; smoke 2)
#   --wait-load X   before measuring, and again before each round, wait until the 1-minute load
#                   average is below X and other work uses under 20% of the CPU (30 minutes at
#                   most, then it measures anyway); the load is recorded either way
#   --no-criterion  skip scenario 4 (the Rust micro-benchmark and its build)
#   --update-doc    also rewrite the generated part of BENCHMARKS.md with this run's tables
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

# ---- the measuring half: runs inside `unshare --mount`, started by the half at the bottom ----
# The servers it starts; global, so that the EXIT trap still sees them after inner_main returns.
bench_pids=()
inner_main() {
    local work=$BENCH_WORK out=$BENCH_OUT smoke=$BENCH_SMOKE
    local lib=$BENCH_LIB cli=$BENCH_CLI pclib=$BENCH_PCLIB tslib=$BENCH_TSLIB
    local hp=$work/hotpath raw=$out/raw.jsonl
    inner_cleanup() {
        local status=$?
        local pid
        for pid in "${bench_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
        for pid in "${bench_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
        exit "$status"
    }
    trap inner_cleanup EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT

    # Counts: seconds per rate measurement, data size, hyperfine runs, strace batch; the slow
    # gateway's hold, connects timed, round trips, handshakes held in flight.
    local dur=0.3 dur_gw=0.5 data=$((1 << 30)) hf_runs=10 hf_warm=2 st_n=1000
    local slow_delay=0.6 ct_n=2000 pp_n=10000 if_n=1000
    if ((smoke)); then
        dur=0.05 dur_gw=0.1 data=$((16 << 20)) hf_runs=2 hf_warm=0 st_n=100
        slow_delay=0.02 ct_n=50 pp_n=200 if_n=50
    fi
    local python=/usr/bin/python3 node
    node=$(command -v node)

    # A network namespace of our own: only loopback, so nothing can leave the machine, and
    # other work on it neither reaches our servers (nor our DNS sentinel) nor is reached.
    ip link set lo up
    # The clients' view: no name but localhost, and DNS only at the sentinel.
    printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$work/hosts"
    printf 'nameserver 127.0.0.1\noptions attempts:1 timeout:1\n' >"$work/resolv.conf"
    mount --bind "$work/hosts" /etc/hosts
    mount --bind "$work/resolv.conf" /etc/resolv.conf
    # The gateways' view: the benchmark's names, resolved from the file.
    {
        cat "$work/hosts"
        echo "127.0.0.1 origin.bench.test socks.bench.test http.bench.test origin.onion"
    } >"$work/gateway-hosts"

    : >"$work/dns-queries"
    /usr/bin/python3 benches/dns_sentinel.py "$work/dns-queries" >"$work/sentinel.out" 2>&1 &
    bench_pids+=($!)
    "$work/origin" "$work/origin.sock" >"$work/origin.out" 2>"$work/origin.err" &
    bench_pids+=($!)

    free_port() {
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    }
    wait_port() {
        local i
        for i in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
            sleep 0.05
        done
        echo "bench: nothing listens on 127.0.0.1:$1 ($2)" >&2
        return 1
    }
    local socks http_gw
    socks=$(free_port)
    http_gw=$(free_port)
    # In a mount namespace of their own, with the gateway-side /etc/hosts.
    gateway_ns() {
        exec unshare --mount --propagation private -- sh -c \
            'mount --bind "$1" /etc/hosts && shift && exec "$@"' sh "$work/gateway-hosts" "$@"
    }
    gateway_ns microsocks -i 127.0.0.1 -p "$socks" >/dev/null 2>&1 &
    bench_pids+=($!)
    cat >"$work/tinyproxy.conf" <<EOF
Port $http_gw
Listen 127.0.0.1
Timeout 60
MaxClients 256
Allow 127.0.0.1
LogLevel Critical
DisableViaHeader Yes
EOF
    gateway_ns tinyproxy -d -c "$work/tinyproxy.conf" >/dev/null 2>&1 &
    bench_pids+=($!)

    local i
    for i in $(seq 100); do [[ -s $work/origin.out ]] && break; sleep 0.05; done
    local sink origin echo_port hold
    sink=$(sed -n 's/^sink=\([0-9]*\) .*/\1/p' "$work/origin.out")
    echo_port=$(sed -n 's/.* echo=\([0-9]*\) .*/\1/p' "$work/origin.out")
    hold=$(sed -n 's/.* hold=\([0-9]*\) .*/\1/p' "$work/origin.out")
    origin=$(sed -n 's/.* http=\([0-9]*\)$/\1/p' "$work/origin.out")
    [[ -n $sink && -n $echo_port && -n $hold && -n $origin ]] ||
        { echo "bench: the origin did not start" >&2; cat "$work/origin.err" >&2; return 1; }
    # The slow gateway tunnels to 127.0.0.1 whatever host a CONNECT names: it needs no names.
    local slow
    slow=$(free_port)
    : >"$work/slow-held"
    /usr/bin/python3 benches/slow_gateway.py --port "$slow" --delay "$slow_delay" \
        --held "$work/slow-held" >"$work/slow.out" 2>&1 &
    bench_pids+=($!)
    wait_port "$socks" microsocks
    wait_port "$http_gw" tinyproxy
    wait_port "$slow" slow_gateway.py
    for i in $(seq 100); do grep -q ready "$work/sentinel.out" 2>/dev/null && break; sleep 0.05; done
    local sentinel=1
    grep -q ready "$work/sentinel.out" || {
        sentinel=0
        echo "bench: the DNS sentinel could not listen on 127.0.0.1:53; queries go unanswered and uncounted" >&2
    }

    # ---- configurations ----
    # mcpr-sync is mcpr with the relay turned off: routed connects on non-blocking sockets do the
    # handshake inside connect(), as before the relay (the "before" of scenarios 8 to 10).
    local log_cfg
    for log_cfg in "mcpr:path = \"$work/events.jsonl\"" \
        "mcpr-sync:path = \"$work/events.jsonl\"" \
        "mcpr-quiet:path = \"$work/events.jsonl\"
direct = false" \
        "mcpr-logoff:path = \"off\"" \
        "mcpr-logtp:path = \"$work/throughput.jsonl\""; do
        cat >"$work/${log_cfg%%:*}.toml" <<EOF
async_handshake = $([[ ${log_cfg%%:*} == mcpr-sync ]] && echo false || echo true)

[log]
${log_cfg#*:}

[gateways.socks]
kind = "socks5"
endpoints = ["127.0.0.1:$socks"]

[gateways.http]
kind = "http"
endpoints = ["127.0.0.1:$http_gw"]

[gateways.slow]
kind = "http"
endpoints = ["127.0.0.1:$slow"]

# Never answers (scenario 11): its handshakes must stay in flight while they are counted.
[gateways.hold]
kind = "socks5"
endpoints = ["127.0.0.1:$hold"]
connect_timeout_ms = 60000

[[rules]]
host = "socks.bench.test"
via = "socks"

[[rules]]
host = "*.slow.bench.test"
via = "slow"

[[rules]]
host = "hold.bench.test"
via = "hold"

[[rules]]
host = "http.bench.test"
via = "http"

[[rules]]
host = "*.routed.test"
via = "socks"

[[rules]]
cidr = "127.0.0.0/8"
action = "direct"
EOF
    done
    # proxychains: one file per gateway; "direct" keeps loopback out of the proxy (localnet).
    local dns gw
    for dns in off on; do
        for gw in direct socks http; do
            {
                echo strict_chain
                echo quiet_mode
                [[ $dns == on ]] && echo proxy_dns
                echo "tcp_read_time_out 15000"
                echo "tcp_connect_time_out 8000"
                [[ $gw == direct ]] && echo "localnet 127.0.0.0/255.0.0.0"
                echo "[ProxyList]"
                if [[ $gw == http ]]; then echo "http 127.0.0.1 $http_gw"; else echo "socks5 127.0.0.1 $socks"; fi
            } >"$work/pc4$([[ $dns == on ]] && echo dns)-$gw.conf"
        done
    done
    printf 'strict_chain\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n[ProxyList]\nhttp 127.0.0.1 %s\n' \
        "$slow" >"$work/pc4-slow.conf"
    # torsocks: our SOCKS server in place of tor; loopback goes direct; .onion names get
    # cookies from 127.42.42.0/24 and are sent to the SOCKS server by name.
    printf 'TorAddress 127.0.0.1\nTorPort %s\nOnionAddrRange 127.42.42.0/24\nAllowOutboundLocalhost 1\n' \
        "$socks" >"$work/torsocks.conf"

    # The environment of each mode; $2 picks the proxychains file (direct, socks, http, slow).
    local -a E
    envs_for() {
        case $1 in
        none) E=(LD_PRELOAD=) ;;
        mcpr | mcpr-sync | mcpr-quiet | mcpr-logoff | mcpr-logtp) E=(LD_PRELOAD="$lib" MCP_REDIRECT_CONFIG="$work/$1.toml") ;;
        pc4) E=(LD_PRELOAD="$pclib" PROXYCHAINS_CONF_FILE="$work/pc4-$2.conf") ;;
        pc4-dns) E=(LD_PRELOAD="$pclib" PROXYCHAINS_CONF_FILE="$work/pc4dns-$2.conf") ;;
        torsocks) E=(LD_PRELOAD="$tslib" TORSOCKS_CONF_FILE="$work/torsocks.conf") ;;
        *) echo "bench: no mode $1" >&2; return 1 ;;
        esac
    }

    local round failures=0
    # record SCENARIO CASE MODE JSON
    record() {
        printf '{"scenario":"%s","case":"%s","mode":"%s","round":%d,"r":%s}\n' "$1" "$2" "$3" "$round" "$4" >>"$raw"
    }
    failed() {
        failures=$((failures + 1))
        printf '{"scenario":"%s","case":"%s","mode":"%s","round":%d,"failed":true}\n' "$1" "$2" "$3" "$round" >>"$raw"
        echo "bench: $1 / $2 / $3 failed in round $round:" >&2
        tail -n 3 "$work/last.err" >&2 || true
    }
    # measure SCENARIO CASE MODE GW CMD...: one run of a `hotpath run`, recorded.
    measure() {
        local scenario=$1 case=$2 mode=$3 gw=$4 result
        shift 4
        envs_for "$mode" "$gw"
        if result=$(timeout 120 env "${E[@]}" "$@" 2>"$work/last.err" | tail -n 1) && [[ $result == '{'* ]]; then
            record "$scenario" "$case" "$mode" "$result"
        else
            failed "$scenario" "$case" "$mode"
        fi
    }
    # The modes of a case in a different order each round, so that none always goes first.
    rotate() {
        local -a m=("$@")
        local n=${#m[@]} k=$((round % ${#m[@]})) j
        for ((j = 0; j < n; j++)); do printf '%s\n' "${m[(j + k) % n]}"; done
    }

    local mode threads name
    scenario_passthrough() {
        for threads in 1 2; do
            for mode in $(rotate none mcpr mcpr-quiet mcpr-logoff pc4 pc4-dns torsocks); do
                measure passthrough "inet-${threads}t" "$mode" direct \
                    "$hp" run -t "$threads" -d "$dur" -w 50 connect "127.0.0.1:$sink"
            done
            for mode in $(rotate none mcpr mcpr-quiet pc4 pc4-dns torsocks); do
                measure passthrough "unix-${threads}t" "$mode" direct \
                    "$hp" run -t "$threads" -d "$dur" -w 50 connect "unix:$work/origin.sock"
            done
        done
    }
    scenario_redirect() {
        for mode in $(rotate none mcpr mcpr-logoff pc4 pc4-dns torsocks); do
            case $mode in
            none) measure redirect socks5 none socks "$hp" run -d "$dur_gw" -w 5 fetch origin.bench.test "$origin" via socks5 "$socks" ;;
            mcpr*) measure redirect socks5 "$mode" socks "$hp" run -d "$dur_gw" -w 5 fetch socks.bench.test "$origin" ;;
            pc4) measure redirect socks5 pc4 socks "$hp" run -d "$dur_gw" -w 5 fetch 127.0.0.1 "$origin" ;;
            pc4-dns) measure redirect socks5 pc4-dns socks "$hp" run -d "$dur_gw" -w 5 fetch origin.bench.test "$origin" ;;
            torsocks) measure redirect socks5 torsocks socks "$hp" run -d "$dur_gw" -w 5 fetch origin.onion "$origin" ;;
            esac
        done
        for mode in $(rotate none mcpr mcpr-logoff pc4 pc4-dns); do
            case $mode in
            none) measure redirect http none http "$hp" run -d "$dur_gw" -w 5 fetch origin.bench.test "$origin" via http "$http_gw" ;;
            mcpr*) measure redirect http "$mode" http "$hp" run -d "$dur_gw" -w 5 fetch http.bench.test "$origin" ;;
            pc4) measure redirect http pc4 http "$hp" run -d "$dur_gw" -w 5 fetch 127.0.0.1 "$origin" ;;
            pc4-dns) measure redirect http pc4-dns http "$hp" run -d "$dur_gw" -w 5 fetch origin.bench.test "$origin" ;;
            esac
        done
    }
    scenario_resolve() {
        for mode in $(rotate mcpr mcpr-logoff pc4-dns torsocks); do
            name=api.routed.test
            [[ $mode == torsocks ]] && name=api.routed.onion
            measure resolve routed "$mode" direct "$hp" run -d "$dur" -w 50 resolve "$name"
        done
        for mode in $(rotate none mcpr mcpr-quiet pc4 pc4-dns torsocks); do
            measure resolve localhost "$mode" direct "$hp" run -d "$dur" -w 50 resolve localhost
        done
    }
    # Log writer: every routed lookup writes one line, the cheapest logged event, so the lines
    # per second are the writer's (and the file's) limit rather than the kernel's TCP.
    scenario_log() {
        local result lines j
        : >"$work/throughput.jsonl"
        envs_for mcpr-logtp direct
        if result=$(timeout 120 env "${E[@]}" "$hp" run -t 8 -d "$dur" -w 10 resolve api.routed.test 2>"$work/last.err"); then
            lines=$(python3 benches/report.py --count-lines "$work/throughput.jsonl")
            record log 8-threads mcpr "{\"run\":$result,\"lines\":$lines}"
        else
            failed log 8-threads mcpr
        fi
        : >"$work/throughput.jsonl"
        local -a procs=()
        for j in 1 2 3 4; do
            timeout 120 env "${E[@]}" "$hp" run -t 1 -d "$dur" -w 10 resolve api.routed.test \
                >"$work/proc-$j.json" 2>"$work/last.err" &
            procs+=($!)
        done
        local ok=1
        for j in "${procs[@]}"; do wait "$j" || ok=0; done
        if ((ok)); then
            lines=$(python3 benches/report.py --count-lines "$work/throughput.jsonl")
            record log 4-processes mcpr "{\"runs\":[$(cat "$work"/proc-[1-4].json | paste -sd,)],\"lines\":$lines}"
        else
            failed log 4-processes mcpr
        fi
    }
    # Process start: hyperfine over every mode at once (its runs are back to back per command,
    # so each round is a fresh hyperfine), then each mode's peak RSS once.
    scenario_start() {
        local prog label
        local -a cmd names cmds
        for prog in true python3 node lookup; do
            case $prog in
            true) cmd=(/bin/true) ;;
            python3) cmd=("$python" -c pass) ;;
            node) cmd=("$node" -e 0) ;;
            lookup) cmd=("$hp" run -n 1 -w 0 resolve localhost) ;;
            esac
            names=() cmds=()
            for mode in $(rotate none mcpr pc4 pc4-dns torsocks); do
                envs_for "$mode" direct
                names+=(-n "$mode")
                cmds+=("env ${E[*]} ${cmd[*]}")
            done
            if [[ $prog == true ]]; then
                names+=(-n "mcp-redirect run" -n "proxychains4 -f" -n "torsocks (script)")
                cmds+=("$cli run --config $work/mcpr.toml -- /bin/true"
                    "proxychains4 -q -f $work/pc4-direct.conf /bin/true"
                    "env TORSOCKS_CONF_FILE=$work/torsocks.conf torsocks /bin/true")
            fi
            local -a interleaved=()
            for i in "${!cmds[@]}"; do interleaved+=("${names[2 * i]}" "${names[2 * i + 1]}" "${cmds[i]}"); done
            if timeout 300 hyperfine -N --runs "$hf_runs" --warmup "$hf_warm" --style none \
                --export-json "$work/hf.json" "${interleaved[@]}" >/dev/null 2>"$work/last.err"; then
                python3 benches/report.py --hyperfine "$work/hf.json" | while IFS=$'\t' read -r label result; do
                    record start "$prog" "$label" "$result"
                done
            else
                failed start "$prog" hyperfine
            fi
            for mode in $(rotate none mcpr pc4 pc4-dns torsocks); do
                envs_for "$mode" direct
                if result=$(timeout 60 "$hp" spawn "${E[@]}" -- "${cmd[@]}" 2>"$work/last.err" | tail -n 1) &&
                    [[ $result == '{'* ]]; then
                    record rss "$prog" "$mode" "$result"
                else
                    failed rss "$prog" "$mode"
                fi
            done
        done
    }
    # relayed_since BYTES: connects the relay carried (log lines with "handshake":"relay") in the
    # shared log after its first BYTES bytes (log_size before the run: the log grows to hundreds
    # of MB, so the end is read from an offset); so that a table shows which path was measured.
    log_size() { stat -c %s "$work/events.jsonl" 2>/dev/null || echo 0; }
    relayed_since() {
        tail -c "+$(($1 + 1))" "$work/events.jsonl" 2>/dev/null | grep -c '"handshake":"relay"' || true
    }
    # Data path: curl fetches $data bytes; "none" is curl speaking to the gateway itself. curl's
    # sockets are non-blocking: mcpr goes through the relay, mcpr-sync does not.
    scenario_data() {
        local result
        transfer() { # CASE MODE GW CURL-ARGS...
            local tcase=$1 tmode=$2 tgw=$3 before
            shift 3
            envs_for "$tmode" "$tgw"
            before=$(log_size)
            if result=$(timeout 300 "$hp" spawn "${E[@]}" -- curl -sS -o /dev/null \
                -w '%{speed_download} %{size_download}\n' "$@" 2>"$work/last.err") &&
                [[ $(tail -n 1 <<<"$result") == '{'* ]]; then
                local speed size
                read -r speed size <<<"$(head -n 1 <<<"$result")"
                record data "$tcase" "$tmode" "{\"bytes_per_s\":$speed,\"bytes\":$size,\"relayed\":$(relayed_since "$before"),\"curl\":$(tail -n 1 <<<"$result")}"
            else
                failed data "$tcase" "$tmode"
            fi
        }
        for mode in $(rotate none mcpr mcpr-sync pc4 pc4-dns); do
            case $mode in
            none) transfer socks5 none socks --socks5-hostname "127.0.0.1:$socks" "http://origin.bench.test:$origin/bytes/$data" ;;
            mcpr*) transfer socks5 "$mode" socks "http://socks.bench.test:$origin/bytes/$data" ;;
            pc4) transfer socks5 pc4 socks "http://127.0.0.1:$origin/bytes/$data" ;;
            pc4-dns) transfer socks5 pc4-dns socks "http://origin.bench.test:$origin/bytes/$data" ;;
            esac
        done
        for mode in $(rotate none mcpr mcpr-sync pc4 pc4-dns); do
            case $mode in
            none) transfer http none http -p -x "http://127.0.0.1:$http_gw" "http://origin.bench.test:$origin/bytes/$data" ;;
            mcpr*) transfer http "$mode" http "http://http.bench.test:$origin/bytes/$data" ;;
            pc4) transfer http pc4 http "http://127.0.0.1:$origin/bytes/$data" ;;
            pc4-dns) transfer http pc4-dns http "http://origin.bench.test:$origin/bytes/$data" ;;
            esac
        done
        transfer no-gateway none direct "http://127.0.0.1:$origin/bytes/$data"
    }
    # Event loops: 8 requests at once through the slow gateway. mcp-redirect gets 8 routed names
    # (one fake address each), proxychains4 and no preload 127.0.0.1 (undici and asyncio open a
    # connection per request in flight either way); no preload goes straight to the origin, the
    # floor. Each run also says how many CONNECTs the gateway held at once, and how many connects
    # the relay carried.
    scenario_eventloop() {
        local client result before held_before held j
        local -a cmd targets
        for client in node python; do
            for mode in $(rotate none mcpr mcpr-sync pc4); do
                targets=()
                for j in 0 1 2 3 4 5 6 7; do
                    case $mode in
                    mcpr*) targets+=("n$j.slow.bench.test:$origin") ;;
                    *) targets+=("127.0.0.1:$origin") ;;
                    esac
                done
                if [[ $client == node ]]; then
                    cmd=("$node" benches/eventloop.js)
                    for j in "${targets[@]}"; do cmd+=("http://$j/"); done
                else
                    cmd=("$python" benches/eventloop.py "${targets[@]}")
                fi
                envs_for "$mode" slow
                before=$(log_size)
                held_before=$(wc -l <"$work/slow-held")
                if result=$(timeout 60 env "${E[@]}" "${cmd[@]}" 2>"$work/last.err" | tail -n 1) &&
                    [[ $result == '{'* ]]; then
                    held=$(tail -n "+$((held_before + 1))" "$work/slow-held" | sort -n | tail -n 1)
                    record eventloop "$client" "$mode" "{\"run\":$result,\"delay_s\":$slow_delay,\"held_max\":${held:-0},\"relayed\":$(relayed_since "$before")}"
                else
                    failed eventloop "$client" "$mode"
                fi
            done
        done
    }
    # The relay seen from a program (benches/relay.c), through SOCKS5: connect() on a
    # non-blocking socket (no preload: straight to the sink, the floor; proxychains4 for
    # reference, which also handshakes inside connect()), the round trip of an established
    # connection (no preload: straight to the echo server), and what a handshake in flight holds.
    scenario_relay() {
        for mode in $(rotate none mcpr mcpr-sync pc4); do
            case $mode in
            none | pc4) measure connect socks5 "$mode" socks "$work/relay" connect-time -n "$ct_n" 127.0.0.1 "$sink" ;;
            mcpr*) measure connect socks5 "$mode" socks "$work/relay" connect-time -n "$ct_n" socks.bench.test "$sink" ;;
            esac
        done
        for mode in $(rotate none mcpr mcpr-sync); do
            case $mode in
            none) measure rtt socks5 none direct "$work/relay" pingpong -n "$pp_n" -s 64 127.0.0.1 "$echo_port" ;;
            mcpr*) measure rtt socks5 "$mode" socks "$work/relay" pingpong -n "$pp_n" -s 64 socks.bench.test "$echo_port" ;;
            esac
        done
        measure inflight socks5 mcpr socks "$work/relay" inflight -n "$if_n" hold.bench.test 1080
    }

    # CPU busy (percent of the whole machine) over 2 s while we do nothing: other work.
    others_busy() {
        local a b
        read -r -a a < <(head -n 1 /proc/stat)
        sleep 2
        read -r -a b < <(head -n 1 /proc/stat)
        local total=0 j
        for j in 1 2 3 4 5 6 7 8; do total=$((total + b[j] - a[j])); done
        local idle=$((b[4] - a[4] + b[5] - a[5]))
        echo $(((total - idle) * 100 / (total > 0 ? total : 1)))
    }
    local busy
    for ((round = 1; round <= BENCH_ROUNDS; round++)); do
        busy=$(others_busy)
        # --wait-load: each round waits for a quiet machine (load average below the mark and
        # under 20% of the CPU busy with other work), within one deadline for the whole run.
        while [[ -n ${BENCH_WAIT_LOAD:-} ]] && (($(date +%s) < BENCH_WAIT_DEADLINE)) &&
            { ((busy >= 20)) || awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v x="$BENCH_WAIT_LOAD" 'BEGIN { exit !(l >= x) }'; }; do
            echo "before round $round: load average $(cut -d' ' -f1 /proc/loadavg), other work ${busy}% of the CPU: waiting" >&2
            sleep 15
            busy=$(others_busy)
        done
        echo "round $round/$BENCH_ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg), other work ${busy}% of the CPU)" >&2
        echo "$round $(cut -d' ' -f1-3 /proc/loadavg) busy=$busy" >>"$out/load.txt"
        scenario_passthrough
        scenario_redirect
        scenario_resolve
        scenario_log
        scenario_start
        # A 1 GiB transfer takes seconds per mode: the first 3 rounds only.
        if ((round <= 3)); then scenario_data; fi
        scenario_eventloop
        scenario_relay
    done
    echo "end $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/load.txt"

    # ---- the hot path, checked: system calls and allocations per connect ----
    # strace -c counts every call of the process; two batch sizes, and the difference divided
    # by the difference in connects leaves the per-connect calls (start-up cancels out).
    echo "hot-path check: strace and allocation counts" >&2
    mkdir -p "$out/strace"
    round=0
    local n target_addr
    for target_addr in "inet:127.0.0.1:$sink" "unix:unix:$work/origin.sock"; do
        for mode in none mcpr mcpr-quiet pc4 torsocks; do
            [[ ${target_addr%%:*} == unix && $mode != none && $mode != mcpr ]] && continue
            envs_for "$mode" direct
            for n in "$st_n" "$((2 * st_n))"; do
                timeout 120 strace -f -qq -c -o "$out/strace/${target_addr%%:*}-$mode-$n.txt" \
                    env "${E[@]}" "$hp" run -n "$n" -w 0 connect "${target_addr#*:}" >/dev/null 2>"$work/last.err" ||
                    failed syscalls "${target_addr%%:*}" "$mode"
            done
        done
    done
    # The same for whole redirected connections (connect + handshake + request + first byte).
    local k
    for k in socks5 http; do
        for mode in none mcpr pc4 pc4-dns torsocks; do
            [[ $k == http && $mode == torsocks ]] && continue
            local gwport=$socks gwname=socks
            [[ $k == http ]] && gwport=$http_gw gwname=http
            local -a fetch
            case $mode in
            none) fetch=(fetch origin.bench.test "$origin" via "$k" "$gwport") ;;
            mcpr) fetch=(fetch "$gwname.bench.test" "$origin") ;;
            pc4) fetch=(fetch 127.0.0.1 "$origin") ;;
            pc4-dns) fetch=(fetch origin.bench.test "$origin") ;;
            torsocks) fetch=(fetch origin.onion "$origin") ;;
            esac
            envs_for "$mode" "$gwname"
            for n in $((st_n / 10)) $((st_n / 5)); do
                timeout 120 strace -f -qq -c -o "$out/strace/$k-$mode-$n.txt" \
                    env "${E[@]}" "$hp" run -n "$n" -w 0 "${fetch[@]}" >/dev/null 2>"$work/last.err" ||
                    failed syscalls "$k" "$mode"
            done
            measure allocs "$k" "$mode" "$gwname" "$work/hotpath-allocs" run -n $((st_n / 5)) -w 5 "${fetch[@]}"
        done
    done
    # The same client with non-blocking sockets, as an event loop makes them: mcpr hands the
    # handshake to the relay (strace -f counts the relay thread's calls too, and the counting
    # malloc its allocations), mcpr-sync does it inside connect(). (The rows above are blocking
    # sockets: the synchronous path.)
    for mode in none mcpr mcpr-sync; do
        local -a fetch
        case $mode in
        none) fetch=(fetch origin.bench.test "$origin" via socks5 "$socks" nonblock 1) ;;
        mcpr*) fetch=(fetch socks.bench.test "$origin" nonblock 1) ;;
        esac
        envs_for "$mode" socks
        for n in $((st_n / 10)) $((st_n / 5)); do
            timeout 120 strace -f -qq -c -o "$out/strace/socks5nb-$mode-$n.txt" \
                env "${E[@]}" "$hp" run -n "$n" -w 0 "${fetch[@]}" >/dev/null 2>"$work/last.err" ||
                failed syscalls socks5nb "$mode"
        done
        measure allocs socks5nb "$mode" socks "$work/hotpath-allocs" run -n $((st_n / 5)) -w 5 "${fetch[@]}"
    done
    for mode in none mcpr mcpr-quiet pc4 torsocks; do
        measure allocs inet "$mode" direct "$work/hotpath-allocs" run -n 2000 -w 10 connect "127.0.0.1:$sink"
    done
    for mode in none mcpr; do
        measure allocs unix "$mode" direct "$work/hotpath-allocs" run -n 2000 -w 10 connect "unix:$work/origin.sock"
    done
    measure allocs resolve-routed mcpr direct "$work/hotpath-allocs" run -n 2000 -w 10 resolve api.routed.test
    measure allocs resolve-routed mcpr-logoff direct "$work/hotpath-allocs" run -n 2000 -w 10 resolve api.routed.test

    local queries
    queries=$(wc -l <"$work/dns-queries")
    printf '{"sentinel":%s,"dns_queries":%d,"failures":%d}\n' "$([[ $sentinel == 1 ]] && echo true || echo false)" \
        "$queries" "$failures" >"$out/fence.json"
    if ((queries > 0)); then
        echo "bench: $queries DNS queries reached the sentinel:" >&2
        sort "$work/dns-queries" | uniq -c | head >&2
        return 1
    fi
    ((failures == 0))
}

if [[ ${BENCH_INNER:-} == 1 ]]; then
    inner_main
    exit $?
fi

smoke=0 install=1 rounds="" wait_load="" criterion=1 update_doc=0
command_line="scripts/bench.sh${*:+ $*}"
while (($#)); do
    case $1 in
    --smoke) smoke=1 ;;
    --no-install) install=0 ;;
    --rounds) rounds=${2:?--rounds needs a number}; shift ;;
    --wait-load) wait_load=${2:?--wait-load needs a number}; shift ;;
    --no-criterion) criterion=0 ;;
    --update-doc) update_doc=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
((smoke)) && criterion=0
rounds=${rounds:-$((smoke ? 2 : 5))}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench: --rounds wants a positive number" >&2; exit 2; }

started_s=$(date +%s)
say() { printf '==== %s\n' "$*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
    echo "bench: needs root (mount namespaces for the DNS fence, apt for the peers)" >&2
    exit 1
fi

# ---- what the run needs -------------------------------------------------------------------
say "Packages"
need=()
for pair in proxychains4:proxychains4 torsocks:torsocks microsocks:microsocks \
    tinyproxy:tinyproxy hyperfine:hyperfine strace:strace curl:curl cc:gcc \
    unshare:util-linux ip:iproute2 node:nodejs; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
[[ -x /usr/bin/python3 ]] || need+=(python3)
[[ -e /usr/include/stdio.h ]] || need+=(libc6-dev)
if ((${#need[@]})); then
    if ((!install)); then
        echo "bench: missing: ${need[*]} (run without --no-install to apt-get install them)" >&2
        exit 1
    fi
    echo "installing: ${need[*]}" >&2
    # tinyproxy's package starts a system-wide daemon (port 8888); keep it from starting, as
    # nothing of the benchmark's may outlive it. policy-rc.d is removed again right after.
    policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
        >&2 || { [[ -n $policy ]] && rm -f "$policy"; exit 1; }
    [[ -n $policy ]] && rm -f "$policy"
else
    echo "all present" >&2
fi

pclib=$(dpkg -L libproxychains4 2>/dev/null | grep -m1 '/libproxychains\.so\.4$' || true)
tslib=$(dpkg -L torsocks 2>/dev/null | grep -m1 '/libtorsocks\.so$' || true)
[[ -f $pclib && -f $tslib ]] || { echo "bench: libproxychains.so.4 or libtorsocks.so not found" >&2; exit 1; }

say "Build: cargo build --release"
cargo build --release >&2
target=${CARGO_TARGET_DIR:-$repo/target}
lib=$(realpath "$target/release/libmcp_redirect.so")
cli=$(realpath "$target/release/mcp-redirect")
out=$target/bench
mkdir -p "$out"
rm -f "$out"/raw.jsonl "$out"/results.json "$out"/tables.md "$out"/load.txt "$out"/fence.json "$out"/meta.json
rm -rf "$out/strace"

work=$(mktemp -d /tmp/mcp-redirect-bench.XXXXXX)
inner_pid=""
cleanup() {
    local status=$?
    if [[ -n $inner_pid ]] && kill -0 "$inner_pid" 2>/dev/null; then
        kill -TERM "$inner_pid" 2>/dev/null || true
        wait "$inner_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cc -O2 -pthread -o "$work/hotpath" benches/hotpath.c
cc -O2 -pthread -DCOUNT_ALLOCS -o "$work/hotpath-allocs" benches/hotpath.c
cc -O2 -pthread -o "$work/origin" benches/origin.c
cc -O2 -o "$work/relay" benches/relay.c

if ((criterion)); then
    # Built now, so that waiting for a quiet machine comes after our own compiling.
    cargo bench --bench rules --no-run >&2
fi

loadavg() { cut -d' ' -f1 /proc/loadavg; }
wait_started_s=$(date +%s)
if [[ -n $wait_load ]]; then
    deadline=$(($(date +%s) + 1800))
    while awk -v l="$(loadavg)" -v x="$wait_load" 'BEGIN { exit !(l >= x) }'; do
        if (($(date +%s) >= deadline)); then
            echo "bench: load average still $(loadavg) after 30 minutes; measuring anyway" >&2
            break
        fi
        echo "load average $(loadavg) >= $wait_load: waiting 20 s" >&2
        sleep 20
    done
fi

waited_s=$(($(date +%s) - wait_started_s))

if ((criterion)); then
    say "Scenario 4: rule-table scale (cargo bench --bench rules -- decide)"
    rm -rf "$target/criterion/decide"
    cargo bench --bench rules -- decide >"$work/criterion.log" 2>&1 ||
        { cat "$work/criterion.log" >&2; exit 1; }
    grep 'time:' "$work/criterion.log" >&2 || true
fi

# ---- the machine and the peers, for the record --------------------------------------------
version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo unknown; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src crates Cargo.toml Cargo.lock 2>/dev/null || commit="$commit (src/ modified)"
python3 - "$out/meta.json" <<PY
import json, os, platform, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
json.dump({
    "command": """$command_line""",
    "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
    "commit": "$commit",
    "nproc": os.cpu_count(),
    "cpu": cpu,
    "kernel": platform.release(),
    "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    "rounds": $rounds,
    "smoke": bool($smoke),
    "load_before": "$(cut -d' ' -f1-3 /proc/loadavg)",
    "load_wait_s": $waited_s,
    "library_bytes": os.path.getsize("$lib"),
    "versions": {
        "proxychains4": "$(version libproxychains4)",
        "torsocks": "$(version torsocks)",
        "microsocks": "$(version microsocks)",
        "tinyproxy": "$(version tinyproxy)",
        "hyperfine": "$(version hyperfine)",
        "curl": "$(version curl)",
        "python3": "$(/usr/bin/python3 -c 'import platform; print(platform.python_version())')",
        "node": "$(node --version)",
    },
}, open(sys.argv[1], "w"), indent=1)
PY

# ---- the measurements, inside the DNS fence -----------------------------------------------
say "Measuring: $rounds rounds (load average $(cut -d' ' -f1-3 /proc/loadavg))"
measure_started_s=$(date +%s)
BENCH_INNER=1 BENCH_WAIT_LOAD=$wait_load BENCH_WAIT_DEADLINE=$(($(date +%s) + 1800)) BENCH_WORK=$work BENCH_OUT=$out BENCH_ROUNDS=$rounds BENCH_SMOKE=$smoke \
    BENCH_LIB=$lib BENCH_CLI=$cli BENCH_PCLIB=$pclib BENCH_TSLIB=$tslib \
    unshare --mount --net --propagation private -- bash "$repo/scripts/bench.sh" &
inner_pid=$!
inner_status=0
wait "$inner_pid" || inner_status=$?
inner_pid=""
measured_s=$(($(date +%s) - measure_started_s))

# ---- the tables ---------------------------------------------------------------------------
report=(python3 benches/report.py --out "$out")
((criterion)) && report+=(--criterion "$target/criterion")
((update_doc)) && report+=(--update-doc BENCHMARKS.md)
report_status=0
"${report[@]}" || report_status=$?
echo "raw numbers: $out/raw.jsonl, $out/results.json; tables: $out/tables.md" >&2
echo "took $(($(date +%s) - started_s)) s, of which $waited_s s waiting for the load to fall and $measured_s s measuring" >&2
((inner_status == 0)) || { echo "bench: some measurements failed (status $inner_status)" >&2; exit 1; }
exit "$report_status"
