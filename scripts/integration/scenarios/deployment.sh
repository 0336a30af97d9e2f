# shellcheck shell=bash
# shellcheck disable=SC2016 # single-quoted code for sh -c, node, python and bash is meant literally
# Sourced by scripts/integration-test.sh: the shipped deployment files (deployment_lint: linters
# and the gateways' config checkers; example_configs: every examples/*.toml checked and explained).

# ---- Deployment files: the Dockerfile, the compose example, the example configs ---------------

# Linters and the gateways' own config checkers on what examples/ ships.
deployment_lint() {
    local out
    if out=$("$venv/bin/hadolint" "$repo/Dockerfile" "$repo/examples/mcp-server.Dockerfile" 2>&1); then
        pass "hadolint Dockerfile examples/mcp-server.Dockerfile" "no findings ($("$venv/bin/hadolint" --version))"
    else
        fail "hadolint Dockerfile examples/mcp-server.Dockerfile" "$(short 300 <<<"$out")"
    fi
    if out=$(GITHUB_PERSONAL_ACCESS_TOKEN=placeholder docker-compose -f "$repo/examples/compose.yaml" config -q 2>&1); then
        pass "docker-compose config examples/compose.yaml" "valid ($(docker-compose version --short 2>/dev/null || echo docker-compose); no engine needed)"
    else
        fail "docker-compose config examples/compose.yaml" "$(short 300 <<<"$out")"
    fi
    if out=$(squid -k parse -f "$repo/examples/compose/squid.conf" 2>&1) && [[ $out != *ERROR* ]]; then
        pass "squid -k parse examples/compose/squid.conf" "valid for squid $(squid -v | sed -n 's/.*Version //p')"
    else
        fail "squid -k parse examples/compose/squid.conf" "$(grep -E 'ERROR|FATAL' <<<"$out" | short 300)"
    fi
    if out=$(haproxy -c -f "$repo/examples/haproxy-egress.cfg" 2>&1); then
        pass "haproxy -c examples/haproxy-egress.cfg" "$(grep -o 'Configuration file is valid' <<<"$out") (the APIs' names do not resolve here; init-addr lets it start anyway)"
    else
        fail "haproxy -c examples/haproxy-egress.cfg" "$(grep -E 'ALERT|ERROR' <<<"$out" | short 300)"
    fi
}

# Every example config is valid without warnings, and decides as its comments say.
example_configs() {
    local file entry target expected got out
    export CORP_PROXY_PASSWORD=placeholder SOCKS_PASSWORD=placeholder MCP_REDIRECT_CORP_PASSWORD=placeholder
    local -a expectations=(
        "allow-list.toml api.github.com:443 gateway egress"
        "allow-list.toml raw.githubusercontent.com:443 gateway egress"
        "allow-list.toml api.github.com:80 deny"
        "allow-list.toml example.com:443 deny"
        "corporate-proxy.toml api.github.com:443 gateway corp"
        "corporate-proxy.toml wiki.corp.example:443 direct"
        "corporate-proxy.toml 10.1.2.3:5432 direct"
        "corporate-proxy.toml 169.254.169.254:80 deny"
        "api-gateway-rewrite.toml api.openai.com:443 gateway llm"
        "api-gateway-rewrite.toml api.openai.com:80 gateway corp"
        "socks.toml db.internal.example:5432 gateway socks"
        "socks.toml 169.254.169.254:80 deny"
        "compose/mcp-redirect.toml api.github.com:443 gateway squid"
        "compose/mcp-redirect.toml example.com:443 deny"
        "mcp-redirect.toml api.anthropic.com:443 gateway llm"
        "mcp-redirect.toml pastebin.com:443 deny"
    )
    for file in allow-list.toml corporate-proxy.toml api-gateway-rewrite.toml socks.toml \
        compose/mcp-redirect.toml mcp-redirect.toml; do
        if out=$("$cli" check --config "$repo/examples/$file" --deny-warnings 2>&1); then
            pass "examples/$file" "mcp-redirect check --deny-warnings: valid, no warnings"
        else
            fail "examples/$file" "mcp-redirect check --deny-warnings: $(grep -E 'warning|error|config' <<<"$out" | short 300)"
        fi
    done
    for entry in "${expectations[@]}"; do
        read -r file target expected <<<"$entry"
        got=$("$cli" explain --config "$repo/examples/$file" --no-resolve --json "$target" |
            jq -r '.connect.decision | .action + (if .gateway then " " + .gateway else "" end)')
        if [[ $got == "$expected" ]]; then
            pass "examples/$file decides $target" "$got"
        else
            fail "examples/$file decides $target" "mcp-redirect explain says '$got', expected '$expected'"
        fi
    done
}
