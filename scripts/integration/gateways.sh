# shellcheck shell=bash
# shellcheck disable=SC2016 # single-quoted code for sh -c, node, python and bash is meant literally
# Sourced by scripts/integration-test.sh: the fixture inside the sandbox. Names, addresses and
# credentials; the test CA; the origins (origin.py, PostgreSQL) and the gateways (squid, danted,
# microsocks, the slow gateway, haproxy, mitmdump), each started with a minimal config;
# start_gateways starts them all.

# ---- Names, addresses, credentials ------------------------------------------------------------

origin_address=127.0.77.1   # origin.py: https :443, http :80
postgres_address=127.0.77.2 # PostgreSQL :5432, known to the gateways as db.internal.test
# The address each gateway connects to the origins from.
declare -A egress=([squid]=127.0.1.1 [dante]=127.0.1.2 [dante_auth]=127.0.1.3 [microsocks]=127.0.1.4
    [haproxy]=127.0.1.5 [mitmproxy]=127.0.1.6)

clients=(curl wget urllib requests httpx aiohttp node-fetch node-https axios java ruby)
# Every name the gateways resolve to the origin (hosts files have no wildcards).
origin_names=(example.org www.example.org api.github.com api.search.brave.com blocked.example.net
    squid-auth.example.org squid-badauth.example.org dante.example.org dante-badauth.example.org
    socks.example.org plain.example.org mitm.example.org pp2.example.org sni.example.org
    denied.example.org image.example.org)
for client_name in "${clients[@]}"; do
    origin_names+=("$client_name-run.clients.example.org" "$client_name-preload.clients.example.org")
done

squid_user=mcp
squid_password=squid-secret-1
socks_user=mcpsocks
socks_password=socks-secret-2
db_password=db-secret-3
github_token=ghp_integrationFixtureToken0123456789
brave_key=brave-fixture-key

# ---- Certificates -----------------------------------------------------------------------------

make_certificates() {
    local dir=$work/ca
    mkdir -p "$dir"
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 2 -subj "/CN=mcp-redirect integration test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$dir/origin.key" -out "$dir/origin.csr" -subj "/CN=example.org" 2>/dev/null
    printf '%s\n' \
        "subjectAltName=DNS:example.org,DNS:*.example.org,DNS:*.clients.example.org,DNS:api.github.com,DNS:api.search.brave.com,DNS:blocked.example.net" \
        "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" >"$dir/origin.ext"
    openssl x509 -req -in "$dir/origin.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 2 -extfile "$dir/origin.ext" -out "$dir/origin.pem" 2>/dev/null
    keytool -importcert -noprompt -alias integration-ca -file "$dir/ca.pem" \
        -keystore "$dir/truststore.p12" -storetype PKCS12 -storepass changeit >/dev/null 2>&1
}

# ---- Origins ----------------------------------------------------------------------------------

start_origin() {
    setsid python3 "$here/origin.py" --address "$origin_address" --https-port 443 --http-port 80 \
        --cert "$work/ca/origin.pem" --key "$work/ca/origin.key" --log "$work/origin.jsonl" \
        >"$work/origin.out" 2>&1 &
    track origin $! TERM
    wait_port "$origin_address" 443 origin $!
}

start_postgres() {
    local bin dir=$work/pg
    bin=$(postgres_bin)
    install -d -o postgres -g postgres -m 700 "$dir"
    setpriv --reuid=postgres --regid=postgres --init-groups \
        "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --auth-local=trust \
        --auth-host=scram-sha-256 --no-sync >"$work/pg-initdb.out" 2>&1
    echo "host all all 127.0.0.0/8 scram-sha-256" >>"$dir/data/pg_hba.conf"
    setsid setpriv --reuid=postgres --regid=postgres --init-groups \
        "$bin/postgres" -D "$dir/data" -c listen_addresses="$postgres_address" -c port=5432 \
        -c unix_socket_directories="$dir" -c log_connections=on -c fsync=off \
        >"$work/postgres.log" 2>&1 &
    track postgres $! INT
    wait_port "$postgres_address" 5432 postgres $!
    psql -q -h "$dir" -U postgres -v ON_ERROR_STOP=1 >/dev/null <<EOF
CREATE ROLE mcp LOGIN PASSWORD '$db_password';
CREATE DATABASE inventory OWNER mcp;
\connect inventory
SET ROLE mcp;
CREATE TABLE widgets (name text PRIMARY KEY, quantity integer NOT NULL);
INSERT INTO widgets VALUES ('sprocket', 12), ('flange', 7);
EOF
}

# ---- Gateways ---------------------------------------------------------------------------------

# The hosts file the gateways resolve with: every test name to its local origin, one a line
# (squid's hosts_file drops names past some length of line).
write_gateway_hosts() {
    {
        echo "127.0.0.1 localhost"
        printf "$origin_address %s\n" "${origin_names[@]}"
        echo "$postgres_address db.internal.test"
    } >"$work/gateway-hosts"
}

start_squid() {
    local dir=$work/squid
    if [[ ! -d $dir ]]; then
        mkdir -p "$dir"
        cp "$work/gateway-hosts" "$dir/hosts"
        printf '%s:%s\n' "$squid_user" "$(openssl passwd -1 "$squid_password")" >"$dir/passwd"
        cat >"$dir/squid.conf" <<EOF
# HTTP CONNECT on :3128 for anyone on loopback, on :3129 with Basic auth; blocked.example.net is
# refused on both. Names resolve only through hosts_file (the resolver named here answers nothing).
http_port 127.0.0.1:3128 name=open
http_port 127.0.0.1:3129 name=auth
visible_hostname mcp-redirect-integration
pid_filename $dir/squid.pid
coredump_dir $dir
cache_effective_user proxy
cache_log $dir/cache.log
logformat integration %ts.%03tu port=%>lp client=%>a:%>p %Ss/%03>Hs %rm %ru user=%un
access_log stdio:$dir/access.log integration
cache deny all
shutdown_lifetime 0 seconds
hosts_file $dir/hosts
dns_nameservers 127.0.0.1
tcp_outgoing_address ${egress[squid]}
auth_param basic program /usr/lib/squid/basic_ncsa_auth $dir/passwd
auth_param basic realm mcp-redirect integration test
acl open_port myportname open
acl auth_port myportname auth
acl authenticated proxy_auth REQUIRED
acl blocked dstdomain blocked.example.net
acl tls_port port 443
acl CONNECT method CONNECT
http_access deny blocked
http_access deny CONNECT !tls_port
http_access allow open_port
http_access allow auth_port authenticated
http_access deny all
EOF
        chown -R proxy:proxy "$dir"
    fi
    setsid squid -N -f "$dir/squid.conf" >"$dir/squid.out" 2>&1 &
    track squid $! TERM
    wait_port 127.0.0.1 3128 squid $!
    wait_port 127.0.0.1 3129 squid $!
}

# A command prefix: run (in a session of its own, see track) in a mount namespace of its own
# where /etc/hosts is the gateways' hosts file, and /etc/passwd and /etc/shadow know the SOCKS
# user (dante checks usernames against them).
with_gateway_names=(setsid unshare --mount --propagation private sh -c '
    mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/passwd && mount --bind "$3" /etc/shadow &&
    shift 3 && exec "$@"' sh "$work/gateway-hosts" "$work/passwd" "$work/shadow")

write_socks_user() {
    cp /etc/passwd "$work/passwd"
    cp /etc/shadow "$work/shadow"
    echo "$socks_user:x:64999:64999:SOCKS test user:/nonexistent:/usr/sbin/nologin" >>"$work/passwd"
    echo "$socks_user:$(openssl passwd -6 "$socks_password"):20000:0:99999:7:::" >>"$work/shadow"
    chmod 640 "$work/shadow"
}

# start_dante NAME PORT METHOD: METHOD is none or username.
start_dante() {
    local name=$1 port=$2 method=$3 conf=$work/$1.conf
    cat >"$conf" <<EOF
logoutput: $work/$name.log
# debug 1 logs each SOCKS request as received: "ATYP: 3 address: HOST.PORT" is a hostname.
debug: 1
internal: 127.0.0.1 port = $port
external: ${egress[$name]}
clientmethod: none
socksmethod: $method
user.privileged: root
user.unprivileged: nobody
client pass {
    from: 127.0.0.0/8 to: 0.0.0.0/0
    log: error
}
socks pass {
    from: 127.0.0.0/8 to: 0.0.0.0/0
    command: connect
    log: error connect disconnect
}
EOF
    "${with_gateway_names[@]}" danted -f "$conf" -p "$work/$name.pid" >"$work/$name.out" 2>&1 &
    track "$name" $! TERM
    wait_port 127.0.0.1 "$port" "$name" $!
}

start_microsocks() {
    "${with_gateway_names[@]}" microsocks -i 127.0.0.1 -p 1082 -b "${egress[microsocks]}" \
        >"$work/microsocks.out" 2>&1 &
    track microsocks $! TERM
    wait_port 127.0.0.1 1082 microsocks $!
}

start_haproxy() {
    local conf=$work/haproxy.cfg
    cat >"$conf" <<EOF
# The API-gateway kind: TLS passes through untouched to the origin that the connection's
# hostname names. :4000 expects a PROXY v2 header and routes on its AUTHORITY TLV; :4001 routes
# on the TLS SNI. Other names are refused.
global
    log stdout format raw local0
    maxconn 256

defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend egress_proxy_v2
    bind 127.0.0.1:4000 accept-proxy
    log-format "frontend=%f client=%ci:%cp authority=%[fc_pp_authority] dst_port=%[dst_port] backend=%b status=%ts bytes=%B"
    tcp-request content reject unless { fc_pp_authority -i -m str api.search.brave.com pp2.example.org }
    default_backend origin_tls

frontend egress_sni
    bind 127.0.0.1:4001
    tcp-request inspect-delay 5s
    tcp-request content capture req.ssl_sni len 100
    tcp-request content accept if { req.ssl_hello_type 1 }
    log-format "frontend=%f client=%ci:%cp sni=%[capture.req.hdr(0)] backend=%b status=%ts bytes=%B"
    use_backend origin_tls if { req.ssl_sni -i api.search.brave.com sni.example.org }

backend origin_tls
    server origin $origin_address:443 source ${egress[haproxy]}
EOF
    setsid haproxy -db -f "$conf" >"$work/haproxy.log" 2>&1 &
    track haproxy $! TERM
    wait_port 127.0.0.1 4000 haproxy $!
    wait_port 127.0.0.1 4001 haproxy $!
}

start_mitmproxy() {
    local dir=$work/mitm
    mkdir -p "$dir/conf"
    setsid mitmdump --listen-host 127.0.0.1 --listen-port 8080 --set confdir="$dir/conf" \
        --set ssl_verify_upstream_trusted_ca="$work/ca/ca.pem" --set connect_addr="${egress[mitmproxy]}" \
        -s "$here/mitm_addon.py" --set origin_address="$origin_address" \
        --set flow_log="$dir/flows.jsonl" >>"$dir/mitmdump.out" 2>&1 &
    track mitmproxy $! TERM
    wait_port 127.0.0.1 8080 mitmproxy $!
    mitm_ca=$dir/conf/mitmproxy-ca-cert.pem
    [[ -s $mitm_ca ]]
}

start_slow_gateway() {
    setsid python3 "$here/slow_gateway.py" --listen 127.0.0.1:3140 --origin "$origin_address:80" \
        --delay 1 --peaks "$work/slow_gateway_peaks.json" >"$work/slow_gateway.out" 2>&1 &
    track slow_gateway $! TERM
    wait_port 127.0.0.1 3140 slow_gateway $!
}

# service LABEL LOG FUNCTION [ARGS...]: starts a service with `set -e`; when it fails, records a
# FAIL with the end of its LOG and goes on (the scenarios that need it fail in turn).
service() {
    local label=$1 log=$2 rc
    shift 2
    set +e
    (
        set -e
        "$@"
    )
    rc=$?
    set -e
    if ((rc == 0)); then
        echo "$label"
    else
        fail "start ${label%% *}" "exit $rc; the end of $log: $(tail -n 5 "$log" 2>/dev/null | tr '\n' ' ' | cut -c1-400)"
    fi
}

# Starts the origins and every gateway; a service that does not start is a FAIL, not the end.
start_gateways() {
    step "Sandbox: network namespace with loopback only; private /etc/hosts and /etc/resolv.conf"
    ip -o addr show | awk '{print "  " $2, $4}'
    step "Starting the origins and the gateways"
    make_certificates
    ca=$work/ca/ca.pem
    mitm_ca=$work/mitm/conf/mitmproxy-ca-cert.pem
    write_gateway_hosts
    write_socks_user
    service "origin      https://$origin_address:443 http://$origin_address:80" "$work/origin.out" start_origin
    service "postgres    $postgres_address:5432 (db.internal.test to the gateways)" "$work/postgres.log" start_postgres
    service "squid       127.0.0.1:3128 (open), 127.0.0.1:3129 (Basic auth)" "$work/squid/cache.log" start_squid
    service "danted      127.0.0.1:1080 (no auth)" "$work/dante.log" start_dante dante 1080 none
    service "danted      127.0.0.1:1081 (username auth)" "$work/dante_auth.log" start_dante dante_auth 1081 username
    service "microsocks  127.0.0.1:1082" "$work/microsocks.out" start_microsocks
    service "slow gateway 127.0.0.1:3140 (answers each CONNECT after 1 s)" "$work/slow_gateway.out" start_slow_gateway
    service "haproxy     127.0.0.1:4000 (PROXY v2, routes on AUTHORITY), 127.0.0.1:4001 (routes on SNI)" \
        "$work/haproxy.log" start_haproxy
    service "mitmdump    127.0.0.1:8080 (TLS inspection; its CA: $mitm_ca)" "$work/mitm/mitmdump.out" start_mitmproxy
    echo "(started in $((SECONDS - started)) s)"
}
