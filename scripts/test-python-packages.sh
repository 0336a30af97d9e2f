#!/usr/bin/env bash
# The PyPI packages `cargo test` uses (tests/mcp-clients/requirements.txt: the MCP SDK, whose stdio
# client tests/wrap.rs drives a wrapped server entry with), in a venv of their own, installed
# again only when that list changes. Prints the venv's python, for MCP_REDIRECT_TEST_PYTHON:
#
#   export MCP_REDIRECT_TEST_PYTHON=$(scripts/test-python-packages.sh)
#
# Without that variable the test looks for the venv at its default place, and without the venv it
# says it skipped the client's part. .ci/run always sets it. The venv: $MCP_REDIRECT_TEST_VENV, else
# ${XDG_CACHE_HOME:-~/.cache}/mcp-redirect-tests/venv. Needs python3's venv module (Debian:
# python3-venv, in scripts/test-packages.txt) and PyPI.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
requirements=$repo/tests/mcp-clients/requirements.txt
venv=${MCP_REDIRECT_TEST_VENV:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/mcp-redirect-tests/venv}

if [[ -x $venv/bin/python ]] && cmp -s "$requirements" "$venv/requirements.txt"; then
    echo "$venv/bin/python"
    exit 0
fi
echo "test-python-packages: installing $(grep -v '^#' "$requirements" | awk 'NF { print $1 }' | tr '\n' ' ')into $venv" >&2
python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements" >&2
cp "$requirements" "$venv/requirements.txt"
echo "$venv/bin/python"
