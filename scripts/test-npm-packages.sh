#!/usr/bin/env bash
# The npm package `cargo test` uses: Anthropic's sandbox-runtime (`srt`), which
# tests/zero_leak.rs runs Node's fetch inside, with and without the library
# (docs/supervisor.md#with-other-sandboxes). Installed into a directory of its own, again only
# when the pinned version changes. Prints the path of `srt`, for MCP_REDIRECT_TEST_SRT:
#
#   export MCP_REDIRECT_TEST_SRT=$(scripts/test-npm-packages.sh)
#
# Without that variable the test looks at this script's default place, and without srt there it
# says it skipped. .ci/run always sets it. The directory: $MCP_REDIRECT_TEST_NPM, else
# ${XDG_CACHE_HOME:-~/.cache}/mcp-redirect-tests/npm. Needs npm and the npm registry; srt itself
# needs bubblewrap, socat and ripgrep (scripts/test-packages.txt).
set -euo pipefail

package=@anthropic-ai/sandbox-runtime@0.0.83
dir=${MCP_REDIRECT_TEST_NPM:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/mcp-redirect-tests/npm}
srt=$dir/node_modules/.bin/srt

if [[ -x $srt && $(cat "$dir/installed" 2>/dev/null) == "$package" ]]; then
    echo "$srt"
    exit 0
fi
echo "test-npm-packages: installing $package into $dir" >&2
mkdir -p "$dir"
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$package" >&2
echo "$package" >"$dir/installed"
echo "$srt"
