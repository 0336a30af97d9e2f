# shellcheck shell=bash
# shellcheck disable=SC2016 # single-quoted code for sh -c, node, python and bash is meant literally
# Sourced by scripts/integration-test.sh: failing closed and what the command says (default_deny,
# deny_rule, invalid_config, go_binary, check_probe).

# ---- Failing closed, and what the command says -------------------------------------------------

# A name no rule covers meets `default = "deny"`: EACCES, and nothing reaches a gateway.
default_deny() {
    local name out rc=0 squid_lines
    trust "$ca"
    squid_lines=$(lines "$work/squid/access.log")
    name="default deny: curl (mcp-redirect run) to a name no rule covers"
    out=$(under run "$cfg_clients_squid" curl -sS --max-time 20 https://undecided.example.com/ 2>&1) || rc=$?
    if ((rc == 0)); then
        fail "$name" "curl got through"
    elif ! library_refused "$(log_of "$cfg_clients_squid")" undecided.example.com deny EACCES; then
        fail "$name" "$why"
    else
        pass "$name" "curl failed (exit $rc: $(short 70 <<<"$out")); the library logged deny by default, EACCES"
    fi

    name="default deny: python urllib (LD_PRELOAD) sees errno EACCES"
    rc=0
    out=$(under preload "$cfg_clients_squid" "$py" -c 'import errno, sys, urllib.request
try:
    urllib.request.urlopen("https://undecided.example.com/", timeout=20)
except OSError as e:
    reason = getattr(e, "reason", e)
    print(repr(reason))
    sys.exit(13 if getattr(reason, "errno", None) == errno.EACCES else 1)' 2>&1) || rc=$?
    if ((rc != 13)); then
        fail "$name" "exit $rc, expected 13 (EACCES): $(short 150 <<<"$out")"
    elif (($(lines "$work/squid/access.log") != squid_lines)); then
        fail "$name" "squid received a request"
    else
        pass "$name" "$out; squid saw nothing"
    fi
}

# A deny rule before a broader gateway rule wins, in node too (EACCES from connect).
deny_rule() {
    local name="deny rule: node fetch to denied.example.org" out rc=0
    trust "$ca"
    client_command node-fetch https://denied.example.org/
    out=$(under run "$cfg_gateways" "${cmd[@]}" 2>&1) || rc=$?
    if ((rc == 0)); then
        fail "$name" "node got through"
    elif [[ $out != *EACCES* ]]; then
        fail "$name" "node failed, but not with EACCES: $(short 200 <<<"$out")"
    elif ! library_refused "$log_gateways" denied.example.org deny EACCES || ! origin_never_saw denied.example.org; then
        fail "$name" "$why"
    else
        pass "$name" "node: $(grep -o 'connect EACCES [0-9.:]*' <<<"$out" | head -n 1); the library logged deny by rules[0]"
    fi
}

# An invalid config: `run` refuses to start the program; a preloaded program is refused every
# connection, and the log file says why.
invalid_config() {
    local name cfg out rc=0
    trust "$ca"
    cfg=$(config invalid <<EOF
default = "squid"

[gateways.squid]
kind = "http"
endpoints = ["127.0.0.1:3128"]

[[rules]]
hots = "typo.example.org"
via = "squid"
EOF
)
    name="invalid config: mcp-redirect run refuses to start the program"
    out=$("$cli" run --config "$cfg" -- touch "$work/started" 2>&1) || rc=$?
    if ((rc != 2)); then
        fail "$name" "exit $rc, expected 2: $(short 200 <<<"$out")"
    elif [[ -e $work/started ]]; then
        fail "$name" "the program was started"
    else
        pass "$name" "exit 2: $(head -n 1 <<<"$out" | short 160)"
    fi

    name="invalid config: a preloaded curl is refused (fail closed), the log says why"
    rc=0
    out=$(under preload "$cfg" curl -sS --max-time 20 https://example.org/invalid-config 2>&1) || rc=$?
    if ((rc == 0)); then
        fail "$name" "curl got through"
    elif [[ $(jsonl count "$(log_of "$cfg")" event=config_error error~"unknown field") == 0 ]]; then
        fail "$name" "the log file has no config_error event"
    elif [[ $(jsonl count "$(log_of "$cfg")" event=connect "rule.pattern=invalid configuration" result=EACCES) == 0 ]]; then
        fail "$name" "the log has no connect refused for the invalid configuration"
    elif (($(jsonl count "$work/origin.jsonl" path=/invalid-config) > 0)); then
        fail "$name" "the origin received the request"
    else
        pass "$name" "curl failed (exit $rc); the log has config_error and a connect refused with EACCES by 'invalid configuration'"
    fi
}

# Go programs make their own system calls and resolve names themselves: the preload cannot
# reach them. `run --mode preload --strict` refuses them; `run` (auto) hands them to its seccomp
# supervisor, which decides their connections (and answers their DNS) by the same rules. age and
# gron are Debian's Go builds; gron fetches a URL and prints its JSON.
go_binary() {
    local name out rc=0 cfg
    trust "$ca"
    name="a Go program (Debian's age): run --mode preload --strict refuses it"
    out=$("$cli" run --config "$cfg_clients_squid" --mode preload --strict -- \
        "$(command -v age)" --version 2>&1) || rc=$?
    if ((rc != 3)); then
        fail "$name" "exit $rc, expected 3: $(short 200 <<<"$out")"
    elif [[ $out != *"a Go program"* ]]; then
        fail "$name" "the warning does not say it is a Go program: $(short 200 <<<"$out")"
    else
        pass "$name" "exit 3: $(grep -o 'a Go program[^,]*' <<<"$out" | head -n 1)"
    fi

    name="a Go client (Debian's gron) under run: the supervisor sends it through squid"
    cfg=$(config go <<EOF
default = "deny"

[gateways.squid]
kind = "http"
endpoints = ["127.0.0.1:3128"]
connect_timeout_ms = 5000

[[rules]]
host = "api.github.com"
port = 443
via = "squid"
EOF
)
    rc=0
    out=$(under run "$cfg" gron 'https://api.github.com/search/repositories?q=gron' 2>&1) || rc=$?
    if ((rc != 0)); then
        fail "$name" "gron failed (exit $rc): $(short 300 <<<"$out")"
    elif [[ $out != *'full_name = "mcp-redirect-fixture/origin-says-hello"'* ]]; then
        fail "$name" "gron's output is not the origin's: $(short 200 <<<"$out")"
    elif ! origin_saw api.github.com '/search/repositories?q=gron' squid ||
        ! library_routed "$(log_of "$cfg")" api.github.com squid; then
        fail "$name" "$why"
    else
        pass "$name" "gron printed the origin's search result; squid tunnelled it; the log says gateway squid, ok ($(jsonl field "$(log_of "$cfg")" exe event=connect host=api.github.com | head -n 1))"
    fi
}

# `mcp-redirect check --connect --probe` completes each real gateway's handshake.
check_probe() {
    local name="mcp-redirect check --connect --probe example.org:443 against every gateway" out rc=0 ok
    out=$("$cli" check --config "$cfg_gateways" --connect --probe example.org:443 2>&1) || rc=$?
    ok=$(grep -cE ': ok, (http|socks5) handshake to example.org:443' <<<"$out" || true)
    if ((rc != 0)); then
        fail "$name" "exit $rc: $(grep -E 'FAILED|error' <<<"$out" | short 300)"
    elif ((ok != 6)); then
        fail "$name" "$ok handshakes reported ok, expected 6 (squid, squid_auth, dante, dante_auth, microsocks, mitmproxy): $(grep -A20 '^endpoints' <<<"$out" | short 400)"
    else
        pass "$name" "6 handshakes ok (squid, squid with auth, dante, dante with auth, microsocks, mitmproxy), 2 TCP connects (haproxy)"
    fi
}
