#!/usr/bin/env bash
# Long property-test ("fuzzing") runs over the parsers: config text, rule patterns, addresses,
# proxy URLs, and gateway replies fed to the real handshake code over a socket pair.
# cargo fuzz needs a nightly toolchain; proptest runs on stable.
#
#   scripts/fuzz.sh            # 100,000 cases per property
#   CASES=1000000 scripts/fuzz.sh
#
# .ci/run runs the same properties at their default 256 cases as part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${CASES:-100000}
properties=$(grep -cF '#[test]' tests/fuzz.rs)
started=$(date +%s)
PROPTEST_CASES=$cases cargo test --release --test tests fuzz:: -- --test-threads=2
elapsed=$(( $(date +%s) - started ))
echo "fuzz: $properties properties x $cases cases = $(( properties * cases )) executions in ${elapsed}s (including the build)"
