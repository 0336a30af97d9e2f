# shellcheck shell=bash
# Sourced by scripts/integration-test.sh after the gateways start: running programs under the
# library (config, log_of, under, trust) and the checks of where a connection went (origin_saw,
# library_routed, library_refused, origin_never_saw, gateway_logged), shared by the scenarios.

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
