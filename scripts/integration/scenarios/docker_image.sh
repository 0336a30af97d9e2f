# shellcheck shell=bash
# shellcheck disable=SC2016 # single-quoted code for sh -c, node, python and bash is meant literally
# Sourced by scripts/integration-test.sh: the Dockerfile replay (docker_image): the build stage run
# natively, the runtime stage replayed in a chroot and "run" the way docker run would.

# The Dockerfile without a container engine: the build stage's commands run natively, and the
# runtime stage is replayed on a Debian bookworm root file system (debootstrap --variant=minbase,
# made once into the cache) in a chroot, then "run" the way docker run would: as the image's
# USER, with its ENV, ENTRYPOINT and CMD, a config mounted at the default path.
image_base=$cache/bookworm-rootfs

# image_ns CONFIG CMD...: CMD in a mount namespace of its own where $work/image/root is the
# image's root (the cached root file system, this run's changes in an overlay above it) with
# /proc, /dev, the sandbox's /etc/hosts and /etc/resolv.conf, and CONFIG (if not empty) at
# /etc/mcp-redirect/mcp-redirect.toml. The mounts end with the namespace.
image_ns() {
    local config=$1
    shift
    mkdir -p "$work/image/root" "$work/image/upper" "$work/image/overlay-work"
    unshare --mount --propagation private sh -c '
        root=$1 lower=$2 upper=$3 scratch=$4 config=$5
        shift 5
        mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$scratch" "$root" &&
            touch "$root/etc/hosts" "$root/etc/resolv.conf" &&
            mount -t proc proc "$root/proc" && mount --bind /dev "$root/dev" &&
            mount --bind /etc/hosts "$root/etc/hosts" &&
            mount --bind /etc/resolv.conf "$root/etc/resolv.conf" || exit 125
        if [ -n "$config" ]; then
            mount --bind "$config" "$root/etc/mcp-redirect/mcp-redirect.toml" || exit 125
        fi
        exec "$@"' sh "$work/image/root" "$image_base" "$work/image/upper" "$work/image/overlay-work" \
        "$config" "$@"
}

# docker_run CONFIG [ARGS...]: `docker run [-v CONFIG:/etc/mcp-redirect/mcp-redirect.toml] IMAGE ARGS`.
docker_run() {
    local config=$1
    shift
    image_ns "$config" timeout 60 python3 "$here/dockerfile_replay.py" run --root "$work/image/root" \
        --state "$work/image/state.json" -- "$@"
}

docker_image() {
    local name command out rc=0 cfg state
    if [[ ! -d $image_base ]]; then
        skip "Dockerfile replay" "no Debian root file system at $image_base (debootstrap failed or was not run)"
        return 0
    fi
    name="Dockerfile build stage, natively"
    while read -r command; do
        if ! (cd "$repo" && bash -c "$command") >"$work/image-build.log" 2>&1; then
            fail "$name" "\`$command\` failed: $(tail -n 3 "$work/image-build.log" | short 300)"
            return 0
        fi
        pass "$name" "\`$command\`: ok"
    done < <(python3 "$here/dockerfile_replay.py" build-commands --dockerfile "$repo/Dockerfile")

    name="Dockerfile runtime stage, replayed on Debian bookworm (chroot)"
    if ! image_ns "" python3 "$here/dockerfile_replay.py" build --dockerfile "$repo/Dockerfile" \
        --context "$repo" --root "$work/image/root" --state "$work/image/state.json" >"$work/image-replay.log" 2>&1; then
        fail "$name" "$(tail -n 3 "$work/image-replay.log" | short 300)"
        return 0
    fi
    state=$(jq -c '{user, entrypoint, cmd, config: .env.MCP_REDIRECT_CONFIG, preload: .env.LD_PRELOAD}' \
        "$work/image/state.json")
    if [[ $state != '{"user":"10001:10001","entrypoint":["mcp-redirect","run","--"],"cmd":["mcp-redirect","check"],"config":"/etc/mcp-redirect/mcp-redirect.toml","preload":"/usr/local/lib/libmcp_redirect.so"}' ]]; then
        fail "$name" "the image is not as expected: $state"
        return 0
    fi
    pass "$name" "$(grep -c '^  ' "$work/image-replay.log") instructions applied; $state"

    cfg=$(config image <<EOF
default = "deny"

[gateways.microsocks]
kind = "socks5"
endpoints = ["127.0.0.1:1082"]

[[rules]]
host = ".example.org"
via = "microsocks"
EOF
)
    # The image's user reads the config; its log goes to stderr (the work directory is root's).
    sed -i 's|^path = .*|path = "stderr"|' "$cfg"

    name="docker run IMAGE (default CMD) with a config mounted at the default path"
    if ! out=$(docker_run "$cfg" 2>&1); then
        fail "$name" "$(short 300 <<<"$out")"
    elif [[ $out != *"source: /etc/mcp-redirect/mcp-redirect.toml"* ]]; then
        fail "$name" "mcp-redirect check did not read the default path: $(short 300 <<<"$out")"
    else
        pass "$name" "ENTRYPOINT + CMD ran \`mcp-redirect run -- mcp-redirect check\`: source: /etc/mcp-redirect/mcp-redirect.toml"
    fi

    name="docker run IMAGE bash (non-root, through the library to microsocks)"
    out=$(docker_run "$cfg" bash -c 'echo "uid=$(id -u) gid=$(id -g)"
        exec 3<>/dev/tcp/image.example.org/80 &&
        printf "GET /docker-image HTTP/1.0\r\nHost: image.example.org\r\n\r\n" >&3 && cat <&3' 2>&1) || rc=$?
    if ((rc != 0)); then
        fail "$name" "exit $rc: $(short 300 <<<"$out")"
    elif [[ $out != *"uid=10001 gid=10001"* ]]; then
        fail "$name" "not run as 10001:10001: $(short 200 <<<"$out")"
    elif [[ $out != *"served /docker-image to image.example.org over http"* ]]; then
        fail "$name" "no page from the origin: $(short 300 <<<"$out")"
    elif [[ $out != *'"exe":"bash","event":"connect","proto":"tcp","host":"image.example.org"'*'"gateway":"microsocks"'* ]] ||
        [[ $(jsonl count "$work/origin.jsonl" path=/docker-image client~"${egress[microsocks]}:") == 0 ]]; then
        fail "$name" "the connection did not go through microsocks: $(short 300 <<<"$out")"
    else
        pass "$name" "uid=10001 gid=10001; bash's /dev/tcp connection to image.example.org:80 went through microsocks (library log on stderr, origin saw ${egress[microsocks]})"
    fi

    name="docker run IMAGE without a mounted config fails closed"
    rc=0
    out=$(docker_run "" true 2>&1) || rc=$?
    if ((rc != 2)); then
        fail "$name" "exit $rc, expected 2: $(short 300 <<<"$out")"
    elif [[ $out != *MCP_REDIRECT_CORP_PASSWORD* ]]; then
        fail "$name" "it failed for another reason: $(short 300 <<<"$out")"
    else
        pass "$name" "exit 2, nothing started: the shipped example config needs MCP_REDIRECT_CORP_PASSWORD"
    fi
}
