#!/usr/bin/env bash
# Builds the statically linked `mcp-redirect` command, which runs in any Linux image of its
# architecture (glibc, musl/Alpine, distroless): what `mcp-redirect install` copies into a
# Kubernetes pod, and what the Docker image ships.
#
#   scripts/build-static-cli.sh [--profile release|dev] [--out FILE]
#
# Prints the binary's path on the last line of stdout:
# target/static/<host triple>/release/mcp-redirect (or .../debug/ for --profile dev), under
# $CARGO_TARGET_DIR instead of target/ when that is set. --out FILE also copies it to FILE (a
# path that does not depend on the architecture, for the Dockerfile).
#
# How: glibc linked in (`-C target-feature=+crt-static` on the host's *-linux-gnu target), in a
# cargo invocation and target directory of its own, so `cargo build`'s libmcp_redirect.so and
# dynamic command are untouched. Only the command's crate (`-p mcp-redirect-cli`): the library's
# exported hooks (`connect`, `getaddrinfo`...) are in another crate (crates/preload) that the
# command does not depend on; linked statically they would replace libc's own functions in this
# program. The library itself cannot be static: it is built by `cargo build --release` as
# always, and `install` copies it from next to the command.
set -euo pipefail

profile=release
out=
while (($#)); do
    case $1 in
        --profile)
            profile=${2:?--profile needs release or dev}
            shift 2
            ;;
        --out)
            out=${2:?--out needs a file name}
            shift 2
            ;;
        -h | --help)
            sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "build-static-cli.sh: unknown argument $1 (see --help)" >&2
            exit 2
            ;;
    esac
done
case $profile in
    release) out_dir=release ;;
    dev) out_dir=debug ;;
    *)
        echo "build-static-cli.sh: --profile is release or dev, not $profile" >&2
        exit 2
        ;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
triple=$(rustc -vV | sed -n 's/^host: //p')
if [[ $triple != *-linux-gnu ]]; then
    echo "build-static-cli.sh: needs a *-linux-gnu Rust host, not $triple" >&2
    exit 2
fi
target_dir=${CARGO_TARGET_DIR:-$repo/target}/static

# --target: RUSTFLAGS then apply to this target only, not to build scripts and proc macros
# (clap's derive), which the compiler loads and which cannot be static.
(cd "$repo" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --locked --profile "$profile" -p mcp-redirect-cli --bin mcp-redirect \
    --target "$triple" --target-dir "$target_dir")

binary=$target_dir/$triple/$out_dir/mcp-redirect
# The loader never runs for a static program: no PT_INTERP, no needed libraries.
if command -v readelf >/dev/null && readelf -lW "$binary" | grep -q 'INTERP'; then
    echo "build-static-cli.sh: $binary is not statically linked" >&2
    exit 1
fi
if [[ -n $out ]]; then
    mkdir -p "$(dirname "$out")"
    cp "$binary" "$out.tmp" && mv "$out.tmp" "$out"
    binary=$out
fi
echo "$binary"
