# shellcheck shell=bash
# shellcheck disable=SC2016 # single-quoted code for sh -c, node, python and bash is meant literally
# Sourced by scripts/integration-test.sh: the client scenarios. `client CLIENT` (every unmodified
# client under `mcp-redirect run` through squid and under raw LD_PRELOAD through dante) and
# `event_loop CLIENT` (parallel non-blocking connects through the slow gateway).

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
