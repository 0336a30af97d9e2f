# shellcheck shell=bash
# shellcheck disable=SC2016 # single-quoted code for sh -c, node, python and bash is meant literally
# Sourced by scripts/integration-test.sh: MCP servers from their registries (mcp_server_*), driven
# by the PyPI SDK's stdio client, each also with its gateway stopped and with a deny rule.

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
