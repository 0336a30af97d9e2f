# shellcheck shell=bash
# shellcheck disable=SC2016 # single-quoted code for sh -c, node, python and bash is meant literally
# Sourced by scripts/integration-test.sh: what each gateway does with the library's handshake
# (squid_*, dante_*, microsocks_*, haproxy_*, mitmproxy_*).

# ---- Gateways: what each one does with the library's handshake ------------------------------

cfg_gateways=$(config gateways <<EOF
default = "deny"

[gateways.squid]
kind = "http"
endpoints = ["127.0.0.1:3128"]
connect_timeout_ms = 5000

[gateways.squid_auth]
kind = "http"
endpoints = ["127.0.0.1:3129"]
username = "$squid_user"
password_env = "MCP_IT_SQUID_PASSWORD"
connect_timeout_ms = 5000

[gateways.dante]
kind = "socks5"
endpoints = ["127.0.0.1:1080"]
connect_timeout_ms = 5000

[gateways.dante_auth]
kind = "socks5"
endpoints = ["127.0.0.1:1081"]
username = "$socks_user"
password_env = "MCP_IT_SOCKS_PASSWORD"
connect_timeout_ms = 5000

[gateways.microsocks]
kind = "socks5"
endpoints = ["127.0.0.1:1082"]
connect_timeout_ms = 5000

[gateways.haproxy]
kind = "rewrite"
endpoints = ["127.0.0.1:4000"]
proxy_protocol = "v2"

[gateways.haproxy_sni]
kind = "rewrite"
endpoints = ["127.0.0.1:4001"]

[gateways.mitmproxy]
kind = "http"
endpoints = ["127.0.0.1:8080"]
connect_timeout_ms = 5000

[[rules]]
host = "denied.example.org"
action = "deny"

# curl reaches blocked.example.net through squid (whose ACL refuses it), other programs through
# haproxy (which does not route it).
[[rules]]
host = "blocked.example.net"
process = "curl"
via = "squid"

[[rules]]
host = "blocked.example.net"
via = "haproxy"

[[rules]]
host_regex = 'squid-(bad)?auth\.example\.org'
via = "squid_auth"

[[rules]]
host = "dante.example.org"
via = "dante"

[[rules]]
host = "dante-badauth.example.org"
via = "dante_auth"

[[rules]]
host_regex = '(socks|plain)\.example\.org'
via = "microsocks"

[[rules]]
host = "pp2.example.org"
via = "haproxy"

[[rules]]
host = "sni.example.org"
via = "haproxy_sni"

[[rules]]
host = "mitm.example.org"
via = "mitmproxy"
EOF
)
log_gateways=$(log_of "$cfg_gateways")

squid_acl() {
    local name="squid: a host its ACL denies" out rc=0
    trust "$ca"
    out=$(under run "$cfg_gateways" curl -sS --max-time 20 https://blocked.example.net/acl 2>&1) || rc=$?
    if ((rc == 0)); then
        fail "$name" "curl got through: ${out:0:200}"
    elif ! wait_line "$work/squid/access.log" "TCP_DENIED/403 CONNECT blocked.example.net:443 "; then
        fail "$name" "squid's access log has no TCP_DENIED/403 for blocked.example.net"
    elif [[ $(jsonl count "$log_gateways" event=connect host=blocked.example.net gateway=squid \
        result=ECONNREFUSED error~"403 Forbidden") == 0 ]]; then
        fail "$name" "the library's log has no ECONNREFUSED carrying squid's 403 status line"
    elif ! origin_never_saw blocked.example.net; then
        fail "$name" "$why"
    else
        pass "$name" "curl failed (exit $rc); squid logged TCP_DENIED/403; the library logged ECONNREFUSED with squid's status line; the origin saw nothing"
    fi
}

squid_basic_auth() {
    local name out rc=0 error
    trust "$ca"
    name="squid with Basic auth: right password"
    if ! out=$(MCP_IT_SQUID_PASSWORD=$squid_password under preload "$cfg_gateways" \
        curl -sS --fail --max-time 20 https://squid-auth.example.org/basic 2>&1); then
        fail "$name" "curl failed: ${out:0:200}"
    elif ! wait_line "$work/squid/access.log" \
        "port=3129 .*TCP_TUNNEL/200 CONNECT squid-auth.example.org:443 user=$squid_user$"; then
        fail "$name" "squid's access log has no tunnel for user $squid_user on port 3129"
    elif ! origin_saw squid-auth.example.org /basic squid; then
        fail "$name" "$why"
    else
        pass "$name" "got the origin's page; squid logged TCP_TUNNEL/200 for user=$squid_user on its auth port"
    fi

    name="squid with Basic auth: wrong password"
    out=$(MCP_IT_SQUID_PASSWORD=not-the-password under preload "$cfg_gateways" \
        curl -sS --max-time 20 https://squid-badauth.example.org/basic 2>&1) || rc=$?
    error=$(jsonl field "$log_gateways" error event=connect host=squid-badauth.example.org result=ECONNREFUSED)
    if ((rc == 0)); then
        fail "$name" "curl got through with a wrong password"
    elif ! wait_line "$work/squid/access.log" "TCP_DENIED/407 CONNECT squid-badauth.example.org:443 "; then
        fail "$name" "squid's access log has no TCP_DENIED/407 for squid-badauth.example.org"
    elif [[ $error != *407* ]]; then
        fail "$name" "the library's log has no ECONNREFUSED with the 407 status line"
    elif ! origin_never_saw squid-badauth.example.org; then
        fail "$name" "$why"
    else
        pass "$name" "curl failed (exit $rc); squid logged TCP_DENIED/407; the library logged ECONNREFUSED, $error"
    fi
}

dante_plain_and_auth() {
    local name out rc=0 error
    trust "$ca"
    name="dante without auth (node fetch, LD_PRELOAD)"
    client_command node-fetch https://dante.example.org/socks-none
    if ! out=$(under preload "$cfg_gateways" "${cmd[@]}" 2>&1); then
        fail "$name" "node failed: ${out:0:300}"
    elif ! gateway_logged dante dante.example.org 443 || ! origin_saw dante.example.org /socks-none dante ||
        ! library_routed "$log_gateways" dante.example.org dante; then
        fail "$name" "$why"
    else
        pass "$name" "got the origin's page; $evidence; the origin saw it come from ${egress[dante]}"
    fi

    name="dante with username auth: wrong password"
    out=$(MCP_IT_SOCKS_PASSWORD=not-the-password under run "$cfg_gateways" \
        curl -sS --max-time 20 https://dante-badauth.example.org/ 2>&1) || rc=$?
    error=$(jsonl field "$log_gateways" error event=connect host=dante-badauth.example.org result=EACCES)
    if ((rc == 0)); then
        fail "$name" "curl got through with a wrong password"
    elif [[ -z $error ]]; then
        fail "$name" "the library's log has no EACCES for dante-badauth.example.org"
    elif ! origin_never_saw dante-badauth.example.org; then
        fail "$name" "$why"
    else
        pass "$name" "curl failed (exit $rc); the library logged EACCES, $error"
    fi
}

microsocks_https_and_http() {
    local name out
    trust "$ca"
    name="microsocks: https (python requests, mcp-redirect run)"
    client_command requests https://socks.example.org/microsocks
    if ! out=$(under run "$cfg_gateways" "${cmd[@]}" 2>&1); then
        fail "$name" "requests failed: ${out:0:300}"
    elif ! origin_saw socks.example.org /microsocks microsocks ||
        ! library_routed "$log_gateways" socks.example.org microsocks; then
        fail "$name" "$why"
    else
        pass "$name" "got the origin's page; the origin saw it come from microsocks' address ${egress[microsocks]} (microsocks keeps no log)"
    fi

    name="microsocks: plain http (wget, LD_PRELOAD)"
    if ! out=$(under preload "$cfg_gateways" wget -q -O - --timeout=20 --tries=1 \
        http://plain.example.org/microsocks-http 2>&1); then
        fail "$name" "wget failed: ${out:0:300}"
    elif [[ $out != *"served /microsocks-http to plain.example.org over http"* ]]; then
        fail "$name" "the body is not the origin's: ${out:0:200}"
    elif [[ $(jsonl count "$work/origin.jsonl" scheme=http host=plain.example.org path=/microsocks-http \
        client~"${egress[microsocks]}:") == 0 ]]; then
        fail "$name" "the origin has no plain-http request from microsocks"
    else
        pass "$name" "got the origin's page over port 80, from microsocks' address"
    fi
}

haproxy_proxy_v2() {
    local name out rc=0 line
    trust "$ca"
    name="haproxy (rewrite, PROXY v2): routed on the header's AUTHORITY"
    if ! out=$(under run "$cfg_gateways" curl -sS --fail --max-time 20 https://pp2.example.org/proxy-v2 2>&1); then
        fail "$name" "curl failed: ${out:0:200}"
    elif ! wait_line "$work/haproxy.log" \
        "frontend=egress_proxy_v2 client=127\.0\.0\.1:[0-9]+ authority=pp2\.example\.org dst_port=443 backend=origin_tls"; then
        fail "$name" "haproxy's log has no egress_proxy_v2 line with authority=pp2.example.org dst_port=443"
    elif ! origin_saw pp2.example.org /proxy-v2 haproxy || ! library_routed "$log_gateways" pp2.example.org haproxy; then
        fail "$name" "$why"
    else
        line=$(grep -E 'authority=pp2\.example\.org' "$work/haproxy.log" | tail -n 1)
        pass "$name" "got the origin's page (TLS end to end); haproxy logged: $line"
    fi

    name="haproxy (rewrite, PROXY v2): a name its ACL does not allow"
    out=$(under run "$cfg_gateways" "$py" -c 'import urllib.request
urllib.request.urlopen("https://blocked.example.net/pp2", timeout=20)' 2>&1) || rc=$?
    if ((rc == 0)); then
        fail "$name" "the request got through"
    elif ! wait_line "$work/haproxy.log" "frontend=egress_proxy_v2 .*authority=blocked\.example\.net .*backend=egress_proxy_v2"; then
        fail "$name" "haproxy's log has no refused connection for authority=blocked.example.net"
    elif ! origin_never_saw blocked.example.net; then
        fail "$name" "$why"
    else
        pass "$name" "python failed ($(tail -n 1 <<<"$out" | cut -c1-90)); haproxy refused authority=blocked.example.net; the origin saw nothing"
    fi
}

haproxy_sni() {
    local name="haproxy (rewrite, no header): routed on the TLS SNI (node https)" out line
    trust "$ca"
    client_command node-https https://sni.example.org/sni
    if ! out=$(under preload "$cfg_gateways" "${cmd[@]}" 2>&1); then
        fail "$name" "node failed: ${out:0:300}"
    elif ! wait_line "$work/haproxy.log" "frontend=egress_sni client=127\.0\.0\.1:[0-9]+ sni=sni\.example\.org backend=origin_tls"; then
        fail "$name" "haproxy's log has no egress_sni line with sni=sni.example.org"
    elif ! origin_saw sni.example.org /sni haproxy || ! library_routed "$log_gateways" sni.example.org haproxy_sni; then
        fail "$name" "$why"
    else
        line=$(grep -E 'sni=sni\.example\.org' "$work/haproxy.log" | tail -n 1)
        pass "$name" "got the origin's page; haproxy logged: $line"
    fi
}

mitmproxy_inspection() {
    local name out rc=0 flow
    name="mitmproxy: TLS inspected, request visible in its flow log"
    trust "$mitm_ca"
    if ! out=$(under run "$cfg_gateways" curl -sS --fail --max-time 20 -H 'X-Integration: seen-in-clear' \
        'https://mitm.example.org/inspected?q=1' 2>&1); then
        fail "$name" "curl failed: ${out:0:200}"
        return
    fi
    flow=$(jsonl show "$work/mitm/flows.jsonl" 'url=https://mitm.example.org/inspected?q=1' \
        headers.x-integration=seen-in-clear status=200)
    if [[ -z $flow ]]; then
        fail "$name" "mitmproxy's flow log has no decrypted GET https://mitm.example.org/inspected?q=1 with the X-Integration header"
    elif ! origin_saw mitm.example.org '/inspected?q=1' mitmproxy ||
        ! library_routed "$log_gateways" mitm.example.org mitmproxy; then
        fail "$name" "$why"
    else
        pass "$name" "got the origin's page; mitmproxy decrypted GET /inspected?q=1 with x-integration: seen-in-clear and re-encrypted it to the origin"
    fi

    name="mitmproxy: a client that does not trust its CA refuses the intercepted TLS"
    trust "$ca"
    out=$(under run "$cfg_gateways" curl -sS --max-time 20 https://mitm.example.org/untrusted 2>&1) || rc=$?
    if ((rc == 0)); then
        fail "$name" "curl accepted the certificate: the TLS was not intercepted"
    elif [[ $out != *certificate* ]]; then
        fail "$name" "curl failed, but not on the certificate (exit $rc): ${out:0:200}"
    else
        pass "$name" "curl (exit $rc) rejected mitmproxy's certificate: the TLS session ended at mitmproxy"
    fi
}
